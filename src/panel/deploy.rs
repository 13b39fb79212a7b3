//! Writing migrated accounts into the destination's panel database: one
//! transaction per object, new ids, references resolved by name, set ids
//! (Limits, Permissions, Repository) allocated under one named lock so
//! that concurrent deploys never share one, addresses remapped (whole
//! addresses only) and paths under the source's roots moved to the
//! destination's. Values arrive as the source has them: NULL stays NULL,
//! a reference the source left NULL stays NULL. Every row is checked
//! against the destination's columns first (`catalog`), in a strict
//! session, so a value the destination cannot hold fails its object with
//! the column named and nothing of the object written. A domain's
//! `data_bases` and `db_users` rows are written for the databases its
//! migration copied, pointing at the server each went to.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Transaction, TxOpts, Value};

use super::catalog::Catalog;
use super::records::{ClientRecord, DomainRecord, Fields, Set, Zone};
use super::PanelError;
use crate::migration::plan::TargetServer;

/// A connection to the destination's panel that writes accounts.
pub struct Writer {
    conn: Conn,
    catalog: Catalog,
}

fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

fn failed(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> PanelError {
    let what = what.into();
    move |source| PanelError::Destination { what, source }
}

/// A server's refusal of a value (strict mode), with the column it names.
fn refused(e: mysql_async::Error, table: &str, object: &str) -> PanelError {
    if let mysql_async::Error::Server(s) = &e {
        // Truncated, incorrect value, too long, NULL refused, out of range.
        if matches!(s.code, 1048 | 1264 | 1265 | 1292 | 1366 | 1406) {
            let column = s
                .message
                .split_once("olumn '")
                .and_then(|(_, rest)| rest.split('\'').next())
                .unwrap_or("?")
                .to_owned();
            return PanelError::Value {
                table: table.to_owned(),
                column,
                object: object.to_owned(),
                problem: format!(
                    "the destination refused the source's value (error {}); correct it on the source and migrate it again",
                    s.code
                ),
            };
        }
    }
    PanelError::Destination {
        what: format!("writing table {table} for {object}"),
        source: e,
    }
}

/// A reference as the destination holds it: NULL where the source had
/// NULL, the new id where the row it names was written, else 0 (the
/// source's "none").
fn reference(source: Option<&Value>, new: Option<u64>) -> Value {
    match (source, new) {
        (_, Some(id)) => v(id),
        (None | Some(Value::NULL), None) => Value::NULL,
        (Some(_), None) => v(0u64),
    }
}

impl Writer {
    /// Connects (strict: nothing is ever cut or replaced silently) and
    /// reads what the destination's columns hold.
    pub async fn open(url: &url::Url) -> Result<Writer, PanelError> {
        let mut conn = super::connect_url(url.as_str())
            .await
            .map_err(failed("connecting"))?;
        let catalog = Catalog::load(&mut conn).await?;
        Ok(Writer { conn, catalog })
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    /// Checks every row of a client against the destination's columns.
    pub fn check_client(&self, c: &ClientRecord) -> Result<(), PanelError> {
        let object = format!("client {}", c.login());
        c.rows()
            .into_iter()
            .try_for_each(|(table, row)| self.catalog.check(table, row, &object))
    }

    /// Checks every row of a domain against the destination's columns.
    pub fn check_domain(&self, d: &DomainRecord) -> Result<(), PanelError> {
        let object = format!("domain {}", d.name());
        d.rows()
            .into_iter()
            .try_for_each(|(table, row)| self.catalog.check(table, row, &object))
    }

    /// Writes a client (account, limits, permissions, IP pool, settings),
    /// owned by the administrator, in one transaction. Its domains are
    /// separate objects.
    pub async fn client(&mut self, c: &ClientRecord) -> Result<(), PanelError> {
        self.check_client(c)?;
        let object = format!("client {}", c.login());
        lock(&mut self.conn).await?;
        let result = self.client_tx(c, &object).await;
        unlock(&mut self.conn).await;
        result
    }

    async fn client_tx(&mut self, c: &ClientRecord, object: &str) -> Result<(), PanelError> {
        let catalog = &self.catalog;
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failed("starting a transaction"))?;
        let mut w = Tx {
            tx: &mut tx,
            catalog,
            object,
        };
        let account_id = w.account(&c.account, c.fields.get("account_id")).await?;
        let limits = w.set("Limits", "limit_name", c.limits.as_ref()).await?;
        let perms = w
            .set("Permissions", "permission", c.permissions.as_ref())
            .await?;
        let pool = if c.pool.is_empty() {
            reference(c.fields.get("pool_id"), None)
        } else {
            let rep = w.next_set_id("Repository", "rep_id").await?;
            let mut seen = BTreeSet::new();
            for (address, _) in &c.pool {
                let id = w.ip_id(address).await?;
                if seen.insert(id) {
                    w.exec(
                        "Repository",
                        "INSERT INTO Repository (rep_id, component_id) VALUES (?, ?)",
                        vec![v(rep), v(id)],
                    )
                    .await?;
                }
            }
            v(rep)
        };
        let client_id = w
            .insert(
                "clients",
                &c.fields,
                &[
                    ("account_id", account_id),
                    ("limits_id", limits),
                    ("perm_id", perms),
                    ("pool_id", pool),
                ],
            )
            .await?;
        for p in &c.params {
            w.insert("cl_param", p, &[("cl_id", v(client_id))]).await?;
        }
        tx.commit().await.map_err(failed("committing"))?;
        Ok(())
    }

    /// Writes a domain and everything under it, owned by the client
    /// `owner` (or the administrator), in one transaction; of its
    /// databases, those in `databases` (name, the server it was copied to).
    pub async fn domain(
        &mut self,
        d: &DomainRecord,
        owner: &str,
        databases: &[(String, TargetServer)],
    ) -> Result<(), PanelError> {
        self.check_domain(d)?;
        let object = format!("domain {}", d.name());
        lock(&mut self.conn).await?;
        let result = self.domain_tx(d, owner, databases, &object).await;
        unlock(&mut self.conn).await;
        result
    }

    async fn domain_tx(
        &mut self,
        d: &DomainRecord,
        owner: &str,
        databases: &[(String, TargetServer)],
        object: &str,
    ) -> Result<(), PanelError> {
        let catalog = &self.catalog;
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failed("starting a transaction"))?;
        let mut w = Tx {
            tx: &mut tx,
            catalog,
            object,
        };
        let owner_id: Option<u64> =
            w.tx.exec_first("SELECT id FROM clients WHERE login = ?", (owner,))
                .await
                .map_err(failed("reading the owner"))?;
        let owner_id = owner_id.ok_or_else(|| {
            PanelError::DestinationState(format!(
                "{object}: its owner {owner} is not on the destination"
            ))
        })?;
        let zone_id = w.zone(&d.zone, d.fields.get("dns_zone_id")).await?;
        let limits = w.set("Limits", "limit_name", d.limits.as_ref()).await?;
        let dom = w
            .insert(
                "domains",
                &d.fields,
                &[
                    ("cl_id", v(owner_id)),
                    ("dns_zone_id", zone_id),
                    ("limits_id", limits),
                ],
            )
            .await?;

        let mut sys_user_ids: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(h) = &d.hosting {
            let acc = w
                .account(&h.sys_account, h.sys_user.get("account_id"))
                .await?;
            let su = w
                .insert("sys_users", &h.sys_user, &[("account_id", acc)])
                .await?;
            if let Some(login) = h.sys_user.text("login") {
                sys_user_ids.insert(login, su);
            }
            let ip = match &h.ip {
                Some(address) => v(w.ip_id(address).await?),
                None => reference(h.fields.get("ip_address_id"), None),
            };
            w.insert(
                "hosting",
                &h.fields,
                &[
                    ("dom_id", v(dom)),
                    ("sys_user_id", v(su)),
                    ("ip_address_id", ip),
                ],
            )
            .await?;
        }
        if let Some((f, address)) = &d.forwarding {
            let ip = match address {
                Some(address) => v(w.ip_id(address).await?),
                None => reference(f.get("ip_address_id"), None),
            };
            w.insert(
                "forwarding",
                f,
                &[("dom_id", v(dom)), ("ip_address_id", ip)],
            )
            .await?;
        }
        if let Some(a) = &d.admin {
            let acc = w.account(&a.account, a.fields.get("account_id")).await?;
            let card = match &a.card {
                Some(c) => v(w.insert("Cards", c, &[]).await?),
                None => reference(a.fields.get("card_id"), None),
            };
            let perms = w
                .set("Permissions", "permission", a.permissions.as_ref())
                .await?;
            w.insert(
                "dom_level_usrs",
                &a.fields,
                &[
                    ("dom_id", v(dom)),
                    ("account_id", acc),
                    ("card_id", card),
                    ("perm_id", perms),
                ],
            )
            .await?;
        }
        for m in &d.mail {
            let acc = w.account(&m.account, m.fields.get("account_id")).await?;
            let perms = w
                .set("Permissions", "permission", m.permissions.as_ref())
                .await?;
            let mn = w
                .insert(
                    "mail",
                    &m.fields,
                    &[("dom_id", v(dom)), ("account_id", acc), ("perm_id", perms)],
                )
                .await?;
            for alias in &m.aliases {
                w.exec(
                    "mail_aliases",
                    "INSERT INTO mail_aliases (mn_id, alias) VALUES (?, ?)",
                    vec![v(mn), v(alias)],
                )
                .await?;
            }
            for address in &m.redirects {
                w.exec(
                    "mail_redir",
                    "INSERT INTO mail_redir (mn_id, address) VALUES (?, ?)",
                    vec![v(mn), v(address)],
                )
                .await?;
            }
        }
        for (s, login) in &d.subdomains {
            let su = login.as_ref().and_then(|l| sys_user_ids.get(l)).copied();
            let su = reference(s.get("sys_user_id"), su);
            w.insert("subdomains", s, &[("dom_id", v(dom)), ("sys_user_id", su)])
                .await?;
        }
        for a in &d.aliases {
            let zone = w.zone(&a.zone, a.fields.get("dns_zone_id")).await?;
            w.insert(
                "domainaliases",
                &a.fields,
                &[("dom_id", v(dom)), ("dns_zone_id", zone)],
            )
            .await?;
        }
        for p in &d.params {
            w.insert("dom_param", p, &[("dom_id", v(dom))]).await?;
        }
        for db in &d.databases {
            let name = db.fields.text("name").unwrap_or_default();
            let Some((_, server)) = databases.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            let server_id: Option<u64> =
                w.tx.exec_first(
                    "SELECT id FROM DatabaseServers WHERE host = ? AND port = ? AND type = ?",
                    (&server.host, server.port, server.kind.as_str()),
                )
                .await
                .map_err(failed("reading DatabaseServers"))?;
            let server_id = server_id.ok_or_else(|| {
                PanelError::DestinationState(format!(
                    "{object}: the DatabaseServers row of {} is missing",
                    server.label()
                ))
            })?;
            let db_id = w
                .insert(
                    "data_bases",
                    &db.fields,
                    &[
                        ("dom_id", v(dom)),
                        ("db_server_id", v(server_id)),
                        ("default_user_id", Value::NULL),
                    ],
                )
                .await?;
            let mut default_user = None;
            for (u, login_account) in &db.users {
                let acc = w.account(login_account, u.get("account_id")).await?;
                let user = w
                    .insert("db_users", u, &[("db_id", v(db_id)), ("account_id", acc)])
                    .await?;
                if u.get("id") == db.fields.get("default_user_id") {
                    default_user = Some(user);
                }
            }
            let default_user = reference(db.fields.get("default_user_id"), default_user);
            if default_user != Value::NULL {
                w.exec(
                    "data_bases",
                    "UPDATE data_bases SET default_user_id = ? WHERE id = ?",
                    vec![default_user, v(db_id)],
                )
                .await?;
            }
        }
        tx.commit().await.map_err(failed("committing"))?;
        Ok(())
    }
}

