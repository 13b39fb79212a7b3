//! One content tree (a domain's vhost tree or mail tree) copied from the
//! source into place by either transport, verified, and its `conf/` files
//! remapped (DESIGN.md §2 steps 4-6). Blocking: it runs on a thread of its
//! own, with a second SSH session hashing the source's files meanwhile.
//!
//! * `archive` (`archive.rs`): the whole tree as tar streams, unpacked as
//!   they arrive into staging, checked and verified there, then renamed
//!   into place.
//! * `rsync` (`rsync.rs`): list both sides, send exactly the paths that
//!   differ as tar streams straight into place, delete what the source no
//!   longer has.
//!
//! `streams.rs` carries the tar streams of both, `verify.rs` compares the
//! copy with the source, `conf.rs` remaps the `conf/` files.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::conf::{remap_conf, Rewrites};
use super::listing::{self, Hash, ListError, Listing, NodeKind};
use super::tar::TarError;
use super::unpack::UnpackError;
use super::verify::{totals, verify};
use crate::remap::Remap;
use crate::ssh::{Session, SshError};

pub use crate::migration::request::Transport;

/// What to copy.
#[derive(Debug, Clone)]
pub struct TreeJob {
    /// For messages: "web content of a.example".
    pub label: String,
    pub remote: PathBuf,
    pub local: PathBuf,
    pub transport: Transport,
    /// The archive transport's staging directory for this tree (under
    /// `<staging>/hostmig-<id>/`): the tree is unpacked there, checked,
    /// verified and remapped, then renamed into place.
    pub staging: PathBuf,
    /// Owner (uid, gid) of what is written.
    pub owner: Option<(u32, u32)>,
    /// Applied to `conf/*` after verification (vhost trees).
    pub conf_remap: Option<Remap>,
    /// Files rewritten by earlier runs on this tree.
    pub rewritten: Rewrites,
    /// Counts and caps what the tree's streams read from the source.
    pub meter: std::sync::Arc<crate::caps::Meter>,
    /// How its streams are compressed on the source.
    pub compression: super::link::Codec,
}

/// How the copy went.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeReport {
    /// The source tree: regular files and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// What this run sent (file data) and deleted.
    pub sent_files: u64,
    pub sent_bytes: u64,
    pub deleted: u64,
    /// Files whose content hashes were compared.
    pub hashed: u64,
    #[serde(skip)]
    pub rewritten: Rewrites,
    /// `conf/` files rewritten by this run, for the event log.
    pub rewritten_now: Vec<String>,
    /// The tree does not exist on the source.
    pub absent: bool,
    /// Tries the copy took (1 without a fault).
    pub attempts: u32,
    /// Files (and their bytes) an earlier try of this copy had written
    /// whole, verified by hash and kept rather than sent again.
    pub kept_files: u64,
    pub kept_bytes: u64,
    /// Stream bytes received from the source over every try (as they
    /// crossed the link: compressed, when `compression` says so).
    pub received_bytes: u64,
    /// How the streams were compressed on the source.
    pub compression: super::link::Codec,
    /// Where the time went, in milliseconds.
    pub timings: Timings,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timings {
    pub list_ms: u64,
    /// Archive: receiving into the staging file; rsync: 0.
    pub receive_ms: u64,
    /// Writing into place (archive: unpacking; rsync: the streamed copy).
    pub write_ms: u64,
    /// Waiting for the source's hashes after the copy was done.
    pub hash_wait_ms: u64,
    pub verify_ms: u64,
    pub total_ms: u64,
}

