//! A source server and a destination server on this machine, each from
//! private processes and directories.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::host::SourceHost;
use super::mariadb::{MariaDb, Role};
use super::model::{IpKind, Model};
use super::process::Placement;
use super::rng::Rng;
use super::sshd::SshServer;
use super::{content, data, panel_rows, sql_literal, Result, SandboxError};

/// The destination's addresses: data only, never connected to.
pub const DESTINATION_IPS: &[(&str, IpKind)] = &[
    ("198.51.100.4", IpKind::Shared),
    ("198.51.100.5", IpKind::Shared),
    ("203.0.113.5", IpKind::Exclusive),
    ("203.0.113.9", IpKind::Exclusive),
];

/// How much a generated source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Tests: a few clients and files; seconds.
    Tiny,
    /// Tests and the sandbox command: hundreds of files.
    Small,
    /// Thousands of files, a 100,000-row table.
    Medium,
    /// Benchmarks only: about 1 GiB of content (20,000 small files and a
    /// few files of 100 MiB or more) and a database of 3 million rows.
    Large,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Tiny => "tiny",
            Profile::Small => "small",
            Profile::Medium => "medium",
            Profile::Large => "large",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Profile::Tiny),
            "small" => Ok(Profile::Small),
            "medium" => Ok(Profile::Medium),
            "large" => Ok(Profile::Large),
            other => Err(format!(
                "unknown profile {other}: use tiny, small, medium or large"
            )),
        }
    }
}

/// The MySQL user `admin`: all privileges, the panel's owner.
async fn create_admin(
    conn: &mut mysql_async::Conn,
    admin_password: &str,
) -> std::result::Result<(), mysql_async::Error> {
    for host in ["%", "localhost"] {
        conn.query_drop(format!(
            "CREATE USER 'admin'@'{host}' IDENTIFIED BY {}; GRANT ALL PRIVILEGES ON *.* TO 'admin'@'{host}' WITH GRANT OPTION",
            sql_literal(admin_password)
        ))
        .await?;
    }
    Ok(())
}

/// The MySQL user `admin` and the panel database `psa` with hostmig's
/// schema; leaves `psa` the current database.
async fn create_panel(
    conn: &mut mysql_async::Conn,
    admin_password: &str,
) -> std::result::Result<(), mysql_async::Error> {
    create_admin(conn, admin_password).await?;
    conn.query_drop("CREATE DATABASE psa CHARACTER SET utf8mb4; USE psa")
        .await?;
    conn.query_drop(crate::panel::SCHEMA_SQL).await?;
    conn.exec_drop(
        "INSERT INTO misc (param, val) VALUES ('hostmig_schema_version', ?)",
        (crate::panel::schema::VERSION.to_string(),),
    )
    .await
}

/// Where a source keeps what `psa.conf` names, under the sandbox root.
#[derive(Debug, Clone)]
pub struct SourceLayout {
    pub root: PathBuf,
    pub psa_conf: PathBuf,
    pub psa_shadow: PathBuf,
    pub vhosts: PathBuf,
    pub mailnames: PathBuf,
    pub dump: PathBuf,
}

impl SourceLayout {
    fn under(root: &Path) -> SourceLayout {
        SourceLayout {
            root: root.to_owned(),
            psa_conf: root.join("etc/psa/psa.conf"),
            psa_shadow: root.join("etc/psa/.psa.shadow"),
            vhosts: root.join("var/www/vhosts"),
            mailnames: root.join("var/qmail/mailnames"),
            dump: root.join("var/lib/psa/dumps"),
        }
    }
}

/// Where a source runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A host of its own when this process is root, else loopback.
    #[default]
    Auto,
    /// This machine's loopback.
    Loopback,
    /// A host of its own, or an error that says to run as root.
    Namespace,
}

/// How a source is set up besides its data.
#[derive(Debug, Clone, Default)]
pub struct SourceSetup {
    pub network: Network,
    /// The link shaped to this many bits per second, both ways (a host of
    /// its own only).
    pub link_bits_per_s: Option<u64>,
    /// The source's processes pinned to these cores.
    pub cpus: Option<Vec<usize>>,
}

