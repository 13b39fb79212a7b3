//! The `archive` transport's first half: a tar stream produced on the
//! source over an SSH exec channel, written into a staging file, and
//! checked (the source command exited 0, the archive ended properly)
//! before anything trusts it. A stop breaks the transfer at once and
//! leaves no partial file behind. Blocking: run it on a thread of its own.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ssh::Session;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the transfer was stopped")]
    Stopped,
    #[error("tar on the source failed (exit status {status}): {stderr}")]
    RemoteFailed { status: i32, stderr: String },
    #[error(
        "the archive from the source is incomplete ({bytes} bytes received); the transfer was cut"
    )]
    Incomplete { bytes: u64 },
    #[error("the SSH channel failed: {0}")]
    Channel(String),
    #[error("cannot write the staging file {path}: {source}")]
    Staging {
        path: String,
        source: std::io::Error,
    },
}

/// A POSIX shell word: the text in single quotes.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The source command that writes the tree at `dir` as a tar stream, its
/// entries relative to the tree (`.`, `./a`, ...); nothing when the tree
/// does not exist.
pub fn tar_tree_command(dir: &Path) -> String {
    super::listing::bounded_stderr(&format!(
        "{}tar --sparse --numeric-owner -cf - .",
        super::listing::enter(dir)
    ))
}

/// Streams what `command` (see `tar_tree_command`) prints into
/// `staging_file` (created anew, mode 0600); answers the bytes received.
/// `progress` hears the running total; `stop` is checked between chunks
/// (and a stopper may also break the session's socket to end a blocked
/// read).
pub fn fetch(
    session: &Session,
    command: &str,
    staging_file: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, FetchError> {
    let result = fetch_inner(session, command, staging_file, stop, progress);
    if result.is_err() {
        let _ = std::fs::remove_file(staging_file);
    }
    result
}

fn fetch_inner(
    session: &Session,
    command: &str,
    staging_file: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, FetchError> {
    let channel_err = |e: ssh2::Error| FetchError::Channel(e.message().to_owned());
    let staging_err = |source| FetchError::Staging {
        path: staging_file.display().to_string(),
        source,
    };
    let mut channel = session.raw().channel_session().map_err(channel_err)?;
    channel.exec(command).map_err(channel_err)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(staging_file)
        .map_err(staging_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    // The last 1,024 bytes seen: a proper archive ends with two zero blocks.
    let mut tail = Vec::with_capacity(1024);
    loop {
        if stop.load(Ordering::Relaxed) {
            session.shutdown();
            return Err(FetchError::Stopped);
        }
        let n = match channel.read(&mut buf) {
            Ok(n) => n,
            Err(_) if stop.load(Ordering::Relaxed) => return Err(FetchError::Stopped),
            Err(e) => return Err(FetchError::Channel(e.to_string())),
        };
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(staging_err)?;
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 1024 {
            tail.drain(..tail.len() - 1024);
        }
        progress(total);
    }
    file.sync_all().map_err(staging_err)?;
    let mut stderr = String::new();
    let _ = channel.stderr().take(64 * 1024).read_to_string(&mut stderr);
    channel.wait_close().map_err(channel_err)?;
    let status = channel.exit_status().map_err(channel_err)?;
    if status != 0 {
        return Err(FetchError::RemoteFailed {
            status,
            stderr: stderr.trim().chars().take(500).collect(),
        });
    }
    if !total.is_multiple_of(512) || tail.len() < 1024 || tail.iter().any(|&b| b != 0) {
        return Err(FetchError::Incomplete { bytes: total });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a.example"), "'a.example'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("/var/www/vhosts"), "'/var/www/vhosts'");
    }
}
