//! The Migration actor: one per running migration. Per domain it copies the
//! trees (`content`) and the databases (`databases`) at once, then writes
//! the domain's records into the destination panel; clients are written
//! before their domains. Its sub-actors report typed progress to it; it
//! aggregates that into one status for RpcFront's board. It tells the
//! Supervisor how it ended, also when it is stopped or panics (a Drop
//! guard).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};

use super::content::{copy_trees, remove_trees, trees_of, SessionPool};
use super::databases::{copy_databases, CreatedAccounts, DbWork, SourceTunnels};
use super::events::{Event, EventLog};
use super::plan::{Object, TargetServer};
use super::prepare::Prepared;
use super::report::{save_report, DatabaseEntry, ObjectOutcome, ObjectReport, Outcome, Report};
use super::request::Scope;
use super::status::{
    Item, ItemProgress, MigrationStatus, ObjectKind, Progress, Stage, StatusError, Totals,
};
use super::stopper::Stopper;
use crate::caps::Meter;
use crate::config::Config;
use crate::journal::{self, Journal};
use crate::panel::deploy::Writer;
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
    /// The migration's report, kept in the journal as it changes.
    report: Arc<Mutex<Report>>,
    journal: Addr<Journal>,
    stopper: Arc<Stopper>,
    board: Recipient<StatusReport>,
    events: EventLog,
    guard: ExitGuard,
    /// The status as aggregated from the updates, and when it was last
    /// sent to the board.
    status: Progress,
    items: BTreeMap<Item, ItemProgress>,
    sent: Option<Instant>,
    /// Counts and caps what the work reads from the source.
    meter: Arc<Meter>,
    /// How its steps are shown.
    scale: super::resume::Steps,
    /// Bytes done and total of each tree and database (known ahead, then
    /// as each copy reports).
    bytes: BTreeMap<Item, Totals>,
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
    pub report: Arc<Mutex<Report>>,
    /// Every read of payload from the source goes through it.
    pub meter: Arc<Meter>,
    /// The compression its copies use (set before they begin).
    pub link: std::sync::OnceLock<crate::transfer::link::Choice>,
}

/// The board hears of progress at most this often (stage changes at once).
const REPORT_EVERY: Duration = Duration::from_millis(100);

impl Migration {
    pub fn new(
        id: u64,
        prepared: Prepared,
        report: Report,
        config: Arc<Config>,
        board: Recipient<StatusReport>,
        supervisor: Recipient<MigrationEnded>,
        journal: Addr<Journal>,
    ) -> Self {
        let events = EventLog::of(&config, id);
        let scale = prepared.steps();
        let (total, completed) = scale.shown(1);
        let status = Progress {
            total,
            completed,
            stage: Stage::Copying,
            items: Vec::new(),
            held_back: None,
            bytes: prepared.ahead_totals(),
        };
        let bytes = prepared
            .ahead
            .iter()
            .map(|(item, total)| (item.clone(), Totals::ahead(*total)))
            .collect();
        Migration {
            report: Arc::new(Mutex::new(report)),
            journal: journal.clone(),
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
            meter: Meter::unlimited(),
            scale,
            bytes,
        }
    }

