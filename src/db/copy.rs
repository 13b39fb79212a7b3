//! The copy of one database, start to end (the module comment of `db`
//! has the shape). Everything it creates on the target is announced to
//! the `Recorder` first, and removed again when the copy fails or stops.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::{self, LocalBoxFuture};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use serde::Serialize;

use super::rows::{self, Chunk, Column, Kind, Table};
use super::{connect, ident, objects, users, DbError, SOURCE_SESSION, TARGET_SESSION};

/// What to copy, from where, to where.
#[derive(Clone)]
pub struct DbJob {
    /// The database's name (the same on both servers).
    pub name: String,
    /// The source server (through the SSH tunnel), as its admin.
    pub source: Opts,
    /// The target server, as the configuration's `url` gives it.
    pub target: Opts,
    /// `host:port` of the target, for messages.
    pub target_label: String,
    /// The scratch database the rows load into.
    pub stage: String,
    /// The database's users (logins), as the panel lists them.
    pub users: Vec<String>,
    /// Reading connections that share the snapshot.
    pub connections: usize,
    /// Rows per primary-key chunk of a large table (`rows::CHUNK_ROWS`).
    pub chunk_rows: u64,
    /// Load rows by LOAD DATA LOCAL INFILE where the target allows it
    /// (else, and when false, by INSERT statements).
    pub load_data: bool,
}

/// Records what the copy creates on the target, so that a stop or a crash
/// can remove it (the scratch database before it is created: its name is
/// hostmig's own; the database and accounts right after, so that one made
/// by someone else meanwhile is never taken for ours); and knows the
/// accounts this migration created already (a login may own several
/// databases).
pub struct Recorder<'a> {
    /// `(kind, name)`: kind `scratch`, `database` or `user` (`user@host`).
    pub record: Box<RecordFn<'a>>,
    /// Whether this migration already created the account `user@host`.
    pub created_account: Box<AccountFn<'a>>,
}

pub type RecordFn<'a> =
    dyn Fn(&'static str, String) -> LocalBoxFuture<'static, Result<(), String>> + 'a;
pub type AccountFn<'a> = dyn Fn(&str, &str) -> bool + 'a;

/// A row of information_schema.TABLES: name, engine, rows, bytes.
type TableRow = (String, Option<String>, Option<u64>, Option<u64>);

#[derive(Debug, Clone, Copy, Default)]
pub struct DbProgress {
    pub rows_done: u64,
    pub rows_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What a finished copy did, for the event log and the benchmarks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbReport {
    pub tables: usize,
    pub chunks: usize,
    pub rows: u64,
    /// Bytes of row data read from the source.
    pub bytes: u64,
    pub objects: usize,
    pub accounts: usize,
    /// Accounts (user, host) this copy created.
    pub created_accounts: Vec<(String, String)>,
    /// Objects created without their source definer (the target lacks it).
    pub redefined: Vec<String>,
    /// The global read lock was refused: one connection read everything.
    pub single_connection: bool,
    /// How long the source's global read lock was held, in milliseconds.
    pub lock_ms: u64,
    pub seconds: f64,
}

/// Largest INSERT hostmig builds (a single larger row goes alone).
const STATEMENT_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct Created {
    stage: bool,
    real: bool,
    accounts: Vec<(String, String)>,
}

#[derive(Default)]
struct Counters {
    rows: Cell<u64>,
    bytes: Cell<u64>,
    rows_total: Cell<u64>,
    bytes_total: Cell<u64>,
}

/// Copies `job.name`; on failure or stop removes what it created.
pub async fn copy_database(
    job: &DbJob,
    recorder: &Recorder<'_>,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(DbProgress),
) -> Result<DbReport, DbError> {
    let started = Instant::now();
    let counters = Counters::default();
    let created = RefCell::new(Created::default());
    let work = run(job, recorder, &counters, &created);
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stop.load(Ordering::SeqCst) {
                return;
            }
            progress(DbProgress {
                rows_done: counters.rows.get(),
                rows_total: counters.rows_total.get(),
                bytes_done: counters.bytes.get(),
                bytes_total: counters.bytes_total.get(),
            });
        }
    };
    let outcome = match future::select(std::pin::pin!(work), std::pin::pin!(watch)).await {
        future::Either::Left((result, _)) => result,
        future::Either::Right(((), _)) => Err(DbError::Stopped),
    };
    let outcome = match outcome {
        Err(_) if stop.load(Ordering::SeqCst) => Err(DbError::Stopped),
        other => other,
    };
    match outcome {
        Ok(mut report) => {
            report.seconds = started.elapsed().as_secs_f64();
            Ok(report)
        }
        Err(e) => {
            let created = created.into_inner();
            if let Err(cleanup) = remove(job, &created).await {
                tracing::warn!(database = %job.name, error = %cleanup, "cannot remove what a failed database copy created; it is recorded in the journal and removed when the migration ends");
            }
            Err(e)
        }
    }
}

