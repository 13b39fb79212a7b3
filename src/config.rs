//! The configuration file (CONFIG.md): parsed and validated as a whole at
//! start. Every error names the key; no error ever echoes a value, since
//! values hold passwords.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::db::DbKind;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub api: Api,
    pub state: State,
    pub destination: Option<Destination>,
    pub migrations: Migrations,
    pub ssh: Ssh,
    pub sources: Vec<Source>,
    pub metrics: Metrics,
    pub notify: Vec<Notify>,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub listen: Vec<SocketAddr>,
    pub listen_http: Vec<SocketAddr>,
    pub tls: Option<TlsFiles>,
    pub admin_login: String,
    pub admin_password_hash: Option<String>,
    pub max_packet_bytes: usize,
    pub max_failed_logins_per_minute: u32,
    pub keys: Vec<ApiKey>,
    /// HTTP workers in the real-time class within a CPU budget
    /// (`priority::realtime_worker`).
    pub realtime: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key_sha256: [u8; 32],
    /// Empty: any client address.
    pub allow_from: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct State {
    pub dir: PathBuf,
}

#[derive(Clone)]
pub struct Destination {
    pub panel_db: Option<url::Url>,
    pub vhosts_root: PathBuf,
    pub mailnames_root: PathBuf,
    pub dump_dir: PathBuf,
    pub fallback_owner: String,
    pub db_servers: Vec<DbServer>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("panel_db", &self.panel_db.as_ref().map(|_| "<set>"))
            .field("vhosts_root", &self.vhosts_root)
            .field("mailnames_root", &self.mailnames_root)
            .field("dump_dir", &self.dump_dir)
            .field("fallback_owner", &self.fallback_owner)
            .field("db_servers", &self.db_servers)
            .finish()
    }
}

#[derive(Clone)]
pub struct DbServer {
    pub host: String,
    pub port: u16,
    pub kind: DbKind,
    pub url: url::Url,
    pub default: bool,
}

