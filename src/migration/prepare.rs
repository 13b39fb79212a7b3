//! What `start` does before it answers (DESIGN.md §2 steps 1-3): log into
//! the source, discover it, read the selected objects through the tunnel,
//! read the destination's facts and build the plan. Every refusal comes
//! from here. Nothing is written anywhere: the destination's panel schema
//! and its `DatabaseServers` rows are made ready when the server starts,
//! not here. SSH runs on blocking threads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::content::{trees_of, TreeKind};
use super::plan::{self, Busy, DestinationFacts, Plan, SourceDb, SourceFacts, TargetServer};
use super::refusal::{NotReady, Refusal};
use super::report::{ObjectReport, Report};
use super::request::{IpType, Scope, Selection, StartRequest, Transport};
use super::resume::{ResumeFrom, StoredRequest};
use super::status::ObjectKind;
use super::summary::PlanSummary;
use crate::config::Config;
use crate::journal::{self, Journal};
use crate::panel::destination::{self, Inventory};
use crate::panel::discover::{discover, SourceAccess};
use crate::panel::source::{self, ClientRecord, DomainRecord};
use crate::secret::Secret;
use crate::ssh::{Credential, Login, Options, Session, Target, Tunnel};

/// A validated migration, ready to run.
pub struct Prepared {
    pub plan: Plan,
    /// The source host as the packet wrote it.
    pub host: String,
    /// How to log into the source (credentials in memory only).
    pub login: Login,
    pub access: SourceAccess,
    pub clients: Vec<ClientRecord>,
    pub domains: Vec<DomainRecord>,
    /// `<staging>`; the migration's files go under `<staging>/hostmig-<id>/`.
    pub staging: PathBuf,
    pub scope: Scope,
    pub transport: Transport,
    /// A `resync`: content only, of domains already deployed.
    pub resync: bool,
    /// A resync's trees: (domain, kind), as the journal recorded them.
    pub resync_trees: Vec<(String, TreeKind)>,
    /// What a resync leaves as it is, per domain (a deployed database the
    /// source no longer lists, one added on the source since).
    pub resync_notes: Vec<(String, String)>,
    /// What it will write on each destination file system (the disk
    /// guard's measure; empty for a resync).
    pub needs: Vec<super::space::Need>,
    /// The request as the journal keeps it (JSON, no secret).
    pub stored: String,
    /// Each tree's and database's size known ahead (measured on the
    /// source at start), for the status's totals until the copy lists it.
    pub ahead: Vec<(super::status::Item, u64)>,
    /// A second run after a restart interrupted the first.
    pub resume: Option<ResumeFrom>,
}

impl Prepared {
    /// The domain's record by name.
    pub fn domain(&self, name: &str) -> Option<&DomainRecord> {
        self.domains.iter().find(|d| d.name() == name)
    }

    /// The databases this migration copies (or catches up) for a domain.
    pub fn databases_of(&self, name: &str) -> Vec<plan::PlannedDb> {
        self.plan
            .databases
            .iter()
            .filter(|p| p.domain == name)
            .cloned()
            .collect()
    }

    /// The trees this migration copies for a domain.
    pub fn trees_for(&self, name: &str) -> Vec<TreeKind> {
        if self.resync {
            return self
                .resync_trees
                .iter()
                .filter(|(d, _)| d == name)
                .map(|(_, k)| *k)
                .collect();
        }
        self.domain(name)
            .map_or_else(Vec::new, |d| trees_of(d, self.scope))
    }

    /// Work steps: the plan, one deploy per object (none for a resync),
    /// one per content tree, one per database.
    pub fn total_steps(&self) -> u64 {
        let deploys = if self.resync {
            1 + self.plan.databases.len() as u64
        } else {
            self.plan.total_steps() + self.plan.databases.len() as u64
        };
        let trees: usize = self
            .plan
            .domain_names()
            .iter()
            .map(|d| self.trees_for(d).len())
            .sum();
        deploys + trees as u64
    }

    /// How this run's steps are shown (on the first run's scale when it
    /// is the second run of an interrupted migration).
    pub fn steps(&self) -> super::resume::Steps {
        super::resume::Steps {
            own_total: self.total_steps(),
            earlier: self.resume.as_ref().map(|r| (r.total, r.completed)),
        }
    }

    /// The bytes known ahead, none done yet.
    pub fn ahead_totals(&self) -> super::status::Totals {
        let totals = self.ahead.iter();
        totals
            .map(|(_, bytes)| super::status::Totals::ahead(*bytes))
            .sum()
    }

