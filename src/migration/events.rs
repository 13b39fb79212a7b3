//! A migration's event log, `<state>/migrations/<id>.jsonl`: one JSON line
//! per event (`{"at": ms, "event": {...}}`), appended as the migration
//! goes: its plan, its phases, each object's outcome and each tree's and
//! database's report. No secret is ever written here.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::status::{MigrationStatus, ObjectKind};
use super::summary::PlanSummary;
use crate::config::Config;
use crate::db::DbReport;
use crate::transfer::tree::TreeReport;

/// What happened.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Event<'a> {
    Queued {
        phase: &'static str,
        plan: &'a PlanSummary,
    },
    Running {
        phase: &'static str,
    },
    /// A restart of hostmig interrupted it (`phase` "interrupted"), or its
    /// second run was admitted ("resumed"): what it left out as done.
    Resume {
        phase: &'static str,
        detail: &'a str,
    },
    Finished {
        phase: &'static str,
        status: &'a MigrationStatus,
    },
    Deployed {
        object: Object<'a>,
        deployed: bool,
    },
    /// What the source holds of an object that stayed behind.
    Warning {
        object: Object<'a>,
        warning: &'a str,
    },
    Tree {
        tree: &'a str,
        transport: &'static str,
        report: &'a TreeReport,
    },
    TreeFailed {
        tree: &'a str,
        failed: &'a str,
    },
    Database {
        database: &'a str,
        server: &'a str,
        report: &'a DbReport,
    },
    DatabaseFailed {
        database: &'a str,
        failed: &'a str,
    },
    /// What the copies are compressed with, and why.
    Compression {
        compression: &'a crate::transfer::link::Choice,
    },
    /// A database brought up to date by a catch-up (resync).
    CaughtUp {
        database: &'a str,
        server: &'a str,
        catch_up: &'a crate::db::CatchUpReport,
    },
}

#[derive(Serialize)]
pub struct Object<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
}

impl<'a> Event<'a> {
    pub fn queued(plan: &'a PlanSummary) -> Self {
        Event::Queued {
            phase: "queued",
            plan,
        }
    }

    pub fn running() -> Self {
        Event::Running { phase: "running" }
    }

    pub fn finished(status: &'a MigrationStatus) -> Self {
        Event::Finished {
            phase: "finished",
            status,
        }
    }

    pub fn warning(kind: ObjectKind, name: &'a str, warning: &'a str) -> Self {
        Event::Warning {
            object: Object {
                kind: kind.as_str(),
                name,
            },
            warning,
        }
    }

    pub fn deployed(kind: ObjectKind, name: &'a str, deployed: bool) -> Self {
        Event::Deployed {
            object: Object {
                kind: kind.as_str(),
                name,
            },
            deployed,
        }
    }
}

/// Where a migration's events go.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    pub fn of(config: &Config, id: u64) -> Self {
        EventLog {
            path: config
                .state
                .dir
                .join("migrations")
                .join(format!("{id}.jsonl")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (and counts what it moved in the metrics); a log
    /// that cannot be written is itself logged.
    pub fn write(&self, event: &Event<'_>) {
        crate::observe::saw(event);
        let line = serde_json::json!({
            "at": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            "event": event,
        });
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            })
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the migration event log");
        }
    }

    /// Removes the log (after `finish`).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
