//! The API server end to end: a real `hostmig serve` process over HTTPS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{self, assert_valid, codes, first, Options, Server, PASSWORD};

const CHECK: &str = "<packet><migration><check/></migration></packet>";

fn status(id: &str) -> String {
    format!("<get_status><migration_id>{id}</migration_id></get_status>")
}

/// A valid `start` (valid against agent_input.xsd) with this selection.
fn start(selection: &str, extra: &str) -> String {
    format!(
        "<start><host>192.0.2.7</host><login>root</login><password>src-pw-do-not-log</password>\
         <destination-host-directory/>{extra}<selected-objects>{selection}</selected-objects></start>"
    )
}

fn packet(version: &str, ops: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"{version}\"><migration>{ops}</migration></packet>")
}

/// Sends a valid request (checked against agent_input.xsd) and answers the
/// response, checked against agent_output.xsd.
fn exchange(server: &Server, request: &str) -> String {
    assert_valid(request, "agent_input.xsd");
    let answer = server.post(request);
    assert_valid(&answer, "agent_output.xsd");
    answer
}

fn system_code(answer: &str) -> Option<u32> {
    first(answer, "system").and_then(|s| codes(&s).first().copied())
}

#[test]
fn check_and_get_fs_are_answered() {
    let server = Server::start();
    let answer = exchange(&server, &packet("1.6.3.0", "<check/><get_fs/>"));
    assert!(answer
        .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"1.6.3.0\">"));
    let check = first(&answer, "check").expect("check answered");
    assert_eq!(codes(&check), vec![1026]);
    assert!(
        check.contains("the [destination] section is not configured"),
        "{check}"
    );

    let fs = first(&answer, "get_fs").expect("get_fs answered");
    assert_eq!(first(&fs, "status").as_deref(), Some("ok"));
    // The root file system is listed with its real size from statvfs.
    let root = fs
        .split("<fs>")
        .skip(1)
        .find(|f| first(f, "mountpoint").as_deref() == Some("/"))
        .expect("/ is listed");
    let size: u64 = first(root, "size")
        .and_then(|s| s.parse().ok())
        .expect("size");
    let free: u64 = first(root, "free")
        .and_then(|s| s.parse().ok())
        .expect("free");
    assert!(size > 0 && free <= size);
    assert!(!fs.contains("<type>proc</type>") && !fs.contains("<type>sysfs</type>"));
}

#[test]
fn check_names_every_missing_piece_of_the_destination() {
    let roots = tempfile::tempdir().expect("tempdir");
    let vhosts = roots.path().join("vhosts");
    std::fs::create_dir(&vhosts).expect("vhosts");
    // A database server on a closed loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let rest = format!(
        "[destination]\nvhosts_root = \"{}\"\nmailnames_root = \"{}\"\ndump_dir = \"{}\"\n\
         [[destination.db_servers]]\nhost = \"localhost\"\nport = 3306\ntype = \"mysql\"\nurl = \"mysql://root@127.0.0.1:{closed}\"\ndefault = true\n\
         [ssh]\nidentity = \"{}\"\n",
        vhosts.display(),
        roots.path().join("no-such-mail").display(),
        roots.path().display(),
        roots.path().join("missing_id").display()
    );
    let server = Server::start_with(Options {
        rest,
        ..Options::default()
    });
    let answer = exchange(&server, &packet("1.6.9.1", "<check/>"));
    let text = first(&answer, "errtext").expect("errtext");
    assert!(
        text.contains("destination.panel_db is not configured"),
        "{text}"
    );
    assert!(text.contains("destination.mailnames_root"), "{text}");
    assert!(
        !text.contains("destination.vhosts_root"),
        "writable root reported: {text}"
    );
    assert!(
        !text.contains("destination.dump_dir"),
        "writable dump dir reported: {text}"
    );
    assert!(text.contains("ssh.identity"), "{text}");
    assert!(
        text.contains("database server localhost:3306 of destination.db_servers is not reachable"),
        "{text}"
    );
    // The writability probe leaves nothing behind.
    assert_eq!(std::fs::read_dir(&vhosts).expect("read").count(), 0);
}

