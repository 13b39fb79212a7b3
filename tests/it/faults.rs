//! The fault-injection harness (issue 18): faults injected into the
//! sandbox's real servers once the status shows an object's work under
//! way (the copy slowed by a cap, never by sleeping), and each migration
//! checked to end `success` with every object as on the source. Each case
//! prints one `FAULT` line (kind, injections, successes, objects lost,
//! seconds from the fault to work moving again) for the table.

use std::time::{Duration, Instant};

use hostmig::sandbox::process::descendants;
use hostmig::sandbox::Profile;

use crate::harness::world::World;

pub(crate) const JDOE_IP: (&str, &str) = ("192.0.2.10", "198.51.100.4");
/// Slow enough that a fault lands mid-object, fast enough for CI.
const CAP: u64 = 2 << 20;
/// Compression off: the cap slows what crosses the link, and the faults
/// must land while the (compressible) trees are still under way.
pub(crate) const UNCOMPRESSED: &str = "content_compression = \"off\"\ndb_compression = \"off\"\n";

pub(crate) fn config(extra: &str) -> String {
    format!(
        "\n[migrations]\nmax_bytes_per_s = {CAP}\nretry_first_delay_s = 1\nretry_max_delay_s = 4\n{UNCOMPRESSED}{extra}"
    )
}

/// jdoe.example, to the administrator, its address mapped.
pub(crate) fn jdoe_selection() -> String {
    crate::harness::world::mapped_domain("admin", "jdoe.example", JDOE_IP)
}

pub(crate) fn jdoe_to_admin(w: &World, transport: &str) -> String {
    w.start_as(
        "root",
        "",
        &jdoe_selection(),
        &format!("<content-transport>{transport}</content-transport>"),
    )
    .expect("started")
}

/// How far `label`'s work is by its description: files for a tree
/// ("..., 26 of 170 files"), rows for a database ("16 of ~628 rows").
pub(crate) fn progress_of(status: &str, label: &str) -> Option<(f64, f64)> {
    let at = status.find(&format!("{label}: "))? + label.len() + 2;
    let part = status[at..].split(['<', ';']).next()?;
    let words: Vec<&str> = part.split_whitespace().collect();
    let unit = if label.starts_with("database") {
        "rows,"
    } else {
        "files,"
    };
    let i = words.iter().position(|w| *w == unit)?;
    let done: f64 = words.get(i.checked_sub(3)?)?.parse().ok()?;
    let total: f64 = words.get(i - 1)?.trim_start_matches('~').parse().ok()?;
    Some((done, total))
}

