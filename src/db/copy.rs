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

use super::catchup::CatchUpReport;
use super::loader::Loader;
use super::resume::{resume_with_retries, stage_exists, wait_to_retry};
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
    /// `stage` may hold an earlier run's rows (that run was interrupted
    /// by a restart of hostmig): when it is there, the copy catches up
    /// from it instead of loading every row again.
    pub resume_stage: bool,
    /// The database's users (logins), as the panel lists them.
    pub users: Vec<String>,
    /// Reading connections that share the snapshot.
    pub connections: usize,
    /// Rows per primary-key chunk of a large table (`rows::CHUNK_ROWS`).
    pub chunk_rows: u64,
    /// Load rows by LOAD DATA LOCAL INFILE where the target allows it
    /// (else, and when false, by INSERT statements).
    pub load_data: bool,
    /// How an interrupted copy is tried again.
    pub retry: crate::retry::RetryPolicy,
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

#[derive(Debug, Clone, Default)]
pub struct DbProgress {
    pub rows_done: u64,
    pub rows_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Set while an interrupted copy waits to be tried again.
    pub retrying: Option<crate::retry::Retrying>,
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
    /// The copy was interrupted (its connections lost) and resumed by
    /// catching up from its scratch database: what each resume did.
    pub resumed: Vec<CatchUpReport>,
}

/// What this copy created on the target (to remove when it fails).
#[derive(Default)]
pub(super) struct Created {
    pub stage: bool,
    pub real: bool,
    pub accounts: Vec<(String, String)>,
}

/// How far the copy is, shared by its loading connections.
#[derive(Default)]
pub(super) struct Counters {
    pub rows: Cell<u64>,
    pub bytes: Cell<u64>,
    pub rows_total: Cell<u64>,
    pub bytes_total: Cell<u64>,
    pub retrying: RefCell<Option<crate::retry::Retrying>>,
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
    let outcome = watched(work, stop, &counters, progress).await;
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

/// Runs `work`, telling `progress` from `counters` every 100 ms, until it
/// ends or `stop` is set (then: `Stopped`, also when the work failed
/// because of the stop).
pub(super) async fn watched<T>(
    work: impl std::future::Future<Output = Result<T, DbError>>,
    stop: &AtomicBool,
    counters: &Counters,
    progress: &mut dyn FnMut(DbProgress),
) -> Result<T, DbError> {
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
                retrying: counters.retrying.borrow().clone(),
            });
        }
    };
    let outcome = match future::select(std::pin::pin!(work), std::pin::pin!(watch)).await {
        future::Either::Left((result, _)) => result,
        future::Either::Right(((), _)) => Err(DbError::Stopped),
    };
    match outcome {
        Err(_) if stop.load(Ordering::SeqCst) => Err(DbError::Stopped),
        other => other,
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
    super::drop_objects(
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
pub(super) async fn end_connections(target: &Opts, ids: &[u32]) {
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

async fn run(
    job: &DbJob,
    recorder: &Recorder<'_>,
    counters: &Counters,
    created: &RefCell<Created>,
    connections: &RefCell<Vec<u32>>,
) -> Result<DbReport, DbError> {
    let mut attempt = 0;
    let mut resumed = Vec::new();
    // After a restart of hostmig: the rows an earlier run loaded into the
    // scratch database are caught up rather than loaded again.
    let (mut dst, mut snap, chunks) = if job.resume_stage && stage_exists(job).await? {
        created.borrow_mut().stage = true;
        tracing::info!(database = %job.name, scratch = %job.stage, "going on from the scratch database of the run before the restart");
        let (dst, snap, report) =
            resume_with_retries(job, counters, connections, created, &mut attempt, None).await?;
        let chunks = report.chunks as usize;
        resumed.push(report);
        (dst, snap, chunks)
    } else {
        first_copy(
            job,
            recorder,
            counters,
            created,
            connections,
            &mut attempt,
            &mut resumed,
        )
        .await?
    };
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
        resumed,
    })
}

/// The first copy: the snapshot, the schema in the scratch database, the
/// rows; resumed from the scratch database when its connections fail
/// midway. Answers the target connection, the snapshot and the chunks.
async fn first_copy(
    job: &DbJob,
    recorder: &Recorder<'_>,
    counters: &Counters,
    created: &RefCell<Created>,
    connections: &RefCell<Vec<u32>>,
    attempt: &mut u32,
    resumed: &mut Vec<CatchUpReport>,
) -> Result<(Conn, Snapshot, usize), DbError> {
    // Connections lost before the scratch database exists: nothing was
    // created, so the start is tried again as it was.
    let (dst, max_packet, mut snap, mut first) = loop {
        let started = async {
            let (dst, max_packet) = check_target(job).await?;
            let snap = snapshot::take(job).await?;
            Ok::<_, DbError>((dst, max_packet, snap))
        };
        let error = match started.await {
            Ok((mut dst, max_packet, mut snap)) => {
                let first = create_schema(job, recorder, created, &mut dst, &mut snap).await;
                match first {
                    Err(e) if e.is_transient() && !created.borrow().stage => e,
                    first => break (dst, max_packet, snap, first),
                }
            }
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let Some((retrying, delay)) = job.retry.next(attempt, &error) else {
            return Err(error);
        };
        tracing::info!(database = %job.name, error = %error, attempt, of = job.retry.attempts, delay_s = delay.as_secs(), "the database copy could not begin; trying it again");
        wait_to_retry(counters, retrying, delay).await;
    };
    let mut chunks = 0;
    if first.is_ok() {
        match load_rows(job, counters, connections, &mut snap, max_packet).await {
            Ok(n) => chunks = n,
            Err(e) => first = Err(e),
        }
    }
    // An interrupted copy resumes from its scratch database: what is
    // there and still equal to the source is kept.
    match first {
        Ok(()) => Ok((dst, snap, chunks)),
        Err(e) => {
            drop((dst, snap));
            let (dst, snap, report) =
                resume_with_retries(job, counters, connections, created, attempt, Some(e)).await?;
            let chunks = report.chunks as usize;
            resumed.push(report);
            Ok((dst, snap, chunks))
        }
    }
}

/// The session of the connection that creates schemas on the target.
pub(super) const SCHEMA_SESSION: &str = "SET NAMES utf8mb4, SESSION foreign_key_checks = 0, SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

pub(super) fn on_target<'a>(
    job: &'a DbJob,
    what: &'a str,
) -> impl FnOnce(mysql_async::Error) -> DbError + 'a {
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
    let mut dst = connect(&job.target, SCHEMA_SESSION, &target).await?;
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
        // Drawing from the scratch database's copy of a sequence until
        // `publish` points the default at the database's own.
        let Some(create) = definition(reader, job, t, &job.stage).await? else {
            continue;
        };
        dst.query_drop(create).await.map_err(|e| {
            DbError::sql(
                format!("cannot create table {} on {}", t.name, job.target_label),
                e,
            )
        })?;
    }
    super::sequences::copy(job, dst, reader, &snap.tables, &job.stage).await?;
    reader
        .query_drop("SET NAMES binary")
        .await
        .map_err(on_source("cannot set the session"))
}

