//! The `archive` transport: the whole tree as tar streams (several at once
//! for a large tree), unpacked as they arrive into the tree's staging
//! directory, or straight into place when staging is on another file
//! system (where a rename cannot move it).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conf::Rewrites;
use super::listing::{self, Listing, NodeKind};
use super::streams::{fix_dir_mtimes, stream_paths, with_source_hashes, Landing};
use super::tree::{io, ms, remove_staged, Copied, Run, TreeError};

/// Whether the archive transport writes `job`'s tree straight into place:
/// its staging is on another file system, where a rename cannot move it.
pub(super) fn writes_in_place(job: &super::tree::TreeJob) -> bool {
    let parent = |p: &Path| p.parent().unwrap_or(Path::new("/")).to_owned();
    let dev = |p: &Path| {
        p.ancestors()
            .find_map(|a| fs::metadata(a).ok())
            .map(|m| m.dev())
    };
    dev(&parent(&job.staging)) != dev(&parent(&job.local))
}

/// Copies the whole tree; answers where the copy is.
pub(super) fn archive(run: &mut Run<'_>, src: &Listing) -> Result<Copied, TreeError> {
    let (sessions, hasher, job, stop) = (run.sessions, run.hasher, run.job, run.stop);
    let (files_total, bytes_total) = (run.report.files, run.report.bytes);
    // A stop may have removed staging already: never create it again.
    if stop.load(Ordering::SeqCst) {
        return Err(TreeError::Stopped);
    }
    let staging_parent = job.staging.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(staging_parent).map_err(io(format!(
        "cannot create the staging directory {}",
        staging_parent.display()
    )))?;
    let local_parent = job.local.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(local_parent)
        .map_err(io(format!("cannot create {}", local_parent.display())))?;
    let same_fs = !writes_in_place(job);
    let staged = fs::symlink_metadata(&job.staging).is_ok_and(|m| m.is_dir());
    // After a restart, a tree the first run had put into place (nothing
    // staged is left) goes on from there, checked like a staged one.
    let placed = run.resume.is_some()
        && !staged
        && fs::symlink_metadata(&job.local).is_ok_and(|m| m.is_dir());
    let root = if same_fs && !placed {
        job.staging.clone()
    } else {
        job.local.clone()
    };
    // A try after a fault goes on from what the earlier ones staged.
    if run.resume.is_some() && fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
        let here = listing::local(&root)?;
        let mut copied = super::rsync::rsync(run, src, here, &Rewrites::new(), &root)?;
        // Every file is new here: its conf/ rewriting too.
        copied.sent = src.keys().cloned().collect();
        return Ok(copied);
    }
    // What an earlier, stopped run left here is replaced whole.
    if fs::symlink_metadata(&root).is_ok() {
        fs::remove_dir_all(&root).map_err(io(format!(
            "cannot replace the earlier partial copy {}",
            root.display()
        )))?;
    }
    let mut timings = std::mem::take(&mut run.report.timings);
    let writing = Instant::now();
    let all: Vec<Vec<u8>> = src
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Other)
        .map(|(p, _)| p.clone())
        .collect();
    let progress = &mut *run.progress;
    let copied = with_source_hashes(hasher, &job.remote, None, &mut timings, || {
        let into = Landing {
            root: &root,
            job,
            src,
            stop,
            totals: (files_total, bytes_total),
            received: run.received,
        };
        let unpacked = stream_paths(sessions, &all, &into, progress)?;
        // Streams in parallel wrote into each other's directories.
        fix_dir_mtimes(&root, src, None)?;
        Ok(unpacked)
    });
    let (unpacked, src_hashes) = match copied {
        Ok(c) => c,
        Err(e) => {
            // A transient fault keeps what is written for the next try;
            // otherwise it goes (into place, it replaced what was there).
            if e.transient().is_none() {
                remove_staged(&root);
            }
            return Err(e);
        }
    };
    timings.write_ms = ms(writing).saturating_sub(timings.hash_wait_ms);
    run.report.timings = timings;
    run.report.sent_files = unpacked.files;
    run.report.sent_bytes = unpacked.bytes;
    Ok(Copied {
        dst_hashes: unpacked.hashes,
        src_hashes,
        sent: src.keys().cloned().collect(),
        root,
        unchanged: None,
    })
}
