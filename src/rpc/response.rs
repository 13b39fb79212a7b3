//! Response packets: the typed answer and its writer. Everything written
//! here is valid against `schemas/agent_output.xsd`, whatever strings it
//! carries (characters XML cannot hold are replaced).

use super::code::RpcError;
use super::xml::is_xml_char;
use crate::migration::report::Report;
use crate::migration::status::{Item, ItemProgress, MigrationStatus, ObjectKind};
use crate::mounts::FsInfo;

/// A whole response packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePacket {
    pub version: String,
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    /// The packet was refused as a whole.
    System(RpcError),
    /// One entry per request operator, each with one answer per operation.
    Operators(Vec<Vec<OperationResult>>),
}

/// The answer to one operation, named like the request element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationResult {
    Check(Result<(), RpcError>),
    GetFs(Result<Vec<FsInfo>, RpcError>),
    Start(Result<String, RpcError>),
    GetStatus(Result<MigrationStatus, RpcError>),
    GetReport(Result<Report, RpcError>),
    Finish(Result<(), RpcError>),
    Resync(Result<String, RpcError>),
    Resume(Result<String, RpcError>),
    List(Result<Vec<Listed>, RpcError>),
    GetLog(Result<LogPage, RpcError>),
}

/// One migration of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    /// `queued`, `running`, `interrupted`, `finished` or `stopped`.
    pub state: &'static str,
    pub source: String,
    /// ISO 8601, UTC.
    pub started: String,
    pub ended: Option<String>,
    /// The clients and domains it holds (or held).
    pub objects: Vec<(ObjectKind, String)>,
    /// What `get_status` answers for it.
    pub status: Option<MigrationStatus>,
}

/// Lines of an event log, from line `from` (the first is 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub from: u64,
    pub lines: Vec<String>,
}

impl ResponsePacket {
    pub fn system(version: &str, error: RpcError) -> Self {
        ResponsePacket {
            version: version.to_owned(),
            body: ResponseBody::System(error),
        }
    }

    /// Writes the packet; `pretty` indents it (`HTTP_PRETTY_PRINT`).
    pub fn to_xml(&self, pretty: bool) -> Vec<u8> {
        let mut w = Writer::new(pretty);
        w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        w.newline();
        w.open_with_version(&self.version);
        match &self.body {
            ResponseBody::System(err) => {
                w.open("system");
                w.leaf("status", "error");
                error_fields(&mut w, err);
                w.close("system");
            }
            ResponseBody::Operators(ops) => {
                for results in ops {
                    w.open("migration");
                    for result in results {
                        operation(&mut w, result);
                    }
                    w.close("migration");
                }
            }
        }
        w.close("packet");
        w.out
    }
}

fn error_fields(w: &mut Writer, err: &RpcError) {
    w.leaf("errcode", &err.code.number().to_string());
    w.leaf("errtext", &err.text);
}

/// `<name><result>…</result></name>`, with `ok` and `body`, or the error.
fn result<T>(
    w: &mut Writer,
    name: &str,
    res: &Result<T, RpcError>,
    body: impl FnOnce(&mut Writer, &T),
) {
    w.open(name);
    w.open("result");
    match res {
        Ok(value) => {
            w.leaf("status", "ok");
            body(w, value);
        }
        Err(err) => {
            w.leaf("status", "error");
            error_fields(w, err);
        }
    }
    w.close("result");
    w.close(name);
}

fn operation(w: &mut Writer, res: &OperationResult) {
    match res {
        OperationResult::Check(r) => result(w, "check", r, |_, _| {}),
        OperationResult::Finish(r) => result(w, "finish", r, |_, _| {}),
        OperationResult::Start(r) => result(w, "start", r, |w, id| w.leaf("migration_id", id)),
        OperationResult::Resync(r) => result(w, "resync", r, |w, id| w.leaf("migration_id", id)),
        OperationResult::Resume(r) => result(w, "resume", r, |w, id| w.leaf("migration_id", id)),
        OperationResult::GetFs(r) => result(w, "get_fs", r, |w, list| {
            for fs in list {
                w.open("fs");
                w.leaf("mountpoint", &fs.mountpoint);
                w.leaf("device", &fs.device);
                w.leaf("mode", if fs.read_only { "ro" } else { "rw" });
                w.leaf("size", &fs.size.to_string());
                w.leaf("free", &fs.free.to_string());
                w.leaf("type", &fs.fs_type);
                w.close("fs");
            }
        }),
        OperationResult::GetStatus(r) => result(w, "get_status", r, status_body),
        OperationResult::GetReport(r) => result(w, "get_report", r, report_body),
        OperationResult::List(r) => result(w, "list", r, |w, list| {
            for m in list {
                w.open("migration");
                w.leaf("migration_id", &m.id.to_string());
                w.leaf("state", m.state);
                w.leaf("source", &m.source);
                w.leaf("started", &m.started);
                if let Some(ended) = &m.ended {
                    w.leaf("ended", ended);
                }
                for (kind, name) in &m.objects {
                    w.open("object");
                    w.leaf("type", kind.as_str());
                    w.leaf("name", name);
                    w.close("object");
                }
                if let Some(status) = &m.status {
                    status_body(w, status);
                }
                if let Some(MigrationStatus::InProgress(p)) = &m.status {
                    w.leaf("bytes_done", &p.bytes.done.to_string());
                    w.leaf("bytes_total", &p.bytes.total.to_string());
                    for item in &p.items {
                        item_body(w, item);
                    }
                }
                w.close("migration");
            }
        }),
        OperationResult::GetLog(r) => result(w, "get_log", r, |w, page| {
            w.leaf("from", &page.from.to_string());
            for line in &page.lines {
                w.leaf("line", line);
            }
            w.leaf("next", &(page.from + page.lines.len() as u64).to_string());
        }),
    }
}

