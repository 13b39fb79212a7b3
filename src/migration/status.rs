//! What `get_status` reports about one migration (PROTOCOL.md §3): typed,
//! as the Migration aggregates its sub-actors' progress, and the one place
//! that renders it as the protocol's `description` text.

use serde::{Deserialize, Serialize};

/// The status of a migration, as the status board holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MigrationStatus {
    /// Queued or running.
    InProgress(Progress),
    /// Ended; success when `errors` is empty.
    Finished { errors: Vec<StatusError> },
}

/// A queued or running migration: `completed` of `total` work steps are
/// done (plan once, then one per tree, database and deploy), and what is
/// happening now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: u64,
    pub completed: u64,
    pub stage: Stage,
    /// The trees and databases being copied now, in the order they began.
    pub items: Vec<ItemProgress>,
    /// A bandwidth cap that made the copy wait in the last moments.
    #[serde(default)]
    pub held_back: Option<crate::caps::Cap>,
    /// Bytes of every tree and database of the migration: done, and the
    /// total known ahead (measured at start; each copy's own total once it
    /// listed its source).
    #[serde(default)]
    pub bytes: Totals,
}

/// Bytes done of a total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub done: u64,
    pub total: u64,
}

impl Totals {
    /// A total known ahead, nothing done yet.
    pub fn ahead(total: u64) -> Totals {
        Totals { done: 0, total }
    }
}

impl std::iter::Sum for Totals {
    fn sum<I: Iterator<Item = Totals>>(iter: I) -> Totals {
        iter.fold(Totals::default(), |sum, t| Totals {
            done: sum.done + t.done,
            total: sum.total + t.total,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Admitted; its work is about to begin.
    Planned,
    /// Waiting for one of `slots` migration slots: `position` of `waiting`.
    Queued {
        position: usize,
        waiting: usize,
        slots: usize,
    },
    /// Copying content and databases (`items` say which).
    Copying,
    /// Writing an object's records into the destination panel.
    Deploying { kind: ObjectKind, name: String },
    /// A restart of hostmig interrupted it; `why` says what it waits for.
    Interrupted { why: String },
}

/// One tree or database being copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemProgress {
    pub item: Item,
    pub phase: ItemPhase,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub rows_done: u64,
    pub rows_total: u64,
    /// Bytes per second since the copy began.
    pub rate: u64,
    /// Set while its work waits to be tried again after a fault.
    #[serde(default)]
    pub retrying: Option<crate::retry::Retrying>,
}

/// What is being copied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    WebContent { domain: String },
    MailContent { domain: String },
    Database { domain: String, name: String },
}

impl Item {
    /// "web content of a.example", "database wp of a.example".
    pub fn label(&self) -> String {
        match self {
            Item::WebContent { domain } => format!("web content of {domain}"),
            Item::MailContent { domain } => format!("mail content of {domain}"),
            Item::Database { domain, name } => format!("database {name} of {domain}"),
        }
    }

