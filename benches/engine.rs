//! Engine benchmark (not a test): first one client migrated alone (the
//! single pipeline), then 8 client migrations started together (with
//! `max_parallel = 8`) on a release `hostmig serve` against the sandbox
//! (profile `medium` by default, its fixture kept), while `get_status` is
//! sent at a fixed rate (`HOSTMIG_BENCH_RATE`, default 1,000 packets/s)
//! over HTTPS keep-alive. Latency counts from each packet's scheduled time.
//! Reports latency while migrations ran, the migrations' wall time, the
//! bytes they moved (content and database values, from their event logs)
//! per second beside the single pipeline's, and the server's RSS (sampled
//! every 20 ms). Beside the latency from the scheduled time it reports the
//! part from sending to the answer (the rest is the generator waking late).
//! The generator stands in for a client on another machine: as root its
//! threads run in the real-time class (`HOSTMIG_BENCH_CLIENT=rt`, the
//! default), so its own late wake-ups on these shared cores do not count
//! as the server's; `HOSTMIG_BENCH_CLIENT=nice:N` runs it at nice N
//! instead and `HOSTMIG_BENCH_CLIENT=plain` as it starts.
//! `HOSTMIG_BENCH_API_REALTIME=false` runs the server with `api.realtime =
//! false` (its HTTP workers in the ordinary class, at nice -5).
//! `HOSTMIG_BENCH_SAMPLES=FILE` writes every sample (seconds since the
//! start, during 0/1, latency ms, from-sending ms). Run:
//! `cargo bench --bench engine`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{agent, post, quantile, rss_kib, Server};
use hostmig::sandbox::{Destination, Profile, Source};

const PASSWORD: &str = "bench-admin-password";
const MIGRATIONS: usize = 8;
const ALL_IPS: &str = "<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip>\
<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.100</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.5</ip-address></new></ip>\
<ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.20</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip>\
<ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.21</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.9</ip-address></new></ip>";