/// Where the copy is, for the status description.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub phase: Phase,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Listing,
    Copying,
    Unpacking,
    Verifying,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("the transfer was stopped")]
    Stopped,
    #[error("cannot log into the source: {0}")]
    Login(#[source] SshError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error("unpacking failed, the tree is as it was before that entry: {0}")]
    Unpack(#[source] UnpackError),
    /// The SSH channel broke (also when another stream of the tree failed
    /// and broke every session).
    #[error("the SSH channel failed: {0}")]
    Channel(String),
    #[error("tar on the source failed (exit status {status}): {stderr}")]
    SourceTar { status: i32, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("verification of {label} failed: {count} difference(s) between the source and the copy; first: {}", first.join("; "))]
    Verify {
        label: String,
        count: usize,
        first: Vec<String>,
    },
    #[error("the {0} thread failed")]
    Thread(&'static str),
    /// A transient fault that the retries did not get past.
    #[error("{last} (tried {tries} times)")]
    GaveUp { tries: u32, last: Box<TreeError> },
    /// ENOSPC while writing the copy: permanent, the object fails.
    #[error("the destination file system {mount} is full (writing {path}); free space there, then start the migration again")]
    Full { mount: String, path: String },
}

impl TreeError {
    /// Why a transient fault ended a try, for the status (`retrying (1 of
    /// 5) after: <this> while copying ...`); `None` for a permanent fault
    /// (a refused login or host key, a refused archive entry, a full disk,
    /// a write here that failed, a verification difference) or a stop.
    pub fn transient(&self) -> Option<String> {
        let lost = |detail: &dyn std::fmt::Display| {
            let detail = detail.to_string();
            // A stall says so first: "stalled for 120 s".
            if let Some(at) = detail.find(crate::ssh::STALLED) {
                let stall = &detail[at..];
                let end = stall.find(" s").map_or(stall.len(), |i| i + 2);
                return Some(stall[..end].to_owned());
            }
            Some(format!("connection to the source lost ({detail})"))
        };
        match self {
            TreeError::Channel(e) => lost(e),
            TreeError::Login(e @ (SshError::Unreachable { .. } | SshError::Failed { .. })) => {
                lost(e)
            }
            TreeError::List(e @ ListError::Remote { reason, .. }) => {
                // A command that ran and failed (find refused a directory)
                // fails again; a channel that broke does not.
                if reason.starts_with("exit status ") {
                    None
                } else {
                    lost(e)
                }
            }
            TreeError::Unpack(UnpackError::Archive(
                e @ (TarError::Io(_) | TarError::Truncated | TarError::Unterminated),
            )) => lost(e),
            // GNU tar: 1 is "some files changed or vanished as they were
            // read", which a try later finds settled.
            TreeError::SourceTar { status: 1, .. } => {
                Some("files changed on the source while they were read".into())
            }
            _ => None,
        }
    }

    /// A write that failed for want of space names the file system.
    fn classified(self, job: &TreeJob) -> TreeError {
        let full = |e: &std::io::Error, path: &str| {
            (e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)).then(
                || TreeError::Full {
                    mount: crate::mounts::mount_point_of(Path::new(path))
                        .unwrap_or_else(|| path.to_owned()),
                    path: path.to_owned(),
                },
            )
        };
        let found = match &self {
            TreeError::Unpack(UnpackError::Write { path, source }) => full(
                source,
                &job.local
                    .join(path.trim_start_matches("./"))
                    .display()
                    .to_string(),
            ),
            TreeError::Io { source, .. } => full(source, &job.local.display().to_string()),
            _ => None,
        };
        found.unwrap_or(self)
    }
}

impl From<UnpackError> for TreeError {
    fn from(e: UnpackError) -> Self {
        match e {
            UnpackError::Stopped => TreeError::Stopped,
            e => TreeError::Unpack(e),
        }
    }
}

/// An I/O failure with what was being done.
pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TreeError {
    let what = what.into();
    move |source| TreeError::Io { what, source }
}

/// One tree's copy under way: the sessions it uses, what it copies, the
/// stop flag, whom it tells how far it is, and its report so far.
pub(super) struct Run<'a> {
    /// At least one: several streams at once for a large tree.
    pub sessions: &'a [Session],
    /// Hashes the source's files while the copy runs.
    pub hasher: &'a Session,
    pub job: &'a TreeJob,
    pub stop: &'a AtomicBool,
    pub progress: &'a mut (dyn FnMut(Progress) + Send),
    pub report: TreeReport,
    /// A try after a fault: when the first try began (Unix seconds). What
    /// was written since then, and looks complete, is verified by hash and
    /// kept; the rest is sent.
    pub resume: Option<i64>,
    /// Tar stream bytes received, counted as they arrive (a failed try's
    /// too).
    pub received: &'a AtomicU64,
}

