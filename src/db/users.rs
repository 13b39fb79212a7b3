//! A database's users: each account of the login on the source (every
//! host it is defined for), created on the target with the password hash
//! the source stores (SHOW CREATE USER), so the same password works, and
//! given the grants it has on this database. Statements here carry
//! password hashes: they are never logged and never put in an error text.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{server_text, DbError};

/// One account as the source defines it.
pub struct Account {
    pub user: String,
    pub host: String,
    create: String,
    grants: Vec<String>,
}

/// The accounts of `logins` on the source, with their grants on `db`.
pub async fn read(src: &mut Conn, db: &str, logins: &[String]) -> Result<Vec<Account>, DbError> {
    let mut out = Vec::new();
    for login in logins {
        let failed = |e: mysql_async::Error| DbError::Account {
            what: format!("read database user {login} on the source"),
            reason: server_text(&e),
        };
        let hosts: Vec<String> = src
            .exec(
                "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host",
                (login,),
            )
            .await
            .map_err(failed)?;
        if hosts.is_empty() {
            return Err(DbError::NotOnSource {
                what: format!("database user {login}"),
            });
        }
        for host in hosts {
            let account = format!("{}@{}", super::literal(login), super::literal(&host));
            let create: Option<String> = src
                .query_first(format!("SHOW CREATE USER {account}"))
                .await
                .map_err(failed)?;
            let grants: Vec<String> = src
                .query(format!("SHOW GRANTS FOR {account}"))
                .await
                .map_err(failed)?;
            let grants = grants.into_iter().filter(|g| on_database(g, db)).collect();
            out.push(Account {
                user: login.clone(),
                host,
                create: create.unwrap_or_default(),
                grants,
            });
        }
    }
    Ok(out)
}

/// Whether a GRANT line is about `db` (its tables, routines or all of it),
/// not a global grant.
fn on_database(grant: &str, db: &str) -> bool {
    let Some(on) = grant.find(" ON ") else {
        return false;
    };
    let target = &grant[on + 4..];
    let target = target
        .strip_prefix("PROCEDURE ")
        .or_else(|| target.strip_prefix("FUNCTION "))
        .unwrap_or(target);
    let Some(name) = target.strip_prefix('`') else {
        return false;
    };
    let Some(end) = name.find('`') else {
        return false;
    };
    // Grants may escape the LIKE wildcards of the name (`wp\_db`).
    name[..end].replace("\\_", "_").replace("\\%", "%") == db
}

/// Creates the accounts on the target (except those `exists` says this
/// migration created already, for another database of the same login)
/// and applies their grants; each account it did create goes into
/// `created` (also when a later one fails), and only those: an account
/// that was there already is never taken for ours.
pub async fn create(
    dst: &mut Conn,
    accounts: &[Account],
    exists: impl Fn(&Account) -> bool,
    created: &mut Vec<(String, String)>,
) -> Result<(), DbError> {
    for a in accounts {
        let failed = |what: &str, e: &mysql_async::Error| account_error(a, what, e);
        if !exists(a) {
            create_one(dst, a).await?;
            created.push((a.user.clone(), a.host.clone()));
        }
        grant(dst, a)
            .await
            .map_err(|e| failed("grant privileges to", &e))?;
    }
    flush(dst, accounts).await
}

/// Why a statement about an account failed: the server's message only
/// (the statement holds the hash), never one that quotes it.
fn account_error(a: &Account, what: &str, e: &mysql_async::Error) -> DbError {
    let code = match e {
        mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
        _ => "the connection failed".to_owned(),
    };
    let code = if code.contains("IDENTIFIED") || code.contains("PASSWORD") {
        "the server refused the statement".to_owned()
    } else {
        code
    };
    DbError::Account {
        what: format!("{what} database user {}@{} on the target", a.user, a.host),
        reason: code,
    }
}

/// Creates the account as the source defines it.
async fn create_one(dst: &mut Conn, a: &Account) -> Result<(), DbError> {
    if a.create.is_empty() {
        return Err(DbError::Unreadable {
            what: format!("the definition of database user {}@{}", a.user, a.host),
        });
    }
    dst.query_drop(a.create.as_str())
        .await
        .map_err(|e| account_error(a, "create", &e))
}

/// The account's grants on the database, as the source has them.
async fn grant(dst: &mut Conn, a: &Account) -> Result<(), mysql_async::Error> {
    for grant in &a.grants {
        dst.query_drop(grant.as_str()).await?;
    }
    Ok(())
}

async fn flush(dst: &mut Conn, accounts: &[Account]) -> Result<(), DbError> {
    if !accounts.is_empty() {
        dst.query_drop("FLUSH PRIVILEGES")
            .await
            .map_err(|e| DbError::sql("cannot reload privileges on the target", e))?;
    }
    Ok(())
}

/// Brings accounts on the target up to date with the source's (a
/// catch-up): an account that exists gets the source's authentication
/// again (`ALTER USER` with the stored hash) and exactly its grants on
/// `db`; one that does not is created. Answers the accounts created.
pub async fn update(
    dst: &mut Conn,
    db: &str,
    accounts: &[Account],
) -> Result<Vec<(String, String)>, DbError> {
    let mut created = Vec::new();
    for a in accounts {
        let account = format!("{}@{}", super::literal(&a.user), super::literal(&a.host));
        let failed = |what: &str, e: &mysql_async::Error| account_error(a, what, e);
        let exists = super::user_exists_at(dst, &a.user, &a.host)
            .await
            .map_err(|e| failed("look up", &e))?;
        let Some(rest) = a.create.strip_prefix("CREATE USER") else {
            return Err(DbError::Unreadable {
                what: format!("the definition of database user {}@{}", a.user, a.host),
            });
        };
        if exists {
            dst.query_drop(format!("ALTER USER{rest}"))
                .await
                .map_err(|e| failed("update", &e))?;
            // Its grants on the database, as the source has them now.
            for what in ["ALL PRIVILEGES", "GRANT OPTION"] {
                match dst
                    .query_drop(format!(
                        "REVOKE {what} ON {}.* FROM {account}",
                        super::ident(db)
                    ))
                    .await
                {
                    // 1141: it had no such grant there.
                    Err(mysql_async::Error::Server(s)) if s.code == 1141 => {}
                    Err(e) => return Err(failed("revoke the grants of", &e)),
                    Ok(()) => {}
                }
            }
        } else {
            create_one(dst, a).await?;
            created.push((a.user.clone(), a.host.clone()));
        }
        grant(dst, a)
            .await
            .map_err(|e| failed("grant privileges to", &e))?;
    }
    flush(dst, accounts).await?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grants_on_the_database_are_kept() {
        assert!(on_database(
            "GRANT ALL PRIVILEGES ON `wp_db`.* TO `u`@`%`",
            "wp_db"
        ));
        assert!(on_database(
            "GRANT SELECT ON `wp\\_db`.`posts` TO `u`@`%`",
            "wp_db"
        ));
        assert!(on_database(
            "GRANT EXECUTE ON PROCEDURE `wp_db`.`p` TO `u`@`%`",
            "wp_db"
        ));
        assert!(!on_database(
            "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "wp_db"
        ));
        assert!(!on_database(
            "GRANT SELECT ON `other`.* TO `u`@`%`",
            "wp_db"
        ));
    }
}
