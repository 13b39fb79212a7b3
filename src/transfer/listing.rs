//! Listings of a content tree on either side (type, mode, size, mtime,
//! inode, link target per path) and content hashes (BLAKE2b-512, `b2sum`
//! on the source, the same digest computed while unpacking here). The
//! rsync transport compares listings to find what to send and delete;
//! verification compares them after the copy.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::commands::{self, enter, LIST_FROM_STDIN};
use crate::ssh::Session;

/// Hex BLAKE2b-512 of a file's content.
pub type Hash = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets: never copied.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub ino: u64,
    pub nlink: u64,
    pub link: Vec<u8>,
}

/// Relative path bytes (the root is `""`) → node, in path order.
pub type Listing = BTreeMap<Vec<u8>, Node>;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the listing thread failed")]
    Thread,
    #[error("listing {what} on the source failed: {reason}")]
    Remote { what: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
}

/// The source's tree at `dir` (empty when it does not exist).
pub fn remote(session: &Session, dir: &Path) -> Result<Listing, ListError> {
    let command = format!(
        "{}find . -printf '%y\\0%m\\0%s\\0%T@\\0%i\\0%n\\0%p\\0%l\\0'",
        enter(dir)
    );
    let mut out = Listing::new();
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(8);
    stream_command(session, &command, None, &mut |record| {
        fields.push(record);
        if fields.len() == 8 {
            let f = std::mem::take(&mut fields);
            if let Some((path, node)) = parse_record(f) {
                out.insert(path, node);
            }
        }
    })
    .map_err(|reason| ListError::Remote {
        what: dir.display().to_string(),
        reason,
    })?;
    Ok(out)
}

fn parse_record(f: Vec<Vec<u8>>) -> Option<(Vec<u8>, Node)> {
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let kind = match f[0].as_slice() {
        b"f" => NodeKind::File,
        b"d" => NodeKind::Dir,
        b"l" => NodeKind::Symlink,
        _ => NodeKind::Other,
    };
    let mode = u32::from_str_radix(&text(&f[1])?, 8).ok()?;
    let size = text(&f[2])?.parse().ok()?;
    let mtime = text(&f[3])?.split('.').next()?.parse().ok()?;
    let ino = text(&f[4])?.parse().ok()?;
    let nlink = text(&f[5])?.parse().ok()?;
    let path = strip_dot(&f[6]);
    let link = f[7].clone();
    Some((
        path,
        Node {
            kind,
            mode,
            size,
            mtime,
            ino,
            nlink,
            link,
        },
    ))
}

/// `./a/b` → `a/b`; `.` → ``.
pub fn strip_dot(p: &[u8]) -> Vec<u8> {
    if p == b"." {
        Vec::new()
    } else {
        p.strip_prefix(b"./").unwrap_or(p).to_vec()
    }
}

/// `a/b` → `./a/b`; `` → `.`: how paths are named to tools on the source.
pub fn dotted(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        b".".to_vec()
    } else {
        [b"./".as_slice(), p].concat()
    }
}

/// BLAKE2b-512 of the given files of the source's tree (`None`: all),
/// at the lowest CPU priority: the source is a live server, and the copy
/// itself goes first.
pub fn remote_hashes(
    session: &Session,
    dir: &Path,
    paths: Option<&[Vec<u8>]>,
) -> Result<HashMap<Vec<u8>, Hash>, ListError> {
    let (command, input) = match paths {
        None => (
            format!(
                "{}find . -type f -print0 | xargs -0 -r nice -n 19 b2sum -z",
                enter(dir)
            ),
            None,
        ),
        Some(paths) => {
            let mut list = Vec::new();
            for p in paths {
                list.extend_from_slice(&dotted(p));
                list.push(0);
            }
            (
                format!(
                    "{}{}xargs -0 -r nice -n 19 b2sum -z < \"$hostmig_list\"",
                    enter(dir),
                    LIST_FROM_STDIN
                ),
                Some(list),
            )
        }
    };
    let mut out = HashMap::new();
    stream_command(session, &command, input.as_deref(), &mut |record| {
        // `HASH  ./path`
        if let Some(pos) = record.windows(2).position(|w| w == b"  ") {
            if let Ok(hash) = std::str::from_utf8(&record[..pos]) {
                out.insert(strip_dot(&record[pos + 2..]), hash.to_owned());
            }
        }
    })
    .map_err(|reason| ListError::Remote {
        what: format!("hashes of {}", dir.display()),
        reason,
    })?;
    Ok(out)
}

/// Runs `command`, feeding it `input` (then EOF), handing every
/// NUL-terminated record of its stdout to `each`. Errors name the exit
/// status and stderr.
fn stream_command(
    session: &Session,
    command: &str,
    input: Option<&[u8]>,
    each: &mut dyn FnMut(Vec<u8>),
) -> Result<(), String> {
    let channel = commands::start(session, command, input)?;
    let mut channel = crate::ssh::Watched::new(session, channel);
    {
        let mut reader = BufReader::with_capacity(256 * 1024, &mut channel);
        loop {
            let mut record = Vec::new();
            let n = reader
                .read_until(0, &mut record)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            if record.last() == Some(&0) {
                record.pop();
            }
            each(record);
        }
    }
    match commands::finish(&mut channel.channel)? {
        (0, _) => Ok(()),
        (status, stderr) => Err(format!(
            "exit status {status}: {}",
            stderr.chars().take(300).collect::<String>()
        )),
    }
}

