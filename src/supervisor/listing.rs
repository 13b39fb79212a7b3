//! `list` (a hostmig extension): every migration the journal knows,
//! newest first, with the objects its report names. RpcFront adds what
//! the board says of each.

use actix::{ActorFutureExt, Handler, Message, ResponseActFuture, WrapFuture};
use serde::Deserialize;

use super::Supervisor;
use crate::journal;
use crate::migration::refusal::Refusal;
use crate::migration::status::ObjectKind;
use crate::rpc::response::Listed;

/// Every migration, newest first (statuses left for the board).
#[derive(Message)]
#[rtype(result = "Result<Vec<Listed>, Refusal>")]
pub struct ListMigrations;

/// The part of a stored report `list` reads.
#[derive(Deserialize)]
struct Objects {
    objects: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    kind: ObjectKind,
    name: String,
}

impl Handler<ListMigrations> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Vec<Listed>, Refusal>>;

    fn handle(&mut self, _: ListMigrations, _: &mut Self::Context) -> Self::Result {
        let journal = self.journal.clone();
        let load = async move { journal::ask(&journal, journal::LoadListing).await };
        Box::pin(load.into_actor(self).map(|rows, _, _| {
            let rows = rows.map_err(|e| Refusal::Journal(e.to_string()))?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let objects = row
                        .report
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<Objects>(r).ok())
                        .map(|o| {
                            o.objects
                                .into_iter()
                                .filter(|n| n.kind != ObjectKind::Database)
                                .map(|n| (n.kind, n.name))
                                .collect()
                        })
                        .unwrap_or_default();
                    Listed {
                        id: row.id,
                        state: row.state.as_str(),
                        source: row.source,
                        ended: row.state.ended().then_some(row.updated),
                        started: row.created,
                        objects,
                        status: None,
                    }
                })
                .collect())
        }))
    }
}
