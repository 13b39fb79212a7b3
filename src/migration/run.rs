//! The Migration actor: one per running migration. It deploys the planned
//! objects one by one into the destination panel, reports its status after
//! every step, writes its event log, and tells the Supervisor how it ended,
//! also when it is stopped or panics (a Drop guard).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use serde_json::json;

use super::content::{ContentTransfer, CopyTree, SessionPool, Stopper};
use super::databases::{CopyDatabase, CreatedAccounts, DatabaseCopy, SourceTunnels};
use super::plan::{Object, PlannedDb, TargetServer};
use super::prepare::{trees_of, Prepared, TreeKind};
use super::status::{MigrationStatus, ObjectKind, StatusError};
use crate::config::Config;
use crate::journal::{self, Journal};
use crate::panel::deploy;
use crate::panel::source::{text, DomainRecord};
use crate::remap::{IpRemap, Remap, RemapRecords};
use crate::rpc::packet::Scope;
use crate::transfer::owner;
use crate::transfer::tree::{Phase, Progress, TreeError, TreeJob};

/// The latest status of a migration, for the status board.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct StatusReport {
    pub id: u64,
    pub status: MigrationStatus,
}

/// A migration ended: finished, stopped, or failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MigrationEnded {
    pub id: u64,
    pub stopped: bool,
    pub status: MigrationStatus,
}

/// Stop now (the protocol's `finish`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNow;

/// Sends `MigrationEnded` when dropped: after a normal end, a stop, or a
/// panic that unwound the actor.
struct ExitGuard {
    id: u64,
    supervisor: Recipient<MigrationEnded>,
    outcome: Option<(bool, MigrationStatus)>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let (stopped, status) = self.outcome.take().unwrap_or_else(|| {
            (
                false,
                MigrationStatus::Finished {
                    errors: vec![StatusError::general(
                        "the migration failed unexpectedly; see the server log",
                    )],
                },
            )
        });
        self.supervisor.do_send(MigrationEnded {
            id: self.id,
            stopped,
            status,
        });
    }
}

pub struct Migration {
    env: Arc<Env>,
    guard: ExitGuard,
}

/// What a running migration's steps share.
struct Env {
    id: u64,
    prepared: Prepared,
    config: Arc<Config>,
    report: Recipient<StatusReport>,
    journal: Addr<Journal>,
    stopper: Arc<Stopper>,
    pool: Arc<SessionPool>,
    tunnels: SourceTunnels,
    accounts: CreatedAccounts,
    /// Numbers the scratch databases of this migration.
    scratch: std::sync::atomic::AtomicUsize,
    log: PathBuf,
}

/// Reading connections that share a database's snapshot (each with its
/// own writing connection on the target).
pub const DB_CONNECTIONS: usize = 4;

impl Migration {
    pub fn new(
        id: u64,
        prepared: Prepared,
        config: Arc<Config>,
        report: Recipient<StatusReport>,
        supervisor: Recipient<MigrationEnded>,
        journal: Addr<Journal>,
    ) -> Self {
        let log = event_log_path(&config, id);
        let stopper = Arc::new(Stopper::default());
        let pool = Arc::new(SessionPool::new(
            prepared.login.clone(),
            super::prepare::ssh_options(&config),
            stopper.clone(),
        ));
        let tunnels =
            SourceTunnels::new(prepared.login.clone(), super::prepare::ssh_options(&config));
        Migration {
            env: Arc::new(Env {
                id,
                prepared,
                config,
                report,
                journal,
                stopper,
                pool,
                tunnels,
                accounts: CreatedAccounts::default(),
                scratch: Default::default(),
                log,
            }),
            guard: ExitGuard {
                id,
                supervisor,
                outcome: None,
            },
        }
    }
}

/// `<state>/migrations/<id>.jsonl`.
pub fn event_log_path(config: &Config, id: u64) -> PathBuf {
    config
        .state
        .dir
        .join("migrations")
        .join(format!("{id}.jsonl"))
}

/// Appends one JSON line to a migration's event log.
pub fn log_event(path: &std::path::Path, event: serde_json::Value) {
    let line = json!({
        "at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "event": event,
    });
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        })
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the migration event log");
    }
}

impl Actor for Migration {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let env = self.env.clone();
        log_event(&env.log, json!({"phase": "running"}));
        let work = async move { execute(&env).await };
        ctx.spawn(work.into_actor(self).map(|errors, act, ctx| {
            let status = MigrationStatus::Finished { errors };
            log_event(
                &act.env.log,
                json!({"phase": "finished", "status": &status}),
            );
            act.guard.outcome = Some((false, status));
            ctx.stop();
        }));
    }
}

