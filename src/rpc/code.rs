//! The one table of protocol error codes (PROTOCOL.md §4). Every error that
//! reaches a client is converted to an [`RpcError`] at the edge, here.

use std::fmt;

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
