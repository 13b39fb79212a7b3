//! The `conf/` files of a vhost tree (DESIGN.md §2 step 6): old addresses
//! in them rewritten to the mapped new ones after the copy was verified,
//! each rewrite stamped with the source file's size and mtime so that a
//! later run (resync, resume) knows the rewritten copy is still current.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::listing::{shown, Listing, NodeKind};
use super::tree::TreeError;
use super::{kept_mode, set_mtime};
use crate::remap::Remap;

/// The source's size and mtime of a file hostmig rewrote (a remapped
/// `conf/` file): while the source still has these, the rewritten copy is
/// current and is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime: i64,
}

pub type Rewrites = BTreeMap<Vec<u8>, Stamp>;

/// Largest `conf/` file the remapping reads.
const MAX_CONF_BYTES: u64 = 4 << 20;

/// Rewrites old addresses in the tree's `conf/*` files not yet rewritten,
/// keeping each file's mode, owner and the source's mtime; records the
/// source's stamp of every file it rewrote.
pub(super) fn remap_conf(
    label: &str,
    root: &Path,
    src: &Listing,
    remap: &Remap,
    rewritten: &mut Rewrites,
    rewritten_now: &mut Vec<String>,
) -> Result<(), TreeError> {
    for (p, n) in src.range(b"conf/".to_vec()..b"conf0".to_vec()) {
        let direct = p.len() > 5 && !p[5..].contains(&b'/');
        // Files rewritten earlier (and not sent again) are current; any
        // other, sent now or copied by an earlier stopped run, is remapped.
        if !direct
            || n.kind != NodeKind::File
            || rewritten.contains_key(p)
            || n.size > MAX_CONF_BYTES
        {
            continue;
        }
        let path = root.join(std::ffi::OsStr::from_bytes(p));
        let Ok(text) = fs::read(&path).map(String::from_utf8) else {
            continue;
        };
        let Ok(text) = text else {
            tracing::warn!(file = %shown(p), tree = %label, "not UTF-8 text; its addresses were not remapped");
            continue;
        };
        let new = remap.text(&text);
        if new == text {
            continue;
        }
        let err = |source| TreeError::Io {
            what: format!("cannot rewrite {}", shown(p)),
            source,
        };
        let tmp = path.with_file_name(format!(".hostmig-remap-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let meta = fs::symlink_metadata(&path).map_err(err)?;
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(err)?;
            std::io::Write::write_all(&mut f, new.as_bytes()).map_err(err)?;
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid())).map_err(err)?;
            f.set_permissions(fs::Permissions::from_mode(kept_mode(meta.mode())))
                .map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        set_mtime(&tmp, n.mtime).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        rewritten.insert(
            p.clone(),
            Stamp {
                size: n.size,
                mtime: n.mtime,
            },
        );
        rewritten_now.push(shown(p));
    }
    // The renames touched conf/ itself.
    if let Some(conf) = src
        .get(b"conf".as_slice())
        .filter(|_| !rewritten_now.is_empty())
    {
        set_mtime(&root.join("conf"), conf.mtime).map_err(|source| TreeError::Io {
            what: "cannot set the mtime of conf".into(),
            source,
        })?;
    }
    Ok(())
}