impl Handler<StopNow> for Migration {
    type Result = ();

    fn handle(&mut self, _: StopNow, ctx: &mut Self::Context) {
        // Transfers end at once (their sockets are broken); stopping the
        // actor drops the running step's future (a query waiting on a lock
        // included); what it deployed stays.
        self.env.stopper.stop();
        self.guard.outcome = Some((
            true,
            MigrationStatus::Finished {
                errors: vec![StatusError::general("the migration was stopped by finish; objects it had not deployed were not migrated")],
            },
        ));
        ctx.stop();
    }
}

use actix::ActorFutureExt;

/// Copies and deploys every planned object; answers the error entries
/// (none: success).
async fn execute(env: &Env) -> Vec<StatusError> {
    let prepared = &env.prepared;
    let total = prepared.total_steps();
    let mut completed = 1;
    if prepared.resync {
        return resync(env, total).await;
    }
    let Some(dest) = env.config.destination.as_ref() else {
        return vec![StatusError::general(
            "the [destination] section is not configured",
        )];
    };
    let Some(url) = dest.panel_db.as_ref() else {
        return vec![StatusError::general(
            "destination.panel_db is not configured",
        )];
    };
    let mut conn = match mysql_async::Conn::from_url(url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            return vec![StatusError::general(format!(
                "the destination panel database is not reachable: {e}"
            ))]
        }
    };
    // The IpRemap sub-actor applies the address map (and moves paths).
    let rules = Remap {
        addresses: prepared.plan.addresses.clone(),
        roots: vec![
            (
                prepared.access.layout.vhosts.clone(),
                dest.vhosts_root.clone(),
            ),
            (
                prepared.access.layout.mailnames.clone(),
                dest.mailnames_root.clone(),
            ),
        ],
    };
    let remap = IpRemap::new(rules).start();
    let remapped = remap
        .send(RemapRecords {
            clients: prepared.clients.clone(),
            domains: prepared.domains.clone(),
        })
        .await;
    let Ok((clients, domains)) = remapped else {
        return vec![StatusError::general(
            "the address remapping stopped unexpectedly",
        )];
    };
    let domain = |name: &str| {
        domains
            .iter()
            .find(|d| text(d.fields.get("name")).as_deref() == Some(name))
    };
    let mut errors = Vec::new();
    for object in &prepared.plan.objects {
        match object {
            Object::Client { login, domains } => {
                env.progress(total, completed, format!("deploying client {login}"));
                let Some(record) = clients
                    .iter()
                    .find(|c| text(c.fields.get("login")).as_deref() == Some(login))
                else {
                    continue;
                };
                let deployed = deploy::client(&mut conn, record).await;
                completed += 1;
                log_event(
                    &env.log,
                    json!({"object": {"type": "client", "name": login}, "deployed": deployed.is_ok()}),
                );
                if let Err(e) = deployed {
                    errors.push(StatusError::object(
                        ObjectKind::Client,
                        login,
                        format!("the client was not deployed: {e}"),
                    ));
                    // Its domains cannot be given to a client that is not there.
                    for d in domains {
                        errors.push(StatusError::object(
                            ObjectKind::Domain,
                            d,
                            format!("not migrated: its client {login} could not be deployed"),
                        ));
                    }
                    continue;
                }
                for d in domains {
                    if let Some(record) = domain(d) {
                        migrate_domain(
                            env,
                            &mut conn,
                            record,
                            login,
                            total,
                            &mut completed,
                            &mut errors,
                        )
                        .await;
                    }
                }
            }
            Object::Domain { name, owner } => {
                if let Some(record) = domain(name) {
                    migrate_domain(
                        env,
                        &mut conn,
                        record,
                        owner,
                        total,
                        &mut completed,
                        &mut errors,
                    )
                    .await;
                }
            }
        }
    }
    let _ = conn.disconnect().await;
    errors
}

impl Env {
    fn progress(&self, total: u64, completed: u64, description: String) {
        report_progress(&self.report, self.id, total, completed, description);
    }

    async fn journal<M>(&self, msg: M) -> Result<M::Result, String>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Journal: actix::Handler<M>,
    {
        self.journal
            .send(msg)
            .await
            .map_err(|e| format!("the journal is not answering: {e}"))
    }
}