/// BLAKE2b-512 of the given files of the destination's tree at `root`,
/// read in blocks.
pub fn local_hashes(root: &Path, paths: &[Vec<u8>]) -> Result<HashMap<Vec<u8>, Hash>, ListError> {
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 256 * 1024];
    for p in paths {
        let path = root.join(std::ffi::OsStr::from_bytes(p));
        let err = |source| ListError::Local {
            path: path.display().to_string(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(err)?;
        let mut hasher = Hasher::new();
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        out.insert(p.clone(), hasher.finish());
    }
    Ok(out)
}

/// The destination's tree at `root` (empty when it does not exist).
pub fn local(root: &Path) -> Result<Listing, ListError> {
    let mut out = Listing::new();
    match fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) | Err(_) => return Ok(out),
    }
    let mut stack = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(std::ffi::OsStr::from_bytes(&rel))
        };
        let err = |source| ListError::Local {
            path: path.display().to_string(),
            source,
        };
        let meta = fs::symlink_metadata(&path).map_err(err)?;
        let node = node_of(&path, &meta).map_err(err)?;
        if node.kind == NodeKind::Dir {
            for entry in fs::read_dir(&path).map_err(err)? {
                let entry = entry.map_err(err)?;
                let name = entry.file_name().into_vec();
                let child = if rel.is_empty() {
                    name
                } else {
                    [rel.as_slice(), b"/", &name].concat()
                };
                stack.push(child);
            }
        }
        out.insert(rel, node);
    }
    Ok(out)
}

pub fn node_of(path: &Path, meta: &fs::Metadata) -> std::io::Result<Node> {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else {
        NodeKind::Other
    };
    let link = if kind == NodeKind::Symlink {
        fs::read_link(path)?.into_os_string().into_vec()
    } else {
        Vec::new()
    };
    Ok(Node {
        kind,
        mode: meta.mode() & 0o7777,
        size: meta.size(),
        mtime: meta.mtime(),
        ino: meta.ino(),
        nlink: meta.nlink(),
        link,
    })
}

/// Hard-link groups of a listing: inode → its paths (only inodes with
/// more than one path in the tree).
pub fn link_groups(listing: &Listing) -> HashMap<u64, Vec<Vec<u8>>> {
    let mut groups: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    for (path, node) in listing {
        if node.kind == NodeKind::File && node.nlink > 1 {
            groups.entry(node.ino).or_default().push(path.clone());
        }
    }
    groups.retain(|_, paths| paths.len() > 1);
    groups
}

/// A path as people read it: lossy UTF-8, control characters escaped.
pub fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    String::from_utf8_lossy(path).escape_debug().to_string()
}

/// The content digest both sides compute (BLAKE2b-512, as `b2sum`).
pub struct Hasher(blake2b_simd::State);

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Hasher(blake2b_simd::Params::new().hash_length(64).to_state())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Feeds `n` zero bytes (a sparse file's hole).
    pub fn zeros(&mut self, mut n: u64) {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.update(&ZEROS[..k]);
            n -= k as u64;
        }
    }

    pub fn finish(self) -> Hash {
        self.0.finalize().to_hex().to_string()
    }
}

/// Listings written by hand, for the tests of what reads them.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub fn node(kind: NodeKind, size: u64, mtime: i64, ino: u64, nlink: u64) -> Node {
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

    pub fn listing(entries: &[(&str, Node)]) -> Listing {
        entries
            .iter()
            .map(|(p, n)| (p.as_bytes().to_vec(), n.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(strip_dot(b"."), b"");
        assert_eq!(strip_dot(b"./a/b"), b"a/b");
        assert_eq!(dotted(b""), b".");
        assert_eq!(dotted(b"a\nb"), b"./a\nb");
    }

    #[test]
    fn digest_matches_b2sum_of_known_input() {
        // `printf abc | b2sum`
        let mut h = Hasher::new();
        h.update(b"abc");
        assert_eq!(h.finish(), "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
        let mut z = Hasher::new();
        z.zeros(100_000);
        let mut y = Hasher::new();
        y.update(&vec![0u8; 100_000]);
        assert_eq!(z.finish(), y.finish());
    }

    #[test]
    fn records_parse() {
        let f: Vec<Vec<u8>> = [
            "f",
            "4755",
            "12",
            "1700000000.5000000000",
            "42",
            "2",
            "./a b",
            "",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let (path, node) = parse_record(f).expect("parses");
        assert_eq!(path, b"a b");
        assert_eq!(node.mode, 0o4755);
        assert_eq!(node.mtime, 1_700_000_000);
        assert_eq!((node.size, node.ino, node.nlink), (12, 42, 2));
    }
}
