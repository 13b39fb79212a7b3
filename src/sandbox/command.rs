//! `hostmig sandbox`: a whole migration on this machine. Starts a generated
//! source (sshd and MariaDB) and an empty destination (two MariaDB
//! servers), starts `hostmig serve` against them, migrates every client of
//! the source (and the administrator's domains) through the real API as a
//! Plesk client would, shows each migration's progress, verifies what
//! arrived (content manifests, table checksums, panel records), then keeps
//! everything running for packets of the operator's own until Ctrl-C, or
//! stops at once with `--exit`. Every process it started is stopped when it
//! ends, however it ends. Run as root, the source is a host of its own
//! (a network namespace, reachable only over SSH), its link shaped with
//! `--link-mbit`; without root it runs on loopback and says so.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::ApiClient;
use super::model::{HostingKind, SOURCE_IPS};
use super::world::DESTINATION_IPS;
use super::{compare, Destination, Network, Profile, Source, SourceSetup};

pub struct Options {
    pub profile: Profile,
    /// Stop after the summary instead of waiting for Ctrl-C.
    pub exit: bool,
    /// Where everything lives (a new directory under the temporary
    /// directory when `None`; removed at the end unless `keep`).
    pub dir: Option<PathBuf>,
    pub keep: bool,
    /// The `hostmig` binary to run as the server.
    pub binary: PathBuf,
    /// Shape the link to the source's host to this many Mbit/s (root).
    pub link_mbit: Option<u64>,
    /// Start the servers and wait, migrating nothing (the operator drives
    /// hostmig's client against them).
    pub no_migrate: bool,
}

/// The outcome: every migration succeeded and nothing differs.
pub struct Outcome {
    pub migrations: usize,
    pub failed: usize,
    pub differences: Vec<String>,
}

/// Runs the sandbox; `stop` is set by Ctrl-C (or SIGTERM).
pub fn run(opts: &Options, stop: Arc<AtomicBool>) -> Result<Outcome, String> {
    let (dir, temporary) = match &opts.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hostmig-sandbox-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = run_in(opts, &dir, &stop);
    if temporary && !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(opts: &Options, dir: &Path, stop: &AtomicBool) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    say(&format!(
        "starting a {} source (sshd, MariaDB) and a destination (two MariaDB servers) in {}",
        opts.profile.as_str(),
        dir.display()
    ));
    let started = Instant::now();
    let setup = SourceSetup {
        network: match opts.link_mbit {
            Some(_) => Network::Namespace,
            None => Network::Auto,
        },
        link_bits_per_s: opts.link_mbit.map(|m| m * 1_000_000),
        cpus: None,
    };
    let (mut source, mut dest) = rt
        .block_on(async {
            let source = Source::start_with(&dir.join("src"), opts.profile, 1, &setup).await?;
            let dest = Destination::start(&dir.join("dst"), 2).await?;
            Ok::<_, super::SandboxError>((source, dest))
        })
        .map_err(|e| e.to_string())?;
    say(&format!(
        "servers up in {:.1} s; the source runs on {}",
        started.elapsed().as_secs_f64(),
        source.network_text()
    ));
    let outcome = with_servers(opts, dir, &rt, &source, &dest, stop);
    source.stop();
    dest.stop();
    outcome
}

