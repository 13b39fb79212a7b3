//! SSH to a source (ssh2): connecting with a timeout, the host-key policy
//! of DESIGN.md §2 against hostmig's own known_hosts, password or key
//! login, commands, small files over SFTP, and tunnels for database
//! connections. Everything here blocks: call it from a thread of its own,
//! never from an actix event loop.

pub mod known_hosts;
mod tunnel;

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use tunnel::Tunnel;

use crate::config::HostKeyPolicy;
use crate::secret::Secret;
use known_hosts::Verdict;

/// Where to connect: a packet's `host` or `host:port` (port 22 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `name`, `name:port`, `[v6]` or `[v6]:port`.
    pub fn parse(text: &str) -> Option<Target> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inner, after) = rest.split_once(']')?;
            match after {
                "" => (inner, None),
                _ => (inner, Some(after.strip_prefix(':')?)),
            }
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0)?,
            None => 22,
        };
        (!host.is_empty()).then(|| Target {
            host: host.to_owned(),
            port,
        })
    }

    /// How errors name the host: as the packet wrote it.
    pub fn display(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How to log in.
#[derive(Clone)]
pub enum Credential {
    Password(Secret),
    /// A private key file (without passphrase).
    Key(PathBuf),
}

#[derive(Clone)]
pub struct Login {
    pub target: Target,
    pub user: String,
    pub credential: Credential,
}

/// The SSH settings of the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Longest any single blocking call may wait for the source.
    pub io_timeout: Duration,
    /// A connection that carried nothing (no payload, no answer to a
    /// keepalive) this long while work waits on it is stalled
    /// (`migrations.stall_s`).
    pub stall: Duration,
}

