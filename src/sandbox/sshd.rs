//! A private OpenSSH server: its own host key, config, pid file and
//! authorized keys, on a free loopback port; never the system service.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{log_tail, run, Placement, ServerProcess};
use super::{free_port, require, Result, SandboxError};

/// The dedicated local login for password tests (created when missing, as root).
pub const TEST_LOGIN: &str = "hostmig-test";
/// Its password: a throwaway credential for this machine's private sshd only.
pub const TEST_PASSWORD: &str = "hostmig-test-pw-7d1f";

pub struct SshServer {
    /// Where it listens: 127.0.0.1, or the source's address on its link.
    pub addr: std::net::IpAddr,
    pub port: u16,
    pub dir: PathBuf,
    /// Private key accepted for `root` (and the current user).
    pub client_key: PathBuf,
    /// The server's public host key line (`ssh-ed25519 AAAA…`).
    pub host_key: String,
    process: ServerProcess,
}

impl SshServer {
    /// Its log (LogLevel DEBUG1: logins, channels, global requests such as
    /// keepalives).
    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// Starts a server on a free port of this machine's loopback.
    pub fn start(dir: &Path) -> Result<SshServer> {
        Self::start_placed(dir, &Placement::default())
    }

    /// Starts a server where `placement` says: in the source's host it
    /// listens on port 22 of the host's address, as a real server does.
    pub fn start_placed(dir: &Path, placement: &Placement) -> Result<SshServer> {
        let sshd = require("sshd", "openssh-server")?;
        let keygen = require("ssh-keygen", "openssh-client")?;
        std::fs::create_dir_all(dir.join("authorized_keys"))
            .map_err(SandboxError::io("create the sshd directory"))?;
        let host_key = dir.join("ssh_host_ed25519_key");
        let client_key = dir.join("id_ed25519");
        for (key, comment) in [
            (&host_key, "hostmig-sandbox-host"),
            (&client_key, "hostmig-sandbox-client"),
        ] {
            if !key.exists() {
                let mut cmd = Command::new(&keygen);
                cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(key);
                run(cmd, "ssh-keygen")?;
            }
        }
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(SandboxError::io(format!("read {}", p.display())))
        };
        let client_pub = read(client_key.with_extension("pub"))?;
        let host_pub = read(host_key.with_extension("pub"))?;
        let host_key_line = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let addr: std::net::IpAddr = match &placement.host {
            Some(host) => host.source_addr.into(),
            None => std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let server = |port: u16| -> Result<ServerProcess> {
            write_authorized_keys(dir, client_pub.trim(), None)?;
            let config = dir.join("sshd_config");
            std::fs::write(&config, sshd_config(dir, addr, port))
                .map_err(SandboxError::io("write sshd_config"))?;
            // sshd wants its privilege-separation directory to exist.
            std::fs::create_dir_all("/run/sshd").ok();
            let mut cmd = Command::new(&sshd);
            cmd.args(["-D", "-e", "-f"]).arg(&config);
            placement.apply(&mut cmd, None)?;
            ServerProcess::spawn("sshd", cmd, dir.join("sshd.log"))
        };
        let mut last_error = None;
        for _ in 0..3 {
            let port = match placement.host {
                Some(_) => 22,
                None => free_port()?,
            };
            let mut process = server(port)?;
            match wait_for_banner((addr, port), &mut process) {
                Ok(()) => {
                    return Ok(SshServer {
                        addr,
                        port,
                        dir: dir.to_owned(),
                        client_key,
                        host_key: host_key_line,
                        process,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| SandboxError::Start {
            what: "sshd".into(),
            detail: "no port could be bound".into(),
        }))
    }

    /// Makes every command run for the key see `PATH=<dir>:/usr/bin:/bin`, so
    /// a test's own `tar` (say) stands in for the source's; `None` restores it.
    pub fn set_command_path(&self, dir: Option<&Path>) -> Result<()> {
        self.set_path(
            dir.map(|d| format!("{}:/usr/bin:/bin", d.display()))
                .as_deref(),
        )
    }

    /// Makes every command run for the key see exactly `PATH=<path>` (a
    /// source without some program: a directory of links to all the
    /// others); `None` restores the default.
    pub fn set_path(&self, path: Option<&str>) -> Result<()> {
        let public = std::fs::read_to_string(self.client_key.with_extension("pub"))
            .map_err(SandboxError::io("read the client key"))?;
        write_authorized_keys(&self.dir, public.trim(), path)
    }

    /// The sshd process id (for tests that prove it is gone after a stop).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

fn write_authorized_keys(dir: &Path, public: &str, path: Option<&str>) -> Result<()> {
    let line = match path {
        Some(p) => format!("environment=\"PATH={p}\" {public}\n"),
        None => format!("{public}\n"),
    };
    let mut users = vec!["root".to_owned()];
    if let Some(me) = current_user().filter(|u| u != "root") {
        users.push(me);
    }
    for user in users {
        let path = dir.join("authorized_keys").join(user);
        std::fs::write(&path, &line)
            .map_err(SandboxError::io(format!("write {}", path.display())))?;
    }
    Ok(())
}

fn current_user() -> Option<String> {
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

/// The sandbox's sshd. Its sessions start bash at SHLVL 2, so bash does
/// not source root's `~/.bashrc` as it does for a shell sshd starts: this
/// machine's (pyenv's rehash, say) must not slow every command, nor hang
/// them all on a lock that a test ending sessions mid-command left.
fn sshd_config(dir: &Path, addr: std::net::IpAddr, port: u16) -> String {
    format!(
        "Port {port}\n\
         ListenAddress {addr}\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys/%u\n\
         StrictModes no\n\
         PermitRootLogin yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitUserEnvironment yes\n\
         SetEnv SHLVL=1\n\
         MaxStartups 200:30:400\n\
         MaxSessions 200\n\
         MaxAuthTries 10\n\
         LoginGraceTime 30\n\
         UseDNS no\n\
         PrintMotd no\n\
         Subsystem sftp internal-sftp\n\
         LogLevel DEBUG1\n",
        dir = dir.display()
    )
}

fn wait_for_banner(
    (addr, port): (std::net::IpAddr, u16),
    process: &mut ServerProcess,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        process.check_alive()?;
        if let Ok(mut stream) = TcpStream::connect((addr, port)) {
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut banner = [0u8; 8];
            if stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(SandboxError::Start {
                what: "sshd".into(),
                detail: format!(
                    "no SSH banner on {addr} port {port} within 20 s: {}",
                    log_tail(&process.log)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates [`TEST_LOGIN`] with [`TEST_PASSWORD`] when it is missing; needs
/// root. Answers `false` when not root (password logins cannot be tested).
pub fn ensure_test_login() -> Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(false);
    }
    let exists = Command::new("id")
        .arg(TEST_LOGIN)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !exists {
        let mut cmd = Command::new(require("useradd", "passwd")?);
        cmd.args([
            "--system",
            "--create-home",
            "--shell",
            "/bin/sh",
            TEST_LOGIN,
        ]);
        run(cmd, "useradd")?;
    }
    let mut child = Command::new(require("chpasswd", "passwd")?)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(SandboxError::io("run chpasswd"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(format!("{TEST_LOGIN}:{TEST_PASSWORD}\n").as_bytes())
            .map_err(SandboxError::io("feed chpasswd"))?;
    }
    let status = child
        .wait()
        .map_err(SandboxError::io("wait for chpasswd"))?;
    if !status.success() {
        return Err(SandboxError::Command {
            command: "chpasswd".into(),
            detail: status.to_string(),
        });
    }
    Ok(true)
}
