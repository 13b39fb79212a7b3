//! The migration engine end to end: a real `hostmig serve` against the
//! sandbox's real sshd and MariaDB servers, driven through the API.

use std::time::{Duration, Instant};

use hostmig::sandbox::sshd::{self, TEST_LOGIN, TEST_PASSWORD};
use hostmig::sandbox::Profile;
use mysql_async::prelude::Queryable;

use crate::harness::world::{clients, domains, ip, jdoe_client, wait_gone, World};
use crate::harness::{self, codes};

/// Holds the destination's deploy lock, so migrations wait in their deploy step.
struct DeployLock(mysql_async::Conn);

impl DeployLock {
    fn take(world: &World) -> DeployLock {
        let mut conn = world.dest_conn();
        let got: Option<i64> = world
            .rt
            .block_on(conn.query_first("SELECT GET_LOCK('hostmig.panel.deploy', 0)"))
            .expect("lock");
        assert_eq!(got, Some(1));
        DeployLock(conn)
    }

    fn release(mut self, world: &World) {
        world
            .rt
            .block_on(self.0.query_drop("DO RELEASE_LOCK('hostmig.panel.deploy')"))
            .expect("unlock");
    }
}

/// mrsmith with its pool mapped, and these domains.
fn smith(domains: &str) -> String {
    clients(&format!(
        "<client><name>mrsmith</name>{}{}{domains}</client>",
        ip("shared", "192.0.2.100", "198.51.100.5"),
        ip("exclusive", "192.0.2.21", "203.0.113.9")
    ))
}

/// Every source address mapped to a destination address of its type.
const ALL_IPS: &str = "<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip>\
<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.100</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.5</ip-address></new></ip>\
<ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.20</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip>\
<ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.21</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.9</ip-address></new></ip>";

const JDOE_MAP: &[(&str, &str)] = &[
    ("192.0.2.10", "198.51.100.4"),
    ("192.0.2.20", "203.0.113.5"),
];