impl Options {
    /// How often a watched read looks at the connection, and the
    /// keepalive interval: a quarter of the stall time, 1 to 30 s.
    pub fn tick(&self) -> Duration {
        (self.stall / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl From<&crate::config::Config> for Options {
    fn from(config: &crate::config::Config) -> Self {
        let ssh = &config.ssh;
        Options {
            known_hosts: ssh.known_hosts.clone(),
            policy: ssh.host_key_policy,
            connect_timeout: Duration::from_secs(ssh.connect_timeout_s),
            // A call that waits this long on a silent source is stalled too.
            io_timeout: config.migrations.stall,
            stall: config.migrations.stall,
        }
    }
}

/// CONFIG.md's `migrations.stall_s`.
pub const DEFAULT_STALL: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("host {host} is not accessible: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("the host key of {host} is unknown ({found}); add it to {known_hosts} or set ssh.host_key_policy = \"accept-new\"")]
    HostKeyUnknown {
        host: String,
        found: String,
        known_hosts: PathBuf,
    },
    #[error("the host key of {host} has changed: expected {expected}, found {found}; if the change is legitimate, remove the old key from {known_hosts}")]
    HostKeyChanged {
        host: String,
        expected: String,
        found: String,
        known_hosts: PathBuf,
    },
    #[error("SSH login as {user} on {host} was refused; check the login and password, or the key")]
    AuthFailed { host: String, user: String },
    #[error("cannot read the SSH identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("cannot use the known_hosts file {path}: {source}")]
    KnownHosts {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SSH {what} on {host} failed: {reason}")]
    Failed {
        host: String,
        what: String,
        reason: String,
    },
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// One logged-in SSH session: one thread of work uses it at a time.
pub struct Session {
    tick: Duration,
    io_timeout: Duration,
    stall: Duration,
    inner: ssh2::Session,
    tcp: TcpStream,
    host: String,
}

/// Ciphers in order of preference (libssh2 drops those it lacks).
const CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";

/// SSH keepalives are due after this many idle seconds; the tunnel's
/// bridges send them (`Session::keepalive`).
pub const SSH_KEEPALIVE_S: u32 = 30;
/// TCP keepalive probes on the SSH socket: first after this idle time,
/// then every interval, the connection dropped after that many unanswered.
const TCP_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const TCP_KEEPALIVE_PROBES: u32 = 3;

/// Serialises additions to known_hosts files within this process.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

impl Session {
    /// Connects, verifies the host key by the policy, and logs in.
    pub fn connect(login: &Login, opts: &Options) -> Result<Session, SshError> {
        let host = login.target.display();
        let unreachable = |reason: String| SshError::Unreachable {
            host: host.clone(),
            reason,
        };
        let addrs: Vec<_> = (login.target.host.as_str(), login.target.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .collect();
        let mut last = "no address".to_owned();
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, opts.connect_timeout) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = describe_io(&e),
            }
        }
        let tcp = tcp.ok_or_else(|| unreachable(last))?;
        tcp.set_nodelay(true).ok();
        // A source that vanished (powered off, its link down) is noticed
        // by the kernel on an idle connection after about a minute.
        let probes = socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE_IDLE)
            .with_interval(TCP_KEEPALIVE_INTERVAL)
            .with_retries(TCP_KEEPALIVE_PROBES);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&probes).ok();
        let failed = |what: &str, e: ssh2::Error| SshError::Failed {
            host: host.clone(),
            what: what.to_owned(),
            reason: e.message().to_owned(),
        };
        let mut inner = ssh2::Session::new().map_err(|e| failed("session set-up", e))?;
        inner.set_tcp_stream(tcp.try_clone().map_err(|e| unreachable(e.to_string()))?);
        inner.set_timeout(opts.io_timeout.as_millis().min(u32::MAX as u128) as u32);
        // ChaCha20-Poly1305 first: libssh2 runs AES (GCM and CTR) through
        // OpenSSL one 16-byte block per call, which costs more than its own
        // ChaCha20 does on whole packets. Receiving 1 GB here: ChaCha20 2.6
        // s of CPU on our side (4.4 s with the sender's), AES-128-GCM 3.5
        // to 3.9 s (4.7 to 5.0). AES-GCM stays next, for servers that
        // refuse ChaCha20 (FIPS mode).
        for direction in [ssh2::MethodType::CryptCs, ssh2::MethodType::CryptSc] {
            inner
                .method_pref(direction, CIPHERS)
                .map_err(|e| failed("cipher preferences", e))?;
        }
        inner
            .handshake()
            .map_err(|e| unreachable(format!("SSH handshake failed: {}", e.message())))?;
        // Answered keepalives show a quiet connection is alive (`quiet_for`).
        let interval = (opts.tick().as_secs() as u32).clamp(2, SSH_KEEPALIVE_S);
        inner.set_keepalive(true, interval);
        let session = Session {
            inner,
            tcp,
            host,
            tick: opts.tick(),
            io_timeout: opts.io_timeout,
            stall: opts.stall,
        };
        session.verify_host_key(&login.target, opts)?;
        session.authenticate(login)?;
        Ok(session)
    }

    fn verify_host_key(&self, target: &Target, opts: &Options) -> Result<(), SshError> {
        let (key, kind) = self.inner.host_key().ok_or_else(|| SshError::Failed {
            host: self.host.clone(),
            what: "host key exchange".into(),
            reason: "the server sent no host key".into(),
        })?;
        let found = known_hosts::fingerprint(key);
        let entry = known_hosts::host_entry(&target.host, target.port);
        let kh_err = |source| SshError::KnownHosts {
            path: opts.known_hosts.clone(),
            source,
        };
        let _guard = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let text = match std::fs::read_to_string(&opts.known_hosts) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(kh_err(e)),
        };
        match known_hosts::check(&text, &entry, key) {
            Verdict::Known => Ok(()),
            Verdict::Changed { expected } => Err(SshError::HostKeyChanged {
                host: self.host.clone(),
                expected: expected.join(" or "),
                found,
                known_hosts: opts.known_hosts.clone(),
            }),
            Verdict::Unknown if opts.policy == HostKeyPolicy::Strict => {
                Err(SshError::HostKeyUnknown {
                    host: self.host.clone(),
                    found,
                    known_hosts: opts.known_hosts.clone(),
                })
            }
            Verdict::Unknown => {
                use std::io::Write;
                if let Some(dir) = opts.known_hosts.parent() {
                    std::fs::create_dir_all(dir).map_err(kh_err)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&opts.known_hosts)
                    .map_err(kh_err)?;
                file.write_all(known_hosts::line(&entry, key_type_name(kind), key).as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(kh_err)?;
                tracing::info!(host = %self.host, fingerprint = %found, "recorded a new host key (accept-new)");
                Ok(())
            }
        }
    }

    fn authenticate(&self, login: &Login) -> Result<(), SshError> {
        let refused = || SshError::AuthFailed {
            host: self.host.clone(),
            user: login.user.clone(),
        };
        match &login.credential {
            Credential::Password(pw) => self
                .inner
                .userauth_password(&login.user, pw.expose())
                .map_err(|_| refused())?,
            Credential::Key(path) => {
                std::fs::metadata(path).map_err(|e| SshError::Identity {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                self.inner
                    .userauth_pubkey_file(&login.user, None, path, None)
                    .map_err(|_| refused())?
            }
        }
        if self.inner.authenticated() {
            Ok(())
        } else {
            Err(refused())
        }
    }

    fn failed(&self, what: &str, reason: impl ToString) -> SshError {
        SshError::Failed {
            host: self.host.clone(),
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// Runs a command whose output is small (at most `max_output` bytes of
    /// stdout are kept; stderr's first 64 KiB).
    pub fn exec(&self, command: &str, max_output: usize) -> Result<Output, SshError> {
        let what = "command";
        let mut channel = self
            .inner
            .channel_session()
            .map_err(|e| self.failed(what, e.message()))?;
        channel
            .exec(command)
            .map_err(|e| self.failed(what, e.message()))?;
        let stdout = read_bounded(&mut channel, max_output).map_err(|e| self.failed(what, e))?;
        let stderr =
            read_bounded(&mut channel.stderr(), 64 * 1024).map_err(|e| self.failed(what, e))?;
        channel
            .wait_close()
            .map_err(|e| self.failed(what, e.message()))?;
        let status = channel
            .exit_status()
            .map_err(|e| self.failed(what, e.message()))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Reads a small file over SFTP; refuses one larger than `max` bytes.
    pub fn read_file(&self, path: &Path, max: u64) -> Result<Vec<u8>, SshError> {
        let what = format!("reading {}", path.display());
        let sftp = self
            .inner
            .sftp()
            .map_err(|e| self.failed(&what, e.message()))?;
        let mut file = sftp
            .open(path)
            .map_err(|e| self.failed(&what, e.message()))?;
        let size = file.stat().ok().and_then(|s| s.size).unwrap_or(0);
        if size > max {
            return Err(self.failed(
                &what,
                format!("the file has {size} bytes, more than the {max} expected"),
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        (&mut file)
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.failed(&what, e))?;
        if out.len() as u64 > max {
            return Err(self.failed(&what, format!("the file is larger than {max} bytes")));
        }
        Ok(out)
    }

    /// Breaks any call blocked on this session (for stopping a migration).
    pub fn shutdown(&self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }

    /// A handle another thread can use to break this session's blocked
    /// calls (`shutdown` on the socket), for stopping a transfer.
    pub fn breaker(&self) -> Option<TcpStream> {
        self.tcp.try_clone().ok()
    }

    pub(crate) fn raw(&self) -> &ssh2::Session {
        &self.inner
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// How long since the source last sent anything on this connection
    /// (payload, or an answer to a keepalive), as the kernel saw it.
    pub fn quiet_for(&self) -> Option<Duration> {
        use std::os::fd::AsRawFd;
        let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: a valid socket, and a buffer of the size given.
        let rc = unsafe {
            libc::getsockopt(
                self.tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: getsockopt succeeded; the struct was zeroed before.
        let info = unsafe { info.assume_init() };
        Some(Duration::from_millis(info.tcpi_last_data_recv as u64))
    }

    /// The configured stall time.
    pub fn stall(&self) -> Duration {
        self.stall
    }

    /// The stall, when this connection has carried nothing for the stall
    /// time: the error a watched read fails with.
    pub fn stalled(&self) -> Option<std::io::Error> {
        let quiet = self.quiet_for()?;
        (quiet >= self.stall).then(|| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{STALLED} {} s", quiet.as_secs()),
            )
        })
    }
}

/// How a stall's error begins; the status says it as the fault.
pub const STALLED: &str = "stalled for";

/// A command's channel whose reads never wait forever on a source that
/// went silent, nor give up on one that is only slow: a read that waits a
/// tick sends a keepalive and waits again, until the connection has
/// carried nothing for the stall time (`Session::stalled`).
pub struct Watched<'a> {
    pub channel: ssh2::Channel,
    session: &'a Session,
}

impl<'a> Watched<'a> {
    pub fn new(session: &'a Session, channel: ssh2::Channel) -> Self {
        session.inner.set_timeout(millis(session.tick));
        Watched { channel, session }
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        self.session
            .inner
            .set_timeout(millis(self.session.io_timeout));
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.channel.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if let Some(stalled) = self.session.stalled() {
                        return Err(stalled);
                    }
                    let _ = self.session.inner.keepalive_send();
                }
                other => return other,
            }
        }
    }
}

fn read_bounded(reader: &mut impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&buf[..n.min(room)]);
    }
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            "connection timed out".into()
        }
        _ => e.to_string(),
    }
}

fn key_type_name(kind: ssh2::HostKeyType) -> &'static str {
    match kind {
        ssh2::HostKeyType::Rsa => "ssh-rsa",
        ssh2::HostKeyType::Dss => "ssh-dss",
        ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
        ssh2::HostKeyType::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &str| Target::parse(s).map(|t| (t.host, t.port));
        assert_eq!(t("192.0.2.7"), Some(("192.0.2.7".into(), 22)));
        assert_eq!(t("src.example:2222"), Some(("src.example".into(), 2222)));
        assert_eq!(t("[::1]:2200"), Some(("::1".into(), 2200)));
        assert_eq!(t("[::1]"), Some(("::1".into(), 22)));
        assert_eq!(t("h:0"), None);
        assert_eq!(t(":22"), None);
        assert_eq!(
            Target::parse("h:2222").map(|t| t.display()).as_deref(),
            Some("h:2222")
        );
        assert_eq!(
            Target::parse("h").map(|t| t.display()).as_deref(),
            Some("h")
        );
    }
}
