//! Reading a source's panel: the selected clients and domains with every
//! record PANEL.md lists, read by column name (a real Plesk has more
//! columns and tables; only these are read), ids kept only to follow
//! references, values kept as the server typed them.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

use super::PanelError;

/// The columns of one row, by name.
pub type Fields = BTreeMap<String, Value>;

/// A name/value set (Limits, Permissions).
pub type Set = Vec<(String, Value)>;

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub fields: Fields,
    pub account: Option<Fields>,
    pub limits: Set,
    /// `None`: `perm_id` NULL.
    pub permissions: Option<Set>,
    /// The IP pool: (address, type).
    pub pool: Vec<(String, String)>,
    /// Names of the client's domains.
    pub domains: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DomainRecord {
    pub fields: Fields,
    /// Login of the owning client (`admin` for the administrator).
    pub owner: String,
    pub limits: Set,
    pub hosting: Option<Hosting>,
    /// Forwarding row and its address.
    pub forwarding: Option<(Fields, Option<String>)>,
    pub admin: Option<DomainAdmin>,
    pub mail: Vec<MailName>,
    pub zone: Option<Zone>,
    /// Subdomain rows with the login of their system user.
    pub subdomains: Vec<(Fields, Option<String>)>,
    pub aliases: Vec<Fields>,
    pub databases: Vec<Database>,
}

#[derive(Debug, Clone)]
pub struct Hosting {
    pub fields: Fields,
    /// The hosting address (`None` when `ip_address_id` is 0: `misc.def_ip_id`).
    pub ip: Option<String>,
    pub sys_user: Fields,
    pub sys_account: Option<Fields>,
}

#[derive(Debug, Clone)]
pub struct DomainAdmin {
    pub fields: Fields,
    pub account: Option<Fields>,
    pub card: Option<Fields>,
    pub permissions: Option<Set>,
}

#[derive(Debug, Clone)]
pub struct MailName {
    pub fields: Fields,
    pub account: Option<Fields>,
    pub aliases: Vec<String>,
    pub redirects: Vec<String>,
    pub permissions: Option<Set>,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub fields: Fields,
    pub records: Vec<Fields>,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub fields: Fields,
    /// The server as the source's DatabaseServers row names it.
    pub server: Fields,
    /// Users with their accounts.
    pub users: Vec<(Fields, Option<Fields>)>,
}

const CLIENT_COLUMNS: &[&str] = &[
    "id",
    "login",
    "account_id",
    "pname",
    "cname",
    "status",
    "phone",
    "fax",
    "email",
    "address",
    "city",
    "state",
    "pcode",
    "country",
    "locale",
    "limits_id",
    "perm_id",
    "pool_id",
    "cr_date",
];
const DOMAIN_COLUMNS: &[&str] = &[
    "id",
    "name",
    "displayName",
    "cl_id",
    "status",
    "htype",
    "dns_zone_id",
    "limits_id",
    "real_size",
    "cr_date",
];
const HOSTING_COLUMNS: &[&str] = &[
    "dom_id",
    "sys_user_id",
    "ip_address_id",
    "ssi",
    "php",
    "php_safe_mode",
    "cgi",
    "perl",
    "python",
    "fastcgi",
    "ssl",
    "same_ssl",
    "webstat",
    "traffic_bandwidth",
    "max_connection",
];
const SYS_USER_COLUMNS: &[&str] = &["id", "login", "account_id", "home", "shell", "quota"];
const ACCOUNT_COLUMNS: &[&str] = &["id", "type", "password"];
const CARD_COLUMNS: &[&str] = &[
    "id",
    "personalname",
    "companyname",
    "phone",
    "fax",
    "email",
    "address",
    "city",
    "state",
    "zip",
    "country",
];
const MAIL_COLUMNS: &[&str] = &[
    "id",
    "dom_id",
    "mail_name",
    "account_id",
    "postbox",
    "redirect",
    "redir_addr",
    "mail_group",
    "autoresponder",
    "spamfilter",
    "virusfilter",
    "mbox_quota",
    "perm_id",
];
const ZONE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "displayName",
    "status",
    "email",
    "type",
    "ttl",
    "refresh",
    "retry",
    "expire",
    "minimum",
    "serial_format",
    "serial",
];
const RECORD_COLUMNS: &[&str] = &[
    "id",
    "dns_zone_id",
    "type",
    "host",
    "displayHost",
    "val",
    "displayVal",
    "opt",
];
const SUBDOMAIN_COLUMNS: &[&str] = &[
    "id",
    "dom_id",
    "name",
    "displayName",
    "sys_user_type",
    "sys_user_id",
    "ssi",
    "php",
    "cgi",
    "perl",
    "python",
    "fastcgi",
];
const ALIAS_COLUMNS: &[&str] = &[
    "id",
    "name",
    "displayName",
    "dom_id",
    "dns_zone_id",
    "status",
    "dns",
    "mail",
    "web",
];
const DATABASE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "dom_id",
    "db_server_id",
    "default_user_id",
];
const DB_USER_COLUMNS: &[&str] = &["id", "db_id", "login", "account_id"];
const DB_SERVER_COLUMNS: &[&str] = &[
    "id",
    "host",
    "port",
    "type",
    "admin_login",
    "admin_password",
];

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

