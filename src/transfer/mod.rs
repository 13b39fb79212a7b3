//! Content over SSH: one tree's copy (`tree`) by either transport
//! (`archive`, `rsync`) over tar streams (`streams`), verified (`verify`)
//! and remapped (`conf`); reading the tar streams a source sends (`tar`)
//! and unpacking them safely into a domain's tree (`unpack`); listings and
//! hashes on both sides (`listing`); owners on the destination (`owner`);
//! compression where it pays (`link`).

mod archive;
pub mod commands;
pub mod conf;
pub mod link;
pub mod listing;
pub mod owner;
pub mod pump;
mod rsync;
mod streams;
pub mod tar;
pub mod tree;
pub mod unpack;
pub mod verify;

pub use rsync::compare;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The mode bits a copy keeps: permissions and the sticky bit; setuid and
/// setgid are never kept.
pub fn kept_mode(mode: u32) -> u32 {
    mode & 0o1777
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sets a path's mtime (and atime) without following a symlink.
pub fn set_mtime(path: &Path, secs: i64) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let times = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    // SAFETY: a valid C path and two timespecs, as utimensat wants.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
