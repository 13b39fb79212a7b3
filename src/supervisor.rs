//! The Supervisor: admits migrations after `prepare` validated them, runs
//! at most `migrations.max_parallel` at once and queues the rest, hears
//! how each ended (panics included), writes every transition to the
//! journal and reports statuses to RpcFront's board. It also owns the
//! journal's lifecycle: it records the server run, answers for migrations
//! of earlier runs, and closes the journal last.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, Arbiter, AsyncContext, Context, Handler, Message,
    Recipient, ResponseActFuture, WrapFuture,
};
use serde_json::json;

use crate::config::Config;
use crate::journal::{self, Journal};
use crate::migration::plan::{check_busy, Busy, Object};
use crate::migration::prepare::{prepare, prepare_resync, Prepared, ResyncSource};
use crate::migration::run::{
    event_log_path, log_event, Migration, MigrationEnded, StatusReport, StopNow,
};
use crate::migration::status::{MigrationStatus, StatusError};
use crate::rpc::code::{Code, RpcError};
use crate::rpc::packet::{MigrationId, Scope, Secret, StartRequest};

/// How many starts are validated at the same time.
const VALIDATIONS_AT_ONCE: usize = 2;

struct Running {
    addr: Addr<Migration>,
    holds: Vec<(&'static str, String)>,
    staging: PathBuf,
    resync: ResyncSource,
}

struct Queued {
    id: u64,
    prepared: Prepared,
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
    queued_holds: HashMap<u64, Vec<(&'static str, String)>>,
    stopping: HashSet<u64>,
    /// Threads the Migration actors run on (one per core), so their work
    /// never shares a thread with RpcFront or the Supervisor.
    workers: Vec<Arbiter>,
    started: u64,
    /// Starts validated at once: each logs into a source (SSH key exchange,
    /// panel reads); a burst of them must not starve the API of CPU.
    validations: Arc<tokio::sync::Semaphore>,
}

impl Supervisor {
    pub fn new(
        config: Arc<Config>,
        journal: Addr<Journal>,
        board: Recipient<StatusReport>,
    ) -> Self {
        Supervisor {
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
        }
    }

    fn busy(&self) -> Busy {
        let mut busy = Busy::new();
        let running = self.running.iter().map(|(id, r)| (id, &r.holds));
        for (id, holds) in running.chain(self.queued_holds.iter()) {
            for h in holds {
                busy.insert(h.clone(), id.to_string());
            }
        }
        busy
    }

    fn report(&self, id: u64, status: MigrationStatus) {
        self.board.do_send(StatusReport { id, status });
    }

