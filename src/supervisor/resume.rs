//! The Supervisor's side of migrations a restart of hostmig interrupted
//! (a crash, a kill, a reboot, a SIGTERM): found at start-up in the
//! journal, they hold their objects as `interrupted`; one that logged in
//! by the configured key goes on by itself, one that logged in by
//! password waits for `resume` to give it; `finish` abandons one.

use std::path::PathBuf;

use actix::{
    ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};

use super::{stored_resync_source, unknown, Supervisor};
use crate::journal::{self, MigrationState, StoredMigration};
use crate::migration::events::{Event, EventLog};
use crate::migration::plan::{check_busy, Busy, Hold};
use crate::migration::prepare::{prepare, prepare_resync, Prepared, ResyncSource};
use crate::migration::refusal::Refusal;
use crate::migration::report::{save_report, Outcome, Report};
use crate::migration::request::MigrationId;
use crate::migration::resume::{ResumeFrom, StoredRequest};
use crate::migration::status::{MigrationStatus, ObjectKind, Progress, Stage, StatusError};
use crate::secret::Secret;

/// A migration a restart interrupted, until it is resumed or abandoned.
pub(super) struct Interrupted {
    stored: StoredRequest,
    pub(super) holds: Vec<Hold>,
    staging: PathBuf,
    /// What a resync of it would need, once it ended.
    source: ResyncSource,
    /// Its steps as last recorded: (total, completed).
    steps: (u64, u64),
    /// A resume of it is being validated.
    resuming: bool,
    /// Tries of going on by itself so far.
    auto_tries: u32,
}

/// Go on with an interrupted migration (the `resume` extension).
#[derive(Message)]
#[rtype(result = "Result<String, Refusal>")]
pub struct ResumeMigration {
    pub id: MigrationId,
    pub password: Option<Secret>,
}

/// Going on by itself after the restart (a keyed migration).
#[derive(Message)]
#[rtype(result = "()")]
struct AutoResume(u64);

const WAITS_FOR_PASSWORD: &str = "it logged into the source by password, which hostmig does not keep; send it with <resume> to go on where it stopped, or abandon the migration with <finish>";
const WAITS_FOR_KEY: &str = "it logged into the source by the configured key, and ssh.identity is no longer configured; configure it and start hostmig again, or send a password with <resume>, or abandon the migration with <finish>";

/// What an interrupted migration that cannot go on by itself waits for.
fn waiting_for(stored: &StoredRequest) -> &'static str {
    if stored.keyed() {
        WAITS_FOR_KEY
    } else {
        WAITS_FOR_PASSWORD
    }
}

impl Supervisor {
    /// A migration of an earlier run that did not end: interrupted (when
    /// the journal has its request), else failed as before requests were
    /// kept.
    pub(super) fn found_unended(&mut self, m: StoredMigration, ctx: &mut Context<Self>) {
        let journal = self.journal.clone();
        let id = m.id;
        let load = async move {
            let resumable = journal::ask(&journal, journal::LoadResumable(id)).await?;
            let stored = resumable
                .as_ref()
                .and_then(|r| StoredRequest::parse(&r.request));
            let resynced = match &stored {
                Some(StoredRequest::Resync { of, .. }) => {
                    journal::ask(&journal, journal::LoadDeployed(*of)).await?
                }
                _ => Vec::new(),
            };
            Ok::<_, journal::JournalError>((resumable, stored, resynced))
        };
        ctx.wait(load.into_actor(self).map(move |res, act, ctx| match res {
            Ok((Some(resumable), Some(stored), resynced)) => {
                let from = ResumeFrom::new(id, &resumable);
                let holds = match &stored {
                    StoredRequest::Start { request, .. } => {
                        crate::migration::plan::requested_holds(&from.remaining(request))
                    }
                    StoredRequest::Resync { .. } => resynced
                        .into_iter()
                        .map(|d| (ObjectKind::Domain, d))
                        .collect(),
                };
                let source = stored_resync_source(&m.plan);
                let auto = stored.keyed() && act.config.ssh.identity.is_some();
                let why = if auto {
                    "a restart of hostmig interrupted it; it goes on by itself where it stopped"
                } else {
                    waiting_for(&stored)
                };
                act.interrupted.insert(
                    id,
                    Interrupted {
                        staging: source.staging.clone(),
                        source,
                        stored,
                        holds,
                        steps: (resumable.total, resumable.completed),
                        resuming: false,
                        auto_tries: 0,
                    },
                );
                act.journal_state(id, MigrationState::Interrupted, None);
                EventLog::of(&act.config, id).write(&Event::Resume {
                    phase: "interrupted",
                    detail: why,
                });
                tracing::warn!(migration_id = id, auto, "a restart of hostmig interrupted this migration");
                act.show_interrupted(id, why.to_owned());
                if auto {
                    ctx.notify(AutoResume(id));
                }
            }
            Ok(_) => act.not_resumable(id, &m.plan),
            Err(e) => {
                tracing::error!(migration_id = id, error = %e, "cannot read an interrupted migration from the journal");
                act.not_resumable(id, &m.plan)
            }
        }));
    }

