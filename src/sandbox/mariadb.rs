//! A private MariaDB server: `mariadb-install-db` into its own data
//! directory, its own socket and free loopback port; never the system
//! service, never the machine's shared server on 3306. Sources and
//! destinations are configured unlike each other and unlike the machine
//! (time zone, SQL mode, character set, packet size), so that nothing
//! hostmig does can depend on a server's defaults.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::host::SourceHost;
use super::process::{log_tail, run, Placement, ServerProcess};
use super::{free_port, require, Result, SandboxError};

/// How a server is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// As a stock server: utf8mb4, the default SQL mode, a large
    /// max_allowed_packet, and a time zone with daylight saving time.
    Source,
    /// On purpose unlike the source: latin1 by default, a strict SQL mode
    /// with every option that changes how statements read (ANSI quotes,
    /// no backslash escapes, CHAR padded to full length), a 4 MiB
    /// max_allowed_packet (smaller than the largest value a source holds)
    /// and another daylight-saving time zone.
    Destination,
}

/// The time zones loaded into every server's time zone tables, the ones
/// the roles use and the ones the hard-case data is written around.
pub const TIME_ZONES: [&str; 4] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

/// The destination's global SQL mode.
pub const DESTINATION_SQL_MODE: &str = "STRICT_ALL_TABLES,ANSI_QUOTES,NO_BACKSLASH_ESCAPES,\
    PAD_CHAR_TO_FULL_LENGTH,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,\
    ONLY_FULL_GROUP_BY,NO_ENGINE_SUBSTITUTION";

impl Role {
    fn args(self) -> Vec<String> {
        match self {
            Role::Source => vec![
                "--max-allowed-packet=256M".into(),
                "--character-set-server=utf8mb4".into(),
                "--collation-server=utf8mb4_general_ci".into(),
            ],
            Role::Destination => vec![
                "--max-allowed-packet=4M".into(),
                "--character-set-server=latin1".into(),
                "--collation-server=latin1_swedish_ci".into(),
                format!("--sql-mode={DESTINATION_SQL_MODE}"),
            ],
        }
    }

    /// The global time zone, set once the zones are loaded.
    fn time_zone(self) -> &'static str {
        match self {
            Role::Source => "Europe/Berlin",
            Role::Destination => "America/New_York",
        }
    }
}

pub struct MariaDb {
    pub name: String,
    pub role: Role,
    /// Its port on 127.0.0.1 of the host it runs on.
    pub port: u16,
    pub dir: PathBuf,
    /// Its Unix socket; in a private mount (seen by no other process)
    /// when the server runs in the source's host.
    pub socket: PathBuf,
    process: ServerProcess,
    /// The source's host it runs in; `None`: on this machine's loopback.
    /// (After the process: a server is stopped before its host goes.)
    pub host: Option<Arc<SourceHost>>,
    placement: Placement,
}

impl MariaDb {
    /// Starts a server on this machine's loopback whose data lives in
    /// `dir/data`; an existing data directory (a kept fixture) is reused
    /// as it is.
    pub async fn start(dir: &Path, name: &str, role: Role) -> Result<MariaDb> {
        Self::start_placed(dir, name, role, &Placement::default()).await
    }

