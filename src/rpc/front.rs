//! RpcFront: runs the operations of checked packets in document order. It
//! is the one writer of the status board, so `get_status` is answered from
//! memory and never waits on a busy migration (a packet of `get_status`
//! alone is answered by the HTTP worker from the board, without RpcFront);
//! `check` and `get_fs` run on blocking threads.

use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};

use super::board::Board;
use super::code::{Code, RpcError};
use super::packet::{Operation, Operator};
use super::response::{LogPage, OperationResult};
use crate::config::Config;
use crate::migration::events::EventLog;
use crate::migration::refusal::Refusal;
use crate::migration::request::MigrationId;
use crate::migration::run::StatusReport;
use crate::supervisor::{
    GetReport, ListMigrations, ResumeMigration, ResyncMigration, StartMigration, StopMigration,
    Supervisor,
};

pub struct RpcFront {
    config: Arc<Config>,
    supervisor: Addr<Supervisor>,
    /// The latest status of every migration; RpcFront is its one writer.
    board: Board,
}

impl RpcFront {
    pub fn new(config: Arc<Config>, supervisor: Addr<Supervisor>, board: Board) -> Self {
        RpcFront {
            config,
            supervisor,
            board,
        }
    }
}

impl Actor for RpcFront {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// The Supervisor's address (for an ordered shutdown).
#[derive(Message)]
#[rtype(result = "Addr<Supervisor>")]
pub struct GetSupervisor;

impl Handler<GetSupervisor> for RpcFront {
    type Result = actix::MessageResult<GetSupervisor>;

    fn handle(&mut self, _: GetSupervisor, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.supervisor.clone())
    }
}

impl Handler<StatusReport> for RpcFront {
    type Result = ();

    fn handle(&mut self, msg: StatusReport, _: &mut Self::Context) {
        self.board.apply(msg.id, msg.status);
    }
}

/// Run a checked packet's operators; answers one result list per operator.
#[derive(Message)]
#[rtype(result = "Vec<Vec<OperationResult>>")]
pub struct HandlePacket(pub Vec<Operator>);

impl Handler<HandlePacket> for RpcFront {
    type Result = ResponseFuture<Vec<Vec<OperationResult>>>;

    fn handle(&mut self, msg: HandlePacket, _: &mut Self::Context) -> Self::Result {
        let config = self.config.clone();
        let supervisor = self.supervisor.clone();
        let board = self.board.clone();
        Box::pin(async move {
            let mut answers = Vec::with_capacity(msg.0.len());
            for Operator::Migration(ops) in msg.0 {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(run(op, &config, &supervisor, &board).await);
                }
                answers.push(results);
            }
            answers
        })
    }
}

/// One operation asked of RpcFront as a packet of its own would be (the
/// status page and the metrics); `None` while hostmig shuts down.
pub async fn ask(front: &Addr<RpcFront>, op: Operation) -> Option<OperationResult> {
    let results = front
        .send(HandlePacket(vec![Operator::Migration(vec![op])]))
        .await
        .ok()?;
    results.into_iter().next()?.into_iter().next()
}

/// `get_log`: lines `from` to `from + limit - 1` of a known migration's
/// event log, read on a blocking thread (a line longer than 1 MiB is cut).
async fn get_log(
    config: &Config,
    board: &Board,
    id: MigrationId,
    from: u64,
    limit: u64,
) -> Result<LogPage, RpcError> {
    let known = board
        .get(&id.0)
        .is_some()
        .then(|| id.0.parse::<u64>().ok())
        .flatten();
    let Some(n) = known else {
        return Err(Refusal::UnknownMigration { id: id.0 }.into());
    };
    let path = EventLog::of(config, n).path().to_owned();
    let read = actix_web::rt::task::spawn_blocking(move || read_lines(&path, from, limit)).await;
    match read {
        Ok(Ok(Some(lines))) => Ok(LogPage { from, lines }),
        Ok(Ok(None)) => Err(Refusal::LogDeleted { id: n }.into()),
        Ok(Err(e)) => Err(RpcError::new(
            Code::OperationFailed,
            format!("the event log of migration {n} cannot be read: {e}"),
        )),
        Err(e) => Err(RpcError::new(
            Code::OperationFailed,
            format!("get_log failed: {e}"),
        )),
    }
}

/// Lines `from` (1-based) to `from + limit - 1` of a file; `None` when it
/// does not exist.
fn read_lines(
    path: &std::path::Path,
    from: u64,
    limit: u64,
) -> std::io::Result<Option<Vec<String>>> {
    use std::io::BufRead;
    const LINE_MAX: u64 = 1 << 20;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut number = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut reader, LINE_MAX).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && n as u64 == LINE_MAX {
            // The rest of an overlong line is skipped.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
        }
        number += 1;
        if number < from {
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        lines.push(text.trim_end_matches('\n').to_owned());
        if lines.len() as u64 >= limit {
            break;
        }
    }
    Ok(Some(lines))
}

/// `get_status`: from the board (also straight from an HTTP worker).
pub fn get_status(board: &Board, id: MigrationId) -> OperationResult {
    OperationResult::GetStatus(
        board
            .get(&id.0)
            .ok_or_else(|| Refusal::UnknownMigration { id: id.0 }.into()),
    )
}

fn gone(e: actix::MailboxError) -> RpcError {
    RpcError::new(
        Code::OperationFailed,
        format!("hostmig is shutting down ({e}); try again when it is back"),
    )
}

async fn run(
    op: Operation,
    config: &Arc<Config>,
    supervisor: &Addr<Supervisor>,
    board: &Board,
) -> OperationResult {
    match op {
        Operation::GetStatus(id) => get_status(board, id),
        Operation::Check => {
            let missing = crate::readiness::missing(config.clone()).await;
            OperationResult::Check(if missing.is_empty() {
                Ok(())
            } else {
                Err(RpcError::new(
                    Code::NotReady,
                    format!("hostmig cannot migrate yet: {}", missing.join("; ")),
                ))
            })
        }
        Operation::GetFs => {
            let list = actix_web::rt::task::spawn_blocking(crate::mounts::list).await;
            OperationResult::GetFs(match list {
                Ok(Ok(list)) => Ok(list),
                Ok(Err(e)) => Err(RpcError::new(
                    Code::OperationFailed,
                    format!("cannot read the mount table: {e}"),
                )),
                Err(e) => Err(RpcError::new(
                    Code::OperationFailed,
                    format!("get_fs failed: {e}"),
                )),
            })
        }
        Operation::Start(req) => OperationResult::Start(
            supervisor
                .send(StartMigration(req))
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
        Operation::Finish(id) => OperationResult::Finish(
            supervisor
                .send(StopMigration(id))
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
        Operation::GetReport(id) => OperationResult::GetReport(
            supervisor
                .send(GetReport(id))
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
        Operation::Resync { id, password } => OperationResult::Resync(
            supervisor
                .send(ResyncMigration { id, password })
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
        Operation::List => OperationResult::List(
            supervisor
                .send(ListMigrations)
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from))
                .map(|mut list| {
                    for m in &mut list {
                        m.status = board.get(&m.id.to_string());
                    }
                    list
                }),
        ),
        Operation::GetLog { id, from, limit } => {
            OperationResult::GetLog(get_log(config, board, id, from, limit).await)
        }
        Operation::Resume { id, password } => OperationResult::Resume(
            supervisor
                .send(ResumeMigration { id, password })
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
    }
}
