//! The consistent snapshot a database is read from, the way mydumper takes
//! it: every reading connection is opened first (each one an SSH login
//! through the tunnel), then a brief global read lock is held only while
//! they start their transactions; tables that are not InnoDB are then held
//! under a read lock of their own on one more connection while they are
//! copied. A source that refuses the global lock, or does not free it
//! within 5 s, is read by one connection in one snapshot. Also: the
//! tables and columns of the database as the snapshot sees them.

use std::time::Instant;

use futures_util::future;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::rows::{self, Column, Kind, Read, Table, TableKind};
use super::{connect, ident, DbError, DbJob, SOURCE_SESSION};

/// A row of information_schema.TABLES: name, type, engine, rows, bytes.
type TableRow = (String, String, Option<String>, Option<u64>, Option<u64>);

/// The source connections of one copy and what they see.
pub(super) struct Snapshot {
    /// Took the global lock (released since); reads the accounts at the end.
    pub lock: Conn,
    /// Connections inside the snapshot.
    pub readers: Vec<Conn>,
    /// Holds the read locks of the non-InnoDB tables, which it reads.
    pub locked_reader: Option<Conn>,
    /// Opened for the non-InnoDB tables but not needed after all.
    pub spare: Option<Conn>,
    /// Base tables with their columns, as the snapshot sees them.
    pub tables: Vec<Table>,
    /// The database's default character set and collation.
    pub charset: String,
    pub collation: String,
    /// The global read lock was had: several connections read.
    pub locked: bool,
    /// How long the global read lock was held, in milliseconds.
    pub lock_ms: u64,
}

impl Snapshot {
    /// Ends every transaction and closes every connection but `readers[0]`
    /// and `lock`, which read the stored objects and the accounts.
    pub async fn close(self) {
        for mut conn in self
            .readers
            .into_iter()
            .chain(self.locked_reader)
            .chain(self.spare)
            .chain([self.lock])
        {
            let _ = conn.query_drop("ROLLBACK").await;
            let _ = conn.disconnect().await;
        }
    }
}

fn on_source(what: &str) -> impl FnOnce(mysql_async::Error) -> DbError + '_ {
    move |e| DbError::sql(format!("{what} on the source"), e)
}

/// Takes the snapshot of `job.name`.
pub(super) async fn take(job: &DbJob) -> Result<Snapshot, DbError> {
    let db = job.name.as_str();
    let mut lock = connect(&job.source, SOURCE_SESSION, "the source database server").await?;
    let charset: Option<(String, String)> = lock
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .await
        .map_err(on_source("cannot read the database"))?;
    let Some((charset, collation)) = charset else {
        return Err(DbError::NotOnSource {
            what: format!("database \"{db}\""),
        });
    };
    // A global read lock that cannot be had at once (a long statement
    // holds tables) would stall every write on the source while it waits:
    // after 5 s hostmig gives up on it and reads in one connection.
    lock.query_drop("SET SESSION lock_wait_timeout = 5")
        .await
        .map_err(on_source("cannot set lock_wait_timeout"))?;
    // One more connection holds the non-InnoDB tables, when the database
    // has any (listed again under the lock, which decides).
    let nontransactional = list_tables(&mut lock, db)
        .await?
        .iter()
        .any(|t| !t.transactional);
    let mut readers = future::try_join_all(
        (0..job.connections.max(1) + usize::from(nontransactional))
            .map(|_| connect(&job.source, SOURCE_SESSION, "the source database server")),
    )
    .await?;
    let mut spare = if nontransactional {
        readers.pop()
    } else {
        None
    };
    let lock_started = Instant::now();
    let locked = match lock.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(database = %db, error = %super::server_text(&e), "the source refused a global read lock, or it was not free within 5 s; one connection reads the whole database in a single snapshot");
            false
        }
    };
    let mut tables = list_tables(&mut lock, db).await?;
    if !locked {
        readers.truncate(1);
    }
    future::try_join_all(readers.iter_mut().map(begin)).await?;
    let nontx: Vec<&Table> = tables.iter().filter(|t| !t.transactional).collect();
    let mut locked_reader = None;
    if locked && !nontx.is_empty() {
        let mut conn = match spare.take() {
            Some(conn) => conn,
            // A table changed engine since the first listing: rare, and
            // only makes the lock a login longer.
            None => connect(&job.source, SOURCE_SESSION, "the source database server").await?,
        };
        let list: Vec<String> = nontx
            .iter()
            .map(|t| format!("{}.{} READ", ident(db), ident(&t.name)))
            .collect();
        conn.query_drop(format!("LOCK TABLES {}", list.join(", ")))
            .await
            .map_err(on_source("cannot lock the non-transactional tables"))?;
        locked_reader = Some(conn);
    }
    if locked {
        lock.query_drop("UNLOCK TABLES")
            .await
            .map_err(on_source("cannot release the global read lock"))?;
    }
    let lock_ms = lock_started.elapsed().as_millis() as u64;
    read_columns(&mut readers[0], db, &mut tables).await?;
    Ok(Snapshot {
        lock,
        readers,
        locked_reader,
        spare,
        tables,
        charset,
        collation,
        locked,
        lock_ms,
    })
}

