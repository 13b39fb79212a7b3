//! Starts the real `hostmig serve` binary on free loopback ports with a
//! private state directory, and talks to it over HTTPS as a Plesk client
//! would. Also: xmllint validation against `schemas/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

pub mod browser;
pub mod sandbox;
pub mod tars;
pub mod world;

pub const PASSWORD: &str = "s3cret-admin-pw";

/// The argon2 hash of [`PASSWORD`], computed once by the real binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_hostmig"))
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin piped")
                    .write_all(format!("{PASSWORD}\n").as_bytes())?;
                child.wait_with_output()
            })
            .expect("hostmig hash-password runs");
        assert!(out.status.success(), "hash-password failed");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    })
}

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    agent: ureq::Agent,
}

/// Extra TOML for the `[api]` section and after it.
#[derive(Default, Clone)]
pub struct Options {
    pub api: String,
    pub rest: String,
    pub with_http: bool,
    /// Reuse this state directory (for restarts).
    pub state_dir: Option<PathBuf>,
    /// `--log-format json`.
    pub json_logs: bool,
}

pub fn config_text(opts: &Options, state: &Path) -> String {
    let http = if opts.with_http {
        "listen_http = [\"127.0.0.1:0\"]\n"
    } else {
        ""
    };
    format!(
        "[api]\nlisten = [\"127.0.0.1:0\"]\n{http}admin_password_hash = \"{}\"\n{}\n[state]\ndir = \"{}\"\n{}",
        password_hash(),
        opts.api,
        state.display(),
        opts.rest
    )
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = opts
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        let config = config_text(&opts, &state);
        Server::spawn(dir, &config, &state, &opts)
    }

    /// A server with this whole configuration (its state directory given).
    pub fn start_config(config: &str, state: &Path) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::spawn(dir, config, state, &Options::default())
    }

    fn spawn(dir: tempfile::TempDir, config_text: &str, state: &Path, opts: &Options) -> Server {
        let config = dir.path().join("hostmig.toml");
        std::fs::write(&config, config_text).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hostmig"));
        if opts.json_logs {
            command.args(["--log-format", "json"]);
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hostmig serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut https = None;
        let mut http = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while https.is_none() || (opts.with_http && http.is_none()) {
            assert!(Instant::now() < deadline, "server did not start in 30 s");
            let Some(Ok(line)) = lines.next() else {
                let log =
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                panic!("server exited before listening:\n{log}");
            };
            if let Some(a) = line.strip_prefix("listening on https://") {
                https = Some(a.parse().expect("https address"));
            } else if let Some(a) = line.strip_prefix("listening on http://") {
                http = Some(a.parse().expect("http address"));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let cert = std::fs::read(state.join("tls/cert.pem")).expect("generated certificate");
        Server {
            child: Some(child),
            agent: agent_trusting(&cert),
            dir,
            https: https.expect("https address"),
            http,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}/enterprise/control/agent.php", self.https)
    }

    /// POSTs a packet with the admin login and password.
    pub fn post(&self, body: impl AsRef<[u8]>) -> String {
        self.post_with(
            body,
            &[("HTTP_AUTH_LOGIN", "admin"), ("HTTP_AUTH_PASSWD", PASSWORD)],
        )
    }

    /// POSTs a packet with these headers; returns the body of a 200 answer.
    pub fn post_with(&self, body: impl AsRef<[u8]>, headers: &[(&str, &str)]) -> String {
        let (status, content_type, text) =
            self.request("POST", &self.url(), body.as_ref(), headers);
        assert_eq!(status, 200, "answer: {text}");
        assert_eq!(content_type.as_deref(), Some("text/xml; charset=UTF-8"));
        text
    }

    /// Any request; answers status, content type and body.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "text/xml");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.to_vec()).expect("request");
        let mut resp = self.agent.run(req).unwrap_or_else(|e| {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "request not answered: {e}; the server's log ends:\n{}",
                tail.join("\n")
            )
        });
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().expect("body");
        (status, content_type, text)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGTERM and waits for the exit; answers whether it was clean.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child process id this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// An HTTPS client that trusts exactly this certificate, keeps connections alive.
pub fn agent_trusting(cert_pem: &[u8]) -> ureq::Agent {
    let cert = Certificate::from_pem(cert_pem)
        .expect("PEM certificate")
        .to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Validates a document against `schemas/<schema>` with xmllint; panics
/// with xmllint's message when it is not valid.
pub fn assert_valid(xml: &str, schema: &str) {
    let errors = validate(xml, schema);
    assert!(
        errors.is_none(),
        "not valid against {schema}: {}\n{xml}",
        errors.unwrap_or_default()
    );
}

/// `None` when valid, else xmllint's complaint.
pub fn validate(xml: &str, schema: &str) -> Option<String> {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(schema);
    let mut child = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema_path)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed to validate packets ({e}): install it with `apt-get install libxml2-utils` (deploy/test.sh does)")
        });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin piped");
        // xmllint may stop reading at the first fatal error; its verdict stands.
        if let Err(e) = stdin.write_all(xml.as_bytes()) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "feed xmllint: {e}"
            );
        }
    }
    let out = child.wait_with_output().expect("xmllint runs");
    if out.status.success() {
        None
    } else {
        Some(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The text of the first `<tag>` in `xml` (tests read answers this way,
/// after validating them against the schema).
pub fn first(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// Character data as XML escapes it, read back.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#13;", "\r")
        .replace("&amp;", "&")
}

/// Every `<errcode>` of an answer, in order.
pub fn codes(xml: &str) -> Vec<u32> {
    xml.match_indices("<errcode>")
        .filter_map(|(i, _)| {
            let rest = &xml[i + 9..];
            rest[..rest.find('<')?].parse().ok()
        })
        .collect()
}

/// Every byte of a server's panel database `psa` as `mysqldump` writes it
/// (rows in key order, no date): equal dumps mean nothing was written.
pub fn panel_dump(server: &hostmig::sandbox::mariadb::MariaDb) -> Vec<u8> {
    let out = Command::new("mysqldump")
        .args([
            "--protocol=tcp",
            "-h127.0.0.1",
            "-uroot",
            "--skip-dump-date",
            "--order-by-primary",
            "--hex-blob",
            "--skip-extended-insert",
        ])
        .arg(format!("-P{}", server.port))
        .arg("psa")
        .output()
        .unwrap_or_else(|e| {
            panic!("mysqldump is needed ({e}): install mariadb-client (deploy/test.sh does)")
        });
    assert!(
        out.status.success(),
        "mysqldump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Incompressible files under a new tree of a source's vhosts.
pub fn big_tree(vhosts: &Path, name: &str, files: usize, size: usize) -> PathBuf {
    let root = vhosts.join(name);
    std::fs::create_dir_all(&root).expect("tree");
    let mut rng = fastrand::Rng::with_seed(name.len() as u64 * 7919);
    for i in 0..files {
        let mut f = std::fs::File::create(root.join(format!("blob-{i}.bin"))).expect("file");
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            rng.fill(&mut buf);
            let n = left.min(buf.len());
            std::io::Write::write_all(&mut f, &buf[..n]).expect("write");
            left -= n;
        }
    }
    root
}

pub type Received = Arc<std::sync::Mutex<Vec<(Instant, String, serde_json::Value)>>>;

/// A loopback receiver of notifications that answers 204 to every POST and keeps
/// (when, path, JSON body).
pub fn receiver() -> (SocketAddr, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let got: Received = Arc::default();
    let kept = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some((path, body)) = read_post(&stream) {
                let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                kept.lock()
                    .expect("lock")
                    .push((Instant::now(), path, value));
            }
            let mut stream = stream;
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, got)
}

fn read_post(stream: &std::net::TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    Some((path, String::from_utf8_lossy(&body).into_owned()))
}

/// The JSON bodies a receiver got so far.
pub fn notices(got: &Received) -> Vec<serde_json::Value> {
    got.lock()
        .expect("lock")
        .iter()
        .map(|(_, _, v)| v.clone())
        .collect()
}

/// The bodies once there are at least `n` (or `limit` has passed).
pub fn wait_notices(got: &Received, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let all = notices(got);
        if all.len() >= n || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
