//! A migration's content: which trees a domain has (web and mail), the job
//! of each, and `ContentTransfer`, the sub-actor that copies one tree
//! (DESIGN.md §2 step 4). Its SSH work runs on a thread of its own; the
//! sessions come from the migration's `SessionPool`, so trees after the
//! first do not pay for new logins. Progress goes to the Migration, typed.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, Recipient, ResponseFuture};

use super::events::Event;
use super::report::{CopyOutcome, TreeEntry};
use super::request::Scope;
use super::run::{Env, Progressed, Update};
use super::status::{Item, ItemPhase, ItemProgress};
use super::stopper::Stopper;
use crate::journal;
use crate::panel::source::DomainRecord;
use crate::remap::Remap;
use crate::retry::RetryPolicy;
use crate::ssh::{Login, Options, Session};
use crate::transfer::link::Codec;
use crate::transfer::owner;
use crate::transfer::tree::{
    discard_staging, sync_tree_try, Phase, Progress, TreeError, TreeJob, TreeReport, Tries,
};

/// The content trees of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    Web,
    Mail,
}

impl TreeKind {
    pub fn label(self) -> &'static str {
        match self {
            TreeKind::Web => "web content",
            TreeKind::Mail => "mail content",
        }
    }

    /// The item of the status this tree of `domain` is.
    pub fn item(self, domain: &str) -> Item {
        let domain = domain.to_owned();
        match self {
            TreeKind::Web => Item::WebContent { domain },
            TreeKind::Mail => Item::MailContent { domain },
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            TreeKind::Web => "web",
            TreeKind::Mail => "mail",
        }
    }
}

/// The trees a domain's migration copies under `scope`.
pub fn trees_of(record: &DomainRecord, scope: Scope) -> Vec<TreeKind> {
    let mut out = Vec::new();
    if scope != Scope::OnlyMail && record.hosting.is_some() {
        out.push(TreeKind::Web);
    }
    if scope != Scope::OnlyHosting && !record.mail.is_empty() {
        out.push(TreeKind::Mail);
    }
    out
}

/// SSH sessions for content work, reused from tree to tree.
pub struct SessionPool {
    login: Login,
    opts: Options,
    /// Idle sessions and since when they idle.
    idle: Mutex<Vec<(Session, Instant)>>,
    stopper: Arc<Stopper>,
}

/// An idle session older than this is not trusted (a server's client-alive
/// check may have dropped it while it was not read) and is closed instead.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Sessions one tree uses: this many copy streams, and one for hashing.
const COPY_STREAMS: usize = 2;

impl SessionPool {
    pub fn new(login: Login, opts: Options, stopper: Arc<Stopper>) -> Self {
        SessionPool {
            login,
            opts,
            idle: Mutex::new(Vec::new()),
            stopper,
        }
    }

