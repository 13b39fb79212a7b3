//! Unpacking an archive from a source into a domain's tree, safely
//! (DESIGN.md §5): nothing is written outside the tree, whatever the
//! archive says. Refused, and the domain failed at that entry with the
//! tree as it was before it: absolute paths, `..`, writing through a
//! symlink, device files and fifos, hard links to outside the tree.
//! Kept: files (sparse ones sparse), directories, symlinks as symlinks
//! (never followed), hard links, modes without setuid and setgid, mtimes.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use super::listing::{Hash, Hasher};
use super::tar::{Entry, Kind, Reader, TarError};
use super::{kept_mode, set_mtime};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Archive(#[from] TarError),
    #[error("the archive entry {path} is refused: {reason}")]
    Refused { path: String, reason: &'static str },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the transfer was stopped")]
    Stopped,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    /// Regular files written (hard links not counted).
    pub files: u64,
    pub bytes: u64,
    /// Relative path → digest of the content written (with `hash` on).
    pub hashes: HashMap<Vec<u8>, Hash>,
}

/// How to unpack.
#[derive(Default)]
pub struct Options<'a> {
    /// Owner (uid, gid) of everything written; `None`: the writer's.
    pub owner: Option<(u32, u32)>,
    /// Compute each file's digest while writing it.
    pub hash: bool,
    /// Checked between entries and data chunks.
    pub stop: Option<&'a AtomicBool>,
    /// Hears (data bytes written, files written) as they grow.
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

/// Unpacks a whole archive into `root` (which must exist).
pub fn unpack(input: impl Read, root: &Path) -> Result<Unpacked, UnpackError> {
    unpack_with(input, root, Options::default())
}

/// Unpacks a whole archive into `root` (which must exist), as `opts` says.
pub fn unpack_with(
    input: impl Read,
    root: &Path,
    mut opts: Options<'_>,
) -> Result<Unpacked, UnpackError> {
    let mut reader = Reader::new(input);
    let mut stats = Unpacked::default();
    let mut dirs: Vec<(PathBuf, i64)> = Vec::new();
    // Directories of the tree known to be real directories: checked once.
    // None of the archive's entries can turn one into anything else (an
    // entry never replaces a directory), so the check holds.
    let mut real_dirs: HashSet<PathBuf> = HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    let stopped = |opts: &Options<'_>| opts.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    let owner = opts.owner;
    while let Some(entry) = reader.next_entry()? {
        if stopped(&opts) {
            return Err(UnpackError::Stopped);
        }
        let shown = String::from_utf8_lossy(&entry.path)
            .escape_debug()
            .to_string();
        let refused = |reason| UnpackError::Refused {
            path: shown.clone(),
            reason,
        };
        let rel = safe_relative(&entry.path)
            .ok_or_else(|| refused("its path leaves the tree (absolute, or with ..)"))?;
        if rel.as_os_str().is_empty() {
            // The tree's root itself: only its mode and mtime.
            if entry.kind == Kind::Directory {
                dirs.push((root.to_owned(), entry.mtime));
                set_mode(root, entry.mode, &shown)?;
                chown(root, owner, &shown)?;
            }
            continue;
        }
        let target = root.join(&rel);
        check_parents(root, &rel, &mut real_dirs)
            .map_err(|_| refused("a directory on its path is a symlink or not a directory"))?;
        let write_err = |source| UnpackError::Write {
            path: shown.clone(),
            source,
        };
        match entry.kind {
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                return Err(refused("device files and fifos are not accepted"))
            }
            Kind::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(refused(
                            "it would replace a file or symlink with a directory",
                        ))
                    }
                    Err(_) => ensure_dir(&target).map_err(write_err)?,
                }
                set_mode(&target, entry.mode, &shown)?;
                chown(&target, owner, &shown)?;
                dirs.push((target, entry.mtime));
                real_dirs.insert(rel.clone());
            }
            Kind::Symlink => {
                let link = entry.link.clone().unwrap_or_default();
                make_room(&target).map_err(|_| refused("it would replace a directory"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target).map_err(write_err)?;
                chown(&target, owner, &shown)?;
                set_mtime(&target, entry.mtime).map_err(write_err)?;
            }
            Kind::HardLink => {
                let link = entry.link.clone().unwrap_or_default();
                let source_rel =
                    safe_relative(&link).ok_or_else(|| refused("it links to outside the tree"))?;
                check_parents(root, &source_rel, &mut real_dirs)
                    .map_err(|_| refused("it links through a symlink"))?;
                let source = root.join(&source_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(refused(
                            "it links to something that is not a file of the tree",
                        ))
                    }
                }
                make_room(&target).map_err(|_| refused("it would replace a directory"))?;
                fs::hard_link(&source, &target).map_err(write_err)?;
            }
            Kind::File => {
                // Usually nothing is there yet: created at once; otherwise
                // what is there is replaced (never a directory).
                let create = || {
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .mode(0o600)
                        .open(&target)
                };
                let mut file = match create() {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        make_room(&target).map_err(|_| refused("it would replace a directory"))?;
                        create()
                    }
                    other => other,
                }
                .map_err(write_err)?;
                let mut hasher = opts.hash.then(Hasher::new);
                let mut sink = Sink {
                    file: &mut file,
                    hasher: hasher.as_mut(),
                    stop: opts.stop,
                    progress: opts.progress.as_deref_mut(),
                    done: stats.bytes,
                    files: stats.files,
                };
                stats.bytes +=
                    write_data(&mut reader, &mut sink, &entry, &mut buf).map_err(|e| match e {
                        DataError::Archive(a) => UnpackError::Archive(a),
                        DataError::Stopped => UnpackError::Stopped,
                        DataError::Io(source) => UnpackError::Write {
                            path: shown.clone(),
                            source,
                        },
                    })?;
                // Owner, mode and times through the open file: no more
                // path lookups. The owner first (a chown clears mode bits).
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(write_err)?;
                }
                file.set_permissions(fs::Permissions::from_mode(kept_mode(entry.mode)))
                    .map_err(write_err)?;
                let time = mtime_of(entry.mtime);
                file.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))
                    .map_err(write_err)?;
                drop(file);
                stats.files += 1;
                if let Some(h) = hasher {
                    stats
                        .hashes
                        .insert(rel.as_os_str().as_bytes().to_vec(), h.finish());
                }
                if let Some(p) = opts.progress.as_deref_mut() {
                    p(stats.bytes, stats.files);
                }
            }
        }
        stats.entries += 1;
    }
    // Directories last, deepest first: writing inside them changed their mtimes.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
    for (dir, mtime) in dirs {
        set_mtime(&dir, mtime).map_err(|source| UnpackError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(stats)
}

enum DataError {
    Archive(TarError),
    Io(std::io::Error),
    Stopped,
}

/// Where a file's data goes: the file, its digest, the progress counters.
struct Sink<'s, 'a> {
    file: &'s mut fs::File,
    hasher: Option<&'s mut Hasher>,
    stop: Option<&'a AtomicBool>,
    progress: Option<&'s mut (dyn FnMut(u64, u64) + 'a)>,
    /// Bytes and files of the archive before this file.
    done: u64,
    files: u64,
}