impl std::fmt::Debug for DbServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("kind", &self.kind)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl DbServer {
    /// `host:port` as DatabaseServers and mappings write it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// How hostmig connects to it.
    pub fn opts(&self) -> Result<mysql_async::Opts, String> {
        mysql_async::Opts::from_url(self.url.as_str()).map_err(|e| {
            format!(
                "the url of database server {} is not a MySQL URL: {e}",
                self.label()
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct Migrations {
    pub max_parallel: usize,
    /// Cap on payload bytes per second read from all sources together.
    pub max_bytes_per_s: Option<u64>,
    /// How an object's work is tried again after a transient fault.
    pub retry: crate::retry::RetryPolicy,
    /// No payload and no answer to keepalives this long: stalled.
    pub stall: std::time::Duration,
    /// Percent of each file system a start must leave free.
    pub disk_reserve_percent: u32,
    /// Compression of content streams and of database connections.
    pub content_compression: crate::transfer::link::ContentCompression,
    pub db_compression: crate::transfer::link::DbCompression,
}

#[derive(Debug, Clone)]
pub struct Ssh {
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub identity: Option<PathBuf>,
    pub connect_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
}

#[derive(Clone)]
pub struct Source {
    pub host: String,
    pub psa_conf: Option<PathBuf>,
    pub psa_shadow: Option<PathBuf>,
    pub panel_db: Option<url::Url>,
    /// This source's own cap on payload bytes per second.
    pub max_bytes_per_s: Option<u64>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("psa_conf", &self.psa_conf)
            .field("psa_shadow", &self.psa_shadow)
            .field("max_bytes_per_s", &self.max_bytes_per_s)
            .finish_non_exhaustive()
    }
}

/// The file as written; `Config` is what validation makes of it.
mod migrations;
mod observe;
pub use observe::{Metrics, Notify, NotifyEvent, Receiver};

pub(super) mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub api: Api,
        pub state: State,
        pub destination: Option<Destination>,
        #[serde(default)]
        pub migrations: Migrations,
        #[serde(default)]
        pub ssh: Ssh,
        #[serde(default)]
        pub sources: Vec<Source>,
        pub metrics: Option<super::observe::RawMetrics>,
        #[serde(default)]
        pub notify: Vec<super::observe::RawNotify>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Api {
        pub listen: Option<Vec<String>>,
        #[serde(default)]
        pub listen_http: Vec<String>,
        pub tls_cert: Option<String>,
        pub tls_key: Option<String>,
        pub admin_login: Option<String>,
        pub admin_password_hash: Option<String>,
        pub max_packet_bytes: Option<u64>,
        pub max_failed_logins_per_minute: Option<u32>,
        #[serde(default)]
        pub keys: Vec<Key>,
        pub realtime: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Key {
        pub key_sha256: String,
        pub allow_from: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct State {
        pub dir: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Destination {
        pub panel_db: Option<String>,
        pub vhosts_root: Option<String>,
        pub mailnames_root: Option<String>,
        pub dump_dir: Option<String>,
        pub fallback_owner: Option<String>,
        #[serde(default)]
        pub db_servers: Vec<DbServer>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DbServer {
        pub host: String,
        pub port: i64,
        #[serde(rename = "type")]
        pub kind: crate::db::DbKind,
        pub url: String,
        #[serde(default)]
        pub default: bool,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Migrations {
        pub max_parallel: Option<i64>,
        pub max_bytes_per_s: Option<i64>,
        pub retry_attempts: Option<i64>,
        pub retry_first_delay_s: Option<i64>,
        pub retry_max_delay_s: Option<i64>,
        pub stall_s: Option<i64>,
        pub disk_reserve_percent: Option<i64>,
        pub content_compression: Option<String>,
        pub db_compression: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Ssh {
        pub known_hosts: Option<String>,
        pub host_key_policy: Option<super::HostKeyPolicy>,
        pub identity: Option<String>,
        pub connect_timeout_s: Option<i64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Source {
        pub host: String,
        pub psa_conf: Option<String>,
        pub psa_shadow: Option<String>,
        pub panel_db: Option<String>,
        pub max_bytes_per_s: Option<i64>,
    }
}

pub const DEFAULT_HTTPS_LISTEN: &str = "0.0.0.0:8443";
pub const DEFAULT_MAX_PACKET_BYTES: usize = 1024 * 1024;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        })
    }

    /// Parses and validates a whole file; an error is `(key, message)`.
    pub fn parse(text: &str) -> Result<Config, (String, String)> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            (
                "(file)".to_owned(),
                format!("not valid TOML ({})", line_of(text, e.span())),
            )
        })?;
        let file: raw::File = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = describe(inner.message());
            // serde names a missing field in the message, not in the path.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next());
            let key = match (key.as_str(), missing) {
                (".", Some(field)) => field.to_owned(),
                (".", None) => "(file)".to_owned(),
                (_, Some(field)) => format!("{key}.{field}"),
                (_, None) => key,
            };
            (key, format!("{message} ({})", line_of(text, inner.span())))
        })?;
        validate(file)
    }
}

/// serde's messages name fields and types, never values; keep them short.
fn describe(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let at = span.start.min(text.len());
            let line = text.as_bytes()[..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!("line {line}")
        }
        None => "position unknown".to_owned(),
    }
}

pub(super) type Checked<T> = Result<T, (String, String)>;

pub(super) fn bad<T>(key: &str, message: impl Into<String>) -> Checked<T> {
    Err((key.to_owned(), message.into()))
}

