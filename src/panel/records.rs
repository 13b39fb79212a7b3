//! The records of a source's panel that hostmig migrates (PANEL.md), as
//! read by `source` and written by `deploy`: each row by column name, the
//! columns each table is read with, and accessors for what the engine asks
//! of them.

use std::collections::BTreeMap;

use mysql_async::Value;

/// The columns of one row, by name, values as the server typed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(BTreeMap<String, Value>);

impl Fields {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.get(column)
    }

    /// A column's value as text (`None` for NULL or a missing column).
    pub fn text(&self, column: &str) -> Option<String> {
        text(self.get(column))
    }

    pub fn insert(&mut self, column: impl Into<String>, value: Value) {
        self.0.insert(column.into(), value);
    }

    pub fn remove(&mut self, column: &str) -> Option<Value> {
        self.0.remove(column)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Fields(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, Value); N]> for Fields {
    fn from(pairs: [(String, Value); N]) -> Self {
        pairs.into_iter().collect()
    }
}

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

pub(super) const CLIENT_COLUMNS: &[&str] = &[
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
pub(super) const DOMAIN_COLUMNS: &[&str] = &[
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
pub(super) const HOSTING_COLUMNS: &[&str] = &[
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
pub(super) const SYS_USER_COLUMNS: &[&str] =
    &["id", "login", "account_id", "home", "shell", "quota"];
pub(super) const ACCOUNT_COLUMNS: &[&str] = &["id", "type", "password"];
pub(super) const CARD_COLUMNS: &[&str] = &[
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
pub(super) const MAIL_COLUMNS: &[&str] = &[
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
pub(super) const ZONE_COLUMNS: &[&str] = &[
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
pub(super) const RECORD_COLUMNS: &[&str] = &[
    "id",
    "dns_zone_id",
    "type",
    "host",
    "displayHost",
    "val",
    "displayVal",
    "opt",
];
pub(super) const SUBDOMAIN_COLUMNS: &[&str] = &[
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
pub(super) const ALIAS_COLUMNS: &[&str] = &[
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
pub(super) const DATABASE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "dom_id",
    "db_server_id",
    "default_user_id",
];
pub(super) const DB_USER_COLUMNS: &[&str] = &["id", "db_id", "login", "account_id"];
pub(super) const DB_SERVER_COLUMNS: &[&str] = &[
    "id",
    "host",
    "port",
    "type",
    "admin_login",
    "admin_password",
];

impl ClientRecord {
    pub fn login(&self) -> String {
        self.fields.text("login").unwrap_or_default()
    }
}

impl DomainRecord {
    pub fn name(&self) -> String {
        self.fields.text("name").unwrap_or_default()
    }

    /// The login of the domain's system user, when it has hosting.
    pub fn sys_login(&self) -> Option<String> {
        self.hosting.as_ref().and_then(|h| h.sys_user.text("login"))
    }

    /// The database of that name.
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases
            .iter()
            .find(|d| d.fields.text("name").as_deref() == Some(name))
    }
}

/// A column's value as text (`None` for NULL).
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}
