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

pub mod copy;
pub mod objects;
pub mod rows;
pub mod users;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use copy::{copy_database, DbJob, DbProgress, DbReport, Recorder};

/// Why a database copy did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("stopped")]
    Stopped,
    #[error("{0}")]
    Failed(String),
}

impl DbError {
    pub(crate) fn sql(what: impl std::fmt::Display, e: mysql_async::Error) -> DbError {
        DbError::Failed(format!("{what}: {}", server_text(&e)))
    }
}

/// The server's own words for an error, without the statement (which may
/// hold a password hash) that some client errors repeat.
pub fn server_text(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal("it's \\ \0\n"), "'it\\'s \\\\ \\0\\n'");
    }
}
