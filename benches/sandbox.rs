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
    /// What crossed the link and the CPU both sides spent (last round).
    cost: Cost,
}

/// Bytes on the source's link and CPU seconds on each side of one run.
#[derive(Clone, Copy, Default)]
struct Cost {
    wire_bytes: Option<u64>,
    source_cpu_s: f64,
    destination_cpu_s: f64,
}

const TAR_SSH: &str = "ssh src 'tar c' | tar x";
const ZSTD_PIPE: &str = "ssh src 'tar c | zstd -1' | zstd -d | tar x";
const RSYNC_Z: &str = "rsync -az over ssh";
const SAME_GUARANTEE: &str = "tar over ssh, then b2sum both sides, compared";
const MYSQLDUMP_Z: &str = "mysqldump --compress | mysql";
const MYDUMPER_Z: &str = "mydumper -C then myloader (same threads)";
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
    let link_mbit: Option<u64> = std::env::var("HOSTMIG_BENCH_LINK_MBIT")
        .ok()
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.parse()
                .expect("HOSTMIG_BENCH_LINK_MBIT: a number of Mbit/s")
        });
    // HOSTMIG_BENCH_LINK_NAME (lan, 1gbit, 100mbit) names the run and puts
    // the source on a host of its own even unshaped, so that what crosses
    // its link is counted.
    let link_name = std::env::var("HOSTMIG_BENCH_LINK_NAME")
        .ok()
        .filter(|n| !n.is_empty());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = std::env::var("HOSTMIG_BENCH_PIN").is_ok_and(|p| p == "1") && cores > 1;
    let setup = SourceSetup {
        network: if link_mbit.is_some() || link_name.is_some() {
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
        // Not the hard cases' domain: its sparse file's apparent size
        // would make it look the largest.
        .filter(|d| !d.hard_cases)
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

    let (web_raw, web_packed) = zstd_ratio(&source.layout.vhosts.join(&domain));
    let (mail_raw, mail_packed) = zstd_ratio(&source.layout.mailnames);
    println!(
        "fixture zstd -3 ratios: web tree of {domain} {:.2} ({:.1} MiB), all mail {:.2} ({:.1} MiB)",
        web_raw as f64 / web_packed.max(1) as f64,
        web_raw as f64 / 1048576.0,
        mail_raw as f64 / mail_packed.max(1) as f64,
        mail_raw as f64 / 1048576.0
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
        let remote_tar = |compress: &str| {
            let mut remote = Command::new("ssh");
            remote
                .args(&ssh)
                .arg(format!("root@{}", source.ssh.addr))
                .arg(format!(
                    "tar -C {} -cf - {domain}{compress}",
                    source.layout.vhosts.display()
                ));
            remote
        };
        let untar = |out: &Path| {
            let mut local = Command::new("tar");
            local.arg("-C").arg(out).arg("-xf").arg("-");
            local
        };
        if wanted("tar-ssh") {
            let out = work.path().join(format!("tar-ssh-{round}"));
            std::fs::create_dir_all(&out).expect("out");
            settle();
            let gauge = Gauge::start(&source);
            let (wall, rss, cpu) = pipeline(vec![remote_tar(""), untar(&out)]);
            let cost = gauge.cost(&source, cpu);
            samples.add("content", TAR_SSH, wall, mib, "MiB", rss, None, cost);
        }
        if wanted("zstd-pipe") {
            let out = work.path().join(format!("zstd-pipe-{round}"));
            std::fs::create_dir_all(&out).expect("out");
            settle();
            let gauge = Gauge::start(&source);
            let mut unzstd = Command::new("zstd");
            unzstd.args(["-d", "-q", "-c"]);
            let (wall, rss, cpu) =
                pipeline(vec![remote_tar(" | zstd -1 -q -c"), unzstd, untar(&out)]);
            let cost = gauge.cost(&source, cpu);
            samples.add("content", ZSTD_PIPE, wall, mib, "MiB", rss, None, cost);
        }
        if wanted("same-guarantee") {
            // What hostmig guarantees, by hand: the copy, then every
            // file's hash on both sides (at once), compared.
            let out = work.path().join(format!("same-guarantee-{round}"));
            std::fs::create_dir_all(&out).expect("out");
            settle();
            let gauge = Gauge::start(&source);
            let t = Instant::now();
            let (_, rss, cpu_copy) = pipeline(vec![remote_tar(""), untar(&out)]);
            let hashes = "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r b2sum";
            let mut theirs = Command::new("ssh");
            theirs
                .args(&ssh)
                .arg(format!("root@{}", source.ssh.addr))
                .arg(format!(
                    "cd {}/{domain} && {hashes}",
                    source.layout.vhosts.display()
                ));
            let mut ours = Command::new("sh");
            ours.arg("-c")
                .arg(format!("cd {}/{domain} && {hashes}", out.display()));
            let hashing_cpu = children_cpu_s();
            let (a, b) = std::thread::scope(|scope| {
                let a = scope.spawn(|| theirs.output().expect("source hashes"));
                let b = ours.output().expect("destination hashes");
                (a.join().expect("thread"), b)
            });
            assert!(a.status.success() && b.status.success(), "hashing failed");
            assert!(a.stdout == b.stdout, "the copy differs from the source");
            let wall = t.elapsed();
            let cost = gauge.cost(&source, cpu_copy + children_cpu_s() - hashing_cpu);
            samples.add("content", SAME_GUARANTEE, wall, mib, "MiB", rss, None, cost);
        }
        // `rsync FLAGS` of the domain's tree over ssh into `out`.
        let rsync = |flags: &str, out: &Path| {
            let mut cmd = Command::new("rsync");
            cmd.arg(flags)
                .arg("-e")
                .arg(format!("ssh {}", ssh.join(" ")))
                .arg(format!(
                    "root@{}:{}/{domain}/",
                    source.ssh.addr,
                    source.layout.vhosts.display()
                ))
                .arg(out);
            cmd
        };
        if wanted("rsync-az") {
            let out = work.path().join(format!("rsync-az-{round}"));
            settle();
            let gauge = Gauge::start(&source);
            let (wall, rss, cpu) = pipeline(vec![rsync("-az", &out)]);
            let cost = gauge.cost(&source, cpu);
            samples.add("content", RSYNC_Z, wall, mib, "MiB", rss, None, cost);
        }
        if wanted("rsync-initial") || wanted("rsync-nochange") {
            let out = work.path().join(format!("rsync-{round}"));
            settle();
            let run = || {
                let gauge = Gauge::start(&source);
                let (wall, rss, cpu) = pipeline(vec![rsync("-a", &out)]);
                (wall, rss, gauge.cost(&source, cpu))
            };
            let (wall, rss, cost) = run();
            samples.add("content", RSYNC_INITIAL, wall, mib, "MiB", rss, None, cost);
            let (wall, rss, cost) = run();
            samples.add(
                "resync",
                RSYNC_NOCHANGE,
                wall,
                files as f64,
                "files",
                rss,
                None,
                cost,
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
            let gauge = Gauge::start(&source);
            let server_cpu = cpu_s(run.server.pid(), true);
            let (wall, id) = run.timed(&format!(
                "<start><host>{}</host><login>root</login><password/><destination-host-directory/>\
                 <content-transport>{transport}</content-transport><only-hosting/><selected-objects><migrate-domains>\
                 <target-owner>admin</target-owner><domain><name>{domain}</name>{mapping}</domain></migrate-domains></selected-objects></start>",
                source.ssh_host()
            ));
            let cost = gauge.cost(&source, cpu_s(run.server.pid(), true) - server_cpu);
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
                cost,
            );
            if resync {
                let gauge = Gauge::start(&source);
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
                    gauge.cost(&source, 0.0),
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
    // Each peer with and without the MySQL protocol's compression.
    let db_row = |tool: &str, wall: Duration, rss: u64, cost: Cost| Row {
        scenario: "database",
        tool: tool.into(),
        wall,
        amount: rows as f64,
        unit: "rows",
        peak_rss_kib: rss,
        versus: None,
        rounds: Vec::new(),
        cost,
    };
    for compressed in [false, true] {
        let z = if compressed { "_z" } else { "" };
        if wanted("mysqldump") {
            let copy = format!("copy_mysqldump{z}");
            rt.block_on(fresh_database(dst, &copy));
            let mut dump = db_client("mysqldump", source_db_port);
            dump.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
            ]);
            if compressed {
                dump.arg("--compress");
            }
            dump.arg(&database);
            let mut load = db_client("mariadb", dst.port);
            load.arg(&copy);
            settle();
            let gauge = Gauge::start(&source);
            let dst_db = cpu_s(dst.pid().unwrap_or(0), false);
            let (wall, rss, cpu) = pipeline(vec![dump, load]);
            let cost = gauge.cost(&source, cpu + cpu_s(dst.pid().unwrap_or(0), false) - dst_db);
            let tool = if compressed { MYSQLDUMP_Z } else { MYSQLDUMP };
            table.push(db_row(tool, wall, rss, cost));
        }
        if wanted("mydumper") {
            let copy = format!("copy_mydumper{z}");
            rt.block_on(fresh_database(dst, &copy));
            let dir = work.path().join(format!("mydumper{z}"));
            let mut dump = db_client("mydumper", source_db_port);
            dump.args(["-t", &DB_THREADS.to_string(), "-R", "-G", "-E", "-B"])
                .arg(&database)
                .arg("-o")
                .arg(&dir);
            if compressed {
                dump.arg("-C");
            }
            let mut load = db_client("myloader", dst.port);
            load.args(["-t", &DB_THREADS.to_string(), "-o", "-B", &copy, "-d"])
                .arg(&dir);
            settle();
            let gauge = Gauge::start(&source);
            let dst_db = cpu_s(dst.pid().unwrap_or(0), false);
            let t = Instant::now();
            let (_, rss_dump, cpu_dump) = pipeline(vec![dump]);
            if !compressed {
                let (raw, packed) = zstd_ratio(&dir);
                println!(
                    "database rows as mydumper writes them: {:.1} MiB, zstd -3 ratio {:.2}",
                    raw as f64 / 1048576.0,
                    raw as f64 / packed.max(1) as f64
                );
            }
            let (_, rss_load, cpu_load) = pipeline(vec![load]);
            let wall = t.elapsed();
            let dst_cpu = cpu_dump + cpu_load + cpu_s(dst.pid().unwrap_or(0), false) - dst_db;
            let tool = if compressed { MYDUMPER_Z } else { MYDUMPER };
            table.push(db_row(
                tool,
                wall,
                rss_dump.max(rss_load),
                gauge.cost(&source, dst_cpu),
            ));
        }
    }

    let mut versus_mysqldump = None;
    if wanted("hostmig-database") {
        let (row, ratio_dump) =
            hostmig_database(&rt, &source, &dest, &database, rows, work.path(), &table);
        versus_mysqldump = ratio_dump;
        table.push(row);
    }

    print_table(&table, link_mbit.map(|m| m * 1_000_000));
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
            "{}{{\"scenario\":\"{}\",\"tool\":\"{}\",\"wall_s\":{:.3},\"amount\":{},\"unit\":\"{}\",\"per_s\":{:.1},\"peak_rss_kib\":{},\"versus\":{},\"hostmig_ratio\":{},\"rounds_s\":[{}],\"wire_bytes\":{},\"source_cpu_s\":{:.3},\"destination_cpu_s\":{:.3}}}",
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
            r.cost.wire_bytes.map_or("null".to_owned(), |w| w.to_string()),
            r.cost.source_cpu_s,
            r.cost.destination_cpu_s,
        );
    }
    let _ = writeln!(
        json,
        "],\"link_mbit\":{},\"web_zstd_ratio\":{:.3},\"mail_zstd_ratio\":{:.3}}}",
        link_mbit.map_or("null".to_owned(), |m| m.to_string()),
        web_raw as f64 / web_packed.max(1) as f64,
        mail_raw as f64 / mail_packed.max(1) as f64
    );
    let out = target.join("bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    let path = out.join(match &link_name {
        Some(link) => format!("sandbox-{}-{link}.json", profile.as_str()),
        None => format!("sandbox-{}.json", profile.as_str()),
    });
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
        cost: Cost,
    ) {
        match self.rows.iter_mut().find(|(r, _)| r.tool == tool) {
            Some((row, walls)) => {
                walls.push(wall);
                row.peak_rss_kib = row.peak_rss_kib.max(rss);
                row.cost = cost;
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
                    cost,
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

/// `link_bits_per_s`: the shaped link's rate, for each row's link limit
/// (its bytes on the wire at that rate).
fn print_table(rows: &[Row], link_bits_per_s: Option<u64>) {
    println!(
        "{:<10} {:<46} {:>8} {:>16} {:>8} {:>9} {:>11} {:>8} {:>8} {:>9}",
        "scenario",
        "tool",
        "wall s",
        "throughput",
        "RSS MiB",
        "wire MiB",
        "link lim s",
        "src s/GB",
        "dst s/GB",
        "vs peer"
    );
    for r in rows {
        let gb = match r.unit {
            "MiB" => r.amount * 1048576.0 / 1e9,
            _ => r.cost.wire_bytes.unwrap_or(0) as f64 / 1e9,
        }
        .max(1e-9);
        let limit = r
            .cost
            .wire_bytes
            .zip(link_bits_per_s)
            .map(|(w, l)| w as f64 * 8.0 / l as f64);
        println!(
            "{:<10} {:<46} {:>8.2} {:>16} {:>8.1} {:>9} {:>11} {:>8.1} {:>8.1} {:>9}",
            r.scenario,
            r.tool,
            r.wall.as_secs_f64(),
            format!("{:.1} {}/s", r.amount / r.wall.as_secs_f64(), r.unit),
            r.peak_rss_kib as f64 / 1024.0,
            r.cost
                .wire_bytes
                .map_or("-".to_owned(), |w| format!("{:.1}", w as f64 / 1048576.0)),
            limit.map_or("-".to_owned(), |l| format!("{l:.2}")),
            r.cost.source_cpu_s / gb,
            r.cost.destination_cpu_s / gb,
            ratio(rows, r).map_or("".to_owned(), |x| format!("{x:.2}x"))
        );
        if r.rounds.len() > 1 {
            let each: Vec<String> = r
                .rounds
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            println!("{:<10} {:<46} rounds: {} s", "", "", each.join(", "));
        }
    }
    // hostmig against every peer of its scenario (peer time / hostmig
    // time: above 1 is faster), and against its own link limit.
    for h in rows
        .iter()
        .filter(|r| r.tool.starts_with("hostmig") && r.scenario != "resync")
    {
        for p in rows
            .iter()
            .filter(|p| p.scenario == h.scenario && !p.tool.starts_with("hostmig"))
        {
            println!(
                "ratio: {} vs {}: {:.2}x",
                h.tool,
                p.tool,
                p.wall.as_secs_f64() / h.wall.as_secs_f64()
            );
        }
        if let Some(limit) = h
            .cost
            .wire_bytes
            .zip(link_bits_per_s)
            .map(|(w, l)| w as f64 * 8.0 / l as f64)
        {
            println!(
                "link limit: {} took {:.2}x its bytes on the wire at the link's rate",
                h.tool,
                h.wall.as_secs_f64() / limit.max(1e-9)
            );
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

/// Runs the commands as a pipeline; answers the wall time, the largest
/// peak RSS among them and the CPU seconds they took (this side of the
/// link). Panics when any fails.
fn pipeline(commands: Vec<Command>) -> (Duration, u64, f64) {
    let started = Instant::now();
    let mut children = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    let last = commands.len() - 1;
    // Each command is dropped once started: it holds its stdin's pipe end,
    // which would keep the writer before it from ever seeing the reader go.
    for (i, mut cmd) in commands.into_iter().enumerate() {
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
    let mut cpu = 0.0;
    for child in children {
        let (status, rss, seconds) = wait4(child.id());
        assert!(status.success(), "a benchmark command failed: {status}");
        peak = peak.max(rss);
        cpu += seconds;
    }
    (started.elapsed(), peak, cpu)
}

fn wait4(pid: u32) -> (std::process::ExitStatus, u64, f64) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for a child of ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child process.
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid as i32, "wait4 failed");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as u64,
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
    )
}

/// CPU seconds of a process (and, with `children`, of the children it
/// has waited for), from /proc.
fn cpu_s(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // After the name: state is field 3; utime, stime, cutime, cstime are 14-17.
    let at = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let own = at(14) + at(15);
    let waited = if children { at(16) + at(17) } else { 0.0 };
    (own + waited) / hz
}

/// CPU seconds of this process's children it has waited for.
fn children_cpu_s() -> f64 {
    // SAFETY: rusage is plain data getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: asks about this process's own children.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Where one run starts: the link's received bytes and the source's CPU.
struct Gauge {
    rx: Option<u64>,
    source_cpu: f64,
}

impl Gauge {
    fn start(source: &Source) -> Gauge {
        Gauge {
            rx: link_rx(source),
            source_cpu: source_cpu_s(source),
        }
    }

    /// The run's cost since the start; `destination_cpu_s` as measured
    /// by the caller.
    fn cost(&self, source: &Source, destination_cpu_s: f64) -> Cost {
        Cost {
            wire_bytes: self
                .rx
                .zip(link_rx(source))
                .map(|(a, b)| b.saturating_sub(a)),
            source_cpu_s: source_cpu_s(source) - self.source_cpu,
            destination_cpu_s,
        }
    }
}

/// Bytes the destination's end of the source's link received.
fn link_rx(source: &Source) -> Option<u64> {
    let host = source.host.as_ref()?;
    std::fs::read_to_string(format!("/sys/class/net/{}/statistics/rx_bytes", host.link))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// CPU seconds of the source's side: its sshd with every session it has
/// ended (and what they ran), and its database server.
fn source_cpu_s(source: &Source) -> f64 {
    source.ssh.pid().map_or(0.0, |p| cpu_s(p, true))
        + source.db.pid().map_or(0.0, |p| cpu_s(p, false))
}

/// Bytes of the regular files under `dir`, and what zstd -3 makes of
/// them (streamed, file by file).
fn zstd_ratio(dir: &Path) -> (u64, u64) {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut raw = 0;
    let mut packed = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && meta.blocks() * 512 >= meta.size() / 2 {
                // (A sparse file's holes would read as zeros: left out.)
                let Ok(mut file) = std::fs::File::open(entry.path()) else {
                    continue;
                };
                let mut enc = zstd::stream::write::Encoder::new(Count(0), 3).expect("zstd");
                raw += std::io::copy(&mut file, &mut enc).unwrap_or(0);
                packed += enc.finish().map_or(0, |c| c.0);
            }
        }
    }
    (raw, packed)
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
    // The compression a migration's `auto` would choose on this link,
    // by the same probe and rule.
    let probe = hostmig::ssh::Session::connect(&login, &opts).expect("probe session");
    let facts = hostmig::transfer::link::probe(&probe, true).expect("probe");
    drop(probe);
    let choice = hostmig::transfer::link::choose(
        hostmig::transfer::link::ContentCompression::Auto,
        hostmig::transfer::link::DbCompression::Auto,
        facts,
        None,
    );
    println!("hostmig's choice on this link: {}", choice.why);
    settle();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let gauge = Gauge::start(source);
    let own_cpu = cpu_s(std::process::id(), false);
    let target_cpu = cpu_s(target.pid().unwrap_or(0), false);
    let started = Instant::now();
    let tunnel =
        hostmig::ssh::Tunnel::open(login, opts, "localhost", source.db.port).expect("tunnel");
    let job = hostmig::db::DbJob {
        name: database.to_owned(),
        source: tunnel
            .mysql_opts("admin", &source.admin_password)
            .compression(choice.db.then(mysql_async::Compression::fast))
            .into(),
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
    let cost = gauge.cost(
        source,
        cpu_s(std::process::id(), false) - own_cpu + cpu_s(target.pid().unwrap_or(0), false)
            - target_cpu,
    );
    assert!(
        choice.db || tunnel.carried() > report.bytes / 2,
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
        tool: if choice.db {
            format!("{HOSTMIG_DATABASE}, compressed")
        } else {
            HOSTMIG_DATABASE.into()
        },
        wall,
        amount: rows as f64,
        unit: "rows",
        peak_rss_kib: peak,
        versus: Some(MYDUMPER),
        rounds: Vec::new(),
        cost,
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
