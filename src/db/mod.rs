//! Copying one MySQL/MariaDB database between servers (DESIGN.md §2 step
//! 4): a consistent snapshot held by every reading connection, schema
//! exactly as the source has it, rows streamed in parallel by primary-key
//! chunks as size-bounded multi-row INSERTs, each chunk verified by the
//! same checksum SQL on both servers, then views, triggers, routines,
//! events and the database's users with their password hashes and grants.
//!
//! The rows land in a scratch database (`hostmig_<id>_<n>`); the database
//! appears under its real name only once every table arrived and was
//! verified (one `RENAME TABLE` moves them all), so a stopped or failed
//! copy never leaves a half-filled database under the name the site uses.

pub mod catchup;
pub mod copy;
mod loader;
pub mod objects;
mod resume;
pub mod rows;
mod sequences;
mod snapshot;
pub mod users;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use catchup::{catch_up_database, CatchUpReport};
pub use copy::{copy_database, DbJob, DbProgress, DbReport, Recorder};
pub use rows::Checksum;

/// The type of a database server, as configurations, packets and panels
/// name it; only MySQL (and MariaDB) databases are migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Mysql,
    Postgresql,
    Mssql,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Mysql => "mysql",
            DbKind::Postgresql => "postgresql",
            DbKind::Mssql => "mssql",
        }
    }
}

/// Why a database copy did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("stopped")]
    Stopped,
    #[error("the database copy ended unexpectedly")]
    Ended,
    /// A statement failed: `what` says which, and where.
    #[error("{what}: {}", server_text(source))]
    Sql {
        what: String,
        source: mysql_async::Error,
    },
    /// A statement about an account failed; `reason` never quotes the
    /// statement (it may hold a password hash).
    #[error("cannot {what}: {reason}")]
    Account { what: String, reason: String },
    #[error("database \"{name}\" already exists on {server}")]
    Exists { name: String, server: String },
    /// The panel names something its database server does not have.
    #[error("{what} is in the source's panel but not on its database server")]
    NotOnSource { what: String },
    #[error("{what} cannot be read (does the source login have the privileges to see it?)")]
    Unreadable { what: String },
    #[error("a row of table {table} needs a statement of {bytes} bytes, more than max_allowed_packet ({max} bytes) of {server}; raise max_allowed_packet there")]
    RowTooLarge {
        table: String,
        bytes: usize,
        max: usize,
        server: String,
    },
    /// (rows, checksum) on each side.
    #[error("table {table} differs after the copy: the source has {} rows (checksum {}), {server} has {} (checksum {})", on_source.0, on_source.1, on_target.0, on_target.1)]
    Differs {
        table: String,
        on_source: (u64, u64),
        on_target: (u64, u64),
        server: String,
    },
    /// A table holds what cannot be copied exactly; `why` says what, and
    /// what to do.
    #[error("table {table} cannot be copied exactly: {why}")]
    Uncarriable { table: String, why: String },
    /// The server could not hash some rows of a table (see
    /// `rows::Table::checksum`), so the copy cannot be verified.
    #[error("{rows} rows of table {table} cannot be checksummed on {server}, so the copy cannot be verified")]
    Unhashed {
        table: String,
        rows: u64,
        server: String,
    },
    #[error("the load of table {table} ended early")]
    LoadEnded { table: String },
    /// What the copy created could not be recorded in the journal.
    #[error("the journal cannot record it: {0}")]
    Record(String),
}

impl DbError {
    pub(crate) fn sql(what: impl std::fmt::Display, source: mysql_async::Error) -> DbError {
        DbError::Sql {
            what: what.to_string(),
            source,
        }
    }

    /// A fault of a connection rather than of the data: the connection
    /// was lost or ended (KILL, a server restart, a broken tunnel), so the
    /// same work on new connections may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sql { source, .. } => match source {
                mysql_async::Error::Server(s) => {
                    // Connection killed, query interrupted, server
                    // shutting down, gone away, lost during a query.
                    matches!(s.code, 1927 | 1317 | 1053 | 2006 | 2013)
                }
                mysql_async::Error::Url(_) => false,
                _ => source.is_fatal(),
            },
            DbError::LoadEnded { .. } => true,
            _ => false,
        }
    }
}

/// What a database copy creates on a target server, as the journal
/// records it until its domain is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbObjectKind {
    /// The scratch database the rows load into.
    Scratch,
    Database,
    /// An account, named `user@host`.
    User,
}

impl DbObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbObjectKind::Scratch => "scratch",
            DbObjectKind::Database => "database",
            DbObjectKind::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scratch" => Some(DbObjectKind::Scratch),
            "database" => Some(DbObjectKind::Database),
            "user" => Some(DbObjectKind::User),
            _ => None,
        }
    }
}