/// Drops what a copy created (the scratch database, the database, the
/// accounts it created).
async fn remove(job: &DbJob, created: &Created) -> Result<(), DbError> {
    let names: Vec<String> = created
        .accounts
        .iter()
        .map(|(u, h)| format!("{u}@{h}"))
        .collect();
    drop_objects(
        &job.target,
        created
            .stage
            .then_some(job.stage.as_str())
            .into_iter()
            .chain(created.real.then_some(job.name.as_str())),
        names.iter().map(String::as_str),
    )
    .await
}

/// Drops databases and accounts (`user@host`, the host after the last `@`).
pub async fn drop_objects<'a>(
    target: &Opts,
    databases: impl IntoIterator<Item = &'a str>,
    accounts: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbError> {
    let mut conn = connect(target, "SET NAMES utf8mb4", "the target database server").await?;
    for db in databases {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(db)))
            .await
            .map_err(|e| DbError::sql(format!("cannot drop database {db}"), e))?;
    }
    for account in accounts {
        let Some((user, host)) = account.rsplit_once('@') else {
            continue;
        };
        conn.query_drop(format!(
            "DROP USER IF EXISTS {}@{}",
            super::literal(user),
            super::literal(host)
        ))
        .await
        .map_err(|e| DbError::sql(format!("cannot drop database user {account}"), e))?;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

async fn run(
    job: &DbJob,
    recorder: &Recorder<'_>,
    counters: &Counters,
    created: &RefCell<Created>,
) -> Result<DbReport, DbError> {
    let db = job.name.as_str();
    let target = format!("the target database server {}", job.target_label);
    let mut dst = connect(
        &job.target,
        "SET NAMES utf8mb4, SESSION foreign_key_checks = 0, SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
        &target,
    )
    .await?;
    let dst_err = |what: &str| {
        let what = what.to_owned();
        move |e| DbError::sql(format!("{what} on {}", job.target_label), e)
    };
    if super::database_exists(&mut dst, db)
        .await
        .map_err(dst_err("cannot list databases"))?
    {
        return Err(DbError::Failed(format!(
            "database \"{db}\" already exists on {}",
            job.target_label
        )));
    }
    let max_packet: Option<u64> = dst
        .query_first("SELECT @@max_allowed_packet")
        .await
        .map_err(dst_err("cannot read max_allowed_packet"))?;
    let max_packet = max_packet.unwrap_or(16 << 20) as usize;

    // The snapshot: a brief global read lock while every reading
    // connection starts its transaction; tables that are not InnoDB are
    // then held under a read lock of their own while they are copied.
    let mut lock = connect(&job.source, SOURCE_SESSION, "the source database server").await?;
    let src_err = |what: &str| {
        let what = what.to_owned();
        move |e| DbError::sql(format!("{what} on the source"), e)
    };
    let charset: Option<(String, String)> = lock
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .await
        .map_err(src_err("cannot read the database"))?;
    let Some((charset, collation)) = charset else {
        return Err(DbError::Failed(format!(
            "database \"{db}\" is in the source's panel but not on its database server"
        )));
    };
    // A global read lock that cannot be had at once (a long statement
    // holds tables) would stall every write on the source while it waits:
    // after 5 s hostmig gives up on it and reads in one connection.
    lock.query_drop("SET SESSION lock_wait_timeout = 5")
        .await
        .map_err(src_err("cannot set lock_wait_timeout"))?;
    // Every connection is open before the lock is taken (each is an SSH
    // login through the tunnel): the lock lasts only while they start
    // their transactions. One more holds the non-InnoDB tables, when the
    // database has any (listed again under the lock, which decides).
    let nontransactional = list_tables(&mut lock, db)
        .await?
        .iter()
        .any(|t| !t.transactional);
    let mut sources = future::try_join_all(
        (0..job.connections.max(1) + usize::from(nontransactional))
            .map(|_| connect(&job.source, SOURCE_SESSION, "the source database server")),
    )
    .await?;
    let mut spare = if nontransactional {
        sources.pop()
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
        sources.truncate(1);
    }
    future::try_join_all(sources.iter_mut().map(snapshot)).await?;
    let nontx: Vec<usize> = (0..tables.len())
        .filter(|i| !tables[*i].transactional)
        .collect();
    let mut nontx_conn = None;
    if locked && !nontx.is_empty() {
        let mut conn = match spare.take() {
            Some(conn) => conn,
            // A table changed engine since the first listing: rare, and
            // only makes the lock a login longer.
            None => connect(&job.source, SOURCE_SESSION, "the source database server").await?,
        };
        let list: Vec<String> = nontx
            .iter()
            .map(|i| format!("{}.{} READ", ident(db), ident(&tables[*i].name)))
            .collect();
        conn.query_drop(format!("LOCK TABLES {}", list.join(", ")))
            .await
            .map_err(src_err("cannot lock the non-transactional tables"))?;
        nontx_conn = Some(conn);
    }
    if locked {
        lock.query_drop("UNLOCK TABLES")
            .await
            .map_err(src_err("cannot release the global read lock"))?;
    }
    let lock_ms = lock_started.elapsed().as_millis() as u64;

    // Schema, exactly as the source has it, into the scratch database.
    read_columns(&mut sources[0], db, &mut tables).await?;
    (recorder.record)("scratch", job.stage.clone())
        .await
        .map_err(DbError::Failed)?;
    created.borrow_mut().stage = true;
    dst.query_drop(format!(
        "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
        ident(&job.stage)
    ))
    .await
    .map_err(dst_err("cannot create the scratch database"))?;
    dst.query_drop(format!("USE {}", ident(&job.stage)))
        .await
        .map_err(dst_err("cannot use the scratch database"))?;
    sources[0]
        .query_drop("SET NAMES utf8mb4")
        .await
        .map_err(src_err("cannot set the session"))?;
    for t in &tables {
        let row: Option<(String, String)> = sources[0]
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                ident(db),
                ident(&t.name)
            ))
            .await
            .map_err(src_err(&format!(
                "cannot read the definition of table {}",
                t.name
            )))?;
        let Some((_, create)) = row else { continue };
        dst.query_drop(create).await.map_err(|e| {
            DbError::sql(
                format!("cannot create table {} on {}", t.name, job.target_label),
                e,
            )
        })?;
    }
    sources[0]
        .query_drop("SET NAMES binary")
        .await
        .map_err(src_err("cannot set the session"))?;

    // Rows: chunks of the largest tables first, read by every connection.
    counters
        .rows_total
        .set(tables.iter().map(|t| t.rows_estimate).sum());
    counters
        .bytes_total
        .set(tables.iter().map(|t| t.bytes_estimate).sum());
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(tables[*i].bytes_estimate));
    let mut snapshot_chunks = VecDeque::new();
    let mut locked_chunks = VecDeque::new();
    for i in order {
        let t = &tables[i];
        let range = match &t.chunk_key {
            Some(key) if t.rows_estimate > job.chunk_rows => {
                let bounds: Option<(Option<i128>, Option<i128>)> = sources[0]
                    .query_first(format!(
                        "SELECT MIN({k}), MAX({k}) FROM {}.{}",
                        ident(db),
                        ident(&t.name),
                        k = ident(key)
                    ))
                    .await
                    .map_err(src_err(&format!(
                        "cannot read the key range of table {}",
                        t.name
                    )))?;
                match bounds {
                    Some((Some(a), Some(b))) => Some((a, b)),
                    _ => None,
                }
            }
            _ => None,
        };
        let parts = rows::chunks(i, range, t.rows_estimate, job.chunk_rows);
        if !t.transactional && nontx_conn.is_some() {
            locked_chunks.extend(parts);
        } else {
            snapshot_chunks.extend(parts);
        }
    }
    let chunk_count = snapshot_chunks.len() + locked_chunks.len();
    let queue = RefCell::new(snapshot_chunks);
    let loader = Loader {
        db,
        stage: &job.stage,
        tables: &tables,
        counters,
        max_packet,
        target: &job.target,
        target_label: &job.target_label,
        load_data: Cell::new(job.load_data),
    };
    let snapshot_workers = sources.iter_mut().map(|src| loader.work(src, &queue));
    let locked_queue = RefCell::new(locked_chunks);
    let locked_worker = async {
        if let Some(conn) = nontx_conn.as_mut() {
            loader.work(conn, &locked_queue).await?;
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(src_err("cannot release the table locks"))?;
        }
        Ok::<(), DbError>(())
    };
    let (copied, locked_copied) =
        future::join(future::try_join_all(snapshot_workers), locked_worker).await;
    copied?;
    locked_copied?;

    // What loads after the rows: the stored objects and the accounts.
    let stored = objects::read(&mut sources[0], db).await?;
    let accounts = users::read(&mut lock, db, &job.users).await?;
    for mut conn in sources
        .into_iter()
        .chain(nontx_conn)
        .chain(spare)
        .chain([lock])
    {
        let _ = conn.query_drop("ROLLBACK").await;
        let _ = conn.disconnect().await;
    }

    // The database appears under its real name, complete.
    // Recorded once created, never before: a database someone else made
    // under that name meanwhile makes CREATE fail, and is never ours to drop.
    dst.query_drop(format!(
        "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
        ident(db)
    ))
    .await
    .map_err(dst_err("cannot create the database"))?;
    created.borrow_mut().real = true;
    (recorder.record)("database", db.to_owned())
        .await
        .map_err(DbError::Failed)?;
    if !tables.is_empty() {
        let moves: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "{}.{} TO {}.{}",
                    ident(&job.stage),
                    ident(&t.name),
                    ident(db),
                    ident(&t.name)
                )
            })
            .collect();
        dst.query_drop(format!("RENAME TABLE {}", moves.join(", ")))
            .await
            .map_err(dst_err("cannot move the tables into place"))?;
    }
    dst.query_drop(format!("DROP DATABASE {}", ident(&job.stage)))
        .await
        .map_err(dst_err("cannot drop the scratch database"))?;
    created.borrow_mut().stage = false;

    // Accounts likewise: recorded as each is created, only those.
    let mut fresh = Vec::new();
    let made = users::create(
        &mut dst,
        &accounts,
        |a| (recorder.created_account)(&a.user, &a.host),
        &mut fresh,
    )
    .await;
    for (user, host) in &fresh {
        created
            .borrow_mut()
            .accounts
            .push((user.clone(), host.clone()));
        (recorder.record)("user", format!("{user}@{host}"))
            .await
            .map_err(DbError::Failed)?;
    }
    made?;
    let redefined = objects::create(&mut dst, db, &stored).await?;
    let _ = dst.disconnect().await;
    Ok(DbReport {
        tables: tables.len(),
        chunks: chunk_count,
        rows: counters.rows.get(),
        bytes: counters.bytes.get(),
        objects: stored.len(),
        accounts: accounts.len(),
        created_accounts: fresh,
        redefined,
        single_connection: !locked,
        lock_ms,
        seconds: 0.0,
    })
}

