//! The fault-injection harness, part two (issue 18): hostmig itself is
//! killed (SIGKILL) mid-tree and mid-database, and started again. An
//! interrupted migration that logged in by the configured key goes on by
//! itself under its own id, from what the first run left (trees by hash,
//! databases from their scratch copy); one that cannot wait as
//! `interrupted`, holding its objects, until `resume`, and `finish`
//! abandons it and removes what it left.

use std::time::{Duration, Instant};

use hostmig::sandbox::Profile;
use mysql_async::prelude::Queryable;

use crate::faults::{
    check_resumed_tree, config, fault_line, hostmig_description, jdoe_selection, jdoe_to_admin,
    progress_of, wait_under_way, JDOE_IP,
};
use crate::harness::world::World;
use crate::harness::{codes, first, signal, unescape};

const WEB: &str = "web content of jdoe.example";
const DB: &str = "database jdoe_ftp_db of jdoe.example";

fn completed(status: &str) -> u64 {
    first(status, "completed")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// SIGKILL, and a moment for the kernel to close its sockets.
fn kill(w: &World) {
    signal(w.server.pid(), libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
}

/// The configuration without `ssh.identity`.
fn keyless(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("identity = "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Polls until `label`'s work moves after the restart at `since` (its
/// progress shows done > 0 with the migration no longer interrupted), the
/// status never showing fewer steps done than `floor`; answers the
/// seconds since the restart.
fn moving_after_restart(w: &World, id: &str, label: &str, since: Instant, floor: u64) -> f64 {
    loop {
        let status = w.status(id);
        assert!(
            completed(&status) >= floor || status.contains("<finished>"),
            "completed went below {floor} across the restart: {status}"
        );
        let interrupted = hostmig_description(&status).is_some_and(|d| d.contains("interrupted"));
        let moving = progress_of(&status, label).is_some_and(|(done, _)| done > 0.0);
        if (moving && !interrupted) || status.contains("<finished>") {
            return since.elapsed().as_secs_f64();
        }
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "never moved again after the restart: {status}\n{}",
            w.server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn resume(w: &World, id: &str, password: Option<&str>) -> String {
    let password = password.map_or(String::new(), |p| format!("<password>{p}</password>"));
    w.exchange(&format!(
        "<resume><migration_id>{id}</migration_id>{password}</resume>"
    ))
}

fn errtext(answer: &str) -> String {
    unescape(&first(answer, "errtext").unwrap_or_default())
}

/// hostmig is killed mid-tree, by each transport, and started again: the
/// migration goes on by itself under its id, `completed` never below what
/// it showed, the tree continues from what the first run wrote whole
/// (verified by hash, kept), and the second run receives at most the
/// part not yet verified plus one file per stream.
#[test]
fn a_killed_hostmig_goes_on_with_its_trees_where_they_stopped() {
    let mut recovery = Vec::new();
    let mut succeeded = 0;
    for transport in ["archive", "rsync"] {
        let mut w = World::new(Profile::Small, &config(""));
        let id = jdoe_to_admin(&w, transport);
        let before = wait_under_way(&w, &id, WEB);
        // `list` types each copy under way (valid by agent_output.xsd),
        // with the migration's bytes known ahead.
        let list = w.exchange("<list/>");
        let total: u64 = first(&list, "bytes_total")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        assert!(total >= 30 << 20, "the tree's size known ahead: {list}");
        assert!(
            list.contains("<item><kind>web</kind><domain>jdoe.example</domain><label>web content of jdoe.example</label>"),
            "{list}"
        );
        // Some files whole on the destination before the kill.
        std::thread::sleep(Duration::from_millis(500));
        kill(&w);
        let restarted = Instant::now();
        w.restart();
        let took = moving_after_restart(&w, &id, WEB, restarted, completed(&before));
        recovery.push(took);
        let status = w.wait(&id);
        assert!(status.contains("<success/>"), "{transport}: {status}");
        succeeded += 1;
        w.assert_content("jdoe.example", JDOE_IP);
        w.assert_database("jdoe_ftp_db", 0);
        let web = check_resumed_tree(&w, &id, transport, true);
        let n = |f: &str| web[f].as_u64().unwrap_or(0);
        println!(
            "{transport}: tree {} B, kept {} B, received {} B after the restart, moving again {took:.1} s after it",
            n("bytes"),
            n("kept_bytes"),
            n("received_bytes"),
        );
    }
    fault_line(
        "hostmig killed (SIGKILL) mid-tree, started again",
        2,
        succeeded,
        0,
        &recovery,
    );
}

/// What a start by password leaves in the journal: its request without
/// the password, marked as not keyed. (The sandbox's root logs in by key
/// only, so the test turns its keyed request into that while hostmig is
/// down.)
fn as_if_by_password(w: &World) {
    let journal = rusqlite::Connection::open(w.dest.state.join("journal.sqlite")).expect("journal");
    let changed = journal
        .execute(
            "UPDATE migration_requests SET request = replace(request, '\"keyed\":true', '\"keyed\":false')",
            [],
        )
        .expect("update");
    assert!(changed > 0, "no request in the journal");
}

/// hostmig is killed mid-database, and the migration had logged in by
/// password (never kept): after the restart it waits as interrupted; a
/// `resume` without a password and no key is refused (1023), one whose
/// login the source refuses leaves it waiting; with the key configured it
/// still waits (nothing says the key reaches that source), holding its
/// objects (a start of them answers 1023 naming it and how to resume
/// it), until `resume` without a password uses the key: the database
/// catches up from its scratch copy and arrives whole.
#[test]
fn a_killed_hostmig_goes_on_with_a_database_from_its_scratch_copy() {
    let mut w = World::new(Profile::Small, &config(""));
    let id = jdoe_to_admin(&w, "archive");
    wait_under_way(&w, &id, DB);
    // Far enough that the scratch database holds a good part of the rows.
    let before = loop {
        let status = w.status(&id);
        if progress_of(&status, DB).is_some_and(|(done, total)| done >= total * 0.3) {
            break status;
        }
        assert!(!status.contains("<finished>"), "{status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(&w);
    let (rows_done, rows_total) = progress_of(&before, DB).unwrap_or_default();
    as_if_by_password(&w);
    w.restart_with(keyless);
    let status = w.status(&id);
    let description = hostmig_description(&status).unwrap_or_default();
    assert!(
        description.starts_with("interrupted: ") && description.contains("by password"),
        "{status}"
    );
    assert!(completed(&status) >= completed(&before), "{status}");
    let answer = resume(&w, &id, None);
    assert_eq!(codes(&answer), [1023], "{answer}");
    assert!(errtext(&answer).contains("send the password"), "{answer}");
    let answer = resume(&w, &id, Some("not-the-password-either"));
    assert_eq!(codes(&answer), [1023], "{answer}");
    assert!(
        !answer.contains("not-the-password-either")
            && !w.server.log().contains("not-the-password-either"),
        "a password reached an answer or the log"
    );
    let status = w.status(&id);
    assert!(
        hostmig_description(&status).is_some_and(|d| d.contains("the resume was refused")),
        "{status}"
    );
    for (what, unknown) in [("unknown", "999999"), ("not a number", "x")] {
        let answer = resume(&w, unknown, None);
        assert_eq!(codes(&answer), [1013], "{what}: {answer}");
    }
    // With the key configured it waits still, holding its objects.
    w.restart();
    std::thread::sleep(Duration::from_millis(500));
    let status = w.status(&id);
    assert!(
        hostmig_description(&status).is_some_and(|d| d.contains("interrupted: ")),
        "{status}"
    );
    let (code, text) = w
        .start(&jdoe_selection())
        .expect_err("held by the interrupted migration");
    assert_eq!(code, 1023, "{text}");
    assert!(
        text.contains(&format!("held by migration {id}"))
            && text.contains(&format!(
                "<resume><migration_id>{id}</migration_id></resume>"
            )),
        "{text}"
    );
    // By the operator's client: `hostmig resume ID`.
    let resumed_at = Instant::now();
    let ran = crate::client::client(&w, &["resume", &id], &[]);
    assert_eq!(ran.status, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.stdout.trim(), format!("migration {id} resumed"));
    let took = moving_after_restart(&w, &id, DB, resumed_at, completed(&before));
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    w.assert_database("jdoe_ftp_db", 0);
    w.assert_content("jdoe.example", JDOE_IP);
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
        .expect("event log");
    let report = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            let e = v.get("event")?;
            (e.get("database")?.as_str()? == DB).then(|| e.get("report").cloned())?
        })
        .expect("the database's report");
    let resumed = report["resumed"].as_array().cloned().unwrap_or_default();
    assert!(
        !resumed.is_empty(),
        "the copy did not go on from its scratch database: {report}"
    );
    let blocks = |f: &str| -> u64 { resumed.iter().map(|r| r[f].as_u64().unwrap_or(0)).sum() };
    println!(
        "database: killed at {rows_done} of ~{rows_total} rows; after the restart {} of {} blocks copied again, moving again {took:.1} s after the resume",
        blocks("blocks_copied"),
        blocks("blocks_compared")
    );
    let answer = resume(&w, &id, None);
    assert_eq!(codes(&answer), [1023], "a finished migration: {answer}");
    fault_line(
        "hostmig killed (SIGKILL) mid-database, started again",
        1,
        1,
        0,
        &[took],
    );
}

/// `finish` of an interrupted migration abandons it: its staging, its
/// copied tree (not deployed), its scratch database and what it created
/// on the database server go, and its objects are free for a new start,
/// which migrates them.
#[test]
fn finish_abandons_an_interrupted_migration_and_removes_what_it_left() {
    let mut w = World::new(Profile::Small, &config(""));
    let id = jdoe_to_admin(&w, "rsync");
    wait_under_way(&w, &id, DB);
    let tree = w.dest.vhosts.join("jdoe.example");
    assert!(tree.exists(), "the tree is under way in place");
    kill(&w);
    w.restart_with(keyless);
    let status = w.status(&id);
    assert!(
        hostmig_description(&status)
            .is_some_and(|d| d.contains("interrupted: ") && d.contains("ssh.identity")),
        "{status}"
    );
    let answer = w.exchange(&format!(
        "<finish><migration_id>{id}</migration_id></finish>"
    ));
    assert!(answer.contains("<status>ok</status>"), "{answer}");
    let status = w.status(&id);
    assert!(
        status.contains("<finished>") && status.contains("abandoned by finish"),
        "{status}"
    );
    let scratch_prefix = format!("hostmig\\_{id}\\_%");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = w
            .rt
            .block_on(async {
                let mut c = w.dest.db_servers[0].connect(None).await.expect("connect");
                c.exec::<String, _, _>(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? OR SCHEMA_NAME = 'jdoe_ftp_db'",
                    (scratch_prefix.as_str(),),
                )
                .await
            })
            .expect("schemas");
        let staging = w.dest.dump.join(format!("hostmig-{id}"));
        if left.is_empty() && !tree.exists() && !staging.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned migration left {left:?}, tree there: {}, staging there: {}",
            tree.exists(),
            staging.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = resume(&w, &id, None);
    assert_eq!(codes(&answer), [1023], "an abandoned migration: {answer}");
    w.restart();
    let again = jdoe_to_admin(&w, "rsync");
    let status = w.wait(&again);
    assert!(status.contains("<success/>"), "{status}");
    w.assert_content("jdoe.example", JDOE_IP);
    w.assert_database("jdoe_ftp_db", 0);
}