/// One copy under way, typed (for progress bars with rate and time left).
fn item_body(w: &mut Writer, p: &ItemProgress) {
    w.open("item");
    let (kind, name) = match &p.item {
        Item::WebContent { .. } => ("web", None),
        Item::MailContent { .. } => ("mail", None),
        Item::Database { name, .. } => ("database", Some(name.as_str())),
    };
    w.leaf("kind", kind);
    w.leaf("domain", p.item.domain());
    if let Some(name) = name {
        w.leaf("name", name);
    }
    w.leaf("label", &p.item.label());
    for (tag, n) in [
        ("bytes_done", p.bytes_done),
        ("bytes_total", p.bytes_total),
        ("files_done", p.files_done),
        ("files_total", p.files_total),
        ("rows_done", p.rows_done),
        ("rows_total", p.rows_total),
        ("rate", p.rate),
    ] {
        w.leaf(tag, &n.to_string());
    }
    if let Some(r) = &p.retrying {
        w.leaf(
            "retrying",
            &format!("{} of {} after: {}", r.attempt, r.of, r.after),
        );
    }
    w.close("item");
}

fn status_body(w: &mut Writer, status: &MigrationStatus) {
    match status {
        MigrationStatus::InProgress(progress) => {
            w.open("migration_status");
            w.leaf("total", &progress.total.to_string());
            w.leaf("completed", &progress.completed.to_string());
            w.leaf("description", &progress.description());
            w.close("migration_status");
        }
        MigrationStatus::Finished { errors } => {
            w.open("finished");
            if errors.is_empty() {
                w.empty("success");
            }
            for err in errors {
                w.open("error");
                if let Some(object) = &err.object {
                    w.open("object");
                    w.leaf("type", object.kind.as_str());
                    w.leaf("name", &object.name);
                    w.close("object");
                }
                for message in &err.messages {
                    w.leaf("message", message);
                }
                w.close("error");
            }
            w.close("finished");
        }
    }
}

/// A migration's report (`schemas/migration_output.xsd`, `Report`).
fn report_body(w: &mut Writer, report: &Report) {
    w.open("report");
    w.leaf("migration_id", &report.migration_id.to_string());
    w.leaf("source", &report.source);
    w.leaf("outcome", report.outcome.as_str());
    for o in &report.objects {
        w.open("object");
        w.leaf("type", o.kind.as_str());
        w.leaf("name", &o.name);
        if let Some(owner) = &o.owner {
            w.leaf("owner", owner);
        }
        w.leaf("outcome", o.outcome.as_str());
        for t in &o.trees {
            w.open("tree");
            w.leaf("kind", &t.kind);
            w.leaf("outcome", t.outcome.as_str());
            w.leaf("files", &t.files.to_string());
            w.leaf("bytes", &t.bytes.to_string());
            w.leaf("sent-files", &t.sent_files.to_string());
            w.leaf("sent-bytes", &t.sent_bytes.to_string());
            w.leaf("deleted", &t.deleted.to_string());
            w.leaf("verified", if t.verified { "true" } else { "false" });
            if let Some(e) = &t.error {
                w.leaf("error", e);
            }
            w.close("tree");
        }
        for d in &o.databases {
            w.open("database");
            w.leaf("name", &d.name);
            w.leaf("server", &d.server);
            w.leaf("outcome", d.outcome.as_str());
            w.leaf("tables", &d.tables.to_string());
            w.leaf("rows", &d.rows.to_string());
            w.leaf("bytes", &d.bytes.to_string());
            w.leaf("verified", if d.verified { "true" } else { "false" });
            if let Some(c) = &d.catch_up {
                w.leaf("compared-blocks", &c.compared_blocks.to_string());
                w.leaf("copied-blocks", &c.copied_blocks.to_string());
                w.leaf("copied-rows", &c.copied_rows.to_string());
            }
            if let Some(e) = &d.error {
                w.leaf("error", e);
            }
            w.close("database");
        }
        for warning in &o.warnings {
            w.leaf("warning", warning);
        }
        for error in &o.errors {
            w.leaf("error", error);
        }
        w.close("object");
    }
    for error in &report.errors {
        w.leaf("error", error);
    }
    w.close("report");
}

