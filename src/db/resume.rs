//! A database copy going on from its scratch database instead of loading
//! every row again: after its connections were lost midway, and after a
//! restart of hostmig interrupted the migration (the scratch database the
//! first run loaded is caught up with a new snapshot).

use std::cell::RefCell;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::catchup::{self, CatchUpReport};
use super::copy::{end_connections, on_target, Counters, Created, DbJob, SCHEMA_SESSION};
use super::snapshot::{self, Snapshot};
use super::{connect, DbError};

/// Whether the scratch database is on the target.
pub(super) async fn stage_exists(job: &DbJob) -> Result<bool, DbError> {
    let target = format!("the target database server {}", job.target_label);
    let mut dst = connect(&job.target, "SET NAMES utf8mb4", &target).await?;
    let exists = super::database_exists(&mut dst, &job.stage)
        .await
        .map_err(on_target(job, "cannot list databases"))?;
    let _ = dst.disconnect().await;
    Ok(exists)
}

/// Catches the scratch database up with a new snapshot, tried again
/// within the retry policy while its faults are transient; `error` is
/// the fault that interrupted the copy (none: go on at once).
pub(super) async fn resume_with_retries(
    job: &DbJob,
    counters: &Counters,
    connections: &RefCell<Vec<u32>>,
    created: &RefCell<Created>,
    attempt: &mut u32,
    mut error: Option<DbError>,
) -> Result<(Conn, Snapshot, CatchUpReport), DbError> {
    loop {
        if let Some(e) = error.take() {
            if !e.is_transient() || !created.borrow().stage {
                return Err(e);
            }
            let Some((retrying, delay)) = job.retry.next(attempt, &e) else {
                return Err(e);
            };
            tracing::info!(database = %job.name, error = %e, attempt, of = job.retry.attempts, delay_s = delay.as_secs(), "the database copy was interrupted; resuming from its scratch database");
            wait_to_retry(counters, retrying, delay).await;
            let ids = connections.borrow().clone();
            end_connections(&job.target, &ids).await;
        }
        match resume(job, counters, connections).await {
            Ok(done) => return Ok(done),
            Err(e) => error = Some(e),
        }
    }
}

/// Waits out a retry's delay, the status saying so meanwhile.
pub(super) async fn wait_to_retry(
    counters: &Counters,
    retrying: crate::retry::Retrying,
    delay: std::time::Duration,
) {
    *counters.retrying.borrow_mut() = Some(retrying);
    tokio::time::sleep(delay).await;
    *counters.retrying.borrow_mut() = None;
}

/// A new snapshot, and the scratch database caught up with it.
async fn resume(
    job: &DbJob,
    counters: &Counters,
    connections: &RefCell<Vec<u32>>,
) -> Result<(Conn, Snapshot, CatchUpReport), DbError> {
    let target = format!("the target database server {}", job.target_label);
    let mut dst = connect(&job.target, SCHEMA_SESSION, &target).await?;
    let max_packet: Option<u64> = dst
        .query_first("SELECT @@max_allowed_packet")
        .await
        .map_err(on_target(job, "cannot read max_allowed_packet"))?;
    let mut snap = snapshot::take(job).await?;
    let report = catchup::tables_and_rows(
        job,
        &job.stage,
        &mut snap,
        &mut dst,
        max_packet.unwrap_or(16 << 20) as usize,
        counters,
        connections,
    )
    .await?;
    Ok((dst, snap, report))
}
