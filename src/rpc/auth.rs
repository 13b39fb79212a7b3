//! Authentication of API packets (PROTOCOL.md §1, DESIGN.md §5): the admin
//! login and argon2 password, or secret keys limited to client networks;
//! constant-time comparisons; lock-out of addresses that keep failing; and a
//! cache of successful password checks so a client polling `get_status`
//! does not pay argon2 on every packet.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::code::{Code, RpcError};
use crate::config::{Api, ApiKey};
use crate::password::verify_password;
use crate::secret::Secret;

/// How long a successful password check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Most remembered checks; past it expired ones go, then all.
const CACHE_MAX: usize = 4096;
/// Window for counting failures and length of a lock-out.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most addresses tracked for failures before expired entries are pruned.
const FAILURES_MAX: usize = 65_536;

/// What a request presented.
pub enum Credentials {
    None,
    Password { login: String, password: Secret },
    Key(Secret),
}

pub struct Authenticator {
    admin_login_digest: [u8; 32],
    admin_hash: Option<String>,
    keys: Vec<ApiKey>,
    max_failures: usize,
    /// Random per process: remembered checks are keyed hashes, never passwords.
    cache_key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// argon2 runs on blocking threads, at most this many at once.
    argon2_slots: Semaphore,
}

#[derive(Default)]
struct Failures {
    recent: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Authenticator {
    pub fn new(api: &Api) -> Result<Arc<Self>, getrandom::Error> {
        let mut cache_key = [0u8; 32];
        getrandom::fill(&mut cache_key)?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Arc::new(Authenticator {
            admin_login_digest: Sha256::digest(api.admin_login.as_bytes()).into(),
            admin_hash: api.admin_password_hash.clone(),
            keys: api.keys.clone(),
            max_failures: api.max_failed_logins_per_minute as usize,
            cache_key,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            argon2_slots: Semaphore::new(cpus),
        }))
    }

    /// Checks a request's credentials from `client`; the error is the one
    /// the client receives.
    pub async fn authenticate(&self, creds: Credentials, client: IpAddr) -> Result<(), RpcError> {
        if self.is_locked(client) {
            return Err(RpcError::new(
                Code::Locked,
                "too many failed logins from this address; try again in a minute",
            ));
        }
        match creds {
            Credentials::None => Err(RpcError::new(
                Code::UnknownAuthMethod,
                "no credentials: send HTTP_AUTH_LOGIN and HTTP_AUTH_PASSWD, or KEY",
            )),
            Credentials::Key(key) => self.check_key(&key, client),
            Credentials::Password { login, password } => {
                if self.check_password(&login, &password).await {
                    Ok(())
                } else {
                    self.record_failure(client);
                    Err(RpcError::new(
                        Code::AuthFailed,
                        "authentication failed: wrong login or password",
                    ))
                }
            }
        }
    }

    fn check_key(&self, key: &Secret, client: IpAddr) -> Result<(), RpcError> {
        let digest: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        // Compare with every key, so the time taken says nothing about which matched.
        let mut found: Option<&ApiKey> = None;
        for k in &self.keys {
            if bool::from(k.key_sha256.ct_eq(&digest)) {
                found = Some(k);
            }
        }
        match found {
            None => {
                self.record_failure(client);
                Err(RpcError::new(
                    Code::KeyInvalid,
                    "secret key validation failed",
                ))
            }
            Some(k)
                if !k.allow_from.is_empty()
                    && !k.allow_from.iter().any(|n| n.contains(&client)) =>
            {
                Err(RpcError::new(
                    Code::AccessDenied,
                    format!("access denied: this key is not allowed from {client}"),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    async fn check_password(&self, login: &str, password: &Secret) -> bool {
        let login_digest: [u8; 32] = Sha256::digest(login.as_bytes()).into();
        let login_ok = bool::from(login_digest.ct_eq(&self.admin_login_digest));
        let Some(hash) = self.admin_hash.clone() else {
            return false;
        };
        let mark = self.cache_mark(login, password);
        if login_ok && self.remembered(&mark) {
            return true;
        }
        let Ok(_slot) = self.argon2_slots.acquire().await else {
            return false;
        };
        let candidate = password.clone();
        let verified =
            actix_web::rt::task::spawn_blocking(move || verify_password(&hash, candidate.expose()))
                .await
                .unwrap_or(false);
        if login_ok && verified {
            self.remember(mark);
        }
        login_ok && verified
    }

    fn cache_mark(&self, login: &str, password: &Secret) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key)
            .expect("HMAC accepts keys of any length");
        mac.update(login.as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, mark: &[u8; 32]) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(mark).is_some_and(|&at| at.elapsed() < CACHE_TTL)
    }

    fn remember(&self, mark: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, at| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(mark, Instant::now());
    }

    fn is_locked(&self, client: IpAddr) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = failures.get_mut(&client) else {
            return false;
        };
        match entry.locked_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                failures.remove(&client);
                false
            }
            None => false,
        }
    }

    fn record_failure(&self, client: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= FAILURES_MAX {
            failures.retain(|_, f| {
                f.locked_until.is_some_and(|u| now < u)
                    || f.recent
                        .back()
                        .is_some_and(|&t| now.duration_since(t) < FAILURE_WINDOW)
            });
        }
        let entry = failures.entry(client).or_default();
        while entry
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= FAILURE_WINDOW)
        {
            entry.recent.pop_front();
        }
        entry.recent.push_back(now);
        if entry.recent.len() >= self.max_failures {
            entry.locked_until = Some(now + FAILURE_WINDOW);
            entry.recent.clear();
            tracing::warn!(client = %client, "address locked out for a minute after repeated failed logins");
        }
    }
}