    /// An unended migration the journal cannot resume (it was recorded
    /// before requests were kept): reported as not completed, and what it
    /// created for domains it did not deploy is dropped.
    fn not_resumable(&mut self, id: u64, plan: &str) {
        let status = MigrationStatus::Finished {
            errors: vec![StatusError::general(
                "hostmig restarted during this migration; it did not complete, start it again",
            )],
        };
        self.journal_state(id, MigrationState::Finished, Some(&status));
        self.end_stored_report(
            id,
            Outcome::Interrupted,
            "hostmig restarted during this migration",
            "not migrated: hostmig restarted during the migration",
        );
        self.clean_ups
            .spawn(crate::migration::databases::drop_unkept(
                self.config.clone(),
                self.journal.clone(),
                id,
                true,
            ));
        self.report(id, status);
        self.ended.insert(id, stored_resync_source(plan));
    }

    /// Ends the report the journal holds of a migration that ended
    /// without its actor.
    fn end_stored_report(&self, id: u64, outcome: Outcome, error: &str, why: &str) {
        let journal = self.journal.clone();
        let (error, why) = (error.to_owned(), why.to_owned());
        actix::spawn(async move {
            if let Ok(Some(text)) = journal::ask(&journal, journal::LoadReport(id)).await {
                if let Ok(mut report) = serde_json::from_str::<Report>(&text) {
                    let errors = if error.is_empty() {
                        Vec::new()
                    } else {
                        vec![error]
                    };
                    report.end(outcome, errors, &why);
                    save_report(&journal, &report);
                }
            }
        });
    }

    fn show_interrupted(&self, id: u64, why: String) {
        let Some(i) = self.interrupted.get(&id) else {
            return;
        };
        let (total, completed) = i.steps;
        self.report(
            id,
            MigrationStatus::InProgress(Progress {
                total: total.max(1),
                completed: completed.clamp(1, total.max(1)),
                stage: Stage::Interrupted { why },
                items: Vec::new(),
                held_back: None,
                bytes: Default::default(),
            }),
        );
    }

    /// Objects held by running, queued and interrupted migrations, but
    /// not by `except`.
    pub(super) fn busy_except(&self, except: u64) -> Busy {
        let mut busy = self.busy();
        busy.retain(|_, id| *id != except);
        busy
    }

    /// A refusal that names a migration holding an object says so for an
    /// interrupted one, with how to resume or abandon it.
    pub(super) fn explain(&self, refusal: Refusal) -> Refusal {
        match refusal {
            Refusal::Busy {
                kind,
                name,
                migration,
            } if self.interrupted.contains_key(&migration) => Refusal::HeldByInterrupted {
                kind,
                name,
                migration,
            },
            other => other,
        }
    }

    /// `finish` of an interrupted migration: abandoned; what it created
    /// for objects it did not deploy (scratch and unpublished databases,
    /// staging, content trees) is removed and its objects are released.
    pub(super) fn abandon(&mut self, id: u64) -> bool {
        let Some(i) = self.interrupted.remove(&id) else {
            return false;
        };
        let why = "the migration was abandoned by finish after a restart of hostmig interrupted it; objects it had not deployed were not migrated, and what it had copied for them was removed";
        let status = MigrationStatus::Finished {
            errors: vec![StatusError::general(why)],
        };
        self.journal_state(id, MigrationState::Stopped, Some(&status));
        self.report(id, status);
        self.end_stored_report(
            id,
            Outcome::Stopped,
            "",
            "not migrated: the migration was abandoned by finish",
        );
        self.clean_up(id, &i.staging, true);
        let (config, journal) = (self.config.clone(), self.journal.clone());
        self.clean_ups.spawn(async move {
            crate::migration::databases::drop_unkept(config, journal.clone(), id, true).await;
            crate::migration::content::remove_undeployed_trees(journal, id).await;
        });
        tracing::info!(migration_id = id, "interrupted migration abandoned");
        self.ended.insert(id, i.source);
        true
    }

