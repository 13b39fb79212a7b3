//! The disk guard of `start` (issue 18): what a migration will write on
//! each of the destination's file systems, measured on the source (the
//! trees' blocks by `du`, the databases' sizes as their server reports
//! them), against what each file system has free beyond
//! `migrations.disk_reserve_percent` and what admitted migrations still
//! need there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::content::TreeKind;
use super::prepare::Prepared;
use super::refusal::Refusal;
use super::status::Item;
use crate::ssh::{Options, Session};
use crate::transfer::commands::shell_quote;

/// What a migration will write on one file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The file system's mount point.
    pub mount: String,
    pub bytes: u64,
    /// Its free bytes when it was measured: what the migration has
    /// written since is taken off what it still needs.
    pub free_then: u64,
}

impl Need {
    /// What the migration still needs: its need less what the file
    /// system lost since it was measured (never below 0).
    pub fn still(&self) -> u64 {
        let written = self
            .free_then
            .saturating_sub(crate::mounts::free_bytes(Path::new(&self.mount)).unwrap_or(0));
        self.bytes.saturating_sub(written)
    }
}

/// The blocks (in bytes) of each of `dirs` on the source, one command;
/// 0 for one that does not exist.
pub fn source_sizes(session: &Session, dirs: &[PathBuf]) -> Result<Vec<u64>, String> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut script = String::new();
    for d in dirs {
        let q = shell_quote(&d.display().to_string());
        script.push_str(&format!(
            "if [ -d {q} ]; then nice -n 19 du -sk -- {q} 2>/dev/null | cut -f1 || echo 0; else echo 0; fi; "
        ));
    }
    let failed = |e: String| format!("cannot measure the content on the source: {e}");
    let mut channel = crate::transfer::commands::start(session, &script, None).map_err(failed)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(&mut channel, 1 << 20), &mut text)
        .map_err(|e| failed(e.to_string()))?;
    crate::transfer::commands::finish(&mut channel).map_err(failed)?;
    let sizes: Vec<u64> = text
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap_or(0).saturating_mul(1024))
        .collect();
    if sizes.len() != dirs.len() {
        return Err(format!(
            "cannot measure the content on the source: du answered {} sizes for {} trees",
            sizes.len(),
            dirs.len()
        ));
    }
    Ok(sizes)
}

/// Measures what `prepared` will write (content by `du` on the source,
/// through `session`, the validation's own; databases by `db_sizes`
/// where the destination server's data directory is on this machine)
/// and refuses it when a file system lacks the room:
/// free bytes less the reserve and less what the `admitted` migrations
/// still need there. Answers the needs, for the Supervisor to count while
/// the migration is admitted, and the sizes known ahead of each tree and
/// database (what its status counts on until the copy lists it). Every
/// file-system call runs on a blocking thread (a hung mount must not hang
/// the Supervisor).
pub async fn check(
    prepared: &Prepared,
    config: &crate::config::Config,
    session: Session,
    db_dirs: &BTreeMap<usize, PathBuf>,
    db_sizes: &BTreeMap<String, u64>,
    admitted: Vec<Need>,
) -> Result<(Vec<Need>, Vec<(Item, u64)>), Refusal> {
    let Some(dest) = config.destination.as_ref() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let trees = prepared.destination_trees(dest);
    let mut ahead: Vec<(Item, u64)> = prepared
        .plan
        .databases
        .iter()
        .filter_map(|p| {
            let item = Item::Database {
                domain: p.domain.clone(),
                name: p.db.name.clone(),
            };
            Some((item, *db_sizes.get(&p.db.name)?))
        })
        .collect();
    let tree_items: Vec<Item> = trees
        .iter()
        .map(|(name, kind, _)| kind.item(name))
        .collect();
    let remote: Vec<PathBuf> = trees
        .iter()
        .map(|(name, kind, _)| match kind {
            TreeKind::Web => prepared.access.layout.vhosts.join(name),
            TreeKind::Mail => prepared.access.layout.mailnames.join(name),
        })
        .collect();
    let local: Vec<PathBuf> = trees.into_iter().map(|(_, _, path)| path).collect();
    let databases: Vec<(PathBuf, u64)> = prepared
        .plan
        .databases
        .iter()
        .filter_map(|p| Some((db_dirs.get(&p.target)?.clone(), *db_sizes.get(&p.db.name)?)))
        .collect();
    let (login, opts) = (prepared.login.clone(), Options::from(config));
    let (host, reserve_percent) = (
        prepared.host.clone(),
        config.migrations.disk_reserve_percent,
    );
    actix_web::rt::task::spawn_blocking(move || {
        // The session may have been closed by the source meanwhile: then
        // once more on a new one.
        let measured = source_sizes(&session, &remote).or_else(|first| {
            drop(session);
            tracing::debug!(source = %host, error = %first, "measuring the content again on a new session");
            Session::connect(&login, &opts)
                .map_err(|e| e.to_string())
                .and_then(|again| source_sizes(&again, &remote))
        });
        // A source that cannot be measured is not refused for it: its
        // content is left out of the guard, and the log says so.
        let sizes = measured.unwrap_or_else(|e| {
            tracing::warn!(source = %host, error = %e, "the content could not be measured; the disk guard counts only the databases");
            vec![0; remote.len()]
        });
        ahead.extend(tree_items.into_iter().zip(sizes.iter().copied()));
        let wanted = local.into_iter().zip(sizes).chain(databases);
        fits(wanted, reserve_percent, &admitted).map(|needs| (needs, ahead))
    })
    .await
    .map_err(|_| Refusal::Source("the thread measuring the content failed".into()))?
}

