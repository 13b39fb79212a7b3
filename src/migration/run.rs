//! The Migration actor: one per running migration. Per domain it copies the
//! trees (`content`) and the databases (`databases`) at once, then writes
//! the domain's records into the destination panel; clients are written
//! before their domains. Its sub-actors report typed progress to it; it
//! aggregates that into one status for RpcFront's board. It tells the
//! Supervisor how it ended, also when it is stopped or panics (a Drop
//! guard).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};

use super::content::{copy_trees, trees_of, SessionPool};
use super::databases::{copy_databases, CreatedAccounts, SourceTunnels};
use super::events::{Event, EventLog};
use super::plan::{Object, PlannedDb, TargetServer};
use super::prepare::Prepared;
use super::request::Scope;
use super::status::{
    Item, ItemProgress, MigrationStatus, ObjectKind, Progress, Stage, StatusError,
};
use super::stopper::Stopper;
use crate::config::Config;
use crate::journal::{self, Journal};
use crate::panel::deploy;
use crate::panel::source::DomainRecord;
use crate::remap::{IpRemap, Remap, RemapRecords};
use crate::ssh::Options;

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

/// How far a migration's work is: what its sub-actors and its own steps
/// tell the Migration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Progressed(pub Update);

pub enum Update {
    /// A tree or database copy's progress (supersedes its earlier one).
    Item(ItemProgress),
    /// That copy ended.
    ItemDone(Item),
    /// Work steps done so far.
    Steps(u64),
    Stage(Stage),
}

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
    /// Until `started`: what the migration's work will share.
    pending: Option<(Prepared, Arc<Config>, Addr<Journal>)>,
    stopper: Arc<Stopper>,
    board: Recipient<StatusReport>,
    events: EventLog,
    guard: ExitGuard,
    /// The status as aggregated from the updates, and when it was last
    /// sent to the board.
    status: Progress,
    items: BTreeMap<Item, ItemProgress>,
    sent: Option<Instant>,
}

/// What a running migration's work shares (its sub-actors' jobs are built
/// from this).
pub(super) struct Env {
    pub id: u64,
    pub prepared: Prepared,
    pub config: Arc<Config>,
    pub journal: Addr<Journal>,
    pub stopper: Arc<Stopper>,
    pub pool: Arc<SessionPool>,
    pub tunnels: SourceTunnels,
    pub accounts: CreatedAccounts,
    /// Numbers the scratch databases of this migration.
    pub scratch: std::sync::atomic::AtomicUsize,
    pub events: EventLog,
    /// The Migration, which aggregates progress.
    pub progress: Recipient<Progressed>,
}

/// The board hears of progress at most this often (stage changes at once).
const REPORT_EVERY: Duration = Duration::from_millis(100);

impl Migration {
    pub fn new(
        id: u64,
        prepared: Prepared,
        config: Arc<Config>,
        board: Recipient<StatusReport>,
        supervisor: Recipient<MigrationEnded>,
        journal: Addr<Journal>,
    ) -> Self {
        let events = EventLog::of(&config, id);
        let status = Progress {
            total: prepared.total_steps(),
            completed: 1,
            stage: Stage::Copying,
            items: Vec::new(),
        };
        Migration {
            pending: Some((prepared, config, journal)),
            stopper: Arc::new(Stopper::default()),
            board,
            events,
            guard: ExitGuard {
                id,
                supervisor,
                outcome: None,
            },
            status,
            items: BTreeMap::new(),
            sent: None,
        }
    }

    fn publish(&mut self, now: bool) {
        if !now && self.sent.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        self.sent = Some(Instant::now());
        // Every copy under way is named, none hiding another, in an order
        // that does not change from one report to the next.
        let mut items: Vec<ItemProgress> = self.items.values().cloned().collect();
        items.sort_by(|a, b| {
            a.item
                .domain()
                .cmp(b.item.domain())
                .then(a.item.cmp(&b.item))
        });
        self.status.items = items;
        self.status.completed = self.status.completed.min(self.status.total);
        self.board.do_send(StatusReport {
            id: self.guard.id,
            status: MigrationStatus::InProgress(self.status.clone()),
        });
    }
}

impl Actor for Migration {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some((prepared, config, journal)) = self.pending.take() else {
            return;
        };
        let opts = Options::from(&config.ssh);
        let env = Arc::new(Env {
            id: self.guard.id,
            pool: Arc::new(SessionPool::new(
                prepared.login.clone(),
                opts.clone(),
                self.stopper.clone(),
            )),
            tunnels: SourceTunnels::new(prepared.login.clone(), opts),
            prepared,
            config,
            journal,
            stopper: self.stopper.clone(),
            accounts: CreatedAccounts::default(),
            scratch: Default::default(),
            events: self.events.clone(),
            progress: ctx.address().recipient(),
        });
        self.events.write(&Event::running());
        let work = async move { execute(&env).await };
        ctx.spawn(work.into_actor(self).map(|errors, act, ctx| {
            let status = MigrationStatus::Finished { errors };
            act.events.write(&Event::finished(&status));
            act.guard.outcome = Some((false, status));
            ctx.stop();
        }));
    }
}

impl Handler<Progressed> for Migration {
    type Result = ();

