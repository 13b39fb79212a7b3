//! The one table of protocol error codes (PROTOCOL.md §4). Every error that
//! reaches a client is converted to an [`RpcError`] at the edge, here.

use std::fmt;

use super::xml::short;
use crate::migration::refusal::{NotReady, Refusal};

/// A Plesk API RPC error code, as hostmig uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Wrong login or password.
    AuthFailed,
    /// Protocol version not supported.
    UnsupportedVersion,
    /// A database or database user already exists on the target server.
    DatabaseExists,
    /// Key not allowed from this client address.
    AccessDenied,
    /// Object does not exist.
    NotFound,
    /// Malformed or invalid packet, too large or too deep.
    Parse,
    /// Feature not supported.
    Unsupported,
    /// IP address not found.
    IpNotFound,
    /// Invalid value.
    InvalidValue,
    /// Operation failed.
    OperationFailed,
    /// Component not installed or not ready.
    NotReady,
    /// Too many failed logins from this address.
    Locked,
    /// No credentials headers.
    UnknownAuthMethod,
    /// Secret key validation failed.
    KeyInvalid,
    /// Wrong database server type.
    WrongDbType,
    /// Database server not configured.
    DbServerNotConfigured,
    /// Domain already exists on the destination.
    DomainExists,
    /// Client login already exists on the destination.
    ClientExists,
}

impl Code {
    /// The number sent in `<errcode>`.
    pub fn number(self) -> u32 {
        match self {
            Code::AuthFailed => 1001,
            Code::UnsupportedVersion => 1005,
            Code::DatabaseExists => 1007,
            Code::AccessDenied => 1010,
            Code::NotFound => 1013,
            Code::Parse => 1014,
            Code::Unsupported => 1017,
            Code::IpNotFound => 1018,
            Code::InvalidValue => 1019,
            Code::OperationFailed => 1023,
            Code::NotReady => 1026,
            Code::Locked => 1012,
            Code::UnknownAuthMethod => 1029,
            Code::KeyInvalid => 11003,
            Code::WrongDbType => 14008,
            Code::DbServerNotConfigured => 14009,
            Code::DomainExists => 15006,
            Code::ClientExists => 15012,
        }
    }
}

/// An error as a client sees it: a code and a text that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: Code,
    pub text: String,
}

impl RpcError {
    pub fn new(code: Code, text: impl Into<String>) -> Self {
        RpcError {
            code,
            text: text.into(),
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.number(), self.text)
    }
}

impl std::error::Error for RpcError {}

impl From<Refusal> for RpcError {
    fn from(refusal: Refusal) -> Self {
        let (code, text) = words(refusal);
        RpcError::new(code, text)
    }
}

/// A refusal in the words a client reads (for the server's own log too).
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&words(self.clone()).1)
    }
}

