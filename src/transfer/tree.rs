//! One content tree (a domain's vhost tree or mail tree) copied from the
//! source into place by either transport, verified, and its `conf/` files
//! remapped (DESIGN.md §2 steps 4-6). Blocking: it runs on a thread of its
//! own, with a second SSH session hashing the source's files meanwhile.
//!
//! * `archive`: the whole tree as one tar stream into a staging file,
//!   checked, unpacked into place, the staging file removed.
//! * `rsync`: list both sides, send exactly the paths that differ as one
//!   tar stream straight into place, delete what the source no longer has.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::commands;
use super::listing::{self, dotted, link_groups, shown, Hash, ListError, Listing, NodeKind};
use super::pump::pumped;
use super::unpack::{unpack_with, Options as UnpackOptions, UnpackError};
use super::{kept_mode, set_mtime};
use crate::remap::Remap;
use crate::ssh::Session;

pub use crate::rpc::packet::Transport;

/// The source's size and mtime of a file hostmig rewrote (a remapped
/// `conf/` file): while the source still has these, the rewritten copy is
/// current and is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime: i64,
}

pub type Rewrites = BTreeMap<Vec<u8>, Stamp>;

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

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
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
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> TreeError {
    TreeError::Failed(e.to_string())
}

impl From<ListError> for TreeError {
    fn from(e: ListError) -> Self {
        failed(e)
    }
}

impl From<UnpackError> for TreeError {
    fn from(e: UnpackError) -> Self {
        match e {
            UnpackError::Stopped => TreeError::Stopped,
            e => failed(format!(
                "unpacking failed, the tree is as it was before that entry: {e}"
            )),
        }
    }
}

/// Copies, verifies and remaps one tree. `sessions` (at least one) carry
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
    // Whatever broke while a stop was under way (a read on a socket the
    // stopper shut down, say) is the stop.
    if sessions.is_empty() {
        return Err(failed("no SSH session to copy with"));
    }
    sync(sessions, hasher, job, stop, progress).map_err(|e| {
        if stop.load(Ordering::SeqCst) {
            TreeError::Stopped
        } else {
            e
        }
    })
}

fn sync(
    sessions: &[Session],
    hasher: &Session,
    job: &TreeJob,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<TreeReport, TreeError> {
    let check_stop = || {
        if stop.load(Ordering::Relaxed) {
            Err(TreeError::Stopped)
        } else {
            Ok(())
        }
    };
    progress(Progress::default());
    let started = Instant::now();
    // rsync compares with what is here: listed meanwhile.
    let (src, here) = std::thread::scope(|scope| {
        let here =
            (job.transport == Transport::Rsync).then(|| scope.spawn(|| listing::local(&job.local)));
        let src = listing::remote(&sessions[0], &job.remote).map_err(TreeError::from);
        let here = here.map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(ListError::Remote {
                    what: job.local.display().to_string(),
                    reason: "the listing thread failed".into(),
                })
            })
        });
        (src, here)
    });
    let src = src?;
    let here = here.transpose()?;
    check_stop()?;
    let mut report = TreeReport::default();
    report.timings.list_ms = ms(started);
    let (files_total, bytes_total) = totals(&src, |_| true);
    report.files = files_total;
    report.bytes = bytes_total;
    if src.is_empty() {
        report.absent = true;
        return Ok(report);
    }
    let mut rewritten = job.rewritten.clone();
    // Only stamps that still describe the source's file stay valid.
    rewritten.retain(|p, stamp| {
        src.get(p).is_some_and(|n| {
            n.kind == NodeKind::File && n.size == stamp.size && n.mtime == stamp.mtime
        })
    });
    let (dst_hashes, src_hashes, sent, root, unchanged) = match (job.transport, here) {
        (Transport::Rsync, Some(here)) => rsync(
            sessions,
            hasher,
            job,
            &src,
            here,
            &rewritten,
            stop,
            progress,
            &mut report,
        )?,
        _ => archive(sessions, hasher, job, &src, stop, progress, &mut report)?,
    };
    let checked = check_stop()
        .and_then(|_| {
            finish_tree(
                job,
                &root,
                unchanged,
                &src,
                &src_hashes,
                &dst_hashes,
                &sent,
                &mut rewritten,
                progress,
                &mut report,
            )
        })
        .and_then(|_| {
            if root == job.local {
                return Ok(());
            }
            place(&root, &job.local)
        });
    if checked.is_err() && root != job.local {
        remove_staged(&root);
    }
    checked?;
    report.rewritten = rewritten;
    report.timings.total_ms = ms(started);
    Ok(report)
}

