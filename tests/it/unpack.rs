//! Unpacking: GNU tar's archives of the sandbox's hard cases arrive intact,
//! and hostile archives (aimed at this test's own temporary directory)
//! write nothing outside the tree.

use std::io::Cursor;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use hostmig::sandbox::compare;
use hostmig::sandbox::{Profile, Source};
use hostmig::transfer::tar::TarError;
use hostmig::transfer::unpack::{unpack, UnpackError};

use crate::harness::sandbox::rt;
use crate::harness::tars::{archive, assert_same_tree, header, member, symlink_to};

/// GNU tar's archive of `dir/name`, in the given format.
fn gnu_tar(dir: &Path, name: &str, format: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["--sparse", &format!("--format={format}"), "-C"])
        .arg(dir)
        .args(["-cf", "-", name])
        .stderr(Stdio::inherit())
        .output()
        .expect("GNU tar runs");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn gnu_tar_archives_of_the_hard_cases_arrive_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 51))
        .expect("source");
    let expected = compare::manifest(&source.layout.vhosts.join("jdoe.example")).expect("manifest");
    for format in ["gnu", "posix"] {
        let archive = gnu_tar(&source.layout.vhosts, "jdoe.example", format);
        let out = dir.path().join(format!("out-{format}"));
        std::fs::create_dir(&out).expect("out");
        let stats = unpack(Cursor::new(archive), &out).expect("unpacked");
        assert!(stats.entries as usize >= expected.len() - 1, "{stats:?}");
        assert_same_tree(
            &source.layout.vhosts.join("jdoe.example"),
            &out.join("jdoe.example"),
        );
        // setuid and setgid are dropped; the sparse file stays sparse.
        let odd = out.join("jdoe.example/httpdocs/odd");
        assert_eq!(
            std::fs::metadata(odd.join("setuid.sh"))
                .expect("setuid")
                .mode()
                & 0o7777,
            0o755
        );
        let sparse = std::fs::metadata(odd.join("sparse.img")).expect("sparse");
        assert_eq!(sparse.len(), 32 << 20);
        assert!(
            sparse.blocks() * 512 < sparse.len() / 4,
            "{format}: sparse.img was written out in full"
        );
    }
}

#[test]
fn hostile_archives_write_nothing_outside_the_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).expect("victim dir");
    let victim_file = victim.join("precious.txt");
    std::fs::write(&victim_file, "keep me").expect("victim file");
    let good = member(b"site/good.txt", b'0', b"fine", b"");
    let victim_abs = victim.join("abs.txt");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute path",
            archive(&[
                good.clone(),
                member(victim_abs.as_os_str().as_encoded_bytes(), b'0', b"x", b""),
            ]),
            "leaves the tree",
        ),
        (
            "parent directory",
            archive(&[
                good.clone(),
                member(b"site/../../victim/dotdot.txt", b'0', b"x", b""),
            ]),
            "leaves the tree",
        ),
        (
            "a symlink, then a file through it",
            archive(&[
                good.clone(),
                symlink_to(b"site/link", &victim),
                member(b"site/link/pwned.txt", b'0', b"x", b""),
            ]),
            "symlink",
        ),
        (
            // A directory is checked once: a later entry must not turn
            // it into a link to write through.
            "a directory, then a symlink in its place, then a file through it",
            archive(&[
                good.clone(),
                member(b"site/d/", b'5', b"", b""),
                member(b"site/d/first.txt", b'0', b"x", b""),
                symlink_to(b"site/d", &victim),
                member(b"site/d/pwned.txt", b'0', b"x", b""),
            ]),
            "replace a directory",
        ),
        (
            "a character device",
            archive(&[good.clone(), member(b"site/dev", b'3', b"", b"")]),
            "device",
        ),
        (
            "a block device",
            archive(&[good.clone(), member(b"site/blk", b'4', b"", b"")]),
            "device",
        ),
        (
            "a fifo",
            archive(&[good.clone(), member(b"site/fifo", b'6', b"", b"")]),
            "fifo",
        ),
        (
            "a hard link to a file outside",
            archive(&[
                good.clone(),
                member(
                    b"site/hl",
                    b'1',
                    b"",
                    victim_file.as_os_str().as_encoded_bytes(),
                ),
            ]),
            "outside",
        ),
        (
            "a hard link with ..",
            archive(&[
                good.clone(),
                member(b"site/hl", b'1', b"", b"../victim/precious.txt"),
            ]),
            "outside",
        ),
    ];
    for (what, bytes, reason) in cases {
        let tree = dir.path().join(format!("tree-{}", what.replace(' ', "-")));
        std::fs::create_dir(&tree).expect("tree");
        let err = unpack(Cursor::new(bytes), &tree).expect_err(what);
        assert!(matches!(err, UnpackError::Refused { .. }), "{what}: {err}");
        assert!(err.to_string().contains(reason), "{what}: {err}");
        // The entries before the bad one are there; nothing outside the tree changed.
        assert_eq!(
            std::fs::read_to_string(tree.join("site/good.txt")).expect("good entry"),
            "fine",
            "{what}"
        );
        let names: Vec<_> = std::fs::read_dir(&victim)
            .expect("victim")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("precious.txt")],
            "{what}"
        );
        assert_eq!(
            std::fs::read_to_string(&victim_file).expect("victim"),
            "keep me",
            "{what}"
        );
    }

    // Headers that would cost memory or lie are refused before anything is read.
    let tree = dir.path().join("tree-headers");
    std::fs::create_dir(&tree).expect("tree");
    let mut huge = header(b"././@LongLink", b'L', 10 << 20, b"");
    huge.extend_from_slice(&[b'a'; 512]);
    let err = unpack(Cursor::new(huge), &tree).expect_err("oversized");
    assert!(
        matches!(err, UnpackError::Archive(TarError::Oversized { .. })),
        "{err}"
    );
    let mut bad_sum = member(b"x.txt", b'0', b"x", b"");
    bad_sum[0] = b'y';
    let err = unpack(Cursor::new(archive(&[bad_sum])), &tree).expect_err("checksum");
    assert!(
        matches!(err, UnpackError::Archive(TarError::Corrupt(_))),
        "{err}"
    );
    let mut truncated = header(b"big.bin", b'0', 100_000, b"");
    truncated.extend_from_slice(&[7u8; 1000]);
    let err = unpack(Cursor::new(truncated), &tree).expect_err("truncated");
    assert!(
        matches!(err, UnpackError::Archive(TarError::Truncated)),
        "{err}"
    );
}

