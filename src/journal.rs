//! The journal: `journal.sqlite` in the state directory (WAL), the durable
//! record of server runs and migrations. One actor on its own thread owns
//! the connection on a thread of its own (an arbiter nothing else uses);
//! everything else writes through its messages.

use std::path::Path;

use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use rusqlite::{params, Connection, OptionalExtension};

use crate::db::DbObjectKind;

/// The schema this build writes; older files are upgraded step by step.
pub const SCHEMA_VERSION: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("the journal {path} has schema version {found}, newer than this hostmig ({SCHEMA_VERSION}); run the newer hostmig or move the file away")]
    TooNew { path: String, found: i64 },
    #[error("the journal is closed")]
    Closed,
    #[error("the journal is not answering: {0}")]
    NotAnswering(String),
    #[error("journal write failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub struct Journal {
    conn: Option<Connection>,
    run_id: Option<i64>,
}

/// Opens (creating or upgrading) the journal at `path`.
pub fn open(path: &Path) -> Result<Journal, JournalError> {
    let shown = path.display().to_string();
    let open_err = |source| JournalError::Open {
        path: shown.clone(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(open_err)?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::TooNew { path: shown, found });
    }
    let tx = conn.transaction().map_err(open_err)?;
    if found < 1 {
        tx.execute_batch(SCHEMA_V1).map_err(open_err)?;
    }
    if found < 2 {
        tx.execute_batch(SCHEMA_V2).map_err(open_err)?;
    }
    if found < 3 {
        tx.execute_batch(SCHEMA_V3).map_err(open_err)?;
    }
    if found < 4 {
        tx.execute_batch(SCHEMA_V4).map_err(open_err)?;
    }
    if found < 5 {
        tx.execute_batch(resume::SCHEMA_V5).map_err(open_err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    tx.commit().map_err(open_err)?;
    Ok(Journal {
        conn: Some(conn),
        run_id: None,
    })
}

const SCHEMA_V1: &str = "
CREATE TABLE server_runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    stopped_at  TEXT,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL
);
CREATE TABLE migrations (
    id           INTEGER PRIMARY KEY,
    state        TEXT NOT NULL,
    source_host  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    plan         TEXT,
    result       TEXT
);
CREATE TABLE migration_events (
    id            INTEGER PRIMARY KEY,
    migration_id  INTEGER NOT NULL REFERENCES migrations(id),
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX migration_events_by_migration ON migration_events(migration_id, id);
";

/// Content trees hostmig created on the destination (a tree that exists
/// without panel records is reused only when it is here), the `conf/`
/// files it rewrote in each, and the domains each migration deployed.
const SCHEMA_V2: &str = "
CREATE TABLE content_trees (
    path          TEXT PRIMARY KEY,
    domain        TEXT NOT NULL,
    migration_id  INTEGER NOT NULL,
    updated_at    TEXT NOT NULL,
    rewrites      TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE deployed_domains (
    migration_id  INTEGER NOT NULL,
    domain        TEXT NOT NULL,
    PRIMARY KEY (migration_id, domain)
);
";

/// What database copies created on target servers, recorded before it is
/// created: a migration's objects not kept (their domain was not deployed)
/// are dropped when it ends, or when hostmig starts after a crash.
const SCHEMA_V3: &str = "
CREATE TABLE created_db_objects (
    migration_id  INTEGER NOT NULL,
    domain        TEXT NOT NULL,
    server        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    kept          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (migration_id, server, kind, name)
);
";

/// Each migration's report (JSON), kept across `finish` and restarts.
const SCHEMA_V4: &str = "
CREATE TABLE reports (
    migration_id  INTEGER PRIMARY KEY,
    report        TEXT NOT NULL
);
";

impl Actor for Journal {
    type Context = Context<Self>;
}

/// Asks the journal and waits for its answer; a journal that does not
/// answer (its thread stopped) is one more `JournalError`.
pub async fn ask<M, T>(journal: &Addr<Journal>, msg: M) -> Result<T, JournalError>
where
    M: Message<Result = Result<T, JournalError>> + Send + 'static,
    T: Send + 'static,
    Journal: Handler<M>,
{
    journal
        .send(msg)
        .await
        .map_err(|e| JournalError::NotAnswering(e.to_string()))?
}

/// Records that this server process started; answers whether the previous
/// run ended without recording its stop (a crash or a kill).
#[derive(Message)]
#[rtype(result = "Result<RunStarted, JournalError>")]
pub struct RecordRunStarted {
    pub pid: u32,
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStarted {
    pub run_id: i64,
    pub previous_run_unclean: bool,
}

/// Records a clean stop and closes the connection (checkpointing the WAL).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct Close;

impl Handler<RecordRunStarted> for Journal {
    type Result = Result<RunStarted, JournalError>;

    fn handle(&mut self, msg: RecordRunStarted, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let previous: Option<Option<String>> = conn
            .query_row(
                "SELECT stopped_at FROM server_runs ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        conn.execute(
            "INSERT INTO server_runs (started_at, pid, version) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, ?2)",
            params![msg.pid, msg.version],
        )?;
        let run_id = conn.last_insert_rowid();
        self.run_id = Some(run_id);
        Ok(RunStarted {
            run_id,
            previous_run_unclean: matches!(previous, Some(None)),
        })
    }
}

impl Handler<Close> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) -> Self::Result {
        let result = match (self.conn.take(), self.run_id) {
            (Some(conn), Some(run_id)) => {
                let res = conn.execute(
                    "UPDATE server_runs SET stopped_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
                    params![run_id],
                );
                let closed = conn.close().map_err(|(_, e)| e);
                res.map(|_| ()).and(closed).map_err(JournalError::from)
            }
            (Some(conn), None) => conn.close().map_err(|(_, e)| JournalError::from(e)),
            (None, _) => Ok(()),
        };
        ctx.stop();
        result
    }
}

/// Where a migration is in its life, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    Queued,
    Running,
    /// hostmig stopped (a crash, a kill, a reboot) while it ran.
    Interrupted,
    Finished,
    /// Ended by `finish`.
    Stopped,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Queued => "queued",
            MigrationState::Running => "running",
            MigrationState::Interrupted => "interrupted",
            MigrationState::Finished => "finished",
            MigrationState::Stopped => "stopped",
        }
    }

    /// A state as stored; anything else reads as interrupted (it did not
    /// end as far as the journal knows).
    pub fn parse(text: &str) -> Self {
        match text {
            "queued" => MigrationState::Queued,
            "running" => MigrationState::Running,
            "finished" => MigrationState::Finished,
            "stopped" => MigrationState::Stopped,
            _ => MigrationState::Interrupted,
        }
    }

    pub fn ended(self) -> bool {
        matches!(self, MigrationState::Finished | MigrationState::Stopped)
    }
}

