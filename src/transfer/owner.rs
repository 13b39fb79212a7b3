//! Owners of migrated trees on the destination (PANEL.md): the system
//! user of the domain's `sys_users.login` when the destination has one,
//! the mail user (`popuser`) for mail trees, else `destination.fallback_owner`.

use std::ffi::CString;

/// The mail user of a Plesk server.
pub const MAIL_USER: &str = "popuser";

/// A user's uid and primary gid, when this system has the user.
pub fn user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid C string, buffer and out pointers, as getpwnam_r wants.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// A group's gid, when this system has the group.
pub fn group(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero group is a valid value to be filled in.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid C string, buffer and out pointers, as getgrnam_r wants.
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// `user:group` (or `user`, its primary group) as ids; numeric ids too.
pub fn spec(text: &str) -> Result<(u32, u32), String> {
    let (u, g) = text
        .split_once(':')
        .map_or((text, None), |(u, g)| (u, Some(g)));
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => user(u).ok_or_else(|| {
            format!("destination.fallback_owner names the user \"{u}\", which this system does not have")
        })?,
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group(g).ok_or_else(|| {
                format!("destination.fallback_owner names the group \"{g}\", which this system does not have")
            })?,
        },
    };
    Ok((uid, gid))
}

/// The owner of a tree: `preferred` when this system has that user, else
/// the fallback.
pub fn for_tree(preferred: Option<&str>, fallback: &str) -> Result<(u32, u32), String> {
    match preferred.and_then(user) {
        Some(ids) => Ok(ids),
        None => spec(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_and_strangers_do_not() {
        assert_eq!(user("root"), Some((0, 0)));
        assert_eq!(group("root"), Some(0));
        assert_eq!(spec("root:root"), Ok((0, 0)));
        assert_eq!(spec("0:5"), Ok((0, 5)));
        assert_eq!(user("hostmig-no-such-user"), None);
        assert!(spec("hostmig-no-such-user:root")
            .unwrap_err()
            .contains("does not have"));
        assert_eq!(
            for_tree(Some("hostmig-no-such-user"), "root:root"),
            Ok((0, 0))
        );
    }
}
