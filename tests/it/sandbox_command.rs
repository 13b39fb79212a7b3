//! `hostmig sandbox` end to end, as a newcomer runs it: every client of a
//! tiny source migrated through the API and verified; with `--exit` it
//! stops by itself, without it Ctrl-C stops it; either way no process it
//! started is left.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostmig::sandbox::compare;
use hostmig::sandbox::{Destination, Profile, Source};
use mysql_async::prelude::Queryable;

const BIN: &str = env!("CARGO_BIN_EXE_hostmig");

/// Processes whose command line names `dir` (the sandbox's servers do).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            out.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    out
}

/// The slot of the source's host a sandbox's output names.
fn slot_named(line: &str) -> Option<u32> {
    let rest = &line[line.find("network namespace hostmig-sb-")? + 29..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What of a slot's namespace, link and shaping is on this machine.
fn slot_left(slot: u32) -> Vec<String> {
    let mut left = Vec::new();
    for path in [
        format!("/run/netns/hostmig-sb-{slot}"),
        format!("/sys/class/net/hmsb{slot}d"),
        format!("/run/hostmig-sandbox/{slot}"),
    ] {
        if Path::new(&path).exists() {
            left.push(path);
        }
    }
    let qdisc = Command::new("tc")
        .args(["qdisc", "show", "dev", &format!("hmsb{slot}d")])
        .output()
        .expect("tc");
    if String::from_utf8_lossy(&qdisc.stdout).contains("tbf") {
        left.push(format!("a tbf qdisc on hmsb{slot}d"));
    }
    left
}

/// `hostmig sandbox --profile tiny` in `dir`, waiting for Ctrl-C, its
/// output read line by line.
fn spawn_sandbox(
    dir: &Path,
    extra: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(BIN)
        .args(["sandbox", "--profile", "tiny"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hostmig sandbox");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

fn wait_gone(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_under(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks what the command's own summary claims, from its kept directory:
/// every tree of the generated source is on the destination (setid bits
/// dropped, `conf/` files remapped), every database on one of the
/// destination's servers with the same per-table checksums, every client
/// and domain in the destination's panel.
fn arrived(dir: &Path) {
    let rt = crate::harness::sandbox::rt();
    let (mut source, mut dest) = rt.block_on(async {
        (
            Source::start(&dir.join("src"), Profile::Tiny, 1)
                .await
                .expect("the kept source starts again"),
            Destination::start(&dir.join("dst"), 2)
                .await
                .expect("the kept destination starts again"),
        )
    });
    let model = source.model.clone();
    for d in &model.domains {
        for (src, dst) in [
            (&source.layout.vhosts, &dest.vhosts),
            (&source.layout.mailnames, &dest.mailnames),
        ] {
            let (src, dst) = (src.join(&d.name), dst.join(&d.name));
            if !src.exists() {
                continue;
            }
            crate::harness::tars::assert_same_tree_except(&src, &dst, &[b"conf/vhost.conf"]);
        }
    }
    rt.block_on(async {
        for db in source.databases() {
            let mut src = source.db.connect(None).await.expect("source");
            let expected = compare::table_checksums(&mut src, &db).await.expect("sums");
            let mut found = false;
            for server in &dest.db_servers {
                let mut conn = server.connect(None).await.expect("destination server");
                if hostmig::db::database_exists(&mut conn, &db)
                    .await
                    .expect("list")
                {
                    assert_eq!(
                        compare::table_checksums(&mut conn, &db)
                            .await
                            .expect("sums"),
                        expected,
                        "database {db}"
                    );
                    found = true;
                }
            }
            assert!(found, "database {db} is on no destination server");
        }
        let mut panel = dest.db_servers[0]
            .connect(Some("psa"))
            .await
            .expect("panel");
        let logins: Vec<String> = panel
            .query("SELECT login FROM clients")
            .await
            .expect("clients");
        let names: Vec<String> = panel
            .query("SELECT name FROM domains")
            .await
            .expect("domains");
        for c in &model.clients {
            assert!(
                logins.contains(&c.login),
                "client {} is not in the panel",
                c.login
            );
        }
        for d in &model.domains {
            assert!(
                names.contains(&d.name),
                "domain {} is not in the panel",
                d.name
            );
        }
    });
    source.stop();
    dest.stop();
}

#[test]
fn the_sandbox_migrates_every_client_and_leaves_no_process_behind() {
    let root = tempfile::tempdir().expect("tempdir");

    assert!(
        hostmig::sandbox::host::SourceHost::available(),
        "the sandbox's source gets a host of its own only as root: run the tests as root (CI does)"
    );
    // --exit: migrates, verifies, stops; the source behind a link shaped
    // to 100 Mbit/s.
    let dir = root.path().join("exit");
    let out = Command::new(BIN)
        .args([
            "sandbox",
            "--profile",
            "tiny",
            "--link-mbit",
            "100",
            "--exit",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .expect("run hostmig sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no difference"), "{stdout}");
    assert!(
        stdout.contains("did not") && stdout.contains(" 0 did not"),
        "{stdout}"
    );
    assert!(stdout.contains("finished: success"), "{stdout}");
    assert!(stdout.contains("curl -sk https://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("the link shaped to 100 Mbit/s both ways"),
        "{stdout}"
    );
    let slot = stdout
        .lines()
        .find_map(slot_named)
        .expect("the source's host is named");
    assert_eq!(wait_gone(&dir), Vec::<String>::new());
    assert_eq!(slot_left(slot), Vec::<String>::new());
    arrived(&dir);

    // Without --exit it keeps serving until Ctrl-C (SIGINT), then stops
    // every process it started.
    let dir = root.path().join("ctrl-c");
    let (mut child, mut lines) = spawn_sandbox(&dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("the sandbox ended early")
            .expect("line");
        seen.push(line.clone());
        if line.contains("press Ctrl-C") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", seen.join("\n"));
    }
    assert!(
        !processes_under(&dir).is_empty(),
        "its servers run while it waits"
    );
    // SAFETY: SIGINT to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{}\n{}", seen.join("\n"), rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("stopped every process")),
        "{rest:?}"
    );
    assert_eq!(wait_gone(&dir), Vec::<String>::new());
    let slot = seen
        .iter()
        .find_map(|l| slot_named(l))
        .expect("the source's host is named");
    assert_eq!(slot_left(slot), Vec::<String>::new());

    // Killed (SIGKILL: nothing of its own runs), it leaves its servers to
    // the kernel (they die with it) and its namespace, link and shaping
    // to the next sandbox, which sweeps them away as it starts.
    let dir = root.path().join("killed");
    let (mut child, mut lines) = spawn_sandbox(&dir, &["--link-mbit", "50"]);
    let slot = loop {
        let line = lines
            .next()
            .expect("the sandbox ended early")
            .expect("line");
        if let Some(slot) = slot_named(&line) {
            break slot;
        }
    };
    // SAFETY: SIGKILL to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("wait");
    assert_eq!(wait_gone(&dir), Vec::<String>::new());
    assert!(
        !slot_left(slot).is_empty(),
        "a killed sandbox cannot clean up: its namespace stays until the next one"
    );
    let next = hostmig::sandbox::host::SourceHost::create().expect("the next sandbox's host");
    if next.slot == slot {
        // Swept, then claimed again: by this process now.
        assert!(hostmig::sandbox::host::owned_by_me().contains(&slot));
    } else {
        assert_eq!(slot_left(slot), Vec::<String>::new());
    }
    drop(next);
}
