//! A server process the sandbox started: stopped with its whole tree of
//! descendants (sshd forks one child per connection), safe to stop twice.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Result, SandboxError};

pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `command` with stdout and stderr into `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<ServerProcess> {
        use std::os::unix::process::CommandExt;
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