/// A table's `SHOW CREATE` on the source (a session in utf8mb4), its
/// defaults drawing from the sequences of database `into` on the target;
/// `None` when the source no longer has it.
pub(super) async fn definition(
    reader: &mut Conn,
    job: &DbJob,
    t: &rows::Table,
    into: &str,
) -> Result<Option<String>, DbError> {
    let row: Option<(String, String)> = reader
        .query_first(format!(
            "SHOW CREATE {} {}.{}",
            t.kind.object(),
            ident(&job.name),
            ident(&t.name)
        ))
        .await
        .map_err(on_source(&format!(
            "cannot read the definition of table {}",
            t.name
        )))?;
    Ok(row.map(|(_, create)| {
        if into == job.name {
            create
        } else {
            create.replace(
                &format!("nextval({}.", ident(&job.name)),
                &format!("nextval({}.", ident(into)),
            )
        }
    }))
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
    let tables = &snap.tables;
    let loaded = || tables.iter().filter(|t| t.kind != TableKind::Sequence);
    counters
        .rows_total
        .set(loaded().map(|t| t.rows_estimate).sum());
    counters
        .bytes_total
        .set(loaded().map(|t| t.bytes_estimate).sum());
    let (snapshot_chunks, locked_chunks) = plan_chunks(job, snap, |_| true).await?;
    let chunk_count = snapshot_chunks.len() + locked_chunks.len();
    let queue: RefCell<VecDeque<Chunk>> = RefCell::new(snapshot_chunks);
    let locked_queue = RefCell::new(locked_chunks);
    let loader = Loader::of(
        job,
        &job.stage,
        &snap.tables,
        counters,
        max_packet,
        connections,
    );
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

/// The chunks of the tables `wanted` takes (sequences never), largest
/// tables first: those read inside the snapshot, and those read by the
/// connection that holds the non-InnoDB tables' locks.
pub(super) async fn plan_chunks(
    job: &DbJob,
    snap: &mut Snapshot,
    wanted: impl Fn(&rows::Table) -> bool,
) -> Result<(VecDeque<Chunk>, VecDeque<Chunk>), DbError> {
    let db = job.name.as_str();
    let tables = &snap.tables;
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(tables[*i].bytes_estimate));
    let mut snapshot_chunks = VecDeque::new();
    let mut locked_chunks = VecDeque::new();
    for i in order {
        let t = &tables[i];
        if t.kind == TableKind::Sequence || !wanted(t) {
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
    Ok((snapshot_chunks, locked_chunks))
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
