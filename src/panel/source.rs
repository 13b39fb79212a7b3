//! Reading a source's panel: the selected clients and domains with every
//! record PANEL.md lists, read by column name (a real Plesk has more
//! columns and tables; only these are read), ids kept only to follow
//! references, values kept as the server typed them.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

pub use super::records::{
    text, ClientRecord, Database, DomainAdmin, DomainRecord, Fields, Hosting, MailName, Set, Zone,
};
use super::records::{
    ACCOUNT_COLUMNS, ALIAS_COLUMNS, CARD_COLUMNS, CLIENT_COLUMNS, DATABASE_COLUMNS,
    DB_SERVER_COLUMNS, DB_USER_COLUMNS, DOMAIN_COLUMNS, HOSTING_COLUMNS, MAIL_COLUMNS,
    RECORD_COLUMNS, SUBDOMAIN_COLUMNS, SYS_USER_COLUMNS, ZONE_COLUMNS,
};
use super::PanelError;

/// `SELECT columns FROM table WHERE condition`, each row by column name.
async fn select(
    conn: &mut Conn,
    table: &str,
    columns: &[&str],
    condition: &str,
    params: Vec<Value>,
) -> Result<Vec<Fields>, PanelError> {
    let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    let sql = format!(
        "SELECT {} FROM `{table}` WHERE {condition}",
        list.join(", ")
    );
    let rows: Vec<Row> = conn
        .exec(sql, Params::Positional(params))
        .await
        .map_err(|e| schema_error(e, table))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        (*c).to_owned(),
                        row.as_ref(i).cloned().unwrap_or(Value::NULL),
                    )
                })
                .collect()
        })
        .collect())
}

/// A missing table or column says what is missing, not just "SQL error".
fn schema_error(e: mysql_async::Error, table: &str) -> PanelError {
    if let mysql_async::Error::Server(server) = &e {
        if server.code == 1146 || server.code == 1054 {
            return PanelError::Schema {
                what: format!("table {table} or one of its columns ({})", server.message),
            };
        }
    }
    PanelError::Sql(e)
}

async fn one(
    conn: &mut Conn,
    table: &str,
    columns: &[&str],
    id: &Value,
) -> Result<Option<Fields>, PanelError> {
    if matches!(id, Value::NULL) {
        return Ok(None);
    }
    Ok(select(conn, table, columns, "`id` = ?", vec![id.clone()])
        .await?
        .into_iter()
        .next())
}

async fn set(
    conn: &mut Conn,
    table: &str,
    name_col: &str,
    id: &Value,
) -> Result<Option<Set>, PanelError> {
    if matches!(id, Value::NULL) {
        return Ok(None);
    }
    let rows = select(
        conn,
        table,
        &[name_col, "value"],
        &format!("`id` = ? ORDER BY `{name_col}`"),
        vec![id.clone()],
    )
    .await?;
    Ok(Some(
        rows.into_iter()
            .map(|mut r| {
                let name = text(r.get(name_col)).unwrap_or_default();
                (name, r.remove("value").unwrap_or(Value::NULL))
            })
            .collect(),
    ))
}

async fn account(conn: &mut Conn, id: &Value) -> Result<Option<Fields>, PanelError> {
    one(conn, "accounts", ACCOUNT_COLUMNS, id).await
}

async fn permissions(conn: &mut Conn, id: &Value) -> Result<Option<Set>, PanelError> {
    set(conn, "Permissions", "permission", id).await
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a Value {
    fields.get(name).unwrap_or(&Value::NULL)
}

async fn ip_of(conn: &mut Conn, id: &Value) -> Result<Option<String>, PanelError> {
    Ok(one(conn, "IP_Addresses", &["id", "ip_address"], id)
        .await?
        .and_then(|r| r.text("ip_address")))
}

/// Reads the clients with these logins; answers them and the logins that
/// the source does not have.
pub async fn clients(
    conn: &mut Conn,
    logins: &[String],
) -> Result<(Vec<ClientRecord>, Vec<String>), PanelError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for login in logins {
        match by_key(conn, "clients", CLIENT_COLUMNS, "login", login).await? {
            Some(fields) => found.push(client(conn, fields).await?),
            None => missing.push(login.clone()),
        }
    }
    Ok((found, missing))
}

