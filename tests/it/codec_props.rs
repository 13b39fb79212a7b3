//! Property test of the packet codec: random bytes and mutated valid
//! packets never make it panic, and every answer it leads to is valid
//! against `schemas/agent_output.xsd`. Packets it accepts must be valid
//! against `schemas/agent_input.xsd` too, so codec and schema cannot drift.
//!
//! `HOSTMIG_PROP_CASES` (default 10000) and `HOSTMIG_PROP_SEED` set the run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hostmig::migration::report::{
    CopyOutcome, DatabaseEntry, ObjectOutcome, ObjectReport, Outcome, Report, TreeEntry,
};
use hostmig::migration::request;
use hostmig::migration::status::ObjectKind;
use hostmig::mounts::FsInfo;
use hostmig::rpc::code::{Code, RpcError};
use hostmig::rpc::packet::{self, Operation, Operator, RequestPacket};
use hostmig::rpc::response::{Listed, LogPage, OperationResult, ResponseBody, ResponsePacket};
use hostmig::rpc::xml::{self, Element};

const SEEDS: &[&str] = &[
    "<packet version=\"1.6.3.0\"><migration><check/><get_fs/><get_status><migration_id>12</migration_id></get_status></migration></packet>",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet><request-settings><setting><name>a</name><value>b</value></setting></request-settings><migration><finish><migration_id>3</migration_id></finish><resync><migration_id>4</migration_id><password>p</password></resync></migration><migration><check/></migration></packet>",
    "<packet version=\"1.4.0.0\"><migration><start><host>192.0.2.10:2222</host><login>root</login><password>s3cret</password><destination-host-directory/><content-transport>rsync</content-transport><selected-objects><migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name><ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip><domain><name>jdoe.example</name><ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip><db-server><old><host>localhost</host><port>3306</port><type>mysql</type></old><new><host>localhost</host><port>3306</port><type>mysql</type></new></db-server></domain></client></migrate-clients></selected-objects></start></migration></packet>",
    "<packet version=\"1.6.9.1\"><migration><start><host>src.example</host><login>root</login><password></password><destination-host-directory>/var/dumps</destination-host-directory><system-type>unix</system-type><only-hosting/><selected-objects><migrate-webspaces><target-owner>admin</target-owner><webspace><name>a.example</name></webspace></migrate-webspaces><migrate-domains><target-owner>jdoe</target-owner><domain><name>b.example</name><ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.5</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip></domain></migrate-domains></selected-objects></start></migration></packet>",
    "<packet><migration><start><host>[::1]</host><login>root</login><password>x</password><destination-host-directory/><only-mail/><selected-objects><migrate-resellers><reseller><name>r</name><customer><name>c</name><webspace><name>w.example</name></webspace></customer><domain><name>d.example</name></domain></reseller></migrate-resellers></selected-objects></start></migration></packet>",
];

const TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "&",
    "&amp;",
    "&#0;",
    "&#x41;",
    "&lt;",
    "\"",
    "'",
    "=",
    " ",
    "\n",
    "\t",
    "<!DOCTYPE p [<!ENTITY e \"x\">]>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?pi?>",
    "\u{0}",
    "\u{1}",
    "é",
    "😀",
    "\u{FFFE}",
    "<check/>",
    "<get_fs/>",
    "<migration>",
    "</migration>",
    "<host>",
    "</host>",
    "<name>x</name>",
    "<ip-type>shared</ip-type>",
    "<ip-address>1.2.3.4</ip-address>",
    "<migration_id>1</migration_id>",
    "<only-mail/>",
    "<webspace>",
    "<domain>",
    "version=\"1.5.0.0\"",
    "<packet>",
    "</packet>",
    "<x a='1'>",
    "999.1.1.1",
    "<port>0</port>",
    "<port>65536</port>",
    "<type>oracle</type>",
    "<system-type>windows</system-type>",
];

