//! The plan of a migration as the journal and the event log keep it: what
//! was migrated from where (no credential ever), enough for `resync` after
//! a restart and for an operator reading the log.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::request::Scope;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanSummary {
    /// The source as the packet wrote it (`host` or `host:port`).
    pub host: String,
    /// The SSH login on the source.
    pub login: String,
    pub scope: Scope,
    pub resync: bool,
    /// `<staging>`; the migration's files were under `<staging>/hostmig-<id>/`.
    pub staging: PathBuf,
    /// "client jdoe with a.example, b.example", "domain c.example to admin".
    pub objects: Vec<String>,
    /// Old address → new address.
    pub addresses: BTreeMap<String, String>,
}
