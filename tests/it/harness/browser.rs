//! Real headless Chromium, driven over WebDriver (chromedriver on a free
//! loopback port, spoken to as JSON over HTTP). Chromium is started so
//! that it calls nowhere by itself; it trusts the daemon's self-signed
//! certificate by `acceptInsecureCerts`. Both are Debian's packages
//! `chromium` and `chromium-driver` (deploy/install-deps.sh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
/// The key of an element reference (W3C WebDriver).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

/// A free loopback port (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// Chromium with its screenshots kept under `shots`.
    pub fn start(shots: &Path) -> Browser {
        for (file, package) in [(CHROMIUM, "chromium"), (DRIVER, "chromium-driver")] {
            assert!(
                Path::new(file).exists(),
                "{file} is missing: install Debian's {package} (deploy/install-deps.sh does)"
            );
        }
        std::fs::create_dir_all(shots).expect("screenshot directory");
        let port = free_port();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|t| t.contains("\"ready\":true"));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start in 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            shots: shots.to_owned(),
            _profile: profile,
        };
        let args = json!([
            "--no-sandbox",
            "--headless",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-default-apps",
            "--disable-extensions",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", b._profile.path().display()),
        ]);
        let created = b.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}}),
        );
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        b
    }

    /// One WebDriver command; answers its `value`, panics on an error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string().into_bytes())
            .expect("request");
        let mut answer = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let text = answer.body_mut().read_to_string().expect("answer");
        let value: Value = serde_json::from_str(&text).expect("JSON from chromedriver");
        if answer.status().as_u16() != 200 {
            panic!("WebDriver {method} {path}: {text}");
        }
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The element matching `css` once there is one (within 20 s).
    pub fn find(&self, css: &str) -> String {
        self.wait_for(&format!("an element {css}"), || self.try_find(css))
    }

    pub fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("Content-Type", "application/json")
            .body(
                json!({"using": "css selector", "value": css})
                    .to_string()
                    .into_bytes(),
            )
            .expect("request");
        let mut answer = self.agent.run(request).ok()?;
        if answer.status().as_u16() != 200 {
            // "no such element", or one that went while it was looked for.
            return None;
        }
        let value: Value = serde_json::from_str(&answer.body_mut().read_to_string().ok()?).ok()?;
        value["value"][ELEMENT].as_str().map(str::to_owned)
    }

    pub fn click(&self, css: &str) {
        let el = self.find(css);
        self.session_call("POST", &format!("/element/{el}/click"), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        );
    }

    /// What a script answers (`return ...`).
    pub fn script(&self, js: &str) -> Value {
        self.session_call("POST", "/execute/sync", json!({"script": js, "args": []}))
    }

    /// The page's whole text as shown.
    pub fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : '';")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn cookies(&self) -> Vec<Value> {
        self.session_call("GET", "/cookie", json!({}))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG of the viewport, kept as `<shots>/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.session_call("GET", "/screenshot", json!({}));
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            data.as_str().expect("base64"),
        )
        .expect("PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Waits (up to 20 s, the page's 2 s refresh included) for `what`.
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        self.wait_long(what, Duration::from_secs(20), &mut probe)
    }

    pub fn wait_long<T>(
        &self,
        what: &str,
        limit: Duration,
        probe: &mut impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timed-out");
                panic!(
                    "waited {limit:?} for {what}; the page shows ({}):\n{}",
                    shot.display(),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