    pub fn domain(&self) -> &str {
        match self {
            Item::WebContent { domain }
            | Item::MailContent { domain }
            | Item::Database { domain, .. } => domain,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ItemPhase {
    /// Listing the source's tree, or reading a database's tables.
    #[default]
    Listing,
    /// Receiving into staging (archive) or rows into the target.
    Receiving,
    /// Writing into place.
    Copying,
    Verifying,
}

impl Progress {
    /// The protocol's `description`: what is happening, with the current
    /// objects and bytes, files or rows done and to do.
    pub fn description(&self) -> String {
        match &self.stage {
            Stage::Planned => "planned; starting".to_owned(),
            Stage::Queued {
                position,
                waiting,
                slots,
            } => format!(
                "queued: {position} of {waiting} waiting for one of the {slots} migration slots"
            ),
            Stage::Deploying { kind, name } => format!("deploying {} {name}", kind.as_str()),
            Stage::Interrupted { why } => format!("interrupted: {why}"),
            Stage::Copying => {
                let mut text = if self.items.is_empty() {
                    "copying".to_owned()
                } else {
                    self.items
                        .iter()
                        .map(ItemProgress::description)
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                if let Some(cap) = &self.held_back {
                    text.push_str(&format!("; held back by {}", cap.describe()));
                }
                text
            }
        }
    }
}

impl ItemProgress {
    pub fn new(item: Item) -> Self {
        ItemProgress {
            item,
            phase: ItemPhase::Listing,
            bytes_done: 0,
            bytes_total: 0,
            files_done: 0,
            files_total: 0,
            rows_done: 0,
            rows_total: 0,
            rate: 0,
            retrying: None,
        }
    }

    fn description(&self) -> String {
        let label = self.item.label();
        if let Some(retrying) = &self.retrying {
            return retrying.describe(&format!("copying {label}"));
        }
        if let Item::Database { .. } = self.item {
            return match self.phase {
                ItemPhase::Listing => format!("reading {label} on the source"),
                _ => format!(
                    "copying {label}: {} of ~{} rows, {} of ~{}",
                    self.rows_done,
                    self.rows_total.max(self.rows_done),
                    mib(self.bytes_done),
                    mib(self.bytes_total.max(self.bytes_done))
                ),
            };
        }
        match self.phase {
            ItemPhase::Listing => format!("listing {label} on the source"),
            ItemPhase::Verifying => format!("verifying {label}"),
            ItemPhase::Receiving | ItemPhase::Copying => format!(
                "{} {label}: {} of {}, {} of {} files, {}/s",
                if self.phase == ItemPhase::Receiving {
                    "receiving"
                } else {
                    "copying"
                },
                mib(self.bytes_done),
                mib(self.bytes_total),
                self.files_done,
                self.files_total,
                mib(self.rate)
            ),
        }
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// One error entry of a finished migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusError {
    /// The object it concerns; `None` for a general error.
    pub object: Option<ObjectRef>,
    /// At least one message.
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    Domain,
    Client,
    Database,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Domain => "domain",
            ObjectKind::Client => "client",
            ObjectKind::Database => "database",
        }
    }
}

impl StatusError {
    pub fn general(message: impl Into<String>) -> Self {
        StatusError {
            object: None,
            messages: vec![message.into()],
        }
    }

    pub fn object(kind: ObjectKind, name: &str, message: impl Into<String>) -> Self {
        StatusError {
            object: Some(ObjectRef {
                kind,
                name: name.to_owned(),
            }),
            messages: vec![message.into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(stage: Stage, items: Vec<ItemProgress>) -> String {
        Progress {
            total: 5,
            completed: 2,
            stage,
            items,
            held_back: None,
            bytes: Totals::default(),
        }
        .description()
    }

    #[test]
    fn a_migrations_bytes_add_up_over_its_trees_and_databases() {
        let done = Totals { done: 5, total: 7 };
        let sum: Totals = [done, Totals::ahead(11)].into_iter().sum();
        assert_eq!(sum, Totals { done: 5, total: 18 });
    }

    #[test]
    fn descriptions_name_the_objects_and_what_is_done() {
        assert_eq!(progress(Stage::Planned, vec![]), "planned; starting");
        assert_eq!(
            progress(
                Stage::Queued {
                    position: 1,
                    waiting: 3,
                    slots: 4
                },
                vec![]
            ),
            "queued: 1 of 3 waiting for one of the 4 migration slots"
        );
        assert_eq!(
            progress(
                Stage::Deploying {
                    kind: ObjectKind::Client,
                    name: "jdoe".into()
                },
                vec![]
            ),
            "deploying client jdoe"
        );
        let mut web = ItemProgress::new(Item::WebContent {
            domain: "a.example".into(),
        });
        web.phase = ItemPhase::Copying;
        web.bytes_done = 3 << 20;
        web.bytes_total = 10 << 20;
        web.files_done = 4;
        web.files_total = 9;
        web.rate = 1 << 20;
        let mut db = ItemProgress::new(Item::Database {
            domain: "a.example".into(),
            name: "wp".into(),
        });
        db.phase = ItemPhase::Receiving;
        db.rows_done = 120;
        db.rows_total = 100;
        db.bytes_done = 1 << 20;
        db.bytes_total = 2 << 20;
        let held = Progress {
            total: 3,
            completed: 1,
            stage: Stage::Copying,
            items: vec![],
            held_back: Some(crate::caps::Cap::Global {
                bytes_per_s: 1 << 20,
            }),
            bytes: Totals::default(),
        };
        assert_eq!(
            held.description(),
            "copying; held back by the cap of 1.0 MiB/s on all sources (migrations.max_bytes_per_s)"
        );
        let mut retrying = db.clone();
        retrying.retrying = Some(crate::retry::Retrying {
            attempt: 2,
            of: 5,
            after: "the connection was lost".into(),
        });
        assert_eq!(
            progress(Stage::Copying, vec![retrying]),
            "retrying (2 of 5) after: the connection was lost while copying database wp of a.example"
        );
        // Both of one domain's copies are told, neither hides the other.
        assert_eq!(
            progress(Stage::Copying, vec![web, db]),
            "copying web content of a.example: 3.0 MiB of 10.0 MiB, 4 of 9 files, 1.0 MiB/s; \
             copying database wp of a.example: 120 of ~120 rows, 1.0 MiB of ~2.0 MiB"
        );
    }
}
