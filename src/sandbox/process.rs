//! A server process the sandbox started: stopped with its whole tree of
//! descendants (sshd forks one child per connection), safe to stop twice.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::host::SourceHost;
use super::{Result, SandboxError};

/// Where a process runs: in the source's host (its network namespace)
/// or on this one, on some cores only or on any.
#[derive(Clone, Default)]
pub struct Placement {
    pub host: Option<Arc<SourceHost>>,
    pub cpus: Option<Vec<usize>>,
}

impl Placement {
    /// Makes `command` start where this placement says, and, when
    /// `private` is given, with a tmpfs of its own mounted over that
    /// directory (a mount namespace of its own: what it puts there, a
    /// Unix socket say, no other process sees).
    pub fn apply(&self, command: &mut Command, private: Option<&Path>) -> Result<()> {
        let netns = self.host.as_ref().map(|h| h.netns_fd());
        let private = private
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| SandboxError::Start {
                what: "a private directory".into(),
                detail: "its path holds a NUL byte".into(),
            })?;
        // SAFETY: cpu_set_t is plain data; CPU_ZERO and CPU_SET only write it.
        let cpus = self.cpus.as_ref().map(|list| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            for &c in list {
                libc::CPU_SET(c, &mut set);
            }
            set
        });
        if netns.is_none() && private.is_none() && cpus.is_none() {
            return Ok(());
        }
        // SAFETY: between fork and exec the child calls only
        // async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = netns {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(dir) = &private {
                    if libc::unshare(libc::CLONE_NEWNS) != 0
                        || libc::mount(
                            c"none".as_ptr(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ) != 0
                        || libc::mount(
                            c"tmpfs".as_ptr(),
                            dir.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV,
                            c"size=1m,mode=0755".as_ptr().cast(),
                        ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(set) = &cpus {
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(())
    }
}

pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `command` with stdout and stderr into `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<ServerProcess> {
        // If the owner dies without stopping the server (killed, crashed),
        // the kernel stops the server too: no orphan keeps ports and files.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = std::fs::File::create(&log)
            .map_err(SandboxError::io(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(SandboxError::io("clone a log handle"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(SandboxError::io(format!("start {name}")))?;
        Ok(ServerProcess {
            name: name.to_owned(),
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails with the log's tail when the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(SandboxError::Start {
                    what: self.name.clone(),
                    detail: format!("exited with {status}: {}", log_tail(&self.log)),
                });
            }
        }
        Ok(())
    }

    /// SIGTERM to the process and its descendants, SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        let mut tree = descendants(pid);
        tree.push(pid);
        for &p in &tree {
            // SAFETY: signals to processes this sandbox started.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let deadline = Instant::now() + grace;
        loop {
            let parent_done = matches!(child.try_wait(), Ok(Some(_)));
            if parent_done && tree.iter().all(|&p| p == pid || !alive(p)) {
                break;
            }
            if Instant::now() > deadline {
                for &p in &tree {
                    // SAFETY: as above.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// The last lines of a log, for start-up errors.
pub fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn alive(pid: i32) -> bool {
    // A zombie counts as gone: only its parent can reap it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Every process id on the machine, from /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every process whose parent chain leads to `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for pid in all_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Runs a command to completion; fails with its stderr.
pub fn run(mut command: Command, what: &str) -> Result<std::process::Output> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(SandboxError::io(format!("run {what}")))?;
    if !out.status.success() {
        return Err(SandboxError::Command {
            command: what.to_owned(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out)
}

/// The calling thread pinned to `cpus` (threads and processes it starts
/// from now on inherit that); the old set comes back when dropped.
pub struct Pin {
    old: libc::cpu_set_t,
}

impl Pin {
    pub fn this_thread(cpus: &[usize]) -> Result<Pin> {
        // SAFETY: cpu_set_t is plain data, filled by the kernel or by
        // CPU_SET; pid 0 is the calling thread.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0 {
                return Err(SandboxError::io("read this thread's cores")(
                    std::io::Error::last_os_error(),
                ));
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(SandboxError::io(format!(
                    "pin this thread to cores {cpus:?}"
                ))(std::io::Error::last_os_error()));
            }
            Ok(Pin { old })
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        // SAFETY: restores the set read when the pin was made.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.old);
        }
    }
}
