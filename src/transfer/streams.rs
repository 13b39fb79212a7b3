//! The tar streams that carry a tree from the source, for both transports:
//! the lists of paths a stream sends (split over several sessions for a
//! large tree, one writer per directory), each stream received on a thread
//! of its own and unpacked as it arrives, and the source's hashes taken on
//! another session meanwhile.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::commands;
use super::kept_mode;
use super::listing::{self, dotted, shown, Hash, Listing, NodeKind};
use super::pump::pumped;
use super::set_mtime;
use super::tree::{io, ms, Phase, Progress, Timings, TreeError, TreeJob};
use super::unpack::{unpack_with, Options as UnpackOptions, Unpacked};
use crate::ssh::Session;

/// Hashes `paths` (or all files) of the source on the second session while
/// `work` runs; answers both results.
pub(super) fn with_source_hashes<T>(
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
        let hashes = hashing.join().map_err(|_| TreeError::Thread("hashing"))?;
        timings.hash_wait_ms = ms(waiting);
        let done = done?;
        let hashes = hashes?;
        Ok((done, hashes))
    })
}

/// Puts the source's mtimes back on the copy's directories (writing into
/// a directory changes its mtime); `known` is the copy's listing when it
/// is current. Answers whether any was changed.
pub(super) fn fix_dir_mtimes(
    root: &Path,
    src: &Listing,
    known: Option<&Listing>,
) -> Result<bool, TreeError> {
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
                .map_err(io(format!("cannot set the mtime of {}", shown(p))))?;
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
pub(super) fn stream_paths(
    sessions: &[Session],
    paths: &[Vec<u8>],
    into: &Landing<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Unpacked, TreeError> {
    if paths.is_empty() {
        return Ok(Unpacked::default());
    }
    let (src, job) = (into.src, into.job);
    let streams = if into.totals.1 >= PARALLEL_FROM_BYTES {
        sessions.len().max(1)
    } else {
        1
    };
    let lists = split(src, paths, streams);
    let command = commands::tar_paths(&job.remote, job.compression);
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
    let results: Vec<Result<Unpacked, TreeError>> = std::thread::scope(|scope| {
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
            .map(|h| h.join().unwrap_or(Err(TreeError::Thread("transfer"))))
            .collect()
    });
    let mut total = Unpacked::default();
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
        .position(|e| !matches!(e, TreeError::Channel(_)))
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
) -> Result<Unpacked, TreeError> {
    let channel = commands::start(session, command, input).map_err(TreeError::Channel)?;
    // What the stream carries is read under the migration's caps, and
    // counted for the tree's report.
    let counted = Counted {
        inner: crate::ssh::Watched::new(session, channel),
        count: into.received,
    };
    let mut metered = into.job.meter.reader(counted);
    let (unpacked, read) = pumped(
        &mut metered,
        || session.shutdown(),
        |stream| {
            let tar = into.job.compression.decode(stream).map_err(io(format!(
                "cannot read the {} stream",
                into.job.compression.as_str()
            )))?;
            unpack_into(into, tar, progress)
        },
    );
    let mut channel = metered.inner.inner;
    let channel = &mut channel.channel;
    // The source's exit status and complaint explain a failure best;
    // they can be read when the stream ended (not when it was broken).
    let exit = match read {
        Ok(()) => commands::finish(channel).map_err(TreeError::Channel),
        Err(e) => Err(TreeError::Channel(e.to_string())),
    };
    match (unpacked, exit) {
        (_, Ok((status, stderr))) if status != 0 => Err(TreeError::SourceTar { status, stderr }),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(unpacked), Ok(_)) => Ok(unpacked),
    }
}

/// A reader that adds what it reads to a counter.
struct Counted<'a, R> {
    inner: R,
    count: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where and how streams of one tree are unpacked.
pub(super) struct Landing<'a> {
    pub root: &'a Path,
    pub job: &'a TreeJob,
    /// The source's listing (the root's mode when the root is created).
    pub src: &'a Listing,
    pub stop: &'a AtomicBool,
    /// Files and bytes to send, for progress.
    pub totals: (u64, u64),
    /// Tar stream bytes received, every stream of every try.
    pub received: &'a AtomicU64,
}

/// Creates the tree's root if needed and unpacks `input` into it.
fn unpack_into(
    into: &Landing<'_>,
    input: impl Read,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Unpacked, TreeError> {
    let Landing {
        root,
        job,
        src,
        stop,
        totals: (files_total, bytes_total),
        ..
    } = *into;
    // A stop may have removed staging already: never create it again.
    if stop.load(Ordering::SeqCst) {
        return Err(TreeError::Stopped);
    }
    if fs::symlink_metadata(root).is_err() {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        // Each stream of a large tree lands here: another one may have
        // created the root a moment ago (a directory, never a link).
        if let Err(e) = fs::create_dir(root) {
            let created_by_another = e.kind() == std::io::ErrorKind::AlreadyExists
                && fs::symlink_metadata(root).is_ok_and(|m| m.is_dir());
            if !created_by_another {
                return Err(io(format!("cannot create {}", root.display()))(e));
            }
        }
        let mode = src.get(&Vec::new()).map_or(0o755, |n| kept_mode(n.mode));
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(mode));
        if let Some((uid, gid)) = job.owner {
            std::os::unix::fs::lchown(root, Some(uid), Some(gid))
                .map_err(io(format!("cannot set the owner of {}", root.display())))?;
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