/// Verifies the copy at `root` (DESIGN.md §2 step 5), then remaps its
/// `conf/` files (step 6).
#[allow(clippy::too_many_arguments)]
fn finish_tree(
    job: &TreeJob,
    root: &Path,
    unchanged: Option<Listing>,
    src: &Listing,
    src_hashes: &HashMap<Vec<u8>, Hash>,
    dst_hashes: &HashMap<Vec<u8>, Hash>,
    sent: &BTreeSet<Vec<u8>>,
    rewritten: &mut Rewrites,
    progress: &mut (dyn FnMut(Progress) + Send),
    report: &mut TreeReport,
) -> Result<(), TreeError> {
    progress(Progress {
        phase: Phase::Verifying,
        bytes_done: report.sent_bytes,
        bytes_total: report.sent_bytes,
        files_done: report.sent_files,
        files_total: report.sent_files,
    });
    // Sent files were rewritten anew if at all; the others keep their stamps.
    rewritten.retain(|p, _| !sent.contains(p));
    let verifying = Instant::now();
    // Nothing was written: the listing taken before the copy is the copy's.
    let dst = match unchanged {
        Some(listing) => listing,
        None => listing::local(root)?,
    };
    let differences = verify(src, &dst, src_hashes, dst_hashes, rewritten);
    report.timings.verify_ms = ms(verifying);
    if !differences.is_empty() {
        let first: Vec<&str> = differences.iter().take(5).map(String::as_str).collect();
        return Err(failed(format!(
            "verification of {} failed: {} difference(s) between the source and the copy; first: {}",
            job.label,
            differences.len(),
            first.join("; ")
        )));
    }
    report.hashed = src_hashes.len() as u64;
    if let Some(remap) = &job.conf_remap {
        remap_conf(job, root, src, remap, rewritten, report)?;
    }
    Ok(())
}

/// Removes a staged tree (the migration's staging directory itself goes
/// when the migration ends: another tree may be using it).
fn remove_staged(root: &Path) {
    let _ = fs::remove_dir_all(root);
}

/// Puts a checked, verified staged tree into place: what was at `local`
/// (an earlier partial copy of hostmig's) is removed, then one rename.
fn place(staged: &Path, local: &Path) -> Result<(), TreeError> {
    if fs::symlink_metadata(local).is_ok() {
        fs::remove_dir_all(local).map_err(|e| {
            failed(format!(
                "cannot replace the earlier partial copy {}: {e}",
                local.display()
            ))
        })?;
    }
    if let Some(parent) = local.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    fs::rename(staged, local).map_err(|e| {
        failed(format!(
            "cannot move the copy from {} into place at {}: {e}",
            staged.display(),
            local.display()
        ))
    })
}

/// Regular files and their bytes (each inode once) of the paths `keep` accepts.
fn totals(list: &Listing, keep: impl Fn(&[u8]) -> bool) -> (u64, u64) {
    let mut seen = BTreeSet::new();
    let (mut files, mut bytes) = (0, 0);
    for (p, n) in list {
        if n.kind == NodeKind::File && keep(p) && seen.insert(n.ino) {
            files += 1;
            bytes += n.size;
        }
    }
    (files, bytes)
}

/// The copy's hashes, the source's, the paths sent, where the copy is,
/// and its listing when the copy changed nothing.
type Copied = (
    HashMap<Vec<u8>, Hash>,
    HashMap<Vec<u8>, Hash>,
    BTreeSet<Vec<u8>>,
    PathBuf,
    Option<Listing>,
);