/// One object's transaction, with the catalog its rows are checked by.
struct Tx<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    catalog: &'t Catalog,
    object: &'t str,
}

impl Tx<'_, '_> {
    async fn exec(&mut self, table: &str, sql: &str, values: Vec<Value>) -> Result<(), PanelError> {
        self.tx
            .exec_drop(sql, Params::Positional(values))
            .await
            .map_err(|e| refused(e, table, self.object))
    }

    /// Inserts `fields` into `table`, with the columns of `fixed` replaced
    /// and the columns the destination lacks left out; answers the new id.
    async fn insert(
        &mut self,
        table: &str,
        fields: &Fields,
        fixed: &[(&str, Value)],
    ) -> Result<u64, PanelError> {
        self.catalog.check(table, fields, self.object)?;
        let mut names = Vec::new();
        let mut values = Vec::new();
        for (name, value) in fields {
            if name == "id"
                || fixed.iter().any(|(f, _)| f == name)
                || self.catalog.column(table, name).is_none()
            {
                continue;
            }
            names.push(format!("`{name}`"));
            values.push(value.clone());
        }
        for (name, value) in fixed {
            names.push(format!("`{name}`"));
            values.push(value.clone());
        }
        let marks = vec!["?"; names.len()].join(", ");
        let sql = format!(
            "INSERT INTO `{table}` ({}) VALUES ({marks})",
            names.join(", ")
        );
        self.exec(table, &sql, values).await?;
        Ok(self.tx.last_insert_id().unwrap_or(0))
    }

