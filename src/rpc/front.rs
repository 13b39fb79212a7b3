//! RpcFront: runs the operations of checked packets in document order. It
//! owns the status board, so `get_status` is answered from memory and never
//! waits on a busy migration; `check` and `get_fs` run on blocking threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};

use super::code::{Code, RpcError};
use super::packet::{Operation, Operator};
use super::response::OperationResult;
use crate::config::Config;
use crate::migration::refusal::Refusal;
use crate::migration::run::StatusReport;
use crate::migration::status::MigrationStatus;
use crate::supervisor::{
    GetReport, ResumeMigration, ResyncMigration, StartMigration, StopMigration, Supervisor,
};

pub struct RpcFront {
    config: Arc<Config>,
    supervisor: Addr<Supervisor>,
    /// The latest status of every migration, by id.
    board: Rc<RefCell<HashMap<String, MigrationStatus>>>,
}

impl RpcFront {
    pub fn new(config: Arc<Config>, supervisor: Addr<Supervisor>) -> Self {
        RpcFront {
            config,
            supervisor,
            board: Rc::default(),
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
        let mut board = self.board.borrow_mut();
        let entry = board.entry(msg.id.to_string());
        match (entry, msg.status) {
            // Steps done never go down: a late report does not undo a newer one.
            (
                std::collections::hash_map::Entry::Occupied(mut e),
                MigrationStatus::InProgress(progress),
            ) => {
                let keep_newer = match e.get() {
                    MigrationStatus::Finished { .. } => true,
                    MigrationStatus::InProgress(current) => current.completed > progress.completed,
                };
                if !keep_newer {
                    e.insert(MigrationStatus::InProgress(progress));
                }
            }
            (std::collections::hash_map::Entry::Occupied(mut e), status) => {
                e.insert(status);
            }
            (std::collections::hash_map::Entry::Vacant(v), status) => {
                v.insert(status);
            }
        }
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
    board: &RefCell<HashMap<String, MigrationStatus>>,
) -> OperationResult {
    match op {
        Operation::GetStatus(id) => OperationResult::GetStatus(
            board
                .borrow()
                .get(&id.0)
                .cloned()
                .ok_or_else(|| Refusal::UnknownMigration { id: id.0 }.into()),
        ),
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
        Operation::Resume { id, password } => OperationResult::Resume(
            supervisor
                .send(ResumeMigration { id, password })
                .await
                .map_err(gone)
                .and_then(|r| r.map_err(RpcError::from)),
        ),
    }
}
