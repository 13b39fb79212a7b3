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
    /// `None`: `limits_id` NULL.
    pub limits: Option<Set>,
    /// `None`: `perm_id` NULL ("defaults").
    pub permissions: Option<Set>,
    /// The IP pool: (address, type).
    pub pool: Vec<(String, String)>,
    /// Its `cl_param` rows (name/value settings).
    pub params: Vec<Fields>,
    /// Names of the client's domains.
    pub domains: Vec<String>,
    /// What the source holds of it that is not migrated, in words.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DomainRecord {
    pub fields: Fields,
    /// Login of the owning client (`admin` for the administrator).
    pub owner: String,
    /// `None`: `limits_id` NULL.
    pub limits: Option<Set>,
    pub hosting: Option<Hosting>,
    /// Forwarding row and its address.
    pub forwarding: Option<(Fields, Option<String>)>,
    pub admin: Option<DomainAdmin>,
    pub mail: Vec<MailName>,
    pub zone: Option<Zone>,
    /// Subdomain rows with the login of their system user.
    pub subdomains: Vec<(Fields, Option<String>)>,
    pub aliases: Vec<Alias>,
    pub databases: Vec<Database>,
    /// Its `dom_param` rows (name/value settings).
    pub params: Vec<Fields>,
    /// What the source holds of it that is not migrated, in words.
    pub warnings: Vec<String>,
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

/// A domain alias, with its own DNS zone.
#[derive(Debug, Clone)]
pub struct Alias {
    pub fields: Fields,
    pub zone: Option<Zone>,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub fields: Fields,
    /// The server as the source's DatabaseServers row names it.
    pub server: Fields,
    /// Users with their accounts.
    pub users: Vec<(Fields, Option<Fields>)>,
}

/// The columns hostmig reads and writes of a panel table: those its
/// schema (`schemas/panel.sql`) defines, by name.
pub fn columns(table: &str) -> Vec<String> {
    super::schema::columns_of(table)
}

/// Password columns: their values are never shown in a message.
pub fn is_secret(table: &str, column: &str) -> bool {
    matches!(
        (table, column),
        ("accounts", "password") | ("DatabaseServers", "admin_password")
    )
}

impl ClientRecord {
    pub fn login(&self) -> String {
        self.fields.text("login").unwrap_or_default()
    }

    /// Every row a deploy writes for the client: (table, row).
    pub fn rows(&self) -> Vec<(&'static str, &Fields)> {
        let mut out = vec![("clients", &self.fields)];
        out.extend(self.account.iter().map(|a| ("accounts", a)));
        out.extend(self.params.iter().map(|p| ("cl_param", p)));
        out
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

    /// Every row a deploy writes for the domain: (table, row). Name/value
    /// sets are not here: their values are checked as they are written.
    pub fn rows(&self) -> Vec<(&'static str, &Fields)> {
        fn zone_rows<'a>(out: &mut Vec<(&'static str, &'a Fields)>, zone: &'a Option<Zone>) {
            if let Some(z) = zone {
                out.push(("dns_zone", &z.fields));
                out.extend(z.records.iter().map(|r| ("dns_recs", r)));
            }
        }
        let mut out = vec![("domains", &self.fields)];
        zone_rows(&mut out, &self.zone);
        if let Some(h) = &self.hosting {
            out.push(("hosting", &h.fields));
            out.push(("sys_users", &h.sys_user));
            out.extend(h.sys_account.iter().map(|a| ("accounts", a)));
        }
        if let Some((f, _)) = &self.forwarding {
            out.push(("forwarding", f));
        }
        if let Some(a) = &self.admin {
            out.push(("dom_level_usrs", &a.fields));
            out.extend(a.account.iter().map(|x| ("accounts", x)));
            out.extend(a.card.iter().map(|c| ("Cards", c)));
        }
        for m in &self.mail {
            out.push(("mail", &m.fields));
            out.extend(m.account.iter().map(|a| ("accounts", a)));
        }
        out.extend(self.subdomains.iter().map(|(s, _)| ("subdomains", s)));
        for a in &self.aliases {
            out.push(("domainaliases", &a.fields));
            zone_rows(&mut out, &a.zone);
        }
        for db in &self.databases {
            out.push(("data_bases", &db.fields));
            for (u, account) in &db.users {
                out.push(("db_users", u));
                out.extend(account.iter().map(|a| ("accounts", a)));
            }
        }
        out.extend(self.params.iter().map(|p| ("dom_param", p)));
        out
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
