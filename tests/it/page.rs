//! The status page, the metrics and the notifications (issue 20): the
//! page in real headless Chromium against a real daemon migrating from
//! the sandbox's servers; `/metrics` parsed by a Prometheus text-format
//! parser and matched against what the migrations' event logs say they
//! moved; notifications received by a loopback receiver while another
//! one hangs.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostmig::sandbox::Profile;
use serde_json::Value;
use sha2::Digest;

use crate::harness::browser::Browser;
use crate::harness::world::{mapped_domain, World};
use crate::harness::{big_tree, receiver, PASSWORD};

/// Slow enough that the page sees progress, fast enough for CI.
const CAP: u64 = 4 << 20;
const METRICS_KEY: &str = "metrics-key-of-the-page-test";
/// A token in the receiver's path: it must never reach a log.
const HOOK_TOKEN: &str = "T0KEN-in-the-hook-path";

/// A receiver that accepts connections and never answers; counts them.
fn hanging() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted)
}

fn domain(name: &str, old: &str, new: &str) -> String {
    mapped_domain("admin", name, (old, new))
}

/// A number the page's script can read.
fn number(b: &Browser, js: &str) -> Option<f64> {
    b.script(js).as_f64()
}

/// What a migration's report says it moved (the trees and databases
/// copied and verified): files and bytes sent, rows; read with the client.
fn moved(w: &World, id: &str) -> (u64, u64, u64) {
    let ran = crate::client::client(w, &["--json", "report", id], &[]);
    assert_eq!(ran.status, 0, "{}{}", ran.stdout, ran.stderr);
    let report: Value = serde_json::from_str(&ran.stdout).expect("JSON");
    let n = |v: &Value, k: &str| {
        v[k].as_str()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let list = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    let mut sums = (0, 0, 0);
    for o in list(&report, "object") {
        for t in list(&o, "tree").iter().filter(|t| t["outcome"] == "copied") {
            sums.0 += n(t, "sent-files");
            sums.1 += n(t, "sent-bytes");
        }
        for d in list(&o, "database")
            .iter()
            .filter(|d| d["outcome"] == "copied")
        {
            sums.2 += n(d, "rows");
        }
    }
    sums
}

/// A sample's value from a parsed scrape.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v))
        | Some(prometheus_parse::Value::Gauge(v))
        | Some(prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("no sample {name} {label:?}: {other:?}"),
    }
}

/// A scrape of `/metrics` with the key, parsed; and its text.
fn scrape(w: &World) -> (prometheus_parse::Scrape, String) {
    let url = format!("https://{}/metrics", w.server.https);
    let bearer = format!("Bearer {METRICS_KEY}");
    let (status, content_type, text) =
        w.server
            .request("GET", &url, b"", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{text}"
    );
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("a Prometheus text-format scrape");
    (parsed, text)
}

