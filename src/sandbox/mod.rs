//! Real servers on demand: private OpenSSH and MariaDB instances on free
//! loopback ports, each in its own directory, started and stopped by the
//! harness (never system services); a generator that fills a source with
//! realistic hosting data; an empty destination; and the comparison helpers
//! that prove a migration. Tests, benchmarks and `hostmig sandbox` use it.
//!
//! Run as root, the source gets a host of its own (`host`: a network
//! namespace joined by a veth pair with private addresses), reachable
//! only over SSH; otherwise everything listens on 127.0.0.1 only. The
//! addresses in the generated panel data (192.0.2.x, 198.51.100.x,
//! 203.0.113.x) are data: nothing here connects to them.

pub mod client;
pub mod command;
pub mod compare;
mod content;
mod data;
pub mod host;
pub mod mariadb;
pub mod model;
mod panel_rows;
pub mod process;
pub mod rng;
pub mod sshd;
mod world;

pub use process::all_pids;
pub use world::{Destination, Network, Profile, Source, SourceLayout, SourceSetup};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "{tool} is missing: install the Debian package {package} (deploy/test.sh installs it)"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not start: {detail}")]
    Start { what: String, detail: String },
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("SQL on {server}: {source}")]
    Sql {
        server: String,
        source: mysql_async::Error,
    },
}

impl SandboxError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let what = what.into();
        move |source| SandboxError::Io { what, source }
    }
}

pub type Result<T> = std::result::Result<T, SandboxError>;

/// Finds a server binary, or says which package brings it.
pub fn require(tool: &'static str, package: &'static str) -> Result<PathBuf> {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let path = PathBuf::from(dir).join(tool);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(SandboxError::MissingTool { tool, package })
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(SandboxError::io("bind a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(SandboxError::io("read a free port"))
}

/// A string as an SQL literal, for the statements that take no parameters
/// (`CREATE USER … IDENTIFIED BY`).
pub(crate) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
