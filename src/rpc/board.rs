//! The status board: the latest status of every migration, by id.
//! RpcFront is its only writer (from the Supervisor's and the Migrations'
//! reports); the HTTP workers read it directly, so a packet of
//! `get_status` operations is answered without an actor hop, however busy
//! the actors are (DESIGN.md §1).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::migration::status::MigrationStatus;

#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<HashMap<String, MigrationStatus>>>);

impl Board {
    /// A migration's latest status.
    pub fn get(&self, id: &str) -> Option<MigrationStatus> {
        self.0.read().ok()?.get(id).cloned()
    }

    /// Takes a report in: steps done never go down (a late report does
    /// not undo a newer one), and an ended migration's status is replaced
    /// only by another ended one.
    pub(super) fn apply(&self, id: u64, status: MigrationStatus) {
        let Ok(mut board) = self.0.write() else {
            return;
        };
        let entry = board.entry(id.to_string());
        use std::collections::hash_map::Entry;
        match (entry, status) {
            (Entry::Occupied(mut e), MigrationStatus::InProgress(progress)) => {
                let keep_newer = match e.get() {
                    MigrationStatus::Finished { .. } => true,
                    MigrationStatus::InProgress(current) => current.completed > progress.completed,
                };
                if !keep_newer {
                    e.insert(MigrationStatus::InProgress(progress));
                }
            }
            (Entry::Occupied(mut e), status) => {
                e.insert(status);
            }
            (Entry::Vacant(v), status) => {
                v.insert(status);
            }
        }
    }
}