/// A minimal XML writer: elements and escaped text, optionally indented.
struct Writer {
    out: Vec<u8>,
    pretty: bool,
    depth: usize,
}

impl Writer {
    fn new(pretty: bool) -> Self {
        Writer {
            out: Vec::with_capacity(256),
            pretty,
            depth: 0,
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn newline(&mut self) {
        if self.pretty {
            self.out.push(b'\n');
        }
    }

    fn indent(&mut self) {
        if self.pretty {
            self.out.extend(std::iter::repeat_n(b' ', self.depth * 2));
        }
    }

    fn open_with_version(&mut self, version: &str) {
        self.raw("<packet version=\"");
        self.text(version);
        self.raw("\">");
        self.newline();
        self.depth += 1;
    }

    fn open(&mut self, name: &str) {
        self.indent();
        self.raw("<");
        self.raw(name);
        self.raw(">");
        self.newline();
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        self.raw("</");
        self.raw(name);
        self.raw(">");
        self.newline();
    }

    fn empty(&mut self, name: &str) {
        self.indent();
        self.raw("<");
        self.raw(name);
        self.raw("/>");
        self.newline();
    }

    fn leaf(&mut self, name: &str, value: &str) {
        self.indent();
        self.raw("<");
        self.raw(name);
        self.raw(">");
        self.text(value);
        self.raw("</");
        self.raw(name);
        self.raw(">");
        self.newline();
    }

    /// Escaped character data; characters XML 1.0 cannot carry become U+FFFD.
    fn text(&mut self, value: &str) {
        for c in value.chars() {
            match c {
                '&' => self.raw("&amp;"),
                '<' => self.raw("&lt;"),
                '>' => self.raw("&gt;"),
                '"' => self.raw("&quot;"),
                '\r' => self.raw("&#13;"),
                c if is_xml_char(c) => {
                    let mut buf = [0u8; 4];
                    self.out
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => self.raw("\u{FFFD}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::status::{ObjectKind, ObjectRef, StatusError};
    use crate::rpc::code::Code;

    fn xml(p: &ResponsePacket, pretty: bool) -> String {
        String::from_utf8(p.to_xml(pretty)).expect("writer emits UTF-8")
    }

    #[test]
    fn writes_system_errors() {
        let p = ResponsePacket::system("1.6.9.1", RpcError::new(Code::Parse, "bad <x> & \u{1}"));
        assert_eq!(
            xml(&p, false),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"1.6.9.1\"><system><status>error</status>\
             <errcode>1014</errcode><errtext>bad &lt;x&gt; &amp; \u{FFFD}</errtext></system></packet>"
        );
    }

    #[test]
    fn writes_operations_in_order_and_pretty() {
        let p = ResponsePacket {
            version: "1.4.0.0".into(),
            body: ResponseBody::Operators(vec![vec![
                OperationResult::Start(Ok("7".into())),
                OperationResult::GetStatus(Ok(MigrationStatus::Finished {
                    errors: vec![StatusError {
                        object: Some(ObjectRef {
                            kind: ObjectKind::Domain,
                            name: "a.example".into(),
                        }),
                        messages: vec!["m1".into(), "m2".into()],
                    }],
                })),
                OperationResult::Finish(Err(RpcError::new(Code::NotFound, "no"))),
            ]]),
        };
        assert_eq!(
            xml(&p, true),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<packet version=\"1.4.0.0\">\n  <migration>\n    <start>\n      <result>\n        <status>ok</status>\n        <migration_id>7</migration_id>\n      </result>\n    </start>\n    <get_status>\n      <result>\n        <status>ok</status>\n        <finished>\n          <error>\n            <object>\n              <type>domain</type>\n              <name>a.example</name>\n            </object>\n            <message>m1</message>\n            <message>m2</message>\n          </error>\n        </finished>\n      </result>\n    </get_status>\n    <finish>\n      <result>\n        <status>error</status>\n        <errcode>1013</errcode>\n        <errtext>no</errtext>\n      </result>\n    </finish>\n  </migration>\n</packet>\n"
        );
    }
}
