//! The Prometheus metrics at `/metrics` (prometheus-client, OpenMetrics
//! text). Counters live for the process; the gauges of migrations by state
//! are read off the status board at each scrape. Every label's values are
//! a fixed set (states, kinds, operation names), so the series never grow
//! with the number of migrations or objects.

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::migration::status::MigrationStatus;
use crate::rpc::response::Listed;

type Labels = [(&'static str, &'static str); 1];
type Latency = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric hostmig keeps.
pub struct Metrics {
    registry: Registry,
    migrations: Family<Labels, Gauge>,
    queue: Gauge,
    pub ended: Family<Labels, Counter>,
    pub source_read_bytes: Counter,
    pub copied_bytes: Family<Labels, Counter>,
    pub copied_files: Counter,
    pub copied_rows: Counter,
    pub objects: Family<Labels, Counter>,
    pub objects_warned: Counter,
    pub retries: Counter,
    pub stalls: Counter,
    pub notifications: Family<Labels, Counter>,
    pub api_requests: Family<Labels, Counter>,
    api_latency: Latency,
}

/// The states `hostmig_migrations` counts.
pub const STATES: [&str; 6] = [
    "queued",
    "running",
    "interrupted",
    "success",
    "failed",
    "stopped",
];

fn latency_histogram() -> Histogram {
    // 0.25 ms to 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hostmig");
        let m = Metrics {
            migrations: Family::default(),
            queue: Gauge::default(),
            ended: Family::default(),
            source_read_bytes: Counter::default(),
            copied_bytes: Family::default(),
            copied_files: Counter::default(),
            copied_rows: Counter::default(),
            objects: Family::default(),
            objects_warned: Counter::default(),
            retries: Counter::default(),
            stalls: Counter::default(),
            notifications: Family::default(),
            api_requests: Family::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            registry: Registry::default(),
        };
        registry.register(
            "migrations",
            "Migrations this daemon knows, by state (queued, running, interrupted, success, failed)",
            m.migrations.clone(),
        );
        registry.register(
            "queue_length",
            "Migrations waiting for a migration slot",
            m.queue.clone(),
        );
        registry.register(
            "migrations_ended",
            "Migrations that ended, by outcome (success, failed, stopped)",
            m.ended.clone(),
        );
        registry.register(
            "source_read_bytes",
            "Payload bytes read from sources (content streams and rows), retries included",
            m.source_read_bytes.clone(),
        );
        registry.register(
            "copied_bytes",
            "Bytes copied and verified, by kind (content: file data sent; database: row data)",
            m.copied_bytes.clone(),
        );
        registry.register(
            "copied_files",
            "Files of web and mail content copied and verified",
            m.copied_files.clone(),
        );
        registry.register(
            "copied_rows",
            "Database rows copied and verified",
            m.copied_rows.clone(),
        );
        registry.register(
            "objects",
            "Objects (clients, domains) of ended migrations, by outcome (deployed, failed, not-migrated)",
            m.objects.clone(),
        );
        registry.register(
            "objects_warned",
            "Objects of ended migrations whose report holds at least one warning",
            m.objects_warned.clone(),
        );
        registry.register(
            "retries",
            "Tries again of an object's work after a transient fault",
            m.retries.clone(),
        );
        registry.register(
            "stalls",
            "Copies whose source sent nothing for migrations.stall_s",
            m.stalls.clone(),
        );
        registry.register(
            "notifications",
            "Notifications, by result (delivered, failed, dropped)",
            m.notifications.clone(),
        );
        registry.register(
            "api_requests",
            "API operations received, by operation (refused: packets refused before any operation)",
            m.api_requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Time from a packet's arrival to its answer, by operation (several: packets of different operations)",
            m.api_latency.clone(),
        );
        // The known label values exist from the start, at 0.
        for outcome in ["success", "failed", "stopped"] {
            let _ = m.ended.get_or_create(&[("outcome", outcome)]);
        }
        for kind in ["content", "database"] {
            let _ = m.copied_bytes.get_or_create(&[("kind", kind)]);
        }
        for outcome in ["deployed", "failed", "not-migrated"] {
            let _ = m.objects.get_or_create(&[("outcome", outcome)]);
        }
        for result in ["delivered", "failed", "dropped"] {
            let _ = m.notifications.get_or_create(&[("result", result)]);
        }
        Metrics { registry, ..m }
    }

    /// One API packet answered after `seconds`.
    pub fn api_packet(&self, operations: &[&'static str], seconds: f64) {
        let label = match operations {
            [] => "refused",
            [first, rest @ ..] if rest.iter().all(|o| o == first) => first,
            _ => "several",
        };
        if operations.is_empty() {
            self.api_requests
                .get_or_create(&[("operation", label)])
                .inc();
        }
        for op in operations {
            self.api_requests.get_or_create(&[("operation", op)]).inc();
        }
        self.api_latency
            .get_or_create(&[("operation", label)])
            .observe(seconds);
    }

    /// The text a scrape answers, the gauges counting `states` (each one
    /// of [`STATES`]).
    pub fn render(&self, states: impl Iterator<Item = &'static str>) -> String {
        let mut counts = [0i64; STATES.len()];
        for state in states {
            if let Some(i) = STATES.iter().position(|s| *s == state) {
                counts[i] += 1;
            }
        }
        for (state, n) in STATES.iter().zip(counts) {
            self.migrations.get_or_create(&[("state", state)]).set(n);
        }
        self.queue.set(counts[0]);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// A listed migration's state as the gauges count it: a finished one
/// by its outcome.
pub fn state_of(listed: &Listed) -> &'static str {
    match (listed.state, &listed.status) {
        ("finished", Some(MigrationStatus::Finished { errors })) if !errors.is_empty() => "failed",
        ("finished", _) => "success",
        (state, _) => state,
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_family_and_counts_states() {
        let m = Metrics::new();
        m.copied_rows.inc_by(7);
        m.api_packet(&["get_status", "get_status"], 0.001);
        m.api_packet(&["start", "get_status"], 0.002);
        m.api_packet(&[], 0.0001);
        let text = m.render(["success", "success", "stopped"].into_iter());
        assert!(text.contains("hostmig_copied_rows_total 7\n"), "{text}");
        assert!(
            text.contains("hostmig_migrations{state=\"success\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("hostmig_migrations{state=\"running\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hostmig_migrations{state=\"stopped\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("hostmig_queue_length 0\n"), "{text}");
        assert!(
            text.contains("hostmig_migrations_ended_total{outcome=\"failed\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hostmig_api_requests_total{operation=\"get_status\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hostmig_api_request_duration_seconds_count{operation=\"several\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hostmig_api_requests_total{operation=\"refused\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
