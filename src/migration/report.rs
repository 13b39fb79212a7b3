//! A migration's report (PROTOCOL.md `get_report`): per client and domain
//! what was copied (each tree's files and bytes, each database's tables
//! and rows), verified and deployed, its outcome, its warnings (what stayed
//! behind: PANEL.md "Not migrated yet", columns an older source lacks) and
//! its errors. Made when the migration is admitted, kept up to date as it
//! goes, and kept in the journal: it survives `finish` and restarts.

use actix::Addr;
use serde::{Deserialize, Serialize};

use super::status::ObjectKind;
use crate::journal::{self, Journal};

/// Writes a report into the journal (answered later; a failure is logged).
pub fn save_report(journal: &Addr<Journal>, report: &Report) {
    match serde_json::to_string(report) {
        Ok(text) => journal.do_send(journal::SaveReport {
            migration_id: report.migration_id,
            report: text,
        }),
        Err(e) => {
            tracing::error!(migration_id = report.migration_id, error = %e, "cannot write the migration's report")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub migration_id: u64,
    /// The source as the packet wrote it.
    pub source: String,
    pub outcome: Outcome,
    pub objects: Vec<ObjectReport>,
    /// Errors not tied to one object.
    pub errors: Vec<String>,
}

/// How the migration as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Queued,
    Running,
    /// Every object migrated and verified.
    Success,
    /// It ended with errors.
    Failed,
    /// Stopped by `finish`.
    Stopped,
    /// hostmig stopped while it ran.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Running => "running",
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReport {
    pub kind: ObjectKind,
    pub name: String,
    /// A domain's owner on the destination.
    pub owner: Option<String>,
    pub outcome: ObjectOutcome,
    pub trees: Vec<TreeEntry>,
    pub databases: Vec<DatabaseEntry>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectOutcome {
    Pending,
    /// Its records are on the destination.
    Deployed,
    Failed,
    /// Not migrated (stopped, or its client failed).
    NotMigrated,
}

impl ObjectOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOutcome::Pending => "pending",
            ObjectOutcome::Deployed => "deployed",
            ObjectOutcome::Failed => "failed",
            ObjectOutcome::NotMigrated => "not-migrated",
        }
    }
}

/// How one tree or database copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyOutcome {
    /// Copied and verified.
    Copied,
    /// The source has no such tree.
    Absent,
    Failed,
    Stopped,
}

impl CopyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyOutcome::Copied => "copied",
            CopyOutcome::Absent => "absent",
            CopyOutcome::Failed => "failed",
            CopyOutcome::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// `web` or `mail`.
    pub kind: String,
    pub outcome: CopyOutcome,
    /// The source tree: regular files and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// What this run sent.
    pub sent_files: u64,
    pub sent_bytes: u64,
    pub deleted: u64,
    /// Compared with the source, content hashes included.
    pub verified: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    pub name: String,
    /// The target server, `host:port`.
    pub server: String,
    pub outcome: CopyOutcome,
    pub tables: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Every chunk's row count and checksum agreed on both servers.
    pub verified: bool,
    pub error: Option<String>,
    /// A catch-up (resync): blocks of rows compared on both servers,
    /// those that differed and were copied, and the rows copied.
    #[serde(default)]
    pub catch_up: Option<CatchUpCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUpCounts {
    pub compared_blocks: u64,
    pub copied_blocks: u64,
    pub copied_rows: u64,
}

impl ObjectReport {
    pub fn new(kind: ObjectKind, name: &str, owner: Option<&str>) -> Self {
        ObjectReport {
            kind,
            name: name.to_owned(),
            owner: owner.map(str::to_owned),
            outcome: ObjectOutcome::Pending,
            trees: Vec::new(),
            databases: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl Report {
    pub fn new(migration_id: u64, source: &str, objects: Vec<ObjectReport>) -> Self {
        Report {
            migration_id,
            source: source.to_owned(),
            outcome: Outcome::Queued,
            objects,
            errors: Vec::new(),
        }
    }

    /// The object of that kind and name (added when the plan did not name it).
    /// The second run after a restart does these objects again: what the
    /// first run wrote of them (not its warnings) is started afresh.
    pub fn redo(&mut self, objects: &[(ObjectKind, String)]) {
        for o in &mut self.objects {
            if objects.iter().any(|(k, n)| *k == o.kind && *n == o.name) {
                o.outcome = ObjectOutcome::Pending;
                o.trees.clear();
                o.databases.clear();
                o.errors.clear();
            }
        }
    }

    pub fn object(&mut self, kind: ObjectKind, name: &str) -> &mut ObjectReport {
        let at = match self
            .objects
            .iter()
            .position(|o| o.kind == kind && o.name == name)
        {
            Some(at) => at,
            None => {
                self.objects.push(ObjectReport::new(kind, name, None));
                self.objects.len() - 1
            }
        };
        &mut self.objects[at]
    }

    /// The migration ended (`outcome`), with these general errors; what
    /// was still pending was not migrated, for `why`.
    pub fn end(&mut self, outcome: Outcome, errors: Vec<String>, why: &str) {
        self.outcome = outcome;
        self.errors.extend(errors);
        for o in &mut self.objects {
            if o.outcome == ObjectOutcome::Pending {
                o.outcome = ObjectOutcome::NotMigrated;
                o.errors.push(why.to_owned());
            }
        }
        crate::observe::ended(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_leaves_nothing_pending_and_the_report_round_trips() {
        let mut r = Report::new(
            3,
            "192.0.2.7",
            vec![
                ObjectReport::new(ObjectKind::Client, "jdoe", None),
                ObjectReport::new(ObjectKind::Domain, "a.example", Some("jdoe")),
            ],
        );
        r.object(ObjectKind::Client, "jdoe").outcome = ObjectOutcome::Deployed;
        r.object(ObjectKind::Domain, "a.example")
            .warnings
            .push("1 web user stayed behind".into());
        r.end(Outcome::Stopped, Vec::new(), "stopped by finish");
        assert_eq!(r.objects[0].outcome, ObjectOutcome::Deployed);
        assert_eq!(r.objects[1].outcome, ObjectOutcome::NotMigrated);
        assert_eq!(r.objects[1].errors, ["stopped by finish"]);
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("\"not-migrated\""), "{json}");
        assert_eq!(serde_json::from_str::<Report>(&json).expect("back"), r);
    }
}