fn with_servers(
    opts: &Options,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
    source: &Source,
    dest: &Destination,
    stop: &AtomicBool,
) -> Result<Outcome, String> {
    let mut password = [0u8; 12];
    getrandom::fill(&mut password).map_err(|e| e.to_string())?;
    let password: String = password.iter().map(|b| format!("{b:02x}")).collect();
    let hash = crate::password::hash_password(&password)?;
    let config = dir.join("hostmig.toml");
    std::fs::write(&config, dest.hostmig_config(&hash, Some(source)))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = dir.join("hostmig.log");
    let mut server = ServerChild::start(&opts.binary, &config, &log)?;
    let client = ApiClient::new(
        server.addr,
        &dest.state.join("tls/cert.pem"),
        "admin",
        &password,
    )?;
    say(&format!("hostmig serve is listening on {}", client.url()));
    if opts.no_migrate {
        where_things_live(dir, &config, &log, source, dest, &client, &password);
        client_usage(source, dest, &server, &password);
        say("the servers keep running; press Ctrl-C to stop them all");
        while !stop.load(Ordering::SeqCst) && server.running() {
            std::thread::sleep(Duration::from_millis(200));
        }
        server.stop();
        say("stopped every process the sandbox started");
        return Ok(Outcome {
            migrations: 0,
            failed: 0,
            differences: Vec::new(),
        });
    }

    let migrations = start_all(&client, source)?;
    let ended = follow(&client, &migrations, stop)?;
    let failed = ended.iter().filter(|s| !s.contains("<success/>")).count();
    for ((label, id), status) in migrations.iter().zip(&ended) {
        if !status.contains("<success/>") {
            say(&format!(
                "migration {id} ({label}) did not succeed: {}",
                strip_tags(status)
            ));
        }
    }
    say("verifying what arrived against the source");
    let (checked, differences) = rt.block_on(verify(source, dest));
    say(&format!(
        "verification: {} content trees, {} databases ({} tables), {} panel dumps compared: {}",
        checked.trees,
        checked.databases,
        checked.tables,
        checked.records,
        if differences.is_empty() {
            "no difference".to_owned()
        } else {
            format!("{} differences", differences.len())
        }
    ));
    for d in &differences {
        say(&format!("  difference: {d}"));
    }
    say(&format!(
        "{} migrations: {} succeeded, {failed} did not",
        migrations.len(),
        migrations.len() - failed
    ));
    where_things_live(dir, &config, &log, source, dest, &client, &password);
    if !opts.exit {
        say("the servers keep running; press Ctrl-C to stop them all");
        while !stop.load(Ordering::SeqCst) && server.running() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    server.stop();
    say("stopped every process the sandbox started");
    Ok(Outcome {
        migrations: migrations.len(),
        failed,
        differences,
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `hostmig serve` as a child process.
struct ServerChild {
    child: Child,
    addr: std::net::SocketAddr,
}

impl ServerChild {
    fn start(binary: &Path, config: &Path, log: &Path) -> Result<Self, String> {
        let log_file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("the server has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("listening on https://") {
                        break a
                            .parse()
                            .map_err(|e| format!("the server printed {a}: {e}"))?;
                    }
                }
                _ => {
                    let _ = child.wait();
                    return Err(format!(
                        "hostmig serve ended at start; see {}",
                        log.display()
                    ));
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerChild { child, addr })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        // SAFETY: SIGTERM to the server this command started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if self.running() {
            self.stop();
        }
    }
}

/// The address map a sandbox migration uses: each source address to the
/// destination address of the same position (and type).
fn address_map() -> Vec<(&'static str, &'static str, &'static str)> {
    SOURCE_IPS
        .iter()
        .zip(DESTINATION_IPS)
        .map(|((old, kind), (new, _))| {
            let kind = match kind {
                super::model::IpKind::Shared => "shared",
                super::model::IpKind::Exclusive => "exclusive",
            };
            (*old, *new, kind)
        })
        .collect()
}

fn ip(index: usize) -> String {
    let (old, new, kind) = address_map()[index];
    format!(
        "<ip><old><ip-type>{kind}</ip-type><ip-address>{old}</ip-address></old>\
         <new><ip-type>{kind}</ip-type><ip-address>{new}</ip-address></new></ip>"
    )
}

/// The addresses the migration of a client (or of the administrator's
/// domains, `None`) maps: its pool and its domains' addresses.
fn migration_map(
    model: &super::model::Model,
    owner: Option<usize>,
) -> BTreeMap<&'static str, &'static str> {
    let map = address_map();
    let mut used: Vec<usize> = owner
        .and_then(|i| model.clients.get(i))
        .map(|c| c.pool.clone())
        .unwrap_or_default();
    for d in model.domains_of(owner) {
        if let HostingKind::Virtual { ip, .. } | HostingKind::Forward { ip, .. } = &d.hosting {
            used.push(*ip);
        }
    }
    used.into_iter().map(|i| (map[i].0, map[i].1)).collect()
}

/// How to drive the sandbox with hostmig's client: the first client of
/// the source, with its domains and address map.
fn client_usage(source: &Source, dest: &Destination, server: &ServerChild, password: &str) {
    let fingerprint = crate::rpc::tls::file_fingerprint(&dest.state.join("tls/cert.pem"))
        .unwrap_or_else(|e| e.to_string());
    say("drive it with hostmig's client:");
    say(&format!(
        "  export HOSTMIG_URL=https://{} HOSTMIG_PASSWORD={password}",
        server.addr
    ));
    let model = &source.model;
    let Some(first) = model.clients.first() else {
        return;
    };
    let mut args = format!("--from root@{} --client {}", source.ssh_host(), first.login);
    for d in model.domains_of(Some(0)) {
        args.push_str(&format!(" --domain {}", d.name));
    }
    let kinds = address_map();
    for (old, new) in migration_map(model, Some(0)) {
        let kind = kinds
            .iter()
            .find(|(o, _, _)| *o == old)
            .map_or("shared", |k| k.2);
        args.push_str(&match kind {
            "exclusive" => format!(" --map exclusive:{old}=exclusive:{new}"),
            _ => format!(" --map {old}={new}"),
        });
    }
    say(&format!(
        "  hostmig --fingerprint {fingerprint} migrate {args} --watch"
    ));
    say(&format!(
        "  hostmig --fingerprint {fingerprint} list; hostmig --fingerprint {fingerprint} report 1"
    ));
}

/// A `<domain>` of a start packet, with its address mapped.
fn domain_element(d: &super::model::Domain) -> String {
    let mapped = match &d.hosting {
        HostingKind::Virtual { ip: i, .. } | HostingKind::Forward { ip: i, .. } => ip(*i),
        HostingKind::None => String::new(),
    };
    format!("<domain><name>{}</name>{mapped}</domain>", d.name)
}

/// Starts one migration per client (with its domains) and one for the
/// administrator's domains; answers (label, id) of each.
fn start_all(client: &ApiClient, source: &Source) -> Result<Vec<(String, String)>, String> {
    let model = &source.model;
    let mut selections = Vec::new();
    for (i, c) in model.clients.iter().enumerate() {
        let domains: String = model.domains_of(Some(i)).map(domain_element).collect();
        let pool: String = c.pool.iter().map(|i| ip(*i)).collect();
        selections.push((
            format!("client {}", c.login),
            format!(
                "<migrate-clients><target-owner>admin</target-owner><client><name>{}</name>{pool}{domains}</client></migrate-clients>",
                c.login
            ),
        ));
    }
    let admin: String = model.domains_of(None).map(domain_element).collect();
    if !admin.is_empty() {
        selections.push((
            "the administrator's domains".to_owned(),
            format!("<migrate-domains><target-owner>admin</target-owner>{admin}</migrate-domains>"),
        ));
    }
    let mut out = Vec::new();
    for (label, selection) in selections {
        let answer = client.post(&format!(
            "<packet version=\"1.6.3.0\"><migration><start><host>{}</host><login>root</login><password></password>\
             <destination-host-directory/><selected-objects>{selection}</selected-objects></start></migration></packet>",
            source.ssh_host()
        ))?;
        match tag(&answer, "migration_id") {
            Some(id) => {
                say(&format!("started migration {id}: {label}"));
                out.push((label, id));
            }
            None => {
                return Err(format!(
                    "start of {label} was refused: {}",
                    strip_tags(&answer)
                ))
            }
        }
    }
    Ok(out)
}

/// Polls every migration until each finished, printing what each does
/// when it changes; answers each one's final status.
fn follow(
    client: &ApiClient,
    migrations: &[(String, String)],
    stop: &AtomicBool,
) -> Result<Vec<String>, String> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err("stopped by Ctrl-C".into());
        }
        let ops: String = migrations
            .iter()
            .map(|(_, id)| format!("<get_status><migration_id>{id}</migration_id></get_status>"))
            .collect();
        let answer = client.post(&format!(
            "<packet version=\"1.6.3.0\"><migration>{ops}</migration></packet>"
        ))?;
        let results: Vec<&str> = answer.split("<get_status>").skip(1).collect();
        let mut finished = Vec::new();
        for ((label, id), result) in migrations.iter().zip(&results) {
            let line = if result.contains("<finished>") {
                finished.push(result.to_string());
                if result.contains("<success/>") {
                    "finished: success".to_owned()
                } else {
                    "finished with errors".to_owned()
                }
            } else {
                let step = format!(
                    "step {} of {}",
                    tag(result, "completed").unwrap_or_default(),
                    tag(result, "total").unwrap_or_default()
                );
                format!("{step}: {}", tag(result, "description").unwrap_or_default())
            };
            if last.get(id) != Some(&line) {
                say(&format!("  [{id}] {label}: {line}"));
                last.insert(id.clone(), line);
            }
        }
        if finished.len() == migrations.len() {
            return Ok(finished);
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
}

#[derive(Default)]
struct Checked {
    trees: usize,
    databases: usize,
    tables: usize,
    records: usize,
}

/// Compares the destination with the source: every hosting domain's web
/// and mail trees, every database's tables (row count and value checksum),
/// the panel records of every client and of the administrator's domains.
async fn verify(source: &Source, dest: &Destination) -> (Checked, Vec<String>) {
    let mut checked = Checked::default();
    let mut differences = Vec::new();
    for d in &source.model.domains {
        let map = migration_map(&source.model, d.owner);
        let addresses = crate::remap::Remap {
            addresses: map
                .iter()
                .map(|(o, n)| (o.to_string(), n.to_string()))
                .collect(),
            roots: Vec::new(),
        };
        if matches!(d.hosting, HostingKind::Virtual { .. }) || !d.mail.is_empty() {
            for (src, dst) in [
                (
                    source.layout.vhosts.join(&d.name),
                    dest.vhosts.join(&d.name),
                ),
                (
                    source.layout.mailnames.join(&d.name),
                    dest.mailnames.join(&d.name),
                ),
            ] {
                if !src.exists() {
                    continue;
                }
                checked.trees += 1;
                let (Ok(expected), Ok(actual)) = (compare::manifest(&src), compare::manifest(&dst))
                else {
                    differences.push(format!("{} cannot be listed", dst.display()));
                    continue;
                };
                let opts = compare::DiffOptions {
                    ignore_setid_bits: true,
                    content_may_differ: vec![b"conf/vhost.conf".to_vec()],
                    ..Default::default()
                };
                for line in compare::diff(&expected, &actual, &opts).into_iter().take(5) {
                    differences.push(format!("{}: {line}", dst.display()));
                }
                // The remapped conf file holds the new addresses.
                let conf = src.join("conf/vhost.conf");
                if let Ok(text) = std::fs::read_to_string(&conf) {
                    let arrived =
                        std::fs::read_to_string(dst.join("conf/vhost.conf")).unwrap_or_default();
                    if arrived != addresses.text(&text) {
                        differences.push(format!(
                            "{}: conf/vhost.conf is not the source's with addresses remapped",
                            dst.display()
                        ));
                    }
                }
            }
        }
    }
    // Databases, on whichever destination server they landed.
    let Ok(mut src) = source.db.connect(None).await else {
        differences.push("the source's MariaDB does not answer".into());
        return (checked, differences);
    };
    for name in source.databases() {
        checked.databases += 1;
        let expected = match compare::table_checksums(&mut src, &name).await {
            Ok(sums) => sums,
            Err(e) => {
                differences.push(format!(
                    "database {name} cannot be checksummed on the source: {e}"
                ));
                continue;
            }
        };
        checked.tables += expected.len();
        let mut found = false;
        for server in &dest.db_servers {
            let Ok(mut conn) = server.connect(None).await else {
                continue;
            };
            let actual = match compare::table_checksums(&mut conn, &name).await {
                Ok(sums) => sums,
                Err(e) => {
                    differences.push(format!(
                        "database {name} cannot be checksummed on localhost:{}: {e}",
                        server.port
                    ));
                    BTreeMap::new()
                }
            };
            let _ = conn.disconnect().await;
            if !actual.is_empty() {
                found = true;
                if actual != expected {
                    differences.push(format!(
                        "database {name} differs on localhost:{}",
                        server.port
                    ));
                }
            }
        }
        if !found {
            differences.push(format!("database {name} is on no destination server"));
        }
    }
    // Panel records, ids resolved to names.
    let roots = [
        (
            source.layout.vhosts.display().to_string(),
            dest.vhosts.display().to_string(),
        ),
        (
            source.layout.mailnames.display().to_string(),
            dest.mailnames.display().to_string(),
        ),
    ];
    let servers = (
        format!("localhost:{}", source.db.port),
        format!("localhost:{}", dest.db_servers[0].port),
    );
    let (Ok(mut sp), Ok(mut dp)) = (
        source.db.connect(Some("psa")).await,
        dest.db_servers[0].connect(Some("psa")).await,
    ) else {
        differences.push("a panel database does not answer".into());
        return (checked, differences);
    };
    let mut dumps = Vec::new();
    for (i, c) in source.model.clients.iter().enumerate() {
        dumps.push((
            compare::panel_client(&mut sp, &c.login).await,
            compare::panel_client(&mut dp, &c.login).await,
            format!("client {}", c.login),
            migration_map(&source.model, Some(i)),
        ));
    }
    for d in source.model.domains_of(None) {
        dumps.push((
            compare::panel_domain(&mut sp, &d.name).await,
            compare::panel_domain(&mut dp, &d.name).await,
            format!("domain {}", d.name),
            migration_map(&source.model, None),
        ));
    }
    for (expected, actual, what, map) in dumps {
        checked.records += 1;
        match (expected, actual) {
            (Ok(expected), Ok(actual)) => {
                let expected = compare::expected_panel(
                    &expected,
                    &map,
                    &roots,
                    (&servers.0, &servers.1),
                    None,
                );
                if expected != actual {
                    differences.push(format!("the panel records of {what} differ"));
                }
            }
            _ => differences.push(format!("the panel records of {what} cannot be read")),
        }
    }
    (checked, differences)
}

fn where_things_live(
    dir: &Path,
    config: &Path,
    log: &Path,
    source: &Source,
    dest: &Destination,
    client: &ApiClient,
    password: &str,
) {
    say("where things live:");
    say(&format!("  sandbox directory:   {}", dir.display()));
    say(&format!("  hostmig config:      {}", config.display()));
    say(&format!("  hostmig log:         {}", log.display()));
    say(&format!("  journal, event logs: {}", dest.state.display()));
    say(&format!(
        "  source over SSH:     root@{} (key {})",
        source.ssh_host(),
        source.ssh.client_key.display()
    ));
    match &source.host {
        Some(h) => say(&format!(
            "  source MariaDB:      127.0.0.1:{port} of the source's host, over SSH only (ssh -L 3307:127.0.0.1:{port} root@{addr}), or: ip netns exec {ns} mariadb -h127.0.0.1 -P{port} -uroot",
            port = source.db.port,
            addr = h.source_addr,
            ns = h.name
        )),
        None => say(&format!(
            "  source MariaDB:      127.0.0.1:{}",
            source.db.port
        )),
    }
    for (i, s) in dest.db_servers.iter().enumerate() {
        say(&format!(
            "  destination MariaDB {i}: 127.0.0.1:{} (root, no password)",
            s.port
        ));
    }
    say(&format!(
        "  destination content: {} and {}",
        dest.vhosts.display(),
        dest.mailnames.display()
    ));
    say("send a packet of your own:");
    say(&format!(
        "  curl -sk {} -H 'HTTP_AUTH_LOGIN: admin' -H 'HTTP_AUTH_PASSWD: {password}' -d '<packet version=\"1.6.3.0\"><migration><get_status><migration_id>1</migration_id></get_status></migration></packet>'",
        client.url()
    ));
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// A status without its markup, for a terminal.
fn strip_tags(xml: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in xml.chars() {
        match c {
            '<' => {
                inside = true;
                out.push(' ');
            }
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
