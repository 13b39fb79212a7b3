//! Reading a source's panel as it really is (PANEL.md, "Real sources"):
//! each table's columns are discovered first, and of every table hostmig
//! migrates it reads by name the columns its own schema knows that the
//! source has. Extra tables and columns are ignored; a column the source
//! lacks (an older Plesk) takes the destination's default, and the
//! object's warnings say so. NULL is taken as NULL everywhere but in the
//! keys and owner references. Ids are kept only to follow references.
//! What the source holds of an object that hostmig does not migrate yet
//! (PANEL.md, "Not migrated yet") becomes a warning of that object.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

use super::records::columns;
pub use super::records::{
    text, Alias, ClientRecord, Database, DomainAdmin, DomainRecord, Fields, Hosting, MailName, Set,
    Zone,
};
use super::PanelError;

mod left_behind;

/// A source's panel database, with the columns of each of its tables.
pub struct Reader<'a> {
    conn: &'a mut Conn,
    /// Table (lower case) → its name and its columns, as the source
    /// spells them (a server with lower_case_table_names spells them
    /// otherwise than Plesk).
    catalog: BTreeMap<String, (String, Vec<String>)>,
    /// Tables read for the object being read now (for its warnings).
    touched: BTreeSet<&'static str>,
}

fn read_failed(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> PanelError {
    let what = what.into();
    move |source| PanelError::Source { what, source }
}

impl<'a> Reader<'a> {
    /// Discovers the tables and columns of the connection's database.
    pub async fn open(conn: &'a mut Conn) -> Result<Reader<'a>, PanelError> {
        let rows: Vec<(String, String)> = conn
            .query(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
            )
            .await
            .map_err(read_failed("its tables and columns"))?;
        let mut catalog: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for (table, column) in rows {
            catalog
                .entry(table.to_ascii_lowercase())
                .or_insert_with(|| (table, Vec::new()))
                .1
                .push(column);
        }
        for required in ["clients", "domains", "accounts"] {
            if !catalog.contains_key(required) {
                return Err(PanelError::SourceSchema {
                    what: format!("the table {required}"),
                });
            }
        }
        Ok(Reader {
            conn,
            catalog,
            touched: BTreeSet::new(),
        })
    }

    /// The source's spelling of a table's name, if it has the table.
    fn table(&self, table: &str) -> Option<&str> {
        self.catalog
            .get(&table.to_ascii_lowercase())
            .map(|(name, _)| name.as_str())
    }

    /// The source's spelling of `column` of `table`, if it has it.
    fn column(&self, table: &str, column: &str) -> Option<&str> {
        self.catalog
            .get(&table.to_ascii_lowercase())?
            .1
            .iter()
            .find(|c| c.eq_ignore_ascii_case(column))
            .map(String::as_str)
    }

    /// The columns of hostmig's schema that the source's `table` lacks.
    fn missing(&self, table: &str) -> Vec<String> {
        if self.table(table).is_none() {
            return Vec::new();
        }
        columns(table)
            .into_iter()
            .filter(|c| c != "id" && self.column(table, c).is_none())
            .collect()
    }

    /// Rows of `table` where `key` is `value`, with every column hostmig
    /// knows that the source has (`columns`: these instead); none when
    /// the source has no such table or key column.
    async fn rows(
        &mut self,
        table: &'static str,
        wanted: Option<&[&str]>,
        key: &str,
        value: &Value,
        order: Option<&str>,
    ) -> Result<Vec<Fields>, PanelError> {
        if matches!(value, Value::NULL) {
            return Ok(Vec::new());
        }
        let (Some(name), Some(key_column)) = (
            self.table(table).map(str::to_owned),
            self.column(table, key).map(str::to_owned),
        ) else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = match wanted {
            Some(w) => w.iter().map(|c| (*c).to_owned()).collect(),
            None => columns(table),
        };
        let present: Vec<(String, String)> = names
            .into_iter()
            .filter_map(|ours| {
                let theirs = self.column(table, &ours)?.to_owned();
                Some((ours, theirs))
            })
            .collect();
        if present.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = present.iter().map(|(_, c)| format!("`{c}`")).collect();
        let order = order
            .and_then(|o| self.column(table, o))
            .map(|o| format!(" ORDER BY `{o}`"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM `{name}` WHERE `{key_column}` = ?{order}",
            list.join(", ")
        );
        let rows: Vec<Row> = self
            .conn
            .exec(sql, Params::Positional(vec![value.clone()]))
            .await
            .map_err(read_failed(format!("table {table}")))?;
        if wanted.is_none() && !rows.is_empty() {
            self.touched.insert(table);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                present
                    .iter()
                    .enumerate()
                    .map(|(i, (ours, _))| {
                        (ours.clone(), row.as_ref(i).cloned().unwrap_or(Value::NULL))
                    })
                    .collect()
            })
            .collect())
    }

    async fn one(&mut self, table: &'static str, id: &Value) -> Result<Option<Fields>, PanelError> {
        Ok(self
            .rows(table, None, "id", id, None)
            .await?
            .into_iter()
            .next())
    }

    /// A name/value set (Limits, Permissions); `None` for a NULL id.
    async fn set(
        &mut self,
        table: &'static str,
        name_col: &str,
        id: &Value,
    ) -> Result<Option<Set>, PanelError> {
        if matches!(id, Value::NULL) {
            return Ok(None);
        }
        let rows = self
            .rows(table, Some(&[name_col, "value"]), "id", id, Some(name_col))
            .await?;
        Ok(Some(
            rows.into_iter()
                .map(|mut r| {
                    let name = r.text(name_col).unwrap_or_default();
                    (name, r.remove("value").unwrap_or(Value::NULL))
                })
                .collect(),
        ))
    }

    async fn account(&mut self, id: &Value) -> Result<Option<Fields>, PanelError> {
        self.one("accounts", id).await
    }

    async fn permissions(&mut self, id: &Value) -> Result<Option<Set>, PanelError> {
        self.set("Permissions", "permission", id).await
    }

    async fn ip_of(&mut self, id: &Value) -> Result<Option<String>, PanelError> {
        Ok(self
            .rows("IP_Addresses", Some(&["ip_address"]), "id", id, None)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.text("ip_address")))
    }

    /// How many rows of `table` have `column` equal to `value` (0 when the
    /// source has no such table or column).
    async fn count(&mut self, table: &str, column: &str, value: &Value) -> Result<u64, PanelError> {
        let (Some(name), Some(column)) = (
            self.table(table).map(str::to_owned),
            self.column(table, column).map(str::to_owned),
        ) else {
            return Ok(0);
        };
        let found: Option<u64> = self
            .conn
            .exec_first(
                format!("SELECT COUNT(*) FROM `{name}` WHERE `{column}` = ?"),
                (value.clone(),),
            )
            .await
            .map_err(read_failed(format!("table {table}")))?;
        Ok(found.unwrap_or(0))
    }

    /// Warnings for the columns the tables read for this object lack.
    fn missing_warnings(&mut self) -> Vec<String> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .filter_map(|t| {
                let missing = self.missing(t);
                (!missing.is_empty()).then(|| {
                    format!(
                        "the source's table {t} has no column{} {} (an older Plesk): the destination's default{} used",
                        if missing.len() > 1 { "s" } else { "" },
                        missing.join(", "),
                        if missing.len() > 1 { "s were" } else { " was" }
                    )
                })
            })
            .collect()
    }

    /// Reads the clients with these logins; answers them and the logins
    /// the source does not have.
    pub async fn clients(
        &mut self,
        logins: &[String],
    ) -> Result<(Vec<ClientRecord>, Vec<String>), PanelError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for login in logins {
            let rows = self
                .rows("clients", None, "login", &login.as_str().into(), None)
                .await?;
            match rows.into_iter().next() {
                Some(fields) => found.push(self.client(fields).await?),
                None => missing.push(login.clone()),
            }
        }
        Ok((found, missing))
    }

    async fn client(&mut self, fields: Fields) -> Result<ClientRecord, PanelError> {
        let login = fields.text("login").unwrap_or_default();
        let object = format!("client {login}");
        let id = key(&fields, "clients", "id", &object)?;
        let account = self.account(field(&fields, "account_id")).await?;
        let limits = self
            .set("Limits", "limit_name", field(&fields, "limits_id"))
            .await?;
        let permissions = self.permissions(field(&fields, "perm_id")).await?;
        let mut pool = Vec::new();
        for r in self
            .rows(
                "Repository",
                Some(&["component_id"]),
                "rep_id",
                field(&fields, "pool_id"),
                Some("component_id"),
            )
            .await?
        {
            if let Some(ip) = self
                .rows(
                    "IP_Addresses",
                    Some(&["ip_address", "type"]),
                    "id",
                    field(&r, "component_id"),
                    None,
                )
                .await?
                .into_iter()
                .next()
            {
                pool.push((
                    ip.text("ip_address").unwrap_or_default(),
                    ip.text("type").unwrap_or_default(),
                ));
            }
        }
        let params = self
            .rows("cl_param", None, "cl_id", &id, Some("param"))
            .await?;
        let domains = self
            .rows("domains", Some(&["name"]), "cl_id", &id, Some("name"))
            .await?
            .iter()
            .filter_map(|r| r.text("name"))
            .collect();
        let mut warnings = self.missing_warnings();
        if let Some(w) = sym_warning(&[(&object, account.as_ref())]) {
            warnings.push(w);
        }
        Ok(ClientRecord {
            fields,
            account,
            limits,
            permissions,
            pool,
            params,
            domains,
            warnings,
        })
    }

    /// Reads the domains with these names; answers them and the names the
    /// source does not have.
    pub async fn domains(
        &mut self,
        names: &[String],
    ) -> Result<(Vec<DomainRecord>, Vec<String>), PanelError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let rows = self
                .rows("domains", None, "name", &name.as_str().into(), None)
                .await?;
            match rows.into_iter().next() {
                Some(fields) => found.push(self.domain(fields).await?),
                None => missing.push(name.clone()),
            }
        }
        Ok((found, missing))
    }

    async fn zone(&mut self, id: &Value) -> Result<Option<Zone>, PanelError> {
        let Some(fields) = self.one("dns_zone", id).await? else {
            return Ok(None);
        };
        let records = self
            .rows(
                "dns_recs",
                None,
                "dns_zone_id",
                field(&fields, "id"),
                Some("id"),
            )
            .await?;
        Ok(Some(Zone { fields, records }))
    }

    async fn domain(&mut self, fields: Fields) -> Result<DomainRecord, PanelError> {
        let name = fields.text("name").unwrap_or_default();
        let object = format!("domain {name}");
        let id = key(&fields, "domains", "id", &object)?;
        let owner_id = key(&fields, "domains", "cl_id", &object)?;
        let owner = self
            .rows("clients", Some(&["login"]), "id", &owner_id, None)
            .await?
            .into_iter()
            .next()
            .and_then(|c| c.text("login"))
            .unwrap_or_else(|| "admin".to_owned());
        let limits = self
            .set("Limits", "limit_name", field(&fields, "limits_id"))
            .await?;
        let hosting = match self
            .rows("hosting", None, "dom_id", &id, None)
            .await?
            .into_iter()
            .next()
        {
            Some(h) => {
                let ip = self.ip_of(field(&h, "ip_address_id")).await?;
                let sys_user = self
                    .one("sys_users", field(&h, "sys_user_id"))
                    .await?
                    .ok_or_else(|| PanelError::SourceSchema {
                        what: format!("the system user of {object} (hosting.sys_user_id)"),
                    })?;
                let sys_account = self.account(field(&sys_user, "account_id")).await?;
                Some(Hosting {
                    fields: h,
                    ip,
                    sys_user,
                    sys_account,
                })
            }
            None => None,
        };
        let forwarding = match self
            .rows("forwarding", None, "dom_id", &id, None)
            .await?
            .into_iter()
            .next()
        {
            Some(f) => {
                let ip = self.ip_of(field(&f, "ip_address_id")).await?;
                Some((f, ip))
            }
            None => None,
        };
        let admin = match self
            .rows("dom_level_usrs", None, "dom_id", &id, None)
            .await?
            .into_iter()
            .next()
        {
            Some(a) => Some(DomainAdmin {
                account: self.account(field(&a, "account_id")).await?,
                card: self.one("Cards", field(&a, "card_id")).await?,
                permissions: self.permissions(field(&a, "perm_id")).await?,
                fields: a,
            }),
            None => None,
        };
        let mut mail = Vec::new();
        for m in self
            .rows("mail", None, "dom_id", &id, Some("mail_name"))
            .await?
        {
            let mn = field(&m, "id").clone();
            let aliases = self
                .rows(
                    "mail_aliases",
                    Some(&["alias"]),
                    "mn_id",
                    &mn,
                    Some("alias"),
                )
                .await?;
            let redirects = self
                .rows(
                    "mail_redir",
                    Some(&["address"]),
                    "mn_id",
                    &mn,
                    Some("address"),
                )
                .await?;
            mail.push(MailName {
                account: self.account(field(&m, "account_id")).await?,
                aliases: aliases.iter().filter_map(|r| r.text("alias")).collect(),
                redirects: redirects.iter().filter_map(|r| r.text("address")).collect(),
                permissions: self.permissions(field(&m, "perm_id")).await?,
                fields: m,
            });
        }
        let zone = self.zone(field(&fields, "dns_zone_id")).await?;
        let mut subdomains = Vec::new();
        for s in self
            .rows("subdomains", None, "dom_id", &id, Some("name"))
            .await?
        {
            let login = self
                .rows(
                    "sys_users",
                    Some(&["login"]),
                    "id",
                    field(&s, "sys_user_id"),
                    None,
                )
                .await?
                .into_iter()
                .next()
                .and_then(|u| u.text("login"));
            subdomains.push((s, login));
        }
        let mut aliases = Vec::new();
        for a in self
            .rows("domainaliases", None, "dom_id", &id, Some("name"))
            .await?
        {
            let zone = self.zone(field(&a, "dns_zone_id")).await?;
            aliases.push(Alias { fields: a, zone });
        }
        let mut databases = Vec::new();
        for db in self
            .rows("data_bases", None, "dom_id", &id, Some("name"))
            .await?
        {
            let db_name = db.text("name").unwrap_or_default();
            let server = self
                .one("DatabaseServers", field(&db, "db_server_id"))
                .await?
                .ok_or_else(|| PanelError::SourceSchema {
                    what: format!("the database server of database {db_name} of {object}"),
                })?;
            let mut users = Vec::new();
            for u in self
                .rows("db_users", None, "db_id", field(&db, "id"), Some("login"))
                .await?
            {
                let account = self.account(field(&u, "account_id")).await?;
                users.push((u, account));
            }
            databases.push(Database {
                fields: db,
                server,
                users,
            });
        }
        let params = self
            .rows("dom_param", None, "dom_id", &id, Some("param"))
            .await?;
        let mut record = DomainRecord {
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
            params,
            warnings: Vec::new(),
        };
        let mut warnings = self.missing_warnings();
        warnings.extend(self.left_behind(&record, &id).await?);
        record.warnings = warnings;
        Ok(record)
    }
}

