//! A tunnel to a host:port as the source sees it (a direct-tcpip channel),
//! bridged to a socket on 127.0.0.1 that mysql_async connects to. Each
//! local connection gets an SSH session of its own on a thread of its own,
//! so parallel database connections are never serialised by one session.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Login, Options, Session, SshError};
use crate::caps::Meter;

/// Open while the value lives; dropping it closes the listener and every
/// bridged connection.
pub struct Tunnel {
    /// Where to connect locally.
    pub local: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    /// Bytes carried from the remote end to local connections.
    carried: Arc<AtomicU64>,
}

impl Tunnel {
    /// Logs in once now (so a refused login or host key fails here), then
    /// listens on a free loopback port.
    pub fn open(
        login: Login,
        opts: Options,
        remote_host: &str,
        remote_port: u16,
    ) -> Result<Tunnel, SshError> {
        Self::open_metered(login, opts, remote_host, remote_port, Meter::unlimited())
    }

    /// As `open`, every byte from the remote end taken from `meter` (its
    /// caps) before it is read.
    pub fn open_metered(
        login: Login,
        opts: Options,
        remote_host: &str,
        remote_port: u16,
        meter: Arc<Meter>,
    ) -> Result<Tunnel, SshError> {
        let first = Session::connect(&login, &opts)?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| SshError::Failed {
            host: login.target.display(),
            what: "tunnel".into(),
            reason: format!("cannot listen on 127.0.0.1: {e}"),
        })?;
        let local = listener.local_addr().map_err(|e| SshError::Failed {
            host: login.target.display(),
            what: "tunnel".into(),
            reason: e.to_string(),
        })?;
        listener.set_nonblocking(true).ok();
        let stop = Arc::new(AtomicBool::new(false));
        let remote_host = remote_host.to_owned();
        let stop_flag = stop.clone();
        let carried = Arc::new(AtomicU64::new(0));
        let counter = carried.clone();
        let acceptor = std::thread::Builder::new()
            .name("ssh-tunnel".into())
            .spawn(move || {
                accept_loop(
                    listener,
                    first,
                    login,
                    opts,
                    (remote_host, remote_port),
                    stop_flag,
                    (counter, meter),
                )
            })
            .map_err(|e| SshError::Failed {
                host: "tunnel".into(),
                what: "thread".into(),
                reason: e.to_string(),
            })?;
        Ok(Tunnel {
            local,
            stop,
            acceptor: Some(acceptor),
            carried,
        })
    }

    /// MySQL options for a connection through this tunnel. mysql_async
    /// would otherwise switch a loopback connection to the Unix socket the
    /// server names (`prefer_socket`): here that socket is the source's
    /// path, which on this machine is some other server, or nothing.
    pub fn mysql_opts(&self, user: &str, password: &str) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.local.ip().to_string())
            .tcp_port(self.local.port())
            .prefer_socket(false)
            .user(Some(user))
            .pass(Some(password))
    }

    /// Bytes the tunnel carried from the remote end so far.
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    first: Session,
    login: Login,
    opts: Options,
    (remote_host, remote_port): (String, u16),
    stop: Arc<AtomicBool>,
    (carried, meter): (Arc<AtomicU64>, Arc<Meter>),
) {
    let mut spare = Some(first);
    let mut bridges = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((local, _)) => {
                // The session logged in at open serves the first
                // connection, unless it has been quiet a tick since (its
                // source may have gone silent meanwhile).
                let fresh = spare
                    .take()
                    .filter(|s| s.quiet_for().is_some_and(|q| q < opts.tick()));
                let session = match fresh {
                    Some(s) => Ok(s),
                    None => Session::connect(&login, &opts),
                };
                match session {
                    Ok(session) => {
                        let (host, stop, carried, meter) = (
                            remote_host.clone(),
                            stop.clone(),
                            carried.clone(),
                            meter.clone(),
                        );
                        bridges.push(std::thread::spawn(move || {
                            let counted = (&*carried, &*meter);
                            if let Err(e) =
                                bridge(local, &session, (&host, remote_port), &stop, counted)
                            {
                                tracing::debug!(error = %e, "tunnel connection ended with an error");
                            }
                            session.shutdown();
                        }));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "tunnel: cannot open an SSH session for a new connection");
                        let _ = local.shutdown(Shutdown::Both);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!(error = %e, "tunnel: accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        bridges.retain(|b: &JoinHandle<()>| !b.is_finished());
    }
    for b in bridges {
        let _ = b.join();
    }
}

/// Copies both ways between the local socket and a direct-tcpip channel
/// until both sides are closed (or the tunnel stops). Waits in poll(2) for
/// exactly what can make progress: a side is only read while there is
/// room for what it sends, and the SSH socket is waited on in the
/// direction libssh2 says it is blocked in, so a slow reader never makes
/// this loop spin.
/// How often a bridge asks libssh2 whether a keepalive is due.
const KEEPALIVE_CHECK: Duration = Duration::from_secs(1);

fn bridge(
    mut local: TcpStream,
    session: &Session,
    (host, port): (&str, u16),
    stop: &AtomicBool,
    (carried, meter): (&AtomicU64, &Meter),
) -> std::io::Result<()> {
    let mut channel = session
        .raw()
        .channel_direct_tcpip(host, port, None)
        .map_err(|e| std::io::Error::other(e.message().to_owned()))?;
    session.raw().set_blocking(false);
    local.set_nonblocking(true)?;
    local.set_nodelay(true).ok();
    // local → remote, and remote → local: bytes read, and how many of
    // them were written on.
    let mut up = Pending::default();
    let mut down = Pending::default();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut local_eof, mut remote_eof) = (false, false);
    let fds = [local.as_raw_fd(), session.tcp().as_raw_fd()];
    let mut keepalive_checked = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // libssh2 sends a keepalive only when asked, and only once the
        // session was quiet for its interval: a connection that waits
        // long for a query keeps its SSH session (and NATs) alive.
        if keepalive_checked.elapsed() >= KEEPALIVE_CHECK {
            keepalive_checked = Instant::now();
            // Nothing from the source, not even a keepalive's answer, for
            // the stall time: this connection is ended, and the work on it
            // tried again on a new one.
            if let Some(stalled) = session.stalled() {
                tracing::warn!(error = %stalled, "tunnel connection stalled; ending it");
                return Err(stalled);
            }
            match session.raw().keepalive_send() {
                Ok(_) => {}
                // LIBSSH2_ERROR_EAGAIN: the socket is busy; asked again later.
                Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {}
                Err(e) => return Err(std::io::Error::other(e.message().to_owned())),
            }
        }
        let mut moved = false;
        // How long a cap wants the remote side left unread.
        let mut capped: Option<Duration> = None;
        if up.is_empty() && !local_eof {
            match local.read(&mut buf) {
                Ok(0) => {
                    local_eof = true;
                    let _ = channel.send_eof();
                }
                Ok(n) => {
                    up.fill(&buf[..n]);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if !up.is_empty() {
            match channel.write(up.rest()) {
                Ok(n) => {
                    up.consume(n);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        // Gather several SSH packets before writing them on.
        while down.len() < DOWN_BATCH && !remote_eof {
            let granted = match meter.try_acquire(buf.len()) {
                Ok(n) => n,
                Err(wait) => {
                    capped = Some(wait);
                    break;
                }
            };
            let read = channel.read(&mut buf[..granted]);
            meter.settle(granted, *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) if channel.eof() => {
                    remote_eof = true;
                }
                Ok(0) => break,
                Ok(n) => {
                    down.fill(&buf[..n]);
                    carried.fetch_add(n as u64, Ordering::Relaxed);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if !down.is_empty() {
            match local.write(down.rest()) {
                Ok(n) => {
                    down.consume(n);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if remote_eof && down.is_empty() {
            let _ = local.shutdown(Shutdown::Write);
            break;
        }
        if !moved {
            // The SSH socket matters only while there is room to read into
            // or data to send; then in the direction libssh2 is blocked in.
            let want_ssh =
                (down.len() < DOWN_BATCH && !remote_eof && capped.is_none()) || !up.is_empty();
            let ssh_events = if !want_ssh {
                0
            } else {
                match session.raw().block_directions() {
                    ssh2::BlockDirections::Outbound => libc::POLLOUT,
                    ssh2::BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
                    _ => libc::POLLIN,
                }
            };
            let mut local_events = 0;
            if up.is_empty() && !local_eof {
                local_events |= libc::POLLIN;
            }
            if !down.is_empty() {
                local_events |= libc::POLLOUT;
            }
            // Held by a cap: back when it allows the next read.
            let timeout = capped.map_or(50, |w| (w.as_millis() as i32).clamp(1, 50));
            wait(&fds, [local_events, ssh_events], timeout);
        }
    }
    let _ = channel.close();
    Ok(())
}

/// Bytes gathered from the SSH channel before they are written locally.
const DOWN_BATCH: usize = 256 * 1024;

/// Bytes read from one side and not yet all written to the other.
#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    written: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.written == self.data.len()
    }
    fn len(&self) -> usize {
        self.data.len() - self.written
    }
    fn rest(&self) -> &[u8] {
        &self.data[self.written..]
    }
    fn fill(&mut self, bytes: &[u8]) {
        if self.is_empty() {
            self.data.clear();
            self.written = 0;
        }
        self.data.extend_from_slice(bytes);
    }
    fn consume(&mut self, n: usize) {
        self.written += n;
        if self.is_empty() {
            self.data.clear();
            self.written = 0;
        }
    }
}

/// Sleeps until one of the sockets is ready for the events asked of it,
/// at most `timeout_ms`.
fn wait(fds: &[i32; 2], events: [libc::c_short; 2], timeout_ms: i32) {
    let mut polls = [
        libc::pollfd {
            fd: fds[0],
            events: events[0],
            revents: 0,
        },
        libc::pollfd {
            fd: fds[1],
            events: events[1],
            revents: 0,
        },
    ];
    // SAFETY: polls is a valid array of pollfd for the duration of the call.
    unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
}
