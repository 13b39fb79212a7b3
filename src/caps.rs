//! Bandwidth caps (CONFIG.md: `migrations.max_bytes_per_s` across all
//! migrations, `[[sources]] max_bytes_per_s` per source host): token
//! buckets that every read of payload from a source (content streams,
//! rows through the database tunnel) takes from before it reads.
//!
//! A bucket holds at most a twentieth of a second of its rate and a read
//! may take no more than the bucket holds; a read is counted when it
//! returns. So over any window of T seconds a cap of R bytes/s counts at
//! most R·T + (1 + n)·R/20 bytes, n being the reads under way at the
//! window's start: within 5 % over 10 s for up to nine readers at once,
//! within 1.5 % for the two or three of a typical migration. Readers that wait sleep on their own (blocking) threads; the
//! engine's actors never wait here. Caps are read from the configuration
//! at start: changing one needs a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ssh::Target;

/// A configured cap, as the status names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cap {
    /// `migrations.max_bytes_per_s`.
    Global { bytes_per_s: u64 },
    /// `[[sources]] max_bytes_per_s` of this host.
    Source { host: String, bytes_per_s: u64 },
}

impl Cap {
    /// "the cap of 2.0 MiB/s on all sources (migrations.max_bytes_per_s)".
    pub fn describe(&self) -> String {
        match self {
            Cap::Global { bytes_per_s } => format!(
                "the cap of {} on all sources (migrations.max_bytes_per_s)",
                rate(*bytes_per_s)
            ),
            Cap::Source { host, bytes_per_s } => format!(
                "the cap of {} on source {host} ([[sources]] max_bytes_per_s)",
                rate(*bytes_per_s)
            ),
        }
    }
}

/// "1.0 MiB/s", "64.0 KiB/s", "1000 B/s".
fn rate(bytes_per_s: u64) -> String {
    let b = bytes_per_s as f64;
    if bytes_per_s >= 1 << 20 {
        format!("{:.1} MiB/s", b / (1u64 << 20) as f64)
    } else if bytes_per_s >= 1 << 10 {
        format!("{:.1} KiB/s", b / 1024.0)
    } else {
        format!("{bytes_per_s} B/s")
    }
}

/// The lowest cap accepted: below it a twentieth of a second of budget
/// is smaller than a useful read.
pub const MIN_BYTES_PER_S: u64 = 1024;

struct Bucket {
    cap: Cap,
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(cap: Cap, bytes_per_s: u64) -> Arc<Bucket> {
        let rate = bytes_per_s as f64;
        let capacity = (rate / 20.0).max(1.0);
        Arc::new(Bucket {
            cap,
            rate,
            capacity,
            // Starts full: a migration may begin at once.
            state: Mutex::new((capacity, Instant::now())),
        })
    }
}

/// The caps of one daemon: made once from the configuration.
#[derive(Default)]
pub struct Caps {
    global: Option<Arc<Bucket>>,
    sources: Vec<((String, u16), Arc<Bucket>)>,
}

/// A host as caps and `[[sources]]` match it: `h` and `h:22` are one host,
/// names compared without regard to case.
pub fn host_key(host: &str) -> (String, u16) {
    match Target::parse(host.trim()) {
        Some(t) => (t.host.to_ascii_lowercase(), t.port),
        None => (host.trim().to_ascii_lowercase(), 22),
    }
}

impl Caps {
    pub fn from_config(config: &Config) -> Caps {
        let sources: Vec<(&str, u64)> = config
            .sources
            .iter()
            .filter_map(|s| Some((s.host.as_str(), s.max_bytes_per_s?)))
            .collect();
        Caps::new(config.migrations.max_bytes_per_s, &sources)
    }

    /// A global cap, if any, and caps of source hosts (as packets write
    /// them), in bytes per second.
    pub fn new(global: Option<u64>, sources: &[(&str, u64)]) -> Caps {
        Caps {
            global: global.map(|bytes_per_s| Bucket::new(Cap::Global { bytes_per_s }, bytes_per_s)),
            sources: sources
                .iter()
                .map(|&(host, bytes_per_s)| {
                    let cap = Cap::Source {
                        host: host.to_owned(),
                        bytes_per_s,
                    };
                    (host_key(host), Bucket::new(cap, bytes_per_s))
                })
                .collect(),
        }
    }

