//! What `check` reports: every piece missing for migrations to run on this
//! destination, named so an operator can fix it. Blocking: it touches the
//! file system, so it runs on a blocking thread.

use std::path::Path;

use crate::config::Config;

/// The missing pieces; empty when migrations can run.
pub fn missing(config: &Config) -> Vec<String> {
    let mut missing =
        vec!["the migration engine is not available in this version of hostmig".to_owned()];
    match &config.destination {
        None => missing.push(
            "the [destination] section is not configured (panel_db, vhosts_root, mailnames_root, dump_dir)"
                .to_owned(),
        ),
        Some(dest) => {
            if dest.panel_db.is_none() {
                missing.push("destination.panel_db is not configured".to_owned());
            }
            for (key, dir) in [
                ("destination.vhosts_root", &dest.vhosts_root),
                ("destination.mailnames_root", &dest.mailnames_root),
                ("destination.dump_dir", &dest.dump_dir),
            ] {
                if let Err(reason) = writable(dir) {
                    missing.push(format!("{key} {} is not writable: {reason}", dir.display()));
                }
            }
        }
    }
    if let Some(identity) = &config.ssh.identity {
        if let Err(e) = std::fs::File::open(identity) {
            missing.push(format!(
                "ssh.identity {} is not readable: {e}",
                identity.display()
            ));
        }
    }
    missing
}

/// Creates and removes a probe file: the only honest test of writability.
fn writable(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err("it does not exist or is not a directory".to_owned());
    }
    let probe = dir.join(format!(".hostmig-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())
}
