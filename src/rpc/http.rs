//! The HTTP endpoint: `POST /enterprise/control/agent.php`. It reads the
//! body under the size limit, authenticates, decodes, hands the packet to
//! RpcFront and writes the answer. It never waits on anything slow itself:
//! argon2, `check` and `get_fs` run on blocking threads.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tracing::{field, Instrument};

use super::auth::{Authenticator, Credentials};
use super::board::Board;
use super::code::{Code, RpcError};
use super::front::{get_status, HandlePacket, RpcFront};
use super::packet::{self, Operator, NEWEST_VERSION_TEXT};
use super::response::{ResponseBody, ResponsePacket};
use crate::secret::Secret;

pub const AGENT_PATH: &str = "/enterprise/control/agent.php";

/// An oversized body is read to its end (so the client receives the 1014
/// packet, not a reset), but never more than this; past it the connection
/// is closed after the answer.
const DRAIN_MAX: usize = 64 * 1024 * 1024;

pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub front: Addr<RpcFront>,
    /// Read here for packets of `get_status` alone.
    pub board: Board,
    pub max_packet_bytes: usize,
    /// The status page's sessions.
    pub sessions: Arc<crate::page::session::Sessions>,
    /// Who reads `/metrics` without a key (`[metrics] allow_from`).
    pub metrics_allow: Vec<ipnet::IpNet>,
}

/// Routes: the agent endpoint (POST only), the metrics, the status page,
/// and 404 for every other path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
    crate::page::configure(cfg);
    cfg.service(
        web::resource(AGENT_PATH)
            .route(web::post().to(agent))
            .default_service(web::to(|| async {
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, "POST"))
                    .finish()
            })),
    )
    .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

/// `/metrics`: for `[metrics] allow_from`, or with a secret key of
/// `[[api.keys]]` (header `KEY`, or `Authorization: Bearer KEY`).
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let client = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !state.metrics_allow.iter().any(|n| n.contains(&client)) {
        let bearer = header_text(req.headers(), "Authorization")
            .and_then(|v| v.strip_prefix("Bearer ").map(|k| k.trim().to_owned()));
        let Some(key) = header_text(req.headers(), "KEY").or(bearer) else {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("metrics need a secret key of [[api.keys]] (Authorization: Bearer KEY), or a client address in [metrics] allow_from\n");
        };
        if let Err(e) = state
            .auth
            .authenticate(Credentials::Key(Secret::new(key)), client)
            .await
        {
            tracing::warn!(%client, code = e.code.number(), "metrics refused");
            let status = if e.code == Code::Locked {
                actix_web::http::StatusCode::TOO_MANY_REQUESTS
            } else {
                actix_web::http::StatusCode::FORBIDDEN
            };
            return HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(format!("{}\n", e.text));
        }
    }
    let listed = match super::front::ask(&state.front, packet::Operation::List).await {
        Some(super::response::OperationResult::List(Ok(all))) => all,
        _ => {
            return HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("the migrations cannot be listed now (hostmig is starting or shutting down); try again\n")
        }
    };
    let states = listed.iter().map(crate::observe::metrics::state_of);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(crate::observe::metrics::metrics().render(states))
}