/// Polls the status until `label`'s work is under way (0 < done < total);
/// answers the status then.
pub(crate) fn wait_under_way(w: &World, id: &str, label: &str) -> String {
    let t = Instant::now();
    loop {
        let status = w.status(id);
        if let Some((done, total)) = progress_of(&status, label) {
            // Early enough that the fault lands mid-object.
            if done > 0.0 && done <= total / 2.0 {
                return status;
            }
        }
        assert!(
            !status.contains("<finished>"),
            "ended before the fault: {status}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "{label} never got under way: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the status says `label`'s work moves again after a fault
/// (a retry begun, then progress); answers the seconds since `fault`, and
/// the description of the retry seen.
fn wait_moving_again(w: &World, id: &str, label: &str, fault: Instant) -> (f64, String) {
    let mut retry_seen = String::new();
    let mut seen = Vec::new();
    loop {
        let status = w.status(id);
        if let Some(d) = hostmig_description(&status) {
            let doing = format!("while copying {label}");
            if let Some(end) = d.find(&doing) {
                if let Some(start) = d[..end].rfind("retrying (") {
                    retry_seen = d[start..end + doing.len()].to_owned();
                }
            }
            seen.push(d);
        }
        let moving = progress_of(&status, label).is_some_and(|(done, _)| done > 0.0);
        if !retry_seen.is_empty() && (moving || status.contains("<finished>")) {
            return (fault.elapsed().as_secs_f64(), retry_seen);
        }
        seen.dedup();
        assert!(
            !status.contains("<finished>"),
            "ended without a retry: {status}; seen since the fault: {seen:#?}"
        );
        assert!(
            fault.elapsed() < Duration::from_secs(120),
            "never moved again: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn hostmig_description(status: &str) -> Option<String> {
    crate::harness::first(status, "description").map(|d| crate::harness::unescape(&d))
}

/// Ends every per-connection process of the source's sshd (its sessions
/// and what they run); the listening sshd stays. Answers how many.
pub(crate) fn end_ssh_sessions(w: &World, signal: i32) -> usize {
    let master = w.source.ssh.pid().expect("sshd runs") as i32;
    let children = descendants(master);
    for pid in &children {
        // SAFETY: kill(2) on pids of the test's own sshd.
        unsafe { libc::kill(*pid, signal) };
    }
    children.len()
}

/// The largest regular file of a tree, in bytes.
fn largest_file(root: &std::path::Path) -> u64 {
    let mut largest = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                largest = largest.max(m.len());
            }
        }
    }
    largest
}

/// The web tree's report of a migration whose copy resumed (after a
/// fault, or after a restart of hostmig: `after_restart`), checked: it
/// kept what was there whole, the run that resumed sent only what was
/// not kept, and the tar streams carried at most the tree (after a
/// restart: the part not kept) plus one file per stream and tar's
/// headers.
pub(crate) fn check_resumed_tree(
    w: &World,
    id: &str,
    transport: &str,
    after_restart: bool,
) -> serde_json::Value {
    let reports = w.tree_reports(id);
    let (_, web) = reports
        .into_iter()
        .find(|(l, _)| l.starts_with("web"))
        .expect("web report");
    let n = |f: &str| web[f].as_u64().unwrap_or(0);
    assert!(
        n("kept_bytes") > 0,
        "{transport}: the run that resumed kept nothing: {web}"
    );
    assert!(
        n("sent_bytes") <= n("bytes") - n("kept_bytes"),
        "{transport}: {web}"
    );
    let streams = 2;
    let overhead = n("files") * 1024 + 64 * 1024;
    let base = if after_restart {
        n("bytes") - n("kept_bytes")
    } else {
        n("bytes")
    };
    let bound =
        base + streams * largest_file(&w.source.layout.vhosts.join("jdoe.example")) + overhead;
    assert!(
        n("received_bytes") <= bound,
        "{transport}: received {}, more than {base} plus one file per stream: {web}",
        n("received_bytes"),
    );
    web
}

pub(crate) fn fault_line(
    kind: &str,
    injected: usize,
    succeeded: usize,
    lost: usize,
    recovery: &[f64],
) {
    let mut sorted = recovery.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "FAULT kind={kind:?} injected={injected} success={succeeded} lost={lost} median_recovery_s={median:.1}"
    );
}

/// The source's sshd sessions are ended mid-tree, by each transport: the
/// tree is tried again on new sessions, goes on from what the first try
/// wrote whole (verified by hash, kept), and arrives as on the source;
/// the bytes received over both tries are at most the tree plus one file
/// per stream (and tar's headers).
#[test]
fn ended_ssh_sessions_mid_tree_resume_from_what_is_verified() {
    let mut recovery = Vec::new();
    let mut succeeded = 0;
    for transport in ["archive", "rsync"] {
        let w = World::new(Profile::Small, &config(""));
        let id = jdoe_to_admin(&w, transport);
        let label = "web content of jdoe.example";
        wait_under_way(&w, &id, label);
        let fault = Instant::now();
        let ended = end_ssh_sessions(&w, libc::SIGKILL);
        assert!(ended > 0, "no sshd session to end");
        let (took, retry) = wait_moving_again(&w, &id, label, fault);
        assert!(
            retry.contains("retrying (1 of 5) after: connection to the source lost")
                && retry.contains(&format!("while copying {label}")),
            "{transport}: {retry}"
        );
        recovery.push(took);
        let status = w.wait(&id);
        assert!(status.contains("<success/>"), "{transport}: {status}");
        succeeded += 1;
        w.assert_content("jdoe.example", JDOE_IP);
        let web = check_resumed_tree(&w, &id, transport, false);
        let n = |f: &str| web[f].as_u64().unwrap_or(0);
        assert!(n("attempts") >= 2, "{transport}: {web}");
        println!(
            "{transport}: tree {} B, kept {} B, received {} B over {} tries, moving again after {took:.1} s",
            n("bytes"),
            n("kept_bytes"),
            n("received_bytes"),
            n("attempts")
        );
    }
    fault_line(
        "ssh sessions ended (SIGKILL) mid-tree",
        2,
        succeeded,
        0,
        &recovery,
    );
}

/// Every sshd session of the source is stopped (SIGSTOP) mid-tree, and
/// so mid-database: no payload and no answer to keepalives for
/// `stall_s`, so each object's connection is broken and its work tried
/// again on a new one; both arrive as on the source.
#[test]
fn stopped_ssh_sessions_are_a_stall_broken_and_retried() {
    let (hook, got) = crate::harness::receiver();
    let w = World::new(
        Profile::Small,
        &config(&format!(
            "stall_s = 6\n\n[metrics]\nallow_from = [\"127.0.0.0/8\"]\n\n[[notify]]\nurl = \"http://{hook}/stalls\"\nevents = [\"stalled\"]\n"
        )),
    );
    let id = jdoe_to_admin(&w, "archive");
    let label = "web content of jdoe.example";
    wait_under_way(&w, &id, label);
    let fault = Instant::now();
    let master = w.source.ssh.pid().expect("sshd runs") as i32;
    let stopped = descendants(master);
    assert!(!stopped.is_empty(), "no sshd session to stop");
    for pid in &stopped {
        // SAFETY: kill(2) on pids of the test's own sshd.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_moving_again(&w, &id, label, fault)
    }));
    let (took, retry) = moved.unwrap_or_else(|e| {
        eprintln!("hostmig's log:\n{}", w.server.log());
        std::panic::resume_unwind(e)
    });
    // Ended at the test's end: the stopped processes hold the old sessions.
    let release = || {
        for pid in &stopped {
            // SAFETY: as above.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    };
    let status = w.wait(&id);
    release();
    assert!(status.contains("<success/>"), "{status}");
    assert!(
        retry.contains("after: stalled for ") && retry.contains(&format!("while copying {label}")),
        "{retry}"
    );
    assert!(
        took >= 6.0,
        "work moved again {took:.1} s after the stop, before the stall time"
    );
    assert!(status.contains("<success/>"), "{status}");
    w.assert_content("jdoe.example", JDOE_IP);
    // Told of once per stalled try, with what stalled; counted.
    let notices = crate::harness::notices(&got);
    let tree: Vec<_> = notices.iter().filter(|n| n["item"] == label).collect();
    assert_eq!(tree.len(), 1, "{notices:?}");
    assert_eq!(tree[0]["event"], "stalled");
    assert_eq!(tree[0]["migration_id"], id.as_str());
    assert!(
        tree[0]["fault"]
            .as_str()
            .is_some_and(|f| f.starts_with("stalled for ")),
        "{notices:?}"
    );
    let mut seen: Vec<String> = notices
        .iter()
        .map(|n| format!("{} {}", n["item"], n["retry"]))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        notices.len(),
        "one notice per stalled try: {notices:?}"
    );
    // Read without a key from an address of [metrics] allow_from.
    let (status, _, metrics) = w.server.request(
        "GET",
        &format!("https://{}/metrics", w.server.https),
        b"",
        &[],
    );
    assert_eq!(status, 200, "{metrics}");
    let count = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        count("hostmig_stalls_total ") >= notices.len() as f64,
        "{metrics}"
    );
    assert!(
        count("hostmig_retries_total ") >= count("hostmig_stalls_total "),
        "{metrics}"
    );
    println!("stall: moving again {took:.1} s after the stop ({retry})");
    fault_line("ssh sessions stopped (SIGSTOP) mid-tree", 1, 1, 0, &[took]);
}

