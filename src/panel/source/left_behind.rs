//! What the source holds of a domain that hostmig does not migrate yet
//! (PANEL.md, "Not migrated yet"): counted, and named in the domain's
//! warnings.

use mysql_async::Value;

use mysql_async::prelude::Queryable;

use super::{field, read_failed, sym_warning, DomainRecord, Fields, PanelError, Reader};

impl Reader<'_> {
    /// What the source holds of a domain that hostmig does not migrate yet
    /// (PANEL.md, "Not migrated yet"), one warning per kind.
    pub(super) async fn left_behind(
        &mut self,
        d: &DomainRecord,
        id: &Value,
    ) -> Result<Vec<String>, PanelError> {
        let name = d.name();
        let mut out = Vec::new();
        let behind = |what: String| {
            format!("{what} stayed behind on the source (hostmig does not migrate them yet): set them up on the destination by hand")
        };
        let plural = |n: u64, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        // Certificates: the domain's certificate repository (Plesk 9 on),
        // or its hosting's certificate (Plesk 8).
        let mut certificates = 0;
        if self.table("certificates").is_some() {
            for (table, column, key_column) in [
                ("domains", "cert_rep_id", "id"),
                ("hosting", "certificate_id", "dom_id"),
            ] {
                let (Some(t), Some(c), Some(k)) = (
                    self.table(table).map(str::to_owned),
                    self.column(table, column).map(str::to_owned),
                    self.column(table, key_column).map(str::to_owned),
                ) else {
                    continue;
                };
                let v: Option<Option<u64>> = self
                    .conn
                    .exec_first(
                        format!("SELECT `{c}` FROM `{t}` WHERE `{k}` = ?"),
                        (id.clone(),),
                    )
                    .await
                    .map_err(read_failed(format!("table {table}")))?;
                match (column, v.flatten()) {
                    (_, None | Some(0)) => {}
                    // A repository of certificates (Plesk 9 on).
                    ("cert_rep_id", Some(rep)) => {
                        certificates += self.count("Repository", "rep_id", &rep.into()).await?
                    }
                    // The hosting's own certificate (Plesk 8).
                    (_, Some(_)) => certificates += 1,
                }
            }
        }
        if certificates > 0 {
            out.push(behind(plural(
                certificates,
                "SSL certificate",
                "SSL certificates",
            )));
        }
        if self.count("anon_ftp", "dom_id", id).await? > 0 {
            out.push(behind("the anonymous FTP settings".to_owned()));
        }
        let web_users = self.count("web_users", "dom_id", id).await?;
        if web_users > 0 {
            out.push(behind(plural(web_users, "web user", "web users")));
        }
        let dirs = self.count("protected_dirs", "dom_id", id).await?;
        if dirs > 0 {
            out.push(behind(format!(
                "{} (with their users)",
                plural(dirs, "protected directory", "protected directories")
            )));
        }
        let lists = self.count("MailLists", "dom_id", id).await?;
        if lists > 0 {
            out.push(behind(plural(lists, "mailing list", "mailing lists")));
        }
        let mut responders = Vec::new();
        let mut filters = Vec::new();
        for m in &d.mail {
            let mail_name = m.fields.text("mail_name").unwrap_or_default();
            if self
                .count("mail_resp", "mn_id", field(&m.fields, "id"))
                .await?
                > 0
            {
                responders.push(format!("{mail_name}@{name}"));
            }
            let address: Value = format!("{mail_name}@{name}").into();
            if self.count("spamfilter", "username", &address).await? > 0 {
                filters.push(format!("{mail_name}@{name}"));
            }
        }
        if !responders.is_empty() {
            out.push(behind(format!(
                "the autoresponder texts of {}",
                responders.join(", ")
            )));
        }
        if !filters.is_empty() {
            out.push(behind(format!(
                "the spam filter settings of {}",
                filters.join(", ")
            )));
        }
        let mut accounts: Vec<(String, Option<&Fields>)> = Vec::new();
        if let Some(h) = &d.hosting {
            let login = h.sys_user.text("login").unwrap_or_default();
            accounts.push((format!("system user {login}"), h.sys_account.as_ref()));
        }
        if let Some(a) = &d.admin {
            accounts.push((
                format!("the domain administrator of {name}"),
                a.account.as_ref(),
            ));
        }
        for m in &d.mail {
            let mail_name = m.fields.text("mail_name").unwrap_or_default();
            accounts.push((format!("mail name {mail_name}@{name}"), m.account.as_ref()));
        }
        for db in &d.databases {
            for (u, account) in &db.users {
                let login = u.text("login").unwrap_or_default();
                accounts.push((format!("database user {login}"), account.as_ref()));
            }
        }
        let refs: Vec<(&str, Option<&Fields>)> =
            accounts.iter().map(|(w, a)| (w.as_str(), *a)).collect();
        out.extend(sym_warning(&refs));
        Ok(out)
    }
}
