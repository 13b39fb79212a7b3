//! The benchmark runner (not a test): builds a sandbox fixture once per
//! profile and seed (kept in target/bench-fixtures/), then runs named
//! scenarios against it and measures, in the same run and on the same
//! fixture, the tools an operator would use instead of hostmig:
//!
//! * `tar-ssh`: `ssh src 'tar c' | tar x` of the largest domain's web tree;
//! * `rsync-initial` and `rsync-nochange`: `rsync -a` over ssh, then again;
//! * `mysqldump`: `mysqldump --single-transaction | mysql` of the largest database;
//! * `mydumper`: `mydumper -t 4` then `myloader -t 4` of the same database.
//!
//! and hostmig's own, each against a fresh destination and a release
//! `hostmig serve` driven through its API:
//!
//! * `hostmig-archive`, `hostmig-rsync`: a domain migration (`only-hosting`)
//!   of the same domain by each transport, from `start` until `finished`
//!   (login, planning, listing, hashing, copy, verification, records; its
//!   databases hidden from the panel meanwhile, so content alone is timed);
//! * `hostmig-resync`: then `resync` with nothing changed, until `finished`;
//! * `hostmig-database`: hostmig's database copy of the same database as a
//!   migration runs it (4 connections sharing one snapshot, through an SSH
//!   tunnel with a session per connection, chunked, verified per chunk,
//!   objects and all), in this process, its peak RSS measured from a reset.
//!
//! Content scenarios run `HOSTMIG_BENCH_ROUNDS` rounds (default 3),
//! peers and hostmig interleaved, the disk synced before each run; a row's
//! wall time is the median of its rounds. Each row: wall time, throughput, peak RSS (the peers: wait4's
//! ru_maxrss, largest process of the pipeline; hostmig: the server's
//! VmHWM), and for hostmig rows the ratio to the peer it is measured
//! against (peer time / hostmig time: above 1 is faster). Prints a table
//! and writes target/bench/sandbox-PROFILE.json.
//!
//! `HOSTMIG_BENCH_PROFILE` (tiny|small|medium|large, default small),
//! `HOSTMIG_BENCH_SEED` (default 1), `HOSTMIG_BENCH_ONLY` (comma-separated
//! scenario names), `HOSTMIG_BENCH_KEEP=1` (keep the work directory: a
//! mass deletion slows file creation on ext4 for minutes after, which
//! would weigh on a run started right after this one). Run: `cargo bench
//! --bench sandbox`.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostmig::sandbox::{Destination, Network, Source, SourceSetup};
use mysql_async::prelude::Queryable;

mod common;

struct Row {
    scenario: &'static str,
    tool: String,
    wall: Duration,
    amount: f64,
    unit: &'static str,
    peak_rss_kib: u64,
    /// For hostmig rows: the peer row (by tool) it is compared with.
    versus: Option<&'static str>,
    /// Every round's wall time (the row's is their median).
    rounds: Vec<Duration>,
}

const TAR_SSH: &str = "ssh src 'tar c' | tar x";
const RSYNC_INITIAL: &str = "rsync -a over ssh (initial)";
const HOSTMIG_ARCHIVE: &str = "hostmig archive (domain migration)";
const HOSTMIG_RSYNC: &str = "hostmig rsync (domain migration)";
const HOSTMIG_RESYNC: &str = "hostmig resync (no change)";
const RSYNC_NOCHANGE: &str = "rsync -a over ssh (no change)";
const PASSWORD: &str = "bench-admin-password";
const MYDUMPER: &str = "mydumper then myloader (same threads)";
const MYSQLDUMP: &str = "mysqldump --single-transaction | mysql";
const HOSTMIG_DATABASE: &str = "hostmig database copy (through its tunnel)";
/// Connections hostmig's copy reads with (as a migration does), and
/// mydumper's and myloader's threads.
const DB_THREADS: usize = hostmig::migration::databases::DB_CONNECTIONS;