/// A resync: the recorded trees of each deployed domain, brought up to
/// date; no records are written.
async fn resync(env: &Env, total: u64) -> Vec<StatusError> {
    let mut completed = 1;
    let mut errors = Vec::new();
    for name in env.prepared.plan.domain_names() {
        let trees = env.prepared.trees_for(&name);
        if let Err(problems) = copy_trees(env, &name, None, &trees, total, completed).await {
            errors.push(StatusError::object(ObjectKind::Domain, &name, problems));
        }
        completed += trees.len() as u64;
    }
    errors
}

/// One domain: its content trees (copied, verified, remapped), then its
/// records, written only when all of its content arrived.
async fn migrate_domain(
    env: &Env,
    conn: &mut mysql_async::Conn,
    record: &DomainRecord,
    owner: &str,
    total: u64,
    completed: &mut u64,
    errors: &mut Vec<StatusError>,
) {
    let prepared = &env.prepared;
    let name = text(record.fields.get("name")).unwrap_or_default();
    let trees = trees_of(record, prepared.scope);
    let sys_login = record
        .hosting
        .as_ref()
        .and_then(|h| text(h.sys_user.get("login")));
    let planned: Vec<PlannedDb> = prepared
        .plan
        .databases
        .iter()
        .filter(|p| p.domain == name)
        .cloned()
        .collect();
    let (copied, databases) = futures_util::future::join(
        copy_trees(env, &name, sys_login, &trees, total, *completed),
        // Both report from the same step count: the status board never
        // lets the count go down, so neither may run ahead of the other.
        copy_databases(env, record, &planned, total, *completed),
    )
    .await;
    *completed += (trees.len() + planned.len()) as u64;
    let mut problems = Vec::new();
    if let Err(p) = copied {
        problems.push(p);
    }
    let failed: Vec<&str> = databases
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n.as_str())
        .collect();
    for (db, result) in &databases {
        if let Err(e) = result {
            errors.push(StatusError::object(ObjectKind::Database, db, e.clone()));
        }
    }
    if !failed.is_empty() {
        problems.push(format!(
            "the domain's records were not written: its database{} {} did not arrive",
            if failed.len() > 1 { "s" } else { "" },
            failed.join(", ")
        ));
    }
    if !problems.is_empty() {
        errors.push(StatusError::object(
            ObjectKind::Domain,
            &name,
            problems.join("; "),
        ));
        *completed += 1;
        return;
    }
    env.progress(total, *completed, format!("deploying domain {name}"));
    let scoped = scoped(record, prepared.scope);
    let targets: Vec<(String, TargetServer)> = planned
        .iter()
        .filter_map(|p| Some((p.db.name.clone(), target_server(env, p.target)?)))
        .collect();
    let deployed = deploy::domain(conn, &scoped, owner, &targets).await;
    *completed += 1;
    log_event(
        &env.log,
        json!({"object": {"type": "domain", "name": &name}, "deployed": deployed.is_ok()}),
    );
    if let Err(e) = deployed {
        errors.push(StatusError::object(
            ObjectKind::Domain,
            &name,
            format!("the domain was not deployed: {e}"),
        ));
        return;
    }
    if let Err(e) = env
        .journal(journal::RecordDeployed {
            migration_id: env.id,
            domain: name.clone(),
        })
        .await
    {
        tracing::warn!(migration_id = env.id, domain = %name, error = %e, "cannot record the deployed domain; resync will not know it, and its databases are dropped when the migration ends");
    }
}

/// The configured server at `index`, as the panel names it.
fn target_server(env: &Env, index: usize) -> Option<TargetServer> {
    let s = env.config.destination.as_ref()?.db_servers.get(index)?;
    Some(TargetServer {
        host: s.host.clone(),
        port: s.port,
        kind: s.kind.name().to_owned(),
        default: s.default,
    })
}

/// Copies a domain's databases one after the other (each over several
/// connections), each by a DatabaseCopy sub-actor; a failure of one never
/// stops the others. Answers each database's outcome.
async fn copy_databases(
    env: &Env,
    record: &DomainRecord,
    planned: &[PlannedDb],
    total: u64,
    completed: u64,
) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for p in planned {
        let result = copy_database(env, record, p, total, completed).await;
        out.push((p.db.name.clone(), result));
    }
    out
}

