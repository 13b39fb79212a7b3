//! Views, triggers, routines and events: read from the source with SHOW
//! CREATE, replayed on the target under the SQL mode each was created
//! with. A DEFINER the target does not have is left out (the object is then
//! defined by hostmig's login there), so every object loads; the report
//! names each object whose definer changed.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::{ident, DbError};

/// One stored object as the source defines it.
#[derive(Debug, Clone)]
pub struct Object {
    /// `VIEW`, `TRIGGER`, `PROCEDURE`, `FUNCTION` or `EVENT`.
    pub kind: &'static str,
    pub name: String,
    pub create: String,
    pub sql_mode: String,
}

/// Every view, trigger, routine and event of `db`, in an order that
/// loads (views are retried until their dependencies exist).
pub async fn read(src: &mut Conn, db: &str) -> Result<Vec<Object>, DbError> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e| DbError::sql(format!("cannot read the {what} of database {db}"), e)
    };
    src.query_drop("SET NAMES utf8mb4")
        .await
        .map_err(err("session"))?;
    let mut out = Vec::new();
    for (kind, list) in LISTS {
        let names: Vec<String> = src.exec(list, (db,)).await.map_err(err(kind))?;
        for name in names {
            let row: Option<Row> = src
                .query_first(format!("SHOW CREATE {kind} {}.{}", ident(db), ident(&name)))
                .await
                .map_err(err(kind))?;
            let Some(row) = row else { continue };
            let create_col = match kind {
                "VIEW" => "Create View",
                "TRIGGER" => "SQL Original Statement",
                "PROCEDURE" => "Create Procedure",
                "FUNCTION" => "Create Function",
                _ => "Create Event",
            };
            let create = text(&row, create_col).ok_or_else(|| DbError::Unreadable {
                what: format!(
                    "the definition of {} {name} in database {db}",
                    kind.to_lowercase()
                ),
            })?;
            out.push(Object {
                kind,
                name,
                create,
                sql_mode: text(&row, "sql_mode").unwrap_or_default(),
            });
        }
    }
    src.query_drop("SET NAMES binary")
        .await
        .map_err(err("session"))?;
    Ok(out)
}

/// How each kind of stored object of a database is listed.
const LISTS: [(&str, &str); 5] = [
    ("VIEW", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME"),
    ("TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"),
    ("PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY ROUTINE_NAME"),
    ("FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION' ORDER BY ROUTINE_NAME"),
    ("EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME"),
];

/// Drops every view, trigger, routine and event of `db` on the target (a
/// catch-up creates the source's again); answers how many.
pub async fn drop_all(dst: &mut Conn, db: &str) -> Result<usize, DbError> {
    let mut dropped = 0;
    for (kind, list) in LISTS {
        let err = |e| {
            DbError::sql(
                format!("cannot drop the stored objects of database {db}"),
                e,
            )
        };
        let names: Vec<String> = dst.exec(list, (db,)).await.map_err(err)?;
        for name in names {
            dst.query_drop(format!(
                "DROP {kind} IF EXISTS {}.{}",
                ident(db),
                ident(&name)
            ))
            .await
            .map_err(err)?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

fn text(row: &Row, column: &str) -> Option<String> {
    let index = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str() == column)?;
    match row.as_ref(index)? {
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Creates the objects in `db` on the target; answers the objects whose
/// definer the target lacks (created without it).
pub async fn create(dst: &mut Conn, db: &str, objects: &[Object]) -> Result<Vec<String>, DbError> {
    let err = |e| {
        DbError::sql(
            format!("cannot create the stored objects of database {db}"),
            e,
        )
    };
    dst.query_drop(format!("SET NAMES utf8mb4; USE {}", ident(db)))
        .await
        .map_err(err)?;
    let mut redefined = Vec::new();
    let mut pending: Vec<(Object, String)> = Vec::new();
    for o in objects {
        let mut create = o.create.clone();
        if let Some((start, end, user, host)) = definer(&create) {
            let known: Option<String> = dst
                .exec_first(
                    "SELECT User FROM mysql.user WHERE User = ? AND Host = ?",
                    (&user, &host),
                )
                .await
                .map_err(err)?;
            if known.is_none() {
                create.replace_range(start..end, "");
                redefined.push(format!(
                    "{} {} (definer {user}@{host})",
                    o.kind.to_lowercase(),
                    o.name
                ));
            }
        }
        pending.push((o.clone(), create));
    }
    // Views may use views created later: retry while any progress is made.
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        let before = pending.len();
        for (o, create) in pending {
            dst.exec_drop("SET SESSION sql_mode = ?", (&o.sql_mode,))
                .await
                .map_err(err)?;
            match dst.query_drop(create.as_str()).await {
                Ok(()) => {}
                Err(e) if o.kind == "VIEW" => {
                    last_error = Some((o.name.clone(), e));
                    failed.push((o, create));
                }
                Err(e) => {
                    return Err(DbError::sql(
                        format!(
                            "cannot create {} {} in database {db}",
                            o.kind.to_lowercase(),
                            o.name
                        ),
                        e,
                    ))
                }
            }
        }
        if failed.len() == before {
            if let Some((name, e)) = last_error {
                return Err(DbError::sql(
                    format!("cannot create view {name} in database {db}"),
                    e,
                ));
            }
        }
        pending = failed;
    }
    dst.query_drop(super::TARGET_SESSION).await.map_err(err)?;
    Ok(redefined)
}

/// The `DEFINER=user@host ` clause of a CREATE statement: its byte range
/// (with the space after it), user and host.
fn definer(create: &str) -> Option<(usize, usize, String, String)> {
    let head_end = create
        .find(" VIEW ")
        .into_iter()
        .chain(
            ["TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"]
                .iter()
                .filter_map(|k| create.find(k)),
        )
        .min()?;
    let start = create[..head_end].find("DEFINER=")?;
    let rest = &create[start + "DEFINER=".len()..];
    let (user, rest) = quoted(rest)?;
    let rest = rest.strip_prefix('@')?;
    let (host, rest) = quoted(rest)?;
    let mut end = create.len() - rest.len();
    if create[end..].starts_with(' ') {
        end += 1;
    }
    Some((start, end, user, host))
}

/// A `quoted` or 'quoted' name at the start of `s`, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next().filter(|c| *c == '`' || *c == '\'')?;
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            if s[1 + i + 1..].starts_with(q) {
                out.push(q);
                chars.next();
                continue;
            }
            return Some((out, &s[1 + i + 1..]));
        }
        out.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definer_clause_is_found_and_removable() {
        let view = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1";
        let (s, e, user, host) = definer(view).unwrap();
        assert_eq!((user.as_str(), host.as_str()), ("root", "localhost"));
        let mut stripped = view.to_owned();
        stripped.replace_range(s..e, "");
        assert_eq!(
            stripped,
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        let trigger = "CREATE DEFINER=`a``b`@`%` TRIGGER t AFTER INSERT ON x FOR EACH ROW SET @d = 'DEFINER=`z`@`y`'";
        assert_eq!(definer(trigger).unwrap().2, "a`b");
        assert!(definer(
            "CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW SET @a = 'DEFINER=`z`@`y`'"
        )
        .is_none());
    }
}
