//! What the journal keeps so that a migration interrupted by a restart of
//! hostmig (a crash, a kill, a reboot) can go on where it stopped: its
//! request (never its password), when its work first began, how far its
//! steps were, the clients it deployed, and which scratch database holds
//! which database's rows.

use actix::{Handler, Message};
use rusqlite::{params, OptionalExtension};

use super::{Journal, JournalError};

/// Each migration's request and progress; the clients it deployed; which
/// database each scratch database is of.
pub(super) const SCHEMA_V5: &str = "
CREATE TABLE migration_requests (
    migration_id  INTEGER PRIMARY KEY,
    request       TEXT NOT NULL,
    began_at      INTEGER,
    total         INTEGER NOT NULL DEFAULT 0,
    completed     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE deployed_clients (
    migration_id  INTEGER NOT NULL,
    login         TEXT NOT NULL,
    PRIMARY KEY (migration_id, login)
);
ALTER TABLE created_db_objects ADD COLUMN of_database TEXT NOT NULL DEFAULT '';
";

/// A migration's request as it can be run again (JSON, no secret).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordRequest {
    pub migration_id: u64,
    pub request: String,
    /// Its work steps, fixed once planned.
    pub total: u64,
}

/// The migration's work began (Unix seconds); kept from its first run.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordBegan {
    pub migration_id: u64,
    pub at: i64,
}

/// Work steps done so far (never lowered).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordSteps {
    pub migration_id: u64,
    pub completed: u64,
}

/// A client a migration deployed.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordDeployedClient {
    pub migration_id: u64,
    pub login: String,
}

/// What an interrupted migration needs to go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumable {
    pub request: String,
    pub began_at: Option<i64>,
    pub total: u64,
    pub completed: u64,
    pub clients: Vec<String>,
    pub domains: Vec<String>,
    /// (server, database, scratch database) not yet published.
    pub scratches: Vec<(String, String, String)>,
}

#[derive(Message)]
#[rtype(result = "Result<Option<Resumable>, JournalError>")]
pub struct LoadResumable(pub u64);

impl Handler<RecordRequest> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordRequest, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT INTO migration_requests (migration_id, request, total, completed) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(migration_id) DO UPDATE SET request = excluded.request",
            params![msg.migration_id as i64, msg.request, msg.total as i64],
        )?;
        Ok(())
    }
}

impl Handler<RecordBegan> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordBegan, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "UPDATE migration_requests SET began_at = COALESCE(began_at, ?2) WHERE migration_id = ?1",
            params![msg.migration_id as i64, msg.at],
        )?;
        Ok(())
    }
}

impl Handler<RecordSteps> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordSteps, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "UPDATE migration_requests SET completed = MAX(completed, ?2) WHERE migration_id = ?1",
            params![msg.migration_id as i64, msg.completed as i64],
        )?;
        Ok(())
    }
}

impl Handler<RecordDeployedClient> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordDeployedClient, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT OR IGNORE INTO deployed_clients (migration_id, login) VALUES (?1, ?2)",
            params![msg.migration_id as i64, msg.login],
        )?;
        Ok(())
    }
}

impl Handler<LoadResumable> for Journal {
    type Result = Result<Option<Resumable>, JournalError>;

    fn handle(&mut self, msg: LoadResumable, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let id = msg.0 as i64;
        let row: Option<(String, Option<i64>, i64, i64)> = conn
            .query_row(
                "SELECT request, began_at, total, completed FROM migration_requests WHERE migration_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((request, began_at, total, completed)) = row else {
            return Ok(None);
        };
        let names = |sql: &str| -> Result<Vec<String>, JournalError> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params![id], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        };
        let clients =
            names("SELECT login FROM deployed_clients WHERE migration_id = ?1 ORDER BY login")?;
        let domains =
            names("SELECT domain FROM deployed_domains WHERE migration_id = ?1 ORDER BY domain")?;
        let mut stmt = conn.prepare(
            "SELECT server, of_database, name FROM created_db_objects \
             WHERE migration_id = ?1 AND kind = 'scratch' AND of_database != '' ORDER BY name",
        )?;
        let scratches = stmt
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Resumable {
            request,
            began_at,
            total: total.max(0) as u64,
            completed: completed.max(0) as u64,
            clients,
            domains,
            scratches,
        }))
    }
}
