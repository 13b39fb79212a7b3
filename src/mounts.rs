//! The destination's file systems, for `get_fs`: the mount table, less
//! pseudo file systems, with sizes from `statvfs`. Blocking: call it from a
//! blocking thread, never from an event loop.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// One mounted file system, as `get_fs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub mountpoint: String,
    pub device: String,
    pub read_only: bool,
    pub size: u64,
    pub free: u64,
    pub fs_type: String,
}

/// File system types that hold no dump: kernel interfaces, memory, images.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "iso9660",
    "swap",
];

/// How long one `statvfs` may take before its file system is left out (a
/// hung network mount must not hang `get_fs`).
const STATVFS_TIMEOUT: Duration = Duration::from_secs(2);

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fs_type: String,
    pub read_only: bool,
}

/// Parses `/proc/self/mounts`: pseudo file systems dropped, one entry per
/// mount point (the last mount on a point is the visible one).
pub fn parse_mount_table(text: &str) -> Vec<Mount> {
    let mut mounts = parse_all_mounts(text);
    mounts.retain(|m| !PSEUDO.contains(&m.fs_type.as_str()));
    mounts
}

/// Every mount of the table, pseudo file systems too (tmpfs holds files),
/// one per mount point.
fn parse_all_mounts(text: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(point), Some(fs_type), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount = Mount {
            device: unescape(device),
            mountpoint: unescape(point),
            fs_type: fs_type.to_owned(),
            read_only: options.split(',').any(|o| o == "ro"),
        };
        mounts.retain(|m| m.mountpoint != mount.mountpoint);
        mounts.push(mount);
    }
    mounts
}

/// The kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(value) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Size and free bytes (for unprivileged users) of the file system at `path`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and st points to
    // writable memory of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between 32- and 64-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok((blocks.saturating_mul(frsize), avail.saturating_mul(frsize)))
}

/// The mount point of the file system `path` is on (or would be, once
/// created): the longest mount point above its nearest existing ancestor.
pub fn mount_point_of(path: &Path) -> Option<String> {
    let existing = path
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok())?;
    let table = std::fs::read_to_string("/proc/self/mounts").ok()?;
    parse_all_mounts(&table)
        .into_iter()
        .filter(|m| existing.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.len())
        .map(|m| m.mountpoint)
}

/// Free bytes (for unprivileged users) of the file system at `path`, or of
/// its nearest existing ancestor.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    size_and_free(path).map(|(_, free)| free)
}

/// Size and free bytes of the file system at `path` (or its nearest
/// existing ancestor).
pub fn size_and_free(path: &Path) -> std::io::Result<(u64, u64)> {
    let existing = path
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    statvfs(existing)
}

/// Every file system a dump could be written to, with its sizes.
pub fn list() -> std::io::Result<Vec<FsInfo>> {
    let table = std::fs::read_to_string("/proc/self/mounts")?;
    let mut out = Vec::new();
    for mount in parse_mount_table(&table) {
        let (tx, rx) = mpsc::channel();
        let point = mount.mountpoint.clone();
        std::thread::spawn(move || {
            let _ = tx.send(statvfs(Path::new(&point)));
        });
        match rx.recv_timeout(STATVFS_TIMEOUT) {
            Ok(Ok((0, _))) => {}
            Ok(Ok((size, free))) => out.push(FsInfo {
                mountpoint: mount.mountpoint,
                device: mount.device,
                read_only: mount.read_only,
                size,
                free,
                fs_type: mount.fs_type,
            }),
            Ok(Err(e)) => {
                tracing::debug!(mountpoint = %mount.mountpoint, error = %e, "statvfs failed; left out of get_fs");
            }
            Err(_) => {
                tracing::warn!(mountpoint = %mount.mountpoint, "file system did not answer statvfs in 2 s; left out of get_fs");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(table: &str, expected: &[(&str, &str, &str, bool)]) {
        let got: Vec<(String, String, String, bool)> = parse_mount_table(table)
            .into_iter()
            .map(|m| (m.device, m.mountpoint, m.fs_type, m.read_only))
            .collect();
        let want: Vec<(String, String, String, bool)> = expected
            .iter()
            .map(|(d, p, t, ro)| (d.to_string(), p.to_string(), t.to_string(), *ro))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keeps_real_file_systems_only() {
        check(
            "proc /proc proc rw 0 0\n/dev/vda / ext4 rw,relatime 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n",
            &[("/dev/vda", "/", "ext4", false)],
        );
        check(
            "/dev/sdb1 /mnt/my\\040backup xfs ro,noatime 0 0\n",
            &[("/dev/sdb1", "/mnt/my backup", "xfs", true)],
        );
        check(
            "/dev/a /data ext4 rw 0 0\n/dev/b /data xfs rw 0 0\nbroken line\n",
            &[("/dev/b", "/data", "xfs", false)],
        );
        check(
            "overlay / overlay rw 0 0\n",
            &[("overlay", "/", "overlay", false)],
        );
    }

    #[test]
    fn lists_the_root_file_system_with_sizes() {
        let list = list().expect("mount table readable");
        let root = list
            .iter()
            .find(|fs| fs.mountpoint == "/")
            .expect("/ is listed");
        assert!(root.size > 0 && root.free <= root.size);
    }
}
