//! Content through the whole engine: a real `hostmig serve` migrating the
//! sandbox's trees by each transport and scope, refusing hostile archives,
//! stopping mid-transfer, and `resync` sending exactly what changed.

use std::path::Path;
use std::time::{Duration, Instant};

use hostmig::sandbox::Profile;

use crate::harness::first;
use crate::harness::tars::{archive, member, symlink_to};
use crate::harness::world::{finish, jdoe_client, mapped_domain, wait_gone, World};

const JDOE_IP: (&str, &str) = ("192.0.2.10", "198.51.100.4");

fn jdoe_domain(owner: &str, name: &str) -> String {
    mapped_domain(owner, name, JDOE_IP)
}

fn sent(reports: &[(String, serde_json::Value)], field: &str) -> u64 {
    reports
        .iter()
        .map(|(_, r)| r.get(field).and_then(|v| v.as_u64()).unwrap_or(0))
        .sum()
}

/// Starts a domain migration to admin with jdoe's address mapped.
fn start_to_admin(w: &World, name: &str, extra: &str) -> Result<String, (u32, String)> {
    w.start_as("root", "", &jdoe_domain("admin", name), extra)
}

fn jdoe_records(w: &World) -> i64 {
    db_count(
        w,
        "SELECT COUNT(*) FROM domains WHERE name = 'jdoe.example'",
    )
}

fn db_count(w: &World, sql: &str) -> i64 {
    use mysql_async::prelude::Queryable;
    w.rt.block_on(w.dest_conn().query_first::<i64, _>(sql))
        .expect("query")
        .unwrap_or(0)
}