#[test]
fn operations_and_operators_are_answered_in_order() {
    let server = Server::start();
    let domains = "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>";
    let request = format!(
        "<packet version=\"1.4.0.0\"><request-settings><setting><name>x</name><value>y</value></setting></request-settings>\
         <migration>{}<check/>{}</migration><migration>{}<get_fs/>{}{}</migration></packet>",
        status("41"),
        start(domains, "<system-type>windows</system-type>"),
        "<finish><migration_id>42</migration_id></finish>",
        "<resync><migration_id>43</migration_id><password>pw</password></resync>",
        start(domains, "<content-transport>rsync</content-transport><only-mail/>"),
    );
    let answer = exchange(&server, &request);
    let names: Vec<&str> = answer
        .match_indices('<')
        .filter_map(|(i, _)| {
            let tag = &answer[i + 1..];
            let end = tag.find(['>', ' ', '/'])?;
            let name = &tag[..end];
            [
                "migration",
                "check",
                "get_fs",
                "start",
                "get_status",
                "finish",
                "resync",
            ]
            .contains(&name)
            .then_some(name)
        })
        .collect();
    assert_eq!(
        names,
        [
            "migration",
            "get_status",
            "check",
            "start",
            "migration",
            "finish",
            "get_fs",
            "resync",
            "start"
        ]
    );
    assert_eq!(codes(&answer), vec![1013, 1026, 1017, 1013, 1013, 1026]);
    assert!(answer.contains("migration 41 does not exist"));
    assert!(answer.contains("Windows sources are not supported"));
    assert!(answer.contains("the [destination] section is not configured"));
}

#[test]
fn every_error_code_the_api_can_give_without_an_engine() {
    let key = "the-api-key-do-not-log";
    let key_sha = sha256_hex(key);
    let far_key = "far-away-key-do-not-log";
    let api = format!(
        "[[api.keys]]\nkey_sha256 = \"{key_sha}\"\nallow_from = [\"127.0.0.0/8\"]\n\
         [[api.keys]]\nkey_sha256 = \"{}\"\nallow_from = [\"192.0.2.0/24\"]\n",
        sha256_hex(far_key)
    );
    let server = Server::start_with(Options {
        api,
        ..Options::default()
    });
    let ok = packet("1.6.9.1", &status("1"));

    // 1029: no credentials at all.
    let a = server.post_with(&ok, &[]);
    assert_valid(&a, "agent_output.xsd");
    assert_eq!(system_code(&a), Some(1029));
    // 1001: wrong password; wrong login.
    for (login, pw) in [("admin", "wrong-pw-do-not-log"), ("root", PASSWORD)] {
        let a = server.post_with(&ok, &[("HTTP_AUTH_LOGIN", login), ("HTTP_AUTH_PASSWD", pw)]);
        assert_eq!(system_code(&a), Some(1001), "{login}");
    }
    // 11003: unknown key; 1010: a real key from a network it is not allowed from.
    let a = server.post_with(&ok, &[("KEY", "not-a-key-do-not-log")]);
    assert_eq!(system_code(&a), Some(11003));
    let a = server.post_with(&ok, &[("KEY", far_key)]);
    assert_eq!(system_code(&a), Some(1010));
    // The allowed key works, and its answer is a normal one (1013 for the unknown id).
    let a = server.post_with(&ok, &[("KEY", key)]);
    assert_valid(&a, "agent_output.xsd");
    assert_eq!((system_code(&a), codes(&a)), (None, vec![1013]));
    // 1005, 1017, 1014, 1013.
    assert_eq!(
        system_code(&server.post(packet("1.3.0.0", "<check/>"))),
        Some(1005)
    );
    assert_eq!(
        system_code(&server.post(packet("1.7.0.0", "<check/>"))),
        Some(1005)
    );
    let a =
        server.post("<packet><migration><check/></migration><webspace><get/></webspace></packet>");
    assert_valid(&a, "agent_output.xsd");
    assert_eq!(system_code(&a), Some(1017));
    assert!(a.contains("operator webspace is not supported"));
    assert_eq!(
        system_code(&server.post("<packet><migration><nope/></migration></packet>")),
        Some(1014)
    );
    let a = exchange(
        &server,
        &packet(
            "1.6.9.1",
            &format!(
                "{}<finish><migration_id>77</migration_id></finish>",
                status("76")
            ),
        ),
    );
    assert_eq!(codes(&a), vec![1013, 1013]);
    // 1017 inside a result: resellers.
    let a = exchange(
        &server,
        &packet(
            "1.6.9.1",
            &start(
                "<migrate-resellers><reseller><name>r</name></reseller></migrate-resellers>",
                "",
            ),
        ),
    );
    assert_eq!(codes(&a), vec![1017]);

    let log = server.log();
    for secret in [
        PASSWORD,
        key,
        far_key,
        "wrong-pw-do-not-log",
        "not-a-key-do-not-log",
        "src-pw-do-not-log",
    ] {
        assert!(
            !log.contains(secret),
            "the log holds a credential: {secret}"
        );
    }
    assert!(
        log.contains("authentication refused"),
        "failures are logged"
    );
}