/// Slow is not stalled: the source's hashing waits 10 s before it prints
/// anything (a large file being read) with `stall_s = 6`, its sshd still
/// answering keepalives; the migration never retries.
#[test]
fn a_source_that_is_slow_but_answers_keepalives_is_not_stalled() {
    let w = World::new(Profile::Tiny, &config("stall_s = 6\n"));
    let bin = w.dir.path().join("slow-bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let b2sum = bin.join("b2sum");
    std::fs::write(&b2sum, "#!/bin/sh\nsleep 10\nexec /usr/bin/b2sum \"$@\"\n").expect("b2sum");
    std::fs::set_permissions(&b2sum, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    w.source.ssh.set_command_path(Some(&bin)).expect("PATH");
    let id = jdoe_to_admin(&w, "archive");
    let t = Instant::now();
    let mut retried = None;
    let status = loop {
        let status = w.status(&id);
        if let Some(d) = hostmig_description(&status) {
            if d.contains("retrying (") {
                retried = Some(d);
            }
        }
        if status.contains("<finished>") {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(retried, None, "a slow source was taken for stalled");
    assert!(status.contains("<success/>"), "{status}");
    assert!(
        t.elapsed() >= Duration::from_secs(10),
        "the slow hashing was not waited for"
    );
    w.assert_content("jdoe.example", JDOE_IP);
}

/// The link to the source goes down for longer than the stall time (and
/// so many keepalive intervals) mid-tree, then up again: the work stalls,
/// is broken, its new logins fail while the link is down and are tried
/// again, and the migration ends `success`.
#[test]
fn a_link_down_for_longer_than_the_stall_time_is_survived() {
    let w = World::new(Profile::Small, &config("stall_s = 6\n"));
    let Some(host) = w.source.host.clone() else {
        panic!("the link test needs the sandbox's own source host: run the tests as root (deploy/test.sh)");
    };
    let id = jdoe_to_admin(&w, "archive");
    let label = "web content of jdoe.example";
    wait_under_way(&w, &id, label);
    let fault = Instant::now();
    host.set_link(false).expect("link down");
    std::thread::sleep(Duration::from_secs(10));
    host.set_link(true).expect("link up");
    let (took, retry) = wait_moving_again(&w, &id, label, fault);
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    assert!(retry.contains(&format!("while copying {label}")), "{retry}");
    w.assert_content("jdoe.example", JDOE_IP);
    println!("link down 10 s: moving again {took:.1} s after it went down ({retry})");
    fault_line("link down 10 s mid-tree", 1, 1, 0, &[took - 10.0]);
}

/// The source's MariaDB is restarted (stopped by SIGTERM, started again)
/// while a database copies: the copy resumes from what it verified on new
/// connections, and the database arrives as on the source.
#[test]
fn a_source_database_server_restarted_mid_table_is_survived() {
    let mut w = World::new(Profile::Small, &config(""));
    let id = jdoe_to_admin(&w, "archive");
    let label = "database jdoe_ftp_db of jdoe.example";
    wait_under_way(&w, &id, label);
    let fault = Instant::now();
    w.rt.block_on(w.source.db.restart())
        .expect("source MariaDB restarted");
    let (took, retry) = wait_moving_again(&w, &id, label, fault);
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    assert!(retry.contains("retrying (1 of 5) after: "), "{retry}");
    w.assert_database("jdoe_ftp_db", 0);
    println!("MariaDB restart: moving again {took:.1} s after it ({retry})");
    fault_line("source MariaDB restarted mid-table", 1, 1, 0, &[took]);
}

/// A tmpfs of `size` mounted over `path` for the test; unmounted when
/// dropped (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs (util-linux)");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: run the tests as root (deploy/test.sh)",
            path.display()
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The disk guard: a start whose content would not fit the destination's
/// file system (beyond `disk_reserve_percent`) is refused with 1023 naming
/// it; a file system filled while a tree copies fails that tree at once
/// ("the destination file system X is full", no retry) and leaves no part
/// of it behind.
#[test]
fn a_destination_too_small_is_refused_and_one_filled_mid_copy_fails_the_tree_cleanly() {
    let (hook, got) = crate::harness::receiver();
    let w = World::new(
        Profile::Small,
        &config(&format!(
            "\n[[notify]]\nurl = \"http://{hook}/failures\"\nevents = [\"object_failed\", \"finished\"]\n"
        )),
    );
    let vhosts = w.dest.vhosts.clone();
    let mount = std::fs::canonicalize(&vhosts)
        .expect("vhosts")
        .display()
        .to_string();
    {
        let _small = Tmpfs::mount(&vhosts, "1m");
        let (code, text) = w.start(&jdoe_selection()).expect_err("too large for 1 MiB");
        assert_eq!(code, 1023, "{text}");
        println!("refused: {text}");
        assert!(
            text.contains(&format!("the destination file system {mount} has "))
                && text.contains("migrations.disk_reserve_percent"),
            "{text}"
        );
    }
    let _room = Tmpfs::mount(&vhosts, "24m");
    let id = jdoe_to_admin(&w, "archive");
    let label = "web content of jdoe.example";
    wait_under_way(&w, &id, label);
    // Fill what is left.
    let filler = vhosts.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let block = vec![7u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    let status = w.wait(&id);
    assert!(
        status.contains(&format!("the destination file system {mount} is full")),
        "{status}"
    );
    assert!(
        !status.contains("tried "),
        "a full disk is not retried: {status}"
    );
    assert!(
        !vhosts.join("jdoe.example").exists(),
        "a part of the tree was left where a later run would find it"
    );
    assert!(
        !w.dest.dump.join(format!("hostmig-{id}")).exists(),
        "staging left behind"
    );
    // One notice of the failed object, one of the end.
    let notices = crate::harness::wait_notices(&got, 2, Duration::from_secs(10));
    let failed: Vec<_> = notices
        .iter()
        .filter(|n| n["event"] == "object_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{notices:?}");
    assert_eq!(failed[0]["object"]["name"], "jdoe.example", "{notices:?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is full")),
        "{notices:?}"
    );
    let ended: Vec<_> = notices
        .iter()
        .filter(|n| n["event"] == "finished")
        .collect();
    assert_eq!(ended.len(), 1, "{notices:?}");
    assert_eq!(ended[0]["outcome"], "failed", "{notices:?}");
    assert_eq!(ended[0]["migration_id"], id.as_str());
    println!("disk full mid-tree: {status}");
}

/// `finish` during a content tree's retry wait (a minute long here) stops
/// the migration within 2 s and leaves neither its staging nor a part of
/// the tree.
#[test]
fn finish_during_a_trees_retry_wait_stops_at_once_and_leaves_nothing() {
    let w = World::new(
        Profile::Small,
        &format!("\n[migrations]\nmax_bytes_per_s = {CAP}\nretry_first_delay_s = 60\nretry_max_delay_s = 60\n{UNCOMPRESSED}"),
    );
    let id = jdoe_to_admin(&w, "archive");
    let label = "web content of jdoe.example";
    wait_under_way(&w, &id, label);
    end_ssh_sessions(&w, libc::SIGKILL);
    let t = Instant::now();
    loop {
        let status = w.status(&id);
        if status.contains(&format!("while copying {label}"))
            && status.contains("retrying (1 of 5)")
        {
            break;
        }
        assert!(
            !status.contains("<finished>"),
            "ended without a retry: {status}"
        );
        assert!(t.elapsed() < Duration::from_secs(60), "no retry: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = crate::harness::world::finish(&w, &id);
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    let staging = w.dest.dump.join(format!("hostmig-{id}"));
    assert!(
        crate::harness::world::wait_gone(&staging, Duration::from_secs(2) - took),
        "staging left behind"
    );
    assert!(
        !w.dest.vhosts.join("jdoe.example").exists(),
        "a part of the tree was left"
    );
}