#[test]
fn client_and_domain_migrations_arrive_as_on_the_source() {
    let w = World::new(Profile::Small, "");
    // A client with one domain, its pool remapped.
    let id = w
        .start(&jdoe_client("<domain><name>jdoe.example</name></domain><domain><name>xn--bcher-kva.example</name></domain>"))
        .expect("started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    // The domain's database arrived on the default server, value for value.
    w.assert_database("jdoe_ftp_db", 0);
    // DatabaseServers holds the configured servers (hostmig keeps it so).
    let servers: Vec<(String, u16, String)> =
        w.rt.block_on(
            w.dest_conn()
                .query("SELECT host, port, CAST(type AS CHAR) FROM DatabaseServers ORDER BY port"),
        )
        .expect("servers");
    let mut configured: Vec<(String, u16, String)> = w
        .dest
        .db_servers
        .iter()
        .map(|s| ("localhost".to_owned(), s.port, "mysql".to_owned()))
        .collect();
    configured.sort();
    assert_eq!(servers, configured);
    // The content arrived, by the default transport (archive).
    w.assert_content("jdoe.example", ("192.0.2.10", "198.51.100.4"));
    w.assert_content("xn--bcher-kva.example", ("192.0.2.10", "198.51.100.4"));
    // big.example, jdoe's third domain, was not selected.
    let src: Vec<String> = w
        .source_dump(Some("jdoe"), None)
        .into_iter()
        .filter(|l| !l.starts_with("domain big.example "))
        .collect();
    assert_eq!(
        w.dest_dump(Some("jdoe"), None),
        w.expected(src, JDOE_MAP, None)
    );

    // A client with no domains, and one with a forwarding-only domain: success.
    let id = w
        .start(&clients("<client><name>nodomains</name></client>"))
        .expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    assert_eq!(
        w.dest_dump(Some("nodomains"), None),
        w.expected(w.source_dump(Some("nodomains"), None), &[], None)
    );
    let smith_map = [
        ("192.0.2.100", "198.51.100.5"),
        ("192.0.2.21", "203.0.113.9"),
    ];
    let id = w
        .start(&smith("<domain><name>smith-fwd.example</name></domain>"))
        .expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    assert_eq!(
        w.dest_dump(Some("mrsmith"), None),
        w.expected(w.source_dump(Some("mrsmith"), None), &smith_map, None)
    );

    // Domain migrations: to the administrator, and to another client.
    w.migrate_domain(
        "admin",
        "admin-site.example",
        ("192.0.2.100", "198.51.100.5"),
        "admin",
    );
    let id = w.migrate_domain(
        "mrsmith",
        "anna0-site0.example",
        ("192.0.2.10", "198.51.100.4"),
        "anna0",
    );
    // The longer address that shares a prefix is untouched.
    let legacy: Vec<String> =
        w.rt.block_on(
            w.dest_conn()
                .query("SELECT val FROM dns_recs WHERE host = 'legacy.jdoe.example.'"),
        )
        .expect("legacy");
    assert_eq!(legacy, ["192.0.2.100"]);
    // Each migration wrote its event log.
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
        .expect("event log");
    assert!(
        log.lines().count() >= 3 && log.contains("\"phase\":\"finished\""),
        "{log}"
    );
}

#[test]
fn every_refusal_of_start_and_nothing_left_behind() {
    let w = World::new(Profile::Tiny, "");
    assert!(
        sshd::ensure_test_login().expect("test login"),
        "run the tests as root (CI does)"
    );
    let jdoe = |extra: &str| clients(&format!("<client><name>jdoe</name>{extra}</client>"));
    let mapped = format!(
        "{}{}",
        ip("shared", "192.0.2.10", "198.51.100.4"),
        ip("exclusive", "192.0.2.20", "203.0.113.5")
    );
    let refused = |r: Result<String, (u32, String)>| r.expect_err("refused");

    // Validation writes nothing: neither `check` nor a refused start
    // changes one byte of the destination's panel database.
    let before = harness::panel_dump(&w.dest.db_servers[0]);
    assert!(
        w.exchange("<check/>").contains("<status>ok</status>"),
        "the destination is ready"
    );
    assert_eq!(
        harness::panel_dump(&w.dest.db_servers[0]),
        before,
        "check wrote into the destination's panel"
    );
    let (code, text) = refused(w.start(&clients(
        "<client><name>ghost</name></client><client><name>phantom</name></client>",
    )));
    assert_eq!(code, 1013);
    assert!(text.contains("ghost, phantom"), "{text}");
    assert_eq!(
        refused(w.start_as(
            "root",
            "",
            &jdoe(&mapped),
            "<system-type>windows</system-type>"
        ))
        .0,
        1017
    );
    let (code, text) = refused(w.start(&jdoe("")));
    assert_eq!((code, text.as_str()), (1018, "IP address 192.0.2.10 does not exist on the destination; map it to one of the destination's addresses"));
    assert_eq!(
        refused(w.start(&jdoe(&ip("shared", "192.0.2.10", "203.0.113.5")))).0,
        1019
    );
    let (code, text) = refused(w.start(&domains(
        "trinity",
        "<domain><name>jdoe.example</name></domain>",
    )));
    assert_eq!(
        (code, text.contains("target owner \"trinity\"")),
        (1023, true),
        "{text}"
    );
    let (code, _) =
        refused(w.start(&jdoe(&mapped).replace("<target-owner>admin", "<target-owner>mrsmith")));
    assert_eq!(code, 1023);
    // SSH refusals: login refused; an unreachable host; a changed host key.
    let (code, text) = refused(w.start_as("root", "wrong-root-pw-secret", &jdoe(&mapped), ""));
    assert_eq!(code, 1023);
    assert!(
        text.contains("refused") && !text.contains("wrong-root-pw-secret"),
        "{text}"
    );
    let (code, text) = refused(w.start_as(TEST_LOGIN, TEST_PASSWORD, &jdoe(&mapped), ""));
    assert_eq!(
        code, 1023,
        "the test login cannot read the panel files: {text}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let answer = w.exchange(&format!(
        "<start><host>127.0.0.1:{port}</host><login>root</login><password/><destination-host-directory/><selected-objects>{}</selected-objects></start>",
        jdoe(&mapped)
    ));
    assert_eq!(codes(&answer), [1023]);
    assert!(
        answer.contains(&format!(
            "host 127.0.0.1:{port} is not accessible: connection refused"
        )),
        "{answer}"
    );
    let kh = w.dest.state.join("known_hosts");
    let recorded = std::fs::read_to_string(&kh).expect("accept-new recorded the key");
    std::fs::write(
        &kh,
        hostmig::ssh::known_hosts::line(
            &w.source.known_hosts_name(),
            "ssh-ed25519",
            b"another key",
        ),
    )
    .expect("kh");
    let (code, text) = refused(w.start(&jdoe(&mapped)));
    assert_eq!(code, 1023);
    assert!(
        text.contains("host key") && text.contains("has changed"),
        "{text}"
    );
    std::fs::write(&kh, recorded).expect("restore known_hosts");

    // Nothing of any refused start reached the destination: unknown
    // objects, unmapped and mismatched addresses, owners, SSH refusals.
    assert!(
        harness::panel_dump(&w.dest.db_servers[0]) == before,
        "a refused start wrote into the destination's panel"
    );
    let mut d = w.dest_conn();

    // 15012 and 15006: objects that exist on the destination.
    w.rt.block_on(d.query_drop("INSERT INTO clients (login, account_id) VALUES ('jdoe', 0)"))
        .expect("insert");
    assert_eq!(refused(w.start(&jdoe(&mapped))).0, 15012);
    w.rt.block_on(
        d.query_drop("INSERT INTO domains (name, cl_id) VALUES ('admin-site.example', 1)"),
    )
    .expect("insert");
    let (code, text) = refused(w.start(&domains(
        "admin",
        &format!(
            "<domain><name>admin-site.example</name>{}</domain>",
            ip("shared", "192.0.2.100", "198.51.100.5")
        ),
    )));
    assert_eq!(
        (code, text.as_str()),
        (15006, "domain \"admin-site.example\" already exists")
    );

    // Busy: an object held by a running migration; finish stops it in time.
    let lock = DeployLock::take(&w);
    let smith = smith("");
    let running = w.start(&smith).expect("started");
    let (code, text) = refused(w.start(&smith));
    assert_eq!(
        (code, text),
        (
            1023,
            format!("client \"mrsmith\" is already being migrated by migration {running}")
        )
    );
    assert!(w.status(&running).contains("<migration_status>"));
    let staging = w.dest.dump.join(format!("hostmig-{running}"));
    std::fs::create_dir_all(&staging).expect("staging as the transfer would leave it");
    let t = Instant::now();
    w.exchange(&format!(
        "<finish><migration_id>{running}</migration_id></finish>"
    ));
    let status = w.wait(&running);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        t.elapsed()
    );
    assert!(status.contains("stopped by finish"), "{status}");
    assert!(
        wait_gone(
            &staging,
            Duration::from_secs(2) - t.elapsed().min(Duration::from_secs(2))
        ),
        "staging removed"
    );
    assert!(
        !w.dest
            .state
            .join(format!("migrations/{running}.jsonl"))
            .exists(),
        "event log removed"
    );
    lock.release(&w);
    // What it had not deployed can be migrated again.
    let again = w.start(&smith).expect("started again");
    assert!(w.wait(&again).contains("<success/>"));

    // No source password anywhere hostmig writes.
    let journal = std::fs::read(w.dest.state.join("journal.sqlite")).expect("journal");
    let mut places = vec![
        ("log".to_owned(), w.server.log().into_bytes()),
        ("journal".to_owned(), journal),
    ];
    for entry in std::fs::read_dir(w.dest.state.join("migrations"))
        .expect("event logs")
        .flatten()
    {
        places.push((
            entry.path().display().to_string(),
            std::fs::read(entry.path()).expect("read"),
        ));
    }
    for (what, bytes) in places {
        for secret in ["wrong-root-pw-secret", TEST_PASSWORD] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|win| win == secret.as_bytes()),
                "{secret} found in {what}"
            );
        }
    }
}