/// Starts a reading connection's consistent snapshot.
async fn snapshot(conn: &mut Conn) -> Result<(), DbError> {
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await
    .map_err(|e| DbError::sql("cannot start a consistent snapshot on the source", e))
}

/// The base tables of `db` with their engine and size estimates.
async fn list_tables(conn: &mut Conn, db: &str) -> Result<Vec<Table>, DbError> {
    let rows: Vec<TableRow> = conn
        .exec(
            "SELECT TABLE_NAME, ENGINE, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .map_err(|e| DbError::sql(format!("cannot list the tables of {db} on the source"), e))?;
    Ok(rows
        .into_iter()
        .map(|(name, engine, rows, bytes)| Table {
            name,
            columns: Vec::new(),
            transactional: engine.is_some_and(|e| e.eq_ignore_ascii_case("InnoDB")),
            rows_estimate: rows.unwrap_or(0),
            bytes_estimate: bytes.unwrap_or(0),
            chunk_key: None,
        })
        .collect())
}

/// Fills in every table's columns and its single integer key.
async fn read_columns(conn: &mut Conn, db: &str, tables: &mut [Table]) -> Result<(), DbError> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, EXTRA, COLUMN_KEY \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await
        .map_err(|e| DbError::sql(format!("cannot read the columns of {db} on the source"), e))?;
    let mut keys: Vec<Vec<(String, Kind)>> = vec![Vec::new(); tables.len()];
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
        let extra = get(4).unwrap_or_default().to_ascii_uppercase();
        let generated = ["VIRTUAL", "STORED", "PERSISTENT"]
            .iter()
            .any(|g| extra.contains(g));
        let kind = Kind::of(&data_type, get(3).as_deref());
        let integer = matches!(
            data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        );
        if get(5).as_deref() == Some("PRI") {
            keys[index].push((
                name.clone(),
                if integer { Kind::Number } else { Kind::Quoted },
            ));
        }
        tables[index].columns.push(Column {
            name,
            kind,
            generated,
            bit: data_type == "bit",
        });
    }
    for (t, key) in tables.iter_mut().zip(keys) {
        if let [(name, Kind::Number)] = key.as_slice() {
            t.chunk_key = Some(name.clone());
        }
    }
    Ok(())
}