/// A migration as the journal holds it.
#[derive(Debug, Clone)]
pub struct StoredMigration {
    pub id: u64,
    pub state: MigrationState,
    /// The plan summary (JSON, no secrets).
    pub plan: String,
    /// The final status (JSON), once ended.
    pub result: Option<String>,
}

/// Every migration, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<StoredMigration>, JournalError>")]
pub struct LoadMigrations;

/// A migration admitted by the Supervisor (state `queued`).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordMigration {
    pub id: u64,
    pub source_host: String,
    pub plan: String,
}

/// Every migration for `list`, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<ListRow>, JournalError>")]
pub struct LoadListing;

#[derive(Debug, Clone)]
pub struct ListRow {
    pub id: u64,
    pub state: MigrationState,
    pub source: String,
    /// ISO 8601, UTC: when it was admitted and last changed.
    pub created: String,
    pub updated: String,
    /// Its report (JSON), when it has one.
    pub report: Option<String>,
}

impl Handler<LoadListing> for Journal {
    type Result = Result<Vec<ListRow>, JournalError>;

    fn handle(&mut self, _: LoadListing, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare(
            "SELECT m.id, m.state, m.source_host, m.created_at, m.updated_at, r.report              FROM migrations m LEFT JOIN reports r ON r.migration_id = m.id ORDER BY m.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ListRow {
                id: r.get::<_, i64>(0)? as u64,
                state: MigrationState::parse(&r.get::<_, String>(1)?),
                source: r.get(2)?,
                created: r.get(3)?,
                updated: r.get(4)?,
                report: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// A migration's new state, with its final status once it ended.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct UpdateMigration {
    pub id: u64,
    pub state: MigrationState,
    pub result: Option<String>,
}

impl Handler<LoadMigrations> for Journal {
    type Result = Result<Vec<StoredMigration>, JournalError>;

    fn handle(&mut self, _: LoadMigrations, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn
            .prepare("SELECT id, state, COALESCE(plan, ''), result FROM migrations ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredMigration {
                id: r.get::<_, i64>(0)? as u64,
                state: MigrationState::parse(&r.get::<_, String>(1)?),
                plan: r.get(2)?,
                result: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Handler<RecordMigration> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordMigration, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT INTO migrations (id, state, source_host, created_at, updated_at, plan)
             VALUES (?1, 'queued', ?2, strftime('%Y-%m-%dT%H:%M:%fZ','now'), strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?3)",
            params![msg.id as i64, msg.source_host, msg.plan],
        )?;
        record_event(conn, msg.id, "queued", "")?;
        Ok(())
    }
}

impl Handler<UpdateMigration> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: UpdateMigration, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "UPDATE migrations SET state = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), result = COALESCE(?3, result) WHERE id = ?1",
            params![msg.id as i64, msg.state.as_str(), msg.result],
        )?;
        record_event(
            conn,
            msg.id,
            msg.state.as_str(),
            msg.result.as_deref().unwrap_or(""),
        )?;
        Ok(())
    }
}

/// Replaces a migration's report (JSON).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct SaveReport {
    pub migration_id: u64,
    pub report: String,
}

/// A migration's report (JSON), if the journal has one.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, JournalError>")]
pub struct LoadReport(pub u64);

impl Handler<SaveReport> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: SaveReport, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT INTO reports (migration_id, report) VALUES (?1, ?2)
             ON CONFLICT(migration_id) DO UPDATE SET report = excluded.report",
            params![msg.migration_id as i64, msg.report],
        )?;
        Ok(())
    }
}