async fn agent(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let client = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let span = tracing::info_span!(
        "rpc",
        client = %client,
        operators = field::Empty,
        operations = field::Empty
    );
    let pretty = header_text(req.headers(), "HTTP_PRETTY_PRINT")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let started = Instant::now();
    let mut operations = Vec::new();
    let answer = answer(&req, payload, &state, client, &mut operations)
        .instrument(span)
        .await;
    crate::observe::metrics::metrics().api_packet(&operations, started.elapsed().as_secs_f64());
    HttpResponse::Ok()
        .content_type("text/xml; charset=UTF-8")
        .body(answer.to_xml(pretty))
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    client: IpAddr,
    named: &mut Vec<&'static str>,
) -> ResponsePacket {
    let started = Instant::now();
    let system = |error: RpcError| ResponsePacket::system(NEWEST_VERSION_TEXT, error);

    let body = match read_body(payload, state.max_packet_bytes).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(code = error.code.number(), error = %error.text, "packet refused");
            return system(error);
        }
    };
    if let Err(error) = state
        .auth
        .authenticate(credentials(req.headers()), client)
        .await
    {
        tracing::warn!(code = error.code.number(), "authentication refused");
        return system(error);
    }
    let packet = match packet::decode(&body) {
        Ok(packet) => packet,
        Err(refusal) => {
            tracing::info!(code = refusal.error.code.number(), error = %refusal.error.text, "packet refused");
            return ResponsePacket::system(&refusal.version, refusal.error);
        }
    };
    let span = tracing::Span::current();
    span.record("operators", packet.operators.len());
    let operations: Vec<&'static str> = packet
        .operators
        .iter()
        .flat_map(|Operator::Migration(ops)| ops.iter().map(|op| op.name()))
        .collect();
    span.record("operations", field::display(operations.join(",")));
    named.clone_from(&operations);
    let changes_state = operations
        .iter()
        .any(|name| matches!(*name, "start" | "finish" | "resync" | "resume"));

    let version = packet.version;
    // Only get_status: answered from the board, without an actor hop.
    let status_only = packet.operators.iter().all(|Operator::Migration(ops)| {
        ops.iter()
            .all(|op| matches!(op, packet::Operation::GetStatus(_)))
    });
    if status_only {
        let results = packet
            .operators
            .into_iter()
            .map(|Operator::Migration(ops)| {
                ops.into_iter()
                    .map(|op| match op {
                        packet::Operation::GetStatus(id) => get_status(&state.board, id),
                        _ => unreachable!("a packet of get_status alone"),
                    })
                    .collect()
            })
            .collect();
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "packet answered"
        );
        return ResponsePacket {
            version,
            body: ResponseBody::Operators(results),
        };
    }
    let results = match state.front.send(HandlePacket(packet.operators)).await {
        Ok(results) => results,
        Err(e) => {
            return ResponsePacket::system(
                &version,
                RpcError::new(
                    Code::OperationFailed,
                    format!("hostmig is shutting down ({e}); try again when it is back"),
                ),
            )
        }
    };
    let elapsed_us = started.elapsed().as_micros() as u64;
    if changes_state {
        tracing::info!(elapsed_us, "packet answered");
    } else {
        tracing::debug!(elapsed_us, "packet answered");
    }
    ResponsePacket {
        version,
        body: ResponseBody::Operators(results),
    }
}

/// Reads the body; one over `limit` bytes is drained and refused with 1014.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, RpcError> {
    let mut body = web::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            RpcError::new(
                Code::Parse,
                format!("the request body could not be read: {e}"),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            body.extend_from_slice(&chunk);
        } else {
            body = web::BytesMut::new();
            if total > DRAIN_MAX {
                break;
            }
        }
    }
    if total > limit {
        return Err(RpcError::new(
            Code::Parse,
            format!("the packet is larger than the limit of {limit} bytes (api.max_packet_bytes)"),
        ));
    }
    Ok(body)
}

/// A header as text; a value that is not UTF-8 reads as absent-but-present
/// (empty), so it fails authentication instead of passing as no header.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap_or_default())
}

fn credentials(headers: &HeaderMap) -> Credentials {
    if let Some(key) = header_text(headers, "KEY") {
        return Credentials::Key(Secret::new(key));
    }
    let login = header_text(headers, "HTTP_AUTH_LOGIN");
    let password = header_text(headers, "HTTP_AUTH_PASSWD");
    if login.is_none() && password.is_none() {
        return Credentials::None;
    }
    Credentials::Password {
        login: login.unwrap_or_default(),
        password: Secret::new(password.unwrap_or_default()),
    }
}