    /// Starts a server where `placement` says: in the source's host it
    /// listens on that host's loopback only.
    pub async fn start_placed(
        dir: &Path,
        name: &str,
        role: Role,
        placement: &Placement,
    ) -> Result<MariaDb> {
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
        let fresh = !data.join("mysql").exists();
        if fresh {
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
        // In the source's host the socket is in a directory of the
        // server's own mount: hostmig, on the destination, cannot take
        // it for a way around SSH.
        let private = placement.host.as_ref().map(|_| dir.join("run"));
        if let Some(p) = &private {
            std::fs::create_dir_all(p)
                .map_err(SandboxError::io(format!("create {}", p.display())))?;
        }
        let socket = private.as_deref().unwrap_or(dir).join("mysqld.sock");
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let cmd = command(
                &mariadbd,
                dir,
                &socket,
                port,
                role,
                placement,
                private.as_deref(),
            )?;
            let process = ServerProcess::spawn(name, cmd, dir.join("mysqld.log"))?;
            let server = MariaDb {
                name: name.to_owned(),
                role,
                port,
                dir: dir.to_owned(),
                socket: socket.clone(),
                host: placement.host.clone(),
                placement: placement.clone(),
                process,
            };
            match server.wait_until_ready().await {
                Ok(()) => {
                    server.set_time_zone().await?;
                    return Ok(server);
                }
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
            if let Ok(mut conn) = self.open(self.opts(None)).await {
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

    /// Loads the time zones into a server that lacks them (a fresh data
    /// directory), then sets the role's global time zone (not kept across
    /// restarts, so set on every start).
    async fn set_time_zone(&self) -> Result<()> {
        let mut conn = self.connect(None).await?;
        let loaded: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM mysql.time_zone_name")
            .await
            .map_err(|e| self.sql_error(e))?;
        if loaded.unwrap_or(0) < TIME_ZONES.len() as u64 {
            let tzinfo = require("mariadb-tzinfo-to-sql", "mariadb-client")?;
            let zoneinfo = Path::new("/usr/share/zoneinfo");
            conn.query_drop("USE mysql")
                .await
                .map_err(|e| self.sql_error(e))?;
            for zone in TIME_ZONES {
                let file = zoneinfo.join(zone);
                if !file.exists() {
                    return Err(SandboxError::MissingTool {
                        tool: "the time zone data in /usr/share/zoneinfo",
                        package: "tzdata",
                    });
                }
                let out = Command::new(&tzinfo)
                    .arg(&file)
                    .arg(zone)
                    .output()
                    .map_err(SandboxError::io("run mariadb-tzinfo-to-sql"))?;
                if !out.status.success() {
                    return Err(SandboxError::Start {
                        what: "mariadb-tzinfo-to-sql".into(),
                        detail: String::from_utf8_lossy(&out.stderr).into_owned(),
                    });
                }
                conn.query_drop(String::from_utf8_lossy(&out.stdout).into_owned())
                    .await
                    .map_err(|e| self.sql_error(e))?;
            }
        }
        conn.query_drop(format!(
            "SET GLOBAL time_zone = '{}'",
            self.role.time_zone()
        ))
        .await
        .map_err(|e| self.sql_error(e))?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    fn process_alive(&self) -> bool {
        self.process
            .pid()
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// `mysql://root@127.0.0.1:PORT[/db]` (root has no password here),
    /// as seen on the host the server runs on.
    pub fn root_url(&self, db: Option<&str>) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.port, db.unwrap_or(""))
    }

    /// Options for root on `db`, never switching to a Unix socket.
    pub fn opts(&self, db: Option<&str>) -> mysql_async::OptsBuilder {
        self.login_opts("root", "", db)
    }

    /// Options for `user` with `password` on `db`.
    pub fn login_opts(
        &self,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .prefer_socket(false)
            .user(Some(user))
            .pass((!password.is_empty()).then_some(password))
            .db_name(db)
    }

    /// A connection opened where the server listens: from inside the
    /// source's host for a server there (the sandbox's own way in, never a
    /// port opened for it), else on this machine's loopback.
    pub async fn open(
        &self,
        opts: impl Into<mysql_async::Opts>,
    ) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
        match &self.host {
            Some(host) => host.connect(opts.into()).await,
            None => mysql_async::Conn::new(opts.into()).await,
        }
    }

    /// A session as `user` (a login test), where the server listens.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<mysql_async::Conn> {
        self.open(self.login_opts(user, password, db))
            .await
            .map_err(|source| self.sql_error(source))
    }

    /// Where the server listens, for messages.
    pub fn address(&self) -> String {
        match &self.host {
            Some(host) => format!("127.0.0.1:{} inside {}", self.port, host.name),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// A connection as root, to `db` when given, in a session of the
    /// sandbox's own (UTC, utf8mb4, a permissive SQL mode) whatever the
    /// server's globals: the sandbox writes and reads its data the same
    /// way on every server. hostmig's own connections get the globals.
    pub async fn connect(&self, db: Option<&str>) -> Result<mysql_async::Conn> {
        let mut conn = self
            .open(self.opts(db))
            .await
            .map_err(|source| self.sql_error(source))?;
        conn.query_drop(SANDBOX_SESSION)
            .await
            .map_err(|source| self.sql_error(source))?;
        Ok(conn)
    }

    pub fn sql_error(&self, source: mysql_async::Error) -> SandboxError {
        SandboxError::Sql {
            server: format!("{} ({})", self.name, self.address()),
            source,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(30));
    }

    /// Stops the server (SIGTERM, as a service restart does) and starts it
    /// again on the same port and data; answers once it answers again.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let mariadbd = require("mariadbd", "mariadb-server")?;
        let private = self.host.as_ref().map(|_| self.dir.join("run"));
        let cmd = command(
            &mariadbd,
            &self.dir,
            &self.socket,
            self.port,
            self.role,
            &self.placement,
            private.as_deref(),
        )?;
        self.process = ServerProcess::spawn(&self.name, cmd, self.dir.join("mysqld.log"))?;
        self.wait_until_ready().await?;
        self.set_time_zone().await
    }
}

/// The command line of a server of `dir` on `port`, placed.
fn command(
    mariadbd: &Path,
    dir: &Path,
    socket: &Path,
    port: u16,
    role: Role,
    placement: &Placement,
    private: Option<&Path>,
) -> Result<Command> {
    let mut cmd = Command::new(mariadbd);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--port={port}"))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--local-infile=1",
            "--max-connections=400",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
        ])
        .args(role.args());
    if is_root() {
        cmd.arg("--user=root");
    }
    placement.apply(&mut cmd, private)?;
    Ok(cmd)
}

/// The session of the sandbox's own connections.
pub const SANDBOX_SESSION: &str =
    "SET NAMES utf8mb4, time_zone = '+00:00', SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
