//! What the benchmarks share: starting a release `hostmig serve`, an HTTPS
//! client that trusts its certificate, and reading a process's RSS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_hostmig");

/// The argon2 hash of `password`, by the real binary.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("hash");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A running server: its process, HTTPS address and a trusting client.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub cert: Vec<u8>,
}

impl Server {
    /// Starts `hostmig serve` with this configuration; logs go nowhere,
    /// or with `HOSTMIG_BENCH_SERVER_LOG=FILE` into FILE as JSON lines at
    /// debug level (each packet's time in the server, `elapsed_us`).
    pub fn start(config: &str, dir: &Path, state: &Path) -> Server {
        let path = dir.join("hostmig.toml");
        std::fs::write(&path, config).expect("config");
        let mut command = Command::new(BIN);
        match std::env::var_os("HOSTMIG_BENCH_SERVER_LOG") {
            Some(log) => {
                let file = std::fs::File::create(&log).expect("server log");
                command
                    .args(["--log-format", "json"])
                    .env("RUST_LOG", "hostmig=debug")
                    .stderr(Stdio::from(file));
            }
            None => {
                command.stderr(Stdio::null());
            }
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = loop {
            let line = lines.next().expect("server output").expect("line");
            if let Some(a) = line.strip_prefix("listening on https://") {
                break a.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        std::thread::sleep(Duration::from_millis(300));
        Server {
            child,
            url: format!("https://{addr}/enterprise/control/agent.php"),
            cert: std::fs::read(state.join("tls/cert.pem")).expect("cert"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        // SAFETY: SIGTERM to the server this benchmark started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTPS client that trusts exactly this certificate.
pub fn agent(cert_pem: &[u8]) -> ureq::Agent {
    let cert = Certificate::from_pem(cert_pem).expect("PEM").to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    ureq::Agent::config_builder().tls_config(tls).build().into()
}

/// POSTs a packet with login/password headers; answers the body.
pub fn post(agent: &ureq::Agent, url: &str, password: &str, body: &str) -> String {
    let mut resp = agent
        .post(url)
        .header("HTTP_AUTH_LOGIN", "admin")
        .header("HTTP_AUTH_PASSWD", password)
        .content_type("text/xml")
        .send(body)
        .expect("answered");
    resp.body_mut().read_to_string().expect("body")
}

/// The resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The `p` quantile of sorted samples.
pub fn quantile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// `HOSTMIG_BENCH_PROFILE` (else `default`) and `HOSTMIG_BENCH_SEED`
/// (else 1).
pub fn profile_and_seed(default: &str) -> (hostmig::sandbox::Profile, u64) {
    let profile = std::env::var("HOSTMIG_BENCH_PROFILE")
        .unwrap_or_else(|_| default.into())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let seed = std::env::var("HOSTMIG_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (profile, seed)
}