/// An entry over an earlier one replaces it: a file over a symlink is a
/// new file in the tree (the link's target untouched), a file given twice
/// holds the second data.
#[test]
fn later_entries_replace_earlier_ones_without_following_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("precious.txt");
    std::fs::write(&victim, "keep me").expect("victim");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).expect("tree");
    let bytes = archive(&[
        symlink_to(b"site/link", &victim),
        member(b"site/link", b'0', b"replaced", b""),
        member(b"site/twice.txt", b'0', b"first", b""),
        member(b"site/twice.txt", b'0', b"second", b""),
    ]);
    let unpacked = unpack(Cursor::new(bytes), &tree).expect("unpack");
    assert_eq!(unpacked.files, 3);
    let link = tree.join("site/link");
    assert!(
        std::fs::symlink_metadata(&link).expect("link").is_file(),
        "the symlink was replaced by a file"
    );
    assert_eq!(std::fs::read_to_string(&link).expect("file"), "replaced");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep me");
    assert_eq!(
        std::fs::read_to_string(tree.join("site/twice.txt")).expect("twice"),
        "second"
    );
}

#[test]
fn mutated_archives_never_panic_nor_escape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("site/sub")).expect("src");
    std::fs::write(src.join("site/a.txt"), "alpha").expect("a");
    std::fs::write(src.join("site/sub/b.bin"), vec![7u8; 3000]).expect("b");
    std::os::unix::fs::symlink("a.txt", src.join("site/link")).expect("link");
    std::fs::hard_link(src.join("site/a.txt"), src.join("site/hard")).expect("hard");
    let original = gnu_tar(&src, "site", "gnu");
    let cases: usize = std::env::var("HOSTMIG_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut rng = fastrand::Rng::with_seed(0x7a5);
    let jail = dir.path().join("jail");
    for case in 0..cases {
        let mut bytes = original.clone();
        for _ in 0..rng.usize(1..=6) {
            let i = rng.usize(0..bytes.len());
            match rng.u8(0..3) {
                0 => bytes[i] = rng.u8(..),
                1 => bytes[i] = *rng.choice(b"/.0 \x007LS1256x").expect("choice"),
                _ => bytes.truncate(i),
            }
            if bytes.is_empty() {
                break;
            }
        }
        std::fs::create_dir_all(jail.join("tree")).expect("tree");
        let _ = std::panic::catch_unwind(|| unpack(Cursor::new(&bytes), &jail.join("tree")))
            .unwrap_or_else(|_| panic!("unpack panicked on case {case}"));
        let outside: Vec<_> = std::fs::read_dir(&jail)
            .expect("jail")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            outside,
            vec![std::ffi::OsString::from("tree")],
            "case {case} wrote outside the tree"
        );
        std::fs::remove_dir_all(&jail).expect("clean");
    }
}