fn main() {
    let (profile, seed) = common::profile_and_seed("small");
    let only: Option<Vec<String>> = std::env::var("HOSTMIG_BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let fixture = target.join(format!("bench-fixtures/{}-{seed}", profile.as_str()));
    let work = tempfile::tempdir_in(&target).expect("work dir");
    let keep = std::env::var("HOSTMIG_BENCH_KEEP").is_ok_and(|k| k == "1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // HOSTMIG_BENCH_LINK_MBIT shapes the link to the source's host (root);
    // HOSTMIG_BENCH_PIN=1 puts the source's processes on the last core and
    // everything of the destination's (this process and what it starts:
    // servers, hostmig, the peers' local ends) on the others.
    let link_mbit: Option<u64> = std::env::var("HOSTMIG_BENCH_LINK_MBIT").ok().map(|m| {
        m.parse()
            .expect("HOSTMIG_BENCH_LINK_MBIT: a number of Mbit/s")
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = std::env::var("HOSTMIG_BENCH_PIN").is_ok_and(|p| p == "1") && cores > 1;
    let setup = SourceSetup {
        network: if link_mbit.is_some() {
            Network::Namespace
        } else {
            Network::Auto
        },
        link_bits_per_s: link_mbit.map(|m| m * 1_000_000),
        cpus: pinned.then(|| vec![cores - 1]),
    };
    let t = Instant::now();
    let source = rt
        .block_on(Source::start_with(&fixture, profile, seed, &setup))
        .expect("source");
    let _pin = pinned.then(|| {
        hostmig::sandbox::process::Pin::this_thread(&(0..cores - 1).collect::<Vec<_>>())
            .expect("pin the destination's side")
    });
    println!(
        "source: {}{}",
        source.network_text(),
        if pinned {
            format!(
                "; source on core {}, destination on cores 0-{}",
                cores - 1,
                cores - 2
            )
        } else {
            String::new()
        }
    );
    let source_start = t.elapsed();
    let t = Instant::now();
    let dest = rt
        .block_on(Destination::start(&work.path().join("dst"), 2))
        .expect("destination");
    let dest_start = t.elapsed();
    println!(
        "profile {} seed {seed}: fixture in {}",
        profile.as_str(),
        fixture.display()
    );
    match source.generated_in {
        Some(g) => println!(
            "generated the source in {:.1} s (start-up and generation: {:.1} s)",
            g.as_secs_f64(),
            source_start.as_secs_f64()
        ),
        None => println!(
            "reused the kept fixture; source start-up {:.2} s",
            source_start.as_secs_f64()
        ),
    }
    println!(
        "destination start-up (2 MariaDB servers, panel schema): {:.2} s",
        dest_start.as_secs_f64()
    );

    // The largest web tree and the largest database of the source.
    let domain = source
        .model
        .hosting_domains()
        .max_by_key(|d| tree_size(&source.layout.vhosts.join(&d.name)).0)
        .expect("a hosting domain")
        .name
        .clone();
    let (bytes, files) = tree_size(&source.layout.vhosts.join(&domain));
    let database = rt.block_on(largest_database(&source)).expect("a database");
    let rows = rt.block_on(row_count(&source, &database));
    println!(
        "content: {domain} ({:.1} MiB in {files} files); database: {database} ({rows} rows)",
        bytes as f64 / 1048576.0
    );

    let ssh = ssh_options(&source);
    let mut table = Vec::new();
    let mib = bytes as f64 / 1048576.0;
    // The content scenarios measure content: the domain's databases are
    // hidden from the source's panel meanwhile (a domain migration would
    // copy them too; `hostmig-database` measures that on its own).
    rt.block_on(hide_databases(&source, &domain, true));
    // Content scenarios: `rounds` rounds, peers and hostmig interleaved,
    // each from a synced disk into a directory of its own (nothing is
    // deleted until the end: ext4 makes creating files right after mass
    // deletions slow, and that would favour whoever runs first); each row
    // is the median of its rounds.
    let rounds: usize = std::env::var("HOSTMIG_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut samples = Samples::default();
    for round in 0..rounds {
        println!("content round {} of {rounds}", round + 1);
        if wanted("tar-ssh") {
            let out = work.path().join(format!("tar-ssh-{round}"));
            std::fs::create_dir_all(&out).expect("out");
            settle();
            let mut remote = Command::new("ssh");
            remote
                .args(&ssh)
                .arg(format!("root@{}", source.ssh.addr))
                .arg(format!(
                    "tar -C {} -cf - {domain}",
                    source.layout.vhosts.display()
                ));
            let mut local = Command::new("tar");
            local.arg("-C").arg(&out).arg("-xf").arg("-");
            let (wall, rss) = pipeline(vec![remote, local]);
            samples.add("content", TAR_SSH, wall, mib, "MiB", rss, None);
        }
        if wanted("rsync-initial") || wanted("rsync-nochange") {
            let out = work.path().join(format!("rsync-{round}"));
            settle();
            let run = || {
                let mut cmd = Command::new("rsync");
                cmd.arg("-a")
                    .arg("-e")
                    .arg(format!("ssh {}", ssh.join(" ")))
                    .arg(format!(
                        "root@{}:{}/{domain}/",
                        source.ssh.addr,
                        source.layout.vhosts.display()
                    ))
                    .arg(&out);
                pipeline(vec![cmd])
            };
            let (wall, rss) = run();
            samples.add("content", RSYNC_INITIAL, wall, mib, "MiB", rss, None);
            let (wall, rss) = run();
            samples.add(
                "resync",
                RSYNC_NOCHANGE,
                wall,
                files as f64,
                "files",
                rss,
                None,
            );
        }
        for transport in ["archive", "rsync"] {
            let scenario = if transport == "archive" {
                "hostmig-archive"
            } else {
                "hostmig-rsync"
            };
            let resync = transport == "rsync" && wanted("hostmig-resync");
            if !wanted(scenario) && !resync {
                continue;
            }
            let run = HostmigRun::start(
                &rt,
                &source,
                &work.path().join(format!("{transport}-{round}")),
            );
            settle();
            let ip = source.model.hosting_ip(&domain).expect("hosting address");
            let mapping = format!("<ip><old><ip-type>shared</ip-type><ip-address>{ip}</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip>");
            let (wall, id) = run.timed(&format!(
                "<start><host>{}</host><login>root</login><password/><destination-host-directory/>\
                 <content-transport>{transport}</content-transport><only-hosting/><selected-objects><migrate-domains>\
                 <target-owner>admin</target-owner><domain><name>{domain}</name>{mapping}</domain></migrate-domains></selected-objects></start>",
                source.ssh_host()
            ));
            let sent = run.sent_bytes(&id);
            assert_eq!(
                sent, bytes,
                "hostmig {transport} sent {sent} of {bytes} bytes"
            );
            let tool = if transport == "archive" {
                HOSTMIG_ARCHIVE
            } else {
                HOSTMIG_RSYNC
            };
            samples.add(
                "content",
                tool,
                wall,
                mib,
                "MiB",
                run.peak_rss_kib(),
                Some(TAR_SSH),
            );
            if resync {
                let (wall, new) = run.timed(&format!(
                    "<resync><migration_id>{id}</migration_id></resync>"
                ));
                assert_eq!(run.sent_bytes(&new), 0, "a no-change resync sends nothing");
                samples.add(
                    "resync",
                    HOSTMIG_RESYNC,
                    wall,
                    files as f64,
                    "files",
                    run.peak_rss_kib(),
                    Some(RSYNC_NOCHANGE),
                );
            }
            run.stop();
        }
    }
    table.extend(samples.medians());
    rt.block_on(hide_databases(&source, &domain, false));
    let dst = &dest.db_servers[0];
    // The peers reach the source's database as hostmig does: through SSH
    // (an OpenSSH -L forward), the only way into a real source.
    let forward = (wanted("mysqldump") || wanted("mydumper")).then(|| SshForward::open(&source));
    let source_db_port = forward.as_ref().map_or(0, |f| f.port);
    if wanted("mysqldump") {
        rt.block_on(fresh_database(dst, "copy_mysqldump"));
        let mut dump = db_client("mysqldump", source_db_port);
        dump.args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
        ])
        .arg(&database);
        let mut load = db_client("mariadb", dst.port);
        load.arg("copy_mysqldump");
        let (wall, rss) = pipeline(vec![dump, load]);
        table.push(Row {
            scenario: "database",
            tool: MYSQLDUMP.into(),
            wall,
            amount: rows as f64,
            unit: "rows",
            peak_rss_kib: rss,
            versus: None,
            rounds: Vec::new(),
        });
    }
    if wanted("mydumper") {
        rt.block_on(fresh_database(dst, "copy_mydumper"));
        let dir = work.path().join("mydumper");
        let mut dump = db_client("mydumper", source_db_port);
        dump.args(["-t", &DB_THREADS.to_string(), "-R", "-G", "-E", "-B"])
            .arg(&database)
            .arg("-o")
            .arg(&dir);
        let mut load = db_client("myloader", dst.port);
        load.args([
            "-t",
            &DB_THREADS.to_string(),
            "-o",
            "-B",
            "copy_mydumper",
            "-d",
        ])
        .arg(&dir);
        let t = Instant::now();
        let (_, rss_dump) = pipeline(vec![dump]);
        let (_, rss_load) = pipeline(vec![load]);
        table.push(Row {
            scenario: "database",
            tool: MYDUMPER.into(),
            wall: t.elapsed(),
            amount: rows as f64,
            unit: "rows",
            peak_rss_kib: rss_dump.max(rss_load),
            versus: None,
            rounds: Vec::new(),
        });
    }

    let mut versus_mysqldump = None;
    if wanted("hostmig-database") {
        let (row, ratio_dump) =
            hostmig_database(&rt, &source, &dest, &database, rows, work.path(), &table);
        versus_mysqldump = ratio_dump;
        table.push(row);
    }

    print_table(&table);
    if let Some(r) = versus_mysqldump {
        println!("hostmig database copy versus mysqldump --single-transaction | mysql: {r:.2}x");
    }
    let mut json = format!(
        "{{\"benchmark\":\"sandbox\",\"profile\":\"{}\",\"seed\":{seed},\"source_start_s\":{:.3},\"generation_s\":{},\"destination_start_s\":{:.3},\
         \"content_domain\":\"{domain}\",\"content_bytes\":{bytes},\"content_files\":{files},\"database\":\"{database}\",\"database_rows\":{rows},\"rows\":[",
        profile.as_str(),
        source_start.as_secs_f64(),
        source.generated_in.map_or("null".to_owned(), |g| format!("{:.3}", g.as_secs_f64())),
        dest_start.as_secs_f64(),
    );
    for (i, r) in table.iter().enumerate() {
        let _ = write!(
            json,
            "{}{{\"scenario\":\"{}\",\"tool\":\"{}\",\"wall_s\":{:.3},\"amount\":{},\"unit\":\"{}\",\"per_s\":{:.1},\"peak_rss_kib\":{},\"versus\":{},\"hostmig_ratio\":{},\"rounds_s\":[{}]}}",
            if i > 0 { "," } else { "" },
            r.scenario,
            r.tool.replace('\'', "\\u0027"),
            r.wall.as_secs_f64(),
            r.amount,
            r.unit,
            r.amount / r.wall.as_secs_f64(),
            r.peak_rss_kib,
            r.versus.map_or("null".to_owned(), |v| format!("\"{}\"", v.replace('\'', "\\u0027"))),
            ratio(&table, r).map_or("null".to_owned(), |x| format!("{x:.2}")),
            r.rounds
                .iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    json.push_str("]}\n");
    let out = target.join("bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    let path = out.join(format!("sandbox-{}.json", profile.as_str()));
    std::fs::write(&path, json).expect("json");
    println!("written: {}", path.display());
    if keep {
        println!("kept: {}", work.keep().display());
    }
}

/// Every round's measurement of each tool, in first-seen order.
#[derive(Default)]
struct Samples {
    rows: Vec<(Row, Vec<Duration>)>,
}

impl Samples {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        scenario: &'static str,
        tool: &str,
        wall: Duration,
        amount: f64,
        unit: &'static str,
        rss: u64,
        versus: Option<&'static str>,
    ) {
        match self.rows.iter_mut().find(|(r, _)| r.tool == tool) {
            Some((row, walls)) => {
                walls.push(wall);
                row.peak_rss_kib = row.peak_rss_kib.max(rss);
            }
            None => self.rows.push((
                Row {
                    scenario,
                    tool: tool.to_owned(),
                    wall,
                    amount,
                    unit,
                    peak_rss_kib: rss,
                    versus,
                    rounds: Vec::new(),
                },
                vec![wall],
            )),
        }
    }

    /// One row per tool: the median wall time, every round kept.
    fn medians(self) -> Vec<Row> {
        self.rows
            .into_iter()
            .map(|(mut row, mut walls)| {
                row.rounds = walls.clone();
                walls.sort();
                row.wall = walls[walls.len() / 2];
                row
            })
            .collect()
    }
}

/// Flushes dirty pages so that each run starts from the same disk state.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(500));
}

/// Peer time / hostmig time, for a hostmig row whose peer ran.
fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let peer = rows.iter().find(|p| Some(p.tool.as_str()) == row.versus)?;
    Some(peer.wall.as_secs_f64() / row.wall.as_secs_f64())
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<10} {:<42} {:>10} {:>18} {:>14} {:>22}",
        "scenario", "tool", "wall s", "throughput", "peak RSS MiB", "vs peer (x faster)"
    );
    for r in rows {
        println!(
            "{:<10} {:<42} {:>10.2} {:>18} {:>14.1} {:>22}",
            r.scenario,
            r.tool,
            r.wall.as_secs_f64(),
            format!("{:.1} {}/s", r.amount / r.wall.as_secs_f64(), r.unit),
            r.peak_rss_kib as f64 / 1024.0,
            ratio(rows, r).map_or("".to_owned(), |x| format!("{x:.2}x"))
        );
        if r.rounds.len() > 1 {
            let each: Vec<String> = r
                .rounds
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            println!("{:<10} {:<42} rounds: {} s", "", "", each.join(", "));
        }
    }
}

/// A fresh destination with a release `hostmig serve` against it.
struct HostmigRun {
    dest: Destination,
    server: common::Server,
    agent: ureq::Agent,
}

impl HostmigRun {
    fn start(rt: &tokio::runtime::Runtime, source: &Source, dir: &Path) -> HostmigRun {
        std::fs::create_dir_all(dir).expect("dir");
        let dest = rt
            .block_on(Destination::start(&dir.join("dst"), 1))
            .expect("destination");
        let config = dest.hostmig_config(&common::hash_password(PASSWORD), Some(source));
        let server = common::Server::start(&config, dir, &dest.state);
        let agent = common::agent(&server.cert);
        HostmigRun {
            dest,
            server,
            agent,
        }
    }

    fn post(&self, ops: &str) -> String {
        common::post(
            &self.agent,
            &self.server.url,
            PASSWORD,
            &format!("<packet version=\"1.6.3.0\"><migration>{ops}</migration></packet>"),
        )
    }

    /// Sends a `start` or `resync`, polls until the new migration
    /// finished; answers the wall time and its id.
    fn timed(&self, op: &str) -> (Duration, String) {
        let t = Instant::now();
        let answer = self.post(op);
        let id = answer
            .split("<migration_id>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_else(|| panic!("not started: {answer}"))
            .to_owned();
        loop {
            let status = self.post(&format!(
                "<get_status><migration_id>{id}</migration_id></get_status>"
            ));
            if status.contains("<finished>") {
                let wall = t.elapsed();
                // A tree not copied or not verified fails the run (the
                // content scenarios hide the domain's databases).
                let content_failed =
                    status.contains("was not copied") || status.contains("verification");
                assert!(!content_failed, "migration {id} failed: {status}");
                return (wall, id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// File bytes sent, from the migration's event log; prints where each
    /// tree's time went.
    fn sent_bytes(&self, id: &str) -> u64 {
        let log = std::fs::read_to_string(self.dest.state.join(format!("migrations/{id}.jsonl")))
            .expect("event log");
        let events: Vec<serde_json::Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect();
        let start = events
            .first()
            .and_then(|e| e.get("at")?.as_u64())
            .unwrap_or(0);
        let mut sent = 0;
        for e in &events {
            let at = e.get("at").and_then(|a| a.as_u64()).unwrap_or(0) - start;
            let Some(event) = e.get("event") else {
                continue;
            };
            if let Some(report) = event.get("report") {
                sent += report
                    .get("sent_bytes")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                println!(
                    "  migration {id} +{at} ms: {} {}",
                    event["tree"], report["timings"]
                );
            } else if let Some(phase) = event.get("phase") {
                println!("  migration {id} +{at} ms: {phase}");
            }
        }
        sent
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn stop(self) {
        self.server.stop();
        let mut dest = self.dest;
        dest.stop();
    }
}

/// A MySQL client tool pointed at root on a sandbox server.
fn db_client(program: &str, port: u16) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-h", "127.0.0.1", "-P", &port.to_string(), "-u", "root"]);
    cmd
}

/// `ssh -N -L` from a free local port to the source's MariaDB on the
/// source's loopback; closed when dropped.
struct SshForward {
    child: std::process::Child,
    port: u16,
}

impl SshForward {
    fn open(source: &Source) -> SshForward {
        let port = hostmig::sandbox::free_port().expect("port");
        let child = Command::new("ssh")
            .args(ssh_options(source))
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("127.0.0.1:{port}:127.0.0.1:{}", source.db.port))
            .arg(format!("root@{}", source.ssh.addr))
            .spawn()
            .expect("ssh -L");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ssh -L did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        SshForward { child, port }
    }
}

impl Drop for SshForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ssh options for the source, trusting its throwaway host key.
fn ssh_options(source: &Source) -> Vec<String> {
    vec![
        "-i".into(),
        source.ssh.client_key.display().to_string(),
        "-p".into(),
        source.ssh.port.to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

/// Runs the commands as a pipeline; answers the wall time and the largest
/// peak RSS among them. Panics when any fails.
fn pipeline(mut commands: Vec<Command>) -> (Duration, u64) {
    let started = Instant::now();
    let mut children = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    let last = commands.len() - 1;
    for (i, cmd) in commands.iter_mut().enumerate() {
        if let Some(out) = previous.take() {
            cmd.stdin(Stdio::from(out));
        }
        cmd.stdout(if i < last {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        previous = child.stdout.take();
        children.push(child);
    }
    let mut peak = 0;
    for child in children {
        let (status, rss) = wait4(child.id());
        assert!(status.success(), "a benchmark command failed: {status}");
        peak = peak.max(rss);
    }
    (started.elapsed(), peak)
}

fn wait4(pid: u32) -> (std::process::ExitStatus, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for a child of ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child process.
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid as i32, "wait4 failed");
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as u64,
    )
}

fn tree_size(root: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                if meta.is_file() {
                    bytes += meta.size();
                }
            }
        }
    }
    (bytes, files)
}

async fn largest_database(source: &Source) -> Option<String> {
    let mut conn = source.db.connect(None).await.expect("source");
    let mut best: Option<(u64, String)> = None;
    for db in source.databases() {
        let size: Option<u64> = conn
            .exec_first(
                "SELECT CAST(SUM(DATA_LENGTH + INDEX_LENGTH) AS UNSIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (&db,),
            )
            .await
            .expect("size");
        let size = size.unwrap_or(0);
        if best.as_ref().is_none_or(|(b, _)| size > *b) {
            best = Some((size, db));
        }
    }
    best.map(|(_, db)| db)
}

async fn row_count(source: &Source, db: &str) -> u64 {
    let mut conn = source.db.connect(Some(db)).await.expect("source");
    let tables: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
            (db,),
        )
        .await
        .expect("tables");
    let mut total = 0;
    for table in tables {
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM `{table}`"))
            .await
            .expect("count");
        total += n.unwrap_or(0);
    }
    total
}

async fn fresh_database(server: &hostmig::sandbox::mariadb::MariaDb, name: &str) {
    let mut conn = server.connect(None).await.expect("destination");
    conn.query_drop(format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
    ))
    .await
    .expect("create");
}

/// hostmig's copy of the largest database, as a migration runs it: the
/// source's server reached through an SSH tunnel (a session per
/// connection), into the second destination server; the process's peak
/// RSS is reset first and read after. Answers the row and the ratio
/// versus mysqldump.
fn hostmig_database(
    rt: &tokio::runtime::Runtime,
    source: &Source,
    dest: &Destination,
    database: &str,
    rows: u64,
    dir: &Path,
    table: &[Row],
) -> (Row, Option<f64>) {
    let (login, opts) = source.root_login(dir);
    let target = &dest.db_servers[1];
    rt.block_on(async {
        let mut c = target.connect(None).await.expect("target");
        c.query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
            .await
            .expect("drop");
    });
    settle();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let tunnel =
        hostmig::ssh::Tunnel::open(login, opts, "localhost", source.db.port).expect("tunnel");
    let job = hostmig::db::DbJob {
        name: database.to_owned(),
        source: tunnel.mysql_opts("admin", &source.admin_password).into(),
        target: mysql_async::Opts::from_url(&target.root_url(None)).expect("url"),
        target_label: format!("localhost:{}", target.port),
        stage: "hostmig_bench_0".into(),
        resume_stage: false,
        users: Vec::new(),
        connections: DB_THREADS,
        chunk_rows: hostmig::db::rows::CHUNK_ROWS,
        load_data: true,
        retry: hostmig::retry::RetryPolicy::default(),
    };
    let recorder = hostmig::db::Recorder {
        record: Box::new(|_, _| Box::pin(async { Ok(()) })),
        created_account: Box::new(|_, _| false),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = rt
        .block_on(hostmig::db::copy_database(
            &job,
            &recorder,
            &stop,
            &mut |_| {},
        ))
        .unwrap_or_else(|e| panic!("hostmig's database copy failed: {e}"));
    let wall = started.elapsed();
    assert!(
        tunnel.carried() > report.bytes / 2,
        "every value must cross the SSH tunnel"
    );
    drop(tunnel);
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    println!(
        "hostmig database copy: {} tables, {} chunks, {} rows, {:.1} MiB of values, global read lock held {} ms",
        report.tables,
        report.chunks,
        report.rows,
        report.bytes as f64 / 1048576.0,
        report.lock_ms
    );
    let row = Row {
        scenario: "database",
        tool: HOSTMIG_DATABASE.into(),
        wall,
        amount: rows as f64,
        unit: "rows",
        peak_rss_kib: peak,
        versus: Some(MYDUMPER),
        rounds: Vec::new(),
    };
    let versus_mysqldump = table
        .iter()
        .find(|r| r.tool == MYSQLDUMP)
        .map(|r| r.wall.as_secs_f64() / wall.as_secs_f64());
    (row, versus_mysqldump)
}

/// Hides a domain's databases from the source's panel (their rows point
/// at no domain), or shows every hidden one again (also those an
/// interrupted run left hidden in the kept fixture).
async fn hide_databases(source: &Source, domain: &str, hide: bool) {
    const HIDDEN: u64 = 1_000_000_000;
    let mut conn = source.db.connect(Some("psa")).await.expect("panel");
    conn.exec_drop(
        "UPDATE data_bases SET dom_id = dom_id - ? WHERE dom_id >= ?",
        (HIDDEN, HIDDEN),
    )
    .await
    .expect("show the databases");
    if hide {
        conn.exec_drop(
            "UPDATE data_bases SET dom_id = dom_id + ? WHERE dom_id = (SELECT id FROM domains WHERE name = ?)",
            (HIDDEN, domain),
        )
        .await
        .expect("hide the databases");
    }
}
