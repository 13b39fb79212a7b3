//! The version of a destination's panel schema and the steps that bring an
//! older one to this build's (`schemas/panel.sql`): run at start-up, never
//! by dropping data. The version is the `misc` row `hostmig_schema_version`;
//! a panel database with hostmig's tables and no such row was created by a
//! hostmig from before versions (version 1).
//!
//! Each step's own data fix-ups come first (words Plesk spells otherwise,
//! say), then every table is brought to its definition in `panel.sql`:
//! missing tables created, missing columns added, the others modified to
//! their definition (wider, NULL allowed, more enum words), in a strict
//! session so that a change that would lose a value fails instead.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{on_destination, PanelError};

/// The schema version this build writes.
pub const VERSION: u32 = 2;

const VERSION_PARAM: &str = "hostmig_schema_version";

/// What a destination's panel database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// None of the panel's tables.
    Missing,
    /// An earlier hostmig's schema, or one with tables missing.
    Old(u32),
    Current,
    /// Made by a newer hostmig.
    Newer(u32),
}

/// A table of `panel.sql`: its name, its whole CREATE statement and its
/// columns with their definitions.
struct TableDef {
    name: String,
    create: String,
    columns: Vec<(String, String)>,
}

/// The tables of `panel.sql`, in order (read once).
fn tables() -> &'static [TableDef] {
    static TABLES: std::sync::OnceLock<Vec<TableDef>> = std::sync::OnceLock::new();
    TABLES.get_or_init(parse)
}

/// The columns of a table of `panel.sql` (none for another table).
pub fn columns_of(table: &str) -> Vec<String> {
    tables()
        .iter()
        .find(|t| t.name == table)
        .map(|t| t.columns.iter().map(|(c, _)| c.clone()).collect())
        .unwrap_or_default()
}