    fn journal_state(&self, id: u64, state: &str, result: Option<&MigrationStatus>) {
        let result = result.and_then(|r| serde_json::to_string(r).ok());
        self.journal.do_send(journal::UpdateMigration {
            id,
            state: state.to_owned(),
            result,
        });
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
            let migration = Migration::new(
                next.id,
                next.prepared,
                self.config.clone(),
                self.board.clone(),
                ctx.address().recipient(),
                self.journal.clone(),
            );
            self.journal_state(next.id, "running", None);
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
                MigrationStatus::InProgress {
                    total: q.prepared.total_steps(),
                    completed: 1,
                    description: format!(
                        "queued: {} of {waiting} waiting for one of the {} migration slots",
                        position + 1,
                        self.config.migrations.max_parallel
                    ),
                },
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
            let _ = std::fs::remove_file(event_log_path(&self.config, id));
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
        ctx.wait(
            self.journal
                .send(record)
                .into_actor(self)
                .map(|res, _, _| match res {
                    Ok(Ok(run)) if run.previous_run_unclean => tracing::warn!(
                        run_id = run.run_id,
                        "the previous hostmig run did not stop cleanly (killed or crashed)"
                    ),
                    Ok(Ok(run)) => {
                        tracing::debug!(run_id = run.run_id, "server run recorded in the journal")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot record the server run in the journal")
                    }
                    Err(e) => tracing::error!(error = %e, "the journal is not answering"),
                }),
        );
        // Migrations of earlier runs: ended ones answer as they ended; ones
        // that were queued or running when hostmig stopped did not complete.
        ctx.wait(self.journal.send(journal::LoadMigrations).into_actor(self).map(|res, act, _| {
            let stored = match res {
                Ok(Ok(stored)) => stored,
                Ok(Err(e)) => return tracing::error!(error = %e, "cannot read migrations from the journal"),
                Err(e) => return tracing::error!(error = %e, "the journal is not answering"),
            };
            for m in stored {
                act.next_id = act.next_id.max(m.id + 1);
                let source = stored_resync_source(&m.plan);
                let status = match (m.state.as_str(), m.result.as_deref().and_then(|r| serde_json::from_str(r).ok())) {
                    ("finished" | "stopped", Some(status)) => status,
                    _ => {
                        let status = MigrationStatus::Finished {
                            errors: vec![StatusError::general(
                                "hostmig restarted during this migration; it did not complete, start it again",
                            )],
                        };
                        act.journal_state(m.id, "finished", Some(&status));
                        actix::spawn(crate::migration::databases::drop_unkept(
                            act.config.clone(),
                            act.journal.clone(),
                            m.id,
                        ));
                        status
                    }
                };
                act.report(m.id, status);
                act.ended.insert(m.id, source);
            }
        }));
    }
}

/// Start a migration; answers its id.
#[derive(Message)]
#[rtype(result = "Result<String, RpcError>")]
pub struct StartMigration(pub Box<StartRequest>);

/// Stop a migration (the protocol's `finish`).
#[derive(Message)]
#[rtype(result = "Result<(), RpcError>")]
pub struct StopMigration(pub MigrationId);

/// Bring an ended migration's content up to date; answers the new id.
#[derive(Message)]
#[rtype(result = "Result<String, RpcError>")]
pub struct ResyncMigration {
    pub id: MigrationId,
    pub password: Option<Secret>,
}

/// Stop everything and close the journal; answered when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

fn unknown(id: &MigrationId) -> RpcError {
    RpcError::new(
        Code::NotFound,
        format!("migration {} does not exist", crate::rpc::xml::short(&id.0)),
    )
}

impl Handler<StartMigration> for Supervisor {
    type Result = ResponseActFuture<Self, Result<String, RpcError>>;

    fn handle(&mut self, msg: StartMigration, _: &mut Self::Context) -> Self::Result {
        let (config, busy, slots) = (self.config.clone(), self.busy(), self.validations.clone());
        let journal = self.journal.clone();
        let validation = async move {
            let _slot = slots.acquire_owned().await;
            prepare(*msg.0, config, busy, journal).await
        };
        Box::pin(
            validation
                .into_actor(self)
                .map(|res, act, ctx| act.admit(res?, ctx)),
        )
    }
}

impl Supervisor {
    /// Queues a validated migration (and starts it when there is room);
    /// answers its id.
    fn admit(&mut self, prepared: Prepared, ctx: &mut Context<Self>) -> Result<String, RpcError> {
        let act = self;
        {
            // Others may have been admitted while this one was validated.
            check_busy(&prepared.plan, &act.busy())?;
            let holds = prepared.plan.holds();
            let id = act.next_id;
            act.next_id += 1;
            let objects: Vec<String> = prepared
                .plan
                .objects
                .iter()
                .map(|o| match o {
                    Object::Client { login, domains } => {
                        format!("client {login} with {}", domains.join(", "))
                    }
                    Object::Domain { name, owner } => format!("domain {name} to {owner}"),
                })
                .collect();
            let summary = json!({
                "host": &prepared.host,
                "login": &prepared.login.user,
                "scope": scope_name(prepared.scope),
                "resync": prepared.resync,
                "staging": prepared.staging.display().to_string(),
                "objects": objects,
                "addresses": &prepared.plan.addresses,
            });
            act.journal.do_send(journal::RecordMigration {
                id,
                source_host: prepared.host.clone(),
                plan: summary.to_string(),
            });
            log_event(
                &event_log_path(&act.config, id),
                json!({"phase": "queued", "plan": summary}),
            );
            tracing::info!(migration_id = id, source = %prepared.host, objects = ?objects, "migration admitted");
            // Known to get_status before the client hears the id.
            act.report(
                id,
                MigrationStatus::InProgress {
                    total: prepared.total_steps(),
                    completed: 1,
                    description: "planned; starting".to_owned(),
                },
            );
            act.queued_holds.insert(id, holds);
            act.queue.push_back(Queued { id, prepared });
            act.run_queued(ctx);
            Ok(id.to_string())
        }
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Everything => "everything",
        Scope::OnlyHosting => "only-hosting",
        Scope::OnlyMail => "only-mail",
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
    let p: serde_json::Value = serde_json::from_str(plan).unwrap_or_default();
    let text = |k: &str| {
        p.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    ResyncSource {
        host: text("host"),
        user: text("login"),
        credential: None,
        scope: match text("scope").as_str() {
            "only-hosting" => Scope::OnlyHosting,
            "only-mail" => Scope::OnlyMail,
            _ => Scope::Everything,
        },
        staging: PathBuf::from(text("staging")),
        addresses: p
            .get("addresses")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default(),
    }
}

impl Handler<MigrationEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: MigrationEnded, ctx: &mut Self::Context) {
        let Some(running) = self.running.remove(&msg.id) else {
            return;
        };
        let state = if msg.stopped { "stopped" } else { "finished" };
        self.journal_state(msg.id, state, Some(&msg.status));
        self.report(msg.id, msg.status);
        // Staging is always removed once a migration ended; a finished
        // one keeps its event log, a stopped one does not.
        let stopped = self.stopping.remove(&msg.id);
        self.clean_up(msg.id, &running.staging, stopped);
        // Databases copied for domains that were not deployed go too.
        actix::spawn(crate::migration::databases::drop_unkept(
            self.config.clone(),
            self.journal.clone(),
            msg.id,
        ));
        self.ended.insert(msg.id, running.resync);
        tracing::info!(migration_id = msg.id, state, "migration ended");
        self.run_queued(ctx);
    }
}

impl Handler<StopMigration> for Supervisor {
    type Result = Result<(), RpcError>;