    /// The plan as the journal and the event log keep it.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            host: self.host.clone(),
            login: self.login.user.clone(),
            scope: self.scope,
            resync: self.resync,
            staging: self.staging.clone(),
            objects: self
                .plan
                .objects
                .iter()
                .map(|o| match o {
                    plan::Object::Client { login, domains } => {
                        format!("client {login} with {}", domains.join(", "))
                    }
                    plan::Object::Domain { name, owner } => format!("domain {name} to {owner}"),
                })
                .collect(),
            addresses: self.plan.addresses.clone(),
        }
    }

    /// The report of a migration of this plan, before it runs: every
    /// object pending, with the warnings its records carry.
    pub fn report(&self, id: u64) -> Report {
        let mut objects = Vec::new();
        let warnings_of = |name: &str| {
            self.domain(name)
                .map(|d| d.warnings.clone())
                .unwrap_or_default()
        };
        for o in &self.plan.objects {
            match o {
                plan::Object::Client { login, domains } => {
                    let mut client = ObjectReport::new(ObjectKind::Client, login, None);
                    client.warnings = self
                        .clients
                        .iter()
                        .find(|c| c.login() == *login)
                        .map(|c| c.warnings.clone())
                        .unwrap_or_default();
                    objects.push(client);
                    for d in domains {
                        let mut domain = ObjectReport::new(ObjectKind::Domain, d, Some(login));
                        domain.warnings = warnings_of(d);
                        objects.push(domain);
                    }
                }
                plan::Object::Domain { name, owner } => {
                    let owner = (!owner.is_empty()).then_some(owner.as_str());
                    let mut domain = ObjectReport::new(ObjectKind::Domain, name, owner);
                    domain.warnings = warnings_of(name);
                    objects.push(domain);
                }
            }
        }
        Report::new(id, &self.host, objects)
    }

    /// Destination paths of every tree this migration will write.
    pub fn destination_trees(
        &self,
        dest: &crate::config::Destination,
    ) -> Vec<(String, TreeKind, PathBuf)> {
        let mut out = Vec::new();
        for name in self.plan.domain_names() {
            if let Some(record) = self.domain(&name) {
                for kind in trees_of(record, self.scope) {
                    let root = match kind {
                        TreeKind::Web => &dest.vhosts_root,
                        TreeKind::Mail => &dest.mailnames_root,
                    };
                    out.push((name.clone(), kind, root.join(&name)));
                }
            }
        }
        out
    }
}

fn source_failed(text: impl std::fmt::Display) -> Refusal {
    Refusal::Source(text.to_string())
}

fn journal_failed(e: journal::JournalError) -> Refusal {
    Refusal::Journal(e.to_string())
}