fn mutate(rng: &mut fastrand::Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = out.len();
        let at = if len == 0 { 0 } else { rng.usize(0..=len) };
        match rng.u8(0..8) {
            0 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let end = (at + rng.usize(1..40)).min(len);
                out.drain(at.min(end)..end);
            }
            2 if len > 0 => {
                let start = rng.usize(0..len);
                let end = (start + rng.usize(1..80)).min(len);
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            3 => out.truncate(at),
            4 => {
                out.insert(at, rng.u8(..));
            }
            5 if len > 1 => {
                // Swap two elements' worth of text: children out of order.
                let a = rng.usize(0..len);
                let b = rng.usize(0..len);
                let (a, b) = (a.min(b), a.max(b));
                let piece_len = rng.usize(1..60).min(len - b);
                let first = out[a..(a + piece_len).min(b)].to_vec();
                let second = out[b..b + piece_len].to_vec();
                out.splice(b..b + piece_len, first);
                out.splice(a..(a + piece_len).min(b), second);
            }
            _ => {
                let token = TOKENS[rng.usize(0..TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
        }
    }
    out
}

/// Values a mutated leaf may take: on both sides of every simple type's edge.
const VALUES: &[&str] = &[
    "",
    " ",
    "x",
    "shared",
    "exclusive",
    " shared ",
    "mysql",
    "oracle",
    "postgresql",
    "1.2.3.4",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3",
    "65535",
    "0",
    "65536",
    "+22",
    "0022",
    "-1",
    "a b",
    "[::1]",
    "[::1]:22",
    "[::1]x",
    "host:99999",
    "host:0",
    "host:22",
    "é.example",
    "xn--bcher-kva.example",
    "rsync",
    "archive",
    "unix",
    "windows",
    "1",
    "abc",
    "\t5\n",
    "1.6.3.0",
    "a/b",
    "Ⅻ",
    "٣",
    "_a",
    "a.b-c",
];

const NAMES: &[&str] = &[
    "check",
    "get_fs",
    "start",
    "get_status",
    "finish",
    "resync",
    "resume",
    "get_report",
    "list",
    "get_log",
    "from",
    "limit",
    "migration_id",
    "password",
    "host",
    "login",
    "destination-host-directory",
    "system-type",
    "content-transport",
    "only-hosting",
    "only-mail",
    "selected-objects",
    "migrate-domains",
    "migrate-webspaces",
    "migrate-clients",
    "migrate-customers",
    "migrate-resellers",
    "target-owner",
    "domain",
    "webspace",
    "client",
    "customer",
    "reseller",
    "name",
    "ip",
    "old",
    "new",
    "ip-type",
    "ip-address",
    "db-server",
    "port",
    "type",
    "migration",
    "bogus",
];

/// Edge values for a leaf, by its name; other leaves draw from [`VALUES`].
fn edge_values(name: &str) -> Vec<String> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match name {
        "port" => owned(&[
            "0", "1", "65535", "65536", "+22", "0022", "-1", "x", "", " 22 ", "2 2",
        ]),
        "ip-address" => owned(&[
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            " 1.2.3.4 ",
            "::1",
            "",
        ]),
        "ip-type" | "type" | "system-type" | "content-transport" => owned(&[
            "shared",
            "exclusive",
            "mysql",
            "mssql",
            "postgresql",
            "oracle",
            "unix",
            "windows",
            "rsync",
            "archive",
            " rsync ",
            "Rsync",
            "",
        ]),
        "host" => owned(&[
            "h",
            "h:1",
            "h:65535",
            "h:65536",
            "h:0",
            "h:",
            "[::1]",
            "[::1]:22",
            "[::1]x",
            "[zz]",
            "é.example",
            "a_b.c-d",
            "a b",
            "a/b",
            "",
        ]),
        "migration_id" | "name" | "login" | "target-owner" => {
            let mut v = owned(&["1", "a b", " a ", ""]);
            v.extend([
                "x".repeat(64),
                "x".repeat(65),
                "x".repeat(255),
                "x".repeat(256),
            ]);
            v
        }
        _ => owned(VALUES),
    }
}

/// Mutates a packet as a tree: elements removed, repeated, swapped,
/// renamed, nested, or given other values; the result is well-formed XML.
fn mutate_tree(rng: &mut fastrand::Rng, seed: &str) -> String {
    let mut root = xml::parse(seed.as_bytes()).expect("seed packets are well-formed");
    for _ in 0..rng.usize(1..=3) {
        let count = count_nodes(&root);
        let target = rng.usize(1..count.max(2));
        let op = rng.u8(0..12);
        let pick = rng.usize(0..1000);
        let name = NAMES[rng.usize(0..NAMES.len())];
        edit(
            &mut root,
            &mut { target },
            &mut |parent: &mut Element, i: usize| match op {
                0 => {
                    parent.children.remove(i);
                }
                1 => {
                    let copy = parent.children[i].clone();
                    parent.children.insert(i, copy);
                }
                2 if i + 1 < parent.children.len() => parent.children.swap(i, i + 1),
                3 => parent.children[i].name = name.to_owned(),
                4 if i + 1 < parent.children.len() => {
                    let moved = parent.children.remove(i);
                    parent.children[i].children.insert(0, moved);
                }
                5 => parent.children[i].attrs.push(("a".into(), "1".into())),
                6 => parent.children[i].children.push(Element {
                    name: name.to_owned(),
                    attrs: Vec::new(),
                    children: Vec::new(),
                    text: String::new(),
                }),
                _ => {
                    let el = &mut parent.children[i];
                    let values = edge_values(&el.name);
                    el.text = values[pick % values.len()].clone();
                }
            },
        );
    }
    if rng.u8(0..10) == 0 {
        root.attrs = vec![("version".into(), VALUES[rng.usize(0..VALUES.len())].into())];
    }
    let mut out = String::new();
    write_tree(&root, &mut out);
    out
}

fn count_nodes(el: &Element) -> usize {
    1 + el.children.iter().map(count_nodes).sum::<usize>()
}

/// Calls `f(parent, index)` for the `target`-th node in document order.
fn edit(el: &mut Element, target: &mut usize, f: &mut dyn FnMut(&mut Element, usize)) -> bool {
    for i in 0..el.children.len() {
        *target -= 1;
        if *target == 0 {
            f(el, i);
            return true;
        }
        if edit(&mut el.children[i], target, f) {
            return true;
        }
    }
    false
}

fn write_tree(el: &Element, out: &mut String) {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        out.push_str(&format!(" {k}=\"{}\"", esc(v)));
    }
    if el.children.is_empty() && el.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    out.push_str(&esc(&el.text));
    for child in &el.children {
        write_tree(child, out);
    }
    out.push_str(&format!("</{}>", el.name));
}

