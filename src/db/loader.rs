//! Loading a database's rows into the target: connections that take
//! chunks from a shared queue, read each on a source connection of the
//! snapshot, stream it into the scratch database (by LOAD DATA LOCAL
//! INFILE fed from the rows as they arrive, or by size-bounded INSERTs
//! where the target refuses that), and verify it by the same checksum SQL
//! on both servers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use futures_util::future;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::copy::Counters;
use super::rows::{self, Checksum, Chunk, Table, TableKind};
use super::{connect, DbError, TARGET_SESSION};

/// A target connection that, dropped with a statement in flight (a stopped
/// or failed copy), is closed at once instead of drained: mysql_async
/// would otherwise finish the statement first, and a LOAD DATA whose input
/// was cut waits for input until the server's read timeout, holding its
/// table (so the clean-up's DROP waits too). Closed on a thread without an
/// async runtime, the connection's socket is simply shut; the server ends
/// the statement and rolls it back.
pub(super) struct Abandonable(pub Option<Conn>);

impl Drop for Abandonable {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            let closed = std::thread::Builder::new()
                .name("hostmig-db-close".into())
                .spawn(move || drop(conn));
            if let Err(e) = closed {
                tracing::warn!(error = %e, "cannot start the thread that closes an abandoned connection");
            }
        }
    }
}

/// Largest INSERT hostmig builds (a single larger row goes alone).
const STATEMENT_BYTES: usize = 1024 * 1024;

/// What every loading connection shares.
pub(super) struct Loader<'a> {
    pub db: &'a str,
    pub stage: &'a str,
    pub tables: &'a [Table],
    pub counters: &'a Counters,
    pub max_packet: usize,
    pub target: &'a Opts,
    pub target_label: &'a str,
    /// The target takes LOAD DATA LOCAL INFILE (until it refuses once).
    pub load_data: Cell<bool>,
    /// Ids of the target connections opened, so that a stopped or failed
    /// copy can end their statements before it drops what it created.
    pub connections: &'a RefCell<Vec<u32>>,
}

impl<'a> Loader<'a> {
    /// The loader of `job`'s rows into database `into` on its target.
    pub fn of(
        job: &'a super::DbJob,
        into: &'a str,
        tables: &'a [Table],
        counters: &'a Counters,
        max_packet: usize,
        connections: &'a RefCell<Vec<u32>>,
    ) -> Self {
        Loader {
            db: &job.name,
            stage: into,
            tables,
            counters,
            max_packet,
            target: &job.target,
            target_label: &job.target_label,
            load_data: Cell::new(job.load_data),
            connections,
        }
    }
}

/// Why a LOAD DATA did not load a chunk.
enum Refused {
    /// The target does not allow it: the chunk goes by INSERTs instead.
    LocalInfile(String),
    Other(DbError),
}

/// Bytes of LOAD DATA input sent at a time.
const LOAD_BLOCK: usize = 256 * 1024;