impl Run<'_> {
    pub fn check_stop(&self) -> Result<(), TreeError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(TreeError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// What a transport leaves for verification.
pub(super) struct Copied {
    /// Content hashes of what was written here.
    pub dst_hashes: HashMap<Vec<u8>, Hash>,
    /// The source's hashes of the same files.
    pub src_hashes: HashMap<Vec<u8>, Hash>,
    /// The paths sent.
    pub sent: BTreeSet<Vec<u8>>,
    /// Where the copy is (staging, or the final path).
    pub root: PathBuf,
    /// The copy's listing when the copy changed nothing.
    pub unchanged: Option<Listing>,
}

pub(super) fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Copies, verifies and remaps one tree, in one try. `sessions` (at least one) carry
/// the copy, several at once for a large tree; `hasher` (another session)
/// the source's hashes. A stopper sets `stop` and breaks every session's
/// socket.
pub fn sync_tree(
    sessions: &[Session],
    hasher: &Session,
    job: &TreeJob,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<TreeReport, TreeError> {
    let received = AtomicU64::new(0);
    let tries = Tries {
        resume: None,
        received: &received,
    };
    // No try follows this one: nothing staged stays.
    sync_tree_try(sessions, hasher, job, stop, progress, tries)
        .inspect_err(|_| discard_staging(job))
}

/// Which try of a tree's copy this is.
#[derive(Clone, Copy)]
pub struct Tries<'a> {
    /// After a fault: when the first try began (Unix seconds).
    pub resume: Option<i64>,
    /// Tar stream bytes received by every try so far.
    pub received: &'a AtomicU64,
}

/// One try of `sync_tree`. A try after a fault continues from what the
/// earlier ones left: the archive transport's staging is kept when a try
/// fails by a transient fault ([`TreeError::transient`]), and the next
/// try sends only what is not there whole, verifying by hash what it keeps.
pub fn sync_tree_try(
    sessions: &[Session],
    hasher: &Session,
    job: &TreeJob,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
    tries: Tries<'_>,
) -> Result<TreeReport, TreeError> {
    if sessions.is_empty() {
        return Err(TreeError::Channel("no SSH session to copy with".into()));
    }
    let mut run = Run {
        sessions,
        hasher,
        job,
        stop,
        progress,
        report: TreeReport::default(),
        resume: tries.resume,
        received: tries.received,
    };
    // Whatever broke while a stop was under way (a read on a socket the
    // stopper shut down, say) is the stop.
    sync(&mut run).map_err(|e| {
        if stop.load(Ordering::SeqCst) {
            TreeError::Stopped
        } else {
            e.classified(job)
        }
    })
}

fn sync(run: &mut Run<'_>) -> Result<TreeReport, TreeError> {
    let job = run.job;
    (run.progress)(Progress::default());
    let started = Instant::now();
    // rsync compares with what is here: listed meanwhile.
    let (src, here) = std::thread::scope(|scope| {
        let here =
            (job.transport == Transport::Rsync).then(|| scope.spawn(|| listing::local(&job.local)));
        let src = listing::remote(&run.sessions[0], &job.remote);
        let here = here.map(|h| h.join().unwrap_or(Err(ListError::Thread)));
        (src, here)
    });
    let src = src?;
    let here = here.transpose()?;
    run.check_stop()?;
    run.report.timings.list_ms = ms(started);
    let (files_total, bytes_total) = totals(&src, |_| true);
    run.report.files = files_total;
    run.report.bytes = bytes_total;
    if src.is_empty() {
        run.report.absent = true;
        return Ok(std::mem::take(&mut run.report));
    }
    let mut rewritten = job.rewritten.clone();
    // Only stamps that still describe the source's file stay valid.
    rewritten.retain(|p, stamp| {
        src.get(p).is_some_and(|n| {
            n.kind == NodeKind::File && n.size == stamp.size && n.mtime == stamp.mtime
        })
    });
    let copied = match (job.transport, here) {
        (Transport::Rsync, Some(here)) => {
            super::rsync::rsync(run, &src, here, &rewritten, &job.local)?
        }
        _ => super::archive::archive(run, &src)?,
    };
    let root = copied.root.clone();
    let checked = run
        .check_stop()
        .and_then(|_| finish_tree(run, &src, copied, &mut rewritten))
        .and_then(|_| {
            if root == job.local {
                return Ok(());
            }
            place(&root, &job.local)
        });
    // A transient fault keeps what is staged for the next try; otherwise
    // the archive's copy goes, staged or written into place (it replaced
    // what was there).
    let permanent = checked.as_ref().is_err_and(|e| e.transient().is_none());
    if permanent && (root != job.local || job.transport == Transport::Archive) {
        remove_staged(&root);
    }
    checked?;
    run.report.rewritten = rewritten;
    run.report.timings.total_ms = ms(started);
    run.report.received_bytes = run.received.load(Ordering::Relaxed);
    run.report.compression = job.compression;
    Ok(std::mem::take(&mut run.report))
}

/// Verifies the copy (DESIGN.md §2 step 5), then remaps its `conf/` files
/// (step 6).
fn finish_tree(
    run: &mut Run<'_>,
    src: &Listing,
    copied: Copied,
    rewritten: &mut Rewrites,
) -> Result<(), TreeError> {
    let report = &mut run.report;
    (run.progress)(Progress {
        phase: Phase::Verifying,
        bytes_done: report.sent_bytes,
        bytes_total: report.sent_bytes,
        files_done: report.sent_files,
        files_total: report.sent_files,
    });
    // Sent files were rewritten anew if at all; the others keep their stamps.
    rewritten.retain(|p, _| !copied.sent.contains(p));
    let verifying = Instant::now();
    // Nothing was written: the listing taken before the copy is the copy's.
    let dst = match copied.unchanged {
        Some(listing) => listing,
        None => listing::local(&copied.root)?,
    };
    let differences = verify(src, &dst, &copied.src_hashes, &copied.dst_hashes, rewritten);
    report.timings.verify_ms = ms(verifying);
    if !differences.is_empty() {
        return Err(TreeError::Verify {
            label: run.job.label.clone(),
            count: differences.len(),
            first: differences.into_iter().take(5).collect(),
        });
    }
    report.hashed = copied.src_hashes.len() as u64;
    if let Some(remap) = &run.job.conf_remap {
        remap_conf(
            &run.job.label,
            &copied.root,
            src,
            remap,
            rewritten,
            &mut report.rewritten_now,
        )?;
    }
    Ok(())
}

/// Removes a staged tree (the migration's staging directory itself goes
/// when the migration ends: another tree may be using it).
pub(super) fn remove_staged(root: &Path) {
    let _ = fs::remove_dir_all(root);
}

/// Removes what the tries of `job` staged (after the last try failed),
/// and what the archive transport wrote straight into place.
pub fn discard_staging(job: &TreeJob) {
    remove_staged(&job.staging);
    if job.transport == Transport::Archive && super::archive::writes_in_place(job) {
        remove_staged(&job.local);
    }
}

/// Puts a checked, verified staged tree into place: what was at `local`
/// (an earlier partial copy of hostmig's) is removed, then one rename.
fn place(staged: &Path, local: &Path) -> Result<(), TreeError> {
    if fs::symlink_metadata(local).is_ok() {
        fs::remove_dir_all(local).map_err(io(format!(
            "cannot replace the earlier partial copy {}",
            local.display()
        )))?;
    }
    if let Some(parent) = local.parent() {
        fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
    }
    fs::rename(staged, local).map_err(io(format!(
        "cannot move the copy from {} into place at {}",
        staged.display(),
        local.display()
    )))
}
