//! Step 2 of a migration (DESIGN.md §2): the source's layout and the
//! credentials of its panel database, read over SSH.

use std::path::{Path, PathBuf};

use super::psa_conf::{self, Layout};
use super::PanelError;
use crate::config;
use crate::secret::Secret;
use crate::ssh::Session;

/// How to reach the source's panel database (through a tunnel).
#[derive(Clone)]
pub struct PanelDb {
    /// Host and port as the source sees them.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
}

/// What discovery learns about a source.
#[derive(Clone)]
pub struct SourceAccess {
    pub layout: Layout,
    pub panel_db: PanelDb,
}

/// Largest psa.conf or .psa.shadow hostmig reads.
const MAX_FILE: u64 = 256 * 1024;

/// Reads psa.conf and .psa.shadow (or the `[[sources]]` override paths).
pub fn discover(
    session: &Session,
    overrides: Option<&config::Source>,
) -> Result<SourceAccess, PanelError> {
    let conf_path = overrides
        .and_then(|o| o.psa_conf.clone())
        .unwrap_or_else(|| PathBuf::from("/etc/psa/psa.conf"));
    let shadow_path = overrides
        .and_then(|o| o.psa_shadow.clone())
        .unwrap_or_else(|| PathBuf::from("/etc/psa/.psa.shadow"));
    let conf = text(session, &conf_path)?;
    let shadow = text(session, &shadow_path)?;
    let password = shadow
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_owned();
    if password.is_empty() {
        return Err(PanelError::BadFile {
            path: shadow_path.display().to_string(),
            reason: "it holds no password".into(),
        });
    }
    let mut panel_db = PanelDb {
        host: "localhost".into(),
        port: 3306,
        user: "admin".into(),
        password: Secret::new(password),
        database: "psa".into(),
    };
    if let Some(url) = overrides.and_then(|o| o.panel_db.as_ref()) {
        panel_db.host = url.host_str().unwrap_or("localhost").to_owned();
        panel_db.port = url.port().unwrap_or(3306);
        if !url.username().is_empty() {
            panel_db.user = url.username().to_owned();
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() {
            panel_db.database = db.to_owned();
        }
    }
    Ok(SourceAccess {
        layout: psa_conf::parse(&conf),
        panel_db,
    })
}

fn text(session: &Session, path: &Path) -> Result<String, PanelError> {
    let bytes = session.read_file(path, MAX_FILE)?;
    String::from_utf8(bytes).map_err(|_| PanelError::BadFile {
        path: path.display().to_string(),
        reason: "it is not UTF-8 text".into(),
    })
}
