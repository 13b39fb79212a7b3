//! The destination's panel database outside a migration: made ready once
//! when the server starts (schema created or brought up to date, the
//! `DatabaseServers` rows in step with the configuration), and read for
//! what a plan must know.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{on_destination, PanelError};

/// Creates the panel schema where it is missing or brings an older one up
/// to date, and registers the configured database servers: what the
/// server does at start-up (and, when the panel database was down then,
/// right before it admits a migration), never while validating a `start`.
pub async fn make_ready(
    conn: &mut Conn,
    servers: &[crate::config::DbServer],
) -> Result<(), PanelError> {
    super::schema::upgrade(conn).await?;
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
        let opts = s.opts().map_err(PanelError::DestinationState)?;
        let login = opts.user().unwrap_or("").to_owned();
        let password = opts.pass().unwrap_or("").to_owned();
        let id: Option<u64> = conn
            .exec_first(
                "SELECT id FROM DatabaseServers WHERE host = ? AND port = ? AND type = ?",
                (&s.host, s.port, s.kind.as_str()),
            )
            .await
            .map_err(on_destination("reading DatabaseServers"))?;
        match id {
            Some(id) => {
                conn.exec_drop(
                    "UPDATE DatabaseServers SET admin_login = ?, admin_password = ? WHERE id = ?",
                    (login, password, id),
                )
                .await
                .map_err(on_destination("updating DatabaseServers"))?
            }
            None => {
                conn.exec_drop(
                    "INSERT INTO DatabaseServers (host, port, type, admin_login, admin_password) VALUES (?, ?, ?, ?, ?)",
                    (&s.host, s.port, s.kind.as_str(), login, password),
                )
                .await
                .map_err(on_destination("registering a database server in DatabaseServers"))?
            }
        }
    }
    Ok(())
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
    let read = on_destination("reading its clients, domains and addresses");
    let logins: Vec<Option<String>> = conn
        .query("SELECT login FROM clients")
        .await
        .map_err(on_destination("reading its clients"))?;
    let domains: Vec<Option<String>> = conn
        .query("SELECT name FROM domains")
        .await
        .map_err(on_destination("reading its domains"))?;
    let ips: Vec<(Option<String>, Option<String>)> = conn
        .query("SELECT ip_address, CAST(type AS CHAR) FROM IP_Addresses")
        .await
        .map_err(read)?;
    Ok(Inventory {
        client_logins: logins.into_iter().flatten().collect(),
        domains: domains.into_iter().flatten().collect(),
        ips: ips
            .into_iter()
            .filter_map(|(a, t)| Some((a?, t.unwrap_or_default())))
            .collect(),
    })
}