async fn copy_database(
    env: &Env,
    record: &DomainRecord,
    p: &PlannedDb,
    total: u64,
    completed: u64,
) -> Result<(), String> {
    let name = &p.db.name;
    let server = env
        .config
        .destination
        .as_ref()
        .and_then(|d| d.db_servers.get(p.target))
        .ok_or_else(|| "its target database server is no longer configured".to_owned())?;
    let target = server.opts()?;
    // The source server's credentials (PANEL.md): its DatabaseServers row,
    // or `admin` with the panel's password for a local server without one.
    let row = record
        .databases
        .iter()
        .find(|d| text(d.fields.get("name")).as_deref() == Some(name.as_str()))
        .map(|d| &d.server);
    let mut user = row
        .and_then(|r| text(r.get("admin_login")))
        .unwrap_or_default();
    let mut password = row
        .and_then(|r| text(r.get("admin_password")))
        .unwrap_or_default();
    if password.is_empty() && matches!(p.db.host.as_str(), "localhost" | "127.0.0.1") {
        user = "admin".to_owned();
        password = env.prepared.access.panel_db.password.expose().to_owned();
    }
    let tunnel = env.tunnels.to(&p.db.host, p.db.port).await?;
    let source = tunnel.mysql_opts(&user, &password).into();
    let n = env
        .scratch
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let job = crate::db::DbJob {
        name: name.clone(),
        source,
        target,
        target_label: server.label(),
        stage: format!("hostmig_{}_{n}", env.id),
        users: p.db.users.clone(),
        connections: DB_CONNECTIONS,
        chunk_rows: crate::db::rows::CHUNK_ROWS,
        load_data: true,
    };
    let label = format!("database {name} of {}", p.domain);
    let copy = DatabaseCopy::new(env.stopper.clone()).start();
    let result = copy
        .send(CopyDatabase {
            job,
            tunnel,
            journal: env.journal.clone(),
            migration_id: env.id,
            domain: p.domain.clone(),
            accounts: env.accounts.clone(),
            progress: db_progress_reporter(env, label.clone(), total, completed),
        })
        .await
        .unwrap_or_else(|e| Err(crate::db::DbError::Failed(e.to_string())));
    match result {
        Ok(report) => {
            log_event(
                &env.log,
                json!({"database": &label, "server": server.label(), "report": &report}),
            );
            Ok(())
        }
        Err(crate::db::DbError::Stopped) => Err(format!("{label}: stopped")),
        Err(crate::db::DbError::Failed(e)) => {
            log_event(&env.log, json!({"database": &label, "failed": &e}));
            Err(format!("{label} was not copied to {}: {e}", server.label()))
        }
    }
}

/// Turns a database copy's progress into status reports.
fn db_progress_reporter(
    env: &Env,
    label: String,
    total: u64,
    completed: u64,
) -> Box<dyn FnMut(crate::db::DbProgress) + Send> {
    let (report, id) = (env.report.clone(), env.id);
    Box::new(move |p: crate::db::DbProgress| {
        let description = format!(
            "copying {label}: {} of ~{} rows, {} of ~{}",
            p.rows_done,
            p.rows_total.max(p.rows_done),
            mib(p.bytes_done),
            mib(p.bytes_total.max(p.bytes_done))
        );
        report_progress(&report, id, total, completed, description);
    })
}

/// The record as `only-hosting` or `only-mail` migrates it.
fn scoped(record: &DomainRecord, scope: Scope) -> DomainRecord {
    let mut out = record.clone();
    match scope {
        Scope::Everything => {}
        Scope::OnlyHosting => out.mail.clear(),
        Scope::OnlyMail => {
            out.hosting = None;
            out.forwarding = None;
            out.databases.clear();
            out.subdomains.clear();
            out.fields
                .insert("htype".to_owned(), mysql_async::Value::from("none"));
        }
    }
    out
}

