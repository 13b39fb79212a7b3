//! The `[migrations]` keys of how work survives faults (retries, the
//! stall time and the disk reserve) and of compression.

use super::{bad, raw, Checked};

/// `migrations.retry_*`; CONFIG.md's defaults where absent.
pub(super) fn retry_policy(m: &raw::Migrations) -> Checked<crate::retry::RetryPolicy> {
    let default = crate::retry::RetryPolicy::default();
    let attempts = m.retry_attempts.unwrap_or(default.attempts as i64);
    if !(0..=100).contains(&attempts) {
        return bad(
            "migrations.retry_attempts",
            "must be a number of tries from 0 (none) to 100",
        );
    }
    let seconds = |key: &str, value: Option<i64>, default: std::time::Duration| {
        let v = value.unwrap_or(default.as_secs() as i64);
        if (0..=3600).contains(&v) {
            Ok(std::time::Duration::from_secs(v as u64))
        } else {
            bad(key, "must be a number of seconds from 0 to 3600")
        }
    };
    let first_delay = seconds(
        "migrations.retry_first_delay_s",
        m.retry_first_delay_s,
        default.first_delay,
    )?;
    let max_delay = seconds(
        "migrations.retry_max_delay_s",
        m.retry_max_delay_s,
        default.max_delay,
    )?;
    if max_delay < first_delay {
        return bad(
            "migrations.retry_max_delay_s",
            "must be at least migrations.retry_first_delay_s",
        );
    }
    Ok(crate::retry::RetryPolicy {
        attempts: attempts as u32,
        first_delay,
        max_delay,
    })
}

/// `migrations.stall_s`: 2 s to a day; CONFIG.md's 120 s where absent.
pub(super) fn stall(m: &raw::Migrations) -> Checked<std::time::Duration> {
    let default = crate::ssh::DEFAULT_STALL.as_secs() as i64;
    match m.stall_s.unwrap_or(default) {
        v @ 2..=86_400 => Ok(std::time::Duration::from_secs(v as u64)),
        _ => bad(
            "migrations.stall_s",
            "must be a number of seconds from 2 to 86400",
        ),
    }
}

/// `migrations.disk_reserve_percent`: 0 to 50; CONFIG.md's 5 where absent.
pub(super) fn disk_reserve_percent(m: &raw::Migrations) -> Checked<u32> {
    match m.disk_reserve_percent.unwrap_or(5) {
        v @ 0..=50 => Ok(v as u32),
        _ => bad(
            "migrations.disk_reserve_percent",
            "must be a percentage from 0 to 50",
        ),
    }
}

/// `migrations.content_compression` (auto | zstd | gzip | off) and
/// `migrations.db_compression` (auto | on | off); `auto` where absent.
pub(super) fn compression(
    m: &raw::Migrations,
) -> Checked<(
    crate::transfer::link::ContentCompression,
    crate::transfer::link::DbCompression,
)> {
    use crate::transfer::link::{ContentCompression as C, DbCompression as D};
    let content = match m.content_compression.as_deref() {
        None | Some("auto") => C::Auto,
        Some("zstd") => C::Zstd,
        Some("gzip") => C::Gzip,
        Some("off") => C::Off,
        Some(_) => {
            return bad(
                "migrations.content_compression",
                "must be auto, zstd, gzip or off",
            )
        }
    };
    let db = match m.db_compression.as_deref() {
        None | Some("auto") => D::Auto,
        Some("on") => D::On,
        Some("off") => D::Off,
        Some(_) => return bad("migrations.db_compression", "must be auto, on or off"),
    };
    Ok((content, db))
}
