//! One integration-test binary (links once): each module is an area.

mod archive;
mod catch_up;
mod client;
mod codec_props;
mod content;
mod databases;
mod deploy;
mod engine;
mod faults;
mod harness;
mod migrate_content;
mod migrate_databases;
mod page;
mod panel;
mod real_source;
mod restart;
mod rpc;
mod sandbox;
mod sandbox_command;
mod ssh;
mod two_hosts;
mod unpack;