#[test]
fn the_page_metrics_and_notifications_follow_real_migrations() {
    let (hook, got) = receiver();
    let (hang, hung) = hanging();
    let key_sha = hex(&sha2::Sha256::digest(METRICS_KEY.as_bytes()));
    let extra = format!(
        "\n[[api.keys]]\nkey_sha256 = \"{key_sha}\"\n\n[migrations]\nmax_bytes_per_s = {CAP}\n{}\n\
         [[notify]]\nurl = \"http://{hook}/hook/{HOOK_TOKEN}\"\ntimeout_s = 5\n\n\
         [[notify]]\nurl = \"http://{hang}/hang\"\nevents = [\"finished\"]\ntimeout_s = 30\nretries = 2\n",
        crate::faults::UNCOMPRESSED
    );
    let w = World::new(Profile::Tiny, &extra);
    big_tree(
        &w.source.layout.vhosts,
        "admin-site.example/httpdocs/big",
        24,
        1 << 20,
    );
    let stopped = w
        .start(&domain("admin-site.example", "192.0.2.100", "198.51.100.5"))
        .expect("started");

    // Without a login: the login form only, and the live parts refused.
    let base = format!("https://{}", w.server.https);
    let (status, _, page) = w.server.request("GET", &format!("{base}/"), b"", &[]);
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"login\"") && !page.contains("migration-"),
        "{page}"
    );
    let (status, _, page) =
        w.server
            .request("GET", &format!("{base}/migration/{stopped}"), b"", &[]);
    assert!(
        status == 200 && page.contains("id=\"login\"") && !page.contains("admin-site"),
        "{page}"
    );
    let (status, _, _) = w.server.request("GET", &format!("{base}/live"), b"", &[]);
    assert_eq!(status, 401);

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    let b = Browser::start(&shots);
    b.goto(&format!("{base}/"));
    b.type_into("#login-name", "admin");
    b.type_into("#login-password", "not-the-password");
    b.click("#login-submit");
    b.wait_for("the refusal", || {
        b.text().contains("wrong login or password").then_some(())
    });
    b.type_into("#login-name", "admin");
    b.type_into("#login-password", PASSWORD);
    b.click("#login-submit");
    b.find(&format!("#migration-{stopped}"));
    b.screenshot("1-migrations");
    let cookies = b.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "hostmig_session")
        .unwrap_or_else(|| panic!("a session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    let cookie = format!(
        "hostmig_session={}",
        session["value"].as_str().expect("value")
    );

    // A form post without the CSRF token is refused, and stops nothing.
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, page) = w.server.request(
        "POST",
        &format!("{base}/migration/{stopped}/stop"),
        b"confirm=yes",
        &form,
    );
    assert_eq!(status, 403, "{page}");
    assert!(
        !w.status(&stopped).contains("<finished>"),
        "{}",
        w.status(&stopped)
    );

    // Stop it with the button, confirmed.
    b.goto(&format!("{base}/migration/{stopped}"));
    b.click("#stop-button");
    b.find("#confirm-stop");
    b.screenshot("2-confirm-stop");
    b.click("#confirm-stop");
    b.wait_for("the stopped state", || {
        b.try_find("#state[data-state=\"stopped\"]")
    });
    b.screenshot("3-stopped");

    // Metrics: the key is needed from here (no allow_from).
    let url = format!("{base}/metrics");
    assert_eq!(w.server.request("GET", &url, b"", &[]).0, 401);
    let wrong = [("Authorization", "Bearer wrong-key")];
    assert_eq!(w.server.request("GET", &url, b"", &wrong).0, 403);
    let (before, _) = scrape(&w);

    // Another one, started now: the list shows it without a reload; its
    // bytes bar advances on its page as the page refreshes itself, then
    // it shows its final state.
    b.goto(&format!("{base}/"));
    b.find(&format!("#migration-{stopped}"));
    let watched = w
        .start(&domain("jdoe.example", "192.0.2.10", "198.51.100.4"))
        .expect("started");
    b.find(&format!("#migration-{watched}"));
    b.goto(&format!("{base}/migration/{watched}"));
    let bar = "var e = document.getElementById('bytes'); return e ? e.value : null;";
    let first = b.wait_for("a bytes bar under way", || {
        number(&b, bar).filter(|v| *v > 0.0)
    });
    let later = b.wait_for("the bar to advance", || {
        number(&b, bar).filter(|v| *v > first)
    });
    assert!(later > first);
    b.screenshot("4-progress");
    let mut success = || b.try_find("#state[data-state=\"success\"]");
    b.wait_long("success", Duration::from_secs(120), &mut success);
    let ended = Instant::now();
    let text = b.text();
    assert!(
        text.contains("jdoe.example") && text.contains("deployed"),
        "{text}"
    );
    // The event log followed to its end.
    b.wait_for("the log's finished event", || {
        b.text().contains("\"phase\":\"finished\"").then_some(())
    });
    b.screenshot("5-success");
    b.click("#logout");
    b.find("#login-name");
    assert!(
        !b.cookies().iter().any(|c| c["name"] == "hostmig_session"),
        "{:?}",
        b.cookies()
    );
    b.goto(&format!("{base}/migration/{watched}"));
    b.find("#login-name");
    b.screenshot("6-logged-out");
    drop(b);
    // The old session's cookie opens nothing any more.
    let (status, _, _) = w
        .server
        .request("GET", &format!("{base}/live"), b"", &form[..1]);
    assert_eq!(status, 401);

    // Notifications: one POST per end, at once although the other
    // receiver hangs; none carries a secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    let finished = loop {
        let all = got.lock().expect("lock").clone();
        let finished: Vec<_> = all
            .iter()
            .filter(|(_, _, v)| v["event"] == "finished")
            .cloned()
            .collect();
        if finished.len() >= 2 || Instant::now() > deadline {
            break finished;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let of = |id: &str| -> Vec<&(Instant, String, Value)> {
        finished
            .iter()
            .filter(|(_, _, v)| v["migration_id"] == id)
            .collect()
    };
    assert_eq!(of(&watched).len(), 1, "{finished:?}");
    assert_eq!(of(&stopped).len(), 1, "{finished:?}");
    assert_eq!(of(&watched)[0].2["outcome"], "success");
    assert_eq!(of(&stopped)[0].2["outcome"], "stopped");
    assert!(of(&watched)[0].0 < ended + Duration::from_secs(5));
    assert!(
        hung.load(Ordering::SeqCst) >= 1,
        "the hanging receiver was asked"
    );
    for (_, path, body) in got.lock().expect("lock").iter() {
        assert_eq!(path, &format!("/hook/{HOOK_TOKEN}"));
        let text = body.to_string();
        for secret in [PASSWORD, w.source.admin_password.as_str(), METRICS_KEY] {
            assert!(!text.contains(secret), "a secret in a notification: {text}");
        }
    }
    assert!(
        !w.server.log().contains(HOOK_TOKEN),
        "the hook's token reached the log"
    );

    // The counters grew by what the second migration's report says it
    // moved; the gauges count both.
    let (after, text) = scrape(&w);
    let moved = moved(&w, &watched);
    assert!(moved.0 > 0 && moved.1 > 0 && moved.2 > 0, "{moved:?}");
    let grew = |name: &str, label: Option<(&str, &str)>| {
        sample(&after, name, label) - sample(&before, name, label)
    };
    assert_eq!(
        grew("hostmig_copied_files_total", None),
        moved.0 as f64,
        "{text}"
    );
    assert_eq!(
        grew("hostmig_copied_bytes_total", Some(("kind", "content"))),
        moved.1 as f64,
        "{text}"
    );
    assert_eq!(
        grew("hostmig_copied_rows_total", None),
        moved.2 as f64,
        "{text}"
    );
    assert!(grew("hostmig_source_read_bytes_total", None) >= moved.1 as f64);
    assert_eq!(
        sample(&after, "hostmig_migrations", Some(("state", "success"))),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&after, "hostmig_migrations", Some(("state", "stopped"))),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&after, "hostmig_migrations", Some(("state", "running"))),
        0.0,
        "{text}"
    );
    assert_eq!(sample(&after, "hostmig_queue_length", None), 0.0);
    for (outcome, n) in [("success", 1.0), ("stopped", 1.0), ("failed", 0.0)] {
        let label = Some(("outcome", outcome));
        assert_eq!(
            sample(&after, "hostmig_migrations_ended_total", label),
            n,
            "{text}"
        );
    }
    assert_eq!(
        grew("hostmig_objects_total", Some(("outcome", "deployed"))),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &after,
            "hostmig_api_requests_total",
            Some(("operation", "start"))
        ) >= 2.0
    );
    assert!(
        sample(
            &after,
            "hostmig_api_requests_total",
            Some(("operation", "get_status"))
        ) >= 1.0
    );
    assert!(
        text.contains("hostmig_api_request_duration_seconds_bucket{"),
        "{text}"
    );
    // Labels never name a migration or an object.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("jdoe")
                && !line.contains("admin-site")
                && !line.contains("migration_id"),
            "{line}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