/// Validates a start request against both servers; answers the plan or the
/// refusal `start` gives. With `resume`, the second run of a migration a
/// restart interrupted: what it deployed is left out, what it created is
/// not taken for someone else's, and it is not measured again for room
/// (what it wrote is on the disk already).
pub async fn prepare(
    req: StartRequest,
    config: Arc<Config>,
    busy: Busy,
    admitted: Vec<super::space::Need>,
    journal: actix::Addr<Journal>,
    resume: Option<ResumeFrom>,
) -> Result<Prepared, Refusal> {
    super::request::check(&req)?;
    let stored = StoredRequest::Start {
        request: Box::new(req.clone()),
        keyed: req.password.is_empty(),
    }
    .to_json();
    let req = match &resume {
        Some(r) => r.remaining(&req),
        None => req,
    };
    let dest = config
        .destination
        .clone()
        .ok_or(Refusal::NotReady(NotReady::NoDestination))?;
    let panel_url = dest
        .panel_db
        .clone()
        .ok_or(Refusal::NotReady(NotReady::NoPanelDb))?;
    let staging = if req.destination_dir.trim().is_empty() {
        dest.dump_dir.clone()
    } else {
        PathBuf::from(req.destination_dir.trim())
    };
    if !staging.is_absolute() {
        return Err(Refusal::StagingNotAbsolute { path: staging });
    }
    let target = Target::parse(&req.host).ok_or_else(|| Refusal::BadHost {
        host: req.host.clone(),
    })?;
    let credential = if req.password.is_empty() {
        let identity = config.ssh.identity.clone().ok_or(Refusal::NoCredential)?;
        Credential::Key(identity)
    } else {
        Credential::Password(req.password.clone())
    };
    let login = Login {
        target,
        user: req.login.clone(),
        credential,
    };
    let (client_logins, domain_names) = selected_names(&req.selection);
    let SourceRead {
        access,
        clients,
        domains,
        db_sizes,
        session,
    } = read_source(
        &config,
        &req.host,
        login.clone(),
        client_logins,
        domain_names,
    )
    .await?;

    // The destination's facts, read only.
    let unreachable = |e: String| Refusal::NotReady(NotReady::PanelDbUnreachable(e));
    let mut dst = crate::panel::connect_url(panel_url.as_str())
        .await
        .map_err(|e| unreachable(crate::db::server_text(&e)))?;
    let inventory = destination::inventory(&mut dst)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = dst.disconnect().await;
    let mut facts = destination_facts(inventory, &dest.db_servers);
    if let Some(r) = &resume {
        // Its own clients are on the destination: not someone else's.
        facts.client_logins.retain(|c| !r.clients.contains(c));
    }

    check_names(&domains)?;
    let mut plan = plan::build(&req, &source_facts(&clients, &domains), &facts, &busy)?;
    if let Some(r) = &resume {
        r.narrow(&mut plan);
    }
    let (existing, db_dirs) = super::databases::existing_db_objects(&dest, &plan).await?;
    plan::check_databases_free(&plan, &facts.db_servers, &existing)?;
    let prepared = Prepared {
        plan,
        host: req.host.clone(),
        login,
        access,
        clients,
        domains,
        staging,
        scope: req.scope,
        transport: req.transport,
        resync: false,
        resync_trees: Vec::new(),
        resync_notes: Vec::new(),
        needs: Vec::new(),
        stored,
        ahead: Vec::new(),
        resume,
    };
    check_trees(&prepared, &dest, &journal).await?;
    if prepared.resume.is_some() {
        return Ok(prepared);
    }
    let (needs, ahead) =
        super::space::check(&prepared, &config, session, &db_dirs, &db_sizes, admitted).await?;
    Ok(Prepared {
        needs,
        ahead,
        ..prepared
    })
}

/// Whether a name holds what no file system may see in a path: `/`,
/// `..`, a NUL or another control character (a real panel could not hold
/// it; a hostile or broken source could).
pub fn unsafe_name(name: &str) -> bool {
    name.is_empty()
        || name.contains('/')
        || name.contains("..")
        || name.chars().any(char::is_control)
}

/// Refuses a domain whose name, or the name of one of its mail names,
/// aliases or subdomains, no file system may see.
fn check_names(domains: &[DomainRecord]) -> Result<(), Refusal> {
    for d in domains {
        let domain = d.name();
        let object = format!("domain {}", domain.escape_debug());
        let mut names = vec![("domain name", Some(domain.clone()))];
        names.extend(
            d.mail
                .iter()
                .map(|m| ("mail name", m.fields.text("mail_name"))),
        );
        names.extend(
            d.aliases
                .iter()
                .map(|a| ("domain alias", a.fields.text("name"))),
        );
        names.extend(
            d.subdomains
                .iter()
                .map(|(s, _)| ("subdomain", s.text("name"))),
        );
        for (what, name) in names {
            if let Some(name) = name.filter(|n| unsafe_name(n)) {
                return Err(Refusal::BadName {
                    what,
                    name: name.escape_debug().to_string(),
                    object,
                });
            }
        }
    }
    Ok(())
}

/// What a plan checks against on the destination: its clients, domains
/// and addresses, and the configured database servers.
pub fn destination_facts(
    inventory: Inventory,
    servers: &[crate::config::DbServer],
) -> DestinationFacts {
    DestinationFacts {
        client_logins: inventory.client_logins.into_iter().collect(),
        domains: inventory.domains.into_iter().collect(),
        ips: inventory
            .ips
            .into_iter()
            .map(|(address, kind)| {
                let kind = if kind == "exclusive" {
                    IpType::Exclusive
                } else {
                    IpType::Shared
                };
                (address, kind)
            })
            .collect::<BTreeMap<_, _>>(),
        db_servers: servers.iter().map(TargetServer::from).collect(),
    }
}