/// Bytes by path, summed by file system, against each one's room.
fn fits(
    wanted: impl Iterator<Item = (PathBuf, u64)>,
    reserve_percent: u32,
    admitted: &[Need],
) -> Result<Vec<Need>, Refusal> {
    let mut by_mount: BTreeMap<String, u64> = BTreeMap::new();
    for (path, bytes) in wanted {
        if let Some(mount) = crate::mounts::mount_point_of(&path) {
            *by_mount.entry(mount).or_default() += bytes;
        }
    }
    let mut needs = Vec::new();
    for (mount, bytes) in by_mount {
        let (size, free) = crate::mounts::size_and_free(Path::new(&mount))
            .map_err(|e| Refusal::Source(format!("cannot read the free space of {mount}: {e}")))?;
        let reserve = size / 100 * reserve_percent as u64;
        let others: u64 = admitted
            .iter()
            .filter(|n| n.mount == mount)
            .map(Need::still)
            .sum();
        let room = free.saturating_sub(reserve).saturating_sub(others);
        if bytes > room {
            return Err(Refusal::NoSpace {
                mount,
                needed: bytes,
                free,
                reserve,
                reserve_percent,
                pending: others,
            });
        }
        needs.push(Need {
            mount,
            bytes,
            free_then: free,
        });
    }
    Ok(needs)
}

/// The sizes (data and indexes) of the databases `names` on the server of
/// `conn`, as it reports them; a database it does not hold is left out.
pub async fn database_sizes(
    conn: &mut mysql_async::Conn,
    names: &[String],
) -> Result<BTreeMap<String, u64>, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let marks = vec!["?"; names.len()].join(", ");
    let rows: Vec<(String, Option<u64>)> = conn
        .exec(
            format!(
                "SELECT TABLE_SCHEMA, CAST(SUM(DATA_LENGTH + INDEX_LENGTH) AS UNSIGNED) \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks}) GROUP BY TABLE_SCHEMA"
            ),
            names.to_vec(),
        )
        .await?;
    Ok(rows.into_iter().map(|(n, b)| (n, b.unwrap_or(0))).collect())
}

/// Where a destination database server keeps its data, when that is on
/// this machine (a server elsewhere is not guarded here).
pub async fn data_dir(conn: &mut mysql_async::Conn) -> Option<PathBuf> {
    use mysql_async::prelude::Queryable;
    let dir: Option<String> = conn.query_first("SELECT @@datadir").await.ok().flatten();
    dir.map(PathBuf::from).filter(|d| d.is_dir())
}

/// Bytes with a binary unit, for refusals: "12.3 GiB".
pub fn shown_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(shown_bytes(512), "512 B");
        assert_eq!(shown_bytes(1536), "1.5 KiB");
        assert_eq!(shown_bytes(5 << 30), "5.0 GiB");
    }
}
