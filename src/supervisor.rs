//! The Supervisor: admits migrations after `prepare` validated them, runs
//! at most `migrations.max_parallel` at once and queues the rest, hears
//! how each ended (panics included), writes every transition to the
//! journal and reports statuses to RpcFront's board. It also owns the
//! journal's lifecycle: it records the server run, answers for migrations
//! of earlier runs, and closes the journal last.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, Arbiter, AsyncContext, Context, Handler, Message,
    Recipient, ResponseActFuture, WrapFuture,
};

use crate::config::Config;
use crate::journal::{self, Journal, MigrationState};
use crate::migration::events::{Event, EventLog};
use crate::migration::plan::{check_busy, Busy, Hold};
use crate::migration::prepare::{prepare, prepare_resync, Prepared, ResyncSource};
use crate::migration::refusal::{NotReady, Refusal};
use crate::migration::report::{save_report, Outcome, Report};
use crate::migration::request::{MigrationId, StartRequest};
use crate::migration::resume::StoredRequest;
use crate::migration::run::{Migration, MigrationEnded, StatusReport, StopNow};
use crate::migration::space::Need;
use crate::migration::status::{MigrationStatus, Progress, Stage, StatusError};
use crate::migration::summary::PlanSummary;
use crate::secret::Secret;

mod clean_ups;
mod listing;
mod resume;
use clean_ups::CleanUps;
pub use listing::ListMigrations;
pub use resume::ResumeMigration;

/// How many starts are validated at the same time.
const VALIDATIONS_AT_ONCE: usize = 2;

struct Running {
    addr: Addr<Migration>,
    holds: Vec<Hold>,
    staging: PathBuf,
    resync: ResyncSource,
}

struct Queued {
    id: u64,
    prepared: Prepared,
    report: Report,
}

pub struct Supervisor {
    config: Arc<Config>,
    journal: Addr<Journal>,
    board: Recipient<StatusReport>,
    running: HashMap<u64, Running>,
    queue: VecDeque<Queued>,
    /// Ended migrations: where their staging was, and what a resync needs.
    ended: HashMap<u64, ResyncSource>,
    /// Ids being validated right now are not known yet; this is the next one.
    next_id: u64,
    /// Queued objects, for the busy check (running ones are in `running`).
    queued_holds: HashMap<u64, Vec<Hold>>,
    stopping: HashSet<u64>,
    /// Threads the Migration actors run on (one per core), so their work
    /// never shares a thread with RpcFront or the Supervisor.
    workers: Vec<Arbiter>,
    started: u64,
    /// Starts validated at once: each logs into a source (SSH key exchange,
    /// panel reads); a burst of them must not starve the API of CPU.
    validations: Arc<tokio::sync::Semaphore>,
    /// Set once the destination's panel database was made ready (schema,
    /// DatabaseServers rows): at start-up, or before the first admission
    /// after it came up.
    destination_ready: Arc<tokio::sync::OnceCell<()>>,
    /// The bandwidth caps every migration's reads from its source share.
    caps: crate::caps::Caps,
    /// Clean-ups of ended migrations still at work.
    clean_ups: CleanUps,
    /// What admitted migrations will write, for the disk guard.
    reserved: Reserved,
    /// Migrations a restart interrupted, until resumed or abandoned.
    interrupted: HashMap<u64, resume::Interrupted>,
    /// Set by `Shutdown`: migrations still running are left as a crash
    /// leaves them, to go on at the next start.
    shutting_down: bool,
}

impl Supervisor {
    /// `destination_ready` is set once the destination's panel database
    /// was made ready (the server tries before it listens).
    pub fn new(
        config: Arc<Config>,
        journal: Addr<Journal>,
        board: Recipient<StatusReport>,
        destination_ready: Arc<tokio::sync::OnceCell<()>>,
    ) -> Self {
        Supervisor {
            caps: crate::caps::Caps::from_config(&config),
            config,
            journal,
            board,
            running: HashMap::new(),
            queue: VecDeque::new(),
            ended: HashMap::new(),
            next_id: 1,
            queued_holds: HashMap::new(),
            stopping: HashSet::new(),
            workers: Vec::new(),
            started: 0,
            validations: Arc::new(tokio::sync::Semaphore::new(VALIDATIONS_AT_ONCE)),
            destination_ready,
            clean_ups: CleanUps::new(),
            reserved: Arc::new(Mutex::new(HashMap::new())),
            interrupted: HashMap::new(),
            shutting_down: false,
        }
    }