/// What the server answers, without the server: packet refusals as system
/// errors, operations with the answers an engine-less hostmig gives.
fn respond(decoded: &Result<RequestPacket, packet::PacketError>) -> ResponsePacket {
    match decoded {
        Err(refusal) => ResponsePacket::system(&refusal.version, refusal.error.clone()),
        Ok(packet) => ResponsePacket {
            version: packet.version.clone(),
            body: ResponseBody::Operators(
                packet
                    .operators
                    .iter()
                    .map(|Operator::Migration(ops)| ops.iter().map(answer).collect())
                    .collect(),
            ),
        },
    }
}

fn answer(op: &Operation) -> OperationResult {
    let unknown =
        |id: &str| RpcError::new(Code::NotFound, format!("migration {id} does not exist"));
    match op {
        Operation::Check => OperationResult::Check(Err(RpcError::new(Code::NotReady, "not ready"))),
        Operation::GetFs => OperationResult::GetFs(Ok(vec![FsInfo {
            mountpoint: "/".into(),
            device: "/dev/vda".into(),
            read_only: false,
            size: 100,
            free: 50,
            fs_type: "ext4".into(),
        }])),
        Operation::Start(req) => OperationResult::Start(
            request::check(req)
                .map_err(RpcError::from)
                .and_then(|_| Err(RpcError::new(Code::NotReady, "no engine"))),
        ),
        Operation::GetStatus(id) => OperationResult::GetStatus(Err(unknown(&id.0))),
        Operation::Finish(id) => OperationResult::Finish(Err(unknown(&id.0))),
        Operation::Resync { id, .. } => OperationResult::Resync(Err(unknown(&id.0))),
        Operation::Resume { id, .. } => OperationResult::Resume(Ok(id.0.clone())),
        Operation::List => OperationResult::List(Ok(vec![Listed {
            id: 3,
            state: "interrupted",
            source: "192.0.2.7:22".into(),
            started: "2026-12-02T16:22:20.123Z".into(),
            ended: None,
            objects: vec![(ObjectKind::Client, "jdoe".into())],
            status: None,
        }])),
        Operation::GetLog { id, from, .. } => OperationResult::GetLog(Ok(LogPage {
            from: *from,
            lines: vec![id.0.clone()],
        })),
        Operation::GetReport(id) if id.0.len() % 2 == 0 => {
            OperationResult::GetReport(Err(unknown(&id.0)))
        }
        Operation::GetReport(id) => OperationResult::GetReport(Ok(sample_report(&id.0))),
    }
}

/// A report with every part, whatever strings it is given.
fn sample_report(text: &str) -> Report {
    let mut domain = ObjectReport::new(ObjectKind::Domain, text, Some(text));
    domain.outcome = ObjectOutcome::Failed;
    domain.trees.push(TreeEntry {
        kind: "web".into(),
        outcome: CopyOutcome::Copied,
        files: 3,
        bytes: 1 << 40,
        sent_files: 1,
        sent_bytes: 10,
        deleted: 0,
        verified: true,
        error: Some(text.into()),
    });
    domain.databases.push(DatabaseEntry {
        name: text.into(),
        server: "localhost:3306".into(),
        outcome: CopyOutcome::Stopped,
        tables: 1,
        rows: u64::MAX,
        bytes: 0,
        verified: false,
        error: None,
        catch_up: Some(hostmig::migration::report::CatchUpCounts {
            compared_blocks: u64::MAX,
            copied_blocks: 0,
            copied_rows: 1,
        }),
    });
    domain.warnings.push(format!("{text} stayed behind"));
    domain.errors.push(text.into());
    let mut report = Report::new(
        7,
        text,
        vec![ObjectReport::new(ObjectKind::Client, text, None), domain],
    );
    report.end(Outcome::Failed, vec![text.into()], text);
    report
}

