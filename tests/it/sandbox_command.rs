//! `hostmig sandbox` end to end, as a newcomer runs it: every client of a
//! tiny source migrated through the API and verified; with `--exit` it
//! stops by itself, without it Ctrl-C stops it; either way no process it
//! started is left.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
