//! The live status page at `/`, beside the API on the same listeners: a
//! login form (the admin login, with the API's lock-out, 1012), the list
//! of migrations, and a page per migration with its progress, report,
//! event log and a stop button that asks for confirmation. It reads and
//! stops migrations through RpcFront's operations, like every client; a
//! small script (`page.js`) refreshes the live parts every two seconds and
//! follows the event log. Every form that changes something carries the
//! session's CSRF token; the login form carries a token of its own.

pub mod render;
pub mod session;

use std::net::{IpAddr, Ipv4Addr};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::migration::report::Report;
use crate::migration::request::MigrationId;
use crate::rpc::auth::Credentials;
use crate::rpc::code::Code;
use crate::rpc::http::AppState;
use crate::rpc::packet::{Operation, LOG_LIMIT_MAX};
use crate::rpc::response::{Listed, OperationResult};
use crate::secret::Secret;
use session::{cookie, same, set_cookie, COOKIE, LIFETIME, LOGIN_COOKIE};

/// Event log lines the page shows when it opens (the latest ones).
const LOG_SHOWN: usize = 500;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/live", web::get().to(overview_live))
        .route("/migration/{id}", web::get().to(detail))
        .route("/migration/{id}/live", web::get().to(detail_live))
        .route("/migration/{id}/log", web::get().to(log_more))
        .route("/migration/{id}/stop", web::post().to(stop))
        .route(
            "/static/page.js",
            web::get()
                .to(|| async { asset("text/javascript; charset=utf-8", include_str!("page.js")) }),
        )
        .route(
            "/static/page.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", include_str!("page.css")) }),
        );
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(body)
}