impl Loader<'_> {
    /// Takes chunks from `queue` until it is empty: each is read on `src`,
    /// written by a target connection of this worker, then verified.
    pub async fn work(
        &self,
        src: &mut Conn,
        queue: &RefCell<VecDeque<Chunk>>,
    ) -> Result<(), DbError> {
        let mut dst = Abandonable(None);
        loop {
            let Some(chunk) = queue.borrow_mut().pop_front() else {
                break;
            };
            if dst.0.is_none() {
                let what = format!("the target database server {}", self.target_label);
                let mut conn = connect(self.target, TARGET_SESSION, &what).await?;
                self.connections.borrow_mut().push(conn.id());
                self.allow_history(&mut conn).await?;
                dst.0 = Some(conn);
            }
            let Some(conn) = dst.0.as_mut() else { break };
            self.copy(src, conn, &chunk).await?;
            self.verify(src, conn, &chunk).await?;
        }
        if let Some(conn) = dst.0.take() {
            let _ = conn.disconnect().await;
        }
        Ok(())
    }

    /// Lets a loading connection write the history rows of
    /// system-versioned tables with their own period times, when the
    /// database has such tables: a target that cannot (before MariaDB
    /// 10.11, or with secure_timestamp set) is a named error for the
    /// table, never a copy without its history.
    pub(super) async fn allow_history(&self, conn: &mut Conn) -> Result<(), DbError> {
        let Some(table) = self.tables.iter().find(|t| t.kind == TableKind::Versioned) else {
            return Ok(());
        };
        conn.query_drop("SET SESSION system_versioning_insert_history = 1")
            .await
            .map_err(|e| DbError::Uncarriable {
                table: table.name.clone(),
                why: format!(
                    "it is system-versioned, and {} cannot write its history rows as they are ({}); \
                     a target needs MariaDB 10.11 or later with secure_timestamp = NO",
                    self.target_label,
                    super::server_text(&e)
                ),
            })
    }

    /// Streams a chunk's rows into the target: by LOAD DATA LOCAL INFILE
    /// fed from the rows as they arrive, or, where the target does not
    /// allow it, by size-bounded INSERTs.
    pub(super) async fn copy(
        &self,
        src: &mut Conn,
        dst: &mut Conn,
        chunk: &Chunk,
    ) -> Result<(), DbError> {
        if self.load_data.get() {
            match self.load(src, dst, chunk).await {
                Err(Refused::LocalInfile(e)) => {
                    if self.load_data.replace(false) {
                        tracing::info!(target_server = %self.target_label, error = %e, "the target does not allow LOAD DATA LOCAL INFILE; rows go as INSERT statements");
                    }
                }
                Err(Refused::Other(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
        self.insert(src, dst, chunk).await
    }

    /// One LOAD DATA per chunk, its data streamed in blocks of 256 KiB
    /// while the rows are read.
    async fn load(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), Refused> {
        let table = &self.tables[chunk.table];
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
        dst.set_infile_handler(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
            });
            Ok(Box::pin(stream) as mysql_async::InfileData)
        });
        let loading = dst.query_drop(table.load(self.stage));
        let read = async {
            let mut result = src
                .query_iter(table.select(self.db, chunk))
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?;
            let mut block = Vec::with_capacity(LOAD_BLOCK + 64 * 1024);
            while let Some(row) = result
                .next()
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?
            {
                let before = block.len();
                rows::push_line(&mut block, (0..row.len()).filter_map(|i| row.as_ref(i)));
                self.counters.rows.set(self.counters.rows.get() + 1);
                self.counters
                    .bytes
                    .set(self.counters.bytes.get() + (block.len() - before) as u64);
                if block.len() >= LOAD_BLOCK {
                    let full =
                        std::mem::replace(&mut block, Vec::with_capacity(LOAD_BLOCK + 64 * 1024));
                    if !send_blocks(&tx, full).await {
                        // The load ended early; its error says why.
                        return Ok(false);
                    }
                }
            }
            if !block.is_empty() && !send_blocks(&tx, block).await {
                return Ok(false);
            }
            drop(tx);
            Ok::<bool, DbError>(true)
        };
        let (loaded, read) = future::join(loading, read).await;
        if let Err(e) = loaded {
            // ER_NOT_ALLOWED_COMMAND (MySQL) and its MariaDB successor.
            let refused =
                matches!(&e, mysql_async::Error::Server(s) if s.code == 1148 || s.code == 4166);
            let error = DbError::sql(
                format!("cannot load table {} on {}", table.name, self.target_label),
                e,
            );
            return Err(if refused {
                Refused::LocalInfile(error.to_string())
            } else {
                Refused::Other(error)
            });
        }
        match read {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refused::Other(DbError::LoadEnded {
                table: table.name.clone(),
            })),
            Err(e) => Err(Refused::Other(e)),
        }
    }

    /// Streams a chunk's rows into size-bounded INSERTs; a second future
    /// writes each statement while the next one is read.
    async fn insert(&self, src: &mut Conn, dst: &mut Conn, chunk: &Chunk) -> Result<(), DbError> {
        let table = &self.tables[chunk.table];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        let read = async {
            let head = table.insert_head(self.stage);
            let kinds = table.kinds();
            let mut result = src
                .query_iter(table.select(self.db, chunk))
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?;
            let mut stmt = head.clone();
            let mut in_stmt = 0usize;
            while let Some(row) = result
                .next()
                .await
                .map_err(|e| DbError::sql(format!("cannot read table {}", table.name), e))?
            {
                let before = stmt.len();
                if in_stmt > 0 {
                    stmt.push(b',');
                }
                rows::push_row(
                    &mut stmt,
                    &kinds,
                    (0..row.len()).filter_map(|i| row.as_ref(i)),
                );
                in_stmt += 1;
                self.counters.rows.set(self.counters.rows.get() + 1);
                self.counters
                    .bytes
                    .set(self.counters.bytes.get() + (stmt.len() - before) as u64);
                if stmt.len() >= STATEMENT_BYTES {
                    self.send(&tx, std::mem::replace(&mut stmt, head.clone()), &table.name)
                        .await?;
                    in_stmt = 0;
                }
            }
            if in_stmt > 0 {
                self.send(&tx, stmt, &table.name).await?;
            }
            drop(tx);
            Ok::<(), DbError>(())
        };
        let write = async {
            while let Some(stmt) = rx.recv().await {
                dst.query_drop(stmt).await.map_err(|e| {
                    DbError::sql(
                        format!("cannot load table {} on {}", table.name, self.target_label),
                        e,
                    )
                })?;
            }
            Ok::<(), DbError>(())
        };
        let (read, write) = future::join(read, write).await;
        write?;
        read
    }

    async fn send(
        &self,
        tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
        stmt: Vec<u8>,
        table: &str,
    ) -> Result<(), DbError> {
        if stmt.len() + 1024 > self.max_packet {
            return Err(DbError::RowTooLarge {
                table: table.to_owned(),
                bytes: stmt.len(),
                max: self.max_packet,
                server: self.target_label.to_owned(),
            });
        }
        tx.send(stmt).await.map_err(|_| DbError::LoadEnded {
            table: table.to_owned(),
        })
    }

    /// The same checksum SQL on the source's snapshot and the target.
    pub(super) async fn verify(
        &self,
        src: &mut Conn,
        dst: &mut Conn,
        chunk: &Chunk,
    ) -> Result<(), DbError> {
        let table = &self.tables[chunk.table];
        let (a, b) = future::join(
            checksum(src, table, self.db, chunk, "the source"),
            checksum(dst, table, self.stage, chunk, self.target_label),
        )
        .await;
        let (a, b) = (a?, b?);
        if a != b {
            return Err(DbError::Differs {
                table: table.name.clone(),
                on_source: (a.rows, a.sum),
                on_target: (b.rows, b.sum),
                server: self.target_label.to_owned(),
            });
        }
        Ok(())
    }
}