    /// Validates the second run of an interrupted migration against the
    /// source and the destination as they are now, and queues it under
    /// its own id. `auto`: it goes on by itself after the restart.
    fn resume(
        &mut self,
        id: u64,
        password: Option<Secret>,
        auto: bool,
    ) -> ResponseActFuture<Self, Result<String, Refusal>> {
        let refused = |e| Box::pin(actix::fut::ready(Err(e)));
        let known = self.running.contains_key(&id)
            || self.queue.iter().any(|q| q.id == id)
            || self.ended.contains_key(&id);
        let password = password.filter(|p| !p.is_empty());
        let no_key = self.config.ssh.identity.is_none();
        let busy = self.busy_except(id);
        let Some(i) = self.interrupted.get_mut(&id) else {
            return refused(if known {
                Refusal::NotInterrupted { id }
            } else {
                unknown(&MigrationId(id.to_string()))
            });
        };
        if i.resuming {
            return refused(Refusal::NotInterrupted { id });
        }
        if password.is_none() && no_key {
            return refused(Refusal::ResumeNeedsPassword { id });
        }
        i.resuming = true;
        let stored = i.stored.clone();
        let resynced_source = match &stored {
            StoredRequest::Resync { of, .. } => self.ended.get(of).cloned(),
            StoredRequest::Start { .. } => None,
        };
        self.show_interrupted(
            id,
            "resuming: checking the source and the destination as they are now".into(),
        );
        let (config, journal) = (self.config.clone(), self.journal.clone());
        let before = self.before_validation();
        let validation = async move {
            let _slot = before.await?;
            // What the first run published or created for domains it did
            // not deploy goes (it is made again); its scratch databases
            // stay, to catch up from.
            crate::migration::databases::drop_unkept(config.clone(), journal.clone(), id, false)
                .await;
            let journal_failed = |e: journal::JournalError| Refusal::Journal(e.to_string());
            let resumable = journal::ask(&journal, journal::LoadResumable(id))
                .await
                .map_err(journal_failed)?
                .ok_or_else(|| Refusal::Journal(format!("migration {id} has no request")))?;
            let from = ResumeFrom::new(id, &resumable);
            let report = journal::ask(&journal, journal::LoadReport(id))
                .await
                .ok()
                .flatten()
                .and_then(|text| serde_json::from_str::<Report>(&text).ok());
            let prepared = match stored {
                StoredRequest::Start { request, .. } => {
                    let mut req = *request;
                    req.password = password.unwrap_or_default();
                    prepare(req, config, busy, Vec::new(), journal, Some(from)).await?
                }
                StoredRequest::Resync { of, keyed } => {
                    let source = resynced_source.ok_or_else(|| {
                        Refusal::Journal(format!("migration {of}, which it resyncs, is unknown"))
                    })?;
                    let domains = journal::ask(&journal, journal::LoadDeployed(of))
                        .await
                        .map_err(journal_failed)?;
                    let mut p = prepare_resync(source, password, domains, config, journal).await?;
                    p.stored = StoredRequest::Resync { of, keyed }.to_json();
                    p.resume = Some(from);
                    p
                }
            };
            Ok::<(Prepared, Option<Report>), Refusal>((prepared, report))
        };
        Box::pin(validation.into_actor(self).map(move |res, act, ctx| {
            if !act.interrupted.contains_key(&id) {
                // Abandoned by finish meanwhile.
                return Err(Refusal::NotInterrupted { id });
            }
            let checked = res.and_then(|(prepared, report)| {
                check_busy(&prepared.plan, &act.busy_except(id))?;
                Ok((prepared, report))
            });
            match checked {
                Ok((prepared, report)) => {
                    act.interrupted.remove(&id);
                    tracing::info!(migration_id = id, auto, "interrupted migration resumed");
                    act.enqueue(id, prepared, report, ctx);
                    Ok(id.to_string())
                }
                Err(e) => {
                    let e = act.explain(e);
                    act.resume_refused(id, &e, auto, ctx);
                    Err(e)
                }
            }
        }))
    }

    /// A resume that was refused leaves the migration interrupted, its
    /// status saying why; one going on by itself is tried again (within
    /// `migrations.retry_*`) while the source or the destination is not
    /// reachable.
    fn resume_refused(&mut self, id: u64, e: &Refusal, auto: bool, ctx: &mut Context<Self>) {
        let retry = self.config.migrations.retry;
        let Some(i) = self.interrupted.get_mut(&id) else {
            return;
        };
        i.resuming = false;
        let passing = matches!(e, Refusal::Source(_) | Refusal::NotReady(_));
        let again = (auto && passing)
            .then(|| retry.next(&mut i.auto_tries, e))
            .flatten();
        let why = match (auto, &again) {
            (true, Some((r, delay))) => format!(
                "it could not go on by itself after the restart ({e}); trying again in {} s ({} of {})",
                delay.as_secs(),
                r.attempt,
                r.of
            ),
            (true, None) => format!("it could not go on by itself after the restart ({e}); resume it with <resume> once that is fixed, or abandon it with <finish>"),
            (false, _) => format!("the resume was refused ({e}); {}", waiting_for(&i.stored)),
        };
        tracing::warn!(migration_id = id, error = %e, "an interrupted migration could not be resumed");
        self.show_interrupted(id, why);
        if let Some((_, delay)) = again {
            ctx.notify_later(AutoResume(id), delay);
        }
    }
}

impl Handler<ResumeMigration> for Supervisor {
    type Result = ResponseActFuture<Self, Result<String, Refusal>>;

    fn handle(&mut self, msg: ResumeMigration, _: &mut Self::Context) -> Self::Result {
        match msg.id.0.parse::<u64>() {
            Ok(id) => self.resume(id, msg.password, false),
            Err(_) => Box::pin(actix::fut::ready(Err(unknown(&msg.id)))),
        }
    }
}

impl Handler<AutoResume> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AutoResume, ctx: &mut Self::Context) {
        if self.interrupted.get(&msg.0).is_some_and(|i| !i.resuming) {
            ctx.spawn(self.resume(msg.0, None, true).map(|_, _, _| ()));
        }
    }
}
