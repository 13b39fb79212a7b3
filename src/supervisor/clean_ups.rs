//! Clean-ups of ended migrations that a start waits for.

use std::sync::Arc;

/// Clean-ups of ended migrations (dropping the databases they created for
/// domains they did not deploy) still at work. A start waits for them, so
/// the objects an ended migration released are checked against the
/// destination as it is once that migration's leftovers are gone.
#[derive(Clone)]
pub(super) struct CleanUps(Arc<tokio::sync::watch::Sender<usize>>);

impl CleanUps {
    /// Longest a start waits for clean-ups before it goes on regardless
    /// (an unreachable database server would otherwise hold every start).
    const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

    pub(super) fn new() -> Self {
        CleanUps(Arc::new(tokio::sync::watch::channel(0).0))
    }

    pub(super) fn spawn(&self, work: impl std::future::Future<Output = ()> + 'static) {
        /// Counts the clean-up as ended however it ends (a panic too).
        struct Ended(CleanUps);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0 .0.send_modify(|n| *n -= 1);
            }
        }
        self.0.send_modify(|n| *n += 1);
        let ended = Ended(self.clone());
        actix::spawn(async move {
            work.await;
            drop(ended);
        });
    }

    pub(super) async fn settled(&self) {
        let mut at_work = self.0.subscribe();
        let _ = tokio::time::timeout(Self::WAIT, at_work.wait_for(|n| *n == 0)).await;
    }
}