#[test]
fn max_parallel_queues_the_rest_and_status_keeps_answering() {
    let w = World::new(Profile::Small, "\n[migrations]\nmax_parallel = 3\n");
    let logins: Vec<String> = w
        .source
        .model
        .clients
        .iter()
        .map(|c| c.login.clone())
        .collect();
    assert_eq!(logins.len(), 8);
    let lock = DeployLock::take(&w);
    let mut ids = Vec::new();
    for (i, login) in logins.iter().enumerate() {
        let domains: String = w
            .source
            .model
            .domains_of(Some(i))
            .map(|d| format!("<domain><name>{}</name></domain>", d.name))
            .collect();
        let selection = clients(&format!(
            "<client><name>{login}</name>{ALL_IPS}{domains}</client>"
        ));
        ids.push(w.start(&selection).expect("started"));
    }
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut queued = 0;
        let mut running = 0;
        for id in &ids {
            let t = Instant::now();
            let status = w.status(id);
            slowest = slowest.max(t.elapsed());
            if status.contains("queued") {
                queued += 1;
            } else if status.contains("deploying") {
                running += 1;
            }
        }
        assert!(running <= 3, "more than max_parallel running");
        if (running, queued) == (3, 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never 3 running and 5 queued: {running} {queued}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("get_status during 8 migrations: slowest answer {slowest:?}");
    lock.release(&w);
    for id in &ids {
        w.wait(id);
    }
    let count: Option<u64> =
        w.rt.block_on(w.dest_conn().query_first("SELECT COUNT(*) FROM domains"))
            .expect("count");
    let expected = w
        .source
        .model
        .domains
        .iter()
        .filter(|d| d.owner.is_some())
        .count() as u64;
    assert_eq!(count, Some(expected));
    let clients_count: Option<u64> =
        w.rt.block_on(w.dest_conn().query_first("SELECT COUNT(*) FROM clients"))
            .expect("count");
    assert_eq!(clients_count, Some(9), "8 clients and the administrator");
}

/// A SIGKILL mid-migration: after the restart a finished migration still
/// answers as it ended, and the interrupted one (it logged in by the
/// configured key) goes on by itself under its own id, its `completed`
/// never below what it showed before, and ends `success`.
#[test]
fn a_restart_answers_for_finished_migrations_and_resumes_interrupted_ones() {
    let mut w = World::new(Profile::Tiny, "");
    let done = w
        .start(&clients("<client><name>nodomains</name></client>"))
        .expect("started");
    assert!(w.wait(&done).contains("<success/>"));
    let lock = DeployLock::take(&w);
    let interrupted = w.start(&smith("")).expect("started");
    let before = w.status(&interrupted);
    assert!(before.contains("<migration_status>"), "{before}");
    let completed = |s: &str| -> u64 {
        harness::first(s, "completed")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    harness::signal(w.server.pid(), libc::SIGKILL);
    lock.release(&w);
    std::thread::sleep(Duration::from_millis(200));
    w.restart();
    assert!(
        w.status(&done).contains("<success/>"),
        "a finished migration still answers"
    );
    let after = w.status(&interrupted);
    assert!(
        completed(&after) >= completed(&before),
        "completed went down across the restart: {before} then {after}"
    );
    // New ids continue after the journal's.
    let next = w.start(&jdoe_client("")).expect("started");
    let n = |s: &str| s.parse::<u64>().expect("decimal id");
    assert!(n(&next) > n(&interrupted), "{next} after {interrupted}");
    let status = w.wait(&interrupted);
    assert!(status.contains("<success/>"), "{status}");
    assert!(w.wait(&next).contains("<success/>"));
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{interrupted}.jsonl")))
        .expect("event log");
    assert!(
        log.contains("\"phase\":\"interrupted\"") && log.contains("\"phase\":\"resumed\""),
        "{log}"
    );
    list_and_logs(&w, &[&next, &interrupted, &done], &log);
}

/// `list` names every migration newest first, with its state, objects and
/// status; `get_log` pages through an event log and answers 1013 once
/// `finish` deleted it.
fn list_and_logs(w: &World, newest_first: &[&str], log_of_second: &str) {
    let answer = w.exchange("<list/>");
    let ids: Vec<String> = answer
        .split("<migration_id>")
        .skip(1)
        .filter_map(|p| p.split('<').next().map(str::to_owned))
        .collect();
    assert_eq!(ids, newest_first, "{answer}");
    assert!(
        answer.contains("<state>finished</state>")
            && answer.contains("<object><type>client</type><name>mrsmith</name></object>")
            && answer.contains("<success/>")
            && answer.contains("<started>"),
        "{answer}"
    );
    let lines: Vec<&str> = log_of_second.lines().collect();
    let id = newest_first[1];
    let page = |from: &str, limit: &str| {
        w.exchange(&format!(
            "<get_log><migration_id>{id}</migration_id>{from}{limit}</get_log>"
        ))
    };
    let all = page("", "");
    assert_eq!(
        all.matches("<line>").count(),
        lines.len(),
        "every line: {all}"
    );
    assert!(
        all.contains("<from>1</from>")
            && all.contains(&format!("<next>{}</next>", lines.len() + 1)),
        "{all}"
    );
    let second = page("<from>2</from>", "<limit>1</limit>");
    assert_eq!(second.matches("<line>").count(), 1, "{second}");
    let text = harness::unescape(&harness::first(&second, "line").expect("a line"));
    assert_eq!(text, lines[1]);
    assert!(second.contains("<next>3</next>"), "{second}");
    let unknown = w.exchange("<get_log><migration_id>999999</migration_id></get_log>");
    assert_eq!(harness::codes(&unknown), [1013], "{unknown}");
    let done = newest_first[2];
    w.exchange(&format!(
        "<finish><migration_id>{done}</migration_id></finish>"
    ));
    let gone = w.exchange(&format!(
        "<get_log><migration_id>{done}</migration_id></get_log>"
    ));
    assert_eq!(harness::codes(&gone), [1013], "{gone}");
    assert!(gone.contains("deleted by finish"), "{gone}");
}
