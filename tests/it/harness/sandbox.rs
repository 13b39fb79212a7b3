//! The sandbox's servers for a test: a runtime for their async calls, and a
//! source and a destination started together.

use std::path::Path;

use hostmig::sandbox::{Destination, Profile, Source};

/// A runtime for the sandbox's and the drivers' async calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A generated source in `root/src` and a destination with `db_servers`
/// database servers in `root/dst`, started together.
pub fn start_both(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    profile: Profile,
    seed: u64,
    db_servers: usize,
) -> (Source, Destination) {
    rt.block_on(async {
        (
            Source::start(&root.join("src"), profile, seed)
                .await
                .expect("source"),
            Destination::start(&root.join("dst"), db_servers)
                .await
                .expect("destination"),
        )
    })
}