/// What a refusal of the engine means on the wire: its code and the text
/// a client reads (what went wrong, and what to do).
fn words(refusal: Refusal) -> (Code, String) {
    let start = |text: String| format!("Unable to start migration: {text}");
    match refusal {
        Refusal::WindowsSource => (
            Code::Unsupported,
            start("Windows sources are not supported; hostmig migrates from Unix servers only".into()),
        ),
        Refusal::Resellers => (
            Code::Unsupported,
            start("resellers are not supported; migrate their clients with migrate-clients".into()),
        ),
        Refusal::ClientsNotToAdmin { owner } => (
            Code::OperationFailed,
            start(format!(
                "clients can only be migrated to admin, not to \"{owner}\""
            )),
        ),
        Refusal::IpTypeMismatch {
            old_kind,
            old,
            new_kind,
            new,
        } => (
            Code::InvalidValue,
            format!(
                "cannot map {} IP {old} to {} IP {new}",
                old_kind.as_str(),
                new_kind.as_str()
            ),
        ),
        Refusal::MappedServerNotMysql { host, port, kind } => (
            Code::WrongDbType,
            start(format!(
                "database server {host}:{port} is of type {}; only mysql databases are migrated",
                kind.as_str()
            )),
        ),
        Refusal::DatabaseNotMysql {
            database,
            domain,
            kind,
        } => (
            Code::WrongDbType,
            start(format!(
                "database {database} of domain {domain} is a {kind} database; only mysql databases are migrated"
            )),
        ),
        Refusal::NotReady(what) => (
            Code::NotReady,
            start(format!("{}; `check` lists what is missing", not_ready(what))),
        ),
        Refusal::StagingNotAbsolute { path } => (
            Code::InvalidValue,
            format!(
                "destination-host-directory {} is not an absolute path",
                path.display()
            ),
        ),
        Refusal::BadHost { host } => (
            Code::OperationFailed,
            start(format!("{} is not a host or host:port", short(&host))),
        ),
        Refusal::NoCredential => (
            Code::OperationFailed,
            start("the password is empty and no ssh.identity is configured".into()),
        ),
        Refusal::Source(text) => (Code::OperationFailed, start(text)),
        Refusal::NoSpace {
            mount,
            needed,
            free,
            reserve,
            reserve_percent,
            pending,
        } => {
            let b = crate::migration::space::shown_bytes;
            let others = if pending > 0 {
                format!(", and migrations admitted before it still need {}", b(pending))
            } else {
                String::new()
            };
            (
                Code::OperationFailed,
                start(format!(
                    "the destination file system {mount} has {} free but this migration needs {} there, beyond the {} ({reserve_percent} %) kept free by migrations.disk_reserve_percent{others}; free space there or migrate fewer objects",
                    b(free),
                    b(needed),
                    b(reserve)
                )),
            )
        }
        Refusal::BadName { what, name, object } => (
            Code::InvalidValue,
            start(format!(
                "the {what} \"{name}\" of {object} holds what no file system may see ('/', '..' or a control character); rename it on the source"
            )),
        ),
        Refusal::NotOnSource { clients, domains } => {
            let mut parts = Vec::new();
            if !clients.is_empty() {
                parts.push(format!(
                    "the following clients do not exist on the source: {}",
                    clients.join(", ")
                ));
            }
            if !domains.is_empty() {
                parts.push(format!(
                    "the following domains do not exist on the source{}: {}",
                    if clients.is_empty() {
                        ""
                    } else {
                        " (or not under the client named)"
                    },
                    domains.join(", ")
                ));
            }
            (Code::NotFound, start(parts.join("; ")))
        }
        Refusal::TargetOwnerMissing { owner } => (
            Code::OperationFailed,
            start(format!(
                "the target owner \"{owner}\" does not exist on the destination"
            )),
        ),
        Refusal::ClientExists { login } => (
            Code::ClientExists,
            format!("client with login \"{login}\" already exists"),
        ),
        Refusal::DomainExists { name } => (
            Code::DomainExists,
            format!("domain \"{name}\" already exists"),
        ),
        Refusal::ContentDirExists { domain, path } => (
            Code::DomainExists,
            format!(
                "domain \"{domain}\" already exists: its content directory {} is on the destination and no earlier hostmig migration left it there; move it away to migrate this domain",
                path.display()
            ),
        ),
        Refusal::IpMappedTwice { old, first, second } => (
            Code::InvalidValue,
            format!("IP address {old} is mapped to both {first} and {second}; map it once"),
        ),
        Refusal::NewIpMissing { address } => (
            Code::IpNotFound,
            format!("IP address {address} does not exist on the destination"),
        ),
        Refusal::UnmappedIpMissing { address } => (
            Code::IpNotFound,
            format!("IP address {address} does not exist on the destination; map it to one of the destination's addresses"),
        ),
        Refusal::NewIpOtherType {
            address,
            has,
            wanted,
        } => (
            Code::InvalidValue,
            format!(
                "IP address {address} is {} on the destination, not {}",
                has.as_str(),
                wanted.as_str()
            ),
        ),
        Refusal::DbServerNotConfigured { host, port, kind } => (
            Code::DbServerNotConfigured,
            start(format!(
                "database server {host}:{port} ({}) is not configured on the destination; add it to [[destination.db_servers]] or map to one that is",
                kind.as_str()
            )),
        ),
        Refusal::NoDefaultDbServer { kind, database } => (
            Code::DbServerNotConfigured,
            start(format!(
                "no default {kind} database server is configured on the destination for database {database}; mark one in [[destination.db_servers]] with default = true, or map the database's server"
            )),
        ),
        Refusal::DatabaseExists { name, server } => (
            Code::DatabaseExists,
            format!("database \"{name}\" already exists on {server}"),
        ),
        Refusal::DbUserExists {
            user,
            database,
            server,
        } => (
            Code::DatabaseExists,
            format!(
                "database user \"{user}\" (of database {database}) already exists on {server}"
            ),
        ),
        Refusal::Busy {
            kind,
            name,
            migration,
        } => (
            Code::OperationFailed,
            format!(
                "{} \"{name}\" is already being migrated by migration {migration}",
                kind.as_str()
            ),
        ),
        Refusal::HeldByInterrupted {
            kind,
            name,
            migration,
        } => (
            Code::OperationFailed,
            format!(
                "{} \"{name}\" is held by migration {migration}, which a restart of hostmig interrupted; continue it with <resume><migration_id>{migration}</migration_id></resume> (with <password> if it logged into the source by password) or abandon it with <finish><migration_id>{migration}</migration_id></finish>",
                kind.as_str()
            ),
        ),
        Refusal::NotInterrupted { id } => (
            Code::OperationFailed,
            format!("migration {id} is not interrupted (it is queued, running, being resumed, or it ended); only a migration a restart of hostmig interrupted can be resumed"),
        ),
        Refusal::ResumeNeedsPassword { id } => (
            Code::OperationFailed,
            format!("Unable to resume migration {id}: hostmig does not keep source passwords and no ssh.identity is configured; send the password in <password>"),
        ),
        Refusal::LogDeleted { id } => (
            Code::NotFound,
            format!("the event log of migration {id} was deleted by finish; its report (get_report) is kept"),
        ),
        Refusal::UnknownMigration { id } => (
            Code::NotFound,
            format!("migration {} does not exist", short(&id)),
        ),
        Refusal::StillRunning { id } => (
            Code::OperationFailed,
            format!("migration {id} is still running; resync it after it ended"),
        ),
        Refusal::ResyncNeedsPassword => (
            Code::OperationFailed,
            "Unable to resync: hostmig no longer holds the source's password (it restarted) and no ssh.identity is configured; send the password in <password>".into(),
        ),
        Refusal::NothingDeployed => (
            Code::OperationFailed,
            "Unable to resync: that migration deployed no domain".into(),
        ),
        Refusal::Journal(text) => (
            Code::OperationFailed,
            format!("hostmig's journal failed ({text}); see the server log and try again"),
        ),
    }
}

fn not_ready(what: NotReady) -> String {
    match what {
        NotReady::NoDestination => "the [destination] section is not configured".into(),
        NotReady::NoPanelDb => "destination.panel_db is not configured".into(),
        NotReady::PanelDbUnreachable(e) => {
            format!("the destination panel database is not reachable ({e})")
        }
        NotReady::PanelSchema(e) => format!("the destination panel schema is not usable ({e})"),
        NotReady::DbServerUnreachable { server, reason } => {
            format!("database server {server} is not reachable ({reason})")
        }
    }
}

#[cfg(test)]
mod tests;