impl SourceSetup {
    fn placement(&self) -> Result<Placement> {
        let host = match self.network {
            Network::Loopback => None,
            Network::Auto if !SourceHost::available() => None,
            Network::Auto | Network::Namespace => Some(SourceHost::create()?),
        };
        if let Some(rate) = self.link_bits_per_s {
            let Some(host) = &host else {
                return Err(SandboxError::Start {
                    what: "a shaped link".into(),
                    detail: "only a source in a host of its own has a link to shape: run as root"
                        .into(),
                });
            };
            host.shape(Some(rate))?;
        }
        Ok(Placement {
            host,
            cpus: self.cpus.clone(),
        })
    }
}

/// The generator's version, in a kept fixture's marker: a fixture made by
/// another generator (other tables, other values) is made anew, never
/// taken for this one's. Raised whenever what the generator writes changes.
const GENERATOR: u32 = 2;

/// A generated source: sshd, MariaDB with `psa` and the domains' databases,
/// and the content trees.
pub struct Source {
    pub dir: PathBuf,
    pub layout: SourceLayout,
    pub ssh: SshServer,
    pub db: MariaDb,
    /// The MySQL `admin` password, as `.psa.shadow` holds it.
    pub admin_password: String,
    pub model: Model,
    pub profile: Profile,
    pub seed: u64,
    /// How long generation took; `None` when a kept fixture was reused.
    pub generated_in: Option<Duration>,
    /// The source's own host (network namespace); `None`: loopback. Last:
    /// the servers stop before it goes.
    pub host: Option<Arc<SourceHost>>,
}

impl Source {
    /// Starts a source in `dir`; generates it unless `dir` already holds
    /// the same profile and seed (a kept benchmark fixture). As root it
    /// gets a host of its own.
    pub async fn start(dir: &Path, profile: Profile, seed: u64) -> Result<Source> {
        Self::start_with(dir, profile, seed, &SourceSetup::default()).await
    }

