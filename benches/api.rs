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

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

const PASSWORD: &str = "bench-admin-password";
const CONNECTIONS: usize = 16;

fn main() {
    let secs: u64 = env_or("HOSTMIG_BENCH_SECS", 10);
    let rate: u64 = env_or("HOSTMIG_BENCH_RATE", 2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_hostmig");

    let hash = {
        let mut child = Command::new(bin)
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("hash-password");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(PASSWORD.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("hash");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    let config = dir.path().join("hostmig.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_password_hash = \"{hash}\"\n[state]\ndir = \"{}\"\n",
            dir.path().join("state").display()
        ),
    )
    .expect("config");
    let mut server = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Some(a) = line.strip_prefix("listening on https://") {
            break a.to_owned();
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_kib(pid);
    let url = format!("https://{addr}/enterprise/control/agent.php");
    let cert = std::fs::read(dir.path().join("state/tls/cert.pem")).expect("cert");

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
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let (p50, p99, p999, max) = (
        pct(0.50),
        pct(0.99),
        pct(0.999),
        *latencies.last().expect("latencies"),
    );
    let rss_after_open = rss_kib(pid);

    // SAFETY: SIGTERM to the server this benchmark started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = server.wait();

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

fn agent(cert_pem: &[u8]) -> ureq::Agent {
    let cert = Certificate::from_pem(cert_pem).expect("PEM").to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    ureq::Agent::config_builder().tls_config(tls).build().into()
}

fn send(agent: &ureq::Agent, url: &str, id: u64) {
    let body = format!("<packet version=\"1.6.3.0\"><migration><get_status><migration_id>{id}</migration_id></get_status></migration></packet>");
    let mut resp = agent
        .post(url)
        .header("HTTP_AUTH_LOGIN", "admin")
        .header("HTTP_AUTH_PASSWD", PASSWORD)
        .content_type("text/xml")
        .send(&body)
        .expect("answered");
    let text = resp.body_mut().read_to_string().expect("body");
    assert!(
        text.contains("<errcode>1013</errcode>"),
        "unexpected answer: {text}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