/// Validates files in batches; answers the files xmllint refused.
fn invalid_files(files: &[PathBuf], schema: &str) -> Vec<(PathBuf, String)> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(schema);
    let mut bad = Vec::new();
    for batch in files.chunks(200) {
        let out = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(&schema)
            .args(batch)
            .output()
            .unwrap_or_else(|e| panic!("xmllint is needed ({e}): apt-get install libxml2-utils"));
        if out.status.success() {
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        for file in batch {
            let name = file.display().to_string();
            if stderr
                .lines()
                .any(|l| l.starts_with(&name) && !l.ends_with(" validates"))
            {
                let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&name)).collect();
                bad.push((file.clone(), lines.join("\n")));
            }
        }
    }
    bad
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The files xmllint accepts.
fn valid_files(files: &[PathBuf], schema: &str) -> Vec<PathBuf> {
    let refused: HashSet<PathBuf> = invalid_files(files, schema)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    files
        .iter()
        .filter(|f| !refused.contains(*f))
        .cloned()
        .collect()
}

#[test]
fn codec_never_panics_and_every_answer_is_schema_valid() {
    let cases: usize = std::env::var("HOSTMIG_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("HOSTMIG_PROP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = HashSet::new();
    let mut responses = Vec::new();
    let mut accepted_requests = Vec::new();
    let mut refused_requests = Vec::new();
    let (mut accepted, mut refused) = (0usize, 0usize);
    for case in 0..cases {
        let seed_packet = SEEDS[rng.usize(0..SEEDS.len())];
        let (input, well_formed): (Vec<u8>, bool) = match rng.u8(0..8) {
            0 => ((0..rng.usize(0..600)).map(|_| rng.u8(..)).collect(), false),
            1..=3 => (mutate(&mut rng, seed_packet.as_bytes()), false),
            _ => (mutate_tree(&mut rng, seed_packet).into_bytes(), true),
        };
        let decoded = std::panic::catch_unwind(|| packet::decode(&input)).unwrap_or_else(|_| {
            panic!(
                "decode panicked on case {case} (seed {seed}): {:?}",
                String::from_utf8_lossy(&input)
            )
        });
        match &decoded {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        let xml = respond(&decoded).to_xml(case % 2 == 0);
        if seen.insert(xml.clone()) {
            let path = dir.path().join(format!("response-{case}.xml"));
            std::fs::write(&path, &xml).expect("write");
            responses.push(path);
        }
        if decoded.is_ok() && seen.insert(input.clone()) {
            let path = dir.path().join(format!("request-{case}.xml"));
            std::fs::write(&path, &input).expect("write");
            accepted_requests.push(path);
        }
        // Well-formed packets the codec refuses for their content (1014)
        // must be refused by the schema too.
        let content_refusal = matches!(&decoded, Err(e) if e.error.code == Code::Parse);
        if well_formed && content_refusal && seen.insert(input.clone()) {
            let path = dir.path().join(format!("refused-{case}.xml"));
            std::fs::write(&path, &input).expect("write");
            refused_requests.push(path);
        }
    }
    let bad_responses = invalid_files(&responses, "agent_output.xsd");
    assert!(
        bad_responses.is_empty(),
        "responses refused by agent_output.xsd: {bad_responses:#?}"
    );
    let bad_requests: Vec<(String, String)> = invalid_files(&accepted_requests, "agent_input.xsd")
        .into_iter()
        .map(|(p, why)| (read_lossy(&p), why))
        .collect();
    assert!(
        bad_requests.is_empty(),
        "packets the codec accepts but agent_input.xsd refuses: {bad_requests:#?}"
    );
    let schema_accepts: Vec<(String, String)> = valid_files(&refused_requests, "agent_input.xsd")
        .into_iter()
        .map(|p| {
            let why = packet::decode(read_lossy(&p).as_bytes())
                .err()
                .map(|e| e.error.text)
                .unwrap_or_default();
            (read_lossy(&p), why)
        })
        .collect();
    assert!(
        schema_accepts.is_empty(),
        "packets the codec refuses with 1014 but agent_input.xsd accepts: {schema_accepts:#?}"
    );
    assert!(
        refused > 0 && accepted > 0,
        "the generator must reach both outcomes"
    );
    eprintln!(
        "codec property run: {cases} cases (seed {seed}): {accepted} accepted, {refused} refused; \
         {} distinct responses, {} distinct accepted and {} distinct refused requests checked against the schemas",
        responses.len(),
        accepted_requests.len(),
        refused_requests.len()
    );
}
