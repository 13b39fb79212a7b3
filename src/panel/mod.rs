//! The panel database (PANEL.md): discovering where a source keeps it, and
//! reading a source's accounts by column name, for exactly the selected
//! objects. Writing the destination's panel arrives with the deploy step.

pub mod discover;
pub mod psa_conf;
pub mod source;

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
