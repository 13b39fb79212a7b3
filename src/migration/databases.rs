//! A migration's databases: the job of each (its target server, the
//! source server's credentials, the tunnel), the `DatabaseCopy` sub-actor
//! (one per database), what a migration's database work shares (the SSH
//! tunnels to the source's database servers, one per server and an SSH
//! session per connection; the accounts this migration created), and the
//! clean-up of what a copy created when its domain was not deployed (at
//! the end of a migration, or after a crash).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix::{Actor, Addr, Context, Handler, Message, Recipient, ResponseFuture};
use futures_util::FutureExt;

use super::events::Event;
use super::plan::PlannedDb;
use super::refusal::{NotReady, Refusal};
use super::report::{CatchUpCounts, CopyOutcome, DatabaseEntry};
use super::run::{Env, Progressed, Update};
use super::status::{Item, ItemPhase, ItemProgress};
use super::stopper::Stopper;
use crate::caps::Meter;
use crate::config::Config;
use crate::db::{
    catch_up_database, copy_database, DbError, DbJob, DbObjectKind, DbProgress, DbReport, Recorder,
};
use crate::journal::{self, Journal};
use crate::panel::credentials::db_server_login;
use crate::panel::source::DomainRecord;
use crate::ssh::{Login, Options, Tunnel};

/// Reading connections that share a database's snapshot (each with its
/// own writing connection on the target).
pub const DB_CONNECTIONS: usize = 4;

/// Tunnels to the source's database servers, opened on first use and
/// closed when the migration ends.
pub struct SourceTunnels {
    login: Login,
    opts: Options,
    meter: Arc<Meter>,
    open: tokio::sync::Mutex<HashMap<(String, u16), Arc<Tunnel>>>,
}

impl SourceTunnels {
    /// Rows they carry are counted and capped by `meter`.
    pub fn new(login: Login, opts: Options, meter: Arc<Meter>) -> Self {
        SourceTunnels {
            login,
            opts,
            meter,
            open: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The tunnel to `host:port` as the source sees it.
    pub async fn to(&self, host: &str, port: u16) -> Result<Arc<Tunnel>, String> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(&(host.to_owned(), port)) {
            return Ok(t.clone());
        }
        let (login, opts, remote) = (self.login.clone(), self.opts.clone(), host.to_owned());
        let meter = self.meter.clone();
        let tunnel = actix_web::rt::task::spawn_blocking(move || {
            Tunnel::open_metered(login, opts, &remote, port, meter)
        })
        .await
        .map_err(|e| format!("the SSH worker failed: {e}"))?
        .map_err(|e| {
            format!("the tunnel to the source's database server {host}:{port} did not open: {e}")
        })?;
        let tunnel = Arc::new(tunnel);
        open.insert((host.to_owned(), port), tunnel.clone());
        Ok(tunnel)
    }
}

/// Accounts (`server`, user, host) this migration created.
pub type CreatedAccounts = Arc<Mutex<HashSet<(String, String, String)>>>;

/// Copies one database; its work runs as a task of its own on the
/// migration's arbiter, so a stop still lets it remove what it created.
pub struct DatabaseCopy {
    stopper: Arc<Stopper>,
}

impl DatabaseCopy {
    pub fn new(stopper: Arc<Stopper>) -> Self {
        DatabaseCopy { stopper }
    }
}

impl Actor for DatabaseCopy {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Result<DbReport, DbError>")]
pub struct CopyDatabase {
    pub job: DbJob,
    /// Kept open while the copy runs.
    pub tunnel: Arc<Tunnel>,
    pub journal: Addr<Journal>,
    pub migration_id: u64,
    pub domain: String,
    pub accounts: CreatedAccounts,
    pub item: Item,
    pub progress: Recipient<Progressed>,
}

impl Handler<CopyDatabase> for DatabaseCopy {
    type Result = ResponseFuture<Result<DbReport, DbError>>;

