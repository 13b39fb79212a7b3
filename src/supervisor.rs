//! The Supervisor: admits migrations and owns their lifecycle, and owns the
//! journal's lifecycle (it records the server run and closes the journal
//! last). Until the migration engine lands, it refuses every `start` after
//! the packet's own rules with 1026, and knows no migration ids.

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    ResponseActFuture, WrapFuture,
};

use crate::journal::{self, Journal};
use crate::migration::request;
use crate::rpc::code::{Code, RpcError};
use crate::rpc::packet::{MigrationId, Secret, StartRequest};

pub struct Supervisor {
    journal: Addr<Journal>,
}

impl Supervisor {
    pub fn new(journal: Addr<Journal>) -> Self {
        Supervisor { journal }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let record = journal::RecordRunStarted {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        ctx.wait(
            self.journal
                .send(record)
                .into_actor(self)
                .map(|res, _, _| match res {
                    Ok(Ok(run)) if run.previous_run_unclean => tracing::warn!(
                        run_id = run.run_id,
                        "the previous hostmig run did not stop cleanly (killed or crashed)"
                    ),
                    Ok(Ok(run)) => {
                        tracing::debug!(run_id = run.run_id, "server run recorded in the journal")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot record the server run in the journal")
                    }
                    Err(e) => tracing::error!(error = %e, "the journal is not answering"),
                }),
        );
    }
}

/// Start a migration; answers its id.
#[derive(Message)]
#[rtype(result = "Result<String, RpcError>")]
pub struct StartMigration(pub Box<StartRequest>);

/// Stop a migration (the protocol's `finish`).
#[derive(Message)]
#[rtype(result = "Result<(), RpcError>")]
pub struct StopMigration(pub MigrationId);

/// Bring an ended migration's content up to date; answers the new id.
#[derive(Message)]
#[rtype(result = "Result<String, RpcError>")]
pub struct ResyncMigration {
    pub id: MigrationId,
    pub password: Option<Secret>,
}

/// Stop everything and close the journal; answered when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

fn unknown(id: &MigrationId) -> RpcError {
    RpcError::new(
        Code::NotFound,
        format!("migration {} does not exist", crate::rpc::xml::short(&id.0)),
    )
}

impl Handler<StartMigration> for Supervisor {
    type Result = Result<String, RpcError>;

    fn handle(&mut self, msg: StartMigration, _: &mut Self::Context) -> Self::Result {
        request::check(&msg.0)?;
        Err(RpcError::new(
            Code::NotReady,
            "Unable to start migration: the migration engine is not available in this version of hostmig; `check` lists what is missing",
        ))
    }
}

impl Handler<StopMigration> for Supervisor {
    type Result = Result<(), RpcError>;

    fn handle(&mut self, msg: StopMigration, _: &mut Self::Context) -> Self::Result {
        Err(unknown(&msg.0))
    }
}

impl Handler<ResyncMigration> for Supervisor {
    type Result = Result<String, RpcError>;

    fn handle(&mut self, msg: ResyncMigration, _: &mut Self::Context) -> Self::Result {
        Err(unknown(&msg.id))
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        Box::pin(
            self.journal
                .send(journal::Close)
                .into_actor(self)
                .map(|res, _, ctx| {
                    match res {
                        Ok(Ok(())) => tracing::info!("journal closed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "closing the journal failed"),
                        Err(e) => tracing::error!(error = %e, "the journal is not answering"),
                    }
                    ctx.stop();
                }),
        )
    }
}
