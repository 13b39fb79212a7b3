//! `hostmig serve`: the daemon. Startup checks everything that can fail
//! before anything listens (state directory, lock, TLS, journal, bind), and
//! SIGINT or SIGTERM stops it in order: listeners close, in-flight requests
//! are answered, the Supervisor stops, the journal is closed last.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Arbiter, AsyncContext};
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::journal::{self, Journal, JournalError};
use crate::rpc::auth::Authenticator;
use crate::rpc::board::Board;
use crate::rpc::front::{GetSupervisor, RpcFront};
use crate::rpc::http::{self, AppState};
use crate::rpc::tls::{self, TlsError};
use crate::state;
use crate::supervisor::{make_destination_ready, Shutdown, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot use state directory {dir}: {source}")]
    StateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("another hostmig is running with state directory {dir}; stop it or choose another state.dir")]
    Locked { dir: PathBuf },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no randomness available for the credential cache: {0}")]
    Random(getrandom::Error),
    #[error("the server stopped with an error: {0}")]
    Run(std::io::Error),
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(config: Config) -> Result<(), ServeError> {
    let dir = config.state.dir.clone();
    let state_err = |source| ServeError::StateDir {
        dir: dir.clone(),
        source,
    };
    state::ensure_dir(&dir).map_err(state_err)?;
    let _lock = state::lock(&dir)
        .map_err(state_err)?
        .ok_or_else(|| ServeError::Locked { dir: dir.clone() })?;
    let tls_config = if config.api.listen.is_empty() {
        None
    } else {
        let files = tls::files(config.api.tls.as_ref(), &dir)?;
        let server = tls::server_config(&files)?;
        // For clients that trust it by its fingerprint (`--fingerprint`).
        let fingerprint = tls::file_fingerprint(&files.cert)?;
        tracing::info!(certificate = %files.cert.display(), %fingerprint, "TLS certificate");
        println!("certificate fingerprint {fingerprint}");
        Some(server)
    };
    let journal = journal::open(&dir.join("journal.sqlite"))?;
    let auth = Authenticator::new(&config.api).map_err(ServeError::Random)?;
    crate::observe::notify::start(&config);
    let config = Arc::new(config);

    actix_web::rt::System::new().block_on(async move {
        // The destination's panel schema and DatabaseServers rows, before
        // anything listens (a start that finds them not ready tries again).
        let destination_ready = Arc::new(tokio::sync::OnceCell::new());
        let readying = destination_ready.get_or_try_init(|| make_destination_ready(&config));
        match tokio::time::timeout(std::time::Duration::from_secs(15), readying).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the destination's panel database is not ready; starts are refused until it is"),
            Err(_) => tracing::warn!("the destination's panel database did not answer within 15 s; starts try again"),
        }
        let journal_thread = Arbiter::new();
        let journal = Journal::start_in_arbiter(&journal_thread.handle(), |_| journal);
        // The Supervisor (and the validation of starts) has a thread of its
        // own, so RpcFront answers get_status without waiting behind it.
        let supervisor_thread = Arbiter::new();
        let supervisor_handle = supervisor_thread.handle();
        let board_config = config.clone();
        let board = Board::default();
        let front_board = board.clone();
        let front = RpcFront::create(move |ctx| {
            let board = ctx.address().recipient();
            let sup_config = board_config.clone();
            let supervisor = Supervisor::start_in_arbiter(&supervisor_handle, move |_| {
                Supervisor::new(sup_config, journal, board, destination_ready)
            });
            RpcFront::new(board_config, supervisor, front_board)
        });
        let supervisor = front
            .send(GetSupervisor)
            .await
            .expect("RpcFront is running");
        let data = web::Data::new(AppState {
            auth,
            front,
            board,
            max_packet_bytes: config.api.max_packet_bytes,
            sessions: Arc::default(),
            metrics_allow: config.metrics.allow_from.clone(),
        });
        // This thread runs RpcFront (the status board) and starts the HTTP
        // workers, which inherit its priority; the journal, the supervisor
        // and the migrations' threads, started before, keep theirs.
        crate::priority::set_thread_nice(crate::priority::API_NICE, "the API threads");
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let realtime = config.api.realtime;
        let mut server = HttpServer::new(move || {
            // The factory runs on each worker thread (once per listener).
            if realtime {
                crate::priority::realtime_worker();
            }
            App::new().app_data(data.clone()).configure(http::configure)
        })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(30);
        for &addr in &config.api.listen {
            let tls = tls_config
                .clone()
                .expect("TLS is configured when HTTPS listeners exist");
            server = server
                .bind_rustls_0_23(addr, tls)
                .map_err(|source| ServeError::Listen { addr, source })?;
        }
        for &addr in &config.api.listen_http {
            server = server
                .bind(addr)
                .map_err(|source| ServeError::Listen { addr, source })?;
        }
        for (addr, scheme) in server.addrs_with_scheme() {
            let scheme = if scheme == "http" { "http" } else { "https" };
            tracing::info!(%addr, scheme, "listening");
            println!("listening on {scheme}://{addr}");
        }
        let running = server.run();
        let handle = running.handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: answering in-flight requests");
            handle.stop(true).await;
        });
        let result = running.await.map_err(ServeError::Run);
        if supervisor.send(Shutdown).await.is_err() {
            tracing::error!("the supervisor had already stopped");
        }
        supervisor_thread.stop();
        journal_thread.stop();
        tracing::info!("stopped");
        result
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
