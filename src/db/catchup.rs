//! Catch-up: a database brought up to date with the source against its
//! copy on the target (the deployed database, or the scratch database of
//! an interrupted copy) instead of copied again. A new consistent
//! snapshot is taken; a table whose definition changed, or that the
//! target lacks, is created again and copied whole, one the source no
//! longer has is dropped; every other table is compared chunk by chunk,
//! each chunk by the checksums of its blocks of `BLOCK_ROWS` keys on
//! both servers (one grouped query per side), and only the blocks that
//! differ are replaced: deleted and loaded again in one transaction per
//! batch of blocks (each block's replacement atomic). Rows inserted,
//! updated or deleted on the source since all land in some differing
//! block. A table without an integer key, or system-versioned, is
//! compared whole and replaced whole when it differs. Then every chunk is
//! verified as a first copy verifies it; for a deployed database the
//! stored objects are created again from the source's and the accounts
//! get the source's passwords and grants.
//!
//! Binary-log replay was not chosen: sources often run without binary
//! logging (Plesk's default MariaDB does), a replay needs the position of
//! the first copy's snapshot kept since, and it cannot prove the result
//! exact; comparing blocks needs nothing of the source and ends verified.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use futures_util::future;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;

use super::copy::{
    definition, end_connections, on_target, plan_chunks, watched, Counters, DbJob, DbProgress,
    SCHEMA_SESSION,
};
use super::loader::{checksum, Abandonable, Loader};
use super::rows::{Blocks, Chunk, Table, TableKind};
use super::snapshot::{self, Snapshot};
use super::{connect, ident, objects, users, DbError, TARGET_SESSION};

/// Keys per block: small enough that changes scattered over a table
/// (0.5 % of its rows at random touch 4 % of its blocks) mean copying few
/// rows again, large enough that the block sums of a 50,000-row chunk
/// are a small answer (6,250 rows).
pub const BLOCK_ROWS: u64 = 8;

/// Blocks replaced in one transaction.
const BATCH_BLOCKS: usize = 256;

/// What a catch-up did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CatchUpReport {
    pub tables: usize,
    /// Chunks compared, and the blocks their checksums were compared in.
    pub chunks: u64,
    pub blocks_compared: u64,
    /// Blocks that differed and were replaced (a table compared whole
    /// counts as one block).
    pub blocks_copied: u64,
    /// Rows loaded from the source (replaced blocks and tables copied
    /// whole), and their bytes.
    pub rows_copied: u64,
    pub bytes_copied: u64,
    /// Tables created again and copied whole, each with why.
    pub copied_whole: Vec<String>,
    /// Tables the source no longer has, dropped.
    pub dropped: Vec<String>,
    /// Rows in the blocks that compared equal: kept, not copied.
    pub rows_kept: u64,
    /// Time spent comparing and copying, summed over the connections.
    pub compare_ms: u64,
    pub copy_ms: u64,
    /// Views, triggers, routines and events created again, and those
    /// created without their definer (the target lacks it).
    pub objects: usize,
    pub redefined: Vec<String>,
    /// Accounts brought up to date, and those created.
    pub accounts: usize,
    pub created_accounts: Vec<(String, String)>,
    pub seconds: f64,
}

