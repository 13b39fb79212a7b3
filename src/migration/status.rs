//! What `get_status` reports about one migration (PROTOCOL.md §3).

/// The status of a migration, as the status board holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    /// The object it concerns; `None` for a general error.
    pub object: Option<ObjectRef>,
    /// At least one message.
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
