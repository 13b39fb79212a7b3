//! The copy of one database, start to end, in named phases (the module
//! comment of `db` has the shape): check the target, take the snapshot
//! (`snapshot`), create the schema in the scratch database, load and
//! verify the rows (`loader`), publish the database under its real name,
//! then its accounts and stored objects. Everything it creates on the
//! target is announced to the `Recorder`, and removed again when the copy
//! fails or stops.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::{self, LocalBoxFuture};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use serde::Serialize;

use super::loader::Loader;
use super::rows::{self, Chunk, TableKind};
use super::snapshot::{self, Snapshot};
use super::users::Account;
use super::{connect, ident, objects, users, DbError, DbObjectKind};
use crate::journal::JournalError;

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
    /// `(kind, name)`; a user is named `user@host`.
    pub record: Box<RecordFn<'a>>,
    /// Whether this migration already created the account `user@host`.
    pub created_account: Box<AccountFn<'a>>,
}

pub type RecordFn<'a> =
    dyn Fn(DbObjectKind, String) -> LocalBoxFuture<'static, Result<(), JournalError>> + 'a;
pub type AccountFn<'a> = dyn Fn(&str, &str) -> bool + 'a;

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

/// What this copy created on the target (to remove when it fails).
#[derive(Default)]
struct Created {
    stage: bool,
    real: bool,
    accounts: Vec<(String, String)>,
}

/// How far the copy is, shared by its loading connections.
#[derive(Default)]
pub(super) struct Counters {
    pub rows: Cell<u64>,
    pub bytes: Cell<u64>,
    pub rows_total: Cell<u64>,
    pub bytes_total: Cell<u64>,
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
    // Ids of the target connections that load rows.
    let connections = RefCell::new(Vec::new());
    let work = run(job, recorder, &counters, &created, &connections);
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
            if let Err(cleanup) = remove(job, &created, &connections.into_inner()).await {
                tracing::warn!(database = %job.name, error = %cleanup, "cannot remove what a failed database copy created; it is recorded in the journal and removed when the migration ends");
            }
            Err(e)
        }
    }
}