    /// The account a row names, written; the new reference.
    async fn account(
        &mut self,
        account: &Option<Fields>,
        source_ref: Option<&Value>,
    ) -> Result<Value, PanelError> {
        let id = match account {
            Some(a) => Some(self.insert("accounts", a, &[]).await?),
            None => None,
        };
        Ok(reference(source_ref, id))
    }

    /// A DNS zone with its records, written; the new reference.
    async fn zone(
        &mut self,
        zone: &Option<Zone>,
        source_ref: Option<&Value>,
    ) -> Result<Value, PanelError> {
        let Some(z) = zone else {
            return Ok(reference(source_ref, None));
        };
        let id = self.insert("dns_zone", &z.fields, &[]).await?;
        for r in &z.records {
            self.insert("dns_recs", r, &[("dns_zone_id", v(id))])
                .await?;
        }
        Ok(v(id))
    }

    /// A new id for a name/value set table (the deploy lock is held).
    async fn next_set_id(&mut self, table: &str, id_col: &str) -> Result<u64, PanelError> {
        let max: Option<u64> = self
            .tx
            .query_first(format!(
                "SELECT COALESCE(MAX(`{id_col}`), 0) + 1 FROM `{table}`"
            ))
            .await
            .map_err(failed(format!("reading table {table}")))?;
        Ok(max.unwrap_or(1))
    }

