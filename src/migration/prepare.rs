//! What `start` does before it answers (DESIGN.md §2 steps 1-3): log into
//! the source, discover it, read the selected objects through the tunnel,
//! read the destination's facts and build the plan. Every refusal comes
//! from here; nothing is written anywhere. SSH runs on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::migration::plan::{self, Busy, Plan};
use crate::panel::deploy;
use crate::panel::discover::{discover, SourceAccess};
use crate::panel::source::{self, ClientRecord, DomainRecord};
use crate::rpc::code::{Code, RpcError};
use crate::rpc::packet::{Selection, StartRequest};
use crate::ssh::{Credential, Login, Options, Session, Target, Tunnel};

/// A validated migration, ready to run.
pub struct Prepared {
    pub plan: Plan,
    /// The source host as the packet wrote it.
    pub host: String,
    pub access: SourceAccess,
    pub clients: Vec<ClientRecord>,
    pub domains: Vec<DomainRecord>,
    /// `<staging>`; the migration's files go under `<staging>/hostmig-<id>/`.
    pub staging: PathBuf,
}

fn failed(text: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        Code::OperationFailed,
        format!("Unable to start migration: {text}"),
    )
}

fn not_ready(text: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        Code::NotReady,
        format!("Unable to start migration: {text}; `check` lists what is missing"),
    )
}

/// SSH settings of the configuration.
pub fn ssh_options(config: &Config) -> Options {
    Options {
        known_hosts: config.ssh.known_hosts.clone(),
        policy: config.ssh.host_key_policy,
        connect_timeout: Duration::from_secs(config.ssh.connect_timeout_s),
        io_timeout: Duration::from_secs(120),
    }
}

/// Validates a start request against both servers; answers the plan or the
/// refusal `start` gives.
pub async fn prepare(
    req: StartRequest,
    config: Arc<Config>,
    busy: Busy,
) -> Result<Prepared, RpcError> {
    super::request::check(&req)?;
    let dest = config
        .destination
        .clone()
        .ok_or_else(|| not_ready("the [destination] section is not configured"))?;
    let panel_url = dest
        .panel_db
        .clone()
        .ok_or_else(|| not_ready("destination.panel_db is not configured"))?;
    let staging = if req.destination_dir.trim().is_empty() {
        dest.dump_dir.clone()
    } else {
        PathBuf::from(req.destination_dir.trim())
    };
    if !staging.is_absolute() {
        return Err(RpcError::new(
            Code::InvalidValue,
            format!(
                "destination-host-directory {} is not an absolute path",
                staging.display()
            ),
        ));
    }
    let target = Target::parse(&req.host)
        .ok_or_else(|| failed(format!("{} is not a host or host:port", req.host)))?;
    let credential = if req.password.is_empty() {
        let identity = config
            .ssh
            .identity
            .clone()
            .ok_or_else(|| failed("the password is empty and no ssh.identity is configured"))?;
        Credential::Key(identity)
    } else {
        Credential::Password(req.password.clone())
    };
    let login = Login {
        target,
        user: req.login.clone(),
        credential,
    };
    let opts = ssh_options(&config);
    let overrides = config.sources.iter().find(|s| s.host == req.host).cloned();

    // SSH: log in, discover, open the tunnel to the panel database.
    let (access, tunnel) =
        actix_web::rt::task::spawn_blocking(move || -> Result<(SourceAccess, Tunnel), RpcError> {
            let session = Session::connect(&login, &opts).map_err(failed)?;
            let access = discover(&session, overrides.as_ref())
                .map_err(|e| failed(format!("panel data unreadable: {e}")))?;
            drop(session);
            let tunnel = Tunnel::open(login, opts, &access.panel_db.host, access.panel_db.port)
                .map_err(failed)?;
            Ok((access, tunnel))
        })
        .await
        .map_err(|e| failed(format!("the SSH worker failed: {e}")))??;

    // The selected objects, read through the tunnel.
    let source_opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(tunnel.local.ip().to_string())
        .tcp_port(tunnel.local.port())
        .user(Some(access.panel_db.user.clone()))
        .pass(Some(access.panel_db.password.expose().to_owned()))
        .db_name(Some(access.panel_db.database.clone()));
    let mut src = mysql_async::Conn::new(source_opts)
        .await
        .map_err(|e| failed(format!("panel data unreadable: {e}")))?;
    let (client_logins, domain_names) = selected_names(&req.selection);
    let read = async {
        let (clients, _) = source::clients(&mut src, &client_logins).await?;
        let (domains, _) = source::domains(&mut src, &domain_names).await?;
        Ok::<_, crate::panel::PanelError>((clients, domains))
    };
    let (clients, domains) = read
        .await
        .map_err(|e| failed(format!("panel data unreadable: {e}")))?;
    let _ = src.disconnect().await;
    drop(tunnel);

    // The destination's facts.
    let mut dst = mysql_async::Conn::from_url(panel_url.as_str())
        .await
        .map_err(|e| {
            not_ready(format!(
                "the destination panel database is not reachable ({e})"
            ))
        })?;
    deploy::ensure_schema(&mut dst).await.map_err(|e| {
        not_ready(format!(
            "the destination panel schema cannot be created ({e})"
        ))
    })?;
    let facts = deploy::facts(&mut dst).await.map_err(|e| {
        not_ready(format!(
            "the destination panel database is not readable ({e})"
        ))
    })?;
    let _ = dst.disconnect().await;

    let plan = plan::build(&req, &source::facts(&clients, &domains), &facts, &busy)?;
    Ok(Prepared {
        plan,
        host: req.host.clone(),
        access,
        clients,
        domains,
        staging,
    })
}

/// The client logins and domain names a selection names.
fn selected_names(selection: &Selection) -> (Vec<String>, Vec<String>) {
    match selection {
        Selection::Domains(groups) => (
            Vec::new(),
            groups
                .iter()
                .flat_map(|g| g.domains.iter().map(|d| d.name.clone()))
                .collect(),
        ),
        Selection::Clients { clients, .. } => (
            clients.iter().map(|c| c.name.clone()).collect(),
            clients
                .iter()
                .flat_map(|c| c.domains.iter().map(|d| d.name.clone()))
                .collect(),
        ),
        Selection::Resellers(_) => (Vec::new(), Vec::new()),
    }
}
