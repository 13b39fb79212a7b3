//! How the work of one object is tried again after a transient fault:
//! `migrations.retry_attempts` tries after the first, each after a delay
//! that starts at `retry_first_delay_s` and doubles up to
//! `retry_max_delay_s`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first; 0 means a transient fault fails the object.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// CONFIG.md's defaults: 5 tries, 2 s doubled up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before try `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

impl RetryPolicy {
    /// After a transient fault that ended try `*attempt` (0 for the first
    /// try): the next retry's status and its delay, counted in `attempt`;
    /// `None` once the retries are used up.
    pub fn next(
        &self,
        attempt: &mut u32,
        after: &impl std::fmt::Display,
    ) -> Option<(Retrying, Duration)> {
        if *attempt >= self.attempts {
            return None;
        }
        *attempt += 1;
        let retrying = Retrying {
            attempt: *attempt,
            of: self.attempts,
            after: after.to_string(),
        };
        crate::observe::retrying(&retrying);
        Some((retrying, self.delay(*attempt)))
    }
}

/// Waits `delay`, or less when `stop` is set meanwhile (looked at every
/// 50 ms); answers whether the whole delay passed without a stop.
pub async fn pause(delay: Duration, stop: &std::sync::atomic::AtomicBool) -> bool {
    let until = std::time::Instant::now() + delay;
    while let Some(step) = next_step(until, stop) {
        tokio::time::sleep(step).await;
    }
    !stopped(stop)
}

/// As `pause`, for a thread that may block.
pub fn pause_blocking(delay: Duration, stop: &std::sync::atomic::AtomicBool) -> bool {
    let until = std::time::Instant::now() + delay;
    while let Some(step) = next_step(until, stop) {
        std::thread::sleep(step);
    }
    !stopped(stop)
}

fn stopped(stop: &std::sync::atomic::AtomicBool) -> bool {
    stop.load(std::sync::atomic::Ordering::SeqCst)
}

/// How long a pause until `until` sleeps next (at most 50 ms), or `None`
/// once it is over or stopped.
fn next_step(until: std::time::Instant, stop: &std::sync::atomic::AtomicBool) -> Option<Duration> {
    let left = until.saturating_duration_since(std::time::Instant::now());
    (!stopped(stop) && !left.is_zero()).then(|| left.min(Duration::from_millis(50)))
}

/// An object's work waiting to be tried again, for its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrying {
    /// This retry's number, from 1.
    pub attempt: u32,
    /// Of how many retries at most.
    pub of: u32,
    /// The fault it follows.
    pub after: String,
}

impl Retrying {
    /// "retrying (2 of 5) after: the connection was lost while copying
    /// database wp of a.example".
    pub fn describe(&self, doing: &str) -> String {
        format!(
            "retrying ({} of {}) after: {} while {doing}",
            self.attempt, self.of, self.after
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_up_to_the_most() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=7).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(60));
        let none = RetryPolicy {
            attempts: 3,
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        };
        assert_eq!(none.delay(3), Duration::ZERO);
        let mut attempt = 0;
        let tries: Vec<(u32, u64)> = std::iter::from_fn(|| p.next(&mut attempt, &"lost"))
            .map(|(r, d)| (r.attempt, d.as_secs()))
            .collect();
        assert_eq!(tries, [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32)]);
        let zero = RetryPolicy { attempts: 0, ..p };
        assert!(zero.next(&mut 0, &"lost").is_none());
    }

    #[test]
    fn a_pause_ends_early_on_a_stop() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let stop = AtomicBool::new(false);
        assert!(rt.block_on(pause(Duration::from_millis(60), &stop)));
        let t = std::time::Instant::now();
        let stopped = rt.block_on(async {
            let stopper = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stop.store(true, Ordering::SeqCst);
            };
            let (passed, ()) = tokio::join!(pause(Duration::from_secs(60), &stop), stopper);
            passed
        });
        assert!(!stopped);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn the_status_names_the_try_the_fault_and_the_work() {
        let r = Retrying {
            attempt: 2,
            of: 5,
            after: "connection to the source lost".into(),
        };
        assert_eq!(
            r.describe("copying database wp of a.example"),
            "retrying (2 of 5) after: connection to the source lost while copying database wp of a.example"
        );
    }
}