#[test]
fn rsync_and_each_scope_move_exactly_what_they_should() {
    let w = World::new(Profile::Tiny, "");
    // rsync, everything: both trees as on the source.
    let id = start_to_admin(
        &w,
        "jdoe.example",
        "<content-transport>rsync</content-transport>",
    )
    .expect("started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    w.assert_content("jdoe.example", JDOE_IP);
    let reports = w.tree_reports(&id);
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(sent(&reports, "hashed") > 10, "{reports:?}");

    // only-mail: the mail tree and mail names; no web tree, no hosting.
    let id = start_to_admin(&w, "xn--bcher-kva.example", "<only-mail/>").expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    let name = "xn--bcher-kva.example";
    assert!(!w.dest.vhosts.join(name).exists());
    crate::harness::tars::assert_same_tree(
        &w.source.layout.mailnames.join(name),
        &w.dest.mailnames.join(name),
    );
    assert_eq!(
        db_count(
            &w,
            &format!("SELECT COUNT(*) FROM domains WHERE name = '{name}' AND htype = 'none'")
        ),
        1
    );
    assert!(db_count(&w, &format!("SELECT COUNT(*) FROM mail m JOIN domains d ON d.id = m.dom_id WHERE d.name = '{name}'")) > 0);
    assert_eq!(db_count(&w, &format!("SELECT COUNT(*) FROM hosting h JOIN domains d ON d.id = h.dom_id WHERE d.name = '{name}'")), 0);

    // only-hosting: the web tree; no mail tree, no mail names.
    let name = "admin-site.example";
    let id = w
        .start_as(
            "root",
            "",
            &mapped_domain("admin", name, ("192.0.2.100", "198.51.100.5")),
            "<only-hosting/>",
        )
        .expect("started");
    w.wait(&id);
    assert!(
        w.source.layout.mailnames.join(name).exists(),
        "the sandbox gives it mail"
    );
    assert!(!w.dest.mailnames.join(name).exists());
    crate::harness::tars::assert_same_tree_except(
        &w.source.layout.vhosts.join(name),
        &w.dest.vhosts.join(name),
        &[b"conf/vhost.conf"],
    );
    assert_eq!(db_count(&w, &format!("SELECT COUNT(*) FROM mail m JOIN domains d ON d.id = m.dom_id WHERE d.name = '{name}'")), 0);
    assert_eq!(db_count(&w, &format!("SELECT COUNT(*) FROM hosting h JOIN domains d ON d.id = h.dom_id WHERE d.name = '{name}'")), 1);
}

/// jdoe.example's web tree on the destination, if any.
fn tree_state(w: &World) -> Option<hostmig::sandbox::compare::Manifest> {
    hostmig::sandbox::compare::manifest(&w.dest.vhosts.join("jdoe.example")).ok()
}

/// Every path under `root` with one of these names.
fn named(root: &Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if names.iter().any(|n| e.file_name() == *n) {
                out.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out
}

/// Makes `tar` on the source print the file `archive`.
fn tar_prints(w: &World, archive_file: &Path) {
    crate::harness::tars::hostile_tar(
        &w.source,
        w.dir.path(),
        &format!("cat '{}'", archive_file.display()),
    );
}

#[test]
fn hostile_archives_fail_the_domain_and_write_nothing_outside_its_tree() {
    let w = World::new(Profile::Tiny, "");
    let victim = w.dir.path().join("victim");
    std::fs::create_dir(&victim).expect("victim");
    let good = member(b"./httpdocs/good.txt", b'0', b"fine", b"");
    let dir_entry = member(b"./httpdocs/", b'5', b"", b"");
    let abs = victim.join("abs.txt");
    let mut long_name = crate::harness::tars::header(b"././@LongLink", b'L', 1 << 30, b"");
    long_name.extend_from_slice(&[b'a'; 512]);
    // `..` enough times to climb from the domain's tree into the test's directory.
    let tree = w.dest.vhosts.join("jdoe.example");
    let depth = tree
        .strip_prefix(w.dir.path())
        .expect("inside")
        .components()
        .count();
    let up = format!("./httpdocs/{}victim/up.txt", "../".repeat(depth + 1));
    let through = archive(&[
        dir_entry.clone(),
        good.clone(),
        symlink_to(b"./httpdocs/out", &victim),
        member(b"./httpdocs/out/through.txt", b'0', b"x", b""),
    ]);
    // (what, archive, transport, what the message says).
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "absolute path",
            archive(&[
                dir_entry.clone(),
                good.clone(),
                member(abs.as_os_str().as_encoded_bytes(), b'0', b"x", b""),
            ]),
            "archive",
            "leaves the tree",
        ),
        (
            "parent directory",
            archive(&[
                dir_entry.clone(),
                good.clone(),
                member(up.as_bytes(), b'0', b"x", b""),
            ]),
            "archive",
            "leaves the tree",
        ),
        (
            "symlink then a file through it",
            through.clone(),
            "archive",
            "symlink",
        ),
        (
            "symlink then a file through it",
            through,
            "rsync",
            "symlink",
        ),
        (
            "device",
            archive(&[
                dir_entry.clone(),
                good.clone(),
                member(b"./httpdocs/dev", b'3', b"", b""),
            ]),
            "archive",
            "device",
        ),
        (
            "fifo",
            archive(&[
                dir_entry.clone(),
                good.clone(),
                member(b"./httpdocs/fifo", b'6', b"", b""),
            ]),
            "archive",
            "fifo",
        ),
        (
            "oversized header",
            [dir_entry.clone(), good.clone(), long_name.clone()].concat(),
            "rsync",
            "oversized",
        ),
        (
            "oversized header",
            [dir_entry.clone(), good.clone(), long_name].concat(),
            "archive",
            "oversized",
        ),
    ];
    for (what, bytes, transport, reason) in cases {
        let placed_before = tree_state(&w);
        let file = w.dir.path().join("hostile.tar");
        std::fs::write(&file, &bytes).expect("archive");
        tar_prints(&w, &file);
        let extra = format!("<content-transport>{transport}</content-transport>");
        let id = start_to_admin(&w, "jdoe.example", &extra).expect(what);
        let status = w.wait(&id);
        let message = crate::harness::unescape(&status);
        assert!(
            message.contains("web content of jdoe.example was not copied")
                && message.contains(reason),
            "{what}: {message}"
        );
        assert!(
            message.contains("the domain's records were not written"),
            "{what}: {message}"
        );
        // Nothing outside the domain's tree; the entries before the bad one are there.
        assert_eq!(
            std::fs::read_dir(&victim).expect("victim").count(),
            0,
            "{what}"
        );
        let strays = named(
            w.dir.path(),
            &["abs.txt", "up.txt", "through.txt", "dev", "fifo"],
        );
        assert_eq!(strays, Vec::<std::path::PathBuf>::new(), "{what}");
        // rsync writes in place: the entries before the bad one are there.
        // The archive transport unpacks into staging: nothing is placed.
        if transport == "rsync" {
            assert_eq!(
                std::fs::read_to_string(w.dest.vhosts.join("jdoe.example/httpdocs/good.txt"))
                    .unwrap_or_else(|e| panic!("{what} by {transport}: {e}")),
                "fine",
            );
        } else {
            assert_eq!(
                placed_before,
                tree_state(&w),
                "{what} by {transport}: the tree changed"
            );
        }
        assert_eq!(
            std::fs::read_dir(&w.dest.dump).map_or(0, |d| d.count()),
            0,
            "{what} by {transport}: staging left behind"
        );
        assert_eq!(
            jdoe_records(&w),
            0,
            "no records for a domain whose content failed"
        );
    }
    // With an honest tar again, the same domain migrates over what the
    // failed attempts left (hostmig's own, by the journal).
    w.source.ssh.set_command_path(None).expect("PATH");
    let id = w
        .start(&jdoe_domain("admin", "jdoe.example"))
        .expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    w.assert_content("jdoe.example", JDOE_IP);
}

