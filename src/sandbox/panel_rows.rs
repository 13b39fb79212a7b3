//! Writes the model into the source's panel database `psa` (PANEL.md):
//! accounts, addresses, clients with limits, permissions and IP pools,
//! domains with hosting or forwarding, system users, domain administrators,
//! mail, DNS, subdomains, aliases, databases with users.

use std::path::Path;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::model::{HostingKind, Model, SOURCE_IPS};

type Sql<T> = std::result::Result<T, mysql_async::Error>;

/// Inserts a row and answers its new id.
async fn insert(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Sql<u64> {
    conn.exec_drop(sql, Params::Positional(params)).await?;
    Ok(conn.last_insert_id().unwrap_or(0))
}

fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

fn flag(b: bool) -> Value {
    v(if b { "true" } else { "false" })
}

/// Counters for the id sets of Limits, Permissions and Repository.
struct SetIds {
    limits: u64,
    perms: u64,
    repo: u64,
}

/// Writes a Permissions set and answers its id, or NULL for "defaults".
async fn permission_set(
    conn: &mut Conn,
    ids: &mut SetIds,
    perms: Option<&[(&'static str, bool)]>,
) -> Sql<Value> {
    let Some(perms) = perms else {
        return Ok(Value::NULL);
    };
    ids.perms += 1;
    for (name, value) in perms {
        insert(
            conn,
            "INSERT INTO Permissions (id, permission, value) VALUES (?, ?, ?)",
            vec![v(ids.perms), v(*name), flag(*value)],
        )
        .await?;
    }
    Ok(v(ids.perms))
}

pub async fn write(conn: &mut Conn, model: &Model, vhosts: &Path, db_port: u16) -> Sql<()> {
    conn.query_drop(
        "INSERT INTO misc (param, val) VALUES ('def_ip_id', '1'), ('admin_email', 'admin@source.example');
         INSERT INTO Components (name, version) VALUES ('psa', '8.6.0'), ('mysql', '10.11'), ('apache', '2.4'), ('qmail', '1.03')",
    )
    .await?;
    for (addr, kind) in SOURCE_IPS {
        insert(
            conn,
            "INSERT INTO IP_Addresses (ip_address, mask, iface, type) VALUES (?, '255.255.255.0', 'eth0', ?)",
            vec![v(*addr), v(kind.as_str())],
        )
        .await?;
    }
    insert(
        conn,
        "INSERT INTO DatabaseServers (host, port, type, admin_login, admin_password) VALUES ('localhost', ?, 'mysql', 'admin', '')",
        vec![v(db_port)],
    )
    .await?;

    let mut ids = SetIds {
        limits: 0,
        perms: 0,
        repo: 0,
    };
    let admin_account = insert(
        conn,
        "INSERT INTO accounts (type, password) VALUES ('plain', 'source-admin-panel-pw')",
        vec![],
    )
    .await?;
    insert(
        conn,
        "INSERT INTO clients (login, account_id, pname, cname, status, email, locale, cr_date) VALUES ('admin', ?, 'Administrator', 'Source Hosting', 0, 'admin@source.example', 'en-US', '2019-01-01')",
        vec![v(admin_account)],
    )
    .await?;

    let mut client_ids = Vec::new();
    for c in &model.clients {
        let account = insert(
            conn,
            "INSERT INTO accounts (type, password) VALUES ('plain', ?)",
            vec![v(&c.password)],
        )
        .await?;
        ids.limits += 1;
        for (name, value) in &c.limits {
            insert(
                conn,
                "INSERT INTO Limits (id, limit_name, value) VALUES (?, ?, ?)",
                vec![v(ids.limits), v(*name), v(*value)],
            )
            .await?;
        }
        let perm_id = permission_set(conn, &mut ids, c.permissions.as_deref()).await?;
        let pool_id = if c.pool.is_empty() {
            Value::NULL
        } else {
            ids.repo += 1;
            for &ip in &c.pool {
                insert(
                    conn,
                    "INSERT INTO Repository (rep_id, component_id) VALUES (?, ?)",
                    vec![v(ids.repo), v(ip as u64 + 1)],
                )
                .await?;
            }
            v(ids.repo)
        };
        let id = insert(
            conn,
            "INSERT INTO clients (login, account_id, pname, cname, status, phone, email, address, city, pcode, country, locale, limits_id, perm_id, pool_id, cr_date)
             VALUES (?, ?, ?, ?, 0, '+1 555 0100', ?, '1 Example Street', 'Springfield', '12345', 'US', 'en-US', ?, ?, ?, '2020-02-02')",
            vec![v(&c.login), v(account), v(&c.pname), v(&c.cname), v(&c.email), v(ids.limits), perm_id, pool_id],
        )
        .await?;
        insert(
            conn,
            "INSERT INTO cl_param (cl_id, param, val) VALUES (?, 'invoice_language', 'en')",
            vec![v(id)],
        )
        .await?;
        client_ids.push(id);
    }

    for (index, d) in model.domains.iter().enumerate() {
        // Plesk's words for the serial: both of them.
        let (serial_format, serial) = if index % 2 == 0 {
            ("UNIXTIMESTAMP", "1546300800")
        } else {
            ("YYYYMMDDNN", "2021030301")
        };
        let zone = insert(
            conn,
            "INSERT INTO dns_zone (name, displayName, status, email, type, serial_format, serial) VALUES (?, ?, 0, ?, 'master', ?, ?)",
            vec![v(&d.name), v(&d.display_name), v(format!("hostmaster@{}", d.name)), v(serial_format), v(serial)],
        )
        .await?;
        for r in &d.records {
            insert(
                conn,
                "INSERT INTO dns_recs (dns_zone_id, type, host, displayHost, val, displayVal, opt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![v(zone), v(r.kind), v(&r.host), v(&r.host), v(&r.value), v(&r.value), v(&r.opt)],
            )
            .await?;
        }
        ids.limits += 1;
        for (name, value) in [
            ("disk_space", 5_368_709_120i64),
            ("max_traffic", -1),
            ("max_box", 50),
        ] {
            insert(
                conn,
                "INSERT INTO Limits (id, limit_name, value) VALUES (?, ?, ?)",
                vec![v(ids.limits), v(name), v(value)],
            )
            .await?;
        }
        let owner = d.owner.map_or(1, |i| client_ids[i]);
        let htype = match d.hosting {
            HostingKind::None => "none",
            HostingKind::Virtual { .. } => "vrt_hst",
            HostingKind::Forward { .. } => "std_fwd",
        };
        let dom = insert(
            conn,
            "INSERT INTO domains (name, displayName, cl_id, status, htype, dns_zone_id, limits_id, real_size, cr_date) VALUES (?, ?, ?, 0, ?, ?, ?, ?, '2021-03-03')",
            vec![v(&d.name), v(&d.display_name), v(owner), v(htype), v(zone), v(ids.limits), v(1_048_576u64 * (index as u64 + 3))],
        )
        .await?;
        for (param, val) in [("seo_redirect", "www"), ("webmail", "roundcube")] {
            insert(
                conn,
                "INSERT INTO dom_param (dom_id, param, val) VALUES (?, ?, ?)",
                vec![v(dom), v(param), v(val)],
            )
            .await?;
        }
        let address = match &d.hosting {
            HostingKind::Virtual { ip, .. } | HostingKind::Forward { ip, .. } => {
                Some(SOURCE_IPS[*ip].0)
            }
            HostingKind::None => None,
        };
        let mut sys_user = None;
        match &d.hosting {
            HostingKind::Virtual {
                ip,
                sys_login,
                sys_password,
            } => {
                let account = insert(
                    conn,
                    "INSERT INTO accounts (type, password) VALUES ('plain', ?)",
                    vec![v(sys_password)],
                )
                .await?;
                let home = vhosts.join(&d.name);
                let su = insert(
                    conn,
                    "INSERT INTO sys_users (login, account_id, home, shell, quota) VALUES (?, ?, ?, '/bin/false', 0)",
                    vec![v(sys_login), v(account), v(home.to_string_lossy().into_owned())],
                )
                .await?;
                sys_user = Some(su);
                insert(
                    conn,
                    "INSERT INTO hosting (dom_id, sys_user_id, ip_address_id, ssi, php, php_safe_mode, cgi, perl, python, fastcgi, `ssl`, same_ssl, webstat)
                     VALUES (?, ?, ?, 'false', 'true', 'false', 'true', 'false', 'false', 'true', 'true', 'false', 'awstats')",
                    vec![v(dom), v(su), v(*ip as u64 + 1)],
                )
                .await?;
            }
            HostingKind::Forward { ip, url } => {
                insert(
                    conn,
                    "INSERT INTO forwarding (dom_id, ip_address_id, redirect) VALUES (?, ?, ?)",
                    vec![v(dom), v(*ip as u64 + 1), v(url)],
                )
                .await?;
            }
            HostingKind::None => {}
        }
        if let Some(admin) = &d.admin {
            let account = insert(
                conn,
                "INSERT INTO accounts (type, password) VALUES ('plain', ?)",
                vec![v(&admin.password)],
            )
            .await?;
            let card = insert(
                conn,
                "INSERT INTO Cards (personalname, companyname, phone, email, city, country) VALUES (?, 'Example Co', '+1 555 0199', ?, 'Springfield', 'US')",
                vec![v(&admin.personal_name), v(format!("admin@{}", d.name))],
            )
            .await?;
            let perm = permission_set(conn, &mut ids, admin.permissions.as_deref()).await?;
            insert(
                conn,
                "INSERT INTO dom_level_usrs (dom_id, account_id, state, card_id, perm_id) VALUES (?, ?, 'true', ?, ?)",
                vec![v(dom), v(account), v(card), perm],
            )
            .await?;
        }
        for m in &d.mail {
            let account = insert(
                conn,
                "INSERT INTO accounts (type, password) VALUES ('plain', ?)",
                vec![v(&m.password)],
            )
            .await?;
            let redirect = m.redirect.is_some();
            let mn = insert(
                conn,
                "INSERT INTO mail (dom_id, mail_name, account_id, postbox, redirect, redir_addr, mail_group, autoresponder, spamfilter, virusfilter, mbox_quota)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'false', 'true', 'incoming', -1)",
                vec![
                    v(dom),
                    v(&m.name),
                    v(account),
                    flag(m.postbox),
                    flag(redirect),
                    m.redirect.as_ref().map_or(Value::NULL, v),
                    flag(!m.group.is_empty()),
                ],
            )
            .await?;
            for alias in &m.aliases {
                insert(
                    conn,
                    "INSERT INTO mail_aliases (mn_id, alias) VALUES (?, ?)",
                    vec![v(mn), v(alias)],
                )
                .await?;
            }
            for member in &m.group {
                insert(
                    conn,
                    "INSERT INTO mail_redir (mn_id, address) VALUES (?, ?)",
                    vec![v(mn), v(member)],
                )
                .await?;
            }
        }
        for sub in &d.subdomains {
            insert(
                conn,
                "INSERT INTO subdomains (dom_id, name, displayName, sys_user_type, sys_user_id, php) VALUES (?, ?, ?, 'main', ?, 'true')",
                vec![v(dom), v(sub), v(sub), sys_user.map_or(Value::NULL, v)],
            )
            .await?;
        }
        for alias in &d.aliases {
            // An alias has a zone of its own, its A records at the domain's address.
            let alias_zone = insert(
                conn,
                "INSERT INTO dns_zone (name, displayName, status, email, type, serial_format, serial) VALUES (?, ?, 0, ?, 'master', 'UNIXTIMESTAMP', '1546300800')",
                vec![v(alias), v(alias), v(format!("hostmaster@{alias}"))],
            )
            .await?;
            insert(
                conn,
                "INSERT INTO dns_recs (dns_zone_id, type, host, displayHost, val, displayVal, opt) VALUES (?, 'NS', ?, ?, ?, ?, '')",
                vec![v(alias_zone), v(format!("{alias}.")), v(format!("{alias}.")), v(format!("ns.{alias}.")), v(format!("ns.{alias}."))],
            )
            .await?;
            if let Some(address) = address {
                insert(
                    conn,
                    "INSERT INTO dns_recs (dns_zone_id, type, host, displayHost, val, displayVal, opt) VALUES (?, 'A', ?, ?, ?, ?, '')",
                    vec![v(alias_zone), v(format!("{alias}.")), v(format!("{alias}.")), v(address), v(address)],
                )
                .await?;
            }
            insert(
                conn,
                "INSERT INTO domainaliases (name, displayName, dom_id, dns_zone_id, status, dns, mail, web) VALUES (?, ?, ?, ?, 0, 'true', 'true', 'true')",
                vec![v(alias), v(alias), v(dom), v(alias_zone)],
            )
            .await?;
        }
        for db in &d.databases {
            let db_id = insert(
                conn,
                "INSERT INTO data_bases (name, type, dom_id, db_server_id) VALUES (?, 'mysql', ?, 1)",
                vec![v(&db.name), v(dom)],
            )
            .await?;
            let mut first_user = None;
            for (login, password) in &db.users {
                let account = insert(
                    conn,
                    "INSERT INTO accounts (type, password) VALUES ('plain', ?)",
                    vec![v(password)],
                )
                .await?;
                let user = insert(
                    conn,
                    "INSERT INTO db_users (db_id, login, account_id) VALUES (?, ?, ?)",
                    vec![v(db_id), v(login), v(account)],
                )
                .await?;
                first_user.get_or_insert(user);
            }
            conn.exec_drop(
                "UPDATE data_bases SET default_user_id = ? WHERE id = ?",
                (first_user, db_id),
            )
            .await?;
        }
    }
    Ok(())
}
