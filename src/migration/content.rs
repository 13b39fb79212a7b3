//! `ContentTransfer`: the sub-actor that copies one content tree of a
//! migration (DESIGN.md §2 step 4). Its SSH work runs on a thread of its
//! own; the SSH sessions come from the migration's pool, so trees after
//! the first do not pay for new logins. A `Stopper` shared with the
//! Migration ends every transfer at once: it sets the stop flag and breaks
//! every session's socket, so no blocked read outlives a `finish`.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, ResponseFuture};

use crate::ssh::{Login, Options, Session};
use crate::transfer::tree::{sync_tree, Progress, TreeError, TreeJob, TreeReport};

/// Stops every transfer of one migration.
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

    fn register(&self, session: &Session) {
        if let Some(socket) = session.breaker() {
            if let Ok(mut sockets) = self.sockets.lock() {
                sockets.push(socket);
            }
        }
        if self.flag.load(Ordering::SeqCst) {
            session.shutdown();
        }
    }
}

/// SSH sessions for content work, reused from tree to tree.
pub struct SessionPool {
    login: Login,
    opts: Options,
    /// Idle sessions and since when they idle.
    idle: Mutex<Vec<(Session, Instant)>>,
    stopper: Arc<Stopper>,
}

/// An idle session older than this is not trusted (a server's client-alive
/// check may have dropped it while it was not read) and is closed instead.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Sessions one tree uses: this many copy streams, and one for hashing.
const COPY_STREAMS: usize = 2;

impl SessionPool {
    pub fn new(login: Login, opts: Options, stopper: Arc<Stopper>) -> Self {
        SessionPool {
            login,
            opts,
            idle: Mutex::new(Vec::new()),
            stopper,
        }
    }

    /// `n` logged-in sessions: idle ones first, the rest logged in at once.
    fn take(&self, n: usize) -> Result<Vec<Session>, TreeError> {
        let mut out: Vec<Session> = match self.idle.lock() {
            Ok(mut idle) => {
                idle.retain(|(_, since)| since.elapsed() < MAX_IDLE);
                let keep = idle.len().saturating_sub(n);
                idle.split_off(keep).into_iter().map(|(s, _)| s).collect()
            }
            Err(_) => Vec::new(),
        };
        let connect = || {
            let s = Session::connect(&self.login, &self.opts)
                .map_err(|e| TreeError::Failed(format!("cannot log into the source: {e}")))?;
            self.stopper.register(&s);
            Ok::<_, TreeError>(s)
        };
        // Each login waits on the network and the source: all at once.
        let fresh: Vec<Result<Session, TreeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (out.len()..n).map(|_| scope.spawn(connect)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(TreeError::Failed("the SSH login thread failed".into()))
                    })
                })
                .collect()
        });
        for s in fresh {
            out.push(s?);
        }
        Ok(out)
    }

    fn put(&self, sessions: Vec<Session>) {
        if let Ok(mut idle) = self.idle.lock() {
            let now = Instant::now();
            idle.extend(sessions.into_iter().map(|s| (s, now)));
        }
    }
}

pub struct ContentTransfer {
    pool: Arc<SessionPool>,
    stopper: Arc<Stopper>,
}

impl ContentTransfer {
    pub fn new(pool: Arc<SessionPool>, stopper: Arc<Stopper>) -> Self {
        ContentTransfer { pool, stopper }
    }
}

impl Actor for ContentTransfer {
    type Context = Context<Self>;
}

/// Copy one tree; `progress` hears how far it is (from the SSH thread).
#[derive(Message)]
#[rtype(result = "Result<TreeReport, TreeError>")]
pub struct CopyTree {
    pub job: TreeJob,
    pub progress: Box<dyn FnMut(Progress) + Send>,
}

impl Handler<CopyTree> for ContentTransfer {
    type Result = ResponseFuture<Result<TreeReport, TreeError>>;

    fn handle(&mut self, msg: CopyTree, _: &mut Self::Context) -> Self::Result {
        let (pool, stopper) = (self.pool.clone(), self.stopper.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("hostmig-content".into())
            .spawn(move || {
                // Bulk copying yields the CPU to the API and the actors
                // (the threads this one starts inherit it).
                crate::priority::set_thread_nice(crate::priority::BULK_NICE, "a transfer thread");
                let CopyTree { job, mut progress } = msg;
                let result = pool.take(COPY_STREAMS + 1).and_then(|mut sessions| {
                    let Some(hasher) = sessions.pop() else {
                        return Err(TreeError::Failed("no SSH session for hashing".into()));
                    };
                    let result =
                        sync_tree(&sessions, &hasher, &job, stopper.flag(), &mut *progress);
                    // A session that saw a failure may be broken: not reused.
                    // The hashing session may have idled since its work
                    // ended long ago: closed rather than trusted.
                    drop(hasher);
                    if result.is_ok() {
                        pool.put(sessions);
                    }
                    result
                });
                // A login broken by the stopper is the stop too (sync_tree
                // already says so for everything after the login).
                let result = match result {
                    Err(_) if stopper.flag().load(Ordering::SeqCst) => Err(TreeError::Stopped),
                    other => other,
                };
                let _ = tx.send(result);
            });
        Box::pin(async move {
            if let Err(e) = spawned {
                return Err(TreeError::Failed(format!(
                    "cannot start a transfer thread: {e}"
                )));
            }
            rx.await.unwrap_or_else(|_| {
                Err(TreeError::Failed(
                    "the transfer thread ended unexpectedly".into(),
                ))
            })
        })
    }
}