    /// The meter of a migration from `host` (as its packet wrote it).
    pub fn meter_for(&self, host: &str) -> Arc<Meter> {
        let key = host_key(host);
        let buckets = self
            .global
            .iter()
            .cloned()
            .chain(
                self.sources
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, b)| b.clone()),
            )
            .collect();
        Arc::new(Meter {
            buckets,
            read: AtomicU64::new(0),
            held: Mutex::new(None),
        })
    }
}

/// What one migration reads from its source: counted, and held to the
/// caps that apply to it (the global one first, then its source's).
pub struct Meter {
    buckets: Vec<Arc<Bucket>>,
    read: AtomicU64,
    /// The last time a read had to wait, and for which cap.
    held: Mutex<Option<(Instant, Cap)>>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field(
                "caps",
                &self.buckets.iter().map(|b| &b.cap).collect::<Vec<_>>(),
            )
            .field("read", &self.read_bytes())
            .finish()
    }
}

/// How long after the last wait a migration still counts as held back.
const HELD_FOR: Duration = Duration::from_millis(1500);

impl Meter {
    /// A meter under no cap (tests, tools).
    pub fn unlimited() -> Arc<Meter> {
        Caps::default().meter_for("")
    }

    /// Without waiting: how many of `want` bytes may be read now (at
    /// least one), or how long until a useful read may be.
    pub fn try_acquire(&self, want: usize) -> Result<usize, Duration> {
        if self.buckets.is_empty() || want == 0 {
            return Ok(want);
        }
        // Locked in one order (global first) by every meter: no deadlock.
        let mut states: Vec<_> = self
            .buckets
            .iter()
            .map(|b| b.state.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let now = Instant::now();
        let mut available = f64::INFINITY;
        let mut smallest = f64::INFINITY;
        let mut limiting = 0;
        for (i, (b, state)) in self.buckets.iter().zip(states.iter_mut()).enumerate() {
            let (tokens, last) = &mut **state;
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * b.rate).min(b.capacity);
            *last = now;
            if *tokens < available {
                available = *tokens;
                limiting = i;
            }
            smallest = smallest.min(b.capacity);
        }
        // A read waits for a quarter of the smallest bucket (or all it
        // wants) rather than trickling in slivers.
        let useful = (want as f64).min((smallest / 4.0).max(1.0));
        if available >= useful {
            let grant = (want as f64).min(available).floor().max(1.0);
            for state in states.iter_mut() {
                state.0 -= grant;
            }
            return Ok(grant as usize);
        }
        let bucket = &self.buckets[limiting];
        drop(states);
        if let Ok(mut held) = self.held.lock() {
            *held = Some((now, bucket.cap.clone()));
        }
        Err(Duration::from_secs_f64((useful - available) / bucket.rate))
    }

    /// Waits (on this thread) until some of `want` bytes may be read;
    /// answers how many.
    pub fn acquire(&self, want: usize) -> usize {
        loop {
            match self.try_acquire(want) {
                Ok(n) => return n,
                Err(wait) => std::thread::sleep(
                    wait.clamp(Duration::from_millis(1), Duration::from_millis(100)),
                ),
            }
        }
    }

    /// After a read of `used` of the `granted` bytes: the rest goes back.
    pub fn settle(&self, granted: usize, used: usize) {
        self.read.fetch_add(used as u64, Ordering::Relaxed);
        crate::observe::metrics::metrics()
            .source_read_bytes
            .inc_by(used as u64);
        let unused = granted.saturating_sub(used) as f64;
        if unused > 0.0 {
            for b in &self.buckets {
                let mut state = b.state.lock().unwrap_or_else(|e| e.into_inner());
                state.0 = (state.0 + unused).min(b.capacity);
            }
        }
    }

    /// The lowest cap that applies, bytes per second (none: unlimited).
    pub fn limit(&self) -> Option<u64> {
        self.buckets.iter().map(|b| b.rate as u64).min()
    }