/// What a plan needs to know of the source's records.
pub fn source_facts(clients: &[ClientRecord], domains: &[DomainRecord]) -> SourceFacts {
    let mut facts = SourceFacts::default();
    for c in clients {
        let login = c.login();
        facts.pools.insert(
            login.clone(),
            c.pool.iter().map(|(a, _)| a.clone()).collect(),
        );
        facts.clients.insert(login, c.domains.clone());
    }
    for d in domains {
        let addresses = d
            .hosting
            .as_ref()
            .and_then(|h| h.ip.clone())
            .into_iter()
            .chain(d.forwarding.as_ref().and_then(|(_, ip)| ip.clone()))
            .collect();
        let name = d.name();
        let databases = d
            .databases
            .iter()
            .map(|db| SourceDb {
                name: db.fields.text("name").unwrap_or_default(),
                kind: db.fields.text("type").unwrap_or_default(),
                host: db.server.text("host").unwrap_or_default(),
                port: db
                    .server
                    .text("port")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(3306),
                users: db
                    .users
                    .iter()
                    .filter_map(|(u, _)| u.text("login"))
                    .collect(),
            })
            .collect();
        facts.databases.insert(name.clone(), databases);
        facts.domains.insert(name, addresses);
    }
    facts
}

/// Which planned databases and users already exist on their target
/// servers: (server index, `database`|`user`, name).
/// 15006 for a content directory already on the destination that no
/// earlier hostmig migration left there.
async fn check_trees(
    prepared: &Prepared,
    dest: &crate::config::Destination,
    journal: &actix::Addr<Journal>,
) -> Result<(), Refusal> {
    let existing: Vec<(String, PathBuf)> = prepared
        .destination_trees(dest)
        .into_iter()
        .filter(|(_, _, path)| std::fs::symlink_metadata(path).is_ok())
        .map(|(domain, _, path)| (domain, path))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    let paths = existing
        .iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    let known = journal::ask(journal, journal::KnownTrees(paths))
        .await
        .map_err(journal_failed)?;
    match existing
        .into_iter()
        .find(|(_, p)| !known.contains(&p.display().to_string()))
    {
        Some((domain, path)) => Err(Refusal::ContentDirExists { domain, path }),
        None => Ok(()),
    }
}

/// Logs into the source and discovers its layout; with `tunnel`, also
/// opens the tunnel to its panel database. Answers the logged-in session
/// too, for the later commands of the validation (each SSH login costs
/// the source a process and the link round trips).
async fn connect_source(
    config: &Config,
    host: &str,
    login: Login,
    tunnel: bool,
) -> Result<(SourceAccess, Session, Option<Tunnel>), Refusal> {
    let opts = Options::from(config);
    let key = crate::caps::host_key(host);
    let overrides = config
        .sources
        .iter()
        .find(|s| crate::caps::host_key(&s.host) == key)
        .cloned();
    actix_web::rt::task::spawn_blocking(move || {
        let session = Session::connect(&login, &opts).map_err(source_failed)?;
        let access = discover(&session, overrides.as_ref())
            .map_err(|e| source_failed(format!("panel data unreadable: {e}")))?;
        if !tunnel {
            return Ok((access, session, None));
        }
        let tunnel = Tunnel::open(login, opts, &access.panel_db.host, access.panel_db.port)
            .map_err(source_failed)?;
        Ok((access, session, Some(tunnel)))
    })
    .await
    .map_err(|e| source_failed(format!("the SSH worker failed: {e}")))?
}

/// Logs into the source, discovers it and reads the named clients and
/// domains through the tunnel to its panel database.
async fn read_source(
    config: &Config,
    host: &str,
    login: Login,
    client_logins: Vec<String>,
    domain_names: Vec<String>,
) -> Result<SourceRead, Refusal> {
    // SSH: log in, discover, open the tunnel to the panel database.
    let (access, session, tunnel) = connect_source(config, host, login, true).await?;
    let Some(tunnel) = tunnel else {
        return Err(source_failed(
            "the tunnel to the source's panel database did not open",
        ));
    };

    // The selected objects, read through the tunnel.
    let source_opts = tunnel
        .mysql_opts(&access.panel_db.user, access.panel_db.password.expose())
        .db_name(Some(access.panel_db.database.clone()));
    let mut src = crate::panel::connect(source_opts)
        .await
        .map_err(|e| source_failed(format!("panel data unreadable: {e}")))?;
    let read = async {
        let mut reader = source::Reader::open(&mut src).await?;
        let (clients, _) = reader.clients(&client_logins).await?;
        let (domains, _) = reader.domains(&domain_names).await?;
        Ok::<_, crate::panel::PanelError>((clients, domains))
    };
    let (clients, domains) = read
        .await
        .map_err(|e| source_failed(format!("panel data unreadable: {e}")))?;
    // Their databases' sizes, where the panel's server holds them.
    let names: Vec<String> = domains
        .iter()
        .flat_map(|d| d.databases.iter().filter_map(|db| db.fields.text("name")))
        .collect();
    let db_sizes = super::space::database_sizes(&mut src, &names)
        .await
        .map_err(|e| source_failed(format!("the databases' sizes are unreadable: {e}")))?;
    let _ = src.disconnect().await;
    drop(tunnel);
    Ok(SourceRead {
        access,
        clients,
        domains,
        db_sizes,
        session,
    })
}

