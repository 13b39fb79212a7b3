//! The Migration actor: one per running migration. It deploys the planned
//! objects one by one into the destination panel, reports its status after
//! every step, writes its event log, and tells the Supervisor how it ended,
//! also when it is stopped or panics (a Drop guard).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, Recipient, WrapFuture};
use serde_json::json;

use super::plan::Object;
use super::prepare::Prepared;
use super::status::{MigrationStatus, ObjectKind, StatusError};
use crate::config::Config;
use crate::panel::deploy;
use crate::panel::source::{text, DomainRecord};
use crate::remap::{IpRemap, Remap, RemapRecords};

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
    id: u64,
    prepared: Arc<Prepared>,
    config: Arc<Config>,
    report: Recipient<StatusReport>,
    guard: ExitGuard,
    event_log: PathBuf,
}

impl Migration {
    pub fn new(
        id: u64,
        prepared: Prepared,
        config: Arc<Config>,
        report: Recipient<StatusReport>,
        supervisor: Recipient<MigrationEnded>,
    ) -> Self {
        let event_log = event_log_path(&config, id);
        Migration {
            id,
            prepared: Arc::new(prepared),
            config,
            report,
            guard: ExitGuard {
                id,
                supervisor,
                outcome: None,
            },
            event_log,
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
        let (id, prepared, config, report, log) = (
            self.id,
            self.prepared.clone(),
            self.config.clone(),
            self.report.clone(),
            self.event_log.clone(),
        );
        log_event(&log, json!({"phase": "running"}));
        let work = async move { execute(id, &prepared, &config, &report, &log).await };
        ctx.spawn(work.into_actor(self).map(|errors, act, ctx| {
            let status = MigrationStatus::Finished { errors };
            log_event(
                &act.event_log,
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
        // Stopping the actor drops the running step's future at once (a
        // query waiting on a lock included); what it deployed stays.
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

/// Deploys every planned object; answers the error entries (none: success).
async fn execute(
    id: u64,
    prepared: &Prepared,
    config: &Config,
    report: &Recipient<StatusReport>,
    log: &std::path::Path,
) -> Vec<StatusError> {
    let total = prepared.plan.total_steps();
    let mut completed = 1;
    let progress = |completed: u64, description: String| {
        report.do_send(StatusReport {
            id,
            status: MigrationStatus::InProgress {
                total,
                completed,
                description,
            },
        });
    };
    let Some(dest) = config.destination.as_ref() else {
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
                progress(completed, format!("deploying client {login}"));
                let Some(record) = clients
                    .iter()
                    .find(|c| text(c.fields.get("login")).as_deref() == Some(login))
                else {
                    continue;
                };
                let deployed = deploy::client(&mut conn, record).await;
                completed += 1;
                log_event(
                    log,
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
                        completed += 1;
                    }
                    continue;
                }
                for d in domains {
                    progress(completed, format!("deploying domain {d} of client {login}"));
                    if let Some(record) = domain(d) {
                        deploy_domain(&mut conn, record, login, log, &mut errors).await;
                    }
                    completed += 1;
                }
            }
            Object::Domain { name, owner } => {
                progress(completed, format!("deploying domain {name}"));
                if let Some(record) = domain(name) {
                    deploy_domain(&mut conn, record, owner, log, &mut errors).await;
                }
                completed += 1;
            }
        }
    }
    let _ = conn.disconnect().await;
    errors
}

async fn deploy_domain(
    conn: &mut mysql_async::Conn,
    record: &DomainRecord,
    owner: &str,
    log: &std::path::Path,
    errors: &mut Vec<StatusError>,
) {
    let name = text(record.fields.get("name")).unwrap_or_default();
    let deployed = deploy::domain(conn, record, owner).await;
    log_event(
        log,
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
    // Never success while data is left behind: say what this version did not move.
    let mut left = Vec::new();
    if record.hosting.is_some() {
        left.push("web content".to_owned());
    }
    if record
        .mail
        .iter()
        .any(|m| text(m.fields.get("postbox")).as_deref() == Some("true"))
    {
        left.push("mail content".to_owned());
    }
    for db in &record.databases {
        left.push(format!(
            "database {}",
            text(db.fields.get("name")).unwrap_or_default()
        ));
    }
    if !left.is_empty() {
        errors.push(StatusError::object(
            ObjectKind::Domain,
            &name,
            format!(
                "records migrated, but not its {}: this version of hostmig migrates account records only",
                left.join(", ")
            ),
        ));
    }
}
