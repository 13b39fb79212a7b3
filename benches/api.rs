//! API benchmark (not a test): a release `hostmig serve` on loopback,
//! `get_status` packets for unknown ids over HTTPS keep-alive with
//! HTTP_AUTH_LOGIN/HTTP_AUTH_PASSWD headers, as Plesk clients send them.
//!
//! 1. closed loop: 16 connections, each sending its next packet as soon as
//!    the answer arrives, for `HOSTMIG_BENCH_SECS` (default 10) seconds;
//! 2. open loop: a fixed offered rate (`HOSTMIG_BENCH_RATE`, default 2000
//!    packets/s); latency counts from each packet's scheduled send time, so
//!    queueing behind a slow answer is measured, not hidden;
//! 3. server RSS: idle after start, after the first (argon2) login, after load.
//!
//! Prints a table and writes target/bench/api.json. Run: `cargo bench --bench api`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{agent, quantile, rss_kib, Server};

const PASSWORD: &str = "bench-admin-password";
const CONNECTIONS: usize = 16;

fn main() {
    let secs: u64 = env_or("HOSTMIG_BENCH_SECS", 10);
    let rate: u64 = env_or("HOSTMIG_BENCH_RATE", 2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = common::hash_password(PASSWORD);
    let state = dir.path().join("state");
    let server = Server::start(
        &format!("[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_password_hash = \"{hash}\"\n[state]\ndir = \"{}\"\n", state.display()),
        dir.path(),
        &state,
    );
    let pid = server.pid();
    let rss_idle = rss_kib(pid);
    let url = server.url.clone();
    let cert = server.cert.clone();

    let warm = agent(&cert);
    send(&warm, &url, 0);
    let rss_after_login = rss_kib(pid);

    // Closed loop.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let (stop, count, url, cert) = (stop.clone(), count.clone(), url.clone(), cert.clone());
            std::thread::spawn(move || {
                let agent = agent(&cert);
                let mut i = w as u64 * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    send(&agent, &url, i);
                    i += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let closed_elapsed = started.elapsed().as_secs_f64();
    let closed_pps = count.load(Ordering::Relaxed) as f64 / closed_elapsed;
    let rss_after_closed = rss_kib(pid);

    // Open loop at a fixed offered rate.
    let total = rate * secs;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (next, url, cert) = (next.clone(), url.clone(), cert.clone());
            std::thread::spawn(move || {
                let agent = agent(&cert);
                send(&agent, &url, 1);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    send(&agent, &url, i);
                    latencies.push(due.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let open_elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let (p50, p99, p999, max) = (
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
        quantile(&latencies, 0.999),
        *latencies.last().expect("latencies"),
    );
    let rss_after_open = rss_kib(pid);

    server.stop();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "hostmig API benchmark: get_status (unknown id), HTTPS keep-alive, login/password headers"
    );
    println!(
        "machine: {} cores; client and server share them",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<52} {:>14} {:>10}", "measure", "value", "target");
    println!(
        "{:<52} {:>14.0} {:>10}",
        format!("closed loop, {CONNECTIONS} connections: packets/s"),
        closed_pps,
        ">= 10000"
    );
    println!(
        "{:<52} {:>14.3} {:>10}",
        format!("open loop {rate}/s: p50 latency ms"),
        ms(p50),
        ""
    );
    println!(
        "{:<52} {:>14.3} {:>10}",
        format!("open loop {rate}/s: p99 latency ms"),
        ms(p99),
        "< 5"
    );
    println!(
        "{:<52} {:>14.3} {:>10}",
        format!("open loop {rate}/s: p99.9 latency ms"),
        ms(p999),
        ""
    );
    println!(
        "{:<52} {:>14.3} {:>10}",
        format!("open loop {rate}/s: max latency ms"),
        ms(max),
        ""
    );
    println!(
        "{:<52} {:>14.0} {:>10}",
        "open loop: achieved packets/s",
        latencies.len() as f64 / open_elapsed,
        ""
    );
    println!(
        "{:<52} {:>14.1} {:>10}",
        "RSS idle after start, MiB",
        rss_idle as f64 / 1024.0,
        "< 30"
    );
    println!(
        "{:<52} {:>14.1} {:>10}",
        "RSS after the first login (argon2), MiB",
        rss_after_login as f64 / 1024.0,
        ""
    );
    println!(
        "{:<52} {:>14.1} {:>10}",
        "RSS after the closed loop, MiB",
        rss_after_closed as f64 / 1024.0,
        ""
    );
    println!(
        "{:<52} {:>14.1} {:>10}",
        "RSS after the open loop, MiB",
        rss_after_open as f64 / 1024.0,
        ""
    );

    let json = format!(
        "{{\"benchmark\":\"api\",\"seconds\":{secs},\"connections\":{CONNECTIONS},\"closed_loop_packets_per_s\":{closed_pps:.0},\
         \"open_loop_rate\":{rate},\"open_loop_p50_ms\":{:.3},\"open_loop_p99_ms\":{:.3},\"open_loop_p999_ms\":{:.3},\"open_loop_max_ms\":{:.3},\
         \"rss_idle_kib\":{rss_idle},\"rss_after_login_kib\":{rss_after_login},\"rss_after_closed_kib\":{rss_after_closed},\"rss_after_open_kib\":{rss_after_open}}}\n",
        ms(p50), ms(p99), ms(p999), ms(max)
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    std::fs::write(out.join("api.json"), json).expect("write json");
    println!("written: target/bench/api.json");
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn send(agent: &ureq::Agent, url: &str, id: u64) {
    let body = format!("<packet version=\"1.6.3.0\"><migration><get_status><migration_id>{id}</migration_id></get_status></migration></packet>");
    let text = common::post(agent, url, PASSWORD, &body);
    assert!(
        text.contains("<errcode>1013</errcode>"),
        "unexpected answer: {text}"
    );
}