    /// `n` logged-in sessions: idle ones first (none when `fresh`: after a
    /// fault they may be as broken), the rest logged in at once.
    fn take(&self, n: usize, fresh: bool) -> Result<Vec<Session>, TreeError> {
        let mut out: Vec<Session> = match self.idle.lock() {
            Ok(mut idle) => {
                idle.retain(|(_, since)| !fresh && since.elapsed() < MAX_IDLE);
                let keep = idle.len().saturating_sub(n);
                idle.split_off(keep).into_iter().map(|(s, _)| s).collect()
            }
            Err(_) => Vec::new(),
        };
        let connect = || {
            let s = Session::connect(&self.login, &self.opts).map_err(TreeError::Login)?;
            self.stopper.register(&s);
            Ok::<_, TreeError>(s)
        };
        // Each login waits on the network and the source: all at once.
        let fresh: Vec<Result<Session, TreeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (out.len()..n).map(|_| scope.spawn(connect)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(TreeError::Thread("SSH login"))))
                .collect()
        });
        for s in fresh {
            out.push(s?);
        }
        Ok(out)
    }

    /// The source's compressors (and, when `measure`, its link's and
    /// zstd's rates), asked on one session of the pool. With `warm`, the
    /// sessions a tree takes are logged in together first (at once, as a
    /// tree would) and left idle for the first tree. Blocking.
    pub fn probe_link(
        &self,
        measure: bool,
        warm: bool,
    ) -> Result<crate::transfer::link::LinkFacts, String> {
        let wanted = if warm { COPY_STREAMS + 1 } else { 1 };
        // A source that refuses the extra logins still gets its probe.
        let sessions = match self.take(wanted, false) {
            Ok(s) => s,
            Err(e) if wanted > 1 => {
                tracing::debug!(error = %e, "the first tree's sessions could not all log in; probing on one");
                self.take(1, false).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let facts = crate::transfer::link::probe(&sessions[0], measure);
        if facts.is_ok() {
            self.put(sessions);
        }
        facts
    }

    fn put(&self, sessions: Vec<Session>) {
        if let Ok(mut idle) = self.idle.lock() {
            let now = Instant::now();
            idle.extend(sessions.into_iter().map(|s| (s, now)));
        }
    }
}

pub struct ContentTransfer {
    pool: Arc<SessionPool>,
    stopper: Arc<Stopper>,
}

impl ContentTransfer {
    pub fn new(pool: Arc<SessionPool>, stopper: Arc<Stopper>) -> Self {
        ContentTransfer { pool, stopper }
    }
}

impl Actor for ContentTransfer {
    type Context = Context<Self>;
}

/// Copy one tree; its progress goes to `progress` as `item`'s.
#[derive(Message)]
#[rtype(result = "Result<TreeReport, TreeError>")]
pub struct CopyTree {
    pub job: TreeJob,
    pub item: Item,
    pub progress: Recipient<Progressed>,
    /// How a transient fault is tried again.
    pub retry: RetryPolicy,
    /// The second run of a migration a restart interrupted: when the
    /// first began (Unix seconds); what it left goes on from there.
    pub since: Option<i64>,
}

impl Handler<CopyTree> for ContentTransfer {
    type Result = ResponseFuture<Result<TreeReport, TreeError>>;

    fn handle(&mut self, msg: CopyTree, _: &mut Self::Context) -> Self::Result {
        let (pool, stopper) = (self.pool.clone(), self.stopper.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("hostmig-content".into())
            .spawn(move || {
                // Bulk copying yields the CPU to the API and the actors
                // (the threads this one starts inherit it).
                crate::priority::set_thread_nice(crate::priority::BULK_NICE, "a transfer thread");
                let _ = tx.send(copy_with_retries(&pool, &stopper, msg));
            });
        Box::pin(async move {
            if let Err(e) = spawned {
                return Err(TreeError::Io {
                    what: "cannot start a transfer thread".into(),
                    source: e,
                });
            }
            rx.await.unwrap_or(Err(TreeError::Thread("transfer")))
        })
    }
}

/// Copies a tree, trying again after a transient fault within the retry
/// policy, each try on new sessions and going on from what the earlier
/// ones left (`sync_tree_try`). Blocking.
fn copy_with_retries(
    pool: &SessionPool,
    stopper: &Stopper,
    msg: CopyTree,
) -> Result<TreeReport, TreeError> {
    let CopyTree {
        job,
        item,
        progress,
        retry,
        since,
    } = msg;
    let mut report = tree_reporter(item.clone(), progress.clone());
    let received = AtomicU64::new(0);
    let began = crate::transfer::unix_now();
    let mut attempt = 0u32;
    loop {
        let tries = Tries {
            // After a restart, from when the first run began.
            resume: since.or((attempt > 0).then_some(began)),
            received: &received,
        };
        let result = pool
            .take(COPY_STREAMS + 1, attempt > 0)
            .and_then(|mut sessions| {
                let Some(hasher) = sessions.pop() else {
                    return Err(TreeError::Channel("no SSH session for hashing".into()));
                };
                let result =
                    sync_tree_try(&sessions, &hasher, &job, stopper.flag(), &mut report, tries);
                // A session that saw a failure may be broken: not reused.
                // The hashing session may have idled since its work ended
                // long ago: closed rather than trusted.
                drop(hasher);
                if result.is_ok() {
                    pool.put(sessions);
                }
                result
            });
        // A login broken by the stopper is the stop too (sync_tree_try
        // already says so for everything after the login).
        let error = match result {
            Ok(mut done) => {
                done.attempts = attempt + 1;
                return Ok(done);
            }
            Err(_) if stopper.stopped() => return Err(TreeError::Stopped),
            Err(e) => e,
        };
        let Some(why) = error.transient() else {
            return Err(error);
        };
        let Some((retrying, delay)) = retry.next(&mut attempt, &why) else {
            discard_staging(&job);
            return Err(if attempt == 0 {
                error
            } else {
                TreeError::GaveUp {
                    tries: attempt + 1,
                    last: Box::new(error),
                }
            });
        };
        tracing::warn!(tree = %job.label, error = %error, attempt, of = retry.attempts, delay_s = delay.as_secs(), "the copy of a tree was interrupted; trying it again from what it has");
        let mut waiting = ItemProgress::new(item.clone());
        waiting.retrying = Some(retrying);
        // Sent whatever the mailbox holds: unlike a progress report, which
        // the next one supersedes, this one is said once.
        progress.do_send(Progressed(Update::Item(waiting)));
        if !crate::retry::pause_blocking(delay, stopper.flag()) {
            discard_staging(&job);
            return Err(TreeError::Stopped);
        }
    }
}

/// Turns a tree's progress into the item's typed progress, with its rate
/// since the copy began; progress that finds the mailbox full is dropped
/// (the next report supersedes it).
fn tree_reporter(item: Item, to: Recipient<Progressed>) -> impl FnMut(Progress) + Send {
    let mut started: Option<Instant> = None;
    move |p: Progress| {
        let mut status = ItemProgress::new(item.clone());
        status.phase = match p.phase {
            Phase::Listing => ItemPhase::Listing,
            Phase::Copying => ItemPhase::Receiving,
            Phase::Unpacking => ItemPhase::Copying,
            Phase::Verifying => ItemPhase::Verifying,
        };
        if matches!(p.phase, Phase::Copying | Phase::Unpacking) {
            let since = *started.get_or_insert_with(Instant::now);
            let secs = since.elapsed().as_secs_f64().max(0.001);
            status.rate = (p.bytes_done as f64 / secs) as u64;
        }
        status.bytes_done = p.bytes_done;
        status.bytes_total = p.bytes_total;
        status.files_done = p.files_done;
        status.files_total = p.files_total;
        let _ = to.try_send(Progressed(Update::Item(status)));
    }
}

/// Removes the trees this migration placed for a domain whose records
/// could not be written; answers what to add to its error.
pub(super) fn remove_trees(env: &Env, name: &str, trees: &[TreeKind]) -> String {
    let Some(dest) = env.config.destination.as_ref() else {
        return String::new();
    };
    let mut kept = Vec::new();
    for kind in trees {
        let root = match kind {
            TreeKind::Web => &dest.vhosts_root,
            TreeKind::Mail => &dest.mailnames_root,
        };
        let path = root.join(name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => kept.push(format!("{} ({e})", path.display())),
        }
    }
    if kept.is_empty() {
        "; its copied content was removed".to_owned()
    } else {
        format!(
            "; its copied content could not all be removed: {}",
            kept.join(", ")
        )
    }
}

/// Removes the trees migration `id` wrote for domains no migration
/// deployed (an abandoned migration's), each on a blocking thread, and
/// forgets them; one that cannot be removed is logged and stays known.
pub async fn remove_undeployed_trees(journal: actix::Addr<journal::Journal>, id: u64) {
    let Ok(paths) = journal::ask(&journal, journal::LoadUndeployedTrees(id)).await else {
        return;
    };
    for path in paths {
        let dir = std::path::PathBuf::from(&path);
        let removed =
            actix_web::rt::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match removed {
            Ok(()) => {
                tracing::info!(migration_id = id, tree = %path, "removed a tree the abandoned migration had copied");
                let _ = journal::ask(&journal, journal::ForgetTree(path)).await;
            }
            Err(e) => {
                tracing::warn!(migration_id = id, tree = %path, error = %e, "cannot remove a tree the abandoned migration had copied; remove it by hand")
            }
        }
    }
}

/// A tree's report entry.
fn tree_entry(kind: TreeKind, result: &Result<TreeReport, TreeError>) -> TreeEntry {
    let mut entry = TreeEntry {
        kind: kind.tag().to_owned(),
        outcome: CopyOutcome::Copied,
        files: 0,
        bytes: 0,
        sent_files: 0,
        sent_bytes: 0,
        deleted: 0,
        verified: false,
        error: None,
    };
    match result {
        Ok(r) => {
            entry.outcome = if r.absent {
                CopyOutcome::Absent
            } else {
                CopyOutcome::Copied
            };
            entry.verified = !r.absent;
            (entry.files, entry.bytes) = (r.files, r.bytes);
            (entry.sent_files, entry.sent_bytes, entry.deleted) =
                (r.sent_files, r.sent_bytes, r.deleted);
        }
        Err(TreeError::Stopped) => entry.outcome = CopyOutcome::Stopped,
        Err(e) => {
            entry.outcome = CopyOutcome::Failed;
            entry.error = Some(e.to_string());
        }
    }
    entry
}

/// Copies a domain's trees at the same time, each by a ContentTransfer
/// sub-actor; answers each tree's report entry, and the problems, one
/// text, when any tree failed.
pub(super) async fn copy_trees(
    env: &Env,
    name: &str,
    sys_login: Option<String>,
    trees: &[TreeKind],
) -> (Vec<TreeEntry>, Result<(), String>) {
    let mut entries = Vec::new();
    let result = copy_all(env, name, sys_login, trees, &mut entries).await;
    (entries, result)
}

async fn copy_all(
    env: &Env,
    name: &str,
    sys_login: Option<String>,
    trees: &[TreeKind],
    entries: &mut Vec<TreeEntry>,
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
        journal::ask(
            &env.journal,
            journal::RecordTree {
                path: path.clone(),
                domain: name.to_owned(),
                migration_id: env.id,
            },
        )
        .await
        .map_err(|e| format!("{label} was not copied: the journal cannot record it: {e}"))?;
        let rewritten = journal::ask(&env.journal, journal::LoadRewrites(path))
            .await
            .map_err(|e| format!("{label} was not copied: the journal is not readable: {e}"))?;
        jobs.push((
            kind,
            TreeJob {
                label,
                remote: remote_root.join(name),
                local,
                transport: prepared.transport,
                staging: prepared
                    .staging
                    .join(format!("hostmig-{}", env.id))
                    .join(format!("{name}.{}", kind.tag())),
                owner: Some(owner),
                conf_remap: (kind == TreeKind::Web).then(|| Remap {
                    addresses: prepared.plan.addresses.clone(),
                    roots: Vec::new(),
                }),
                rewritten,
                meter: env.meter.clone(),
                compression: env.link.get().map_or(Codec::None, |c| c.content),
            },
        ));
    }
    let copies = jobs.iter().map(|(kind, job)| {
        let transfer = ContentTransfer::new(env.pool.clone(), env.stopper.clone()).start();
        let item = kind.item(name);
        let (progress, done) = (env.progress.clone(), item.clone());
        let copy = transfer.send(CopyTree {
            job: job.clone(),
            item,
            progress: progress.clone(),
            retry: env.config.migrations.retry,
            since: env.prepared.resume.as_ref().and_then(|r| r.since),
        });
        async move {
            let result = copy.await;
            let _ = progress.send(Progressed(Update::ItemDone(done))).await;
            result
        }
    });
    let results = futures_util::future::join_all(copies).await;
    let mut problems = Vec::new();
    for ((kind, job), result) in jobs.iter().zip(results) {
        let result = result.unwrap_or(Err(TreeError::Thread("transfer")));
        entries.push(tree_entry(*kind, &result));
        match result {
            Ok(report) => {
                env.events.write(&Event::Tree {
                    tree: &job.label,
                    transport: job.transport.as_str(),
                    report: &report,
                });
                let saved = journal::ask(
                    &env.journal,
                    journal::SaveRewrites {
                        path: job.local.display().to_string(),
                        rewrites: report.rewritten,
                    },
                )
                .await;
                if saved.is_err() {
                    problems.push(format!(
                        "{}: copied, but the journal could not record its remapped conf/ files",
                        job.label
                    ));
                }
            }
            Err(TreeError::Stopped) => problems.push(format!("{}: stopped", job.label)),
            Err(e) => {
                let e = e.to_string();
                env.events.write(&Event::TreeFailed {
                    tree: &job.label,
                    failed: &e,
                });
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
