//! Writing migrated accounts into the destination's panel database: one
//! transaction per object, new ids, references resolved by name, set ids
//! (Limits, Permissions, Repository) allocated under one named lock so
//! that concurrent deploys never share one, addresses remapped (whole addresses
//! only) and paths under the source's roots moved to the destination's.
//! A domain's `data_bases` and `db_users` rows are written for the
//! databases its migration copied, pointing at the server each went to.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Transaction, TxOpts, Value};

use super::records::{ClientRecord, DomainRecord, Fields, Set};
use super::PanelError;
use crate::migration::plan::TargetServer;

fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

/// Inserts `fields` into `table` with the columns of `fixed` replaced and
/// those in `skip` left out; answers the new id.
async fn insert(
    tx: &mut Transaction<'_>,
    table: &str,
    fields: &Fields,
    fixed: &[(&str, Value)],
    skip: &[&str],
) -> Result<u64, PanelError> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (name, value) in fields {
        if name == "id" || skip.contains(&name.as_str()) || fixed.iter().any(|(f, _)| f == name) {
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
    tx.exec_drop(sql, Params::Positional(values)).await?;
    Ok(tx.last_insert_id().unwrap_or(0))
}

async fn account(tx: &mut Transaction<'_>, account: &Option<Fields>) -> Result<Value, PanelError> {
    match account {
        Some(a) => Ok(v(insert(tx, "accounts", a, &[], &[]).await?)),
        None => Ok(v(0u64)),
    }
}

/// A new id for a name/value set table (the deploy lock is held).
async fn next_set_id(
    tx: &mut Transaction<'_>,
    table: &str,
    id_col: &str,
) -> Result<u64, PanelError> {
    let max: Option<u64> = tx
        .query_first(format!(
            "SELECT COALESCE(MAX(`{id_col}`), 0) + 1 FROM `{table}`"
        ))
        .await?;
    Ok(max.unwrap_or(1))
}

/// The panel-wide deploy lock: set ids are allocated by one deploy at a time.
const LOCK: &str = "hostmig.panel.deploy";

async fn lock(conn: &mut Conn) -> Result<(), PanelError> {
    let got: Option<i64> = conn.exec_first("SELECT GET_LOCK(?, 60)", (LOCK,)).await?;
    if got == Some(1) {
        Ok(())
    } else {
        Err(PanelError::Schema {
            what: "the deploy lock (another deploy held it for a minute)".into(),
        })
    }
}

async fn unlock(conn: &mut Conn) {
    let _ = conn.exec_drop("DO RELEASE_LOCK(?)", (LOCK,)).await;
}

async fn write_set(
    tx: &mut Transaction<'_>,
    table: &str,
    name_col: &str,
    set: Option<&Set>,
) -> Result<Value, PanelError> {
    let Some(set) = set else {
        return Ok(Value::NULL);
    };
    let id = next_set_id(tx, table, "id").await?;
    for (name, value) in set {
        tx.exec_drop(
            format!("INSERT INTO `{table}` (id, `{name_col}`, value) VALUES (?, ?, ?)"),
            (id, name, value.clone()),
        )
        .await?;
    }
    Ok(v(id))
}

async fn ip_id(tx: &mut Transaction<'_>, address: &str) -> Result<u64, PanelError> {
    let id: Option<u64> = tx
        .exec_first(
            "SELECT id FROM IP_Addresses WHERE ip_address = ?",
            (address,),
        )
        .await?;
    id.ok_or_else(|| PanelError::Schema {
        what: format!("the address {address} (it vanished from IP_Addresses during the migration)"),
    })
}

/// Writes a client (account, limits, permissions, IP pool), owned by the
/// administrator, in one transaction. Its domains are separate objects.
pub async fn client(conn: &mut Conn, c: &ClientRecord) -> Result<(), PanelError> {
    lock(conn).await?;
    let result = client_tx(conn, c).await;
    unlock(conn).await;
    result
}

async fn client_tx(conn: &mut Conn, c: &ClientRecord) -> Result<(), PanelError> {
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    let account_id = account(&mut tx, &c.account).await?;
    let limits = write_set(&mut tx, "Limits", "limit_name", Some(&c.limits)).await?;
    let perms = write_set(&mut tx, "Permissions", "permission", c.permissions.as_ref()).await?;
    let pool = if c.pool.is_empty() {
        Value::NULL
    } else {
        let rep = next_set_id(&mut tx, "Repository", "rep_id").await?;
        let mut seen = BTreeSet::new();
        for (address, _) in &c.pool {
            let id = ip_id(&mut tx, address).await?;
            if seen.insert(id) {
                tx.exec_drop(
                    "INSERT INTO Repository (rep_id, component_id) VALUES (?, ?)",
                    (rep, id),
                )
                .await?;
            }
        }
        v(rep)
    };
    insert(
        &mut tx,
        "clients",
        &c.fields,
        &[
            ("account_id", account_id),
            ("limits_id", limits),
            ("perm_id", perms),
            ("pool_id", pool),
        ],
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Writes a domain and everything under it, owned by the client `owner`
/// (or the administrator), in one transaction; of its databases, those in
/// `databases` (name, the server it was copied to).
pub async fn domain(
    conn: &mut Conn,
    d: &DomainRecord,
    owner: &str,
    databases: &[(String, TargetServer)],
) -> Result<(), PanelError> {
    lock(conn).await?;
    let result = domain_tx(conn, d, owner, databases).await;
    unlock(conn).await;
    result
}

async fn domain_tx(
    conn: &mut Conn,
    d: &DomainRecord,
    owner: &str,
    databases: &[(String, TargetServer)],
) -> Result<(), PanelError> {
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    let owner_id: Option<u64> = tx
        .exec_first("SELECT id FROM clients WHERE login = ?", (owner,))
        .await?;
    let owner_id = owner_id.ok_or_else(|| PanelError::Schema {
        what: format!("the owner {owner} (not found on the destination)"),
    })?;

    let zone_id = match &d.zone {
        Some(z) => {
            let zone = insert(&mut tx, "dns_zone", &z.fields, &[], &[]).await?;
            for r in &z.records {
                insert(&mut tx, "dns_recs", r, &[("dns_zone_id", v(zone))], &[]).await?;
            }
            v(zone)
        }
        None => Value::NULL,
    };
    let limits = write_set(&mut tx, "Limits", "limit_name", Some(&d.limits)).await?;
    let dom = insert(
        &mut tx,
        "domains",
        &d.fields,
        &[
            ("cl_id", v(owner_id)),
            ("dns_zone_id", zone_id),
            ("limits_id", limits),
            ("real_size", v(0u64)),
        ],
        &[],
    )
    .await?;

    let mut sys_user_ids: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(h) = &d.hosting {
        let acc = account(&mut tx, &h.sys_account).await?;
        let su = insert(
            &mut tx,
            "sys_users",
            &h.sys_user,
            &[("account_id", acc)],
            &[],
        )
        .await?;
        if let Some(login) = h.sys_user.text("login") {
            sys_user_ids.insert(login, su);
        }
        let ip = match &h.ip {
            Some(address) => v(ip_id(&mut tx, address).await?),
            None => v(0u64),
        };
        insert(
            &mut tx,
            "hosting",
            &h.fields,
            &[
                ("dom_id", v(dom)),
                ("sys_user_id", v(su)),
                ("ip_address_id", ip),
            ],
            &[],
        )
        .await?;
    }
    if let Some((f, address)) = &d.forwarding {
        let ip = match address {
            Some(address) => v(ip_id(&mut tx, address).await?),
            None => v(0u64),
        };
        insert(
            &mut tx,
            "forwarding",
            f,
            &[("dom_id", v(dom)), ("ip_address_id", ip)],
            &[],
        )
        .await?;
    }
    if let Some(a) = &d.admin {
        let acc = account(&mut tx, &a.account).await?;
        let card = match &a.card {
            Some(c) => v(insert(&mut tx, "Cards", c, &[], &[]).await?),
            None => v(0u64),
        };
        let perms = write_set(&mut tx, "Permissions", "permission", a.permissions.as_ref()).await?;
        insert(
            &mut tx,
            "dom_level_usrs",
            &a.fields,
            &[
                ("dom_id", v(dom)),
                ("account_id", acc),
                ("card_id", card),
                ("perm_id", perms),
            ],
            &[],
        )
        .await?;
    }
    for m in &d.mail {
        let acc = account(&mut tx, &m.account).await?;
        let perms = write_set(&mut tx, "Permissions", "permission", m.permissions.as_ref()).await?;
        let mn = insert(
            &mut tx,
            "mail",
            &m.fields,
            &[("dom_id", v(dom)), ("account_id", acc), ("perm_id", perms)],
            &[],
        )
        .await?;
        for alias in &m.aliases {
            tx.exec_drop(
                "INSERT INTO mail_aliases (mn_id, alias) VALUES (?, ?)",
                (mn, alias),
            )
            .await?;
        }
        for address in &m.redirects {
            tx.exec_drop(
                "INSERT INTO mail_redir (mn_id, address) VALUES (?, ?)",
                (mn, address),
            )
            .await?;
        }
    }
    for (s, login) in &d.subdomains {
        let su = login
            .as_ref()
            .and_then(|l| sys_user_ids.get(l))
            .map_or(Value::NULL, |id| v(*id));
        insert(
            &mut tx,
            "subdomains",
            s,
            &[("dom_id", v(dom)), ("sys_user_id", su)],
            &[],
        )
        .await?;
    }
    for a in &d.aliases {
        insert(
            &mut tx,
            "domainaliases",
            a,
            &[("dom_id", v(dom)), ("dns_zone_id", Value::NULL)],
            &[],
        )
        .await?;
    }
    for db in &d.databases {
        let name = db.fields.text("name").unwrap_or_default();
        let Some((_, server)) = databases.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let server_id: Option<u64> = tx
            .exec_first(
                "SELECT id FROM DatabaseServers WHERE host = ? AND port = ? AND type = ?",
                (&server.host, server.port, server.kind.as_str()),
            )
            .await?;
        let server_id = server_id.ok_or_else(|| PanelError::Schema {
            what: format!("the DatabaseServers row of {}", server.label()),
        })?;
        let db_id = insert(
            &mut tx,
            "data_bases",
            &db.fields,
            &[
                ("dom_id", v(dom)),
                ("db_server_id", v(server_id)),
                ("default_user_id", Value::NULL),
            ],
            &[],
        )
        .await?;
        let mut default_user = None;
        for (u, login_account) in &db.users {
            let acc = account(&mut tx, login_account).await?;
            let user = insert(
                &mut tx,
                "db_users",
                u,
                &[("db_id", v(db_id)), ("account_id", acc)],
                &[],
            )
            .await?;
            if u.get("id") == db.fields.get("default_user_id") {
                default_user = Some(user);
            }
        }
        if let Some(user) = default_user {
            tx.exec_drop(
                "UPDATE data_bases SET default_user_id = ? WHERE id = ?",
                (user, db_id),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