    pub async fn start_with(
        dir: &Path,
        profile: Profile,
        seed: u64,
        setup: &SourceSetup,
    ) -> Result<Source> {
        let layout = SourceLayout::under(&dir.join("root"));
        let (db, ssh, host) = Self::servers(dir, setup).await?;
        let admin_password = format!("psa-{}", Rng::new(seed).fork("shadow").hex(8));
        let model = Model::generate(profile, seed);
        let marker = dir.join("generated");
        let stamp = format!("{} {seed} generator {GENERATOR}\n", profile.as_str());
        let mut source = Source {
            dir: dir.to_owned(),
            layout,
            ssh,
            db,
            admin_password,
            model,
            profile,
            seed,
            generated_in: None,
            host,
        };
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
            source.point_panel_at_port().await?;
        } else {
            let started = Instant::now();
            source.generate().await?;
            source.generated_in = Some(started.elapsed());
            std::fs::write(&marker, stamp).map_err(SandboxError::io("write the fixture marker"))?;
        }
        Ok(source)
    }

    /// The source's servers, where `setup` says.
    async fn servers(
        dir: &Path,
        setup: &SourceSetup,
    ) -> Result<(MariaDb, SshServer, Option<Arc<SourceHost>>)> {
        let placement = setup.placement()?;
        let db = MariaDb::start_placed(
            &dir.join("mariadb"),
            "source MariaDB",
            Role::Source,
            &placement,
        )
        .await?;
        let ssh = SshServer::start_placed(&dir.join("sshd"), &placement)?;
        Ok((db, ssh, placement.host))
    }

    async fn generate(&self) -> Result<()> {
        let l = &self.layout;
        self.write_layout()?;

        let sql = |e| self.db.sql_error(e);
        let mut conn = self.db.connect(None).await?;
        create_panel(&mut conn, &self.admin_password)
            .await
            .map_err(sql)?;
        panel_rows::write(&mut conn, &self.model, &l.vhosts, self.db.port)
            .await
            .map_err(sql)?;
        data::write(&mut conn, &self.model, self.seed)
            .await
            .map_err(sql)?;
        conn.disconnect().await.map_err(sql)?;

        let (model, seed, vhosts, mail) = (
            self.model.clone(),
            self.seed,
            l.vhosts.clone(),
            l.mailnames.clone(),
        );
        tokio::task::spawn_blocking(move || content::write_all(&model, seed, &vhosts, &mail))
            .await
            .map_err(|e| SandboxError::Start {
                what: "content generator".into(),
                detail: e.to_string(),
            })?
    }

    /// A source whose panel database is `panel_sql`, written by hand (not
    /// by the generator), with `@VHOSTS@` and `@DBPORT@` replaced by this
    /// source's vhosts root and database port; `setup_sql` runs after it
    /// (customer databases and their users). Content trees are the
    /// caller's to write under `layout`.
    pub async fn start_handwritten(dir: &Path, panel_sql: &str, setup_sql: &str) -> Result<Source> {
        let layout = SourceLayout::under(&dir.join("root"));
        let (db, ssh, host) = Self::servers(dir, &SourceSetup::default()).await?;
        let admin_password = "psa-handwritten".to_owned();
        let source = Source {
            dir: dir.to_owned(),
            layout,
            ssh,
            db,
            admin_password,
            model: Model::empty(),
            profile: Profile::Tiny,
            seed: 0,
            generated_in: None,
            host,
        };
        source.write_layout()?;
        let sql = |e| source.db.sql_error(e);
        let mut conn = source.db.connect(None).await?;
        create_admin(&mut conn, &source.admin_password)
            .await
            .map_err(sql)?;
        conn.query_drop("CREATE DATABASE psa CHARACTER SET utf8; USE psa")
            .await
            .map_err(sql)?;
        let panel = panel_sql
            .replace("@VHOSTS@", &source.layout.vhosts.display().to_string())
            .replace("@DBPORT@", &source.db.port.to_string());
        conn.query_drop(panel).await.map_err(sql)?;
        if !setup_sql.is_empty() {
            conn.query_drop(setup_sql).await.map_err(sql)?;
        }
        conn.disconnect().await.map_err(sql)?;
        Ok(source)
    }

    /// The directories, psa.conf and .psa.shadow of the source's layout.
    fn write_layout(&self) -> Result<()> {
        let l = &self.layout;
        for d in [
            &l.vhosts,
            &l.mailnames,
            &l.dump,
            &l.psa_conf.parent().unwrap_or(&l.root).to_owned(),
        ] {
            std::fs::create_dir_all(d)
                .map_err(SandboxError::io(format!("create {}", d.display())))?;
        }
        let conf = format!(
            "# Plesk layout of the sandbox source\nPRODUCT_ROOT_D {root}/usr/local/psa\nHTTPD_VHOSTS_D {vhosts}\n\
             PLESK_MAILNAMES_D {mail}\nDUMP_D {dump}\nMYSQL_BIN_D /usr/bin\n",
            root = l.root.display(),
            vhosts = l.vhosts.display(),
            mail = l.mailnames.display(),
            dump = l.dump.display()
        );
        std::fs::write(&l.psa_conf, conf).map_err(SandboxError::io("write psa.conf"))?;
        crate::state::write_atomic(
            &l.psa_shadow,
            format!("{}\n", self.admin_password).as_bytes(),
            0o600,
        )
        .map_err(SandboxError::io("write .psa.shadow"))
    }

    /// A kept fixture's server runs on a new port: the panel must say so.
    async fn point_panel_at_port(&self) -> Result<()> {
        let mut conn = self.db.connect(Some("psa")).await?;
        conn.exec_drop(
            "UPDATE DatabaseServers SET port = ? WHERE id = 1",
            (self.db.port,),
        )
        .await
        .map_err(|e| self.db.sql_error(e))?;
        conn.disconnect().await.map_err(|e| self.db.sql_error(e))
    }

    /// `host:port` of the source's sshd, as a start packet writes it.
    /// Root's key login to this source over SSH, with known_hosts under
    /// `dir` (the host key accepted on first use).
    pub fn root_login(&self, dir: &Path) -> (crate::ssh::Login, crate::ssh::Options) {
        let login = crate::ssh::Login {
            target: crate::ssh::Target::parse(&self.ssh_host())
                .unwrap_or_else(|| panic!("the sandbox's own address {} parses", self.ssh_host())),
            user: "root".into(),
            credential: crate::ssh::Credential::Key(self.ssh.client_key.clone()),
        };
        let opts = crate::ssh::Options {
            known_hosts: dir.join("known_hosts"),
            policy: crate::config::HostKeyPolicy::AcceptNew,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(120),
            stall: crate::ssh::DEFAULT_STALL,
        };
        (login, opts)
    }

    /// The source as a start packet names it: its address on its link
    /// (port 22, written as a real server's name is, without a port), or
    /// `127.0.0.1:PORT` on loopback.
    pub fn ssh_host(&self) -> String {
        match self.ssh.port {
            22 => self.ssh.addr.to_string(),
            port => format!("{}:{port}", self.ssh.addr),
        }
    }

    /// The source's name in a known_hosts file.
    pub fn known_hosts_name(&self) -> String {
        crate::ssh::known_hosts::host_entry(&self.ssh.addr.to_string(), self.ssh.port)
    }

    /// Where the source runs, in a sentence.
    pub fn network_text(&self) -> String {
        match &self.host {
            Some(h) => {
                let shaped = h
                    .shaped()
                    .map(|r| format!(", the link shaped to {} Mbit/s both ways", r / 1_000_000))
                    .unwrap_or_default();
                format!(
                    "a host of its own (network namespace {}, address {} over veth {}{shaped}); its MariaDB listens only on that host's loopback, reachable over SSH",
                    h.name, h.source_addr, h.link
                )
            }
            None => "this machine's loopback (not root: no network namespace; run as root to give the source a host of its own)".to_owned(),
        }
    }

    /// The `[[sources]]` override that points hostmig at this sandbox.
    pub fn sources_toml(&self) -> String {
        format!(
            "[[sources]]\nhost = \"{}\"\npsa_conf = \"{}\"\npsa_shadow = \"{}\"\npanel_db = \"mysql://admin@localhost:{}/psa\"\n",
            self.ssh_host(),
            self.layout.psa_conf.display(),
            self.layout.psa_shadow.display(),
            self.db.port
        )
    }

    /// Names of the domains' databases.
    pub fn databases(&self) -> Vec<String> {
        self.model
            .domains
            .iter()
            .flat_map(|d| d.databases.iter().map(|db| db.name.clone()))
            .collect()
    }

    /// Stops sshd and MariaDB; safe to call twice.
    pub fn stop(&mut self) {
        self.ssh.stop();
        self.db.stop();
    }
}