/// An HTML answer with the page's security headers.
fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn see_other(to: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::SeeOther();
    b.insert_header((header::LOCATION, to.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn secure(req: &HttpRequest) -> bool {
    req.app_config().secure()
}

/// The session's cookie token and CSRF token, when logged in.
fn session(req: &HttpRequest, state: &AppState) -> Option<(String, String)> {
    let token = cookie(req.headers(), COOKIE)?.to_owned();
    let csrf = state.sessions.check(&token)?;
    Some((token, csrf))
}

fn login_form(req: &HttpRequest, status: StatusCode, message: Option<&str>) -> HttpResponse {
    let token = session::token();
    let mut response = html(status, render::login(&token, message));
    if let Ok(value) = header::HeaderValue::from_str(&set_cookie(
        LOGIN_COOKIE,
        &token,
        std::time::Duration::from_secs(3600),
        secure(req),
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn ask(state: &AppState, op: Operation) -> Option<OperationResult> {
    crate::rpc::front::ask(&state.front, op).await
}

async fn listed(state: &AppState) -> Result<Vec<Listed>, String> {
    match ask(state, Operation::List).await {
        Some(OperationResult::List(Ok(mut all))) => {
            all.sort_by_key(|l| std::cmp::Reverse(l.id));
            Ok(all)
        }
        Some(OperationResult::List(Err(e))) => Err(e.text),
        _ => Err("hostmig is shutting down; try again when it is back".into()),
    }
}

async fn one(state: &AppState, id: u64) -> Result<Option<Listed>, String> {
    Ok(listed(state).await?.into_iter().find(|l| l.id == id))
}

async fn report(state: &AppState, id: u64) -> Option<Report> {
    match ask(state, Operation::GetReport(MigrationId(id.to_string()))).await {
        Some(OperationResult::GetReport(Ok(r))) => Some(r),
        _ => None,
    }
}

/// Lines of the event log from `from`, and the next line's number; the
/// error's text when it cannot be read (deleted by finish, say).
async fn log(state: &AppState, id: u64, from: u64) -> Result<(Vec<String>, u64), String> {
    let op = Operation::GetLog {
        id: MigrationId(id.to_string()),
        from,
        limit: LOG_LIMIT_MAX,
    };
    match ask(state, op).await {
        Some(OperationResult::GetLog(Ok(page))) => {
            let next = page.from + page.lines.len() as u64;
            Ok((page.lines, next))
        }
        Some(OperationResult::GetLog(Err(e))) => Err(e.text),
        _ => Err("hostmig is shutting down; try again when it is back".into()),
    }
}

async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some((_, csrf)) = session(&req, &state) else {
        return login_form(&req, StatusCode::OK, None);
    };
    match listed(&state).await {
        Ok(all) => html(StatusCode::OK, render::overview(&all, &csrf)),
        Err(e) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            render::problem("Migrations", &e, Some(&csrf)),
        ),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let expected = cookie(req.headers(), LOGIN_COOKIE).unwrap_or("");
    if !same(expected, &form.csrf) {
        return login_form(
            &req,
            StatusCode::FORBIDDEN,
            Some("the login form had expired or came from elsewhere; log in again"),
        );
    }
    let client = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let creds = Credentials::Password {
        login: form.login,
        password: Secret::new(form.password),
    };
    if let Err(e) = state.auth.authenticate(creds, client).await {
        tracing::warn!(%client, code = e.code.number(), "page login refused");
        return if e.code == Code::Locked {
            login_form(&req, StatusCode::TOO_MANY_REQUESTS, Some(&e.text))
        } else {
            login_form(&req, StatusCode::FORBIDDEN, Some("wrong login or password"))
        };
    }
    let Some((token, _)) = state.sessions.create() else {
        return html(
            StatusCode::INTERNAL_SERVER_ERROR,
            render::problem(
                "Log in",
                "no randomness for a session token; try again",
                None,
            ),
        );
    };
    tracing::info!(%client, "page login");
    see_other("/")
        .append_header((
            header::SET_COOKIE,
            set_cookie(COOKIE, &token, LIFETIME, secure(&req)),
        ))
        .append_header((
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, "", std::time::Duration::ZERO, secure(&req)),
        ))
        .finish()
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// A form that changes something: its session, when its CSRF token is
/// the session's.
fn checked(
    req: &HttpRequest,
    state: &AppState,
    form: &ChangeForm,
) -> Result<(String, String), Box<HttpResponse>> {
    let Some((token, csrf)) = session(req, state) else {
        return Err(Box::new(login_form(
            req,
            StatusCode::UNAUTHORIZED,
            Some("log in first"),
        )));
    };
    if !same(&csrf, &form.csrf) {
        tracing::warn!(
            path = req.path(),
            "a form without the session's CSRF token was refused"
        );
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            render::problem(
                "Refused",
                "this form did not carry the page's token (it came from elsewhere, or from a page of an earlier session); open the page again and repeat",
                Some(&csrf),
            ),
        )));
    }
    Ok((token, csrf))
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ChangeForm>,
) -> HttpResponse {
    let (token, _) = match checked(&req, &state, &form) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    state.sessions.end(&token);
    see_other("/")
        .append_header((
            header::SET_COOKIE,
            set_cookie(COOKIE, "", std::time::Duration::ZERO, secure(&req)),
        ))
        .finish()
}

/// A live part asked without a session: the script reloads into the login.
fn logged_out() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn overview_live(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if session(&req, &state).is_none() {
        return logged_out();
    }
    match listed(&state).await {
        Ok(all) => html(StatusCode::OK, render::overview_live(&all)),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The listed migration `id`, or the page that says it is unknown or
/// cannot be listed now.
async fn found(state: &AppState, id: u64, csrf: &str) -> Result<Listed, Box<HttpResponse>> {
    match one(state, id).await {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(Box::new(html(
            StatusCode::NOT_FOUND,
            render::problem(
                "Unknown migration",
                &format!("hostmig knows no migration {id}"),
                Some(csrf),
            ),
        ))),
        Err(e) => Err(Box::new(html(
            StatusCode::SERVICE_UNAVAILABLE,
            render::problem(&format!("Migration {id}"), &e, Some(csrf)),
        ))),
    }
}

async fn detail(req: HttpRequest, state: web::Data<AppState>, id: web::Path<u64>) -> HttpResponse {
    let Some((_, csrf)) = session(&req, &state) else {
        return login_form(&req, StatusCode::OK, None);
    };
    let id = id.into_inner();
    let listed = match found(&state, id, &csrf).await {
        Ok(l) => l,
        Err(answer) => return *answer,
    };
    let report = report(&state, id).await;
    let log = log(&state, id, 1).await.map(|(lines, next)| {
        let shown = lines[lines.len().saturating_sub(LOG_SHOWN)..].to_vec();
        (shown, next)
    });
    html(
        StatusCode::OK,
        render::detail(id, &listed, report.as_ref(), log, &csrf),
    )
}

async fn detail_live(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> HttpResponse {
    if session(&req, &state).is_none() {
        return logged_out();
    }
    let id = id.into_inner();
    match one(&state, id).await {
        Ok(Some(listed)) => {
            let report = report(&state, id).await;
            html(
                StatusCode::OK,
                render::detail_live(&listed, report.as_ref()),
            )
        }
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[derive(Deserialize)]
struct From {
    from: Option<u64>,
}

/// Event log lines from `from` on, as list items; `X-Hostmig-Next` says
/// where the next request begins.
async fn log_more(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    query: web::Query<From>,
) -> HttpResponse {
    if session(&req, &state).is_none() {
        return logged_out();
    }
    let from = query.from.unwrap_or(1).max(1);
    let Ok((lines, next)) = log(&state, id.into_inner(), from).await else {
        return HttpResponse::NotFound().finish();
    };
    let items: String = lines.iter().map(|l| render::log_line(l)).collect();
    let mut response = html(StatusCode::OK, items);
    response.headers_mut().insert(
        header::HeaderName::from_static("x-hostmig-next"),
        header::HeaderValue::from(next),
    );
    response
}

async fn stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    form: web::Form<ChangeForm>,
) -> HttpResponse {
    let (_, csrf) = match checked(&req, &state, &form) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let id = id.into_inner();
    let listed = match found(&state, id, &csrf).await {
        Ok(l) => l,
        Err(answer) => return *answer,
    };
    if !matches!(listed.state, "queued" | "running" | "interrupted") {
        return html(
            StatusCode::CONFLICT,
            render::problem(
                "Not stopped",
                &format!(
                    "migration {id} has already ended ({}); there is nothing to stop",
                    listed.state
                ),
                Some(&csrf),
            ),
        );
    }
    if form.confirm != "yes" {
        return html(
            StatusCode::OK,
            render::confirm_stop(id, &listed.source, &csrf),
        );
    }
    match ask(&state, Operation::Finish(MigrationId(id.to_string()))).await {
        Some(OperationResult::Finish(Ok(()))) => {
            tracing::info!(migration_id = id, "stopped from the page");
            see_other(&format!("/migration/{id}")).finish()
        }
        Some(OperationResult::Finish(Err(e))) => html(
            StatusCode::CONFLICT,
            render::problem("Not stopped", &e.text, Some(&csrf)),
        ),
        _ => html(
            StatusCode::SERVICE_UNAVAILABLE,
            render::problem(
                "Not stopped",
                "hostmig is shutting down; try again when it is back",
                Some(&csrf),
            ),
        ),
    }
}