    /// A Limits or Permissions set, written; NULL for none.
    async fn set(
        &mut self,
        table: &str,
        name_col: &str,
        set: Option<&Set>,
    ) -> Result<Value, PanelError> {
        let Some(set) = set else {
            return Ok(Value::NULL);
        };
        let id = self.next_set_id(table, "id").await?;
        for (name, value) in set {
            let row: Fields = [
                (name_col.to_owned(), v(name.as_str())),
                ("value".to_owned(), value.clone()),
            ]
            .into();
            self.catalog.check(table, &row, self.object)?;
            self.exec(
                table,
                &format!("INSERT INTO `{table}` (id, `{name_col}`, value) VALUES (?, ?, ?)"),
                vec![v(id), v(name.as_str()), value.clone()],
            )
            .await?;
        }
        Ok(v(id))
    }

    async fn ip_id(&mut self, address: &str) -> Result<u64, PanelError> {
        let id: Option<u64> = self
            .tx
            .exec_first(
                "SELECT id FROM IP_Addresses WHERE ip_address = ?",
                (address,),
            )
            .await
            .map_err(failed("reading IP_Addresses"))?;
        id.ok_or_else(|| {
            PanelError::DestinationState(format!(
                "{}: the address {address} vanished from IP_Addresses during the migration",
                self.object
            ))
        })
    }
}

/// The panel-wide deploy lock: set ids are allocated by one deploy at a time.
const LOCK: &str = "hostmig.panel.deploy";

async fn lock(conn: &mut Conn) -> Result<(), PanelError> {
    let got: Option<i64> = conn
        .exec_first("SELECT GET_LOCK(?, 60)", (LOCK,))
        .await
        .map_err(failed("taking the deploy lock"))?;
    if got == Some(1) {
        Ok(())
    } else {
        Err(PanelError::DestinationState(
            "the deploy lock was held by another deploy for a minute; try again".into(),
        ))
    }
}

async fn unlock(conn: &mut Conn) {
    let _ = conn.exec_drop("DO RELEASE_LOCK(?)", (LOCK,)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_null_and_none() {
        assert_eq!(reference(Some(&Value::NULL), None), Value::NULL);
        assert_eq!(reference(None, None), Value::NULL);
        assert_eq!(reference(Some(&v(7u64)), None), v(0u64));
        assert_eq!(reference(Some(&Value::NULL), Some(3)), v(3u64));
        assert_eq!(reference(Some(&v(7u64)), Some(3)), v(3u64));
    }
}