/// Makes the source's `tar` slow: about 320 KiB/s.
fn slow_tar(w: &World) {
    crate::harness::tars::hostile_tar(
        &w.source,
        w.dir.path(),
        "/bin/tar \"$@\" | python3 -c '\nimport sys, time\nwhile True:\n    b = sys.stdin.buffer.read(16384)\n    if not b:\n        break\n    sys.stdout.buffer.write(b)\n    sys.stdout.flush()\n    time.sleep(0.05)\n'",
    );
}

/// Waits until the migration's status says it is copying content.
fn wait_copying(w: &World, id: &str) {
    let t = Instant::now();
    loop {
        let status = w.status(id);
        let copying =
            status.contains("copying web content") || status.contains("receiving web content");
        if copying && !status.contains(": 0.0 MiB of") {
            return;
        }
        assert!(
            !status.contains("<finished>"),
            "ended before the test could stop it: {status}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never copied: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn finish_mid_transfer_stops_at_once_and_rsync_then_sends_only_the_rest() {
    let w = World::new(Profile::Small, "");
    slow_tar(&w);
    for transport in ["archive", "rsync"] {
        let extra = format!("<content-transport>{transport}</content-transport>");
        let id = start_to_admin(&w, "jdoe.example", &extra).expect("started");
        wait_copying(&w, &id);
        let took = finish(&w, &id);
        assert!(
            took < Duration::from_secs(2),
            "{transport}: stopped in {took:?}"
        );
        let staging = w.dest.dump.join(format!("hostmig-{id}"));
        assert!(
            wait_gone(&staging, Duration::from_secs(2) - took),
            "{transport}: staging left behind"
        );
        assert_eq!(
            jdoe_records(&w),
            0,
            "no records for a domain whose content failed"
        );
    }
    // What the stopped rsync copied stays; a new start sends only the rest.
    w.source.ssh.set_command_path(None).expect("PATH");
    let id = start_to_admin(
        &w,
        "jdoe.example",
        "<content-transport>rsync</content-transport>",
    )
    .expect("a new start of the same objects");
    assert!(w.wait(&id).contains("<success/>"));
    w.assert_content("jdoe.example", JDOE_IP);
    let reports = w.tree_reports(&id);
    let web = &reports
        .iter()
        .find(|(l, _)| l.starts_with("web"))
        .expect("web report")
        .1;
    let (sent_bytes, bytes) = (
        web["sent_bytes"].as_u64().unwrap_or(0),
        web["bytes"].as_u64().unwrap_or(0),
    );
    assert!(
        sent_bytes > 0 && sent_bytes < bytes,
        "sent {sent_bytes} of {bytes}"
    );
}

#[test]
fn resync_sends_nothing_when_nothing_changed_and_exactly_the_changes_after() {
    let w = World::new(Profile::Small, "");
    let id = w
        .start(&jdoe_client("<domain><name>jdoe.example</name></domain>"))
        .expect("started");
    w.wait(&id);
    w.assert_content("jdoe.example", JDOE_IP);
    let resync = |password: &str| {
        let answer = w.exchange(&format!(
            "<resync><migration_id>{id}</migration_id>{password}</resync>"
        ));
        let new = first(&answer, "migration_id").unwrap_or_else(|| panic!("{answer}"));
        let status = w.wait(&new);
        assert!(status.contains("<success/>"), "{status}");
        w.tree_reports(&new)
    };
    let reports = resync("");
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(
        (
            sent(&reports, "sent_bytes"),
            sent(&reports, "sent_files"),
            sent(&reports, "deleted")
        ),
        (0, 0, 0)
    );

    // About 1% of the files: one changed, one added, one deleted.
    let docs = w.source.layout.vhosts.join("jdoe.example/httpdocs");
    let files = hostmig::sandbox::compare::manifest(&w.source.layout.vhosts.join("jdoe.example"))
        .expect("manifest")
        .iter()
        .filter(|e| e.kind == hostmig::sandbox::compare::Kind::File)
        .count();
    std::fs::write(docs.join("index.html"), "<h1>new front page</h1>\n").expect("change");
    std::fs::write(docs.join("added page.html"), "<h1>added</h1>\n").expect("add");
    std::fs::remove_file(docs.join("odd/world.txt")).expect("delete");
    let reports = resync("<password/>");
    let changed = "<h1>new front page</h1>\n".len() as u64;
    assert_eq!(
        sent(&reports, "sent_files"),
        2,
        "of {files} files: {reports:?}"
    );
    assert_eq!(
        sent(&reports, "sent_bytes"),
        changed + "<h1>added</h1>\n".len() as u64
    );
    assert_eq!(sent(&reports, "deleted"), 1);
    w.assert_content("jdoe.example", JDOE_IP);

    // Unknown and running ids are refused.
    let answer = w.exchange("<resync><migration_id>999</migration_id></resync>");
    assert!(answer.contains("<errcode>1013</errcode>"), "{answer}");
}

/// A directory of links to every program of /usr/bin but `missing`: a
/// source's PATH without them.
fn path_without(dir: &Path, missing: &[&str]) -> std::path::PathBuf {
    let bin = dir.join(format!("bin-without-{}", missing.join("-")));
    std::fs::create_dir_all(&bin).expect("bin");
    for entry in std::fs::read_dir("/usr/bin").expect("/usr/bin").flatten() {
        let name = entry.file_name();
        if missing.iter().any(|m| name == std::ffi::OsStr::new(m)) {
            continue;
        }
        let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
    }
    bin
}

/// `content_compression = "zstd"` takes zstd where the source has it, else
/// gzip, else nothing; each migration verifies, and its event log says what
/// its streams went through.
#[test]
fn sources_without_zstd_or_without_any_compressor_still_verify() {
    let w = World::new(
        Profile::Tiny,
        "\n[migrations]\ncontent_compression = \"zstd\"\ndb_compression = \"on\"\n",
    );
    let codecs = |id: &str| -> Vec<String> {
        w.tree_reports(id)
            .iter()
            .map(|(_, r)| r["compression"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let chosen = |id: &str| -> serde_json::Value {
        let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
            .expect("event log");
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["event"].get("compression").cloned())
            .expect("the compression chosen is in the event log")
    };
    let cases = [
        ("jdoe.example", vec!["zstd"], "gzip"),
        ("xn--bcher-kva.example", vec!["zstd", "gzip"], "none"),
        ("admin-site.example", vec![], "zstd"),
    ];
    for (domain, missing, expected) in cases {
        let bin = path_without(w.dir.path(), &missing);
        let path = (!missing.is_empty()).then(|| bin.display().to_string());
        w.source.ssh.set_path(path.as_deref()).expect("PATH");
        let (old, new) = match domain {
            "admin-site.example" => ("192.0.2.100", "198.51.100.5"),
            _ => JDOE_IP,
        };
        let id = w
            .start_as("root", "", &mapped_domain("admin", domain, (old, new)), "")
            .expect("started");
        let status = w.wait(&id);
        assert!(status.contains("<success/>"), "{domain}: {status}");
        w.assert_content(domain, (old, new));
        let choice = chosen(&id);
        assert_eq!(choice["content"], expected, "{domain}: {choice}");
        assert_eq!(choice["db"], true, "{choice}");
        let used = codecs(&id);
        assert!(
            !used.is_empty() && used.iter().all(|c| c == expected),
            "{domain}: {used:?}"
        );
        println!("{domain} without {missing:?}: {}", choice["why"]);
    }
    w.source.ssh.set_path(None).expect("PATH");
}
