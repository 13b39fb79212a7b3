//! Notifications (`[[notify]]`, CONFIG.md): each entry has a thread of its
//! own and a queue of at most [`QUEUE`] notices. A notice is handed over
//! with `try_send`, so a migration never waits on a receiver, however slow;
//! a full queue drops the notice (counted and logged). One delivery has the
//! entry's `timeout_s`; a failed one is tried again `retries` times, after
//! 1, 2, 4 ... (at most 30) seconds. A URL receives a JSON POST; a command
//! runs with the JSON on its standard input and a bare environment.
//! Receivers are logged by their origin only: a URL's path may hold a token.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver as Queue, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::metrics::metrics;
use crate::config::{Config, Notify, NotifyEvent, Receiver};

/// Notices waiting for one entry's thread, at most.
const QUEUE: usize = 256;
/// The longest wait between tries of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Entry {
    events: Vec<NotifyEvent>,
    queue: SyncSender<Arc<Value>>,
    shown: String,
}

static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();

/// Starts one delivery thread per `[[notify]]` entry (once per process).
pub fn start(config: &Config) {
    let _ = ENTRIES.set(
        config
            .notify
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let (tx, rx) = sync_channel(QUEUE);
                let shown = shown(&n.receiver);
                let entry = n.clone();
                std::thread::Builder::new()
                    .name(format!("notify-{i}"))
                    .spawn(move || deliver_all(&entry, &rx))
                    .map_err(|e| tracing::error!(receiver = %shown, error = %e, "cannot start the notification thread"))
                    .ok()?;
                Some(Entry {
                    events: n.events.clone(),
                    queue: tx,
                    shown,
                })
            })
            .collect(),
    );
}

/// Hands `body` to every entry that wants `event`; never waits.
pub fn emit(event: NotifyEvent, body: Value) {
    let Some(entries) = ENTRIES.get() else {
        return;
    };
    let body = Arc::new(body);
    for entry in entries.iter().filter(|e| e.events.contains(&event)) {
        match entry.queue.try_send(body.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics()
                    .notifications
                    .get_or_create(&[("result", "dropped")])
                    .inc();
                tracing::warn!(receiver = %entry.shown, event = event.as_str(), "a notification was dropped: {QUEUE} wait for this receiver already");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A receiver as logs show it: a URL's origin, a command's path.
fn shown(receiver: &Receiver) -> String {
    match receiver {
        Receiver::Url { url, .. } => url.origin().ascii_serialization(),
        Receiver::Command(path) => path.display().to_string(),
    }
}

fn deliver_all(entry: &Notify, queue: &Queue<Arc<Value>>) {
    let shown = shown(&entry.receiver);
    for body in queue {
        let text = body.to_string();
        let event = body["event"].as_str().unwrap_or("").to_owned();
        let mut tries = 0u32;
        loop {
            let result = deliver(entry, &text, &event);
            match result {
                Ok(()) => {
                    metrics()
                        .notifications
                        .get_or_create(&[("result", "delivered")])
                        .inc();
                    tracing::debug!(receiver = %shown, %event, "notification delivered");
                    break;
                }
                Err(why) if tries < entry.retries => {
                    let wait = Duration::from_secs(1u64 << tries.min(5)).min(MAX_BACKOFF);
                    tries += 1;
                    tracing::info!(receiver = %shown, %event, error = %why, try_again_s = wait.as_secs(), "a notification was not delivered; trying again");
                    std::thread::sleep(wait);
                }
                Err(why) => {
                    metrics()
                        .notifications
                        .get_or_create(&[("result", "failed")])
                        .inc();
                    tracing::warn!(receiver = %shown, %event, error = %why, tries = tries + 1, "a notification could not be delivered; it is given up");
                    break;
                }
            }
        }
    }
}

/// One delivery within the entry's timeout.
fn deliver(entry: &Notify, text: &str, event: &str) -> Result<(), String> {
    match &entry.receiver {
        Receiver::Url { url, ca } => {
            let trust = crate::client::http::Trust::Ca(ca.clone());
            let (status, _) = crate::client::http::post_as(
                url,
                Some(&trust),
                "application/json",
                &[],
                text.as_bytes(),
                entry.timeout,
            )
            // The URL's path may hold a token: errors name its origin only.
            .map_err(|e| {
                e.to_string()
                    .replace(url.as_str(), &url.origin().ascii_serialization())
            })?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("the receiver answered HTTP {status}"))
            }
        }
        Receiver::Command(path) => run(path, text, event, entry.timeout),
    }
}

/// Runs the command with `text` on its standard input; killed after `timeout`.
fn run(path: &std::path::Path, text: &str, event: &str, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new(path)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOSTMIG_EVENT", event)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is its own business.
        let _ = stdin.write_all(text.as_bytes());
    }
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("it ended with {status}")),
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not end within {} s; it was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