/// A column's value as text (`None` for NULL).
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a Value {
    fields.get(name).unwrap_or(&Value::NULL)
}

async fn ip_of(conn: &mut Conn, id: &Value) -> Result<Option<String>, PanelError> {
    Ok(one(conn, "IP_Addresses", &["id", "ip_address"], id)
        .await?
        .and_then(|r| text(r.get("ip_address"))))
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
                    text(ip.get("ip_address")).unwrap_or_default(),
                    text(ip.get("type")).unwrap_or_default(),
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
    .filter_map(|r| text(r.get("name")))
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
        .and_then(|c| text(c.get("login")))
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
                    text(fields.get("name")).unwrap_or_default()
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
            aliases: aliases
                .iter()
                .filter_map(|r| text(r.get("alias")))
                .collect(),
            redirects: redirects
                .iter()
                .filter_map(|r| text(r.get("address")))
                .collect(),
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
        .and_then(|u| text(u.get("login")));
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
                text(db.get("name")).unwrap_or_default()
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

/// What a plan needs to know of these records.
pub fn facts(
    clients: &[ClientRecord],
    domains: &[DomainRecord],
) -> crate::migration::plan::SourceFacts {
    let mut facts = crate::migration::plan::SourceFacts::default();
    for c in clients {
        let login = text(c.fields.get("login")).unwrap_or_default();
        facts.pools.insert(
            login.clone(),
            c.pool.iter().map(|(a, _)| a.clone()).collect(),
        );
        facts.clients.insert(login, c.domains.clone());
    }
    for d in domains {
        let addresses = d
            .hosting
            .as_ref()
            .and_then(|h| h.ip.clone())
            .into_iter()
            .chain(d.forwarding.as_ref().and_then(|(_, ip)| ip.clone()))
            .collect();
        let name = text(d.fields.get("name")).unwrap_or_default();
        let databases = d
            .databases
            .iter()
            .map(|db| crate::migration::plan::SourceDb {
                name: text(db.fields.get("name")).unwrap_or_default(),
                kind: text(db.fields.get("type")).unwrap_or_default(),
                host: text(db.server.get("host")).unwrap_or_default(),
                port: text(db.server.get("port"))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(3306),
                users: db
                    .users
                    .iter()
                    .filter_map(|(u, _)| text(u.get("login")))
                    .collect(),
            })
            .collect();
        facts.databases.insert(name.clone(), databases);
        facts.domains.insert(name, addresses);
    }
    facts
}
