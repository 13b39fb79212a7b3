//! Trees and archives for the content tests: tree equality, tar members
//! written by hand (for hostile archives), and a source whose `tar` is
//! replaced by a script.

use std::path::Path;

use hostmig::sandbox::compare::{self, DiffOptions};
use hostmig::sandbox::Source;
use hostmig::ssh::Session;

/// The trees are equal but for setuid and setgid bits (which unpacking drops).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    assert_same_tree_except(expected, actual, &[]);
}

/// The same, but these files' content may differ (remapped `conf/` files).
pub fn assert_same_tree_except(expected: &Path, actual: &Path, remapped: &[&[u8]]) {
    let expected = compare::manifest(expected).expect("manifest");
    let actual = compare::manifest(actual).expect("manifest");
    let opts = DiffOptions {
        ignore_setid_bits: true,
        content_may_differ: remapped.iter().map(|p| p.to_vec()).collect(),
        ..DiffOptions::default()
    };
    assert_eq!(
        compare::diff(&expected, &actual, &opts),
        Vec::<String>::new()
    );
}

/// One ustar header block.
pub(crate) fn header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"14000000000");
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// A header and its data, padded.
pub(crate) fn member(name: &[u8], kind: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut out = header(name, kind, data.len() as u64, link);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A symlink member named `name` pointing at `target`.
pub(crate) fn symlink_to(name: &[u8], target: &Path) -> Vec<u8> {
    member(name, b'2', b"", target.as_os_str().as_encoded_bytes())
}

pub(crate) fn archive(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = members.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn session(source: &Source, dir: &Path) -> Session {
    let (login, opts) = source.root_login(dir);
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
