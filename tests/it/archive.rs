//! The archive transport's fetch: tar over an SSH exec channel into a
//! staging file, against the sandbox's real sshd.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostmig::config::HostKeyPolicy;
use hostmig::sandbox::{Profile, Source};
use hostmig::ssh::{Credential, Login, Options, Session, Target};
use hostmig::transfer::archive::{fetch, tar_tree_command, FetchError};
use hostmig::transfer::unpack::unpack;

use crate::sandbox::rt;

pub fn session(source: &Source, dir: &Path) -> Session {
    let login = Login {
        target: Target::parse(&source.ssh_host()).expect("target"),
        user: "root".into(),
        credential: Credential::Key(source.ssh.client_key.clone()),
    };
    let opts = Options {
        known_hosts: dir.join("known_hosts"),
        policy: HostKeyPolicy::AcceptNew,
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(60),
    };
    Session::connect(&login, &opts).expect("ssh")
}

/// Makes `tar` on the source this shell script.
pub fn hostile_tar(source: &Source, dir: &Path, script: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let tar = bin.join("tar");
    std::fs::write(&tar, format!("#!/bin/sh\n{script}\n")).expect("script");
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    source.ssh.set_command_path(Some(&bin)).expect("PATH");
}

/// Fetches jdoe.example from the source into `staging`.
fn fetch_jdoe(
    source: &Source,
    ssh: &Session,
    staging: &Path,
    stop: &AtomicBool,
) -> Result<u64, FetchError> {
    fetch(
        ssh,
        &tar_tree_command(&source.layout.vhosts.join("jdoe.example")),
        staging,
        stop,
        &mut |_| {},
    )
}

#[test]
fn a_domain_tree_arrives_through_the_staging_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 61))
        .expect("source");
    let ssh = session(&source, dir.path());
    let staging = dir.path().join("staging.tar");
    let mut seen = 0;
    let bytes = fetch(
        &ssh,
        &tar_tree_command(&source.layout.vhosts.join("jdoe.example")),
        &staging,
        &AtomicBool::new(false),
        &mut |n| seen = n,
    )
    .expect("fetched");
    assert_eq!(
        (bytes, seen),
        (std::fs::metadata(&staging).expect("staging").len(), bytes)
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out");
    unpack(std::fs::File::open(&staging).expect("open"), &out).expect("unpack");
    crate::unpack::assert_same_tree(&source.layout.vhosts.join("jdoe.example"), &out);
    // A second fetch never overwrites an existing staging file.
    let err = fetch_jdoe(&source, &ssh, &staging, &AtomicBool::new(false)).expect_err("exists");
    assert!(matches!(err, FetchError::Staging { .. }), "{err}");
}

#[test]
fn a_failing_or_cut_source_leaves_no_staging_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 62))
        .expect("source");
    let staging = dir.path().join("staging.tar");

    hostile_tar(
        &source,
        dir.path(),
        "echo 'tar: cannot open: Permission denied' >&2; head -c 1024 /dev/zero; exit 2",
    );
    let err = fetch_jdoe(
        &source,
        &session(&source, dir.path()),
        &staging,
        &AtomicBool::new(false),
    )
    .expect_err("exit 2");
    assert!(
        matches!(err, FetchError::RemoteFailed { status: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Permission denied"), "{err}");
    assert!(!staging.exists());

    // Exit 0, but the archive stops in the middle.
    hostile_tar(
        &source,
        dir.path(),
        "/bin/tar -cf - . | head -c 4096; exit 0",
    );
    let err = fetch_jdoe(
        &source,
        &session(&source, dir.path()),
        &staging,
        &AtomicBool::new(false),
    )
    .expect_err("cut");
    assert!(
        matches!(err, FetchError::Incomplete { bytes: 4096 }),
        "{err}"
    );
    assert!(!staging.exists());

    // A stop breaks a stalled transfer at once.
    hostile_tar(&source, dir.path(), "head -c 512 /dev/zero; sleep 30");
    let stop = Arc::new(AtomicBool::new(false));
    let ssh = Arc::new(session(&source, dir.path()));
    let stopper = {
        let (stop, ssh) = (stop.clone(), ssh.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            ssh.shutdown();
        })
    };
    let t = Instant::now();
    let err = fetch_jdoe(&source, &ssh, &staging, &stop).expect_err("stopped");
    assert!(matches!(err, FetchError::Stopped), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        t.elapsed()
    );
    assert!(!staging.exists());
    stopper.join().expect("stopper");
}