fn parse() -> Vec<TableDef> {
    let mut out = Vec::new();
    for part in super::SCHEMA_SQL
        .split("CREATE TABLE IF NOT EXISTS ")
        .skip(1)
    {
        let Some((name, _)) = part.split_once(' ') else {
            continue;
        };
        let create = match part.find(';') {
            Some(end) => format!("CREATE TABLE IF NOT EXISTS {}", &part[..end]),
            None => continue,
        };
        let columns = part
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|l| !l.starts_with(')'))
            .filter(|l| {
                !["PRIMARY ", "UNIQUE ", "KEY "]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .filter_map(|l| {
                let (column, definition) = l.split_once(' ')?;
                Some((
                    column.trim_matches('`').to_owned(),
                    definition.trim_end_matches(',').to_owned(),
                ))
            })
            .collect();
        out.push(TableDef {
            name: name.to_owned(),
            create,
            columns,
        });
    }
    out
}

/// The names of the tables of the panel schema.
pub fn table_names() -> Vec<String> {
    tables().iter().map(|t| t.name.clone()).collect()
}

/// Tables and their columns in the current database, as (table, column).
async fn present(conn: &mut Conn) -> Result<Vec<(String, String)>, PanelError> {
    conn.query(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
    )
    .await
    .map_err(on_destination("reading its tables"))
}

/// The schema's state; reads only.
pub async fn state(conn: &mut Conn) -> Result<SchemaState, PanelError> {
    let present = present(conn).await?;
    let has = |table: &str| present.iter().any(|(t, _)| t == table);
    let defs = tables();
    if !defs.iter().any(|t| has(&t.name)) {
        return Ok(SchemaState::Missing);
    }
    let version = if has("misc") {
        let row: Option<String> = conn
            .exec_first("SELECT val FROM misc WHERE param = ?", (VERSION_PARAM,))
            .await
            .map_err(on_destination("reading the schema version"))?;
        row.and_then(|v| v.trim().parse().ok()).unwrap_or(1)
    } else {
        1
    };
    let complete = defs.iter().all(|t| {
        has(&t.name)
            && t.columns.iter().all(|(c, _)| {
                present
                    .iter()
                    .any(|(pt, pc)| *pt == t.name && pc.eq_ignore_ascii_case(c))
            })
    });
    Ok(match version {
        v if v > VERSION => SchemaState::Newer(v),
        VERSION if complete => SchemaState::Current,
        v => SchemaState::Old(v.min(VERSION)),
    })
}

/// Creates the schema, or brings an older one to this build's.
pub async fn upgrade(conn: &mut Conn) -> Result<(), PanelError> {
    let from = match state(conn).await? {
        SchemaState::Current => return Ok(()),
        SchemaState::Newer(found) => {
            return Err(PanelError::SchemaTooNew {
                found,
                supported: VERSION,
            })
        }
        SchemaState::Missing => {
            conn.query_drop(super::SCHEMA_SQL)
                .await
                .map_err(on_destination("creating the panel schema"))?;
            return record_version(conn).await;
        }
        SchemaState::Old(v) => v,
    };
    // Strict: a change that would cut a value fails instead of cutting it.
    let upgrading = on_destination("upgrading the panel schema");
    conn.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        .await
        .map_err(upgrading)?;
    if from < 2 && has_table(conn, "dns_zone").await? {
        // Plesk's word is UNIXTIMESTAMP; hostmig 1 wrote UNIXTIME.
        conn.query_drop(
            "ALTER TABLE dns_zone MODIFY serial_format ENUM('UNIXTIME','UNIXTIMESTAMP','YYYYMMDDNN') NULL DEFAULT 'UNIXTIMESTAMP'",
        )
        .await
        .map_err(on_destination("upgrading dns_zone.serial_format"))?;
        conn.query_drop(
            "UPDATE dns_zone SET serial_format = 'UNIXTIMESTAMP' WHERE serial_format = 'UNIXTIME'",
        )
        .await
        .map_err(on_destination("upgrading dns_zone.serial_format"))?;
    }
    conform(conn).await?;
    tracing::info!(
        from,
        to = VERSION,
        "upgraded the destination's panel schema"
    );
    record_version(conn).await
}

async fn has_table(conn: &mut Conn, table: &str) -> Result<bool, PanelError> {
    Ok(present(conn).await?.iter().any(|(t, _)| t == table))
}

/// Every table of `panel.sql` as it defines it: created when missing, its
/// missing columns added and the others modified to their definition.
async fn conform(conn: &mut Conn) -> Result<(), PanelError> {
    let present = present(conn).await?;
    for table in tables() {
        if !present.iter().any(|(t, _)| *t == table.name) {
            conn.query_drop(table.create.as_str())
                .await
                .map_err(on_destination("creating a table of the panel schema"))?;
            continue;
        }
        let changes: Vec<String> = table
            .columns
            .iter()
            .map(|(column, definition)| {
                let exists = present
                    .iter()
                    .any(|(t, c)| *t == table.name && c.eq_ignore_ascii_case(column));
                let verb = if exists { "MODIFY" } else { "ADD" };
                format!("{verb} COLUMN `{column}` {definition}")
            })
            .collect();
        conn.query_drop(format!(
            "ALTER TABLE `{}` {}",
            table.name,
            changes.join(", ")
        ))
        .await
        .map_err(|source| PanelError::Destination {
            what: format!("bringing table {} to this hostmig's definition", table.name),
            source,
        })?;
    }
    Ok(())
}

async fn record_version(conn: &mut Conn) -> Result<(), PanelError> {
    conn.exec_drop(
        "INSERT INTO misc (param, val) VALUES (?, ?) ON DUPLICATE KEY UPDATE val = VALUES(val)",
        (VERSION_PARAM, VERSION.to_string()),
    )
    .await
    .map_err(on_destination("recording the schema version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_file_reads_as_tables_and_columns() {
        let defs = tables();
        assert_eq!(defs.len(), 26);
        let zone = defs
            .iter()
            .find(|t| t.name == "dns_zone")
            .expect("dns_zone");
        assert!(zone
            .create
            .starts_with("CREATE TABLE IF NOT EXISTS dns_zone ("));
        assert!(zone.create.ends_with("DEFAULT CHARSET=utf8mb4"));
        assert!(zone.columns.iter().any(|(c, d)| c == "serial_format"
            && d == "ENUM('UNIXTIMESTAMP','YYYYMMDDNN') NULL DEFAULT 'UNIXTIMESTAMP'"));
        let hosting = defs.iter().find(|t| t.name == "hosting").expect("hosting");
        assert!(
            hosting.columns.iter().any(|(c, _)| c == "ssl"),
            "backquoted names"
        );
        // Keys are not columns; every column but keys and owners takes NULL.
        for t in defs {
            for (c, d) in &t.columns {
                assert!(!matches!(c.as_str(), "PRIMARY" | "UNIQUE" | "KEY"));
                let owner = [
                    "cl_id",
                    "dom_id",
                    "mn_id",
                    "db_id",
                    "rep_id",
                    "component_id",
                ]
                .contains(&c.as_str());
                let key = d.contains("AUTO_INCREMENT")
                    || (t.name == "Limits" && c == "limit_name")
                    || (t.name == "Permissions" && c == "permission")
                    || matches!(
                        (t.name.as_str(), c.as_str()),
                        ("Limits" | "Permissions", "id")
                    )
                    || (t.name.ends_with("_param") && c == "param")
                    || (t.name == "misc" && c == "param")
                    || (t.name == "Components" && c == "name");
                assert_eq!(d.contains("NOT NULL"), owner || key, "{}.{c}: {d}", t.name);
            }
        }
    }
}