/// The server's own words for an error, without the statement (which may
/// hold a password hash) that some client errors repeat.
pub fn server_text(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => {
            // Permanent faults say what they are first.
            let kind = match s.code {
                1114 | 1021 => "the database server is out of space: ",
                3 | 1030 if s.message.contains("28") => "the database server is out of space: ",
                1264 | 1292 | 1366 | 1406 => "the destination refused a value: ",
                _ => "",
            };
            format!("{kind}error {}: {}", s.code, s.message)
        }
        other => {
            let text = other.to_string();
            // Driver errors are short; cut anything long enough to carry a query.
            text.chars().take(300).collect()
        }
    }
}

/// `name` quoted as an identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a quoted string literal (backslash escapes, as the sessions
/// hostmig opens never set NO_BACKSLASH_ESCAPES).
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Session settings of every connection that reads rows from a source:
/// raw stored bytes (no charset conversion), UTC, no dropped connection
/// while a consumer is slow, and quoting that SHOW CREATE can be replayed.
pub const SOURCE_SESSION: &str = "SET NAMES binary, time_zone = '+00:00', \
     SESSION net_write_timeout = 2147483, SESSION net_read_timeout = 2147483, \
     SESSION wait_timeout = 2147483, SESSION sql_mode = '', SESSION sql_quote_show_create = 1";

/// Session settings of every connection that writes rows on a target:
/// raw bytes, UTC, zero stays zero in AUTO_INCREMENT columns, values that
/// strict mode refuses (zero dates, the empty ENUM) kept as stored, and no
/// unique or foreign-key checks during the load.
pub const TARGET_SESSION: &str = "SET NAMES binary, time_zone = '+00:00', \
     SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', \
     SESSION foreign_key_checks = 0, SESSION unique_checks = 0, \
     SESSION net_read_timeout = 600, SESSION wait_timeout = 28800";

/// Opens a connection with `setup` run once.
pub async fn connect(opts: &mysql_async::Opts, setup: &str, what: &str) -> Result<Conn, DbError> {
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(|e| DbError::sql(format!("cannot connect to {what}"), e))?;
    conn.query_drop(setup)
        .await
        .map_err(|e| DbError::sql(format!("cannot set up the session on {what}"), e))?;
    Ok(conn)
}

/// Per table of `db` (base tables, system-versioned tables with their
/// history, sequences with their state): the row count and checksum a
/// copy is verified by (`rows::Table::checksum`), over whole tables.
/// Leaves the connection in the session the copy reads in.
pub async fn checksums(
    conn: &mut Conn,
    db: &str,
) -> Result<std::collections::BTreeMap<String, Checksum>, DbError> {
    conn.query_drop(SOURCE_SESSION)
        .await
        .map_err(|e| DbError::sql("cannot set up the session", e))?;
    let mut tables = snapshot::list_tables(conn, db).await?;
    snapshot::read_columns(conn, db, &mut tables).await?;
    let mut out = std::collections::BTreeMap::new();
    for (i, table) in tables.iter().enumerate() {
        let whole = rows::Chunk {
            table: i,
            range: None,
            blocks: None,
        };
        out.insert(
            table.name.clone(),
            loader::checksum(conn, table, db, &whole, "the server").await?,
        );
    }
    Ok(out)
}

/// Whether a database of that name exists on the server.
pub async fn database_exists(conn: &mut Conn, name: &str) -> Result<bool, mysql_async::Error> {
    let found: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await?;
    Ok(found.is_some())
}

/// Whether an account with that user name (any host) exists on the server.
pub async fn user_exists(conn: &mut Conn, login: &str) -> Result<bool, mysql_async::Error> {
    let found: Option<String> = conn
        .exec_first(
            "SELECT User FROM mysql.user WHERE User = ? LIMIT 1",
            (login,),
        )
        .await?;
    Ok(found.is_some())
}

/// Whether the account `user`@`host` exists on the server.
pub async fn user_exists_at(
    conn: &mut Conn,
    user: &str,
    host: &str,
) -> Result<bool, mysql_async::Error> {
    let found: Option<String> = conn
        .exec_first(
            "SELECT User FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await?;
    Ok(found.is_some())
}

/// Drops databases and accounts (`user@host`, the host after the last `@`).
pub async fn drop_objects<'a>(
    target: &mysql_async::Opts,
    databases: impl IntoIterator<Item = &'a str>,
    accounts: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbError> {
    // A statement that still holds a table gets a minute, not a year; the
    // names are quoted with backslash escapes, whatever the server's mode.
    let mut conn = connect(
        target,
        "SET NAMES utf8mb4, SESSION lock_wait_timeout = 60, SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
        "the target database server",
    )
    .await?;
    for db in databases {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(db)))
            .await
            .map_err(|e| DbError::sql(format!("cannot drop database {db}"), e))?;
    }
    for account in accounts {
        let Some((user, host)) = account.rsplit_once('@') else {
            continue;
        };
        conn.query_drop(format!(
            "DROP USER IF EXISTS {}@{}",
            literal(user),
            literal(host)
        ))
        .await
        .map_err(|e| DbError::sql(format!("cannot drop database user {account}"), e))?;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal("it's \\ \0\n"), "'it\\'s \\\\ \\0\\n'");
    }
}
