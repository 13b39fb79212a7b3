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

    // --exit: migrates, verifies, stops.
    let dir = root.path().join("exit");
    let out = Command::new(BIN)
        .args(["sandbox", "--profile", "tiny", "--exit", "--dir"])
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
    assert_eq!(wait_gone(&dir), Vec::<String>::new());
    arrived(&dir);

    // Without --exit it keeps serving until Ctrl-C (SIGINT), then stops
    // every process it started.
    let dir = root.path().join("ctrl-c");
    let mut child = Command::new(BIN)
        .args(["sandbox", "--profile", "tiny", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hostmig sandbox");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
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
}