/// Hashes `paths` (or all files) of the source on the second session while
/// `work` runs; answers both results.
fn with_source_hashes<T>(
    hasher: &Session,
    dir: &Path,
    paths: Option<Vec<Vec<u8>>>,
    timings: &mut Timings,
    work: impl FnOnce() -> Result<T, TreeError>,
) -> Result<(T, HashMap<Vec<u8>, Hash>), TreeError> {
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            if paths.as_ref().is_some_and(Vec::is_empty) {
                return Ok(HashMap::new());
            }
            listing::remote_hashes(hasher, dir, paths.as_deref())
        });
        let done = work();
        if done.is_err() {
            // Unblock the hashing session so the scope can end.
            hasher.shutdown();
        }
        let waiting = Instant::now();
        let hashes = hashing
            .join()
            .map_err(|_| failed("the hashing thread failed"))?;
        timings.hash_wait_ms = ms(waiting);
        let done = done?;
        let hashes = hashes?;
        Ok((done, hashes))
    })
}

/// The whole tree as one tar stream, unpacked as it arrives into the
/// tree's staging directory (straight into place when staging is on
/// another file system, where a rename cannot move it); answers where
/// the copy is.
fn archive(
    sessions: &[Session],
    hasher: &Session,
    job: &TreeJob,
    src: &Listing,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
    report: &mut TreeReport,
) -> Result<Copied, TreeError> {
    let (files_total, bytes_total) = (report.files, report.bytes);
    // A stop may have removed staging already: never create it again.
    if stop.load(Ordering::SeqCst) {
        return Err(TreeError::Stopped);
    }
    let staging_parent = job.staging.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(staging_parent).map_err(|e| {
        failed(format!(
            "cannot create the staging directory {}: {e}",
            staging_parent.display()
        ))
    })?;
    let local_parent = job.local.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(local_parent)
        .map_err(|e| failed(format!("cannot create {}: {e}", local_parent.display())))?;
    let same_fs = match (fs::metadata(staging_parent), fs::metadata(local_parent)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    let root = if same_fs {
        job.staging.clone()
    } else {
        job.local.clone()
    };
    // What an earlier, stopped run left here is replaced whole.
    if fs::symlink_metadata(&root).is_ok() {
        fs::remove_dir_all(&root).map_err(|e| {
            failed(format!(
                "cannot replace the earlier partial copy {}: {e}",
                root.display()
            ))
        })?;
    }
    let mut timings = std::mem::take(&mut report.timings);
    let writing = Instant::now();
    let all: Vec<Vec<u8>> = src
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Other)
        .map(|(p, _)| p.clone())
        .collect();
    let copied = with_source_hashes(hasher, &job.remote, None, &mut timings, || {
        let into = Landing {
            root: &root,
            job,
            src,
            stop,
            totals: (files_total, bytes_total),
        };
        let unpacked = stream_paths(sessions, &all, &into, progress)?;
        // Streams in parallel wrote into each other's directories.
        fix_dir_mtimes(&root, src, None)?;
        Ok(unpacked)
    });
    let (unpacked, src_hashes) = match copied {
        Ok(c) => c,
        Err(e) => {
            if same_fs {
                remove_staged(&root);
            }
            return Err(e);
        }
    };
    timings.write_ms = ms(writing).saturating_sub(timings.hash_wait_ms);
    report.timings = timings;
    report.sent_files = unpacked.files;
    report.sent_bytes = unpacked.bytes;
    let sent = src.keys().cloned().collect();
    Ok((unpacked.hashes, src_hashes, sent, root, None))
}