/// What `start` reads of the source: where things are, the selected
/// records, and the sizes of their databases; and the session it logged
/// in with (the disk guard measures the trees on it).
struct SourceRead {
    access: SourceAccess,
    clients: Vec<ClientRecord>,
    domains: Vec<DomainRecord>,
    db_sizes: BTreeMap<String, u64>,
    session: Session,
}

/// What `resync` needs of an ended migration.
#[derive(Clone)]
pub struct ResyncSource {
    pub host: String,
    pub user: String,
    /// The original migration's credential, while this process holds it.
    pub credential: Option<Credential>,
    pub scope: Scope,
    pub staging: PathBuf,
    pub addresses: BTreeMap<String, String>,
}

/// Validates a `resync` of `domains` (deployed by an ended migration):
/// logs in with the credentials PROTOCOL.md gives and discovers the
/// source's layout; the trees are those the journal recorded for the
/// domains. The new migration copies content only, by the rsync
/// transport, straight into the deployed trees.
pub async fn prepare_resync(
    source: ResyncSource,
    password: Option<Secret>,
    domains: Vec<String>,
    config: Arc<Config>,
    journal: actix::Addr<Journal>,
) -> Result<Prepared, Refusal> {
    let credential = match (
        password,
        source.credential.clone(),
        config.ssh.identity.clone(),
    ) {
        (Some(p), _, _) if !p.expose().is_empty() => Credential::Password(p),
        (_, Some(c), _) => c,
        (_, None, Some(key)) => Credential::Key(key),
        _ => return Err(Refusal::ResyncNeedsPassword),
    };
    let target = Target::parse(&source.host).ok_or_else(|| Refusal::BadHost {
        host: source.host.clone(),
    })?;
    let login = Login {
        target,
        user: source.user.clone(),
        credential,
    };
    if domains.is_empty() {
        return Err(Refusal::NothingDeployed);
    }
    // The trees and the deployed databases come from the journal; the
    // source's layout from its psa.conf; the databases' source servers and
    // users from its panel, read only when there are databases.
    let dest = config
        .destination
        .clone()
        .ok_or(Refusal::NotReady(NotReady::NoDestination))?;
    let deployed = journal::ask(&journal, journal::LoadDeployedDatabases(domains.clone()))
        .await
        .map_err(journal_failed)?;
    let (access, records) = if deployed.is_empty() {
        let (access, _, _) = connect_source(&config, &source.host, login.clone(), false).await?;
        (access, Vec::new())
    } else {
        let read = read_source(
            &config,
            &source.host,
            login.clone(),
            Vec::new(),
            domains.clone(),
        )
        .await?;
        (read.access, read.domains)
    };
    let (databases, resync_notes) =
        plan::resync_databases(&deployed, &source_facts(&[], &records), &dest.db_servers);
    let recorded = journal::ask(&journal, journal::LoadTreesOf(domains.clone()))
        .await
        .map_err(journal_failed)?;
    let resync_trees: Vec<(String, TreeKind)> = recorded
        .into_iter()
        .filter_map(|(domain, path)| {
            let path = PathBuf::from(path);
            let kind = if path == dest.vhosts_root.join(&domain) {
                TreeKind::Web
            } else if path == dest.mailnames_root.join(&domain) {
                TreeKind::Mail
            } else {
                return None;
            };
            let wanted = match source.scope {
                Scope::Everything => true,
                Scope::OnlyHosting => kind == TreeKind::Web,
                Scope::OnlyMail => kind == TreeKind::Mail,
            };
            wanted.then_some((domain, kind))
        })
        .collect();
    let objects = domains
        .iter()
        .map(|d| plan::Object::Domain {
            name: d.clone(),
            owner: String::new(),
        })
        .collect();
    Ok(Prepared {
        plan: Plan {
            objects,
            addresses: source.addresses,
            databases,
        },
        host: source.host,
        login,
        access,
        clients: Vec::new(),
        domains: records,
        staging: source.staging,
        scope: source.scope,
        transport: Transport::Rsync,
        resync: true,
        resync_trees,
        resync_notes,
        needs: Vec::new(),
        stored: String::new(),
        ahead: Vec::new(),
        resume: None,
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
