//! The destination's panel database outside a migration: made ready once
//! when the server starts (schema created or brought up to date, the
//! `DatabaseServers` rows in step with the configuration), checked without
//! writing anything (`check`), and read for what a plan must know.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::PanelError;

/// Tables the panel schema holds (`schemas/panel.sql`).
const TABLES: &[&str] = &[
    "accounts",
    "IP_Addresses",
    "Repository",
    "Limits",
    "Permissions",
    "clients",
    "domains",
    "sys_users",
    "hosting",
    "forwarding",
    "Cards",
    "dom_level_usrs",
    "mail",
    "mail_aliases",
    "mail_redir",
    "dns_zone",
    "dns_recs",
    "subdomains",
    "domainaliases",
    "data_bases",
    "db_users",
    "DatabaseServers",
    "misc",
    "Components",
];

/// Creates the panel schema where it is missing, and registers the
/// configured database servers: what the server does at start-up (and,
/// when the panel database was down then, right before it admits a
/// migration), never while validating a `start`.
pub async fn make_ready(
    conn: &mut Conn,
    servers: &[crate::config::DbServer],
) -> Result<(), PanelError> {
    conn.query_drop(super::SCHEMA_SQL).await?;
    sync_db_servers(conn, servers).await
}

/// Keeps `DatabaseServers` in step with `[[destination.db_servers]]`: a
/// row per configured server (host, port, type), with the login and
/// password hostmig uses there. Rows of servers no longer configured stay
/// (databases may still point at them).
async fn sync_db_servers(
    conn: &mut Conn,
    servers: &[crate::config::DbServer],
) -> Result<(), PanelError> {
    for s in servers {
        let opts = s.opts().map_err(|what| PanelError::Schema { what })?;
        let login = opts.user().unwrap_or("").to_owned();
        let password = opts.pass().unwrap_or("").to_owned();
        let id: Option<u64> = conn
            .exec_first(
                "SELECT id FROM DatabaseServers WHERE host = ? AND port = ? AND type = ?",
                (&s.host, s.port, s.kind.as_str()),
            )
            .await?;
        match id {
            Some(id) => {
                conn.exec_drop(
                    "UPDATE DatabaseServers SET admin_login = ?, admin_password = ? WHERE id = ?",
                    (login, password, id),
                )
                .await?
            }
            None => {
                conn.exec_drop(
                    "INSERT INTO DatabaseServers (host, port, type, admin_login, admin_password) VALUES (?, ?, ?, ?, ?)",
                    (&s.host, s.port, s.kind.as_str(), login, password),
                )
                .await?
            }
        }
    }
    Ok(())
}

/// The tables of the panel schema that the database lacks (empty: the
/// schema is there). Reads only.
pub async fn missing_tables(conn: &mut Conn) -> Result<Vec<&'static str>, PanelError> {
    let present: Vec<String> = conn
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
        .await?;
    Ok(TABLES
        .iter()
        .copied()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect())
}

/// What the destination holds that a plan checks against.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub client_logins: Vec<String>,
    pub domains: Vec<String>,
    /// (address, `shared`|`exclusive`).
    pub ips: Vec<(String, String)>,
}

/// Reads the destination's clients, domains and addresses.
pub async fn inventory(conn: &mut Conn) -> Result<Inventory, PanelError> {
    Ok(Inventory {
        client_logins: conn.query("SELECT login FROM clients").await?,
        domains: conn.query("SELECT name FROM domains").await?,
        ips: conn
            .query("SELECT ip_address, CAST(type AS CHAR) FROM IP_Addresses")
            .await?,
    })
}
