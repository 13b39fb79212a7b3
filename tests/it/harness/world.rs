//! A world for the engine's tests: a real `hostmig serve` against the
//! sandbox's real sshd and MariaDB servers, driven through the API, with
//! the packets and waits the tests share.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hostmig::sandbox::compare;
use hostmig::sandbox::{Destination, Profile, Source};
use mysql_async::prelude::Queryable;

use super::sandbox::rt;
use super::{assert_valid, codes, first, Server};

pub(crate) struct World {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) source: Source,
    pub(crate) dest: Destination,
    pub(crate) server: Server,
    config: String,
    pub(crate) dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn new(profile: Profile, extra_config: &str) -> World {
        World::with_db_servers(profile, extra_config, 1)
    }

    /// A world whose destination has `db_servers` database servers (the
    /// first the default).
    pub(crate) fn with_db_servers(
        profile: Profile,
        extra_config: &str,
        db_servers: usize,
    ) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = rt();
        let (source, dest) = super::sandbox::start_both(&rt, dir.path(), profile, 41, db_servers);
        World::of(rt, dir, source, dest, extra_config)
    }

    /// A world of these servers, with a hostmig server started for them.
    pub(crate) fn of(
        rt: tokio::runtime::Runtime,
        dir: tempfile::TempDir,
        source: Source,
        dest: Destination,
        extra_config: &str,
    ) -> World {
        let config = format!(
            "{}{extra_config}",
            dest.hostmig_config(super::password_hash(), Some(&source))
        );
        let server = Server::start_config(&config, &dest.state);
        World {
            rt,
            source,
            dest,
            server,
            config,
            dir,
        }
    }

    /// The report of a migration (valid by agent_output.xsd).
    pub(crate) fn report(&self, id: &str) -> String {
        let answer = self.exchange(&format!(
            "<get_report><migration_id>{id}</migration_id></get_report>"
        ));
        first(&answer, "result").expect("result")
    }

    /// The tree reports of a migration's event log: (label, report).
    pub(crate) fn tree_reports(&self, id: &str) -> Vec<(String, serde_json::Value)> {
        let log = std::fs::read_to_string(self.dest.state.join(format!("migrations/{id}.jsonl")))
            .expect("event log");
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let e = v.get("event")?;
                Some((
                    e.get("tree")?.as_str()?.to_owned(),
                    e.get("report")?.clone(),
                ))
            })
            .collect()
    }

    /// Stops hostmig (SIGTERM; nothing to do after a SIGKILL) and starts
    /// it again.
    pub(crate) fn restart(&mut self) {
        self.restart_with(str::to_owned);
    }

    /// Starts hostmig again with its configuration changed by `edit`.
    pub(crate) fn restart_with(&mut self, edit: impl FnOnce(&str) -> String) {
        self.server.stop();
        self.server = Server::start_config(&edit(&self.config), &self.dest.state);
    }

    /// Posts a packet (valid by agent_input.xsd); the answer is checked too.
    pub(crate) fn exchange(&self, ops: &str) -> String {
        let request = format!("<packet version=\"1.6.3.0\"><migration>{ops}</migration></packet>");
        assert_valid(&request, "agent_input.xsd");
        let answer = self.server.post(&request);
        assert_valid(&answer, "agent_output.xsd");
        answer
    }

    /// A start with the configured key (empty password), or this password.
    pub(crate) fn start_as(
        &self,
        login: &str,
        password: &str,
        selection: &str,
        extra: &str,
    ) -> Result<String, (u32, String)> {
        let answer = self.exchange(&format!(
            "<start><host>{}</host><login>{login}</login><password>{password}</password>\
             <destination-host-directory/>{extra}<selected-objects>{selection}</selected-objects></start>",
            self.source.ssh_host()
        ));
        match first(&answer, "migration_id") {
            Some(id) => {
                // An id is known to get_status the moment start answers it.
                let status = self.status(&id);
                assert!(
                    !status.contains("<errcode>"),
                    "migration {id} unknown right after start: {status}"
                );
                Ok(id)
            }
            None => Err((
                codes(&answer)[0],
                super::unescape(&first(&answer, "errtext").unwrap_or_default()),
            )),
        }
    }

    pub(crate) fn start(&self, selection: &str) -> Result<String, (u32, String)> {
        self.start_as("root", "", selection, "")
    }

    pub(crate) fn status(&self, id: &str) -> String {
        let answer = self.exchange(&format!(
            "<get_status><migration_id>{id}</migration_id></get_status>"
        ));
        first(&answer, "result").expect("result")
    }

    /// Polls get_status until the migration finished; answers the status.
    /// The bound only catches a hang: on a loaded 2-core CI machine, with
    /// other tests' servers beside it, a copy of tens of MiB can take a
    /// minute.
    pub(crate) fn wait(&self, id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let status = self.status(id);
            if status.contains("<finished>") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "migration {id} did not finish: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn dest_conn(&self) -> mysql_async::Conn {
        self.rt
            .block_on(self.dest.db_servers[0].connect(Some("psa")))
            .expect("destination panel")
    }

    pub(crate) fn source_dump(&self, client: Option<&str>, domain: Option<&str>) -> Vec<String> {
        self.dump(&self.source.db, client, domain)
    }

    pub(crate) fn dest_dump(&self, client: Option<&str>, domain: Option<&str>) -> Vec<String> {
        self.dump(&self.dest.db_servers[0], client, domain)
    }

    /// The panel dump of a client or a domain on one server.
    pub(crate) fn dump(
        &self,
        server: &hostmig::sandbox::mariadb::MariaDb,
        client: Option<&str>,
        domain: Option<&str>,
    ) -> Vec<String> {
        self.rt.block_on(async {
            let mut c = server.connect(Some("psa")).await.expect("panel");
            match (client, domain) {
                (Some(login), _) => compare::panel_client(&mut c, login).await,
                (_, Some(name)) => compare::panel_domain(&mut c, name).await,
                _ => unreachable!("a client or a domain"),
            }
            .expect("dump")
        })
    }

    /// Migrates one domain to `owner` with one address mapped, and checks
    /// that it arrived as the source has it; answers the migration id.
    pub(crate) fn migrate_domain(
        &self,
        owner: &str,
        name: &str,
        (old, new): (&str, &str),
        source_owner: &str,
    ) -> String {
        let id = self
            .start(&mapped_domain(owner, name, (old, new)))
            .expect("started");
        self.wait(&id);
        let rename = (source_owner != owner).then_some((source_owner, owner));
        assert_eq!(
            self.dest_dump(None, Some(name)),
            self.expected(self.source_dump(None, Some(name)), &[(old, new)], rename)
        );
        id
    }

    /// The domain's web and mail trees on the destination equal the
    /// source's but for setid bits, owners and the remapped `conf/` file,
    /// which holds `new` where the source has `old`.
    pub(crate) fn assert_content(&self, name: &str, (old, new): (&str, &str)) {
        let trees = [
            (
                self.source.layout.vhosts.join(name),
                self.dest.vhosts.join(name),
            ),
            (
                self.source.layout.mailnames.join(name),
                self.dest.mailnames.join(name),
            ),
        ];
        for (src, dst) in trees {
            let expected = compare::manifest(&src).expect("source manifest");
            let actual = compare::manifest(&dst).unwrap_or_default();
            let opts = compare::DiffOptions {
                ignore_setid_bits: true,
                content_may_differ: vec![b"conf/vhost.conf".to_vec()],
                ..Default::default()
            };
            assert_eq!(
                compare::diff(&expected, &actual, &opts),
                Vec::<String>::new(),
                "{}",
                dst.display()
            );
        }
        let conf = std::fs::read_to_string(self.dest.vhosts.join(name).join("conf/vhost.conf"))
            .expect("conf");
        let source_conf =
            std::fs::read_to_string(self.source.layout.vhosts.join(name).join("conf/vhost.conf"))
                .expect("source conf");
        assert_eq!(
            conf,
            hostmig::remap::Remap {
                addresses: [(old.to_owned(), new.to_owned())].into(),
                roots: vec![]
            }
            .text(&source_conf)
        );
        assert!(conf.contains(&format!("<VirtualHost {new}:80>")), "{conf}");
    }

    /// The database equals the source's on destination server `server`
    /// (rows value for value, schema), and its users log in there with
    /// their source passwords.
    pub(crate) fn assert_database(&self, name: &str, server: usize) {
        let users = self
            .source
            .model
            .domains
            .iter()
            .flat_map(|d| &d.databases)
            .find(|d| d.name == name)
            .expect("a database of the model")
            .users
            .clone();
        let port = self.dest.db_servers[server].port;
        self.rt.block_on(async {
            let mut src = self.source.db.connect(None).await.expect("source");
            let mut dst = self.dest.db_servers[server]
                .connect(None)
                .await
                .expect("destination");
            let rows = compare::table_rows(&mut src, &mut dst, name)
                .await
                .expect("rows");
            assert!(
                rows.differences.is_empty(),
                "rows of {name}: {:#?}",
                rows.differences
            );
            assert_eq!(
                compare::schema(&mut src, name).await.expect("schema"),
                compare::schema(&mut dst, name).await.expect("schema"),
            );
            for (login, password) in users {
                let url = format!("mysql://{login}:{password}@127.0.0.1:{port}/{name}");
                let mut conn = mysql_async::Conn::from_url(url)
                    .await
                    .expect("the user logs in");
                let _: Vec<u64> = conn
                    .query("SELECT id FROM posts LIMIT 1")
                    .await
                    .expect("select");
                let _ = conn.disconnect().await;
            }
        });
    }

    /// Source dump lines as the destination should hold them.
    pub(crate) fn expected(
        &self,
        lines: Vec<String>,
        map: &[(&str, &str)],
        owner: Option<(&str, &str)>,
    ) -> Vec<String> {
        let map: BTreeMap<&str, &str> = map.iter().copied().collect();
        let roots = [
            (
                self.source.layout.vhosts.display().to_string(),
                self.dest.vhosts.display().to_string(),
            ),
            (
                self.source.layout.mailnames.display().to_string(),
                self.dest.mailnames.display().to_string(),
            ),
        ];
        // Databases go to the destination's default server.
        let servers = (
            format!("localhost:{}", self.source.db.port),
            format!("localhost:{}", self.dest.db_servers[0].port),
        );
        compare::expected_panel(&lines, &map, &roots, (&servers.0, &servers.1), owner)
    }
}

