//! Verification of a copied tree (DESIGN.md §2 step 5), pure: the
//! source's listing and hashes against the copy's, every difference named.

use std::collections::{BTreeSet, HashMap};

use super::conf::Rewrites;
use super::kept_mode;
use super::listing::{link_groups, shown, Hash, Listing, NodeKind};

/// Regular files and their bytes (each inode once) of the paths `keep` accepts.
pub(super) fn totals(list: &Listing, keep: impl Fn(&[u8]) -> bool) -> (u64, u64) {
    let mut seen = BTreeSet::new();
    let (mut files, mut bytes) = (0, 0);
    for (p, n) in list {
        if n.kind == NodeKind::File && keep(p) && seen.insert(n.ino) {
            files += 1;
            bytes += n.size;
        }
    }
    (files, bytes)
}

/// Every difference between the source's listing and the copy, one
/// readable line each: type, size, mtime, mode (setuid and setgid aside),
/// link target, hard links, and content hashes where both sides have one.
pub fn verify(
    src: &Listing,
    dst: &Listing,
    src_hashes: &HashMap<Vec<u8>, Hash>,
    dst_hashes: &HashMap<Vec<u8>, Hash>,
    rewritten: &Rewrites,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, s) in src {
        if s.kind == NodeKind::Other {
            continue;
        }
        let name = shown(p);
        let Some(d) = dst.get(p) else {
            out.push(format!("{name}: missing on the destination"));
            continue;
        };
        if d.kind != s.kind {
            out.push(format!(
                "{name}: a {:?} on the source, a {:?} here",
                s.kind, d.kind
            ));
            continue;
        }
        if s.kind != NodeKind::Symlink && d.mode != kept_mode(s.mode) {
            out.push(format!(
                "{name}: mode {:o} on the source, {:o} here",
                s.mode, d.mode
            ));
        }
        if s.kind == NodeKind::Symlink && d.link != s.link {
            out.push(format!("{name}: the symlink's target differs"));
        }
        if d.mtime != s.mtime {
            out.push(format!(
                "{name}: mtime {} on the source, {} here",
                s.mtime, d.mtime
            ));
        }
        if s.kind == NodeKind::File && !rewritten.contains_key(p) && d.size != s.size {
            out.push(format!(
                "{name}: {} bytes on the source, {} here",
                s.size, d.size
            ));
        }
    }
    for p in dst.keys() {
        if !src.contains_key(p) {
            out.push(format!("{}: here but not on the source", shown(p)));
        }
    }
    for paths in link_groups(src).values() {
        let inodes: BTreeSet<_> = paths
            .iter()
            .filter_map(|p| dst.get(p).map(|n| n.ino))
            .collect();
        if inodes.len() > 1 {
            out.push(format!(
                "{}: hard links on the source, separate files here",
                shown(&paths[0])
            ));
        }
    }
    // A hard link's content is its inode's: any path of the inode will do.
    let by_inode: HashMap<u64, &Hash> = dst_hashes
        .iter()
        .filter_map(|(p, h)| dst.get(p).map(|n| (n.ino, h)))
        .collect();
    for (p, expected) in src_hashes {
        let got = dst_hashes
            .get(p)
            .or_else(|| dst.get(p).and_then(|n| by_inode.get(&n.ino).copied()));
        match got {
            Some(h) if h == expected => {}
            Some(_) => out.push(format!("{}: content differs (hash)", shown(p))),
            None => out.push(format!("{}: no content hash of the copy", shown(p))),
        }
    }
    for p in dst_hashes.keys() {
        if !src_hashes.contains_key(p) && src.get(p).is_some_and(|n| n.kind == NodeKind::File) {
            out.push(format!("{}: no content hash on the source", shown(p)));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::listing::testing::{listing, node};

    #[test]
    fn verify_names_each_kind_of_difference() {
        let f = |size, mtime| node(NodeKind::File, size, mtime, 1, 1);
        let src = listing(&[("a", f(1, 1)), ("b", f(2, 2)), ("c", f(3, 3))]);
        let dst = listing(&[("a", f(1, 1)), ("b", f(2, 5)), ("extra", f(1, 1))]);
        let mut sh = HashMap::new();
        sh.insert(b"a".to_vec(), "h1".to_owned());
        let mut dh = HashMap::new();
        dh.insert(b"a".to_vec(), "h2".to_owned());
        let found = verify(&src, &dst, &sh, &dh, &Rewrites::new());
        assert_eq!(
            found,
            [
                "a: content differs (hash)",
                "b: mtime 2 on the source, 5 here",
                "c: missing on the destination",
                "extra: here but not on the source",
            ]
        );
        dh.insert(b"a".to_vec(), "h1".to_owned());
        let same = listing(&[("a", f(1, 1))]);
        assert!(verify(&same, &same, &sh, &dh, &Rewrites::new()).is_empty());
    }
}
