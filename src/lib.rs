//! hostmig: moves web-hosting accounts between servers, speaking the Plesk
//! API RPC `migration` operator. ARCHITECTURE.md has the map.

pub mod caps;
pub mod client;
pub mod config;
pub mod db;
pub mod journal;
pub mod migration;
pub mod mounts;
pub mod observe;
pub mod page;
pub mod panel;
pub mod password;
pub mod priority;
pub mod readiness;
pub mod remap;
pub mod retry;
pub mod rpc;
pub mod sandbox;
pub mod secret;
pub mod serve;
pub mod ssh;
pub mod state;
pub mod supervisor;
pub mod transfer;