    /// The meter (with the caps that apply to this migration's source)
    /// its reads go through.
    pub fn with_meter(mut self, meter: Arc<Meter>) -> Self {
        self.meter = meter;
        self
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
        self.status.held_back = self.meter.held_back();
        self.status.bytes = self.bytes.values().copied().sum();
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
        let opts = Options::from(&*config);
        let first_scratch = prepared.resume.as_ref().map_or(0, |r| r.next_scratch());
        let env = Arc::new(Env {
            id: self.guard.id,
            pool: Arc::new(SessionPool::new(
                prepared.login.clone(),
                opts.clone(),
                self.stopper.clone(),
            )),
            tunnels: SourceTunnels::new(prepared.login.clone(), opts, self.meter.clone()),
            meter: self.meter.clone(),
            prepared,
            config,
            journal,
            stopper: self.stopper.clone(),
            accounts: CreatedAccounts::default(),
            scratch: std::sync::atomic::AtomicUsize::new(first_scratch),
            events: self.events.clone(),
            progress: ctx.address().recipient(),
            report: self.report.clone(),
            link: std::sync::OnceLock::new(),
        });
        self.events.write(&Event::running());
        env.change_report(|r| r.outcome = Outcome::Running);
        let work = async move { execute(&env).await };
        ctx.spawn(work.into_actor(self).map(|errors, act, ctx| {
            let general: Vec<String> = errors
                .iter()
                .filter(|e| e.object.is_none())
                .flat_map(|e| e.messages.clone())
                .collect();
            let outcome = if errors.is_empty() {
                Outcome::Success
            } else {
                Outcome::Failed
            };
            act.end_report(
                outcome,
                general,
                "not migrated: the migration ended before it",
            );
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
                self.tell_of_a_stall(&p);
                let bytes = self.bytes.entry(p.item.clone()).or_default();
                bytes.done = p.bytes_done;
                if p.bytes_total > 0 {
                    bytes.total = p.bytes_total;
                }
                self.items.insert(p.item.clone(), p);
                self.publish(false);
            }
            Update::ItemDone(item) => {
                if let Some(bytes) = self.bytes.get_mut(&item) {
                    bytes.done = bytes.done.max(bytes.total);
                }
                self.items.remove(&item);
                self.publish(false);
            }
            Update::Steps(n) => {
                let (_, n) = self.scale.shown(n);
                if n > self.status.completed {
                    self.status.completed = n;
                    self.journal.do_send(journal::RecordSteps {
                        migration_id: self.guard.id,
                        completed: n,
                    });
                }
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
        self.end_report(
            Outcome::Stopped,
            Vec::new(),
            "not migrated: the migration was stopped by finish",
        );
        self.guard.outcome = Some((
            true,
            MigrationStatus::Finished {
                errors: vec![StatusError::general("the migration was stopped by finish; objects it had not deployed were not migrated")],
            },
        ));
        ctx.stop();
    }
}

impl Migration {
    /// A copy that waits to be tried again after a stall is told of once
    /// per try (the notification `stalled`).
    fn tell_of_a_stall(&self, p: &ItemProgress) {
        let Some(retrying) = &p.retrying else {
            return;
        };
        let seen = self
            .items
            .get(&p.item)
            .and_then(|old| old.retrying.as_ref());
        if retrying.after.contains(crate::ssh::STALLED) && seen != Some(retrying) {
            let source = self
                .report
                .lock()
                .map(|r| r.source.clone())
                .unwrap_or_default();
            crate::observe::stalled(self.guard.id, &source, &p.item.label(), retrying);
        }
    }

    fn end_report(&self, outcome: Outcome, errors: Vec<String>, why: &str) {
        if let Ok(mut report) = self.report.lock() {
            report.end(outcome, errors, why);
            save_report(&self.journal, &report);
        }
    }
}

impl Env {
    pub(super) async fn tell(&self, update: Update) {
        let _ = self.progress.send(Progressed(update)).await;
    }

    /// Changes the report and keeps it in the journal.
    pub(super) fn change_report(&self, change: impl FnOnce(&mut Report)) {
        if let Ok(mut report) = self.report.lock() {
            change(&mut report);
            save_report(&self.journal, &report);
        }
    }

    /// Changes one object of the report.
    pub(super) fn change_object(
        &self,
        kind: ObjectKind,
        name: &str,
        change: impl FnOnce(&mut ObjectReport),
    ) {
        self.change_report(|r| change(r.object(kind, name)));
    }
}

/// Copies and deploys every planned object; answers the error entries
/// (none: success).
async fn execute(env: &Env) -> Vec<StatusError> {
    let prepared = &env.prepared;
    let mut completed = 1;
    if prepared.resync {
        choose_compression(env).await;
        return super::resync::resync(env).await;
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
    // The source's compressors and link are probed while the destination's
    // panel database is opened: nothing is copied before both are done.
    let (opened, ()) = futures_util::future::join(Writer::open(url), choose_compression(env)).await;
    let mut writer = match opened {
        Ok(w) => w,
        Err(e) => return vec![StatusError::general(e.to_string())],
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
                let deployed = writer.client(record).await;
                completed += 1;
                env.tell(Update::Steps(completed)).await;
                env.events.write(&Event::deployed(
                    ObjectKind::Client,
                    login,
                    deployed.is_ok(),
                ));
                if let Err(e) = deployed {
                    env.fail(
                        &mut errors,
                        ObjectKind::Client,
                        login,
                        format!("the client was not deployed: {e}"),
                    );
                    // Its domains cannot be given to a client that is not there.
                    for d in domains {
                        env.fail(
                            &mut errors,
                            ObjectKind::Domain,
                            d,
                            format!("not migrated: its client {login} could not be deployed"),
                        );
                        env.change_object(ObjectKind::Domain, d, |o| {
                            o.outcome = ObjectOutcome::NotMigrated
                        });
                    }
                    continue;
                }
                env.change_object(ObjectKind::Client, login, |o| {
                    o.outcome = ObjectOutcome::Deployed
                });
                // A second run after a restart does not write it again.
                let recorded = journal::ask(
                    &env.journal,
                    journal::RecordDeployedClient {
                        migration_id: env.id,
                        login: login.clone(),
                    },
                )
                .await;
                if let Err(e) = recorded {
                    tracing::warn!(migration_id = env.id, client = %login, error = %e, "cannot record the deployed client; a resume after a restart would refuse it as existing");
                }
                for d in domains {
                    if let Some(record) = domain(d) {
                        migrate_domain(
                            env,
                            &mut writer,
                            record,
                            login,
                            &mut completed,
                            &mut errors,
                        )
                        .await;
                    }
                }
            }
            Object::Domain { name, owner } => {
                if let Some(record) = domain(name) {
                    migrate_domain(env, &mut writer, record, owner, &mut completed, &mut errors)
                        .await;
                }
            }
        }
    }
    writer.close().await;
    errors
}

impl Env {
    /// An error entry of an object, in the status and in the report.
    pub(super) fn fail(
        &self,
        errors: &mut Vec<StatusError>,
        kind: ObjectKind,
        name: &str,
        message: String,
    ) {
        self.change_object(kind, name, |o| {
            o.outcome = ObjectOutcome::Failed;
            o.errors.push(message.clone());
        });
        crate::observe::object_failed(self.id, &self.prepared.host, kind, name, &message);
        errors.push(StatusError::object(kind, name, message));
    }
}

/// An error entry for each database that did not arrive; answers their
/// texts.
pub(super) fn database_errors(
    errors: &mut Vec<StatusError>,
    databases: &[(DatabaseEntry, Result<(), String>)],
) -> Vec<String> {
    let mut texts = Vec::new();
    for (entry, result) in databases {
        if let Err(e) = result {
            errors.push(StatusError::object(
                ObjectKind::Database,
                &entry.name,
                e.clone(),
            ));
            texts.push(e.clone());
        }
    }
    texts
}

/// Decides the compression of the migration's copies (content streams,
/// database connections) from the source's compressors and, for `auto`,
/// its link's measured rate; the event log says what and why.
async fn choose_compression(env: &Env) {
    use crate::transfer::link::{choose, ContentCompression, DbCompression};
    let m = &env.config.migrations;
    let measure = m.content_compression == ContentCompression::Auto
        || m.db_compression == DbCompression::Auto;
    let wanted = m.content_compression != ContentCompression::Off || measure;
    let prepared = &env.prepared;
    let copies_content = if prepared.resync {
        !prepared.resync_trees.is_empty()
    } else {
        prepared
            .domains
            .iter()
            .any(|d| !trees_of(d, prepared.scope).is_empty())
    };
    let facts = if wanted {
        let pool = env.pool.clone();
        match actix_web::rt::task::spawn_blocking(move || pool.probe_link(measure, copies_content))
            .await
        {
            Ok(Ok(facts)) => facts,
            Ok(Err(e)) => {
                tracing::info!(migration_id = env.id, error = %e, "the source's compressors could not be asked; copying uncompressed");
                Default::default()
            }
            Err(_) => Default::default(),
        }
    } else {
        Default::default()
    };
    let choice = choose(
        m.content_compression,
        m.db_compression,
        facts,
        env.meter.limit(),
    );
    tracing::info!(migration_id = env.id, content = choice.content.as_str(), databases = choice.db, why = %choice.why, "compression");
    env.events.write(&Event::Compression {
        compression: &choice,
    });
    let _ = env.link.set(choice);
}

/// One domain: its records checked against what the destination can hold,
/// then its content trees (copied, verified, remapped) and its databases
/// at once, then its records, written only when all of its content and
/// databases arrived.
async fn migrate_domain(
    env: &Env,
    writer: &mut Writer,
    record: &DomainRecord,
    owner: &str,
    completed: &mut u64,
    errors: &mut Vec<StatusError>,
) {
    let prepared = &env.prepared;
    let name = record.name();
    let trees = trees_of(record, prepared.scope);
    let sys_login = record.sys_login();
    let planned = prepared.databases_of(&name);
    let scoped = scoped(record, prepared.scope);
    // A value the destination cannot hold fails the domain before anything
    // of it is copied.
    if let Err(e) = writer.check_domain(&scoped) {
        env.fail(
            errors,
            ObjectKind::Domain,
            &name,
            format!("the domain was not migrated: {e}"),
        );
        *completed += (trees.len() + planned.len() + 1) as u64;
        env.tell(Update::Steps(*completed)).await;
        return;
    }
    env.tell(Update::Stage(Stage::Copying)).await;
    let ((tree_entries, copied), databases) = futures_util::future::join(
        copy_trees(env, &name, sys_login, &trees),
        copy_databases(env, record, &planned, DbWork::Copy),
    )
    .await;
    *completed += (trees.len() + planned.len()) as u64;
    env.tell(Update::Steps(*completed)).await;
    env.change_object(ObjectKind::Domain, &name, |o| {
        o.trees = tree_entries;
        o.databases = databases.iter().map(|(entry, _)| entry.clone()).collect();
    });
    let mut problems = Vec::new();
    if let Err(p) = copied {
        problems.push(p);
    }
    let failed: Vec<&str> = databases
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(entry, _)| entry.name.as_str())
        .collect();
    database_errors(errors, &databases);
    if !failed.is_empty() {
        problems.push(format!(
            "the domain's records were not written: its database{} {} did not arrive",
            if failed.len() > 1 { "s" } else { "" },
            failed.join(", ")
        ));
    }
    if !problems.is_empty() {
        env.fail(errors, ObjectKind::Domain, &name, problems.join("; "));
        *completed += 1;
        env.tell(Update::Steps(*completed)).await;
        return;
    }
    env.tell(Update::Stage(Stage::Deploying {
        kind: ObjectKind::Domain,
        name: name.clone(),
    }))
    .await;
    let targets: Vec<(String, TargetServer)> = planned
        .iter()
        .filter_map(|p| {
            let server = env.config.destination.as_ref()?.db_servers.get(p.target)?;
            Some((p.db.name.clone(), TargetServer::from(server)))
        })
        .collect();
    let deployed = writer.domain(&scoped, owner, &targets).await;
    *completed += 1;
    env.tell(Update::Steps(*completed)).await;
    env.events.write(&Event::deployed(
        ObjectKind::Domain,
        &name,
        deployed.is_ok(),
    ));
    if let Err(e) = deployed {
        // Nothing of the domain stays: its trees go (its databases are
        // dropped when the migration ends, as for any domain not deployed).
        let removed = remove_trees(env, &name, &trees);
        env.fail(
            errors,
            ObjectKind::Domain,
            &name,
            format!("the domain was not deployed: {e}{removed}"),
        );
        return;
    }
    env.change_object(ObjectKind::Domain, &name, |o| {
        o.outcome = ObjectOutcome::Deployed
    });
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
