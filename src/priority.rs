//! Thread priorities: the API answers first, bulk copying yields.

/// Nice value of the threads that answer the API (the HTTP workers and
/// the status board), where the system allows raising it (root, or
/// CAP_SYS_NICE): under a full CPU they are woken ahead of bulk work.
pub const API_NICE: i32 = -5;

/// Nice value of bulk copying threads.
pub const BULK_NICE: i32 = 10;

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