/// Drops what a copy created (the scratch database, the database, the
/// accounts it created), once the statements its loading connections may
/// still run on the server are ended: a dropped connection's LOAD DATA
/// goes on until the server notices, holding the tables a DROP waits for.
async fn remove(job: &DbJob, created: &Created, connections: &[u32]) -> Result<(), DbError> {
    end_connections(&job.target, connections).await;
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

/// Ends these connections' statements on the server.
async fn end_connections(target: &Opts, ids: &[u32]) {
    if ids.is_empty() {
        return;
    }
    let Ok(mut conn) = connect(target, "SET NAMES utf8mb4", "the target database server").await
    else {
        return;
    };
    for id in ids {
        // Unknown thread (1094): it ended already.
        let _ = conn.query_drop(format!("KILL {id}")).await;
    }
    let _ = conn.disconnect().await;
}

/// Drops databases and accounts (`user@host`, the host after the last `@`).
pub async fn drop_objects<'a>(
    target: &Opts,
    databases: impl IntoIterator<Item = &'a str>,
    accounts: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbError> {
    // A statement that still holds a table gets a minute, not a year; the
    // names are quoted with backslash escapes, whatever the server's mode.
    let mut conn = connect(
        target,
        "SET NAMES utf8mb4, SESSION lock_wait_timeout = 60, SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
        "the target database server",
    )
    .await?;
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
    connections: &RefCell<Vec<u32>>,
) -> Result<DbReport, DbError> {
    let (mut dst, max_packet) = check_target(job).await?;
    let mut snap = snapshot::take(job).await?;
    create_schema(job, recorder, created, &mut dst, &mut snap).await?;
    let chunks = load_rows(job, counters, connections, &mut snap, max_packet).await?;
    // What loads after the rows: the stored objects and the accounts.
    let stored = objects::read(&mut snap.readers[0], &job.name).await?;
    let accounts = users::read(&mut snap.lock, &job.name, &job.users).await?;
    let tables = std::mem::take(&mut snap.tables);
    let charset = (snap.charset.clone(), snap.collation.clone());
    let (locked, lock_ms) = (snap.locked, snap.lock_ms);
    snap.close().await;
    publish(job, recorder, created, &mut dst, &tables, &charset).await?;
    let fresh = create_accounts(recorder, created, &mut dst, &accounts).await?;
    let redefined = objects::create(&mut dst, &job.name, &stored).await?;
    let _ = dst.disconnect().await;
    Ok(DbReport {
        tables: tables.len(),
        chunks,
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

fn on_target<'a>(job: &'a DbJob, what: &'a str) -> impl FnOnce(mysql_async::Error) -> DbError + 'a {
    move |e| DbError::sql(format!("{what} on {}", job.target_label), e)
}

fn on_source(what: &str) -> impl FnOnce(mysql_async::Error) -> DbError + '_ {
    move |e| DbError::sql(format!("{what} on the source"), e)
}

fn recorded(e: JournalError) -> DbError {
    DbError::Record(e.to_string())
}

/// The target connection for the schema and what follows the rows, once
/// the database is known not to exist there; and its max_allowed_packet.
async fn check_target(job: &DbJob) -> Result<(Conn, usize), DbError> {
    let target = format!("the target database server {}", job.target_label);
    let mut dst = connect(
        &job.target,
        "SET NAMES utf8mb4, SESSION foreign_key_checks = 0, SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
        &target,
    )
    .await?;
    if super::database_exists(&mut dst, &job.name)
        .await
        .map_err(on_target(job, "cannot list databases"))?
    {
        return Err(DbError::Exists {
            name: job.name.clone(),
            server: job.target_label.clone(),
        });
    }
    let max_packet: Option<u64> = dst
        .query_first("SELECT @@max_allowed_packet")
        .await
        .map_err(on_target(job, "cannot read max_allowed_packet"))?;
    Ok((dst, max_packet.unwrap_or(16 << 20) as usize))
}

/// The scratch database, with every table exactly as the source has it.
async fn create_schema(
    job: &DbJob,
    recorder: &Recorder<'_>,
    created: &RefCell<Created>,
    dst: &mut Conn,
    snap: &mut Snapshot,
) -> Result<(), DbError> {
    (recorder.record)(DbObjectKind::Scratch, job.stage.clone())
        .await
        .map_err(recorded)?;
    created.borrow_mut().stage = true;
    dst.query_drop(format!(
        "CREATE DATABASE {} CHARACTER SET {} COLLATE {}",
        ident(&job.stage),
        snap.charset,
        snap.collation
    ))
    .await
    .map_err(on_target(job, "cannot create the scratch database"))?;
    dst.query_drop(format!("USE {}", ident(&job.stage)))
        .await
        .map_err(on_target(job, "cannot use the scratch database"))?;
    let reader = &mut snap.readers[0];
    reader
        .query_drop("SET NAMES utf8mb4")
        .await
        .map_err(on_source("cannot set the session"))?;
    // Sequences first: a table's default may draw from one.
    let mut order: Vec<&rows::Table> = snap.tables.iter().collect();
    order.sort_by_key(|t| t.kind != TableKind::Sequence);
    for t in order {
        let what = if t.kind == TableKind::Sequence {
            "SEQUENCE"
        } else {
            "TABLE"
        };
        let row: Option<(String, String)> = reader
            .query_first(format!(
                "SHOW CREATE {what} {}.{}",
                ident(&job.name),
                ident(&t.name)
            ))
            .await
            .map_err(on_source(&format!(
                "cannot read the definition of table {}",
                t.name
            )))?;
        let Some((_, mut create)) = row else { continue };
        if !t.sequence_defaults.is_empty() {
            // Drawing from the scratch database's copy of the sequence
            // until `publish` points the default at the database's own.
            create = create.replace(
                &format!("nextval({}.", ident(&job.name)),
                &format!("nextval({}.", ident(&job.stage)),
            );
        }
        dst.query_drop(create).await.map_err(|e| {
            DbError::sql(
                format!("cannot create table {} on {}", t.name, job.target_label),
                e,
            )
        })?;
    }
    copy_sequences(job, dst, reader, &snap.tables).await?;
    reader
        .query_drop("SET NAMES binary")
        .await
        .map_err(on_source("cannot set the session"))
}

/// A sequence's state: next_not_cached_value, minimum_value,
/// maximum_value, start_value, increment, cache_size, cycle_option,
/// cycle_count.
type SequenceRow = (i64, i64, i64, i64, i64, u64, u8, i64);

const SEQUENCE_ROW: &str =
    "SELECT next_not_cached_value, minimum_value, maximum_value, start_value, \
     increment, cache_size, cycle_option, cycle_count FROM ";

/// Sets every sequence of the scratch database where the source's stands
/// (its next value and how many cycles it did), then checks its whole
/// state against the source's.
async fn copy_sequences(
    job: &DbJob,
    dst: &mut Conn,
    src: &mut Conn,
    tables: &[rows::Table],
) -> Result<(), DbError> {
    for t in tables.iter().filter(|t| t.kind == TableKind::Sequence) {
        let name = |db: &str| format!("{}.{}", ident(db), ident(&t.name));
        let on_source: Option<SequenceRow> = src
            .query_first(format!("{SEQUENCE_ROW}{}", name(&job.name)))
            .await
            .map_err(on_source(&format!("cannot read sequence {}", t.name)))?;
        let Some(state) = on_source else { continue };
        dst.query_drop(format!(
            "SELECT SETVAL({}, {}, 0, {})",
            name(&job.stage),
            state.0,
            state.7
        ))
        .await
        .map_err(on_target(job, &format!("cannot set sequence {}", t.name)))?;
        let on_target: Option<SequenceRow> = dst
            .query_first(format!("{SEQUENCE_ROW}{}", name(&job.stage)))
            .await
            .map_err(on_target(job, &format!("cannot read sequence {}", t.name)))?;
        if on_target != Some(state) {
            return Err(DbError::Uncarriable {
                table: t.name.clone(),
                why: format!(
                    "the sequence stands at {:?} on the source but {:?} on {} after it was set",
                    state, on_target, job.target_label
                ),
            });
        }
    }
    Ok(())
}

/// Every table's rows, chunks of the largest tables first, read by every
/// connection of the snapshot at once (non-InnoDB tables by the one that
/// holds their locks, which it releases after); answers the chunk count.
async fn load_rows(
    job: &DbJob,
    counters: &Counters,
    connections: &RefCell<Vec<u32>>,
    snap: &mut Snapshot,
    max_packet: usize,
) -> Result<usize, DbError> {
    let db = job.name.as_str();
    let tables = &snap.tables;
    let loaded = || tables.iter().filter(|t| t.kind != TableKind::Sequence);
    counters
        .rows_total
        .set(loaded().map(|t| t.rows_estimate).sum());
    counters
        .bytes_total
        .set(loaded().map(|t| t.bytes_estimate).sum());
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(tables[*i].bytes_estimate));
    let mut snapshot_chunks = VecDeque::new();
    let mut locked_chunks = VecDeque::new();
    for i in order {
        let t = &tables[i];
        if t.kind == TableKind::Sequence {
            continue;
        }
        let range = match &t.chunk_key {
            Some(key) if t.rows_estimate > job.chunk_rows => {
                let bounds: Option<(Option<i128>, Option<i128>)> = snap.readers[0]
                    .query_first(format!(
                        "SELECT MIN({k}), MAX({k}) FROM {}.{}",
                        ident(db),
                        ident(&t.name),
                        k = ident(key)
                    ))
                    .await
                    .map_err(on_source(&format!(
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
        if !t.transactional && snap.locked_reader.is_some() {
            locked_chunks.extend(parts);
        } else {
            snapshot_chunks.extend(parts);
        }
    }
    let chunk_count = snapshot_chunks.len() + locked_chunks.len();
    let queue: RefCell<VecDeque<Chunk>> = RefCell::new(snapshot_chunks);
    let locked_queue = RefCell::new(locked_chunks);
    let loader = Loader {
        db,
        stage: &job.stage,
        tables,
        counters,
        max_packet,
        target: &job.target,
        target_label: &job.target_label,
        load_data: Cell::new(job.load_data),
        connections,
    };
    let snapshot_workers = snap.readers.iter_mut().map(|src| loader.work(src, &queue));
    let locked_worker = async {
        if let Some(conn) = snap.locked_reader.as_mut() {
            loader.work(conn, &locked_queue).await?;
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(on_source("cannot release the table locks"))?;
        }
        Ok::<(), DbError>(())
    };
    let (copied, locked_copied) =
        future::join(future::try_join_all(snapshot_workers), locked_worker).await;
    copied?;
    locked_copied?;
    Ok(chunk_count)
}

/// The database under its real name, complete: created, then every table
/// moved in by one RENAME TABLE, then the scratch database dropped.
async fn publish(
    job: &DbJob,
    recorder: &Recorder<'_>,
    created: &RefCell<Created>,
    dst: &mut Conn,
    tables: &[rows::Table],
    (charset, collation): &(String, String),
) -> Result<(), DbError> {
    let db = job.name.as_str();
    // Recorded once created, never before: a database someone else made
    // under that name meanwhile makes CREATE fail, and is never ours to drop.
    dst.query_drop(format!(
        "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
        ident(db)
    ))
    .await
    .map_err(on_target(job, "cannot create the database"))?;
    created.borrow_mut().real = true;
    (recorder.record)(DbObjectKind::Database, db.to_owned())
        .await
        .map_err(recorded)?;
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
            .map_err(on_target(job, "cannot move the tables into place"))?;
    }
    for t in tables {
        for (column, default) in &t.sequence_defaults {
            dst.query_drop(format!(
                "ALTER TABLE {}.{} ALTER COLUMN {} SET DEFAULT {default}",
                ident(db),
                ident(&t.name),
                ident(column)
            ))
            .await
            .map_err(on_target(
                job,
                &format!(
                    "cannot point the default of {}.{column} at its sequence",
                    t.name
                ),
            ))?;
        }
    }
    dst.query_drop(format!("DROP DATABASE {}", ident(&job.stage)))
        .await
        .map_err(on_target(job, "cannot drop the scratch database"))?;
    created.borrow_mut().stage = false;
    Ok(())
}

/// The database's accounts, recorded as each is created (only those this
/// copy created); answers them.
async fn create_accounts(
    recorder: &Recorder<'_>,
    created: &RefCell<Created>,
    dst: &mut Conn,
    accounts: &[Account],
) -> Result<Vec<(String, String)>, DbError> {
    let mut fresh = Vec::new();
    let made = users::create(
        dst,
        accounts,
        |a| (recorder.created_account)(&a.user, &a.host),
        &mut fresh,
    )
    .await;
    for (user, host) in &fresh {
        created
            .borrow_mut()
            .accounts
            .push((user.clone(), host.clone()));
        (recorder.record)(DbObjectKind::User, format!("{user}@{host}"))
            .await
            .map_err(recorded)?;
    }
    made?;
    Ok(fresh)
}
