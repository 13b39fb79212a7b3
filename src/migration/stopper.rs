//! Stops every transfer of one migration at once: a flag its loops check,
//! and the sockets of its SSH sessions, shut down so that no blocked read
//! outlives a `finish`.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::ssh::Session;

#[derive(Default)]
pub struct Stopper {
    flag: AtomicBool,
    sockets: Mutex<Vec<TcpStream>>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let sockets = self.sockets.lock().map(|mut s| std::mem::take(&mut *s));
        for s in sockets.unwrap_or_default() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    pub fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Breaks this session too when the migration stops (at once if it has).
    pub fn register(&self, session: &Session) {
        if let Some(socket) = session.breaker() {
            if let Ok(mut sockets) = self.sockets.lock() {
                sockets.push(socket);
            }
        }
        if self.stopped() {
            session.shutdown();
        }
    }
}