    /// Payload bytes read through this meter so far.
    pub fn read_bytes(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The cap that made a read wait lately, if one did.
    pub fn held_back(&self) -> Option<Cap> {
        let held = self.held.lock().ok()?;
        held.as_ref()
            .filter(|(at, _)| at.elapsed() < HELD_FOR)
            .map(|(_, cap)| cap.clone())
    }

    /// `reader` with every read taken from this meter first.
    pub fn reader<R: std::io::Read>(self: &Arc<Self>, inner: R) -> Metered<R> {
        Metered {
            inner,
            meter: self.clone(),
        }
    }
}

/// A reader whose reads are counted and capped.
pub struct Metered<R> {
    pub inner: R,
    meter: Arc<Meter>,
}

impl<R: std::io::Read> std::io::Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let granted = self.meter.acquire(buf.len());
        let got = self.inner.read(&mut buf[..granted]);
        self.meter.settle(granted, *got.as_ref().unwrap_or(&0));
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(global: Option<u64>, source: Option<(&str, u64)>) -> Caps {
        Caps::new(global, source.as_slice())
    }

    #[test]
    fn a_host_with_and_without_port_22_is_one_host() {
        assert_eq!(host_key("Src.Example"), host_key("src.example:22"));
        assert_ne!(host_key("src.example"), host_key("src.example:2222"));
        assert_eq!(host_key("[2001:db8::1]"), host_key("[2001:db8::1]:22"));
        let c = caps(None, Some(("src.example", 4096)));
        assert_eq!(c.meter_for("src.example:22").buckets.len(), 1);
        assert_eq!(c.meter_for("other.example").buckets.len(), 0);
    }

    /// Readers on several threads sharing a cap never get more than the
    /// rate allows over the time they ran, plus one bucket.
    #[test]
    fn shared_readers_stay_within_the_cap() {
        let rate = 400_000u64;
        let c = caps(Some(rate), Some(("h", rate * 2)));
        let meters: Vec<_> = (0..3)
            .map(|i| c.meter_for(if i == 0 { "h" } else { "x" }))
            .collect();
        let started = Instant::now();
        let total = AtomicU64::new(0);
        std::thread::scope(|s| {
            for m in &meters {
                let total = &total;
                s.spawn(move || {
                    while started.elapsed() < Duration::from_millis(1200) {
                        let n = m.acquire(64 * 1024);
                        m.settle(n, n);
                        total.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let total = total.load(Ordering::Relaxed) as f64;
        let allowed = rate as f64 * elapsed + 4.0 * rate as f64 / 20.0;
        assert!(
            total <= allowed,
            "{total} bytes in {elapsed} s, cap allows {allowed}"
        );
        // It is a cap, not a stop: most of the budget was used.
        assert!(total >= rate as f64 * 0.8, "{total} bytes in {elapsed} s");
        assert!(meters.iter().any(|m| m.held_back().is_some()));
        let read: u64 = meters.iter().map(|m| m.read_bytes()).sum();
        assert_eq!(read as f64, total);
    }

    #[test]
    fn unused_grants_return_and_no_cap_grants_everything() {
        let free = Meter::unlimited();
        assert_eq!(free.try_acquire(1 << 20), Ok(1 << 20));
        assert!(free.held_back().is_none());
        let c = caps(Some(10_000), None);
        let m = c.meter_for("h");
        let n = m.try_acquire(100_000).expect("a full bucket");
        assert_eq!(n, 500);
        assert!(m.try_acquire(500).is_err());
        m.settle(n, 10);
        assert!(m.try_acquire(450).is_ok());
        assert_eq!(m.read_bytes(), 10);
        let held = m.held_back().expect("held back");
        assert_eq!(
            held,
            Cap::Global {
                bytes_per_s: 10_000
            }
        );
        assert_eq!(
            held.describe(),
            "the cap of 9.8 KiB/s on all sources (migrations.max_bytes_per_s)"
        );
        let source = Cap::Source {
            host: "old.example".into(),
            bytes_per_s: 3 << 20,
        };
        assert_eq!(
            source.describe(),
            "the cap of 3.0 MiB/s on source old.example ([[sources]] max_bytes_per_s)"
        );
    }
}