/// What every loading connection shares.
struct Loader<'a> {
    db: &'a str,
    stage: &'a str,
    tables: &'a [Table],
    counters: &'a Counters,
    max_packet: usize,
    target: &'a Opts,
    target_label: &'a str,
    /// The target takes LOAD DATA LOCAL INFILE (until it refuses once).
    load_data: Cell<bool>,
}

/// Why a LOAD DATA did not load a chunk.
enum Refused {
    /// The target does not allow it: the chunk goes by INSERTs instead.
    LocalInfile(String),
    Other(DbError),
}

/// Bytes of LOAD DATA input sent at a time.
const LOAD_BLOCK: usize = 256 * 1024;

impl Loader<'_> {
    /// Takes chunks from `queue` until it is empty: each is read on `src`,
    /// written by a target connection of this worker, then verified.
    async fn work(&self, src: &mut Conn, queue: &RefCell<VecDeque<Chunk>>) -> Result<(), DbError> {
        let mut dst: Option<Conn> = None;
        loop {
            let Some(chunk) = queue.borrow_mut().pop_front() else {
                break;
            };
            if dst.is_none() {
                let what = format!("the target database server {}", self.target_label);
                dst = Some(connect(self.target, TARGET_SESSION, &what).await?);
            }
            let Some(dst) = dst.as_mut() else { break };
            self.copy(src, dst, &chunk).await?;
            self.verify(src, dst, &chunk).await?;
        }
        if let Some(conn) = dst {
            let _ = conn.disconnect().await;
        }
        Ok(())
    }

    /// Streams a chunk's rows into the target: by LOAD DATA LOCAL INFILE
    /// fed from the rows as they arrive, or, where the target does not
    /// allow it, by size-bounded INSERTs.
    async fn copy(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), DbError> {
        if self.load_data.get() {
            match self.load(src, dst, chunk).await {
                Err(Refused::LocalInfile(e)) => {
                    if self.load_data.replace(false) {
                        tracing::info!(target_server = %self.target_label, error = %e, "the target does not allow LOAD DATA LOCAL INFILE; rows go as INSERT statements");
                    }
                }
                Err(Refused::Other(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
        self.insert(src, dst, chunk).await
    }

    /// One LOAD DATA per chunk, its data streamed in blocks of 256 KiB
    /// while the rows are read.
    async fn load(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), Refused> {
        let table = &self.tables[chunk.table];
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
        dst.set_infile_handler(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
            });
            Ok(Box::pin(stream) as mysql_async::InfileData)
        });
        let loading = dst.query_drop(table.load(self.stage));
        let read = async {
            let mut result = src
                .query_iter(table.select(self.db, chunk))
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?;
            let mut block = Vec::with_capacity(LOAD_BLOCK + 64 * 1024);
            while let Some(row) = result
                .next()
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?
            {
                let before = block.len();
                rows::push_line(&mut block, (0..row.len()).filter_map(|i| row.as_ref(i)));
                self.counters.rows.set(self.counters.rows.get() + 1);
                self.counters
                    .bytes
                    .set(self.counters.bytes.get() + (block.len() - before) as u64);
                if block.len() >= LOAD_BLOCK {
                    let full =
                        std::mem::replace(&mut block, Vec::with_capacity(LOAD_BLOCK + 64 * 1024));
                    if tx.send(bytes::Bytes::from(full)).await.is_err() {
                        // The load ended early; its error says why.
                        return Ok(false);
                    }
                }
            }
            if !block.is_empty() && tx.send(bytes::Bytes::from(block)).await.is_err() {
                return Ok(false);
            }
            drop(tx);
            Ok::<bool, DbError>(true)
        };
        let (loaded, read) = future::join(loading, read).await;
        if let Err(e) = loaded {
            // ER_NOT_ALLOWED_COMMAND (MySQL) and its MariaDB successor.
            let refused =
                matches!(&e, mysql_async::Error::Server(s) if s.code == 1148 || s.code == 4166);
            let error = DbError::sql(
                format!("cannot load table {} on {}", table.name, self.target_label),
                e,
            );
            return Err(if refused {
                Refused::LocalInfile(error.to_string())
            } else {
                Refused::Other(error)
            });
        }
        match read {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refused::Other(DbError::Failed(format!(
                "the load of table {} ended early",
                table.name
            )))),
            Err(e) => Err(Refused::Other(e)),
        }
    }

    /// Streams a chunk's rows into size-bounded INSERTs; a second future
    /// writes each statement while the next one is read.
    async fn insert(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), DbError> {
        let table = &self.tables[chunk.table];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        let read = async {
            let head = table.insert_head(self.stage);
            let kinds = table.kinds();
            let mut result = src
                .query_iter(table.select(self.db, chunk))
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?;
            let mut stmt = head.clone();
            let mut in_stmt = 0usize;
            while let Some(row) = result
                .next()
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?
            {
                let before = stmt.len();
                if in_stmt > 0 {
                    stmt.push(b',');
                }
                rows::push_row(
                    &mut stmt,
                    &kinds,
                    (0..row.len()).filter_map(|i| row.as_ref(i)),
                );
                in_stmt += 1;
                self.counters.rows.set(self.counters.rows.get() + 1);
                self.counters
                    .bytes
                    .set(self.counters.bytes.get() + (stmt.len() - before) as u64);
                if stmt.len() >= STATEMENT_BYTES {
                    self.send(&tx, std::mem::replace(&mut stmt, head.clone()), &table.name)
                        .await?;
                    in_stmt = 0;
                }
            }
            if in_stmt > 0 {
                self.send(&tx, stmt, &table.name).await?;
            }
            drop(tx);
            Ok::<(), DbError>(())
        };
        let write = async {
            while let Some(stmt) = rx.recv().await {
                dst.query_drop(stmt).await.map_err(|e| {
                    DbError::sql(
                        format!("cannot load table {} on {}", table.name, self.target_label),
                        e,
                    )
                })?;
            }
            Ok::<(), DbError>(())
        };
        let (read, write) = future::join(read, write).await;
        write?;
        read
    }

    async fn send(
        &self,
        tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
        stmt: Vec<u8>,
        table: &str,
    ) -> Result<(), DbError> {
        if stmt.len() + 1024 > self.max_packet {
            return Err(DbError::Failed(format!(
                "a row of table {table} needs a statement of {} bytes, more than max_allowed_packet ({} bytes) of {}; raise max_allowed_packet there",
                stmt.len(),
                self.max_packet,
                self.target_label
            )));
        }
        tx.send(stmt)
            .await
            .map_err(|_| DbError::Failed(format!("the load of table {table} ended early")))
    }

    /// The same checksum SQL on the source's snapshot and the target.
    async fn verify(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), DbError> {
        let table = &self.tables[chunk.table];
        let (a, b) = future::join(
            src.query_first::<(u64, u64), _>(table.checksum(self.db, chunk)),
            dst.query_first::<(u64, u64), _>(table.checksum(self.stage, chunk)),
        )
        .await;
        let a = a.map_err(|e| {
            DbError::sql(
                format!("cannot verify table {} on the source", table.name),
                e,
            )
        })?;
        let b = b.map_err(|e| {
            DbError::sql(
                format!(
                    "cannot verify table {} on {}",
                    table.name, self.target_label
                ),
                e,
            )
        })?;
        if a != b {
            let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
            return Err(DbError::Failed(format!(
                "table {} differs after the copy: the source has {} rows (checksum {}), {} has {} (checksum {})",
                table.name, a.0, a.1, self.target_label, b.0, b.1
            )));
        }
        Ok(())
    }
}