    /// An ended migration needs no more room.
    fn release_space(&self, id: u64) {
        if let Ok(mut reserved) = self.reserved.lock() {
            reserved.remove(&id);
        }
    }

    fn busy(&self) -> Busy {
        let mut busy = Busy::new();
        let running = self.running.iter().map(|(id, r)| (id, &r.holds));
        let interrupted = self.interrupted.iter().map(|(id, i)| (id, &i.holds));
        for (id, holds) in running.chain(self.queued_holds.iter()).chain(interrupted) {
            for h in holds {
                busy.insert(h.clone(), *id);
            }
        }
        busy
    }

    fn report(&self, id: u64, status: MigrationStatus) {
        self.board.do_send(StatusReport { id, status });
    }

    fn save_report(&self, report: &Report) {
        save_report(&self.journal, report);
    }

    fn journal_state(&self, id: u64, state: MigrationState, result: Option<&MigrationStatus>) {
        let result = result.and_then(|r| serde_json::to_string(r).ok());
        self.journal
            .do_send(journal::UpdateMigration { id, state, result });
    }

    /// Starts queued migrations while there is room.
    fn run_queued(&mut self, ctx: &mut Context<Self>) {
        while self.running.len() < self.config.migrations.max_parallel {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            let holds = self.queued_holds.remove(&next.id).unwrap_or_default();
            let staging = next.prepared.staging.clone();
            let resync = resync_source(&next.prepared);
            let meter = self.caps.meter_for(&next.prepared.host);
            let migration = Migration::new(
                next.id,
                next.prepared,
                next.report,
                self.config.clone(),
                self.board.clone(),
                ctx.address().recipient(),
                self.journal.clone(),
            )
            .with_meter(meter);
            self.journal_state(next.id, MigrationState::Running, None);
            // Kept from the first run: what was written since is checked
            // by hash when a restart interrupts it.
            self.journal.do_send(journal::RecordBegan {
                migration_id: next.id,
                at: crate::transfer::unix_now(),
            });
            let worker = &self.workers[(self.started as usize) % self.workers.len()];
            self.started += 1;
            let addr = Migration::start_in_arbiter(&worker.handle(), move |_| migration);
            self.running.insert(
                next.id,
                Running {
                    addr,
                    holds,
                    staging,
                    resync,
                },
            );
        }
        let waiting = self.queue.len();
        for (position, q) in self.queue.iter().enumerate() {
            self.report(
                q.id,
                MigrationStatus::InProgress(Progress {
                    held_back: None,
                    bytes: q.prepared.ahead_totals(),
                    total: q.prepared.steps().shown(1).0,
                    completed: q.prepared.steps().shown(1).1,
                    stage: Stage::Queued {
                        position: position + 1,
                        waiting,
                        slots: self.config.migrations.max_parallel,
                    },
                    items: Vec::new(),
                }),
            );
        }
    }

    /// Deletes what a migration created under `<staging>/hostmig-<id>/`,
    /// on a thread of its own (a stopped copy may be large), and with
    /// `event_log` its event log.
    fn clean_up(&self, id: u64, staging: &std::path::Path, event_log: bool) {
        let dir = staging.join(format!("hostmig-{id}"));
        let removed = std::thread::Builder::new()
            .name("hostmig-cleanup".into())
            .spawn(move || {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(migration_id = id, dir = %dir.display(), error = %e, "cannot remove the staging directory");
                    }
                }
            });
        if let Err(e) = removed {
            tracing::warn!(migration_id = id, error = %e, "cannot start the staging clean-up");
        }
        if event_log {
            EventLog::of(&self.config, id).remove();
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.workers = (0..cores).map(|_| Arbiter::new()).collect();
        let record = journal::RecordRunStarted {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let journal = self.journal.clone();
        ctx.wait(
            async move { journal::ask(&journal, record).await }
                .into_actor(self)
                .map(|res, _, _| match res {
                    Ok(run) if run.previous_run_unclean => tracing::warn!(
                        run_id = run.run_id,
                        "the previous hostmig run did not stop cleanly (killed or crashed)"
                    ),
                    Ok(run) => {
                        tracing::debug!(run_id = run.run_id, "server run recorded in the journal")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot record the server run in the journal")
                    }
                }),
        );
        // Migrations of earlier runs: ended ones answer as they ended; ones
        // that were queued or running when hostmig stopped did not complete.
        let journal = self.journal.clone();
        let load = async move { journal::ask(&journal, journal::LoadMigrations).await };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| {
            let stored = match res {
                Ok(stored) => stored,
                Err(e) => {
                    return tracing::error!(error = %e, "cannot read migrations from the journal")
                }
            };
            for m in stored {
                act.next_id = act.next_id.max(m.id + 1);
                let result = m
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok());
                match (m.state.ended(), result) {
                    (true, Some(status)) => {
                        act.report(m.id, status);
                        act.ended.insert(m.id, stored_resync_source(&m.plan));
                    }
                    _ => act.found_unended(m, ctx),
                }
            }
        }));
    }
}