    fn handle(&mut self, msg: Progressed, _: &mut Self::Context) {
        match msg.0 {
            Update::Item(p) => {
                self.status.stage = Stage::Copying;
                self.items.insert(p.item.clone(), p);
                self.publish(false);
            }
            Update::ItemDone(item) => {
                self.items.remove(&item);
                self.publish(false);
            }
            Update::Steps(n) => {
                self.status.completed = self.status.completed.max(n);
                self.publish(true);
            }
            Update::Stage(stage) => {
                self.status.stage = stage;
                self.publish(true);
            }
        }
    }
}

impl Handler<StopNow> for Migration {
    type Result = ();

    fn handle(&mut self, _: StopNow, ctx: &mut Self::Context) {
        // Transfers end at once (their sockets are broken); stopping the
        // actor drops the running step's future (a query waiting on a lock
        // included); what it deployed stays.
        self.stopper.stop();
        self.guard.outcome = Some((
            true,
            MigrationStatus::Finished {
                errors: vec![StatusError::general("the migration was stopped by finish; objects it had not deployed were not migrated")],
            },
        ));
        ctx.stop();
    }
}

impl Env {
    async fn tell(&self, update: Update) {
        let _ = self.progress.send(Progressed(update)).await;
    }
}

/// Copies and deploys every planned object; answers the error entries
/// (none: success).
async fn execute(env: &Env) -> Vec<StatusError> {
    let prepared = &env.prepared;
    let mut completed = 1;
    if prepared.resync {
        return resync(env).await;
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
    let domain = |name: &str| domains.iter().find(|d| d.name() == name);
    let mut errors = Vec::new();
    for object in &prepared.plan.objects {
        match object {
            Object::Client { login, domains } => {
                env.tell(Update::Stage(Stage::Deploying {
                    kind: ObjectKind::Client,
                    name: login.clone(),
                }))
                .await;
                let Some(record) = clients.iter().find(|c| c.login() == *login) else {
                    continue;
                };
                let deployed = deploy::client(&mut conn, record).await;
                completed += 1;
                env.tell(Update::Steps(completed)).await;
                env.events.write(&Event::deployed(
                    ObjectKind::Client,
                    login,
                    deployed.is_ok(),
                ));
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
                        migrate_domain(env, &mut conn, record, login, &mut completed, &mut errors)
                            .await;
                    }
                }
            }
            Object::Domain { name, owner } => {
                if let Some(record) = domain(name) {
                    migrate_domain(env, &mut conn, record, owner, &mut completed, &mut errors)
                        .await;
                }
            }
        }
    }
    let _ = conn.disconnect().await;
    errors
}

/// A resync: the recorded trees of each deployed domain, brought up to
/// date; no records are written.
async fn resync(env: &Env) -> Vec<StatusError> {
    let mut completed = 1;
    let mut errors = Vec::new();
    for name in env.prepared.plan.domain_names() {
        let trees = env.prepared.trees_for(&name);
        if let Err(problems) = copy_trees(env, &name, None, &trees).await {
            errors.push(StatusError::object(ObjectKind::Domain, &name, problems));
        }
        completed += trees.len() as u64;
        env.tell(Update::Steps(completed)).await;
    }
    errors
}

/// One domain: its content trees (copied, verified, remapped) and its
/// databases at once, then its records, written only when all of its
/// content and databases arrived.
async fn migrate_domain(
    env: &Env,
    conn: &mut mysql_async::Conn,
    record: &DomainRecord,
    owner: &str,
    completed: &mut u64,
    errors: &mut Vec<StatusError>,
) {
    let prepared = &env.prepared;
    let name = record.name();
    let trees = trees_of(record, prepared.scope);
    let sys_login = record.sys_login();
    let planned: Vec<PlannedDb> = prepared
        .plan
        .databases
        .iter()
        .filter(|p| p.domain == name)
        .cloned()
        .collect();
    env.tell(Update::Stage(Stage::Copying)).await;
    let (copied, databases) = futures_util::future::join(
        copy_trees(env, &name, sys_login, &trees),
        copy_databases(env, record, &planned),
    )
    .await;
    *completed += (trees.len() + planned.len()) as u64;
    env.tell(Update::Steps(*completed)).await;
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
        env.tell(Update::Steps(*completed)).await;
        return;
    }
    env.tell(Update::Stage(Stage::Deploying {
        kind: ObjectKind::Domain,
        name: name.clone(),
    }))
    .await;
    let scoped = scoped(record, prepared.scope);
    let targets: Vec<(String, TargetServer)> = planned
        .iter()
        .filter_map(|p| {
            let server = env.config.destination.as_ref()?.db_servers.get(p.target)?;
            Some((p.db.name.clone(), TargetServer::from(server)))
        })
        .collect();
    let deployed = deploy::domain(conn, &scoped, owner, &targets).await;
    *completed += 1;
    env.tell(Update::Steps(*completed)).await;
    env.events.write(&Event::deployed(
        ObjectKind::Domain,
        &name,
        deployed.is_ok(),
    ));
    if let Err(e) = deployed {
        errors.push(StatusError::object(
            ObjectKind::Domain,
            &name,
            format!("the domain was not deployed: {e}"),
        ));
        return;
    }
    let recorded = journal::ask(
        &env.journal,
        journal::RecordDeployed {
            migration_id: env.id,
            domain: name.clone(),
        },
    )
    .await;
    if let Err(e) = recorded {
        tracing::warn!(migration_id = env.id, domain = %name, error = %e, "cannot record the deployed domain; resync will not know it, and its databases are dropped when the migration ends");
    }
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
            out.fields.insert("htype", mysql_async::Value::from("none"));
        }
    }
    out
}