/// Starts a reading connection's consistent snapshot.
async fn begin(conn: &mut Conn) -> Result<(), DbError> {
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await
    .map_err(|e| DbError::sql("cannot start a consistent snapshot on the source", e))
}

/// The tables of `db` (base, system-versioned, sequences) with their
/// engine and size estimates.
pub(super) async fn list_tables(conn: &mut Conn, db: &str) -> Result<Vec<Table>, DbError> {
    let rows: Vec<TableRow> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') \
             ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .map_err(|e| DbError::sql(format!("cannot list the tables of {db} on the source"), e))?;
    Ok(rows
        .into_iter()
        .map(|(name, kind, engine, rows, bytes)| Table {
            name,
            kind: match kind.as_str() {
                "SYSTEM VERSIONED" => TableKind::Versioned,
                "SEQUENCE" => TableKind::Sequence,
                _ => TableKind::Base,
            },
            columns: Vec::new(),
            transactional: engine.is_some_and(|e| e.eq_ignore_ascii_case("InnoDB")),
            rows_estimate: rows.unwrap_or(0),
            bytes_estimate: bytes.unwrap_or(0),
            chunk_key: None,
            sequence_defaults: Vec::new(),
        })
        .collect())
}

/// Fills in every table's columns (a system-versioned table's period
/// columns among them, named by the server when the table did not name
/// them), its single integer key, and the defaults that draw from a
/// sequence of `db`.
pub(super) async fn read_columns(
    conn: &mut Conn,
    db: &str,
    tables: &mut [Table],
) -> Result<(), DbError> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, EXTRA, COLUMN_KEY, \
             GENERATION_EXPRESSION, COLUMN_DEFAULT \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await
        .map_err(|e| DbError::sql(format!("cannot read the columns of {db} on the source"), e))?;
    let mut keys: Vec<Vec<(String, bool)>> = vec![Vec::new(); tables.len()];
    let mut periods = vec![0usize; tables.len()];
    let draws_from = format!("nextval({}.", ident(db));
    for row in rows {
        let get = |i: usize| -> Option<String> {
            match row.as_ref(i) {
                Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            }
        };
        let (Some(table), Some(name), Some(data_type)) = (get(0), get(1), get(2)) else {
            continue;
        };
        let Some(index) = tables.iter().position(|t| t.name == table) else {
            continue;
        };
        let t = &mut tables[index];
        let expression = get(6).unwrap_or_default().to_ascii_uppercase();
        let period = matches!(expression.as_str(), "ROW START" | "ROW END");
        if period {
            periods[index] += 1;
            if !data_type.eq_ignore_ascii_case("timestamp") {
                return Err(transaction_precise(&t.name, &name));
            }
        }
        let extra = get(4).unwrap_or_default().to_ascii_uppercase();
        let generated = !period
            && ["VIRTUAL", "STORED", "PERSISTENT"]
                .iter()
                .any(|g| extra.contains(g));
        let integer = matches!(
            data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        );
        // The row end joins a versioned table's key; it is no chunk key.
        if get(5).as_deref() == Some("PRI") && expression != "ROW END" {
            keys[index].push((name.clone(), integer));
        }
        if let Some(default) = get(7).filter(|d| d.to_ascii_lowercase().contains(&draws_from)) {
            t.sequence_defaults.push((name.clone(), default));
        }
        t.columns.push(Column {
            kind: Kind::of(&data_type, get(3).as_deref()),
            read: Read::of(&data_type),
            scalar: rows::scalar(&data_type),
            name,
            generated,
        });
    }
    for ((t, key), periods) in tables.iter_mut().zip(keys).zip(periods) {
        if let [(name, true)] = key.as_slice() {
            t.chunk_key = Some(name.clone());
        }
        if t.kind == TableKind::Versioned && periods == 0 {
            for name in ["row_start", "row_end"] {
                t.columns.push(Column {
                    name: name.into(),
                    kind: Kind::Quoted,
                    read: Read::Raw,
                    scalar: true,
                    generated: false,
                });
            }
        }
    }
    Ok(())
}

/// A table versioned by transaction ids: its history refers to the
/// source server's own transaction registry, which no copy can carry.
fn transaction_precise(table: &str, column: &str) -> DbError {
    DbError::Uncarriable {
        table: table.to_owned(),
        why: format!(
            "it is versioned by transaction (its period column {column} holds transaction ids of the source server, meaningless on any other); \
             convert it to timestamp versioning on the source, or drop its history, and migrate again"
        ),
    }
}