#[test]
fn repeated_failures_lock_the_address_out() {
    let server = Server::start_with(Options {
        api: "max_failed_logins_per_minute = 3".into(),
        ..Options::default()
    });
    let ok = packet("1.6.9.1", "<check/>");
    let wrong = [("HTTP_AUTH_LOGIN", "admin"), ("HTTP_AUTH_PASSWD", "nope")];
    // A right password is not locked out by failures that have not reached the limit.
    for _ in 0..2 {
        assert_eq!(system_code(&server.post_with(&ok, &wrong)), Some(1001));
    }
    assert_eq!(system_code(&server.post(&ok)), None);
    assert_eq!(system_code(&server.post_with(&ok, &wrong)), Some(1001));
    // The third failure locks: even the right password is refused now.
    let locked = server.post(&ok);
    assert_valid(&locked, "agent_output.xsd");
    assert_eq!(system_code(&locked), Some(1012));
    assert_eq!(system_code(&server.post_with(&ok, &[])), Some(1012));
}

/// Each entry: what it is, and the body.
fn hostile_packets() -> Vec<(&'static str, Vec<u8>)> {
    let good = packet("1.6.9.1", &status("1"));
    let deep = format!(
        "<packet>{}{}</packet>",
        "<migration>".repeat(10_000),
        "</migration>".repeat(10_000)
    );
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
                <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]><packet><migration><get_status><migration_id>&lol3;</migration_id></get_status></migration></packet>";
    let mut big = b"<packet><migration><check/></migration><!--".to_vec();
    big.resize(2 * 1024 * 1024, b'x');
    big.extend_from_slice(b"--></packet>");
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8.splice(60..60, [0xff, 0xfe, 0xc3]);
    vec![
        ("empty body", Vec::new()),
        ("white space only", b"  \n ".to_vec()),
        ("truncated", good.as_bytes()[..good.len() / 2].to_vec()),
        ("children in the wrong order", packet("1.6.9.1", "<start><login>root</login><host>h</host><password/><destination-host-directory/><selected-objects/></start>").into_bytes()),
        ("missing required element", packet("1.6.9.1", "<get_status/>").into_bytes()),
        ("unknown element", packet("1.6.9.1", "<get_status><migration_id>1</migration_id><extra/></get_status>").into_bytes()),
        ("unknown operation", packet("1.6.9.1", "<drop_all/>").into_bytes()),
        ("wrong root", b"<request><migration><check/></migration></request>".to_vec()),
        ("DOCTYPE with an entity bomb", bomb.as_bytes().to_vec()),
        ("external entity", b"<!DOCTYPE p [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><packet><migration><get_status><migration_id>&x;</migration_id></get_status></migration></packet>".to_vec()),
        ("undeclared entity", packet("1.6.9.1", "<get_status><migration_id>&x;</migration_id></get_status>").into_bytes()),
        ("2 MiB body", big),
        ("10,000-deep nesting", deep.into_bytes()),
        ("invalid UTF-8", not_utf8),
        ("trailing garbage", format!("{good}<packet/>").into_bytes()),
        ("text after the root", format!("{good}garbage").into_bytes()),
        ("mismatched end tag", b"<packet><migration><check/></migrate></packet>".to_vec()),
        ("control character", packet("1.6.9.1", "<get_status><migration_id>1\u{1}</migration_id></get_status>").into_bytes()),
        ("processing instruction", format!("<?evil x?>{good}").into_bytes()),
        ("bad IPv4 address", packet("1.6.9.1", &start("<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name><ip><old><ip-type>shared</ip-type><ip-address>999.1.1.1</ip-address></old><new><ip-type>shared</ip-type><ip-address>1.2.3.4</ip-address></new></ip></domain></migrate-domains>", "")).into_bytes()),
        ("ip-type outside the enumeration", packet("1.6.9.1", &start("<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name><ip><old><ip-type>any</ip-type><ip-address>192.0.2.1</ip-address></old><new><ip-type>shared</ip-type><ip-address>192.0.2.2</ip-address></new></ip></domain></migrate-domains>", "")).into_bytes()),
        ("unknown content-transport", packet("1.6.9.1", &start("<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>", "<content-transport>ftp</content-transport>")).into_bytes()),
        ("attribute on an operation", packet("1.6.9.1", "<check force=\"1\"/>").into_bytes()),
        ("XML declaration with another encoding", b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><packet><migration><check/></migration></packet>".to_vec()),
    ]
}