    fn handle(&mut self, msg: CopyDatabase, _: &mut Self::Context) -> Self::Result {
        let stopper = self.stopper.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        actix::spawn(async move {
            let CopyDatabase {
                job,
                tunnel,
                journal,
                migration_id,
                domain,
                accounts,
                item,
                progress,
            } = msg;
            let mut progress = db_reporter(item, progress);
            let server = job.target_label.clone();
            let recorder = Recorder {
                record: Box::new(|kind, name| {
                    let of_database = match kind {
                        DbObjectKind::Scratch => job.name.clone(),
                        _ => String::new(),
                    };
                    let record = journal::RecordDbObject {
                        migration_id,
                        domain: domain.clone(),
                        server: server.clone(),
                        kind,
                        name,
                        of_database,
                    };
                    let journal = journal.clone();
                    async move { journal::ask(&journal, record).await }.boxed_local()
                }),
                created_account: Box::new(|user, host| {
                    accounts.lock().is_ok_and(|a| {
                        a.contains(&(server.clone(), user.to_owned(), host.to_owned()))
                    })
                }),
            };
            let result = copy_database(&job, &recorder, stopper.flag(), &mut progress).await;
            drop(recorder);
            if let (Ok(report), Ok(mut created)) = (&result, accounts.lock()) {
                for (user, host) in &report.created_accounts {
                    created.insert((server.clone(), user.clone(), host.clone()));
                }
            }
            drop(tunnel);
            let _ = tx.send(result);
        });
        Box::pin(async move { rx.await.unwrap_or(Err(DbError::Ended)) })
    }
}

/// Drops what a migration's copies created and its domains did not keep
/// (a stop, a failure, an abandon), then forgets it; what cannot be
/// dropped now stays recorded for the next start of hostmig. Without
/// `scratch` its scratch databases stay (a migration that goes on after a
/// restart catches up from them).
pub async fn drop_unkept(
    config: Arc<Config>,
    journal: Addr<Journal>,
    migration_id: u64,
    scratch: bool,
) {
    let load = journal::LoadUnkeptDbObjects {
        migration_id,
        scratch,
    };
    let Ok(objects) = journal::ask(&journal, load).await else {
        return;
    };
    let Some(dest) = config.destination.as_ref() else {
        return;
    };
    let mut by_server: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for (server, kind, name) in objects {
        let entry = by_server.entry(server).or_default();
        if kind == DbObjectKind::User {
            entry.1.push(name);
        } else {
            entry.0.push(name);
        }
    }
    for (server, (databases, users)) in by_server {
        let Some(opts) = dest
            .db_servers
            .iter()
            .find(|s| s.label() == server)
            .and_then(|s| s.opts().ok())
        else {
            tracing::warn!(migration_id, server = %server, "a migration created databases on a server no longer configured; drop them by hand");
            continue;
        };
        let dropped = crate::db::drop_objects(
            &opts,
            databases.iter().map(String::as_str),
            users.iter().map(String::as_str),
        )
        .await;
        match dropped {
            Ok(()) => {
                if !databases.is_empty() || !users.is_empty() {
                    tracing::info!(migration_id, server = %server, databases = databases.len(), users = users.len(), "dropped what the migration created for domains it did not deploy");
                }
                let _ = journal::ask(
                    &journal,
                    journal::ForgetDbObjects {
                        migration_id,
                        server,
                        scratch,
                    },
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(migration_id, server = %server, error = %e, "cannot drop what the migration created; retried when hostmig starts again")
            }
        }
    }
}

/// Turns a database copy's progress into the item's typed progress.
fn db_reporter(item: Item, to: Recipient<Progressed>) -> impl FnMut(DbProgress) {
    move |p: DbProgress| {
        let mut status = ItemProgress::new(item.clone());
        status.phase = ItemPhase::Receiving;
        status.rows_done = p.rows_done;
        status.rows_total = p.rows_total;
        status.bytes_done = p.bytes_done;
        status.bytes_total = p.bytes_total;
        status.retrying = p.retrying;
        let _ = to.try_send(Progressed(Update::Item(status)));
    }
}

/// What is done to a domain's databases: a first copy, or a catch-up of
/// the deployed ones (resync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DbWork {
    Copy,
    CatchUp,
}

/// Copies (or catches up) a domain's databases one after the other (each
/// over several connections), each on a task of its own; a failure of one
/// never stops the others. Answers each database's report entry and
/// outcome.
pub(super) async fn copy_databases(
    env: &Env,
    record: &DomainRecord,
    planned: &[PlannedDb],
    work: DbWork,
) -> Vec<(DatabaseEntry, Result<(), String>)> {
    let mut out = Vec::new();
    for p in planned {
        let item = Item::Database {
            domain: p.domain.clone(),
            name: p.db.name.clone(),
        };
        let mut entry = DatabaseEntry {
            name: p.db.name.clone(),
            server: String::new(),
            outcome: CopyOutcome::Failed,
            tables: 0,
            rows: 0,
            bytes: 0,
            verified: false,
            error: None,
            catch_up: None,
        };
        let result = match work {
            DbWork::Copy => copy_database_of(env, record, p, item.clone(), &mut entry).await,
            DbWork::CatchUp => catch_up_of(env, record, p, item.clone(), &mut entry).await,
        };
        if let Err(e) = &result {
            if entry.outcome != CopyOutcome::Stopped {
                entry.error = Some(e.clone());
            }
        }
        let _ = env.progress.send(Progressed(Update::ItemDone(item))).await;
        out.push((entry, result));
    }
    out
}

/// The job of one database: its source through the tunnel, its target
/// server; answers it with the tunnel (kept open while the job runs).
async fn db_job(
    env: &Env,
    record: &DomainRecord,
    p: &PlannedDb,
    entry: &mut DatabaseEntry,
) -> Result<(DbJob, Arc<Tunnel>), String> {
    let name = &p.db.name;
    let server = env
        .config
        .destination
        .as_ref()
        .and_then(|d| d.db_servers.get(p.target))
        .ok_or_else(|| "its target database server is no longer configured".to_owned())?;
    entry.server = server.label();
    let target = server.opts()?;
    let row = record
        .database(name)
        .map(|d| &d.server)
        .ok_or_else(|| format!("database {name} is no longer in the domain's records"))?;
    let (user, password) = db_server_login(row, &env.prepared.access.panel_db.password);
    let tunnel = env.tunnels.to(&p.db.host, p.db.port).await?;
    let compressed = env.link.get().is_some_and(|c| c.db);
    let source = tunnel
        .mysql_opts(&user, password.expose())
        .compression(compressed.then(mysql_async::Compression::fast))
        .into();
    // After a restart: the scratch database the first run loaded.
    let kept = env
        .prepared
        .resume
        .as_ref()
        .and_then(|r| r.scratches.get(&(server.label(), name.clone())))
        .cloned();
    let resume_stage = kept.is_some();
    let stage = kept.unwrap_or_else(|| {
        let n = env
            .scratch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("hostmig_{}_{n}", env.id)
    });
    let job = DbJob {
        name: name.clone(),
        source,
        target,
        target_label: server.label(),
        stage,
        resume_stage,
        users: p.db.users.clone(),
        connections: DB_CONNECTIONS,
        chunk_rows: crate::db::rows::CHUNK_ROWS,
        load_data: true,
        retry: env.config.migrations.retry,
    };
    Ok((job, tunnel))
}

/// Brings a deployed database up to date (a resync), on a task of its
/// own: a stop ends it between statements, each block's replacement
/// whole or not at all.
async fn catch_up_of(
    env: &Env,
    record: &DomainRecord,
    p: &PlannedDb,
    item: Item,
    entry: &mut DatabaseEntry,
) -> Result<(), String> {
    let (job, tunnel) = db_job(env, record, p, entry).await?;
    let label = item.label();
    let stopper = env.stopper.clone();
    let mut progress = db_reporter(item, env.progress.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    actix::spawn(async move {
        // A catch-up can run again from the start: what one that failed
        // replaced was replaced whole, and it restored what it dropped.
        let mut attempt = 0;
        let result = loop {
            match catch_up_database(&job, stopper.flag(), &mut progress).await {
                Err(e) if e.is_transient() => {
                    let Some((retrying, delay)) = job.retry.next(&mut attempt, &e) else {
                        break Err(e);
                    };
                    tracing::info!(database = %job.name, error = %e, attempt, of = job.retry.attempts, delay_s = delay.as_secs(), "the catch-up was interrupted; trying it again");
                    progress(DbProgress {
                        retrying: Some(retrying),
                        ..DbProgress::default()
                    });
                    if !crate::retry::pause(delay, stopper.flag()).await {
                        break Err(DbError::Stopped);
                    }
                }
                other => break other,
            }
        };
        drop(tunnel);
        let _ = tx.send(result);
    });
    match rx.await.unwrap_or(Err(DbError::Ended)) {
        Ok(report) => {
            env.events.write(&Event::CaughtUp {
                database: &label,
                server: &entry.server,
                catch_up: &report,
            });
            entry.outcome = CopyOutcome::Copied;
            entry.verified = true;
            entry.tables = report.tables as u64;
            entry.rows = report.rows_copied;
            entry.bytes = report.bytes_copied;
            entry.catch_up = Some(CatchUpCounts {
                compared_blocks: report.blocks_compared,
                copied_blocks: report.blocks_copied,
                copied_rows: report.rows_copied,
            });
            Ok(())
        }
        Err(e) => Err(ended(env, entry, &label, e, "was not brought up to date")),
    }
}

/// A copy or catch-up that did not complete: stopped, or failed (its
/// event written); answers the object's error text.
fn ended(env: &Env, entry: &mut DatabaseEntry, label: &str, e: DbError, failed: &str) -> String {
    if let DbError::Stopped = e {
        entry.outcome = CopyOutcome::Stopped;
        return format!("{label}: stopped");
    }
    let e = e.to_string();
    env.events.write(&Event::DatabaseFailed {
        database: label,
        failed: &e,
    });
    format!("{label} {failed}: {e}")
}

async fn copy_database_of(
    env: &Env,
    record: &DomainRecord,
    p: &PlannedDb,
    item: Item,
    entry: &mut DatabaseEntry,
) -> Result<(), String> {
    let (job, tunnel) = db_job(env, record, p, entry).await?;
    let server = entry.server.clone();
    let label = item.label();
    let copy = DatabaseCopy::new(env.stopper.clone()).start();
    let result = copy
        .send(CopyDatabase {
            job,
            tunnel,
            journal: env.journal.clone(),
            migration_id: env.id,
            domain: p.domain.clone(),
            accounts: env.accounts.clone(),
            item,
            progress: env.progress.clone(),
        })
        .await
        .unwrap_or(Err(DbError::Ended));
    match result {
        Ok(report) => {
            env.events.write(&Event::Database {
                database: &label,
                server: &server,
                report: &report,
            });
            entry.outcome = CopyOutcome::Copied;
            entry.verified = true;
            (entry.tables, entry.rows, entry.bytes) =
                (report.tables as u64, report.rows, report.bytes);
            Ok(())
        }
        Err(e) => Err(ended(
            env,
            entry,
            &label,
            e,
            &format!("was not copied to {server}"),
        )),
    }
}

/// (target server, kind, name) of what the destination already has.
type ExistingObjects = std::collections::BTreeSet<(usize, super::plan::Existing, String)>;

/// The databases and users the plan would create that the destination's
/// servers already have, and where each server keeps its data (when on
/// this machine).
pub(super) async fn existing_db_objects(
    dest: &crate::config::Destination,
    plan: &super::plan::Plan,
) -> Result<(ExistingObjects, BTreeMap<usize, std::path::PathBuf>), Refusal> {
    let mut out = ExistingObjects::new();
    let mut dirs = BTreeMap::new();
    let mut targets: Vec<usize> = plan.databases.iter().map(|p| p.target).collect();
    targets.dedup();
    targets.sort_unstable();
    targets.dedup();
    for target in targets {
        let Some(server) = dest.db_servers.get(target) else {
            continue;
        };
        let unreachable = |reason: String| {
            Refusal::NotReady(NotReady::DbServerUnreachable {
                server: server.label(),
                reason,
            })
        };
        let opts = server.opts().map_err(unreachable)?;
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| unreachable(crate::db::server_text(&e)))?;
        for p in plan.databases.iter().filter(|p| p.target == target) {
            if crate::db::database_exists(&mut conn, &p.db.name)
                .await
                .map_err(|e| unreachable(crate::db::server_text(&e)))?
            {
                out.insert((target, super::plan::Existing::Database, p.db.name.clone()));
            }
            for user in &p.db.users {
                if crate::db::user_exists(&mut conn, user)
                    .await
                    .map_err(|e| unreachable(crate::db::server_text(&e)))?
                {
                    out.insert((target, super::plan::Existing::User, user.clone()));
                }
            }
        }
        if let Some(dir) = super::space::data_dir(&mut conn).await {
            dirs.insert(target, dir);
        }
        let _ = conn.disconnect().await;
    }
    Ok((out, dirs))
}