/// An empty destination: panel schema, its addresses, registered database
/// servers, empty content roots and staging.
pub struct Destination {
    pub dir: PathBuf,
    /// The first holds the panel database and is the default server.
    pub db_servers: Vec<MariaDb>,
    pub vhosts: PathBuf,
    pub mailnames: PathBuf,
    pub dump: PathBuf,
    pub state: PathBuf,
    /// Password of the MySQL `admin` user that owns the panel database.
    pub panel_password: String,
}

impl Destination {
    pub async fn start(dir: &Path, db_servers: usize) -> Result<Destination> {
        Self::start_pinned(dir, db_servers, None).await
    }

    /// As `start`, the database servers pinned to `cpus` when given.
    pub async fn start_pinned(
        dir: &Path,
        db_servers: usize,
        cpus: Option<Vec<usize>>,
    ) -> Result<Destination> {
        let placement = Placement { host: None, cpus };
        let mut servers = Vec::new();
        for i in 0..db_servers.max(1) {
            servers.push(
                MariaDb::start_placed(
                    &dir.join(format!("mariadb-{i}")),
                    &format!("destination MariaDB {i}"),
                    Role::Destination,
                    &placement,
                )
                .await?,
            );
        }
        let dest = Destination {
            dir: dir.to_owned(),
            vhosts: dir.join("root/var/www/vhosts"),
            mailnames: dir.join("root/var/qmail/mailnames"),
            dump: dir.join("root/var/lib/hostmig/dumps"),
            state: dir.join("state"),
            panel_password: "dest-panel-pw".to_owned(),
            db_servers: servers,
        };
        for d in [&dest.vhosts, &dest.mailnames, &dest.dump] {
            std::fs::create_dir_all(d)
                .map_err(SandboxError::io(format!("create {}", d.display())))?;
        }
        let panel = &dest.db_servers[0];
        let sql = |e| panel.sql_error(e);
        let mut conn = panel.connect(None).await?;
        let fresh: Option<String> = conn
            .query_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'psa'",
            )
            .await
            .map_err(sql)?;
        if fresh.is_none() {
            create_panel(&mut conn, &dest.panel_password)
                .await
                .map_err(sql)?;
            conn.query_drop(
                "INSERT INTO accounts (type, password) VALUES ('plain', 'dest-admin-panel-pw');
                 INSERT INTO clients (login, account_id, pname, cname, locale, cr_date) VALUES ('admin', LAST_INSERT_ID(), 'Administrator', 'Destination Hosting', 'en-US', '2024-01-01')",
            )
            .await
            .map_err(sql)?;
            for (addr, kind) in DESTINATION_IPS {
                conn.exec_drop(
                    "INSERT INTO IP_Addresses (ip_address, type) VALUES (?, ?)",
                    (addr, kind.as_str()),
                )
                .await
                .map_err(sql)?;
            }
            conn.query_drop("INSERT INTO misc (param, val) VALUES ('def_ip_id', '1')")
                .await
                .map_err(sql)?;
        }
        // The servers' ports change on every start: hostmig registers the
        // configured ones (it keeps DatabaseServers in step); old rows go.
        conn.query_drop("DELETE FROM psa.DatabaseServers")
            .await
            .map_err(sql)?;
        conn.disconnect().await.map_err(sql)?;
        Ok(dest)
    }

    /// A whole hostmig configuration for this destination (and a source,
    /// when given): HTTPS on a free loopback port chosen by the kernel.
    pub fn hostmig_config(&self, password_hash: &str, source: Option<&Source>) -> String {
        let panel = &self.db_servers[0];
        let mut out = format!(
            "[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_password_hash = \"{password_hash}\"\n\n\
             [state]\ndir = \"{state}\"\n\n\
             [destination]\npanel_db = \"mysql://admin:{pw}@127.0.0.1:{port}/psa\"\nvhosts_root = \"{vhosts}\"\n\
             mailnames_root = \"{mail}\"\ndump_dir = \"{dump}\"\nfallback_owner = \"root:root\"\n",
            state = self.state.display(),
            pw = self.panel_password,
            port = panel.port,
            vhosts = self.vhosts.display(),
            mail = self.mailnames.display(),
            dump = self.dump.display(),
        );
        for (i, server) in self.db_servers.iter().enumerate() {
            out.push_str(&format!(
                "\n[[destination.db_servers]]\nhost = \"localhost\"\nport = {port}\ntype = \"mysql\"\nurl = \"mysql://root@127.0.0.1:{port}\"\ndefault = {default}\n",
                port = server.port,
                default = i == 0
            ));
        }
        out.push_str(&format!(
            "\n[ssh]\nknown_hosts = \"{}\"\nhost_key_policy = \"accept-new\"\n",
            self.state.join("known_hosts").display()
        ));
        if let Some(source) = source {
            out.push_str(&format!(
                "identity = \"{}\"\n\n{}",
                source.ssh.client_key.display(),
                source.sources_toml()
            ));
        }
        out
    }

    pub fn stop(&mut self) {
        for server in &mut self.db_servers {
            server.stop();
        }
    }
}
