//! Thread priorities: the API answers first, bulk copying yields.
//!
//! The HTTP workers run in the real-time class (`SCHED_FIFO` at its lowest
//! priority) while they use little CPU, so a `get_status` is answered as
//! soon as it arrives even when the migrations fill every core: an
//! ordinary thread, however nice, waits for the running task to reach a
//! preemption point, which on a `PREEMPT_NONE` kernel can be milliseconds.
//! The class is bounded by a budget: a worker that used more than
//! [`REALTIME_BUDGET`] of a core over the last [`REALTIME_WINDOW`] (a
//! flood of TLS handshakes, a large `list`) drops back to the ordinary
//! class at [`API_NICE`] until its use falls under half the budget, so the
//! API can never starve the migrations.

use std::time::Duration;

/// Nice value of the threads that answer the API (the HTTP workers and
/// the status board), where the system allows raising it (root, or
/// CAP_SYS_NICE): under a full CPU they are woken ahead of bulk work.
pub const API_NICE: i32 = -5;

/// Nice value of bulk copying threads.
pub const BULK_NICE: i32 = 10;

/// The window over which a real-time worker's CPU use is measured.
pub const REALTIME_WINDOW: Duration = Duration::from_millis(100);

/// The share of one core a worker may use within [`REALTIME_WINDOW`] and
/// stay real-time (20 %: `get_status` at 1,000 packets/s costs about 5 %).
pub const REALTIME_BUDGET: Duration = Duration::from_millis(20);

/// How often the budget is checked ...
const TICK: Duration = Duration::from_millis(10);
/// ... so that the window is this many ticks.
const WINDOW_TICKS: usize = (REALTIME_WINDOW.as_millis() / TICK.as_millis()) as usize;

/// Sets the calling thread's nice value (threads it starts later inherit
/// it). A refusal is logged at debug level and otherwise ignored: the
/// thread keeps running at its priority.
pub fn set_thread_nice(nice: i32, what: &str) {
    // SAFETY: gettid and setpriority on this very thread; no memory involved.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), nice, "cannot set the priority of {what}");
    }
}

/// Scheduling class of the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `SCHED_FIFO` at priority 1.
    Realtime,
    /// `SCHED_OTHER` at the thread's nice value.
    Ordinary,
}

/// Moves the calling thread into `class`. Threads it starts later never
/// inherit the real-time class (`SCHED_RESET_ON_FORK`). Fails where the
/// system does not allow it (not root, no CAP_SYS_NICE, no RLIMIT_RTPRIO).
pub fn set_thread_class(class: Class) -> std::io::Result<()> {
    let (policy, priority) = match class {
        Class::Realtime => (libc::SCHED_FIFO, 1),
        Class::Ordinary => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler on this very thread (pid 0) with a param
    // that lives across the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into ts, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Decides the class from the CPU use over the window: leaves the
/// real-time class above the budget, comes back under half of it.
#[derive(Debug)]
pub struct Budget {
    /// CPU time at each of the last ticks, oldest first.
    readings: std::collections::VecDeque<Duration>,
    class: Class,
}

impl Budget {
    /// A budget for a thread now in `class`, whose CPU time is `now`.
    pub fn new(class: Class, now: Duration) -> Budget {
        let mut readings = std::collections::VecDeque::with_capacity(WINDOW_TICKS + 1);
        readings.push_back(now);
        Budget { readings, class }
    }

    /// Takes one tick's reading; gives the class to move to if it changes.
    pub fn tick(&mut self, now: Duration) -> Option<Class> {
        if self.readings.len() > WINDOW_TICKS {
            self.readings.pop_front();
        }
        let oldest = *self.readings.front().unwrap_or(&now);
        self.readings.push_back(now);
        let used = now.saturating_sub(oldest);
        let next = match self.class {
            Class::Realtime if used > REALTIME_BUDGET => Class::Ordinary,
            Class::Ordinary if used < REALTIME_BUDGET / 2 => Class::Realtime,
            same => same,
        };
        (next != self.class).then(|| {
            self.class = next;
            next
        })
    }
}

thread_local! {
    static REALTIME_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the calling HTTP worker thread real-time within its budget and
/// starts the task on its runtime that keeps it so. Called from the
/// application factory, which runs on each worker (once per listener):
/// only the first call on a thread does anything. Where the real-time
/// class is not allowed the worker stays at its nice value.
pub fn realtime_worker() {
    if REALTIME_WORKER.with(|started| started.replace(true)) {
        return;
    }
    if let Err(e) = set_thread_class(Class::Realtime) {
        tracing::info!(
            error = %e,
            "the HTTP worker stays in the ordinary class (api.realtime needs root or CAP_SYS_NICE; \
             set it to false to keep the workers at nice -5 without this message)"
        );
        return;
    }
    actix_web::rt::spawn(async {
        let mut budget = Budget::new(Class::Realtime, thread_cpu_time());
        let mut ticks = actix_web::rt::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(class) = budget.tick(thread_cpu_time()) {
                match set_thread_class(class) {
                    Ok(()) => tracing::debug!(?class, "HTTP worker's scheduling class"),
                    Err(e) => {
                        tracing::debug!(error = %e, ?class, "cannot change the HTTP worker's scheduling class")
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_worker_leaves_the_realtime_class_over_budget_and_comes_back_when_quiet() {
        let mut b = Budget::new(Class::Realtime, ms(0));
        // 1 ms per 10 ms tick: 10 % of a core, within the budget.
        let mut cpu = 0;
        for _ in 0..30 {
            cpu += 1;
            assert_eq!(b.tick(ms(cpu)), None);
        }
        // 5 ms per tick: over 20 ms within the window after 5 ticks.
        let mut changed = None;
        for i in 0..10 {
            cpu += 5;
            if let Some(c) = b.tick(ms(cpu)) {
                changed = Some((i, c));
                break;
            }
        }
        let (at, class) = changed.expect("the budget trips");
        assert_eq!(class, Class::Ordinary);
        assert!(at <= 5, "tripped after {at} busy ticks");
        // Still busy: stays ordinary.
        for _ in 0..20 {
            cpu += 5;
            assert_eq!(b.tick(ms(cpu)), None);
        }
        // Quiet: back once the window holds under 10 ms.
        let mut back = None;
        for i in 0..20 {
            if let Some(c) = b.tick(ms(cpu)) {
                back = Some((i, c));
                break;
            }
        }
        let (at, class) = back.expect("comes back");
        assert_eq!(class, Class::Realtime);
        assert!((5..=10).contains(&at), "came back after {at} quiet ticks");
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - before < ms(5) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() - before >= ms(5));
    }

    #[test]
    fn the_realtime_class_is_not_inherited() {
        // As root the class is allowed; elsewhere the refusal must be
        // EPERM, an error the worker logs and lives with.
        let outcome = std::thread::spawn(|| {
            let set = set_thread_class(Class::Realtime);
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
                .join()
                .expect("child");
            let own = unsafe { libc::sched_getscheduler(0) };
            (set.is_ok(), own & !libc::SCHED_RESET_ON_FORK, child)
        })
        .join()
        .expect("thread");
        if outcome.0 {
            assert_eq!(outcome.1, libc::SCHED_FIFO);
            assert_eq!(outcome.2, libc::SCHED_OTHER, "the child stays ordinary");
        } else {
            let refused = set_thread_class(Class::Realtime).expect_err("refused");
            assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");
        }
    }
}