/// The row of `table` whose `key` column is `value`.
async fn by_key(
    conn: &mut Conn,
    table: &str,
    columns: &[&str],
    key: &str,
    value: &str,
) -> Result<Option<Fields>, PanelError> {
    Ok(select(
        conn,
        table,
        columns,
        &format!("`{key}` = ?"),
        vec![value.into()],
    )
    .await?
    .into_iter()
    .next())
}

async fn client(conn: &mut Conn, fields: Fields) -> Result<ClientRecord, PanelError> {
    let account = account(conn, field(&fields, "account_id")).await?;
    let limits = set(conn, "Limits", "limit_name", field(&fields, "limits_id"))
        .await?
        .unwrap_or_default();
    let permissions = permissions(conn, field(&fields, "perm_id")).await?;
    let mut pool = Vec::new();
    if !matches!(field(&fields, "pool_id"), Value::NULL) {
        for r in select(
            conn,
            "Repository",
            &["rep_id", "component_id"],
            "`rep_id` = ? ORDER BY `component_id`",
            vec![field(&fields, "pool_id").clone()],
        )
        .await?
        {
            if let Some(ip) = one(
                conn,
                "IP_Addresses",
                &["id", "ip_address", "type"],
                field(&r, "component_id"),
            )
            .await?
            {
                pool.push((
                    ip.text("ip_address").unwrap_or_default(),
                    ip.text("type").unwrap_or_default(),
                ));
            }
        }
    }
    let domains = select(
        conn,
        "domains",
        &["name"],
        "`cl_id` = ? ORDER BY `name`",
        vec![field(&fields, "id").clone()],
    )
    .await?
    .iter()
    .filter_map(|r| r.text("name"))
    .collect();
    Ok(ClientRecord {
        fields,
        account,
        limits,
        permissions,
        pool,
        domains,
    })
}

/// Reads the domains with these names; answers them and the names the
/// source does not have.
pub async fn domains(
    conn: &mut Conn,
    names: &[String],
) -> Result<(Vec<DomainRecord>, Vec<String>), PanelError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match by_key(conn, "domains", DOMAIN_COLUMNS, "name", name).await? {
            Some(fields) => found.push(domain(conn, fields).await?),
            None => missing.push(name.clone()),
        }
    }
    Ok((found, missing))
}

