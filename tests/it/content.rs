//! One content tree copied by each transport against the sandbox's real
//! sshd: fidelity on every hard case, verification, `conf/` remapping,
//! incremental re-sync (exactly what changed is sent, deletions deleted).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use hostmig::remap::Remap;
use hostmig::sandbox::compare::{self, DiffOptions};
use hostmig::sandbox::{Profile, Source};
use hostmig::ssh::Session;
use hostmig::transfer::conf::Rewrites;
use hostmig::transfer::link::Codec;
use hostmig::transfer::tree::{sync_tree, Transport, TreeJob, TreeReport};

use crate::harness::sandbox::rt;

pub fn session(source: &Source, dir: &Path) -> Session {
    crate::harness::tars::session(source, dir)
}

fn job(source: &Source, out: &Path, transport: Transport, rewritten: Rewrites) -> TreeJob {
    compressed(source, out, transport, rewritten, Codec::None)
}

/// A job whose streams the source compresses with `codec`.
fn compressed(
    source: &Source,
    out: &Path,
    transport: Transport,
    rewritten: Rewrites,
    compression: Codec,
) -> TreeJob {
    let mut addresses = BTreeMap::new();
    addresses.insert("192.0.2.10".to_owned(), "203.0.113.10".to_owned());
    TreeJob {
        label: "web content of jdoe.example".into(),
        remote: source.layout.vhosts.join("jdoe.example"),
        local: out.to_owned(),
        transport,
        staging: out.with_extension("staging"),
        owner: Some((1, 1)),
        conf_remap: Some(Remap {
            addresses,
            roots: Vec::new(),
        }),
        rewritten,
        meter: hostmig::caps::Meter::unlimited(),
        compression,
    }
}

/// Copies with two copy sessions (a large tree goes over both at once).
fn run(source: &Source, dir: &Path, job: &TreeJob) -> TreeReport {
    let copy = [session(source, dir), session(source, dir)];
    let hasher = session(source, dir);
    sync_tree(&copy, &hasher, job, &AtomicBool::new(false), &mut |_| {}).expect("synced")
}

/// The copy equals the source but for setid bits, owners and `conf/vhost.conf`.
fn assert_copy(source: &Path, copy: &Path) {
    let expected = compare::manifest(source).expect("manifest");
    let actual = compare::manifest(copy).expect("manifest");
    let opts = DiffOptions {
        ignore_setid_bits: true,
        content_may_differ: vec![b"conf/vhost.conf".to_vec()],
        ..DiffOptions::default()
    };
    assert_eq!(
        compare::diff(&expected, &actual, &opts),
        Vec::<String>::new()
    );
    let conf = std::fs::read_to_string(copy.join("conf/vhost.conf")).expect("conf");
    assert!(conf.contains("<VirtualHost 203.0.113.10:80>"), "{conf}");
    assert!(
        conf.contains("192.0.2.100"),
        "a longer address is left alone: {conf}"
    );
    assert!(!conf.contains("192.0.2.10:"), "{conf}");
}

#[test]
fn both_transports_copy_every_hard_case_and_rsync_sends_only_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 71))
        .expect("source");
    let tree = source.layout.vhosts.join("jdoe.example");
    let total_files = compare::manifest(&tree)
        .expect("manifest")
        .iter()
        .filter(|e| e.kind == compare::Kind::File && e.hard_link_of.is_none())
        .count() as u64;

    let by_archive = dir.path().join("archive");
    let report = run(
        &source,
        dir.path(),
        &compressed(
            &source,
            &by_archive,
            Transport::Archive,
            Rewrites::new(),
            Codec::Zstd,
        ),
    );
    // Every hard case arrives through zstd (and gzip below) as it is.
    assert_eq!(report.compression, Codec::Zstd);
    assert_copy(&tree, &by_archive);
    assert_eq!(report.sent_files, total_files);
    assert_eq!(report.rewritten_now, ["conf/vhost.conf"]);
    let staged = by_archive.with_extension("staging");
    assert!(!staged.exists(), "the staged tree was moved into place");
    let meta = std::fs::symlink_metadata(by_archive.join("httpdocs/odd/setuid.sh")).expect("meta");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        1,
        "owner mapped"
    );

    let by_rsync = dir.path().join("rsync");
    let first = run(
        &source,
        dir.path(),
        &compressed(
            &source,
            &by_rsync,
            Transport::Rsync,
            Rewrites::new(),
            Codec::Gzip,
        ),
    );
    assert_eq!(first.compression, Codec::Gzip);
    assert_copy(&tree, &by_rsync);
    assert_eq!(
        (first.sent_files, first.sent_bytes),
        (report.sent_files, report.sent_bytes)
    );

    // Nothing changed: nothing is sent, and the remapped file stays remapped.
    let again = run(
        &source,
        dir.path(),
        &job(
            &source,
            &by_rsync,
            Transport::Rsync,
            first.rewritten.clone(),
        ),
    );
    assert_eq!(
        (again.sent_files, again.sent_bytes, again.deleted),
        (0, 0, 0)
    );
    assert_copy(&tree, &by_rsync);

    // One file changed, one added, one deleted (and the conf file changed):
    // exactly those go, the deleted one is deleted, conf is remapped again.
    let docs = tree.join("httpdocs");
    std::fs::write(docs.join("index.html"), "<h1>changed</h1>\n").expect("change");
    std::fs::write(docs.join("added.html"), "<h1>added</h1>\n").expect("add");
    std::fs::remove_file(docs.join("odd/name with spaces.txt")).expect("delete");
    let conf = tree.join("conf/vhost.conf");
    let text = std::fs::read_to_string(&conf).expect("conf") + "# changed\n";
    std::fs::write(&conf, text).expect("conf");
    let changed = run(
        &source,
        dir.path(),
        &job(
            &source,
            &by_rsync,
            Transport::Rsync,
            again.rewritten.clone(),
        ),
    );
    assert_eq!((changed.sent_files, changed.deleted), (3, 1));
    assert_eq!(changed.rewritten_now, ["conf/vhost.conf"]);
    assert_copy(&tree, &by_rsync);
}