/// Waits up to `limit` for `path` to disappear (staging is removed on a
/// thread of its own); answers whether it did.
pub(crate) fn wait_gone(path: &std::path::Path, limit: Duration) -> bool {
    let t = Instant::now();
    while path.exists() && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    !path.exists()
}

pub(crate) fn ip(kind: &str, old: &str, new: &str) -> String {
    format!("<ip><old><ip-type>{kind}</ip-type><ip-address>{old}</ip-address></old><new><ip-type>{kind}</ip-type><ip-address>{new}</ip-address></new></ip>")
}

pub(crate) fn clients(inner: &str) -> String {
    format!("<migrate-clients><target-owner>admin</target-owner>{inner}</migrate-clients>")
}

pub(crate) fn domains(owner: &str, inner: &str) -> String {
    format!("<migrate-domains><target-owner>{owner}</target-owner>{inner}</migrate-domains>")
}

/// A selection of one domain to `owner`, its shared address `old` mapped
/// to `new`.
pub(crate) fn mapped_domain(owner: &str, name: &str, (old, new): (&str, &str)) -> String {
    domains(
        owner,
        &format!(
            "<domain><name>{name}</name>{}</domain>",
            ip("shared", old, new)
        ),
    )
}

/// Sends `finish`; answers how long until the status said stopped.
pub(crate) fn finish(w: &World, id: &str) -> Duration {
    let t = Instant::now();
    let answer = w.exchange(&format!(
        "<finish><migration_id>{id}</migration_id></finish>"
    ));
    assert!(answer.contains("<status>ok</status>"), "{answer}");
    loop {
        let status = w.status(id);
        if status.contains("<finished>") {
            assert!(status.contains("stopped by finish"), "{status}");
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not stopped: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// jdoe with its pool mapped, and these domains.
pub(crate) fn jdoe_client(domains: &str) -> String {
    clients(&format!(
        "<client><name>jdoe</name>{}{}{domains}</client>",
        ip("shared", "192.0.2.10", "198.51.100.4"),
        ip("exclusive", "192.0.2.20", "203.0.113.5")
    ))
}