fn validate(file: raw::File) -> Checked<Config> {
    let state_dir = absolute_path("state.dir", &file.state.dir)?;
    let api = validate_api(file.api)?;
    let destination = file
        .destination
        .map(|d| validate_destination(d, &state_dir))
        .transpose()?;

    let max_parallel = file.migrations.max_parallel.unwrap_or(4);
    if !(1..=64).contains(&max_parallel) {
        return bad("migrations.max_parallel", "must be a number from 1 to 64");
    }

    let max_bytes_per_s = bytes_per_s(
        "migrations.max_bytes_per_s",
        file.migrations.max_bytes_per_s,
    )?;
    let retry = migrations::retry_policy(&file.migrations)?;
    let stall = migrations::stall(&file.migrations)?;
    let disk_reserve_percent = migrations::disk_reserve_percent(&file.migrations)?;
    let (content_compression, db_compression) = migrations::compression(&file.migrations)?;

    let ssh = file.ssh;
    let known_hosts = match ssh.known_hosts {
        Some(p) => absolute_path("ssh.known_hosts", &p)?,
        None => state_dir.join("known_hosts"),
    };
    let identity = ssh
        .identity
        .map(|p| absolute_path("ssh.identity", &p))
        .transpose()?;
    let connect_timeout_s = ssh.connect_timeout_s.unwrap_or(15);
    if !(1..=600).contains(&connect_timeout_s) {
        return bad(
            "ssh.connect_timeout_s",
            "must be a number of seconds from 1 to 600",
        );
    }

    let metrics = observe::metrics(file.metrics)?;
    let notify = observe::notify(file.notify)?;

    let mut sources = Vec::new();
    for (i, s) in file.sources.into_iter().enumerate() {
        let key = |k: &str| format!("sources[{i}].{k}");
        let host = s.host.trim().to_owned();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return bad(
                &key("host"),
                "must be a host or host:port as packets write it",
            );
        }
        // `h` and `h:22` are one host.
        let same = crate::caps::host_key(&host);
        if sources
            .iter()
            .any(|o: &Source| crate::caps::host_key(&o.host) == same)
        {
            return bad(
                &key("host"),
                "names the same host as an earlier [[sources]] entry",
            );
        }
        sources.push(Source {
            psa_conf: s
                .psa_conf
                .map(|p| absolute_path(&key("psa_conf"), &p))
                .transpose()?,
            psa_shadow: s
                .psa_shadow
                .map(|p| absolute_path(&key("psa_shadow"), &p))
                .transpose()?,
            panel_db: s
                .panel_db
                .map(|u| mysql_url(&key("panel_db"), &u))
                .transpose()?,
            max_bytes_per_s: bytes_per_s(&key("max_bytes_per_s"), s.max_bytes_per_s)?,
            host,
        });
    }

    Ok(Config {
        api,
        state: State { dir: state_dir },
        destination,
        migrations: Migrations {
            max_parallel: max_parallel as usize,
            max_bytes_per_s,
            retry,
            stall,
            disk_reserve_percent,
            content_compression,
            db_compression,
        },
        ssh: Ssh {
            known_hosts,
            host_key_policy: ssh.host_key_policy.unwrap_or(HostKeyPolicy::Strict),
            identity,
            connect_timeout_s: connect_timeout_s as u64,
        },
        sources,
        metrics,
        notify,
    })
}

/// A cap: absent or 0 means none.
fn bytes_per_s(key: &str, value: Option<i64>) -> Checked<Option<u64>> {
    match value {
        None | Some(0) => Ok(None),
        Some(v) if v >= crate::caps::MIN_BYTES_PER_S as i64 => Ok(Some(v as u64)),
        Some(_) => bad(
            key,
            format!(
                "must be 0 (no cap) or a number of bytes per second of at least {}",
                crate::caps::MIN_BYTES_PER_S
            ),
        ),
    }
}

fn validate_api(api: raw::Api) -> Checked<Api> {
    let listen = listeners(
        "api.listen",
        api.listen
            .unwrap_or_else(|| vec![DEFAULT_HTTPS_LISTEN.to_owned()]),
    )?;
    let listen_http = listeners("api.listen_http", api.listen_http)?;
    if listen.is_empty() && listen_http.is_empty() {
        return bad(
            "api.listen",
            "no listener configured: give api.listen or api.listen_http",
        );
    }
    let tls = match (api.tls_cert, api.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: absolute_path("api.tls_cert", &cert)?,
            key: absolute_path("api.tls_key", &key)?,
        }),
        (None, None) => None,
        (Some(_), None) => return bad("api.tls_key", "is required when api.tls_cert is set"),
        (None, Some(_)) => return bad("api.tls_cert", "is required when api.tls_key is set"),
    };
    let admin_login = api.admin_login.unwrap_or_else(|| "admin".to_owned());
    if admin_login.is_empty() || admin_login.contains(char::is_whitespace) {
        return bad("api.admin_login", "must be a login without spaces");
    }
    if let Some(hash) = &api.admin_password_hash {
        crate::password::check_password_hash(hash).map_err(|message| {
            (
                "api.admin_password_hash".to_owned(),
                format!("{message}; make one with `hostmig hash-password`"),
            )
        })?;
    }
    let max_packet_bytes = api
        .max_packet_bytes
        .unwrap_or(DEFAULT_MAX_PACKET_BYTES as u64);
    if !(4096..=64 * 1024 * 1024).contains(&max_packet_bytes) {
        return bad(
            "api.max_packet_bytes",
            "must be from 4096 to 67108864 bytes",
        );
    }
    let max_failed = api.max_failed_logins_per_minute.unwrap_or(5);
    if max_failed == 0 {
        return bad("api.max_failed_logins_per_minute", "must be at least 1");
    }
    let mut keys = Vec::new();
    for (i, k) in api.keys.into_iter().enumerate() {
        let key_sha256 = parse_sha256(&k.key_sha256).ok_or_else(|| {
            (
                format!("api.keys[{i}].key_sha256"),
                "must be 64 hexadecimal digits (sha256 of the key)".to_owned(),
            )
        })?;
        let mut allow_from = Vec::new();
        for (j, net) in k.allow_from.unwrap_or_default().iter().enumerate() {
            allow_from.push(parse_net(net).ok_or_else(|| {
                (
                    format!("api.keys[{i}].allow_from[{j}]"),
                    "must be an address or a network like 127.0.0.0/8".to_owned(),
                )
            })?);
        }
        keys.push(ApiKey {
            key_sha256,
            allow_from,
        });
    }
    if api.admin_password_hash.is_none() && keys.is_empty() {
        return bad(
            "api.admin_password_hash",
            "no credentials configured: set api.admin_password_hash (see `hostmig hash-password`) or add [[api.keys]]",
        );
    }
    Ok(Api {
        listen,
        listen_http,
        tls,
        admin_login,
        admin_password_hash: api.admin_password_hash,
        max_packet_bytes: max_packet_bytes as usize,
        max_failed_logins_per_minute: max_failed,
        keys,
        realtime: api.realtime.unwrap_or(true),
    })
}

