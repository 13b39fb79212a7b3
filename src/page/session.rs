//! The status page's sessions: a random token in an HttpOnly,
//! SameSite=Strict cookie (Secure on HTTPS), held in memory by its SHA-256
//! (a restart logs everyone out), with a CSRF token of its own that every
//! form which changes something must carry. A session ends after
//! [`IDLE`] without a request, after [`LIFETIME`] in any case, or at logout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A session unused this long ends (the page's polling keeps it in use).
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its login, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; past it the least recently used ends.
const MAX: usize = 1024;

pub const COOKIE: &str = "hostmig_session";
/// The login form's own token (a cookie and a form field that must agree).
pub const LOGIN_COOKIE: &str = "hostmig_login";

struct Session {
    csrf: String,
    created: Instant,
    seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A random token, URL-safe.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: a token nobody can guess cannot be made, so the
        // caller gets one that never matches a session (empty).
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two tokens agree, in constant time; an empty one never does.
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// A new session: its cookie token and its CSRF token.
    pub fn create(&self) -> Option<(String, String)> {
        let (cookie, csrf) = (token(), token());
        if cookie.is_empty() || csrf.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&cookie),
            Session {
                csrf: csrf.clone(),
                created: now,
                seen: now,
            },
        );
        Some((cookie, csrf))
    }

    /// The CSRF token of the session of this cookie token, if it is alive
    /// (and it is used now).
    pub fn check(&self, cookie: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(cookie);
        match map.get_mut(&key) {
            Some(s) if alive(s, now) => {
                s.seen = now;
                Some(s.csrf.clone())
            }
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of this cookie token.
    pub fn end(&self, cookie: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&digest(cookie));
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.seen) < IDLE && now.duration_since(s.created) < LIFETIME
}

/// A cookie's value from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure on HTTPS;
/// `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_its_csrf_token_until_it_ends() {
        let s = Sessions::default();
        let (cookie, csrf) = s.create().expect("session");
        assert_ne!(cookie, csrf);
        assert_eq!(s.check(&cookie).as_deref(), Some(csrf.as_str()));
        assert!(s.check("forged").is_none());
        s.end(&cookie);
        assert!(s.check(&cookie).is_none());
        assert!(same(&csrf, &csrf.clone()));
        assert!(!same("", ""));
        assert!(!same(&csrf, "other"));
        let set = set_cookie(COOKIE, &cookie, LIFETIME, true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure")
        );
    }
}
