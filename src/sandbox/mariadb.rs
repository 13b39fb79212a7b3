//! A private MariaDB server: `mariadb-install-db` into its own data
//! directory, its own socket and free loopback port; never the system
//! service, never the machine's shared server on 3306.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::process::{log_tail, run, ServerProcess};
use super::{free_port, require, Result, SandboxError};

pub struct MariaDb {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub socket: PathBuf,
    process: ServerProcess,
}

impl MariaDb {
    /// Starts a server whose data lives in `dir/data`; an existing data
    /// directory (a kept fixture) is reused as it is.
    pub async fn start(dir: &Path, name: &str) -> Result<MariaDb> {
        let mariadbd = require("mariadbd", "mariadb-server")?;
        let install = require("mariadb-install-db", "mariadb-server")?;
        std::fs::create_dir_all(dir)
            .map_err(SandboxError::io(format!("create {}", dir.display())))?;
        let data = dir.join("data");
        // Each server gets its own temporary directory: concurrent
        // bootstraps in a shared /tmp collide on temporary table names.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(SandboxError::io(format!("create {}", tmp.display())))?;
        let as_root = is_root();
        if !data.join("mysql").exists() {
            let mut cmd = Command::new(&install);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .env("TMPDIR", &tmp)
                .args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                ]);
            if as_root {
                cmd.arg("--user=root");
            }
            run(cmd, "mariadb-install-db")?;
        }
        let socket = dir.join("mysqld.sock");
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut cmd = Command::new(&mariadbd);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
                .arg(format!("--port={port}"))
                .arg(format!("--tmpdir={}", tmp.display()))
                .args([
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    "--local-infile=1",
                    "--max-connections=400",
                    "--max-allowed-packet=256M",
                    "--innodb-buffer-pool-size=256M",
                    "--innodb-log-file-size=256M",
                    "--innodb-flush-log-at-trx-commit=2",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_general_ci",
                ]);
            if as_root {
                cmd.arg("--user=root");
            }
            let process = ServerProcess::spawn(name, cmd, dir.join("mysqld.log"))?;
            let server = MariaDb {
                name: name.to_owned(),
                port,
                dir: dir.to_owned(),
                socket: socket.clone(),
                process,
            };
            match server.wait_until_ready().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_error = Some(e);
                    drop(server);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| SandboxError::Start {
            what: name.to_owned(),
            detail: "no port could be bound".into(),
        }))
    }

    async fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = mysql_async::Conn::from_url(self.root_url(None)).await {
                let ok: Option<u8> = conn.query_first("SELECT 1").await.ok().flatten();
                let _ = conn.disconnect().await;
                if ok == Some(1) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline || !self.process_alive() {
                return Err(SandboxError::Start {
                    what: self.name.clone(),
                    detail: format!(
                        "not answering on port {}: {}",
                        self.port,
                        log_tail(&self.process.log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn process_alive(&self) -> bool {
        self.process
            .pid()
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// `mysql://root@127.0.0.1:PORT[/db]` (root has no password here).
    pub fn root_url(&self, db: Option<&str>) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.port, db.unwrap_or(""))
    }

    /// A connection as root, to `db` when given.
    pub async fn connect(&self, db: Option<&str>) -> Result<mysql_async::Conn> {
        mysql_async::Conn::from_url(self.root_url(db))
            .await
            .map_err(|source| self.sql_error(source))
    }

    pub fn sql_error(&self, source: mysql_async::Error) -> SandboxError {
        SandboxError::Sql {
            server: format!("{} (127.0.0.1:{})", self.name, self.port),
            source,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(30));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
