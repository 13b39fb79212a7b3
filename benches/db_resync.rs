//! The database catch-up against a full copy, in one run (not a test): the
//! largest database of a profile's fixture is copied whole (as a first
//! copy runs: 4 connections, one snapshot, through the SSH tunnel), then
//! 1 % of the rows of its largest table change on the source (half of
//! them appended, a quarter updated and a quarter deleted, chosen by a
//! hash of the key: spread over the table as at random), and the copy is
//! caught up (`resync`'s work). Prints both times, their ratio, how the
//! catch-up's time split between comparing and copying, and what it
//! copied; writes target/bench/db-resync-PROFILE.json. The source's
//! changes are undone at the end, so the kept fixture stays as it was.
//!
//! `HOSTMIG_BENCH_PROFILE` (default large), `HOSTMIG_BENCH_SEED` (1).
//! Run: `cargo bench --bench db_resync`.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use hostmig::db::{catch_up_database, copy_database, DbJob, Recorder};
use hostmig::sandbox::{Destination, Source};
use mysql_async::prelude::Queryable;

/// The largest table of the generator's databases.
const TABLE: &str = "posts";

fn main() {
    let (profile, seed) = common::profile_and_seed("large");
    let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let fixture = target_dir.join(format!("bench-fixtures/{}-{seed}", profile.as_str()));
    let work = tempfile::tempdir_in(&target_dir).expect("work dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let source = rt
        .block_on(Source::start(&fixture, profile, seed))
        .expect("source");
    let dest = rt
        .block_on(Destination::start(&work.path().join("dst"), 1))
        .expect("destination");
    let database = rt.block_on(largest(&source)).expect("a database");
    println!(
        "profile {} seed {seed}: database {database}",
        profile.as_str()
    );

    let (login, opts) = source.root_login(work.path());
    let tunnel =
        hostmig::ssh::Tunnel::open(login, opts, "localhost", source.db.port).expect("tunnel");
    let target = &dest.db_servers[0];
    let job = DbJob {
        name: database.clone(),
        source: tunnel.mysql_opts("admin", &source.admin_password).into(),
        target: mysql_async::Opts::from_url(&target.root_url(None)).expect("url"),
        target_label: format!("localhost:{}", target.port),
        stage: "hostmig_bench_0".into(),
        resume_stage: false,
        users: Vec::new(),
        connections: 4,
        chunk_rows: hostmig::db::rows::CHUNK_ROWS,
        load_data: true,
        retry: hostmig::retry::RetryPolicy::default(),
    };
    let recorder = Recorder {
        record: Box::new(|_, _| Box::pin(async { Ok(()) })),
        created_account: Box::new(|_, _| false),
    };
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let copy = rt
        .block_on(copy_database(&job, &recorder, &stop, &mut |_| {}))
        .unwrap_or_else(|e| panic!("the full copy failed: {e}"));
    let full = t.elapsed();
    println!(
        "full copy: {:.2} s, {} rows in {} chunks",
        full.as_secs_f64(),
        copy.rows,
        copy.chunks
    );

    let changed = rt.block_on(change(&source, &database));
    let t = Instant::now();
    let caught = rt.block_on(catch_up_database(&job, &stop, &mut |_| {}));
    let catch_up = t.elapsed();
    rt.block_on(undo(&source, &database, &changed));
    let r = caught.unwrap_or_else(|e| panic!("the catch-up failed: {e}"));
    let ratio = catch_up.as_secs_f64() / full.as_secs_f64();
    println!(
        "catch-up after {} appended, {} updated, {} deleted of {} rows in {TABLE}: {:.2} s = {:.1} % of the full copy (target: under 35 %)",
        changed.appended,
        changed.updated,
        changed.deleted,
        changed.rows,
        catch_up.as_secs_f64(),
        ratio * 100.0
    );
    println!(
        "  compared {} blocks in {} chunks, copied {} blocks ({} rows), kept {} rows; connection time comparing {:.2} s, copying {:.2} s (4 connections)",
        r.blocks_compared,
        r.chunks,
        r.blocks_copied,
        r.rows_copied,
        r.rows_kept,
        r.compare_ms as f64 / 1000.0,
        r.copy_ms as f64 / 1000.0
    );
    let out = target_dir.join("bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    std::fs::write(
        out.join(format!("db-resync-{}.json", profile.as_str())),
        format!(
            "{{\"benchmark\":\"db-resync\",\"profile\":\"{}\",\"database\":\"{database}\",\"rows\":{},\"full_copy_s\":{:.3},\"catch_up_s\":{:.3},\"ratio\":{ratio:.4},\"appended\":{},\"updated\":{},\"deleted\":{},\"report\":{}}}\n",
            profile.as_str(),
            changed.rows,
            full.as_secs_f64(),
            catch_up.as_secs_f64(),
            changed.appended,
            changed.updated,
            changed.deleted,
            serde_json::to_string(&r).expect("json")
        ),
    )
    .expect("write json");
    drop(tunnel);
}

async fn largest(source: &Source) -> Option<String> {
    let mut c = source.db.connect(None).await.ok()?;
    c.query_first(format!(
        "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = '{TABLE}' \
         AND TABLE_SCHEMA NOT IN ('mysql', 'psa') ORDER BY DATA_LENGTH DESC LIMIT 1"
    ))
    .await
    .ok()?
}

struct Changed {
    rows: u64,
    max_id: u64,
    appended: u64,
    updated: u64,
    deleted: u64,
}

/// Selections of about 1/400 of the rows each, spread by a hash of the key.
const UPDATED: &str = "CRC32(id) % 400 = 11";
const DELETED: &str = "CRC32(id) % 400 = 7";

/// 1 % of the table's rows: half appended, a quarter updated, a quarter
/// deleted (kept aside in a database of the bench's own, to be undone).
async fn change(source: &Source, db: &str) -> Changed {
    let mut c = source.db.connect(Some(db)).await.expect("source");
    let (rows, max_id): (u64, u64) = c
        .query_first(format!("SELECT COUNT(*), MAX(id) FROM {TABLE}"))
        .await
        .expect("count")
        .expect("row");
    c.query_drop(format!(
        "DROP DATABASE IF EXISTS hostmig_bench_keep; CREATE DATABASE hostmig_bench_keep; \
         CREATE TABLE hostmig_bench_keep.deleted AS SELECT * FROM {TABLE} WHERE {DELETED}; \
         DELETE FROM {TABLE} WHERE {DELETED}; \
         UPDATE {TABLE} SET views = views + 1000000 WHERE {UPDATED}"
    ))
    .await
    .expect("change");
    let deleted: u64 = c
        .query_first("SELECT COUNT(*) FROM hostmig_bench_keep.deleted")
        .await
        .expect("count")
        .unwrap_or(0);
    let updated: u64 = c
        .query_first(format!("SELECT COUNT(*) FROM {TABLE} WHERE {UPDATED}"))
        .await
        .expect("count")
        .unwrap_or(0);
    let appended = rows / 200;
    c.query_drop(format!(
        "INSERT INTO {TABLE} (author_id, title, body, status, views, rating, created) \
         SELECT author_id, title, body, status, views, rating, created FROM {TABLE} ORDER BY id LIMIT {appended}"
    ))
    .await
    .expect("append");
    Changed {
        rows,
        max_id,
        appended,
        updated,
        deleted,
    }
}

/// The source as it was before `change`.
async fn undo(source: &Source, db: &str, changed: &Changed) {
    let mut c = source.db.connect(Some(db)).await.expect("source");
    c.query_drop(format!(
        "DELETE FROM {TABLE} WHERE id > {max}; \
         UPDATE {TABLE} SET views = views - 1000000 WHERE {UPDATED}; \
         INSERT INTO {TABLE} SELECT * FROM hostmig_bench_keep.deleted; \
         DROP DATABASE hostmig_bench_keep; \
         ALTER TABLE {TABLE} AUTO_INCREMENT = {next}",
        max = changed.max_id,
        next = changed.max_id + 1
    ))
    .await
    .expect("undo the changes");
}
