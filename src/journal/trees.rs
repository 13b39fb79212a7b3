//! The journal's record of content trees: which trees hostmig created on
//! the destination, and the `conf/` files it rewrote in each.

use std::collections::HashSet;

use actix::{Handler, Message};
use rusqlite::{params, OptionalExtension};

use super::{Journal, JournalError};
use crate::transfer::conf::{Rewrites, Stamp};

/// A content tree this migration is about to create or update.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordTree {
    pub path: String,
    pub domain: String,
    pub migration_id: u64,
}

/// Which of these paths are trees hostmig created.
#[derive(Message)]
#[rtype(result = "Result<HashSet<String>, JournalError>")]
pub struct KnownTrees(pub Vec<String>);

/// The files rewritten in a tree (empty when none or unknown).
#[derive(Message)]
#[rtype(result = "Result<Rewrites, JournalError>")]
pub struct LoadRewrites(pub String);

/// Replaces the files rewritten in a tree.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct SaveRewrites {
    pub path: String,
    pub rewrites: Rewrites,
}

/// The trees recorded for these domains: (domain, path), by path.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, String)>, JournalError>")]
pub struct LoadTreesOf(pub Vec<String>);

impl Handler<LoadTreesOf> for Journal {
    type Result = Result<Vec<(String, String)>, JournalError>;

    fn handle(&mut self, msg: LoadTreesOf, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt =
            conn.prepare("SELECT domain, path FROM content_trees WHERE domain = ?1 ORDER BY path")?;
        let mut out = Vec::new();
        for domain in msg.0 {
            let rows = stmt.query_map(params![domain], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }
}

impl Handler<RecordTree> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordTree, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT INTO content_trees (path, domain, migration_id, updated_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT(path) DO UPDATE SET domain = ?2, migration_id = ?3, updated_at = excluded.updated_at",
            params![msg.path, msg.domain, msg.migration_id as i64],
        )?;
        Ok(())
    }
}

impl Handler<KnownTrees> for Journal {
    type Result = Result<HashSet<String>, JournalError>;

    fn handle(&mut self, msg: KnownTrees, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare("SELECT 1 FROM content_trees WHERE path = ?1")?;
        let mut known = HashSet::new();
        for path in msg.0 {
            if stmt.exists(params![path])? {
                known.insert(path);
            }
        }
        Ok(known)
    }
}

/// Rewritten files as stored: `[[hex path, size, mtime], ...]`.
type StoredRewrites = Vec<(String, u64, i64)>;

impl Handler<LoadRewrites> for Journal {
    type Result = Result<Rewrites, JournalError>;

    fn handle(&mut self, msg: LoadRewrites, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let text: Option<String> = conn
            .query_row(
                "SELECT rewrites FROM content_trees WHERE path = ?1",
                params![msg.0],
                |r| r.get(0),
            )
            .optional()?;
        let stored: StoredRewrites = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(stored
            .into_iter()
            .filter_map(|(hex, size, mtime)| Some((from_hex(&hex)?, Stamp { size, mtime })))
            .collect())
    }
}

impl Handler<SaveRewrites> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: SaveRewrites, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let stored: StoredRewrites = msg
            .rewrites
            .iter()
            .map(|(p, s)| (to_hex(p), s.size, s.mtime))
            .collect();
        let text = serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned());
        conn.execute(
            "UPDATE content_trees SET rewrites = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE path = ?1",
            params![msg.path, text],
        )?;
        Ok(())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The trees a migration recorded for domains no migration deployed
/// (what an abandoned migration leaves behind), by path.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, JournalError>")]
pub struct LoadUndeployedTrees(pub u64);

/// Forgets a tree (removed from the destination).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct ForgetTree(pub String);

impl Handler<LoadUndeployedTrees> for Journal {
    type Result = Result<Vec<String>, JournalError>;

    fn handle(&mut self, msg: LoadUndeployedTrees, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare(
            "SELECT path FROM content_trees t WHERE migration_id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM deployed_domains d WHERE d.domain = t.domain) ORDER BY path",
        )?;
        let rows = stmt.query_map(params![msg.0 as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }
}

impl Handler<ForgetTree> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: ForgetTree, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute("DELETE FROM content_trees WHERE path = ?1", params![msg.0])?;
        Ok(())
    }
}
