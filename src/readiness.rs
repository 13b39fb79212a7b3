//! What `check` reports: every piece missing for migrations to run on this
//! destination, named so an operator can fix it: the panel database and
//! the database servers reachable, the roots and staging writable, the SSH
//! identity readable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

/// The missing pieces; empty when migrations can run.
pub async fn missing(config: Arc<Config>) -> Vec<String> {
    let files = config.clone();
    let mut missing = actix_web::rt::task::spawn_blocking(move || missing_files(&files))
        .await
        .unwrap_or_else(|e| vec![format!("the check of the file system failed: {e}")]);
    if let Some(url) = config
        .destination
        .as_ref()
        .and_then(|d| d.panel_db.as_ref())
    {
        // Reachable, with its schema (which `check` never creates: the
        // server does when it starts).
        let reach = async {
            let mut conn = crate::panel::connect_url(url.as_str())
                .await
                .map_err(|e| format!("destination.panel_db is not reachable: {e}"))?;
            let state = crate::panel::schema::state(&mut conn)
                .await
                .map_err(|e| format!("destination.panel_db cannot be read: {e}"))?;
            let _ = conn.disconnect().await;
            use crate::panel::schema::{SchemaState, VERSION};
            match state {
                SchemaState::Current => {}
                SchemaState::Missing => return Err(
                    "destination.panel_db lacks the panel schema; hostmig creates it when it starts: restart hostmig, and check the server log if it could not".to_owned(),
                ),
                SchemaState::Old(found) => return Err(format!(
                    "destination.panel_db has panel schema version {found}, older than this hostmig's ({VERSION}); hostmig upgrades it when it starts: restart hostmig, and check the server log if it could not"
                )),
                SchemaState::Newer(found) => return Err(format!(
                    "destination.panel_db has panel schema version {found}, newer than this hostmig's ({VERSION}); run the newer hostmig"
                )),
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(Duration::from_secs(10), reach).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => missing.push(e),
            Err(_) => missing.push("destination.panel_db did not answer within 10 s".to_owned()),
        }
    }
    // Every configured database server answers (databases go there).
    for server in config.destination.iter().flat_map(|d| &d.db_servers) {
        let reach = async {
            let opts = server.opts()?;
            let conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| crate::db::server_text(&e))?;
            let _ = conn.disconnect().await;
            Ok::<(), String>(())
        };
        let label = server.label();
        match tokio::time::timeout(Duration::from_secs(10), reach).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => missing.push(format!(
                "database server {label} of destination.db_servers is not reachable: {e}"
            )),
            Err(_) => missing.push(format!(
                "database server {label} of destination.db_servers did not answer within 10 s"
            )),
        }
    }
    missing
}

fn missing_files(config: &Config) -> Vec<String> {
    let mut missing = Vec::new();
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