/// Copies the domain's trees at the same time, each by a ContentTransfer
/// sub-actor; answers the problems, one text, when any tree failed.
async fn copy_trees(
    env: &Env,
    name: &str,
    sys_login: Option<String>,
    trees: &[TreeKind],
    total: u64,
    completed: u64,
) -> Result<(), String> {
    let prepared = &env.prepared;
    let Some(dest) = env.config.destination.as_ref() else {
        return Err("the [destination] section is not configured".into());
    };
    let mut jobs = Vec::new();
    for &kind in trees {
        let (remote_root, local_root, preferred) = match kind {
            TreeKind::Web => (
                &prepared.access.layout.vhosts,
                &dest.vhosts_root,
                sys_login.clone(),
            ),
            TreeKind::Mail => (
                &prepared.access.layout.mailnames,
                &dest.mailnames_root,
                Some(owner::MAIL_USER.to_owned()),
            ),
        };
        let label = format!("{} of {name}", kind.label());
        let local = local_root.join(name);
        // A resync keeps the owner the deployed tree has.
        let existing = std::fs::symlink_metadata(&local)
            .ok()
            .filter(|_| prepared.resync)
            .map(|m| {
                (
                    std::os::unix::fs::MetadataExt::uid(&m),
                    std::os::unix::fs::MetadataExt::gid(&m),
                )
            });
        let owner = match existing {
            Some(ids) => ids,
            None => owner::for_tree(preferred.as_deref(), &dest.fallback_owner)
                .map_err(|e| format!("{label} was not copied: {e}"))?,
        };
        let path = local.display().to_string();
        env.journal(journal::RecordTree {
            path: path.clone(),
            domain: name.to_owned(),
            migration_id: env.id,
        })
        .await?
        .map_err(|e| format!("{label} was not copied: the journal cannot record it: {e}"))?;
        let rewritten = env
            .journal(journal::LoadRewrites(path))
            .await?
            .map_err(|e| format!("{label} was not copied: the journal is not readable: {e}"))?;
        let tag = match kind {
            TreeKind::Web => "web",
            TreeKind::Mail => "mail",
        };
        jobs.push(TreeJob {
            label,
            remote: remote_root.join(name),
            local,
            transport: prepared.transport,
            staging: prepared
                .staging
                .join(format!("hostmig-{}", env.id))
                .join(format!("{name}.{tag}")),
            owner: Some(owner),
            conf_remap: (kind == TreeKind::Web).then(|| Remap {
                addresses: prepared.plan.addresses.clone(),
                roots: Vec::new(),
            }),
            rewritten,
        });
    }
    let copies = jobs.iter().map(|job| {
        let transfer = ContentTransfer::new(env.pool.clone(), env.stopper.clone()).start();
        let progress = progress_reporter(env, job.label.clone(), total, completed);
        transfer.send(CopyTree {
            job: job.clone(),
            progress,
        })
    });
    let results = futures_util::future::join_all(copies).await;
    let mut problems = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        let result = result.unwrap_or_else(|e| Err(TreeError::Failed(e.to_string())));
        match result {
            Ok(report) => {
                log_event(
                    &env.log,
                    json!({"tree": &job.label, "transport": format!("{:?}", job.transport).to_lowercase(), "report": &report}),
                );
                let saved = env
                    .journal(journal::SaveRewrites {
                        path: job.local.display().to_string(),
                        rewrites: report.rewritten,
                    })
                    .await;
                if !matches!(saved, Ok(Ok(()))) {
                    problems.push(format!(
                        "{}: copied, but the journal could not record its remapped conf/ files",
                        job.label
                    ));
                }
            }
            Err(TreeError::Stopped) => problems.push(format!("{}: stopped", job.label)),
            Err(TreeError::Failed(e)) => {
                log_event(&env.log, json!({"tree": &job.label, "failed": &e}));
                problems.push(format!("{} was not copied: {e}", job.label));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}; the domain's records were not written",
            problems.join("; ")
        ))
    }
}

/// Turns a tree's progress into status reports: domain, bytes and files
/// done of total, and the current rate.
fn progress_reporter(
    env: &Env,
    label: String,
    total: u64,
    completed: u64,
) -> Box<dyn FnMut(Progress) + Send> {
    let (report, id) = (env.report.clone(), env.id);
    let mut started: Option<std::time::Instant> = None;
    Box::new(move |p: Progress| {
        let description = match p.phase {
            Phase::Listing => format!("listing {label} on the source"),
            Phase::Verifying => format!("verifying {label}"),
            Phase::Copying | Phase::Unpacking => {
                let since = *started.get_or_insert_with(std::time::Instant::now);
                let secs = since.elapsed().as_secs_f64().max(0.001);
                let verb = if p.phase == Phase::Copying {
                    "receiving"
                } else {
                    "copying"
                };
                format!(
                    "{verb} {label}: {} of {}, {} of {} files, {}/s",
                    mib(p.bytes_done),
                    mib(p.bytes_total),
                    p.files_done,
                    p.files_total,
                    mib((p.bytes_done as f64 / secs) as u64)
                )
            }
        };
        report_progress(&report, id, total, completed, description);
    })
}

/// Reports a running migration's step and what it is doing.
fn report_progress(
    report: &Recipient<StatusReport>,
    id: u64,
    total: u64,
    completed: u64,
    description: String,
) {
    report.do_send(StatusReport {
        id,
        status: MigrationStatus::InProgress {
            total,
            completed: completed.min(total),
            description,
        },
    });
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
