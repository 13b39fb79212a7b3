//! The source's own host: a network namespace of the sandbox's, joined to
//! this machine by a veth pair with private addresses the sandbox assigns.
//! The source's sshd listens on the namespace's veth address and its
//! database servers on the namespace's loopback only (their Unix sockets in
//! a private mount), so hostmig reaches them exactly as it reaches a
//! remote server: over SSH. The sandbox's own oracles reach those servers
//! from a thread that entered the namespace, never through a port opened
//! for them. The link can be shaped (a token bucket in both directions)
//! and the source's processes pinned to cores of their own.
//!
//! Names and addresses are unique per sandbox (an owner file, created
//! exclusively, claims them), so sandboxes run in parallel; whatever a
//! killed run left (namespace, veth, qdisc) is swept when the next one
//! starts. Needs root; [`SourceHost::available`] says whether this process
//! can make one.

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::process::run;
use super::{require, Result, SandboxError};

/// Where owner files live: one per namespace, naming the process that
/// made it (pid and start time), created before the namespace and removed
/// after it.
const OWNERS: &str = "/run/hostmig-sandbox";
/// Prefix of the namespaces' names.
const NETNS_PREFIX: &str = "hostmig-sb-";
/// Prefix of the veth names (`hmsb<n>d` on this side, `hmsb<n>s` in the
/// namespace).
const LINK_PREFIX: &str = "hmsb";
/// Slots: each has a /30 of 10.250.0.0/16.
const SLOTS: u32 = 16_384;