    fn handle(&mut self, msg: StopMigration, ctx: &mut Self::Context) -> Self::Result {
        let id: u64 = msg.0 .0.parse().map_err(|_| unknown(&msg.0))?;
        if let Some(running) = self.running.get(&id) {
            self.stopping.insert(id);
            running.addr.do_send(StopNow);
            return Ok(());
        }
        if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
            let queued = self.queue.remove(pos).expect("position is in range");
            self.queued_holds.remove(&id);
            let status = MigrationStatus::Finished {
                errors: vec![StatusError::general(
                    "the migration was stopped by finish before it started",
                )],
            };
            self.journal_state(id, "stopped", Some(&status));
            self.report(id, status);
            self.clean_up(id, &queued.prepared.staging, true);
            self.ended.insert(id, resync_source(&queued.prepared));
            self.run_queued(ctx);
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
    type Result = ResponseActFuture<Self, Result<String, RpcError>>;

    fn handle(&mut self, msg: ResyncMigration, _: &mut Self::Context) -> Self::Result {
        let checked = (|| {
            let id: u64 = msg.id.0.parse().map_err(|_| unknown(&msg.id))?;
            if self.running.contains_key(&id) || self.queue.iter().any(|q| q.id == id) {
                return Err(RpcError::new(
                    Code::OperationFailed,
                    format!("migration {id} is still running; resync it after it ended"),
                ));
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
            let domains = journal
                .send(journal::LoadDeployed(id))
                .await
                .map_err(|e| {
                    RpcError::new(
                        Code::OperationFailed,
                        format!("the journal is not answering: {e}"),
                    )
                })?
                .map_err(|e| {
                    RpcError::new(
                        Code::OperationFailed,
                        format!("the journal is not readable: {e}"),
                    )
                })?;
            prepare_resync(source, password, domains, config, journal).await
        };
        Box::pin(validation.into_actor(self).map(|res, act, ctx| {
            let prepared = res?;
            check_busy(&prepared.plan, &act.busy())?;
            act.admit(prepared, ctx)
        }))
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        for running in self.running.values() {
            running.addr.do_send(StopNow);
        }
        Box::pin(
            self.journal
                .send(journal::Close)
                .into_actor(self)
                .map(|res, _, ctx| {
                    match res {
                        Ok(Ok(())) => tracing::info!("journal closed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "closing the journal failed"),
                        Err(e) => tracing::error!(error = %e, "the journal is not answering"),
                    }
                    ctx.stop();
                }),
        )
    }
}