/// Puts the source's mtimes back on the copy's directories (writing into
/// a directory changes its mtime); `known` is the copy's listing when it
/// is current. Answers whether any was changed.
fn fix_dir_mtimes(root: &Path, src: &Listing, known: Option<&Listing>) -> Result<bool, TreeError> {
    let mut dirs: Vec<_> = src
        .iter()
        .filter(|(_, n)| n.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let mut fixed = false;
    for (p, n) in dirs {
        let path = root.join(std::ffi::OsStr::from_bytes(p));
        let current = match known {
            Some(listing) => listing.get(p).map(|d| d.mtime),
            None => fs::symlink_metadata(&path).ok().map(|m| m.mtime()),
        };
        if current.is_some_and(|m| m != n.mtime) {
            set_mtime(&path, n.mtime)
                .map_err(|e| failed(format!("cannot set the mtime of {}: {e}", shown(p))))?;
            fixed = true;
        }
    }
    Ok(fixed)
}

/// Trees at least this large go over several streams at once.
const PARALLEL_FROM_BYTES: u64 = 64 << 20;

/// Sends `paths` (sorted) of the source's tree as tar streams, one per
/// session when there is enough to send (one otherwise), unpacked into
/// `root` at the same time. Hard-link groups stay in one stream; the
/// streams carry about the same bytes.
fn stream_paths(
    sessions: &[Session],
    paths: &[Vec<u8>],
    into: &Landing<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<super::unpack::Unpacked, TreeError> {
    if paths.is_empty() {
        return Ok(super::unpack::Unpacked::default());
    }
    let (src, job) = (into.src, into.job);
    let streams = if into.totals.1 >= PARALLEL_FROM_BYTES {
        sessions.len().max(1)
    } else {
        1
    };
    let lists = split(src, paths, streams);
    let command = commands::tar_paths(&job.remote);
    if lists.len() == 1 {
        return stream_into(
            &sessions[0],
            &command,
            Some(&nul_list(&lists[0])),
            into,
            progress,
        );
    }
    // Each stream reports its own counts; the sum is what is reported.
    let shared = std::sync::Mutex::new((progress, vec![(0u64, 0u64); lists.len()]));
    let results: Vec<Result<super::unpack::Unpacked, TreeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = lists
            .iter()
            .zip(sessions)
            .enumerate()
            .map(|(i, (list, session))| {
                let (shared, command) = (&shared, &command);
                scope.spawn(move || {
                    let mut report = |p: Progress| {
                        if let Ok(mut guard) = shared.lock() {
                            let (progress, counts) = &mut *guard;
                            counts[i] = (p.bytes_done, p.files_done);
                            let (bytes_done, files_done) =
                                counts.iter().fold((0, 0), |(b, f), (x, y)| (b + x, f + y));
                            progress(Progress {
                                bytes_done,
                                files_done,
                                ..p
                            });
                        }
                    };
                    let result =
                        stream_into(session, command, Some(&nul_list(list)), into, &mut report);
                    if result.is_err() {
                        // The other streams end too: this tree has failed.
                        for s in sessions {
                            s.shutdown();
                        }
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(failed("a transfer thread failed")))
            })
            .collect()
    });
    let mut total = super::unpack::Unpacked::default();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(u) => {
                total.entries += u.entries;
                total.files += u.files;
                total.bytes += u.bytes;
                total.hashes.extend(u.hashes);
            }
            Err(e) => errors.push(e),
        }
    }
    // The stream that failed first says why; the others only saw their
    // sessions broken.
    let cause = errors
        .iter()
        .position(|e| !e.to_string().starts_with("the SSH channel failed"))
        .unwrap_or(0);
    match errors.into_iter().nth(cause) {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Paths as `tar -T --null` reads them.
fn nul_list(paths: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        out.extend_from_slice(&dotted(p));
        out.push(0);
    }
    out
}

/// Splits sorted `paths` into `n` lists of about equal bytes, each sorted:
/// the files of one directory in one list (inodes are allocated near their
/// directory's; one writer per directory avoids contention), hard-link
/// groups whole, directories and symlinks in the first.
fn split(src: &Listing, paths: &[Vec<u8>], n: usize) -> Vec<Vec<Vec<u8>>> {
    let n = n.max(1);
    let mut lists: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    let mut loads = vec![0u64; n];
    let mut by_inode: HashMap<u64, usize> = HashMap::new();
    let mut by_dir: HashMap<&[u8], usize> = HashMap::new();
    for p in paths {
        let Some(node) = src.get(p) else {
            continue;
        };
        let lightest = |loads: &[u64]| (0..n).min_by_key(|&i| loads[i]).unwrap_or(0);
        let target = if node.kind != NodeKind::File {
            0
        } else if node.nlink > 1 {
            *by_inode.entry(node.ino).or_insert_with(|| lightest(&loads))
        } else {
            let dir = p
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(&p[..0], |i| &p[..i]);
            *by_dir.entry(dir).or_insert_with(|| lightest(&loads))
        };
        loads[target] += node.size.max(512);
        lists[target].push(p.clone());
    }
    lists.retain(|l| !l.is_empty());
    lists
}

/// Runs a tar `command` on the source (fed `input` on stdin, if any) and
/// unpacks its output into `root` as it arrives, receiving on a thread of
/// its own; checks that the archive ended properly and the command
/// exited 0.
fn stream_into(
    session: &Session,
    command: &str,
    input: Option<&[u8]>,
    into: &Landing<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<super::unpack::Unpacked, TreeError> {
    let mut channel = commands::start(session, command, input).map_err(failed)?;
    let (unpacked, read) = pumped(
        &mut channel,
        || session.shutdown(),
        |stream| unpack_into(into, stream, progress),
    );
    // The source's exit status and complaint explain a failure best;
    // they can be read when the stream ended (not when it was broken).
    let exit = match read {
        Ok(()) => commands::finish(&mut channel).map_err(failed),
        Err(e) => Err(failed(format!("the SSH channel failed: {e}"))),
    };
    match (unpacked, exit) {
        (_, Ok((status, stderr))) if status != 0 => Err(failed(format!(
            "tar on the source failed (exit status {status}): {stderr}"
        ))),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(unpacked), Ok(_)) => Ok(unpacked),
    }
}

/// Where and how streams of one tree are unpacked.
struct Landing<'a> {
    root: &'a Path,
    job: &'a TreeJob,
    /// The source's listing (the root's mode when the root is created).
    src: &'a Listing,
    stop: &'a AtomicBool,
    /// Files and bytes to send, for progress.
    totals: (u64, u64),
}

