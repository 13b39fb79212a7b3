//! The panel database (PANEL.md): discovering where a source keeps it, and
//! reading a source's accounts by column name, for exactly the selected
//! objects; and writing migrated accounts into a destination's panel.

pub mod credentials;
pub mod deploy;
pub mod destination;
pub mod discover;
pub mod psa_conf;
pub mod records;
pub mod source;

/// The panel schema of PANEL.md (`schemas/panel.sql`), idempotent.
pub const SCHEMA_SQL: &str = include_str!("../../schemas/panel.sql");

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("{path} on the source is not usable: {reason}")]
    BadFile { path: String, reason: String },
    #[error("the source's panel database could not be read: {0}")]
    Sql(#[from] mysql_async::Error),
    #[error("the source's panel database is missing {what}; is this a Plesk-style server?")]
    Schema { what: String },
}