impl Handler<LoadReport> for Journal {
    type Result = Result<Option<String>, JournalError>;

    fn handle(&mut self, msg: LoadReport, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        Ok(conn
            .query_row(
                "SELECT report FROM reports WHERE migration_id = ?1",
                params![msg.0 as i64],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// The databases deployed for these domains: (domain, server, name), as
/// the copies that made them recorded them (kept: their domain was
/// deployed).
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, String, String)>, JournalError>")]
pub struct LoadDeployedDatabases(pub Vec<String>);

impl Handler<LoadDeployedDatabases> for Journal {
    type Result = Result<Vec<(String, String, String)>, JournalError>;

    fn handle(&mut self, msg: LoadDeployedDatabases, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare(
            "SELECT DISTINCT domain, server, name FROM created_db_objects \
             WHERE domain = ?1 AND kind = 'database' AND kept = 1 ORDER BY name",
        )?;
        let mut out = Vec::new();
        for domain in msg.0 {
            let rows =
                stmt.query_map(params![domain], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }
}

/// A domain a migration deployed (its records are on the destination).
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordDeployed {
    pub migration_id: u64,
    pub domain: String,
}

/// The domains a migration deployed, in name order.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, JournalError>")]
pub struct LoadDeployed(pub u64);

impl Handler<RecordDeployed> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordDeployed, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT OR IGNORE INTO deployed_domains (migration_id, domain) VALUES (?1, ?2)",
            params![msg.migration_id as i64, msg.domain],
        )?;
        // The domain's databases and users are its own now.
        conn.execute(
            "UPDATE created_db_objects SET kept = 1 WHERE migration_id = ?1 AND domain = ?2 AND kind != 'scratch'",
            params![msg.migration_id as i64, msg.domain],
        )?;
        Ok(())
    }
}

impl Handler<LoadDeployed> for Journal {
    type Result = Result<Vec<String>, JournalError>;

    fn handle(&mut self, msg: LoadDeployed, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare(
            "SELECT domain FROM deployed_domains WHERE migration_id = ?1 ORDER BY domain",
        )?;
        let rows = stmt.query_map(params![msg.0 as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }
}

/// A database object a copy is about to create on a target server.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct RecordDbObject {
    pub migration_id: u64,
    pub domain: String,
    /// The server's `host:port` as configured.
    pub server: String,
    /// A user is named `user@host`.
    pub kind: DbObjectKind,
    pub name: String,
    /// The database a scratch database is of (empty for the others).
    pub of_database: String,
}

/// A migration's database objects not kept: (server, kind, name); its
/// scratch databases only with `scratch` (an interrupted migration that
/// goes on keeps them: its copies catch up from them).
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, DbObjectKind, String)>, JournalError>")]
pub struct LoadUnkeptDbObjects {
    pub migration_id: u64,
    pub scratch: bool,
}

/// Forgets a migration's database objects on one server (dropped or
/// kept); its scratch databases only with `scratch`.
#[derive(Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct ForgetDbObjects {
    pub migration_id: u64,
    pub server: String,
    pub scratch: bool,
}

impl Handler<RecordDbObject> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: RecordDbObject, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "INSERT OR IGNORE INTO created_db_objects (migration_id, domain, server, kind, name, of_database) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![msg.migration_id as i64, msg.domain, msg.server, msg.kind.as_str(), msg.name, msg.of_database],
        )?;
        Ok(())
    }
}

impl Handler<LoadUnkeptDbObjects> for Journal {
    type Result = Result<Vec<(String, DbObjectKind, String)>, JournalError>;

    fn handle(&mut self, msg: LoadUnkeptDbObjects, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        let mut stmt = conn.prepare(
            "SELECT server, kind, name FROM created_db_objects WHERE migration_id = ?1 AND kept = 0 AND (?2 OR kind != 'scratch') ORDER BY server, kind, name",
        )?;
        let rows = stmt.query_map(params![msg.migration_id as i64, msg.scratch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (server, kind, name) = row?;
            // A kind this build does not know is left for the build that wrote it.
            if let Some(kind) = DbObjectKind::parse(&kind) {
                out.push((server, kind, name));
            }
        }
        Ok(out)
    }
}

impl Handler<ForgetDbObjects> for Journal {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, msg: ForgetDbObjects, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.as_ref().ok_or(JournalError::Closed)?;
        conn.execute(
            "DELETE FROM created_db_objects WHERE migration_id = ?1 AND server = ?2 AND kept = 0 AND (?3 OR kind != 'scratch')",
            params![msg.migration_id as i64, msg.server, msg.scratch],
        )?;
        Ok(())
    }
}

fn record_event(conn: &Connection, id: u64, kind: &str, detail: &str) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO migration_events (migration_id, at, kind, detail) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?2, ?3)",
        params![id as i64, kind, detail],
    )?;
    Ok(())
}

mod resume;
mod trees;
pub use resume::*;
pub use trees::*;

#[cfg(test)]
mod tests;