async fn domain(conn: &mut Conn, fields: Fields) -> Result<DomainRecord, PanelError> {
    let id = field(&fields, "id").clone();
    let owner = one(conn, "clients", &["id", "login"], field(&fields, "cl_id"))
        .await?
        .and_then(|c| c.text("login"))
        .unwrap_or_else(|| "admin".to_owned());
    let limits = set(conn, "Limits", "limit_name", field(&fields, "limits_id"))
        .await?
        .unwrap_or_default();

    let hosting = match select(
        conn,
        "hosting",
        HOSTING_COLUMNS,
        "`dom_id` = ?",
        vec![id.clone()],
    )
    .await?
    .into_iter()
    .next()
    {
        Some(h) => {
            let ip = ip_of(conn, field(&h, "ip_address_id")).await?;
            let sys_user = one(
                conn,
                "sys_users",
                SYS_USER_COLUMNS,
                field(&h, "sys_user_id"),
            )
            .await?
            .ok_or_else(|| PanelError::Schema {
                what: format!(
                    "the system user of domain {}",
                    fields.text("name").unwrap_or_default()
                ),
            })?;
            let sys_account = account(conn, field(&sys_user, "account_id")).await?;
            Some(Hosting {
                fields: h,
                ip,
                sys_user,
                sys_account,
            })
        }
        None => None,
    };
    let forwarding = match select(
        conn,
        "forwarding",
        &["dom_id", "ip_address_id", "redirect"],
        "`dom_id` = ?",
        vec![id.clone()],
    )
    .await?
    .into_iter()
    .next()
    {
        Some(f) => {
            let ip = ip_of(conn, field(&f, "ip_address_id")).await?;
            Some((f, ip))
        }
        None => None,
    };
    let admin = match select(
        conn,
        "dom_level_usrs",
        &["dom_id", "account_id", "state", "card_id", "perm_id"],
        "`dom_id` = ?",
        vec![id.clone()],
    )
    .await?
    .into_iter()
    .next()
    {
        Some(a) => Some(DomainAdmin {
            account: account(conn, field(&a, "account_id")).await?,
            card: one(conn, "Cards", CARD_COLUMNS, field(&a, "card_id")).await?,
            permissions: permissions(conn, field(&a, "perm_id")).await?,
            fields: a,
        }),
        None => None,
    };
    let mut mail = Vec::new();
    for m in select(
        conn,
        "mail",
        MAIL_COLUMNS,
        "`dom_id` = ? ORDER BY `mail_name`",
        vec![id.clone()],
    )
    .await?
    {
        let mn = field(&m, "id").clone();
        let aliases = select(
            conn,
            "mail_aliases",
            &["alias"],
            "`mn_id` = ? ORDER BY `alias`",
            vec![mn.clone()],
        )
        .await?;
        let redirects = select(
            conn,
            "mail_redir",
            &["address"],
            "`mn_id` = ? ORDER BY `address`",
            vec![mn],
        )
        .await?;
        mail.push(MailName {
            account: account(conn, field(&m, "account_id")).await?,
            aliases: aliases.iter().filter_map(|r| r.text("alias")).collect(),
            redirects: redirects.iter().filter_map(|r| r.text("address")).collect(),
            permissions: permissions(conn, field(&m, "perm_id")).await?,
            fields: m,
        });
    }
    let zone = match one(
        conn,
        "dns_zone",
        ZONE_COLUMNS,
        field(&fields, "dns_zone_id"),
    )
    .await?
    {
        Some(z) => {
            let records = select(
                conn,
                "dns_recs",
                RECORD_COLUMNS,
                "`dns_zone_id` = ? ORDER BY `id`",
                vec![field(&z, "id").clone()],
            )
            .await?;
            Some(Zone { fields: z, records })
        }
        None => None,
    };
    let mut subdomains = Vec::new();
    for s in select(
        conn,
        "subdomains",
        SUBDOMAIN_COLUMNS,
        "`dom_id` = ? ORDER BY `name`",
        vec![id.clone()],
    )
    .await?
    {
        let login = one(
            conn,
            "sys_users",
            &["id", "login"],
            field(&s, "sys_user_id"),
        )
        .await?
        .and_then(|u| u.text("login"));
        subdomains.push((s, login));
    }
    let aliases = select(
        conn,
        "domainaliases",
        ALIAS_COLUMNS,
        "`dom_id` = ? ORDER BY `name`",
        vec![id.clone()],
    )
    .await?;
    let mut databases = Vec::new();
    for db in select(
        conn,
        "data_bases",
        DATABASE_COLUMNS,
        "`dom_id` = ? ORDER BY `name`",
        vec![id.clone()],
    )
    .await?
    {
        let server = one(
            conn,
            "DatabaseServers",
            DB_SERVER_COLUMNS,
            field(&db, "db_server_id"),
        )
        .await?
        .ok_or_else(|| PanelError::Schema {
            what: format!(
                "the database server of database {}",
                db.text("name").unwrap_or_default()
            ),
        })?;
        let mut users = Vec::new();
        for u in select(
            conn,
            "db_users",
            DB_USER_COLUMNS,
            "`db_id` = ? ORDER BY `login`",
            vec![field(&db, "id").clone()],
        )
        .await?
        {
            let account = account(conn, field(&u, "account_id")).await?;
            users.push((u, account));
        }
        databases.push(Database {
            fields: db,
            server,
            users,
        });
    }
    Ok(DomainRecord {
        fields,
        owner,
        limits,
        hosting,
        forwarding,
        admin,
        mail,
        zone,
        subdomains,
        aliases,
        databases,
    })
}