/// Brings the deployed database `job.name` on the target up to date with
/// the source: tables and rows (`tables_and_rows`), then its stored
/// objects as the source has them and its accounts' passwords and
/// grants. The stored objects are dropped first, so that no trigger
/// fires while rows are replaced.
pub async fn catch_up_database(
    job: &DbJob,
    stop: &std::sync::atomic::AtomicBool,
    progress: &mut dyn FnMut(DbProgress),
) -> Result<CatchUpReport, DbError> {
    let started = Instant::now();
    let counters = Counters::default();
    let connections = RefCell::new(Vec::new());
    // The source's stored objects while the target's are dropped: if the
    // catch-up fails or is stopped, they are created again, so the
    // deployed database never stays without its views and triggers.
    let dropped: RefCell<Option<Vec<objects::Object>>> = RefCell::new(None);
    let work = async {
        let target = format!("the target database server {}", job.target_label);
        let mut dst = connect(&job.target, SCHEMA_SESSION, &target).await?;
        if !super::database_exists(&mut dst, &job.name)
            .await
            .map_err(on_target(job, "cannot list databases"))?
        {
            return Err(DbError::Unreadable {
                what: format!(
                    "database {} on {} (it was deployed there; was it dropped since?)",
                    job.name, job.target_label
                ),
            });
        }
        let max_packet: Option<u64> = dst
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(on_target(job, "cannot read max_allowed_packet"))?;
        let mut snap = snapshot::take(job).await?;
        let stored = objects::read(&mut snap.readers[0], &job.name).await?;
        *dropped.borrow_mut() = Some(stored.clone());
        objects::drop_all(&mut dst, &job.name).await?;
        let mut report = tables_and_rows(
            job,
            &job.name,
            &mut snap,
            &mut dst,
            max_packet.unwrap_or(16 << 20) as usize,
            &counters,
            &connections,
        )
        .await?;
        let accounts = users::read(&mut snap.lock, &job.name, &job.users).await?;
        snap.close().await;
        report.redefined = objects::create(&mut dst, &job.name, &stored).await?;
        *dropped.borrow_mut() = None;
        report.objects = stored.len();
        report.created_accounts = users::update(&mut dst, &job.name, &accounts).await?;
        report.accounts = accounts.len();
        let _ = dst.disconnect().await;
        Ok(report)
    };
    let outcome = watched(work, stop, &counters, progress).await;
    if outcome.is_err() {
        let ids = connections.borrow().clone();
        end_connections(&job.target, &ids).await;
        let stored = dropped.borrow_mut().take();
        if let Some(stored) = stored {
            restore_objects(job, &stored).await;
        }
    }
    let mut report = outcome?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Creates a failed catch-up's dropped stored objects again (as the
/// source had them), as well as it can: each one that cannot be is
/// logged, and the next resync creates it.
async fn restore_objects(job: &DbJob, stored: &[objects::Object]) {
    let target = format!("the target database server {}", job.target_label);
    let restored = match connect(&job.target, SCHEMA_SESSION, &target).await {
        Ok(mut dst) => {
            let created = objects::create(&mut dst, &job.name, stored).await;
            let _ = dst.disconnect().await;
            created.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = restored {
        tracing::warn!(database = %job.name, error = %e, "a failed catch-up could not create the database's views, triggers, routines and events again; the next resync does");
    }
}

/// One piece of work of a catch-up.
enum Work {
    /// Compare, replace what differs, verify.
    Compare(Chunk),
    /// Load into a table created again, verify.
    Fresh(Chunk),
}

/// A definition as two servers' SHOW CREATE may differ only by: the next
/// AUTO_INCREMENT value.
fn normalized(create: &str) -> String {
    let mut out = String::with_capacity(create.len());
    let mut rest = create;
    while let Some(i) = rest.find(" AUTO_INCREMENT=") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " AUTO_INCREMENT=".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Brings the tables and rows of database `into` on the target up to
/// date with the snapshot `snap` of `job.name`: tables created, dropped
/// or compared, blocks replaced, sequences set, every chunk verified.
/// `dst` is the target connection for the schema; `into` is the real
/// database or the scratch one (whose sequence defaults draw from the
/// scratch database's sequences).
pub(super) async fn tables_and_rows(
    job: &DbJob,
    into: &str,
    snap: &mut Snapshot,
    dst: &mut Conn,
    max_packet: usize,
    counters: &Counters,
    connections: &RefCell<Vec<u32>>,
) -> Result<CatchUpReport, DbError> {
    let (before, bytes_before) = (counters.rows.get(), counters.bytes.get());
    let mut report = CatchUpReport {
        tables: snap.tables.len(),
        ..CatchUpReport::default()
    };
    let fresh = schema(job, into, snap, dst, &mut report).await?;
    let (snapshot_chunks, locked_chunks) = plan_chunks(job, snap, |_| true).await?;
    // A system-versioned table is compared as one piece: its history
    // can only be deleted whole.
    let versioned = RefCell::new(BTreeSet::new());
    let work = |chunks: VecDeque<Chunk>| -> VecDeque<Work> {
        chunks
            .into_iter()
            .filter_map(|c| {
                let t = &snap.tables[c.table];
                if fresh.contains(&t.name) {
                    Some(Work::Fresh(c))
                } else if t.kind == TableKind::Versioned {
                    versioned
                        .borrow_mut()
                        .insert(c.table)
                        .then_some(Work::Compare(Chunk {
                            table: c.table,
                            range: None,
                            blocks: None,
                        }))
                } else {
                    Some(Work::Compare(c))
                }
            })
            .collect()
    };
    let queue = RefCell::new(work(snapshot_chunks));
    let locked_queue = RefCell::new(work(locked_chunks));
    counters.rows_total.set(
        snap.tables
            .iter()
            .filter(|t| fresh.contains(&t.name))
            .map(|t| t.rows_estimate)
            .sum(),
    );
    let loader = Loader::of(job, into, &snap.tables, counters, max_packet, connections);
    let tally = RefCell::new(report);
    let workers = snap
        .readers
        .iter_mut()
        .map(|src| worker(&loader, src, &queue, &tally));
    let locked = async {
        if let Some(conn) = snap.locked_reader.as_mut() {
            worker(&loader, conn, &locked_queue, &tally).await?;
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(|e| DbError::sql("cannot release the table locks on the source", e))?;
        }
        Ok::<(), DbError>(())
    };
    let (done, locked_done) = future::join(future::try_join_all(workers), locked).await;
    done?;
    locked_done?;
    super::sequences::copy(job, dst, &mut snap.readers[0], &snap.tables, into).await?;
    let mut report = tally.into_inner();
    report.rows_copied = counters.rows.get() - before;
    report.bytes_copied = counters.bytes.get() - bytes_before;
    Ok(report)
}

/// Compares every table's definition on both sides: creates again (empty)
/// those that differ or are missing, drops those the source no longer
/// has; answers the tables created again.
async fn schema(
    job: &DbJob,
    into: &str,
    snap: &mut Snapshot,
    dst: &mut Conn,
    report: &mut CatchUpReport,
) -> Result<BTreeSet<String>, DbError> {
    let on_target = |what: String| {
        let label = job.target_label.clone();
        move |e| DbError::sql(format!("{what} on {label}"), e)
    };
    dst.query_drop(format!("USE {}", ident(into)))
        .await
        .map_err(on_target(format!("cannot use database {into}")))?;
    let present: Vec<(String, String)> = dst
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE')",
            (into,),
        )
        .await
        .map_err(on_target(format!("cannot list the tables of {into}")))?;
    let present: BTreeMap<String, String> = present.into_iter().collect();
    let reader = &mut snap.readers[0];
    reader
        .query_drop("SET NAMES utf8mb4")
        .await
        .map_err(|e| DbError::sql("cannot set the session on the source", e))?;
    let mut fresh = BTreeSet::new();
    // Sequences first: a table's default may draw from one.
    let mut order: Vec<&Table> = snap.tables.iter().collect();
    order.sort_by_key(|t| t.kind != TableKind::Sequence);
    for t in order {
        let what = t.kind.object();
        let Some(create) = definition(reader, job, t, into).await? else {
            continue;
        };
        let why = if present.contains_key(&t.name) {
            let target: Option<(String, String)> = dst
                .query_first(format!(
                    "SHOW CREATE {what} {}.{}",
                    ident(into),
                    ident(&t.name)
                ))
                .await
                .map_err(on_target(format!(
                    "cannot read the definition of table {}",
                    t.name
                )))?;
            match target {
                Some((_, c)) if normalized(&c) == normalized(&create) => None,
                _ => Some("its definition changed"),
            }
        } else {
            Some("it is new")
        };
        let Some(why) = why else { continue };
        dst.query_drop(format!(
            "DROP {what} IF EXISTS {}.{}",
            ident(into),
            ident(&t.name)
        ))
        .await
        .map_err(on_target(format!("cannot drop table {}", t.name)))?;
        dst.query_drop(create)
            .await
            .map_err(on_target(format!("cannot create table {}", t.name)))?;
        report.copied_whole.push(format!("{} ({why})", t.name));
        fresh.insert(t.name.clone());
    }
    reader
        .query_drop("SET NAMES binary")
        .await
        .map_err(|e| DbError::sql("cannot set the session on the source", e))?;
    let known: BTreeSet<&str> = snap.tables.iter().map(|t| t.name.as_str()).collect();
    for (name, kind) in &present {
        if known.contains(name.as_str()) {
            continue;
        }
        let what = if kind == "SEQUENCE" {
            "SEQUENCE"
        } else {
            "TABLE"
        };
        dst.query_drop(format!("DROP {what} {}.{}", ident(into), ident(name)))
            .await
            .map_err(on_target(format!("cannot drop table {name}")))?;
        report.dropped.push(name.clone());
    }
    Ok(fresh)
}

/// Takes work from `queue` until it is empty, on source connection `src`
/// and a target connection of its own.
async fn worker(
    loader: &Loader<'_>,
    src: &mut Conn,
    queue: &RefCell<VecDeque<Work>>,
    tally: &RefCell<CatchUpReport>,
) -> Result<(), DbError> {
    // Closed at once if the catch-up is dropped mid-statement.
    let mut dst = Abandonable(None);
    loop {
        let Some(work) = queue.borrow_mut().pop_front() else {
            break;
        };
        if dst.0.is_none() {
            let what = format!("the target database server {}", loader.target_label);
            let mut conn = connect(loader.target, TARGET_SESSION, &what).await?;
            loader.connections.borrow_mut().push(conn.id());
            loader.allow_history(&mut conn).await?;
            dst.0 = Some(conn);
        }
        let Some(conn) = dst.0.as_mut() else { break };
        let started = Instant::now();
        match &work {
            Work::Fresh(chunk) => {
                loader.copy(src, conn, chunk).await?;
                tally.borrow_mut().copy_ms += ms(started);
                let started = Instant::now();
                loader.verify(src, conn, chunk).await?;
                tally.borrow_mut().compare_ms += ms(started);
            }
            Work::Compare(chunk) => compare(loader, src, conn, chunk, tally).await?,
        }
    }
    if let Some(conn) = dst.0.take() {
        let _ = conn.disconnect().await;
    }
    Ok(())
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Compares a chunk on both sides and replaces what differs.
async fn compare(
    loader: &Loader<'_>,
    src: &mut Conn,
    dst: &mut Conn,
    chunk: &Chunk,
    tally: &RefCell<CatchUpReport>,
) -> Result<(), DbError> {
    let table = &loader.tables[chunk.table];
    let started = Instant::now();
    tally.borrow_mut().chunks += 1;
    let width = match table.kind {
        TableKind::Base => block_width(src, table, loader.db, chunk).await?,
        _ => None,
    };
    let differing = if let Some(width) = width {
        let groups = narrow(loader, src, dst, chunk, width, tally).await?;
        (!groups.is_empty()).then_some(groups)
    } else {
        let (a, b) = future::join(
            checksum(src, table, loader.db, chunk, "the source"),
            checksum(dst, table, loader.stage, chunk, loader.target_label),
        )
        .await;
        tally.borrow_mut().blocks_compared += 1;
        let (a, b) = (a?, b?);
        if a == b {
            tally.borrow_mut().rows_kept += a.rows;
            None
        } else {
            Some(Vec::new())
        }
    };
    tally.borrow_mut().compare_ms += ms(started);
    let Some(groups) = differing else {
        return Ok(());
    };
    let started = Instant::now();
    if groups.is_empty() {
        // Compared whole: replaced whole.
        replace(loader, src, dst, chunk).await?;
        loader.verify(src, dst, chunk).await?;
        tally.borrow_mut().blocks_copied += 1;
    }
    for (width, ids) in groups {
        for batch in ids.chunks(BATCH_BLOCKS) {
            let part = Chunk {
                table: chunk.table,
                range: chunk.range,
                blocks: Some(Blocks {
                    width,
                    ids: batch.to_vec(),
                }),
            };
            replace(loader, src, dst, &part).await?;
            // The rest of the chunk compared equal: the replaced blocks
            // are what is left to verify.
            loader.verify(src, dst, &part).await?;
            tally.borrow_mut().blocks_copied += batch.len() as u64;
        }
    }
    tally.borrow_mut().copy_ms += ms(started);
    Ok(())
}

/// Narrows a chunk to the blocks that differ: block sums at `width`
/// compared on both sides; a differing block of more than twice
/// `BLOCK_ROWS` rows (keys spread unevenly) is split again, 64 ways, and
/// so on down to single keys. Answers the differing blocks, grouped by
/// width (none: the chunk is equal); adds the rows of equal blocks to
/// what is kept.
async fn narrow(
    loader: &Loader<'_>,
    src: &mut Conn,
    dst: &mut Conn,
    chunk: &Chunk,
    width: i128,
    tally: &RefCell<CatchUpReport>,
) -> Result<Vec<(i128, Vec<i128>)>, DbError> {
    let table = &loader.tables[chunk.table];
    let mut out = Vec::new();
    let mut scope = chunk.clone();
    let mut width = width;
    loop {
        let (a, b) = future::join(
            block_sums(src, table, loader.db, &scope, width, "the source"),
            block_sums(dst, table, loader.stage, &scope, width, loader.target_label),
        )
        .await;
        let (a, b) = (a?, b?);
        let ids: BTreeSet<i128> = a.keys().chain(b.keys()).copied().collect();
        let mut t = tally.borrow_mut();
        t.blocks_compared += ids.len() as u64;
        let mut small = Vec::new();
        let mut large = Vec::new();
        for id in ids {
            let (x, y) = (a.get(&id), b.get(&id));
            if x == y {
                t.rows_kept += x.map_or(0, |s| s.0);
                continue;
            }
            let rows = x.map_or(0, |s| s.0).max(y.map_or(0, |s| s.0));
            if width > 1 && rows > 2 * BLOCK_ROWS {
                large.push(id);
            } else {
                small.push(id);
            }
        }
        drop(t);
        if !small.is_empty() {
            out.push((width, small));
        }
        if large.is_empty() {
            return Ok(out);
        }
        scope = Chunk {
            table: chunk.table,
            range: chunk.range,
            blocks: Some(Blocks { width, ids: large }),
        };
        width = (width / 64).max(1);
    }
}

/// Keys per block of a chunk, so that a block holds about `BLOCK_ROWS`
/// of the rows the source has in it however dense its keys are; `None`
/// for a chunk compared whole (no integer key, or no rows left in it on
/// the source).
async fn block_width(
    src: &mut Conn,
    table: &Table,
    db: &str,
    chunk: &Chunk,
) -> Result<Option<i128>, DbError> {
    let Some(sql) = table.key_stats(db, chunk) else {
        return Ok(None);
    };
    let stats: Option<(u64, Option<i128>, Option<i128>)> =
        src.query_first(sql).await.map_err(|e| {
            DbError::sql(
                format!(
                    "cannot read the key range of table {} on the source",
                    table.name
                ),
                e,
            )
        })?;
    let Some((rows, Some(min), Some(max))) = stats else {
        return Ok(None);
    };
    Ok(Some(
        ((max - min + 1) * BLOCK_ROWS as i128 / rows.max(1) as i128).max(1),
    ))
}

/// Block → (rows, sum) of a chunk on one server.
async fn block_sums(
    conn: &mut Conn,
    table: &Table,
    db: &str,
    chunk: &Chunk,
    width: i128,
    server: &str,
) -> Result<BTreeMap<i128, (u64, String)>, DbError> {
    let Some(sql) = table.block_sums(db, chunk, width) else {
        return Ok(BTreeMap::new());
    };
    let rows: Vec<(String, u64, Option<String>)> = conn.query(sql).await.map_err(|e| {
        DbError::sql(
            format!("cannot compare table {} on {server}", table.name),
            e,
        )
    })?;
    let mut out = BTreeMap::new();
    for (block, count, sum) in rows {
        let id: i128 = block.trim().parse().map_err(|_| DbError::Unreadable {
            what: format!(
                "a block number of table {} on {server} ({block})",
                table.name
            ),
        })?;
        out.insert(id, (count, sum.unwrap_or_default()));
    }
    Ok(out)
}

/// The rows of `part` on the target deleted and loaded again from the
/// source, in one transaction. A system-versioned table loses its
/// history rows of the part too (they are loaded again with the rest).
async fn replace(
    loader: &Loader<'_>,
    src: &mut Conn,
    dst: &mut Conn,
    part: &Chunk,
) -> Result<(), DbError> {
    let table = &loader.tables[part.table];
    let failed = |e| {
        DbError::sql(
            format!(
                "cannot replace rows of table {} on {}",
                table.name, loader.target_label
            ),
            e,
        )
    };
    dst.query_drop("START TRANSACTION").await.map_err(failed)?;
    dst.query_drop(table.delete(loader.stage, part))
        .await
        .map_err(failed)?;
    if table.kind == TableKind::Versioned {
        dst.query_drop(format!(
            "DELETE HISTORY FROM {}.{}",
            ident(loader.stage),
            ident(&table.name)
        ))
        .await
        .map_err(failed)?;
    }
    let loaded = loader.copy(src, dst, part).await;
    if loaded.is_err() {
        let _ = dst.query_drop("ROLLBACK").await;
        return loaded;
    }
    dst.query_drop("COMMIT").await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_differ_only_by_their_next_auto_increment() {
        let a = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4";
        let b = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4";
        let c = "CREATE TABLE `t` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        assert_eq!(normalized(a), normalized(b));
        assert_ne!(normalized(a), normalized(c));
        assert!(normalized(a).contains("NOT NULL AUTO_INCREMENT\n"));
    }
}