/// Writes an entry's data; a sparse file's segments where they belong,
/// holes left as holes (and hashed as the zeros they read as). Answers
/// the bytes written.
fn write_data<R: Read>(
    reader: &mut Reader<R>,
    sink: &mut Sink<'_, '_>,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<u64, DataError> {
    let segments = match &entry.sparse {
        Some((_, segments)) => segments.clone(),
        None => vec![(0, entry.size)],
    };
    let mut written = 0;
    // How far the digest has read the file, and where the file's offset is.
    let mut hashed_to = 0u64;
    let mut written_to = 0u64;
    for (offset, len) in segments {
        if sink.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(DataError::Stopped);
        }
        if let Some(h) = sink.hasher.as_deref_mut() {
            h.zeros(offset.saturating_sub(hashed_to));
            hashed_to = hashed_to.max(offset + len);
        }
        // A new file is written from its start: a seek only for a
        // sparse file's later segments.
        if offset != written_to {
            sink.file
                .seek(SeekFrom::Start(offset))
                .map_err(DataError::Io)?;
        }
        written_to = offset + len;
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let n = reader
                .read_data(&mut buf[..want])
                .map_err(DataError::Archive)?;
            if n == 0 {
                return Err(DataError::Archive(TarError::Truncated));
            }
            sink.file.write_all(&buf[..n]).map_err(DataError::Io)?;
            if let Some(h) = sink.hasher.as_deref_mut() {
                h.update(&buf[..n]);
            }
            left -= n as u64;
            written += n as u64;
            if let Some(p) = sink.progress.as_deref_mut() {
                p(sink.done + written, sink.files);
            }
        }
    }
    if let Some((real, _)) = entry.sparse {
        sink.file.set_len(real).map_err(DataError::Io)?;
        if let Some(h) = sink.hasher.as_deref_mut() {
            h.zeros(real.saturating_sub(hashed_to));
        }
    }
    Ok(written)
}

/// The path as a relative path with no `..`, `.` removed; `None` when it
/// is absolute or leaves the tree.
fn safe_relative(raw: &[u8]) -> Option<PathBuf> {
    if raw.contains(&0) {
        return None;
    }
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Every directory between `root` and the entry must be a real directory
/// (a symlink there would let a later entry write outside the tree).
/// Those in `known` were checked before; those checked now join them.
fn check_parents(root: &Path, rel: &Path, known: &mut HashSet<PathBuf>) -> Result<(), ()> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || known.contains(parent) {
        return Ok(());
    }
    let mut at = root.to_owned();
    let mut sub = PathBuf::new();
    for part in parent.components() {
        at.push(part);
        sub.push(part);
        if known.contains(&sub) {
            continue;
        }
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(()),
            Err(_) => ensure_dir(&at).map_err(|_| ())?,
        }
        known.insert(sub.clone());
    }
    Ok(())
}

/// Creates a directory; one that another unpacker of the same tree
/// created meanwhile is fine, anything else there is not.
fn ensure_dir(path: &Path) -> std::io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// Removes a file or symlink where an entry goes; refuses a directory.
fn make_room(target: &Path) -> Result<(), ()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(()),
        Ok(_) => fs::remove_file(target).map_err(|_| ()),
        Err(_) => Ok(()),
    }
}

/// An archive's mtime (seconds since the epoch) as a time.
fn mtime_of(secs: i64) -> std::time::SystemTime {
    let at = std::time::Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        std::time::UNIX_EPOCH + at
    } else {
        std::time::UNIX_EPOCH - at
    }
}

fn chown(path: &Path, owner: Option<(u32, u32)>, shown: &str) -> Result<(), UnpackError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|source| UnpackError::Write {
        path: shown.to_owned(),
        source,
    })
}

fn set_mode(path: &Path, mode: u32, shown: &str) -> Result<(), UnpackError> {
    fs::set_permissions(path, fs::Permissions::from_mode(kept_mode(mode))).map_err(|source| {
        UnpackError::Write {
            path: shown.to_owned(),
            source,
        }
    })
}
