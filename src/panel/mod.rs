//! The panel database (PANEL.md): discovering where a source keeps it, and
//! reading a source's accounts by column name, for exactly the selected
//! objects; the destination's schema and its upgrades; and writing
//! migrated accounts into a destination's panel.

pub mod catalog;
pub mod credentials;
pub mod deploy;
pub mod destination;
pub mod discover;
pub mod psa_conf;
pub mod records;
pub mod schema;
pub mod source;

/// The panel schema of PANEL.md (`schemas/panel.sql`), idempotent.
pub const SCHEMA_SQL: &str = include_str!("../../schemas/panel.sql");

/// The session of every connection to a panel database, source or
/// destination, whatever the server's globals: utf8mb4; UTC, so that a
/// TIMESTAMP read on one server is written as the same instant on the
/// other; and hostmig's own SQL mode (strict, so nothing is cut or
/// replaced silently; no ANSI quotes, the usual backslash escapes).
pub const SESSION: &str = "SET NAMES utf8mb4, time_zone = '+00:00', \
     SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'";

/// A connection to a panel database, in `SESSION`.
pub async fn connect(
    opts: impl Into<mysql_async::Opts>,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::new(opts.into()).await?;
    conn.query_drop(SESSION).await?;
    Ok(conn)
}

/// A connection to the panel database at `url`, in `SESSION`.
pub async fn connect_url(url: &str) -> Result<mysql_async::Conn, mysql_async::Error> {
    connect(mysql_async::Opts::from_url(url)?).await
}

/// What went wrong with a panel database, and on which side: reading the
/// source's or writing the destination's. No message ever quotes the value
/// of a password column.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("{path} on the source is not usable: {reason}")]
    BadFile { path: String, reason: String },
    #[error(
        "reading the source's panel database failed ({what}): {}",
        crate::db::server_text(source)
    )]
    Source {
        what: String,
        source: mysql_async::Error,
    },
    #[error("reading the source: the source's panel database lacks {what}; is this a Plesk-style server?")]
    SourceSchema { what: String },
    #[error("reading the source: table {table}, column {column} of {object} {problem}; correct it on the source and start again")]
    SourceValue {
        table: String,
        column: String,
        object: String,
        problem: String,
    },
    #[error(
        "writing the destination's panel database failed ({what}): {}",
        crate::db::server_text(source)
    )]
    Destination {
        what: String,
        source: mysql_async::Error,
    },
    /// A source value the destination's schema cannot hold.
    #[error("writing the destination: {object}: table {table}, column {column}: {problem}")]
    Value {
        table: String,
        column: String,
        object: String,
        problem: String,
    },
    #[error("writing the destination: {0}")]
    DestinationState(String),
    #[error("the destination's panel schema has version {found}, newer than this hostmig ({supported}); run the newer hostmig, or point destination.panel_db at another database")]
    SchemaTooNew { found: u32, supported: u32 },
}

/// A failed statement on the destination's panel, with what it was doing.
pub(crate) fn on_destination(what: &str) -> impl FnOnce(mysql_async::Error) -> PanelError + '_ {
    move |source| PanelError::Destination {
        what: what.to_owned(),
        source,
    }
}
