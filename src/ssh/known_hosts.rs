//! hostmig's known_hosts: OpenSSH's plain format (`host key-type base64`,
//! `[host]:port` for ports other than 22), read and appended by hostmig
//! alone. Pure parsing and matching; the file I/O is the caller's.

use base64::Engine;
use sha2::{Digest, Sha256};

/// What the file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The file holds this very key for the host.
    Known,
    /// The host is not in the file.
    Unknown,
    /// The file holds other keys for the host: their fingerprints.
    Changed { expected: Vec<String> },
}

/// The name a host has in the file: `host`, or `[host]:port` off port 22.
pub fn host_entry(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's fingerprint of a raw key blob: `SHA256:` and unpadded base64.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Checks `key` (raw blob) for `entry` against the file's text.
pub fn check(text: &str, entry: &str, key: &[u8]) -> Verdict {
    let mut expected = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts.split(',').any(|h| h == entry) {
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(blob) {
            Ok(known) if known == key => return Verdict::Known,
            Ok(known) => expected.push(fingerprint(&known)),
            Err(_) => continue,
        }
    }
    if expected.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Changed { expected }
    }
}

/// The line that records `key` (of OpenSSH type `kind`) for `entry`.
pub fn line(entry: &str, kind: &str, key: &[u8]) -> String {
    format!(
        "{entry} {kind} {}\n",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let a = b"key-a".as_slice();
        let b = b"key-b".as_slice();
        let text = format!(
            "# comment\n{}{}\nbroken\n{}",
            line("[127.0.0.1]:2222", "ssh-ed25519", a),
            "192.0.2.1,src.example ssh-rsa !!!notbase64",
            line("src.example", "ssh-ed25519", a)
        );
        assert_eq!(check(&text, "[127.0.0.1]:2222", a), Verdict::Known);
        assert_eq!(check(&text, "src.example", a), Verdict::Known);
        assert_eq!(check(&text, "127.0.0.1", a), Verdict::Unknown);
        assert_eq!(check(&text, "[127.0.0.1]:2223", a), Verdict::Unknown);
        assert_eq!(
            check(&text, "[127.0.0.1]:2222", b),
            Verdict::Changed {
                expected: vec![fingerprint(a)]
            }
        );
        assert_eq!(host_entry("h", 22), "h");
        assert_eq!(host_entry("h", 2222), "[h]:2222");
        assert!(fingerprint(a).starts_with("SHA256:") && !fingerprint(a).ends_with('='));
    }
}
