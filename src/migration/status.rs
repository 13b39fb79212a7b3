//! What `get_status` reports about one migration (PROTOCOL.md §3).

use serde::{Deserialize, Serialize};

/// The status of a migration, as the status board holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MigrationStatus {
    /// Queued or running: `completed` of `total` work steps are done.
    InProgress {
        total: u64,
        completed: u64,
        description: String,
    },
    /// Ended; success when `errors` is empty.
    Finished { errors: Vec<StatusError> },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
