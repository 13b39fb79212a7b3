//! The archive transport against the sandbox's real sshd: a source whose
//! tar fails, is cut, or stalls until stopped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostmig::sandbox::{Profile, Source};
use hostmig::transfer::conf::Rewrites;
use hostmig::transfer::tree::{sync_tree, Transport, TreeError, TreeJob, TreeReport};

use crate::harness::sandbox::rt;
use crate::harness::tars::{hostile_tar, session};

/// The archive transport's job for jdoe.example's web tree, into `dir/out`.
fn jdoe_job(source: &Source, dir: &Path) -> TreeJob {
    TreeJob {
        label: "web content of jdoe.example".into(),
        remote: source.layout.vhosts.join("jdoe.example"),
        local: dir.join("out"),
        transport: Transport::Archive,
        staging: dir.join("staging/hostmig-1/jdoe.example.web"),
        owner: None,
        conf_remap: None,
        rewritten: Rewrites::new(),
        meter: hostmig::caps::Meter::unlimited(),
        compression: hostmig::transfer::link::Codec::None,
    }
}

fn copy(source: &Source, dir: &Path, stop: &AtomicBool) -> Result<TreeReport, TreeError> {
    let (a, b) = (session(source, dir), session(source, dir));
    sync_tree(&[a], &b, &jdoe_job(source, dir), stop, &mut |_| {})
}

/// Neither a staged nor a placed tree is left.
fn assert_nothing_left(dir: &Path) {
    assert!(!dir.join("out").exists(), "nothing placed");
    assert!(
        !dir.join("staging/hostmig-1/jdoe.example.web").exists(),
        "nothing staged"
    );
}

#[test]
fn a_failing_or_cut_source_fails_the_tree_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 62))
        .expect("source");

    hostile_tar(
        &source,
        dir.path(),
        "echo 'tar: cannot open: Permission denied' >&2; head -c 1024 /dev/zero; exit 2",
    );
    let err = copy(&source, dir.path(), &AtomicBool::new(false)).expect_err("exit 2");
    let text = err.to_string();
    assert!(
        text.contains("exit status 2") && text.contains("Permission denied"),
        "{text}"
    );
    assert_nothing_left(dir.path());

    // Exit 0, but the archive stops in the middle, or at an entry's end
    // without its end-of-archive marker.
    for cut in [4096, 3 * 512] {
        hostile_tar(
            &source,
            dir.path(),
            &format!("/bin/tar -cf - . | head -c {cut}; exit 0"),
        );
        let err = copy(&source, dir.path(), &AtomicBool::new(false)).expect_err("cut");
        assert!(
            matches!(&err, TreeError::Unpack(_)) && err.to_string().contains("the archive ends"),
            "cut at {cut}: {err}"
        );
        assert_nothing_left(dir.path());
    }

    // A stop breaks a stalled transfer at once.
    hostile_tar(&source, dir.path(), "head -c 512 /dev/zero; sleep 30");
    let stop = Arc::new(AtomicBool::new(false));
    let (a, b) = (
        Arc::new(session(&source, dir.path())),
        Arc::new(session(&source, dir.path())),
    );
    let stopper = {
        let (stop, a, b) = (stop.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            a.shutdown();
            b.shutdown();
        })
    };
    let t = Instant::now();
    let err = sync_tree(
        std::slice::from_ref(&*a),
        &b,
        &jdoe_job(&source, dir.path()),
        &stop,
        &mut |_| {},
    )
    .expect_err("stopped");
    assert!(matches!(err, TreeError::Stopped), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        t.elapsed()
    );
    assert_nothing_left(dir.path());
    stopper.join().expect("stopper");
}
