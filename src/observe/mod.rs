//! What the operator's monitoring sees: the Prometheus metrics and the
//! notifications, fed from the few places where the engine's facts are
//! settled (a migration's event log, its report's end, an object's
//! failure, a retry). Nothing here ever waits on a receiver, and no value
//! it sends holds a secret: names, outcomes, counts and error texts only.

pub mod metrics;
pub mod notify;

use serde_json::{json, Value};

use crate::config::NotifyEvent;
use crate::migration::events::Event;
use crate::migration::report::{ObjectOutcome, Outcome, Report};
use crate::migration::status::ObjectKind;
use crate::retry::Retrying;
use metrics::metrics;

/// Counts what a migration's event says it moved.
pub fn saw(event: &Event<'_>) {
    let m = metrics();
    match event {
        Event::Tree { report, .. } => {
            m.copied_files.inc_by(report.sent_files);
            m.copied_bytes
                .get_or_create(&[("kind", "content")])
                .inc_by(report.sent_bytes);
        }
        Event::Database { report, .. } => {
            m.copied_rows.inc_by(report.rows);
            m.copied_bytes
                .get_or_create(&[("kind", "database")])
                .inc_by(report.bytes);
        }
        Event::CaughtUp { catch_up, .. } => {
            m.copied_rows.inc_by(catch_up.rows_copied);
            m.copied_bytes
                .get_or_create(&[("kind", "database")])
                .inc_by(catch_up.bytes_copied);
        }
        _ => {}
    }
}

/// A migration's report has its end (success, failed, stopped).
pub fn ended(report: &Report) {
    if report.outcome == Outcome::Interrupted {
        // Not an end: it goes on when hostmig is back.
        return;
    }
    let m = metrics();
    m.ended
        .get_or_create(&[("outcome", report.outcome.as_str())])
        .inc();
    let mut counts = serde_json::Map::new();
    for o in &report.objects {
        m.objects
            .get_or_create(&[("outcome", o.outcome.as_str())])
            .inc();
        if !o.warnings.is_empty() {
            m.objects_warned.inc();
        }
        let n = counts.entry(o.outcome.as_str()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    let failed: Vec<Value> = report
        .objects
        .iter()
        .filter(|o| o.outcome != ObjectOutcome::Deployed)
        .map(|o| {
            json!({
                "type": o.kind.as_str(),
                "name": o.name,
                "outcome": o.outcome.as_str(),
                "errors": o.errors,
            })
        })
        .collect();
    let warnings: usize = report.objects.iter().map(|o| o.warnings.len()).sum();
    let mut body = notice(NotifyEvent::Finished, report.migration_id, &report.source);
    body["outcome"] = json!(report.outcome.as_str());
    body["objects"] = Value::Object(counts);
    body["not_deployed"] = json!(failed);
    body["errors"] = json!(report.errors);
    body["warnings"] = json!(warnings);
    notify::emit(NotifyEvent::Finished, body);
}

/// An object was not migrated; `message` says why.
pub fn object_failed(id: u64, source: &str, kind: ObjectKind, name: &str, message: &str) {
    let mut body = notice(NotifyEvent::ObjectFailed, id, source);
    body["object"] = json!({ "type": kind.as_str(), "name": name });
    body["message"] = json!(message);
    notify::emit(NotifyEvent::ObjectFailed, body);
}

/// A retry of an object's work after a transient fault.
pub fn retrying(retrying: &Retrying) {
    let m = metrics();
    m.retries.inc();
    if retrying.after.contains(crate::ssh::STALLED) {
        m.stalls.inc();
    }
}

/// A copy of migration `id` stalled and waits to be tried again.
pub fn stalled(id: u64, source: &str, item: &str, retrying: &Retrying) {
    let mut body = notice(NotifyEvent::Stalled, id, source);
    body["item"] = json!(item);
    body["fault"] = json!(retrying.after);
    body["retry"] = json!({ "attempt": retrying.attempt, "of": retrying.of });
    notify::emit(NotifyEvent::Stalled, body);
}

/// What every notice holds.
fn notice(event: NotifyEvent, id: u64, source: &str) -> Value {
    json!({
        "event": event.as_str(),
        "at": utc_now(),
        "migration_id": id.to_string(),
        "source": source,
        "hostmig": env!("CARGO_PKG_VERSION"),
    })
}

/// Now as ISO 8601 in UTC, to the second.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since 1970 as ISO 8601 in UTC (the civil calendar from days,
/// after Howard Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times_are_the_civil_calendar() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_796_287_599), "2026-12-03T08:46:39Z");
    }
}
