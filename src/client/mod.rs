//! `hostmig` as the operator's client: it talks to a running daemon only
//! through the XML API (like every other client), and prints what it
//! answers for people, or as JSON (`--json`) for scripts.
//!
//! Exit status: 0 when what was asked succeeded, 1 when the migration or
//! the operation failed, 2 for bad usage, 3 when the daemon could not be
//! reached or refused the credentials.

pub mod cli;
pub mod commands;
pub mod http;
pub mod output;

use std::path::PathBuf;

use crate::rpc::xml::{self, Element};
use crate::secret::Secret;

/// Exit statuses.
pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
pub const UNREACHABLE: i32 = 3;

/// How to reach and log into the daemon.
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: url::Url,
    pub auth: Auth,
    pub trust: Option<http::Trust>,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Password { login: String, password: Secret },
    Key(Secret),
}

/// A failure, with the exit status it gives.
#[derive(Debug)]
pub struct Failure {
    pub status: i32,
    pub text: String,
}

impl Failure {
    pub fn new(status: i32, text: impl Into<String>) -> Self {
        Failure {
            status,
            text: text.into(),
        }
    }
}

/// What the client config file may hold (`$XDG_CONFIG_HOME/hostmig/client.toml`,
/// else `~/.config/hostmig/client.toml`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub url: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub key: Option<String>,
    pub ca: Option<PathBuf>,
    pub fingerprint: Option<String>,
}

/// The client config file's path.
pub fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hostmig").join("client.toml"))
}

/// Reads the client config file, if there is one; refused when it holds
/// a secret and group or others may read it.
pub fn read_config(path: &std::path::Path) -> Result<ClientFile, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientFile::default()),
        Err(e) => {
            return Err(Failure::new(
                USAGE,
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let file: ClientFile = toml::from_str(&text)
        .map_err(|e| Failure::new(USAGE, format!("{}: {}", path.display(), e.message())))?;
    if file.password.is_some() || file.key.is_some() {
        let mode = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
            .unwrap_or(0o777);
        if mode & 0o077 != 0 {
            return Err(Failure::new(
                USAGE,
                format!(
                    "{} holds a secret and is readable by group or others (mode {:o}); run chmod 600 {}",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
    }
    Ok(file)
}

impl Connection {
    /// Posts the operations (the inside of `<migration>`); answers the
    /// `migration` element of the answer, or the failure: a system error
    /// of authentication is UNREACHABLE (3), others FAILED.
    pub fn exchange(&self, operations: &str) -> Result<Element, Failure> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><packet version=\"1.6.3.0\"><migration>{operations}</migration></packet>"
        );
        let mut headers: Vec<(&str, &str)> = Vec::new();
        match &self.auth {
            Auth::Password { login, password } => {
                headers.push(("HTTP_AUTH_LOGIN", login));
                headers.push(("HTTP_AUTH_PASSWD", password.expose()));
            }
            Auth::Key(key) => headers.push(("KEY", key.expose())),
        }
        let (status, answer) =
            http::post(&self.url, self.trust.as_ref(), &headers, body.as_bytes())
                .map_err(|e| Failure::new(UNREACHABLE, e.to_string()))?;
        if status != 200 {
            return Err(Failure::new(
                UNREACHABLE,
                format!(
                    "{} answered HTTP {status}; is that hostmig's agent URL?",
                    self.url
                ),
            ));
        }
        let packet = xml::parse(&answer).map_err(|e| {
            Failure::new(
                UNREACHABLE,
                format!("{} answered something that is not a packet: {e}", self.url),
            )
        })?;
        if let Some(system) = child(&packet, "system") {
            let code = text_of(system, "errcode").unwrap_or_default();
            let text = text_of(system, "errtext").unwrap_or_default();
            let status = match code.as_str() {
                "1001" | "1010" | "1012" | "1029" | "11003" => UNREACHABLE,
                _ => FAILED,
            };
            return Err(Failure::new(
                status,
                format!("the daemon refused the request ({code}): {text}"),
            ));
        }
        child(&packet, "migration")
            .cloned()
            .ok_or_else(|| Failure::new(FAILED, "the answer has no migration element"))
    }

    /// One operation; answers its `result` when its status is ok, else
    /// the error as a failure (FAILED).
    pub fn call(&self, operation: &str, name: &str) -> Result<Element, Failure> {
        let migration = self.exchange(operation)?;
        let result = child(&migration, name)
            .and_then(|op| child(op, "result"))
            .ok_or_else(|| Failure::new(FAILED, format!("the answer has no {name} result")))?;
        if text_of(result, "status").as_deref() == Some("ok") {
            return Ok(result.clone());
        }
        let code = text_of(result, "errcode").unwrap_or_default();
        let text = text_of(result, "errtext").unwrap_or_default();
        Err(Failure::new(
            FAILED,
            format!("{name} failed ({code}): {text}"),
        ))
    }
}

pub fn child<'a>(el: &'a Element, name: &str) -> Option<&'a Element> {
    el.children.iter().find(|c| c.name == name)
}

pub fn children<'a>(el: &'a Element, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
    el.children.iter().filter(move |c| c.name == name)
}

pub fn text_of(el: &Element, name: &str) -> Option<String> {
    child(el, name).map(|c| c.text.clone())
}

/// Text escaped for XML element content.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