/// Creates the tree's root if needed and unpacks `input` into it.
fn unpack_into(
    into: &Landing<'_>,
    input: impl Read,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<super::unpack::Unpacked, TreeError> {
    let Landing {
        root,
        job,
        src,
        stop,
        totals: (files_total, bytes_total),
    } = *into;
    // A stop may have removed staging already: never create it again.
    if stop.load(Ordering::SeqCst) {
        return Err(TreeError::Stopped);
    }
    if fs::symlink_metadata(root).is_err() {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        // Each stream of a large tree lands here: another one may have
        // created the root a moment ago (a directory, never a link).
        if let Err(e) = fs::create_dir(root) {
            let created_by_another = e.kind() == std::io::ErrorKind::AlreadyExists
                && fs::symlink_metadata(root).is_ok_and(|m| m.is_dir());
            if !created_by_another {
                return Err(failed(format!("cannot create {}: {e}", root.display())));
            }
        }
        let mode = src.get(&Vec::new()).map_or(0o755, |n| kept_mode(n.mode));
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(mode));
        if let Some((uid, gid)) = job.owner {
            std::os::unix::fs::lchown(root, Some(uid), Some(gid))
                .map_err(|e| failed(format!("cannot set the owner of {}: {e}", root.display())))?;
        }
    }
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut tick = |bytes: u64, files: u64| {
        if last.elapsed() >= Duration::from_millis(200) {
            last = Instant::now();
            progress(Progress {
                phase: Phase::Unpacking,
                bytes_done: bytes,
                bytes_total,
                files_done: files,
                files_total,
            });
        }
    };
    let opts = UnpackOptions {
        owner: job.owner,
        hash: true,
        stop: Some(stop),
        progress: Some(&mut tick),
    };
    // The input is the pump's queue of chunks: already buffered.
    Ok(unpack_with(input, root, opts)?)
}