fn validate_destination(d: raw::Destination, state_dir: &Path) -> Checked<Destination> {
    let panel_db = d
        .panel_db
        .map(|u| mysql_url("destination.panel_db", &u))
        .transpose()?;
    let vhosts_root = absolute_path(
        "destination.vhosts_root",
        d.vhosts_root.as_deref().unwrap_or("/var/www/vhosts"),
    )?;
    let mailnames_root = absolute_path(
        "destination.mailnames_root",
        d.mailnames_root
            .as_deref()
            .unwrap_or("/var/qmail/mailnames"),
    )?;
    let dump_dir = match d.dump_dir {
        Some(p) => absolute_path("destination.dump_dir", &p)?,
        None => state_dir.join("dumps"),
    };
    let fallback_owner = d.fallback_owner.unwrap_or_else(|| "root:root".to_owned());
    let owner_ok = fallback_owner
        .split_once(':')
        .is_some_and(|(u, g)| is_account_name(u) && is_account_name(g));
    if !owner_ok {
        return bad("destination.fallback_owner", "must be user:group");
    }
    let mut db_servers: Vec<DbServer> = Vec::new();
    for (i, s) in d.db_servers.into_iter().enumerate() {
        let key = |k: &str| format!("destination.db_servers[{i}].{k}");
        if s.host.is_empty() || s.host.contains(char::is_whitespace) {
            return bad(
                &key("host"),
                "must be a host name as DatabaseServers writes it",
            );
        }
        if !(1..=65535).contains(&s.port) {
            return bad(&key("port"), "must be a port from 1 to 65535");
        }
        let port = s.port as u16;
        if db_servers
            .iter()
            .any(|o| o.host == s.host && o.port == port)
        {
            return bad(&key("host"), "the same host and port are listed twice");
        }
        if s.default && db_servers.iter().any(|o| o.default && o.kind == s.kind) {
            return bad(
                &key("default"),
                "another server of this type is already the default",
            );
        }
        let url = match s.kind {
            DbKind::Mysql => mysql_url(&key("url"), &s.url)?,
            _ => url::Url::parse(&s.url).map_err(|_| (key("url"), "must be a URL".to_owned()))?,
        };
        db_servers.push(DbServer {
            host: s.host,
            port,
            kind: s.kind,
            url,
            default: s.default,
        });
    }
    Ok(Destination {
        panel_db,
        vhosts_root,
        mailnames_root,
        dump_dir,
        fallback_owner,
        db_servers,
    })
}

fn listeners(key: &str, list: Vec<String>) -> Checked<Vec<SocketAddr>> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<SocketAddr>().map_err(|_| {
                (
                    format!("{key}[{i}]"),
                    "must be address:port, like 127.0.0.1:8443 or [::1]:8443".to_owned(),
                )
            })
        })
        .collect()
}

fn absolute_path(key: &str, value: &str) -> Checked<PathBuf> {
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return bad(key, "must be an absolute path");
    }
    Ok(path)
}

/// A `mysql://` URL; the message never repeats the URL, which holds a password.
fn mysql_url(key: &str, value: &str) -> Checked<url::Url> {
    let url = url::Url::parse(value).map_err(|_| {
        (
            key.to_owned(),
            "must be a URL like mysql://user:password@host:port/db".to_owned(),
        )
    })?;
    if url.scheme() != "mysql" {
        return bad(key, "must be a mysql:// URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad(key, "must name a host");
    }
    Ok(url)
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn is_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests;