/// Start a migration; answers its id.
#[derive(Message)]
#[rtype(result = "Result<String, Refusal>")]
pub struct StartMigration(pub Box<StartRequest>);

/// Stop a migration (the protocol's `finish`).
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct StopMigration(pub MigrationId);

/// Bring an ended migration's content up to date; answers the new id.
#[derive(Message)]
#[rtype(result = "Result<String, Refusal>")]
pub struct ResyncMigration {
    pub id: MigrationId,
    pub password: Option<Secret>,
}

/// The report of a migration.
#[derive(Message)]
#[rtype(result = "Result<Report, Refusal>")]
pub struct GetReport(pub MigrationId);

/// Stop everything and close the journal; answered when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

fn unknown(id: &MigrationId) -> Refusal {
    Refusal::UnknownMigration { id: id.0.clone() }
}

/// Makes the destination's panel database ready (schema, DatabaseServers
/// rows) when it is configured; nothing to do when it is not (`start`
/// refuses for that reason itself).
pub async fn make_destination_ready(config: &Config) -> Result<(), Refusal> {
    let Some((url, dest)) = config
        .destination
        .as_ref()
        .and_then(|d| Some((d.panel_db.as_ref()?, d)))
    else {
        return Ok(());
    };
    let mut conn = crate::panel::connect_url(url.as_str())
        .await
        .map_err(|e| Refusal::NotReady(NotReady::PanelDbUnreachable(crate::db::server_text(&e))))?;
    let made = crate::panel::destination::make_ready(&mut conn, &dest.db_servers).await;
    let _ = conn.disconnect().await;
    made.map_err(|e| Refusal::NotReady(NotReady::PanelSchema(e.to_string())))
}

impl Handler<StartMigration> for Supervisor {
    type Result = ResponseActFuture<Self, Result<String, Refusal>>;

    fn handle(&mut self, msg: StartMigration, _: &mut Self::Context) -> Self::Result {
        let (config, busy, journal) = (self.config.clone(), self.busy(), self.journal.clone());
        let reserved = self.reserved.clone();
        let before = self.before_validation();
        let validation = async move {
            let _slot = before.await?;
            // What admitted migrations still need is counted; two starts
            // validated at the same moment do not count each other.
            let admitted = admitted_needs(&reserved);
            prepare(*msg.0, config, busy, admitted, journal, None).await
        };
        Box::pin(validation.into_actor(self).map(|res, act, ctx| {
            res.and_then(|prepared| act.admit(prepared, ctx))
                .map_err(|e| act.explain(e))
        }))
    }
}