/// What differs between the source and the destination: the paths to send
/// and the destination paths to delete first.
pub fn compare(src: &Listing, dst: &Listing, rewritten: &Rewrites) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut send = BTreeSet::new();
    let mut delete = Vec::new();
    for (p, s) in src {
        if s.kind == NodeKind::Other {
            continue;
        }
        let Some(d) = dst.get(p) else {
            send.insert(p.clone());
            continue;
        };
        if d.kind != s.kind {
            delete.push(p.clone());
            send.insert(p.clone());
            continue;
        }
        let same = match s.kind {
            NodeKind::File => {
                if rewritten.contains_key(p) {
                    true
                } else {
                    d.size == s.size && d.mtime == s.mtime && d.mode == kept_mode(s.mode)
                }
            }
            NodeKind::Symlink => d.link == s.link && d.mtime == s.mtime,
            NodeKind::Dir => d.mode == kept_mode(s.mode),
            NodeKind::Other => true,
        };
        if !same {
            send.insert(p.clone());
        }
    }
    // A hard-link group goes whole when any member goes or the copies are
    // not one inode any more.
    for paths in link_groups(src).values() {
        let inodes: BTreeSet<_> = paths
            .iter()
            .filter_map(|p| dst.get(p).map(|n| n.ino))
            .collect();
        if inodes.len() != 1 || paths.iter().any(|p| send.contains(p)) {
            send.extend(paths.iter().cloned());
        }
    }
    for (p, d) in dst {
        if !src.contains_key(p) || (d.kind == NodeKind::Other) {
            // Inside a directory that goes anyway: that removal covers it.
            if !delete.iter().any(|q: &Vec<u8>| is_under(p, q)) {
                delete.push(p.clone());
            }
        }
    }
    (send.into_iter().collect(), delete)
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

#[allow(clippy::too_many_arguments)]
fn rsync(
    sessions: &[Session],
    hasher: &Session,
    job: &TreeJob,
    src: &Listing,
    dst: Listing,
    rewritten: &Rewrites,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
    report: &mut TreeReport,
) -> Result<Copied, TreeError> {
    let (send, delete) = compare(src, &dst, rewritten);
    // Deepest first, never following a symlink.
    let mut delete = delete;
    delete.sort_by(|a, b| b.len().cmp(&a.len()).then(b.cmp(a)));
    for p in &delete {
        let path = job.local.join(std::ffi::OsStr::from_bytes(p));
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(_) => Ok(()),
        };
        removed.map_err(|e| failed(format!("cannot delete {}: {e}", shown(p))))?;
        report.deleted += 1;
    }
    let sent: BTreeSet<Vec<u8>> = send.iter().cloned().collect();
    let send_set = &sent;
    let (files_total, bytes_total) = totals(src, |p| send_set.contains(p));
    let files: Vec<Vec<u8>> = send
        .iter()
        .filter(|p| src.get(*p).is_some_and(|n| n.kind == NodeKind::File))
        .cloned()
        .collect();
    let mut timings = std::mem::take(&mut report.timings);
    let writing = Instant::now();
    let (unpacked, src_hashes) =
        with_source_hashes(hasher, &job.remote, Some(files), &mut timings, || {
            if send.is_empty() {
                return Ok(super::unpack::Unpacked::default());
            }
            let into = Landing {
                root: &job.local,
                job,
                src,
                stop,
                totals: (files_total, bytes_total),
            };
            stream_paths(sessions, &send, &into, progress)
        })?;
    timings.write_ms = ms(writing).saturating_sub(timings.hash_wait_ms);
    report.timings = timings;
    // Deleting and writing changed directories' mtimes: put the source's back.
    let untouched = sent.is_empty() && report.deleted == 0;
    let fixed = fix_dir_mtimes(&job.local, src, untouched.then_some(&dst))?;
    report.sent_files = unpacked.files;
    report.sent_bytes = unpacked.bytes;
    let unchanged = (untouched && !fixed).then_some(dst);
    Ok((
        unpacked.hashes,
        src_hashes,
        sent,
        job.local.clone(),
        unchanged,
    ))
}