/// The warning for passwords the source encrypted with its own key
/// (`accounts.type` `sym`), naming whose they are.
fn sym_warning(accounts: &[(&str, Option<&Fields>)]) -> Option<String> {
    let whose: Vec<&str> = accounts
        .iter()
        .filter(|(_, a)| a.and_then(|a| a.text("type")).as_deref() == Some("sym"))
        .map(|(w, _)| *w)
        .collect();
    (!whose.is_empty()).then(|| {
        format!(
            "the password{} of {} {} encrypted with the source's own key (sym) and will not work on the destination: set {} there",
            if whose.len() > 1 { "s" } else { "" },
            whose.join(", "),
            if whose.len() > 1 { "are" } else { "is" },
            if whose.len() > 1 { "new ones" } else { "a new one" }
        )
    })
}

fn field<'f>(fields: &'f Fields, name: &str) -> &'f Value {
    fields.get(name).unwrap_or(&Value::NULL)
}

/// A key or owner reference, which a real source never leaves NULL.
fn key(fields: &Fields, table: &str, column: &str, object: &str) -> Result<Value, PanelError> {
    match fields.get(column) {
        Some(Value::NULL) | None => Err(PanelError::SourceValue {
            table: table.to_owned(),
            column: column.to_owned(),
            object: object.to_owned(),
            problem: "is NULL (a key or owner reference must not be)".to_owned(),
        }),
        Some(v) => Ok(v.clone()),
    }
}