impl Supervisor {
    /// What a validation of a start or a resume waits for first: one of
    /// the validation slots (answered, held while it validates), the
    /// clean-ups of ended migrations, and the destination's panel made
    /// ready (done at start-up, unless its database was down then).
    fn before_validation(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<tokio::sync::OwnedSemaphorePermit>, Refusal>>
    {
        let (slots, clean_ups) = (self.validations.clone(), self.clean_ups.clone());
        let (ready, config) = (self.destination_ready.clone(), self.config.clone());
        async move {
            let slot = slots.acquire_owned().await.ok();
            clean_ups.settled().await;
            ready
                .get_or_try_init(|| make_destination_ready(&config))
                .await?;
            Ok(slot)
        }
    }

    /// Queues a validated migration (and starts it when there is room);
    /// answers its id.
    fn admit(&mut self, prepared: Prepared, ctx: &mut Context<Self>) -> Result<String, Refusal> {
        // Others may have been admitted while this one was validated.
        check_busy(&prepared.plan, &self.busy())?;
        let id = self.next_id;
        self.next_id += 1;
        self.enqueue(id, prepared, None, ctx);
        Ok(id.to_string())
    }

    /// Queues migration `id` (and starts it when there is room): a new
    /// one, or the second run of one a restart interrupted (`resumed`:
    /// its report as the first run left it).
    fn enqueue(
        &mut self,
        id: u64,
        prepared: Prepared,
        resumed: Option<Report>,
        ctx: &mut Context<Self>,
    ) {
        let holds = prepared.plan.holds();
        if let Ok(mut reserved) = self.reserved.lock() {
            reserved.insert(id, prepared.needs.clone());
        }
        let summary = prepared.summary();
        let events = EventLog::of(&self.config, id);
        let report = match &prepared.resume {
            None => {
                self.journal.do_send(journal::RecordMigration {
                    id,
                    source_host: prepared.host.clone(),
                    plan: serde_json::to_string(&summary).unwrap_or_default(),
                });
                self.journal.do_send(journal::RecordRequest {
                    migration_id: id,
                    request: prepared.stored.clone(),
                    total: prepared.total_steps(),
                });
                events.write(&Event::queued(&summary));
                let report = prepared.report(id);
                for o in &report.objects {
                    for warning in &o.warnings {
                        events.write(&Event::warning(o.kind, &o.name, warning));
                    }
                }
                report
            }
            Some(from) => {
                self.journal_state(id, MigrationState::Queued, None);
                let detail = format!(
                    "going on after the restart: {} client(s) and {} domain(s) deployed before it are left as they are; {} object(s) to go",
                    from.clients.len(),
                    from.domains.len(),
                    prepared.plan.objects.len()
                );
                events.write(&Event::Resume {
                    phase: "resumed",
                    detail: &detail,
                });
                match resumed {
                    Some(mut report) => {
                        report.redo(&holds);
                        report
                    }
                    None => prepared.report(id),
                }
            }
        };
        self.save_report(&report);
        tracing::info!(migration_id = id, source = %prepared.host, objects = ?summary.objects, resumed = prepared.resume.is_some(), "migration admitted");
        // Known to get_status before the client hears the id.
        let (total, completed) = prepared.steps().shown(1);
        self.report(
            id,
            MigrationStatus::InProgress(Progress {
                total,
                completed,
                stage: Stage::Planned,
                items: Vec::new(),
                held_back: None,
                bytes: prepared.ahead_totals(),
            }),
        );
        self.queued_holds.insert(id, holds);
        self.queue.push_back(Queued {
            id,
            prepared,
            report,
        });
        self.run_queued(ctx);
    }
}

/// What a resync of this migration will need (credentials in memory only).
fn resync_source(p: &Prepared) -> ResyncSource {
    ResyncSource {
        host: p.host.clone(),
        user: p.login.user.clone(),
        credential: Some(p.login.credential.clone()),
        scope: p.scope,
        staging: p.staging.clone(),
        addresses: p.plan.addresses.clone(),
    }
}

/// The same from the journal's plan summary of an earlier run (no credential).
fn stored_resync_source(plan: &str) -> ResyncSource {
    let p: PlanSummary = serde_json::from_str(plan).unwrap_or_default();
    ResyncSource {
        host: p.host,
        user: p.login,
        credential: None,
        scope: p.scope,
        staging: p.staging,
        addresses: p.addresses,
    }
}

/// What admitted (queued and running) migrations will write, for the disk
/// guard (which reads the file systems, off this actor's thread).
fn admitted_needs(reserved: &Reserved) -> Vec<Need> {
    match reserved.lock() {
        Ok(r) => r.values().flatten().cloned().collect(),
        Err(_) => Vec::new(),
    }
}

/// Admitted migrations' needs of room (`space::Need`), by id.
type Reserved = Arc<Mutex<HashMap<u64, Vec<Need>>>>;

impl Handler<MigrationEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: MigrationEnded, ctx: &mut Self::Context) {
        if self.shutting_down {
            // hostmig is stopping: the migration goes on at the next start.
            return;
        }
        let Some(running) = self.running.remove(&msg.id) else {
            return;
        };
        self.release_space(msg.id);
        let state = if msg.stopped {
            MigrationState::Stopped
        } else {
            MigrationState::Finished
        };
        self.journal_state(msg.id, state, Some(&msg.status));
        self.report(msg.id, msg.status);
        // Staging is always removed once a migration ended; a finished
        // one keeps its event log, a stopped one does not.
        let stopped = self.stopping.remove(&msg.id);
        self.clean_up(msg.id, &running.staging, stopped);
        // Databases copied for domains that were not deployed go too.
        self.clean_ups
            .spawn(crate::migration::databases::drop_unkept(
                self.config.clone(),
                self.journal.clone(),
                msg.id,
                true,
            ));
        self.ended.insert(msg.id, running.resync);
        tracing::info!(
            migration_id = msg.id,
            state = state.as_str(),
            "migration ended"
        );
        self.run_queued(ctx);
    }
}