/// Sends LOAD DATA input in blocks of at most `LOAD_BLOCK` bytes: each
/// block travels as one packet, which must stay below the target's
/// max_allowed_packet however large a row is. False when the load ended.
async fn send_blocks(tx: &tokio::sync::mpsc::Sender<bytes::Bytes>, data: Vec<u8>) -> bool {
    let mut data = bytes::Bytes::from(data);
    while !data.is_empty() {
        let block = data.split_to(data.len().min(LOAD_BLOCK));
        if tx.send(block).await.is_err() {
            return false;
        }
    }
    true
}

/// A chunk's checksum on one server (`server` names it in errors); rows
/// it cannot hash are an error, never a match.
pub(super) async fn checksum(
    conn: &mut Conn,
    table: &Table,
    db: &str,
    chunk: &Chunk,
    server: &str,
) -> Result<Checksum, DbError> {
    let answer: Option<(u64, String)> = conn
        .query_first(table.checksum(db, chunk))
        .await
        .map_err(|e| DbError::sql(format!("cannot verify table {} on {server}", table.name), e))?;
    let (rows, sum) = answer.unwrap_or((0, "0".into()));
    let sum = Checksum::parse(rows, &sum).ok_or_else(|| DbError::Unhashed {
        table: table.name.clone(),
        rows,
        server: server.to_owned(),
    })?;
    if sum.unhashed > 0 {
        return Err(DbError::Unhashed {
            table: table.name.clone(),
            rows: sum.unhashed,
            server: server.to_owned(),
        });
    }
    Ok(sum)
}