/// Every difference between the source's listing and the copy, one
/// readable line each: type, size, mtime, mode (setuid and setgid aside),
/// link target, hard links, and content hashes where both sides have one.
pub fn verify(
    src: &Listing,
    dst: &Listing,
    src_hashes: &HashMap<Vec<u8>, Hash>,
    dst_hashes: &HashMap<Vec<u8>, Hash>,
    rewritten: &Rewrites,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, s) in src {
        if s.kind == NodeKind::Other {
            continue;
        }
        let name = shown(p);
        let Some(d) = dst.get(p) else {
            out.push(format!("{name}: missing on the destination"));
            continue;
        };
        if d.kind != s.kind {
            out.push(format!(
                "{name}: a {:?} on the source, a {:?} here",
                s.kind, d.kind
            ));
            continue;
        }
        if s.kind != NodeKind::Symlink && d.mode != kept_mode(s.mode) {
            out.push(format!(
                "{name}: mode {:o} on the source, {:o} here",
                s.mode, d.mode
            ));
        }
        if s.kind == NodeKind::Symlink && d.link != s.link {
            out.push(format!("{name}: the symlink's target differs"));
        }
        if d.mtime != s.mtime {
            out.push(format!(
                "{name}: mtime {} on the source, {} here",
                s.mtime, d.mtime
            ));
        }
        if s.kind == NodeKind::File && !rewritten.contains_key(p) && d.size != s.size {
            out.push(format!(
                "{name}: {} bytes on the source, {} here",
                s.size, d.size
            ));
        }
    }
    for p in dst.keys() {
        if !src.contains_key(p) {
            out.push(format!("{}: here but not on the source", shown(p)));
        }
    }
    for paths in link_groups(src).values() {
        let inodes: BTreeSet<_> = paths
            .iter()
            .filter_map(|p| dst.get(p).map(|n| n.ino))
            .collect();
        if inodes.len() > 1 {
            out.push(format!(
                "{}: hard links on the source, separate files here",
                shown(&paths[0])
            ));
        }
    }
    // A hard link's content is its inode's: any path of the inode will do.
    let by_inode: HashMap<u64, &Hash> = dst_hashes
        .iter()
        .filter_map(|(p, h)| dst.get(p).map(|n| (n.ino, h)))
        .collect();
    for (p, expected) in src_hashes {
        let got = dst_hashes
            .get(p)
            .or_else(|| dst.get(p).and_then(|n| by_inode.get(&n.ino).copied()));
        match got {
            Some(h) if h == expected => {}
            Some(_) => out.push(format!("{}: content differs (hash)", shown(p))),
            None => out.push(format!("{}: no content hash of the copy", shown(p))),
        }
    }
    for p in dst_hashes.keys() {
        if !src_hashes.contains_key(p) && src.get(p).is_some_and(|n| n.kind == NodeKind::File) {
            out.push(format!("{}: no content hash on the source", shown(p)));
        }
    }
    out.sort();
    out
}

/// Largest `conf/` file the remapping reads.
const MAX_CONF_BYTES: u64 = 4 << 20;