impl Handler<StopMigration> for Supervisor {
    type Result = Result<(), Refusal>;

    fn handle(&mut self, msg: StopMigration, ctx: &mut Self::Context) -> Self::Result {
        let id: u64 = msg.0 .0.parse().map_err(|_| unknown(&msg.0))?;
        if let Some(running) = self.running.get(&id) {
            self.stopping.insert(id);
            running.addr.do_send(StopNow);
            return Ok(());
        }
        if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
            let mut queued = self.queue.remove(pos).expect("position is in range");
            self.queued_holds.remove(&id);
            self.release_space(id);
            let why = "the migration was stopped by finish before it started";
            let status = MigrationStatus::Finished {
                errors: vec![StatusError::general(why)],
            };
            queued.report.end(Outcome::Stopped, Vec::new(), why);
            self.save_report(&queued.report);
            self.journal_state(id, MigrationState::Stopped, Some(&status));
            self.report(id, status);
            self.clean_up(id, &queued.prepared.staging, true);
            self.ended.insert(id, resync_source(&queued.prepared));
            self.run_queued(ctx);
            return Ok(());
        }
        if self.abandon(id) {
            return Ok(());
        }
        match self.ended.get(&id) {
            Some(source) => {
                self.clean_up(id, &source.staging, true);
                Ok(())
            }
            None => Err(unknown(&msg.0)),
        }
    }
}

impl Handler<ResyncMigration> for Supervisor {
    type Result = ResponseActFuture<Self, Result<String, Refusal>>;

    fn handle(&mut self, msg: ResyncMigration, _: &mut Self::Context) -> Self::Result {
        let checked = (|| {
            let id: u64 = msg.id.0.parse().map_err(|_| unknown(&msg.id))?;
            if self.running.contains_key(&id) || self.queue.iter().any(|q| q.id == id) {
                return Err(Refusal::StillRunning { id });
            }
            let source = self
                .ended
                .get(&id)
                .cloned()
                .ok_or_else(|| unknown(&msg.id))?;
            Ok((id, source))
        })();
        let (id, source) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let (config, journal, slots) = (
            self.config.clone(),
            self.journal.clone(),
            self.validations.clone(),
        );
        let password = msg.password;
        let validation = async move {
            let _slot = slots.acquire_owned().await;
            let domains = journal::ask(&journal, journal::LoadDeployed(id))
                .await
                .map_err(|e| Refusal::Journal(e.to_string()))?;
            prepare_resync(source, password, domains, config, journal).await
        };
        Box::pin(validation.into_actor(self).map(move |res, act, ctx| {
            let mut prepared = res.map_err(|e| act.explain(e))?;
            prepared.stored = StoredRequest::Resync {
                of: id,
                keyed: matches!(prepared.login.credential, crate::ssh::Credential::Key(_)),
            }
            .to_json();
            act.admit(prepared, ctx).map_err(|e| act.explain(e))
        }))
    }
}

impl Handler<GetReport> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Report, Refusal>>;

    fn handle(&mut self, msg: GetReport, _: &mut Self::Context) -> Self::Result {
        let journal = self.journal.clone();
        let lookup = async move {
            let id: u64 = msg.0 .0.parse().map_err(|_| unknown(&msg.0))?;
            let text = journal::ask(&journal, journal::LoadReport(id))
                .await
                .map_err(|e| Refusal::Journal(e.to_string()))?
                .ok_or_else(|| unknown(&msg.0))?;
            serde_json::from_str(&text)
                .map_err(|e| Refusal::Journal(format!("the report is not readable: {e}")))
        };
        Box::pin(lookup.into_actor(self))
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        // Migrations still running are not stopped: what they have is
        // kept as a crash keeps it, and they go on at the next start
        // (a SIGTERM for a reboot or an upgrade costs them nothing).
        self.shutting_down = true;
        if !self.running.is_empty() {
            tracing::warn!(running = self.running.len(), "hostmig stops while migrations run; they go on where they stopped when it starts again");
        }
        let journal = self.journal.clone();
        Box::pin(
            async move { journal::ask(&journal, journal::Close).await }
                .into_actor(self)
                .map(|res, _, ctx| {
                    match res {
                        Ok(()) => tracing::info!("journal closed"),
                        Err(e) => tracing::error!(error = %e, "closing the journal failed"),
                    }
                    ctx.stop();
                }),
        )
    }
}