/// Refused for what an XSD cannot say: size, DTDs, instructions, encoding.
const BEYOND_THE_SCHEMA: &[&str] = &[
    "DOCTYPE with an entity bomb",
    "external entity",
    "2 MiB body",
    "processing instruction",
    "XML declaration with another encoding",
];

#[test]
fn hostile_packets_get_1014_quickly_and_the_server_keeps_serving() {
    let mut server = Server::start();
    // Warm the credential cache so the timings below are the codec's.
    exchange(&server, CHECK);
    let mut report = Vec::new();
    for (what, body) in hostile_packets() {
        let t = Instant::now();
        let answer = server.post(&body);
        let elapsed = t.elapsed();
        assert_valid(&answer, "agent_output.xsd");
        assert_eq!(system_code(&answer), Some(1014), "{what}: {answer}");
        if !BEYOND_THE_SCHEMA.contains(&what) {
            assert!(
                harness::validate(&String::from_utf8_lossy(&body), "agent_input.xsd").is_some(),
                "{what} is valid by the schema"
            );
        }
        // A liveness bound, not a benchmark: a hang or an expansion would blow it.
        assert!(elapsed < Duration::from_secs(5), "{what} took {elapsed:?}");
        report.push((what, elapsed));
        assert!(server.is_running(), "server died on: {what}");
    }
    let answer = exchange(&server, CHECK);
    assert_eq!(codes(&answer), vec![1026]);
    let slowest = report.iter().max_by_key(|(_, d)| *d).expect("cases");
    eprintln!(
        "hostile packets: {} cases, slowest {} in {:?}",
        report.len(),
        slowest.0,
        slowest.1
    );
    for (what, d) in &report {
        eprintln!("  {d:>12?}  {what}");
    }
}

#[test]
fn pretty_print_and_http_methods_and_paths() {
    let server = Server::start();
    let a = server.post_with(
        CHECK,
        &[
            ("HTTP_AUTH_LOGIN", "admin"),
            ("HTTP_AUTH_PASSWD", PASSWORD),
            ("HTTP_PRETTY_PRINT", "TRUE"),
        ],
    );
    assert_valid(&a, "agent_output.xsd");
    assert!(a.contains("\n  <migration>\n    <check>\n"), "{a}");
    let (status, _, _) = server.request("GET", &server.url(), b"", &[]);
    assert_eq!(status, 405);
    let (status, _, _) = server.request("PUT", &server.url(), CHECK.as_bytes(), &[]);
    assert_eq!(status, 405);
    let (status, _, _) = server.request(
        "POST",
        &format!("https://{}/enterprise/control/other.php", server.https),
        CHECK.as_bytes(),
        &[],
    );
    assert_eq!(status, 404);
    // application/xml is accepted like text/xml.
    let (status, _, body) = server.request(
        "POST",
        &server.url(),
        CHECK.as_bytes(),
        &[
            ("Content-Type", "application/xml"),
            ("HTTP_AUTH_LOGIN", "admin"),
            ("HTTP_AUTH_PASSWD", PASSWORD),
        ],
    );
    assert_eq!((status, codes(&body)), (200, vec![1026]));
}

