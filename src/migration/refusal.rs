//! Why the engine refuses an operation (`start`, `finish`, `resync`, ...),
//! as typed values with what matters in each. The engine never picks a
//! protocol code or writes the text a client reads: the code table of the API
//! (`rpc/code.rs`) alone maps
//! every refusal to its code and its words (PROTOCOL.md §3, §4).

use std::path::PathBuf;

use crate::db::DbKind;
use crate::migration::request::IpType;
use crate::migration::status::ObjectKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `system-type` windows.
    WindowsSource,
    /// `migrate-resellers`: the panel model has no resellers.
    Resellers,
    /// Clients migrate to `admin` only.
    ClientsNotToAdmin {
        owner: String,
    },
    /// A mapping between shared and exclusive (or back).
    IpTypeMismatch {
        old_kind: IpType,
        old: String,
        new_kind: IpType,
        new: String,
    },
    /// A mapped database server of another type than MySQL.
    MappedServerNotMysql {
        host: String,
        port: u16,
        kind: DbKind,
    },
    /// A source database that is not a MySQL database.
    DatabaseNotMysql {
        database: String,
        domain: String,
        kind: String,
    },
    /// The destination cannot migrate now (what `check` reports).
    NotReady(NotReady),
    /// `destination-host-directory` is not absolute.
    StagingNotAbsolute {
        path: PathBuf,
    },
    /// The packet's `host` does not parse.
    BadHost {
        host: String,
    },
    /// No password and no `ssh.identity`.
    NoCredential,
    /// The source could not be reached, logged into, or read.
    Source(String),
    /// A name no file system may see (`/`, `..`, control characters).
    BadName {
        /// "domain name", "mail name", "domain alias", "subdomain".
        what: &'static str,
        /// Escaped for showing.
        name: String,
        object: String,
    },
    /// Selected objects the source does not have.
    NotOnSource {
        clients: Vec<String>,
        domains: Vec<String>,
    },
    /// A target owner the destination does not have.
    TargetOwnerMissing {
        owner: String,
    },
    ClientExists {
        login: String,
    },
    DomainExists {
        name: String,
    },
    /// A content directory on the destination that no earlier hostmig
    /// migration left there.
    ContentDirExists {
        domain: String,
        path: PathBuf,
    },
    /// One old address mapped to two new ones.
    IpMappedTwice {
        old: String,
        first: String,
        second: String,
    },
    /// A new address the destination does not have.
    NewIpMissing {
        address: String,
    },
    /// An address in use without a mapping that the destination lacks.
    UnmappedIpMissing {
        address: String,
    },
    /// A new address of the other type on the destination.
    NewIpOtherType {
        address: String,
        has: IpType,
        wanted: IpType,
    },
    /// A mapping names a database server the destination does not have.
    DbServerNotConfigured {
        host: String,
        port: u16,
        kind: DbKind,
    },
    /// No default server of the type, for a database without a mapping.
    NoDefaultDbServer {
        kind: String,
        database: String,
    },
    DatabaseExists {
        name: String,
        server: String,
    },
    DbUserExists {
        user: String,
        database: String,
        server: String,
    },
    /// Another running or queued migration holds the object.
    Busy {
        kind: ObjectKind,
        name: String,
        migration: u64,
    },
    /// An interrupted migration (a restart of hostmig stopped it) holds
    /// the object until it is resumed or abandoned.
    HeldByInterrupted {
        kind: ObjectKind,
        name: String,
        migration: u64,
    },
    /// `resume` of a migration that is not interrupted.
    NotInterrupted {
        id: u64,
    },
    /// `resume` of a migration that logged in by password (never kept),
    /// without one.
    ResumeNeedsPassword {
        id: u64,
    },
    /// `get_log` of a migration whose event log `finish` deleted.
    LogDeleted {
        id: u64,
    },
    /// A migration id the journal does not know.
    UnknownMigration {
        id: String,
    },
    /// `resync` of a migration that has not ended.
    StillRunning {
        id: u64,
    },
    /// `resync` after a restart without a password or a key.
    ResyncNeedsPassword,
    /// `resync` of a migration that deployed nothing.
    NothingDeployed,
    /// The journal did not answer or could not be read.
    Journal(String),
    /// A destination file system lacks the room the migration needs.
    NoSpace {
        mount: String,
        needed: u64,
        free: u64,
        reserve: u64,
        reserve_percent: u32,
        /// What admitted migrations still need there.
        pending: u64,
    },
}

/// What keeps the destination from migrating (1026).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    NoDestination,
    NoPanelDb,
    PanelDbUnreachable(String),
    /// The panel schema is missing or older than this hostmig, and could
    /// not be brought up to date at start-up.
    PanelSchema(String),
    DbServerUnreachable {
        server: String,
        reason: String,
    },
}
