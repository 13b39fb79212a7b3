//! `[metrics]` (who may read `/metrics` without a key) and `[[notify]]`
//! (who is told when a migration ends, an object fails or a copy stalls).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::{absolute_path, bad, parse_net, Checked};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub allow_from: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub url: Option<String>,
    pub command: Option<String>,
    pub events: Option<Vec<String>>,
    /// PEM file of the CAs an https:// receiver is trusted by.
    pub ca: Option<String>,
    pub timeout_s: Option<i64>,
    pub retries: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Networks that read `/metrics` without a key; empty: key only.
    pub allow_from: Vec<IpNet>,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A migration ended (success, failed or stopped).
    Finished,
    /// An object (client, domain, database) was not migrated.
    ObjectFailed,
    /// A copy stalled: its source sent nothing for `migrations.stall_s`.
    Stalled,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] = [
        NotifyEvent::Finished,
        NotifyEvent::ObjectFailed,
        NotifyEvent::Stalled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Finished => "finished",
            NotifyEvent::ObjectFailed => "object_failed",
            NotifyEvent::Stalled => "stalled",
        }
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    /// Receives a JSON POST.
    Url { url: url::Url, ca: PathBuf },
    /// Run with the JSON on its standard input.
    Command(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Notify {
    pub receiver: Receiver,
    pub events: Vec<NotifyEvent>,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// Deliveries tried again after the first failed.
    pub retries: u32,
}

/// The system's CA bundle (Debian's ca-certificates).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

pub(super) fn metrics(raw: Option<RawMetrics>) -> Checked<Metrics> {
    let mut allow_from = Vec::new();
    for (i, net) in raw
        .and_then(|m| m.allow_from)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        allow_from.push(parse_net(net).ok_or_else(|| {
            (
                format!("metrics.allow_from[{i}]"),
                "must be an address or a network like 127.0.0.0/8".to_owned(),
            )
        })?);
    }
    Ok(Metrics { allow_from })
}

pub(super) fn notify(raw: Vec<RawNotify>) -> Checked<Vec<Notify>> {
    let mut all = Vec::new();
    for (i, n) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("notify[{i}].{k}");
        let receiver = match (n.url, n.command) {
            (Some(u), None) => {
                let url = url::Url::parse(&u)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .ok_or_else(|| {
                        (
                            key("url"),
                            "must be an http:// or https:// URL with a host".to_owned(),
                        )
                    })?;
                if !url.username().is_empty() || url.password().is_some() {
                    return bad(
                        &key("url"),
                        "must not carry a login (notifications never carry secrets); put a token in its path instead",
                    );
                }
                let ca = match n.ca {
                    Some(p) => absolute_path(&key("ca"), &p)?,
                    None => PathBuf::from(SYSTEM_CAS),
                };
                Receiver::Url { url, ca }
            }
            (None, Some(c)) => {
                if n.ca.is_some() {
                    return bad(&key("ca"), "is for a url; a command has no certificate");
                }
                Receiver::Command(absolute_path(&key("command"), &c)?)
            }
            (Some(_), Some(_)) => return bad(&key("url"), "give a url or a command, not both"),
            (None, None) => {
                return bad(
                    &key("url"),
                    "is missing: give a url (JSON POST) or a command (JSON on stdin)",
                )
            }
        };
        let names = n.events.unwrap_or_else(|| {
            NotifyEvent::ALL
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect()
        });
        let mut events = Vec::new();
        for (j, name) in names.iter().enumerate() {
            let Some(e) = NotifyEvent::ALL.into_iter().find(|e| e.as_str() == name) else {
                return bad(
                    &format!("notify[{i}].events[{j}]"),
                    "must be one of finished, object_failed, stalled",
                );
            };
            if !events.contains(&e) {
                events.push(e);
            }
        }
        if events.is_empty() {
            return bad(
                &key("events"),
                "names no event: list finished, object_failed or stalled, or leave it out for all",
            );
        }
        let timeout_s = n.timeout_s.unwrap_or(10);
        if !(1..=300).contains(&timeout_s) {
            return bad(
                &key("timeout_s"),
                "must be a number of seconds from 1 to 300",
            );
        }
        let retries = n.retries.unwrap_or(3);
        if !(0..=20).contains(&retries) {
            return bad(&key("retries"), "must be a number of tries from 0 to 20");
        }
        all.push(Notify {
            receiver,
            events,
            timeout: Duration::from_secs(timeout_s as u64),
            retries: retries as u32,
        });
    }
    Ok(all)
}
