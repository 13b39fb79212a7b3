//! The `rsync` transport: both sides listed, compared (pure), exactly the
//! paths that differ sent as tar streams straight into place, and what
//! the source no longer has deleted. The system rsync is not needed.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use super::conf::Rewrites;
use super::kept_mode;
use super::listing::{link_groups, local_hashes, shown, Listing, NodeKind};
use super::streams::{fix_dir_mtimes, stream_paths, with_source_hashes, Landing};
use super::tree::{io, ms, Copied, Run, TreeError};
use super::unpack::Unpacked;
use super::verify::totals;

/// Brings the tree at `root` (the job's final path, or the archive's
/// staging on a try after a fault), listed as `dst`, up to date.
pub(super) fn rsync(
    run: &mut Run<'_>,
    src: &Listing,
    dst: Listing,
    rewritten: &Rewrites,
    root: &Path,
) -> Result<Copied, TreeError> {
    let (sessions, hasher, job, stop) = (run.sessions, run.hasher, run.job, run.stop);
    let (send, delete) = compare(src, &dst, rewritten);
    // Deepest first, never following a symlink.
    let mut delete = delete;
    delete.sort_by(|a, b| b.len().cmp(&a.len()).then(b.cmp(a)));
    for p in &delete {
        let path = root.join(std::ffi::OsStr::from_bytes(p));
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(_) => Ok(()),
        };
        removed.map_err(io(format!("cannot delete {}", shown(p))))?;
        run.report.deleted += 1;
    }
    let sent: BTreeSet<Vec<u8>> = send.iter().cloned().collect();
    let send_set = &sent;
    let (files_total, bytes_total) = totals(src, |p| send_set.contains(p));
    let mut files: Vec<Vec<u8>> = send
        .iter()
        .filter(|p| src.get(*p).is_some_and(|n| n.kind == NodeKind::File))
        .cloned()
        .collect();
    // After a fault: what an earlier try wrote whole is kept, once its
    // hash matches the source's.
    let kept = match run.resume {
        Some(since) => written_since(root, src, &dst, send_set, since),
        None => Vec::new(),
    };
    files.extend(kept.iter().cloned());
    files.sort();
    let mut timings = std::mem::take(&mut run.report.timings);
    let writing = Instant::now();
    let progress = &mut *run.progress;
    let received = run.received;
    let (unpacked, src_hashes) =
        with_source_hashes(hasher, &job.remote, Some(files), &mut timings, || {
            let mut hashes = local_hashes(root, &kept)?;
            if send.is_empty() {
                return Ok(Unpacked {
                    hashes,
                    ..Unpacked::default()
                });
            }
            let into = Landing {
                root,
                job,
                src,
                stop,
                totals: (files_total, bytes_total),
                received,
            };
            let streamed = stream_paths(sessions, &send, &into, progress)?;
            hashes.extend(streamed.hashes);
            Ok(Unpacked { hashes, ..streamed })
        })?;
    timings.write_ms = ms(writing).saturating_sub(timings.hash_wait_ms);
    run.report.timings = timings;
    let (kept_files, kept_bytes) = totals(src, |p| {
        kept.binary_search_by(|k| k.as_slice().cmp(p)).is_ok()
    });
    run.report.kept_files = kept_files;
    run.report.kept_bytes = kept_bytes;
    // Deleting and writing changed directories' mtimes: put the source's back.
    let untouched = sent.is_empty() && run.report.deleted == 0;
    let fixed = fix_dir_mtimes(root, src, untouched.then_some(&dst))?;
    run.report.sent_files = unpacked.files;
    run.report.sent_bytes = unpacked.bytes;
    let unchanged = (untouched && !fixed).then_some(dst);
    Ok(Copied {
        dst_hashes: unpacked.hashes,
        src_hashes,
        sent,
        root: root.to_owned(),
        unchanged,
    })
}

/// The files of `dst` not to be sent that a try since `since` (Unix
/// seconds) wrote: their inode changed since then. Sorted.
fn written_since(
    root: &Path,
    src: &Listing,
    dst: &Listing,
    send: &BTreeSet<Vec<u8>>,
    since: i64,
) -> Vec<Vec<u8>> {
    dst.iter()
        .filter(|(p, n)| {
            n.kind == NodeKind::File
                && !send.contains(*p)
                && src.get(*p).is_some_and(|s| s.kind == NodeKind::File)
        })
        .filter(|(p, _)| {
            fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(p)))
                // A second's slack: the clock's granularity, never less hashing.
                .is_ok_and(|m| m.ctime() >= since - 1)
        })
        .map(|(p, _)| p.clone())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::conf::Stamp;
    use crate::transfer::listing::testing::{listing, node};
    use crate::transfer::verify::verify;
    use std::collections::HashMap;

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
}