/// Rewrites old addresses in the tree's `conf/*` files not yet rewritten,
/// keeping each file's mode, owner and the source's mtime; records the
/// source's stamp of every file it rewrote.
fn remap_conf(
    job: &TreeJob,
    root: &Path,
    src: &Listing,
    remap: &Remap,
    rewritten: &mut Rewrites,
    report: &mut TreeReport,
) -> Result<(), TreeError> {
    for (p, n) in src.range(b"conf/".to_vec()..b"conf0".to_vec()) {
        let direct = p.len() > 5 && !p[5..].contains(&b'/');
        // Files rewritten earlier (and not sent again) are current; any
        // other, sent now or copied by an earlier stopped run, is remapped.
        if !direct
            || n.kind != NodeKind::File
            || rewritten.contains_key(p)
            || n.size > MAX_CONF_BYTES
        {
            continue;
        }
        let path = root.join(std::ffi::OsStr::from_bytes(p));
        let Ok(text) = fs::read(&path).map(String::from_utf8) else {
            continue;
        };
        let Ok(text) = text else {
            tracing::warn!(file = %shown(p), tree = %job.label, "not UTF-8 text; its addresses were not remapped");
            continue;
        };
        let new = remap.text(&text);
        if new == text {
            continue;
        }
        let err = |e: std::io::Error| failed(format!("cannot rewrite {}: {e}", shown(p)));
        let tmp = path.with_file_name(format!(".hostmig-remap-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let meta = fs::symlink_metadata(&path).map_err(err)?;
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(err)?;
            std::io::Write::write_all(&mut f, new.as_bytes()).map_err(err)?;
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid())).map_err(err)?;
            f.set_permissions(fs::Permissions::from_mode(kept_mode(meta.mode())))
                .map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        set_mtime(&tmp, n.mtime).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        rewritten.insert(
            p.clone(),
            Stamp {
                size: n.size,
                mtime: n.mtime,
            },
        );
        report.rewritten_now.push(shown(p));
    }
    // The renames touched conf/ itself.
    if let Some(conf) = src
        .get(b"conf".as_slice())
        .filter(|_| !report.rewritten_now.is_empty())
    {
        set_mtime(&root.join("conf"), conf.mtime)
            .map_err(|e| failed(format!("cannot set the mtime of conf: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::listing::Node;

    fn node(kind: NodeKind, size: u64, mtime: i64, ino: u64, nlink: u64) -> Node {
        Node {
            kind,
            mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
            size,
            mtime,
            ino,
            nlink,
            link: Vec::new(),
        }
    }

    fn listing(entries: &[(&str, Node)]) -> Listing {
        entries
            .iter()
            .map(|(p, n)| (p.as_bytes().to_vec(), n.clone()))
            .collect()
    }

    #[test]
    fn compare_sends_what_differs_and_deletes_what_is_gone() {
        let d = |ino| node(NodeKind::Dir, 0, 1, ino, 2);
        let f = |size, mtime, ino| node(NodeKind::File, size, mtime, ino, 1);
        let src = listing(&[
            ("", d(1)),
            ("a", f(10, 5, 2)),
            ("b", f(10, 5, 3)),
            ("dir", d(4)),
            ("dir/new", f(1, 1, 5)),
            ("conf", d(6)),
            ("conf/vhost.conf", f(100, 9, 7)),
        ]);
        let dst = listing(&[
            ("", d(11)),
            ("a", f(10, 5, 12)),
            ("b", f(11, 5, 13)),
            ("dir", f(1, 1, 14)),
            ("gone", d(15)),
            ("gone/inside", f(1, 1, 16)),
            ("conf", d(17)),
            ("conf/vhost.conf", f(120, 9, 18)),
        ]);
        let mut rewritten = Rewrites::new();
        rewritten.insert(
            b"conf/vhost.conf".to_vec(),
            Stamp {
                size: 100,
                mtime: 9,
            },
        );
        let (send, delete) = compare(&src, &dst, &rewritten);
        let s = |v: &[Vec<u8>]| {
            v.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(&send), ["b", "dir", "dir/new"]);
        assert_eq!(s(&delete), ["dir", "gone"]);
        // Without the stamp, the rewritten file looks changed and goes again.
        let (send, _) = compare(&src, &dst, &Rewrites::new());
        assert!(s(&send).contains(&"conf/vhost.conf".to_owned()));
    }

    #[test]
    fn hard_link_groups_go_whole() {
        let f = |ino, nlink| node(NodeKind::File, 3, 1, ino, nlink);
        let src = listing(&[("x", f(1, 2)), ("y", f(1, 2))]);
        let split = listing(&[("x", f(7, 1)), ("y", f(8, 1))]);
        let (send, _) = compare(&src, &split, &Rewrites::new());
        assert_eq!(send.len(), 2);
        let joined = listing(&[("x", f(9, 2)), ("y", f(9, 2))]);
        assert!(compare(&src, &joined, &Rewrites::new()).0.is_empty());
        assert!(verify(
            &src,
            &split,
            &HashMap::new(),
            &HashMap::new(),
            &Rewrites::new()
        )
        .iter()
        .any(|d| d.contains("hard links")));
    }

    #[test]
    fn verify_names_each_kind_of_difference() {
        let f = |size, mtime| node(NodeKind::File, size, mtime, 1, 1);
        let src = listing(&[("a", f(1, 1)), ("b", f(2, 2)), ("c", f(3, 3))]);
        let dst = listing(&[("a", f(1, 1)), ("b", f(2, 5)), ("extra", f(1, 1))]);
        let mut sh = HashMap::new();
        sh.insert(b"a".to_vec(), "h1".to_owned());
        let mut dh = HashMap::new();
        dh.insert(b"a".to_vec(), "h2".to_owned());
        let found = verify(&src, &dst, &sh, &dh, &Rewrites::new());
        assert_eq!(
            found,
            [
                "a: content differs (hash)",
                "b: mtime 2 on the source, 5 here",
                "c: missing on the destination",
                "extra: here but not on the source",
            ]
        );
        dh.insert(b"a".to_vec(), "h1".to_owned());
        let same = listing(&[("a", f(1, 1))]);
        assert!(verify(&same, &same, &sh, &dh, &Rewrites::new()).is_empty());
    }
}