pub struct SourceHost {
    pub slot: u32,
    /// The namespace's name (`ip netns`).
    pub name: String,
    /// The veth end on the destination's side.
    pub link: String,
    /// The veth end inside the namespace.
    pub peer: String,
    /// The destination's address on the link.
    pub destination_addr: Ipv4Addr,
    /// The source's address: where its sshd listens.
    pub source_addr: Ipv4Addr,
    /// The link's rate in bits per second, when shaped.
    shaped: std::sync::Mutex<Option<u64>>,
    ns: File,
    /// A runtime driven by a thread that entered the namespace: sockets
    /// its tasks open are the namespace's, whichever runtime then uses
    /// them.
    handle: tokio::runtime::Handle,
    worker: Option<std::thread::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SourceHost {
    /// Whether this process may make namespaces (it runs as root).
    pub fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Sweeps what killed sandboxes left, then claims a free slot and
    /// makes its namespace and link; fails when not root.
    pub fn create() -> Result<Arc<SourceHost>> {
        if !Self::available() {
            return Err(SandboxError::Start {
                what: "the source's network namespace".into(),
                detail: "it needs root: run as root (sudo) to give the source a host of its own"
                    .into(),
            });
        }
        require("ip", "iproute2")?;
        sweep();
        std::fs::create_dir_all(OWNERS).map_err(SandboxError::io(format!("create {OWNERS}")))?;
        // Each create in a process starts past the last one's slot, so a
        // slot just freed is not taken again at once by a sandbox beside
        // it (its name would look like the old one still there).
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = std::process::id().wrapping_mul(7919).wrapping_add(nth) % SLOTS;
        for i in 0..SLOTS {
            let slot = (first + i) % SLOTS;
            let owner = owner_file(slot);
            let claimed = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&owner);
            let mut file = match claimed {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SandboxError::io(format!("create {}", owner.display()))(e)),
            };
            file.write_all(format!("{}\n", me()).as_bytes())
                .map_err(SandboxError::io(format!("write {}", owner.display())))?;
            drop(file);
            return match Self::build(slot) {
                Ok(host) => Ok(Arc::new(host)),
                Err(e) => {
                    remove(slot);
                    Err(e)
                }
            };
        }
        Err(SandboxError::Start {
            what: "the source's network namespace".into(),
            detail: format!("all {SLOTS} slots under {OWNERS} are taken"),
        })
    }

    fn build(slot: u32) -> Result<SourceHost> {
        let (name, link, peer) = names(slot);
        let base = 4 * slot;
        let addr = |n: u8| Ipv4Addr::new(10, 250, (base >> 8) as u8, (base & 0xff) as u8 + n);
        let (destination_addr, source_addr) = (addr(1), addr(2));
        ip(&["netns", "add", &name])?;
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", &peer, "netns", &name,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{destination_addr}/30"),
            "dev",
            &link,
        ])?;
        ip(&["link", "set", &link, "up"])?;
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{source_addr}/30"),
            "dev",
            &peer,
        ])?;
        ip(&["-n", &name, "link", "set", &peer, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        // The route to the source must be the link, not some network of
        // this machine's that happens to hold the same addresses.
        let route = ip(&["route", "get", &source_addr.to_string()])?;
        if !route.split_whitespace().any(|w| w == link) {
            return Err(SandboxError::Start {
                what: "the source's network namespace".into(),
                detail: format!(
                    "the route to {source_addr} does not go through {link}: {}",
                    route.trim()
                ),
            });
        }
        let ns_path = format!("/run/netns/{name}");
        let ns = File::open(&ns_path).map_err(SandboxError::io(format!("open {ns_path}")))?;
        let (handle, worker, shutdown) = runtime_inside(&ns, &name)?;
        Ok(SourceHost {
            slot,
            name,
            link,
            peer,
            destination_addr,
            source_addr,
            shaped: std::sync::Mutex::new(None),
            ns,
            handle,
            worker: Some(worker),
            shutdown: Some(shutdown),
        })
    }

    /// The namespace, for a child process to enter before it runs.
    pub fn netns_fd(&self) -> RawFd {
        self.ns.as_raw_fd()
    }

    /// A MySQL connection opened from inside the namespace (to a server
    /// on its loopback), usable from any runtime.
    pub async fn connect(
        &self,
        opts: mysql_async::Opts,
    ) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
        self.handle
            .spawn(mysql_async::Conn::new(opts))
            .await
            .unwrap_or_else(|e| {
                Err(mysql_async::Error::Other(
                    format!("the namespace's thread failed: {e}").into(),
                ))
            })
    }

    /// A TCP connection opened from inside the namespace (tests use it to
    /// show what is and is not listening there).
    pub fn tcp_inside(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
        let fd = self.ns.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on this short-lived thread only.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread failed")))
        })
    }

    /// Shapes the link to `bits_per_s` in both directions (a token bucket
    /// on each end); `None` removes the shaping.
    pub fn shape(&self, bits_per_s: Option<u64>) -> Result<()> {
        require("tc", "iproute2")?;
        for (ns, dev) in [(None, &self.link), (Some(&self.name), &self.peer)] {
            let on = |verb: &str| {
                let mut args: Vec<String> = Vec::new();
                if let Some(ns) = ns {
                    args.extend(["-n".to_owned(), ns.clone()]);
                }
                args.extend(["qdisc", verb, "dev", dev, "root"].map(str::to_owned));
                args
            };
            // Deleting a qdisc that is not there fails: that is fine.
            let _ = tc(&on("del"));
            if let Some(rate) = bits_per_s {
                // A burst of 1/100 s of the rate (at least 64 KiB, what
                // one TSO segment may carry), queued up to 50 ms.
                let burst = (rate / 8 / 100).max(64 * 1024);
                let mut args = on("add");
                args.extend([
                    "tbf".to_owned(),
                    "rate".to_owned(),
                    format!("{rate}bit"),
                    "burst".to_owned(),
                    burst.to_string(),
                    "latency".to_owned(),
                    "50ms".to_owned(),
                ]);
                tc(&args)?;
            }
        }
        if let Ok(mut shaped) = self.shaped.lock() {
            *shaped = bits_per_s;
        }
        Ok(())
    }

    /// Takes the link down (on the destination's end: nothing passes
    /// either way) or up again.
    pub fn set_link(&self, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["link", "set", "dev", &self.link, state]).map(|_| ())
    }

    /// The link's rate, when shaped.
    pub fn shaped(&self) -> Option<u64> {
        self.shaped.lock().ok().and_then(|s| *s)
    }
}

impl Drop for SourceHost {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        remove(self.slot);
    }
}

/// Names of a slot's namespace and veth ends.
fn names(slot: u32) -> (String, String, String) {
    (
        format!("{NETNS_PREFIX}{slot}"),
        format!("{LINK_PREFIX}{slot}d"),
        format!("{LINK_PREFIX}{slot}s"),
    )
}

fn owner_file(slot: u32) -> PathBuf {
    Path::new(OWNERS).join(slot.to_string())
}