fn main() {
    let profile: Profile = std::env::var("HOSTMIG_BENCH_PROFILE")
        .unwrap_or_else(|_| "medium".into())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let rate: u64 = std::env::var("HOSTMIG_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // How the load generator runs (`HOSTMIG_BENCH_CLIENT`: rt, nice:N or
    // plain); printed with the figures.
    let client = Client::from_env();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let fixture = target.join(format!("bench-fixtures/{}-1", profile.as_str()));
    let work = tempfile::tempdir_in(&target).expect("work dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let source = rt
        .block_on(Source::start(&fixture, profile, 1))
        .expect("source");
    let dest = rt
        .block_on(Destination::start(&work.path().join("dst"), 1))
        .expect("destination");
    // All eight run at once (the default max_parallel would queue half).
    // `HOSTMIG_BENCH_API_REALTIME=false` measures the server with its
    // HTTP workers in the ordinary class (`api.realtime = false`).
    let api_realtime =
        std::env::var("HOSTMIG_BENCH_API_REALTIME").unwrap_or_else(|_| "true".into());
    assert!(
        ["true", "false"].contains(&api_realtime.as_str()),
        "HOSTMIG_BENCH_API_REALTIME: {api_realtime:?} is neither true nor false"
    );
    let base = dest.hostmig_config(&common::hash_password(PASSWORD), Some(&source));
    assert!(
        base.contains("[api]\n"),
        "the sandbox's config has no [api] table"
    );
    let config = format!(
        "{}\n[migrations]\nmax_parallel = {MIGRATIONS}\n",
        base.replacen("[api]\n", &format!("[api]\nrealtime = {api_realtime}\n"), 1)
    );
    let server = Server::start(&config, work.path(), &dest.state);
    let pid = server.pid();
    let url = server.url.clone();
    let cert = server.cert.clone();
    post(
        &agent(&cert),
        &url,
        PASSWORD,
        "<packet><migration><check/></migration></packet>",
    );
    let rss_idle = rss_kib(pid);

    // The status poller: a fixed offered rate; ids as they become known.
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let migrating = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let client = client.clone();
        let (ids, migrating, done, url, cert) = (
            ids.clone(),
            migrating.clone(),
            done.clone(),
            url.clone(),
            cert.clone(),
        );
        std::thread::spawn(move || {
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let (ids, migrating, done, url, cert, next) =
                        (ids.clone(), migrating.clone(), done.clone(), url.clone(), cert.clone(), next.clone());
                    let client = client.clone();
                    std::thread::spawn(move || {
                        client.enter();
                        let agent = agent(&cert);
                        let mut samples = Vec::new();
                        while !done.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            let id = {
                                let ids = ids.lock().expect("ids");
                                if ids.is_empty() { "0".to_owned() } else { ids[i as usize % ids.len()].clone() }
                            };
                            let during = migrating.load(Ordering::Relaxed);
                            let sent = Instant::now();
                            post(&agent, &url, PASSWORD, &format!("<packet><migration><get_status><migration_id>{id}</migration_id></get_status></migration></packet>"));
                            samples.push((during, due.elapsed(), sent.elapsed(), due.duration_since(start)));
                        }
                        samples
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect::<Vec<_>>()
        })
    };
    let peak = Arc::new(AtomicU64::new(rss_idle));
    let rss_sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    let selection_of = |i: usize| {
        let c = &source.model.clients[i];
        let domains: String = source
            .model
            .domains_of(Some(i))
            .map(|d| format!("<domain><name>{}</name></domain>", d.name))
            .collect();
        format!("<migrate-clients><target-owner>admin</target-owner><client><name>{}</name>{ALL_IPS}{domains}</client></migrate-clients>", c.login)
    };
    let start_one = |selection: &str| {
        let answer = post(&agent(&cert), &url, PASSWORD, &format!(
            "<packet><migration><start><host>{}</host><login>root</login><password/><destination-host-directory/>\
             <selected-objects>{selection}</selected-objects></start></migration></packet>",
            source.ssh_host()
        ));
        let start = answer.find("<migration_id>").expect("started") + 14;
        answer[start..start + answer[start..].find('<').expect("id")].to_owned()
    };
    // The single pipeline: one more client, alone, before the eight.
    let solo_client = MIGRATIONS.min(source.model.clients.len() - 1);
    let solo_began = Instant::now();
    let solo = start_one(&selection_of(solo_client));
    let solo_failed = wait_finished(&agent(&cert), &url, &solo);
    let solo_wall = solo_began.elapsed();
    let solo_bytes = moved_bytes(&dest.state, &solo);

    // Eight client migrations at once, each with all its domains.
    let selections: Vec<String> = (0..MIGRATIONS.min(solo_client)).map(selection_of).collect();
    let domains: usize = source
        .model
        .domains
        .iter()
        .filter(|d| d.owner.is_some_and(|o| o < MIGRATIONS))
        .count();
    migrating.store(true, Ordering::Relaxed);
    let began = Instant::now();
    let starters: Vec<_> = selections
        .into_iter()
        .map(|selection| {
            let (url, cert, host) = (url.clone(), cert.clone(), source.ssh_host());
            std::thread::spawn(move || {
                let answer = post(&agent(&cert), &url, PASSWORD, &format!(
                    "<packet><migration><start><host>{host}</host><login>root</login><password/><destination-host-directory/>\
                     <selected-objects>{selection}</selected-objects></start></migration></packet>"
                ));
                let start = answer.find("<migration_id>").expect("started") + 14;
                answer[start..start + answer[start..].find('<').expect("id")].to_owned()
            })
        })
        .collect();
    for s in starters {
        let id = s.join().expect("start");
        ids.lock().expect("ids").push(id);
    }
    let admitted = began.elapsed();
    let watcher = agent(&cert);
    let all: Vec<String> = ids.lock().expect("ids").clone();
    let mut failures = usize::from(solo_failed);
    for id in &all {
        failures += usize::from(wait_finished(&watcher, &url, id));
    }
    let wall = began.elapsed();
    let bytes: u64 = all.iter().map(|id| moved_bytes(&dest.state, id)).sum();
    let mibs = |b: u64, d: Duration| b as f64 / 1048576.0 / d.as_secs_f64();
    let (aggregate, single) = (mibs(bytes, wall), mibs(solo_bytes, solo_wall));
    migrating.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let samples = poller.join().expect("poller");
    rss_sampler.join().expect("rss");
    server.stop();

    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|(d, _, _, _)| *d)
        .map(|(_, l, _, _)| *l)
        .collect();
    let mut outside: Vec<Duration> = samples
        .iter()
        .filter(|(d, _, _, _)| !*d)
        .map(|(_, l, _, _)| *l)
        .collect();
    let mut answer_during: Vec<Duration> = samples
        .iter()
        .filter(|(d, _, _, _)| *d)
        .map(|(_, _, a, _)| *a)
        .collect();
    answer_during.sort();
    if let Some(path) = std::env::var_os("HOSTMIG_BENCH_SAMPLES") {
        let lines: String = samples
            .iter()
            .map(|(d, l, a, at)| {
                format!(
                    "{:.3} {} {:.3} {:.3}\n",
                    at.as_secs_f64(),
                    u8::from(*d),
                    l.as_secs_f64() * 1e3,
                    a.as_secs_f64() * 1e3
                )
            })
            .collect();
        std::fs::write(path, lines).expect("samples file");
    }
    during.sort();
    outside.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("hostmig engine benchmark: {MIGRATIONS} client migrations ({domains} domains) from the {} profile, get_status at {rate}/s by a generator in the {} class, the server's api.realtime = {api_realtime}", profile.as_str(), client.describe());
    println!("{:<58} {:>12} {:>10}", "measure", "value", "target");
    println!(
        "{:<58} {:>12.2} {:>10}",
        "8 migrations admitted (validated) in, s",
        admitted.as_secs_f64(),
        ""
    );
    println!(
        "{:<58} {:>12.2} {:>10}",
        "8 migrations ended in, s",
        wall.as_secs_f64(),
        ""
    );
    println!(
        "{:<58} {:>12} {:>10}",
        "migrations that failed", failures, "0"
    );
    println!(
        "{:<58} {:>12.1} {:>10}",
        "single pipeline (one client alone), MiB/s", single, ""
    );
    println!(
        "{:<58} {:>12.1} {:>10}",
        "aggregate of the parallel migrations, MiB/s", aggregate, ""
    );
    println!(
        "{:<58} {:>12.2} {:>10}",
        "aggregate / single pipeline",
        aggregate / single,
        ">= 0.80"
    );
    println!(
        "{:<58} {:>12} {:>10}",
        "get_status samples while migrating",
        during.len(),
        ""
    );
    println!(
        "{:<58} {:>12.3} {:>10}",
        "get_status p50 while migrating, ms",
        ms(quantile(&during, 0.5)),
        ""
    );
    println!(
        "{:<58} {:>12.3} {:>10}",
        "get_status p99 while migrating, ms",
        ms(quantile(&during, 0.99)),
        "< 10"
    );
    println!(
        "{:<58} {:>12.3} {:>10}",
        "  of which from sending to the answer, p99, ms",
        ms(quantile(&answer_during, 0.99)),
        ""
    );
    println!(
        "{:<58} {:>12.3} {:>10}",
        "get_status max while migrating, ms",
        ms(*during.last().expect("samples")),
        ""
    );
    println!(
        "{:<58} {:>12.3} {:>10}",
        "get_status p99 before and after, ms",
        ms(quantile(&outside, 0.99)),
        ""
    );
    println!(
        "{:<58} {:>12.1} {:>10}",
        "server RSS idle, MiB",
        rss_idle as f64 / 1024.0,
        ""
    );
    println!(
        "{:<58} {:>12.1} {:>10}",
        "server peak RSS during the migrations, MiB",
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        "< 200"
    );
    let json = format!(
        "{{\"benchmark\":\"engine\",\"profile\":\"{}\",\"migrations\":{MIGRATIONS},\"domains\":{domains},\"rate\":{rate},\"admitted_s\":{:.3},\"wall_s\":{:.3},\"failures\":{failures},\
         \"client\":\"{}\",\"api_realtime\":{api_realtime},\"samples_during\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p99_answer_ms\":{:.3},\"max_ms\":{:.3},\"rss_idle_kib\":{rss_idle},\"rss_peak_kib\":{},\"single_mib_s\":{single:.1},\"aggregate_mib_s\":{aggregate:.1},\"bytes\":{bytes},\"solo_bytes\":{solo_bytes}}}\n",
        profile.as_str(),
        admitted.as_secs_f64(),
        wall.as_secs_f64(),
        client.describe(),
        during.len(),
        ms(quantile(&during, 0.5)),
        ms(quantile(&during, 0.99)),
        ms(quantile(&answer_during, 0.99)),
        ms(*during.last().expect("samples")),
        peak.load(Ordering::Relaxed)
    );
    let out = target.join("bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    std::fs::write(out.join("engine.json"), json).expect("json");
    println!("written: target/bench/engine.json");
}

/// Waits until the migration finished; answers whether it failed.
fn wait_finished(agent: &ureq::Agent, url: &str, id: &str) -> bool {
    loop {
        let answer = post(agent, url, PASSWORD, &format!("<packet><migration><get_status><migration_id>{id}</migration_id></get_status></migration></packet>"));
        if answer.contains("<finished>") {
            let failed = !answer.contains("<success/>");
            if failed {
                println!("failed migration {id}: {answer}");
            }
            return failed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes a migration moved: its trees' and databases' reports in its
/// event log.
fn moved_bytes(state: &std::path::Path, id: &str) -> u64 {
    let log =
        std::fs::read_to_string(state.join(format!("migrations/{id}.jsonl"))).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["report"]["bytes"].as_u64())
        .sum()
}

/// How the load generator's threads are scheduled.
#[derive(Clone, Debug)]
enum Client {
    Realtime,
    Nice(i32),
    Plain,
}

impl Client {
    fn from_env() -> Client {
        let v = std::env::var("HOSTMIG_BENCH_CLIENT").unwrap_or_else(|_| "rt".into());
        match v.as_str() {
            "rt" => Client::Realtime,
            "plain" => Client::Plain,
            other => match other.strip_prefix("nice:").and_then(|n| n.parse().ok()) {
                Some(n) => Client::Nice(n),
                None => panic!("HOSTMIG_BENCH_CLIENT: {other:?} is none of rt, nice:N, plain"),
            },
        }
    }

    fn enter(&self) {
        match self {
            Client::Realtime => hostmig::priority::set_thread_class(
                hostmig::priority::Class::Realtime,
            )
            .expect("the generator in SCHED_FIFO (run as root, or HOSTMIG_BENCH_CLIENT=plain)"),
            Client::Nice(n) => hostmig::priority::set_thread_nice(*n, "the load generator"),
            Client::Plain => {}
        }
    }

    fn describe(&self) -> String {
        match self {
            Client::Realtime => "real-time (SCHED_FIFO 1)".into(),
            Client::Nice(n) => format!("nice {n}"),
            Client::Plain => "ordinary".into(),
        }
    }
}