#[test]
fn json_logs_carry_one_span_per_request() {
    let server = Server::start_with(Options {
        json_logs: true,
        ..Options::default()
    });
    exchange(
        &server,
        &packet("1.6.9.1", &format!("<check/>{}", status("9"))),
    );
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON line: {line}"
        );
    }
    let answered = lines
        .iter()
        .find(|l| l.contains("\"packet answered\""))
        .expect("the packet is logged");
    assert!(answered.contains("\"client\":\"127.0.0.1\""), "{answered}");
    assert!(
        answered.contains("\"operations\":\"check,get_status\""),
        "{answered}"
    );
    assert!(answered.contains("\"operators\":1"), "{answered}");
}

#[test]
fn sigterm_answers_in_flight_requests_then_closes_the_journal() {
    let mut server = Server::start_with(Options {
        with_http: true,
        ..Options::default()
    });
    let addr = server.http.expect("plain listener");
    let body = CHECK.as_bytes();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST /enterprise/control/agent.php HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nHTTP_AUTH_LOGIN: admin\r\nHTTP_AUTH_PASSWD: {PASSWORD}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&body[..10]).expect("half a body");
    std::thread::sleep(Duration::from_millis(300));
    harness::signal(server.pid(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[10..]).expect("rest of the body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(codes(&answer), vec![1026]);
    assert!(server.stop(), "clean exit after SIGTERM");
    let log = server.log();
    assert!(log.contains("journal closed"), "{log}");
    let journal = rusqlite::Connection::open(server.dir.path().join("state/journal.sqlite"))
        .expect("journal");
    let (runs, stopped): (i64, i64) = journal
        .query_row(
            "SELECT count(*), count(stopped_at) FROM server_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("query");
    assert_eq!((runs, stopped), (1, 1));
}

#[test]
fn the_generated_certificate_is_reused_and_a_kill_is_noticed() {
    let state = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        state_dir: Some(state.path().join("s")),
        ..Options::default()
    };
    let first_cert;
    {
        let server = Server::start_with(opts.clone());
        first_cert = std::fs::read(state.path().join("s/tls/cert.pem")).expect("cert");
        let key_mode = std::fs::metadata(state.path().join("s/tls/key.pem"))
            .expect("key")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
            0o600
        );
        exchange(&server, CHECK);
        harness::signal(server.pid(), libc::SIGKILL);
    }
    let server = Server::start_with(opts);
    assert_eq!(
        std::fs::read(state.path().join("s/tls/cert.pem")).expect("cert"),
        first_cert
    );
    // The client trusts the first certificate only: the server still presents it.
    let agent = harness::agent_trusting(&first_cert);
    let resp = agent
        .post(&server.url())
        .header("HTTP_AUTH_LOGIN", "admin")
        .header("HTTP_AUTH_PASSWD", PASSWORD)
        .send(CHECK)
        .expect("TLS with the first certificate");
    assert_eq!(resp.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("did not stop cleanly") {
        assert!(
            Instant::now() < deadline,
            "the unclean stop was not reported:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `hostmig serve` expecting it to fail at start; answers stderr.
fn failing_start(config: &str, setup: impl FnOnce(&std::path::Path)) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path());
    let path = dir.path().join("hostmig.toml");
    std::fs::write(
        &path,
        config.replace("@DIR@", &dir.path().display().to_string()),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hostmig"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert!(!out.status.success(), "started with a bad setup");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("hostmig: error: "), "{stderr}");
    stderr
}

#[test]
fn startup_errors_are_one_clear_line() {
    let base = |api: &str| {
        format!(
            "[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_password_hash = \"{}\"\n{api}\n[state]\ndir = \"@DIR@/state\"\n",
            harness::password_hash()
        )
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let e = failing_start(
        &base("").replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
        |_| {},
    );
    assert!(
        e.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{e}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hostmig"))
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot read config file"),
        "{stderr}"
    );

    let e = failing_start(
        &base("tls_cert = \"@DIR@/c.pem\"\ntls_key = \"@DIR@/k.pem\""),
        |d| {
            std::fs::write(d.join("c.pem"), "not a certificate").expect("c");
            std::fs::write(d.join("k.pem"), "not a key").expect("k");
        },
    );
    assert!(e.contains("c.pem holds no certificate"), "{e}");

    let e = failing_start(&base("colour = \"blue\""), |_| {});
    assert!(e.contains("api.colour: unknown field `colour`"), "{e}");

    let e = failing_start(
        &base("").replace(harness::password_hash(), "hunter2"),
        |_| {},
    );
    assert!(
        e.contains("api.admin_password_hash") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn a_second_server_on_the_same_state_directory_is_refused() {
    let server = Server::start();
    let config = harness::config_text(&Options::default(), &server.dir.path().join("state"));
    let e = failing_start(&config, |_| {});
    assert!(
        e.contains("another hostmig is running with state directory"),
        "{e}"
    );
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The scheduling policy (`/proc/PID/task/TID/stat`, field 41) of each of
/// the process's threads.
fn thread_policies(pid: u32) -> Vec<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the command name, which may hold spaces, start
            // at field 3.
            let rest = &stat[stat.rfind(')').expect("stat") + 1..];
            let policy = rest.split_whitespace().nth(41 - 3).expect("policy");
            policy.parse().expect("number")
        })
        .collect()
}

fn realtime_threads(pid: u32) -> usize {
    thread_policies(pid)
        .iter()
        .filter(|&&p| p == libc::SCHED_FIFO)
        .count()
}

#[test]
fn http_workers_are_realtime_within_a_budget_that_a_flood_exceeds() {
    let root = unsafe { libc::geteuid() } == 0;
    let server = Server::start();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let answer = server.post(CHECK);
    assert!(answer.contains("<check><result>"), "{answer}");
    if !root {
        // Not allowed: the workers stay ordinary and say so in the log.
        assert_eq!(realtime_threads(server.pid()), 0);
        assert!(server
            .log()
            .contains("the HTTP worker stays in the ordinary class"));
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while realtime_threads(server.pid()) < workers {
        assert!(
            Instant::now() < deadline,
            "{} of {workers} workers real-time",
            realtime_threads(server.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        realtime_threads(server.pid()),
        workers,
        "only the HTTP workers"
    );

    // A closed loop from 4 connections uses far more than a fifth of a
    // core in each worker: they drop to the ordinary class.
    let packet = packet("1.6.9.1", &status("no-such-id"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let dropped = std::thread::scope(|s| {
        let flood: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        server.post(&packet);
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut fewest = workers;
        while Instant::now() < deadline && fewest > 0 {
            fewest = fewest.min(realtime_threads(server.pid()));
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flood.into_iter().for_each(|t| t.join().expect("flood"));
        fewest < workers
    });
    assert!(dropped, "no worker left the real-time class under a flood");
    assert!(
        server
            .log()
            .contains("HTTP worker's scheduling class class=Ordinary"),
        "{}",
        server.log()
    );
    // Quiet again: back within a few windows.
    let deadline = Instant::now() + Duration::from_secs(2);
    while realtime_threads(server.pid()) < workers {
        assert!(
            Instant::now() < deadline,
            "workers did not return to real-time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let ordinary = Server::start_with(Options {
        api: "realtime = false".into(),
        ..Options::default()
    });
    ordinary.post(CHECK);
    assert_eq!(realtime_threads(ordinary.pid()), 0, "realtime = false");
}