/// Removes a slot's processes, link (its qdiscs go with it), namespace
/// and owner file, whatever of them exists.
fn remove(slot: u32) {
    let (name, link, _) = names(slot);
    if Path::new(&format!("/run/netns/{name}")).exists() {
        if let Ok(pids) = ip(&["netns", "pids", &name]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: processes inside the sandbox's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    // Deleting one end deletes the pair, at once (a namespace's own
    // links go only when the kernel gets to it).
    if Path::new(&format!("/sys/class/net/{link}")).exists() {
        let _ = ip(&["link", "del", &link]);
    }
    // `ip netns del` can fail while another namespace is being added or
    // deleted beside it (the mount of /run/netns is busy): tried again,
    // up to 2 s, until the file is gone.
    let file = format!("/run/netns/{name}");
    for _ in 0..20 {
        if !Path::new(&file).exists() {
            break;
        }
        if let Err(e) = ip(&["netns", "del", &name]) {
            tracing::debug!(error = %e, namespace = %name, "the namespace is not removed yet; trying again");
        }
        if Path::new(&file).exists() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if Path::new(&file).exists() {
        tracing::warn!(namespace = %name, "the namespace could not be removed; `ip netns del {name}` removes it");
    }
    let _ = std::fs::remove_file(owner_file(slot));
}

/// Removes every slot whose owner is gone, and namespaces or links of
/// the sandbox's that no owner file claims (a run killed between steps).
pub fn sweep() {
    let mut claimed = std::collections::BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(OWNERS) {
        for entry in dir.flatten() {
            let Some(slot) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // An owner file is written right after it is created: an
            // empty one may be a sandbox starting this very moment, unless
            // it has been empty for a minute.
            let starting = text.is_empty()
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < std::time::Duration::from_secs(60));
            if starting || owner_alive(&text) {
                claimed.insert(slot);
            } else {
                remove(slot);
            }
        }
    }
    for slot in leftovers() {
        if !claimed.contains(&slot) && !owner_file(slot).exists() {
            remove(slot);
        }
    }
}

/// Slots that have a namespace or a link on this machine.
pub fn leftovers() -> Vec<u32> {
    let mut slots = std::collections::BTreeSet::new();
    let parse = |name: &str, prefix: &str, suffix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse::<u32>().ok())
    };
    for (dir, prefix, suffix) in [
        ("/run/netns", NETNS_PREFIX, ""),
        ("/sys/class/net", LINK_PREFIX, "d"),
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Some(slot) = e
                .file_name()
                .to_str()
                .and_then(|n| parse(n, prefix, suffix))
            {
                slots.insert(slot);
            }
        }
    }
    slots.into_iter().collect()
}

/// Slots whose owner is this process (tests check theirs are gone).
pub fn owned_by_me() -> Vec<u32> {
    let me = me();
    leftovers()
        .into_iter()
        .filter(|&s| std::fs::read_to_string(owner_file(s)).is_ok_and(|t| t.trim() == me))
        .collect()
}

/// A thread that enters the namespace and drives a current-thread
/// runtime until told to stop.
fn runtime_inside(
    ns: &File,
    name: &str,
) -> Result<(
    tokio::runtime::Handle,
    std::thread::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
)> {
    let fd = ns.as_raw_fd();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::Builder::new()
        .name(format!("{name}-net"))
        .spawn(move || {
            // SAFETY: setns on this thread only, with a namespace fd that
            // outlives the thread (joined before the host is dropped).
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                let _ = ready_tx.send(Err(std::io::Error::last_os_error()));
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(rt.handle().clone()));
            rt.block_on(async {
                let _ = stop_rx.await;
            });
        })
        .map_err(SandboxError::io("start the namespace's thread"))?;
    let handle = ready_rx
        .recv()
        .map_err(|_| SandboxError::Start {
            what: "the namespace's thread".into(),
            detail: "it ended before it was ready".into(),
        })?
        .map_err(SandboxError::io("enter the source's network namespace"))?;
    Ok((handle, worker, stop_tx))
}

/// `pid starttime` of this process, as owner files hold it.
fn me() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// A process's start time (field 22 of /proc/PID/stat), which tells a
/// living owner from a later process that got the same pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_owned)
}

fn owner_alive(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let (Some(pid), Some(started)) = (words.next(), words.next()) else {
        return false;
    };
    pid.parse::<u32>()
        .ok()
        .and_then(start_time)
        .is_some_and(|t| t == started)
}

/// Runs `ip` with these arguments; answers its output.
fn ip(args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run(cmd, &format!("ip {}", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tc(args: &[String]) -> Result<()> {
    let mut cmd = Command::new("tc");
    cmd.args(args);
    run(cmd, &format!("tc {}", args.join(" "))).map(|_| ())
}
