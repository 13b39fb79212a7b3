//! The API: HTTP endpoint, authentication, the packet codec (pure: bytes in,
//! typed packet or typed error out, and back), the error-code table, and
//! RpcFront, which runs checked packets, and the status board it writes.

pub mod auth;
pub mod board;
pub mod code;
pub mod front;
pub mod http;
pub mod packet;
pub mod response;
pub mod tls;
pub mod xml;
