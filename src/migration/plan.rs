//! The plan of a migration as a plain value, built by pure functions from
//! the request, what the source has and what the destination has; every
//! refusal `start` can give about records and addresses comes from here,
//! before an id is returned (PROTOCOL.md §3).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::refusal::Refusal;
use super::request::{
    IpType, MappedDbServer, MappedDomain, MappedIp, Scope, Selection, StartRequest,
};
use super::status::ObjectKind;
use crate::db::DbKind;

/// What the source holds of the selected objects.
#[derive(Debug, Clone, Default)]
pub struct SourceFacts {
    /// Client login → its domains' names.
    pub clients: BTreeMap<String, Vec<String>>,
    /// Domain name → the addresses it uses (hosting or forwarding).
    pub domains: BTreeMap<String, Vec<String>>,
    /// Client login → its IP pool.
    pub pools: BTreeMap<String, Vec<String>>,
    /// Domain name → its databases.
    pub databases: BTreeMap<String, Vec<SourceDb>>,
}

/// A database of the source, on the server its panel names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDb {
    pub name: String,
    /// `mysql`, `postgresql` or `mssql`.
    pub kind: String,
    /// The server as the source sees it.
    pub host: String,
    pub port: u16,
    /// The database's user logins.
    pub users: Vec<String>,
}

/// A database server of the destination (`[[destination.db_servers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetServer {
    pub host: String,
    pub port: u16,
    pub kind: DbKind,
    pub default: bool,
}

impl TargetServer {
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl From<&crate::config::DbServer> for TargetServer {
    fn from(s: &crate::config::DbServer) -> Self {
        TargetServer {
            host: s.host.clone(),
            port: s.port,
            kind: s.kind,
            default: s.default,
        }
    }
}

/// A database the plan copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDb {
    pub domain: String,
    pub db: SourceDb,
    /// Index into the destination's servers.
    pub target: usize,
}

/// What the destination holds.
#[derive(Debug, Clone, Default)]
pub struct DestinationFacts {
    pub client_logins: BTreeSet<String>,
    pub domains: BTreeSet<String>,
    /// Address → `shared` or `exclusive`.
    pub ips: BTreeMap<String, IpType>,
    /// The configured database servers.
    pub db_servers: Vec<TargetServer>,
}

/// An object a migration holds while it runs or waits: no other
/// migration may work on it at the same time.
pub type Hold = (ObjectKind, String);

/// Objects held by running or queued migrations → the migration's id.
pub type Busy = HashMap<Hold, u64>;

/// One object to migrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A client with the domains named under it.
    Client { login: String, domains: Vec<String> },
    /// A domain given to `owner` (a client login, or `admin`).
    Domain { name: String, owner: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub objects: Vec<Object>,
    /// Old address → new address, for every address the objects use.
    pub addresses: BTreeMap<String, String>,
    /// Every database the plan copies, with its target server.
    pub databases: Vec<PlannedDb>,
}

impl Plan {
    /// Work steps: the plan itself, then one deploy per client and domain.
    pub fn total_steps(&self) -> u64 {
        1 + self
            .objects
            .iter()
            .map(|o| match o {
                Object::Client { domains, .. } => 1 + domains.len() as u64,
                Object::Domain { .. } => 1,
            })
            .sum::<u64>()
    }

    /// Every domain the plan migrates, in plan order.
    pub fn domain_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.objects {
            match o {
                Object::Client { domains, .. } => out.extend(domains.iter().cloned()),
                Object::Domain { name, .. } => out.push(name.clone()),
            }
        }
        out
    }

    /// Every object this plan holds, for the busy check of others.
    pub fn holds(&self) -> Vec<Hold> {
        let mut out = Vec::new();
        for o in &self.objects {
            match o {
                Object::Client { login, domains } => {
                    out.push((ObjectKind::Client, login.clone()));
                    out.extend(domains.iter().map(|d| (ObjectKind::Domain, d.clone())));
                }
                Object::Domain { name, .. } => out.push((ObjectKind::Domain, name.clone())),
            }
        }
        out
    }
}

/// Builds the plan, or the first refusal in the order of PROTOCOL.md §3.
pub fn build(
    req: &StartRequest,
    source: &SourceFacts,
    dest: &DestinationFacts,
    busy: &Busy,
) -> Result<Plan, Refusal> {
    super::request::check(req)?;
    let (objects, mappings) = objects(req);

    // 1013: everything missing on the source, named in one text.
    let mut missing_domains = Vec::new();
    let mut missing_clients = Vec::new();
    for o in &objects {
        match o {
            Object::Client { login, domains } => match source.clients.get(login) {
                None => missing_clients.push(login.clone()),
                Some(owned) => {
                    missing_domains.extend(domains.iter().filter(|d| !owned.contains(d)).cloned())
                }
            },
            Object::Domain { name, .. } => {
                if !source.domains.contains_key(name) {
                    missing_domains.push(name.clone());
                }
            }
        }
    }
    if !missing_clients.is_empty() || !missing_domains.is_empty() {
        return Err(Refusal::NotOnSource {
            clients: missing_clients,
            domains: missing_domains,
        });
    }

    // 1023: target owners that the destination does not have.
    for o in &objects {
        if let Object::Domain { owner, .. } = o {
            if owner != "admin" && !dest.client_logins.contains(owner) {
                return Err(Refusal::TargetOwnerMissing {
                    owner: owner.clone(),
                });
            }
        }
    }

    // 15012 and 15006: objects that already exist on the destination.
    for o in &objects {
        let (client, domains): (Option<&String>, Vec<&String>) = match o {
            Object::Client { login, domains } => (Some(login), domains.iter().collect()),
            Object::Domain { name, .. } => (None, vec![name]),
        };
        if let Some(login) = client.filter(|l| dest.client_logins.contains(*l)) {
            return Err(Refusal::ClientExists {
                login: login.clone(),
            });
        }
        if let Some(name) = domains.into_iter().find(|d| dest.domains.contains(*d)) {
            return Err(Refusal::DomainExists { name: name.clone() });
        }
    }

    // The address map: mappings must agree, their new addresses exist with
    // the same type; addresses without a mapping must exist as they are.
    let mut map: BTreeMap<String, (String, IpType)> = BTreeMap::new();
    for m in &mappings {
        let (old, new) = (m.old.address.to_string(), m.new.address.to_string());
        if let Some((earlier, _)) = map.get(&old).filter(|(n, _)| *n != new) {
            return Err(Refusal::IpMappedTwice {
                old,
                first: earlier.clone(),
                second: new,
            });
        }
        match dest.ips.get(&new) {
            None => return Err(Refusal::NewIpMissing { address: new }),
            Some(kind) if *kind != m.new.kind => {
                return Err(Refusal::NewIpOtherType {
                    address: new,
                    has: *kind,
                    wanted: m.new.kind,
                })
            }
            Some(_) => {}
        }
        map.insert(old, (new, m.new.kind));
    }
    let mut addresses = BTreeMap::new();
    for used in used_addresses(&objects, source) {
        let new = match map.get(&used) {
            Some((new, _)) => new.clone(),
            None if dest.ips.contains_key(&used) => used.clone(),
            None => return Err(Refusal::UnmappedIpMissing { address: used }),
        };
        addresses.insert(used, new);
    }

    // 14008 and 14009: where each database goes.
    let databases = if req.scope == Scope::OnlyMail {
        Vec::new()
    } else {
        plan_databases(req, &objects, source, dest)?
    };

    // 1023: objects another running or queued migration holds.
    let plan = Plan {
        objects,
        addresses,
        databases,
    };
    check_busy(&plan, busy)?;
    Ok(plan)
}

/// The target server of every database of the selected domains: the
/// domain's `db-server` mapping of its source server, else the default
/// server of its type.
fn plan_databases(
    req: &StartRequest,
    objects: &[Object],
    source: &SourceFacts,
    dest: &DestinationFacts,
) -> Result<Vec<PlannedDb>, Refusal> {
    let domains: Vec<&MappedDomain> = match &req.selection {
        Selection::Domains(groups) => groups.iter().flat_map(|g| &g.domains).collect(),
        Selection::Clients { clients, .. } => clients.iter().flat_map(|c| &c.domains).collect(),
        Selection::Resellers(_) => Vec::new(),
    };
    let mapped: BTreeMap<&str, &[MappedDbServer]> = domains
        .iter()
        .map(|d| (d.name.as_str(), d.db_servers.as_slice()))
        .collect();
    let mut out = Vec::new();
    for o in objects {
        let names: Vec<&String> = match o {
            Object::Client { domains, .. } => domains.iter().collect(),
            Object::Domain { name, .. } => vec![name],
        };
        for domain in names {
            for db in source.databases.get(domain).into_iter().flatten() {
                if db.kind != DbKind::Mysql.as_str() {
                    return Err(Refusal::DatabaseNotMysql {
                        database: db.name.clone(),
                        domain: domain.clone(),
                        kind: db.kind.clone(),
                    });
                }
                let mapping = mapped.get(domain.as_str()).and_then(|maps| {
                    maps.iter().find(|m| {
                        m.old.host == db.host
                            && m.old.port == db.port
                            && m.old.kind.as_str() == db.kind
                    })
                });
                let target = match mapping {
                    Some(m) => dest
                        .db_servers
                        .iter()
                        .position(|s| {
                            s.host == m.new.host && s.port == m.new.port && s.kind == m.new.kind
                        })
                        .ok_or_else(|| Refusal::DbServerNotConfigured {
                            host: m.new.host.clone(),
                            port: m.new.port,
                            kind: m.new.kind,
                        })?,
                    None => dest
                        .db_servers
                        .iter()
                        .position(|s| s.default && s.kind.as_str() == db.kind)
                        .ok_or_else(|| Refusal::NoDefaultDbServer {
                            kind: db.kind.clone(),
                            database: db.name.clone(),
                        })?,
                };
                out.push(PlannedDb {
                    domain: domain.clone(),
                    db: db.clone(),
                    target,
                });
            }
        }
    }
    Ok(out)
}

/// What already exists on a target server: a database or an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Existing {
    Database,
    User,
}

/// Refuses a plan whose database or one of its users already exists on its
/// target server (`existing`: (server index, what, name)).
pub fn check_databases_free(
    plan: &Plan,
    servers: &[TargetServer],
    existing: &BTreeSet<(usize, Existing, String)>,
) -> Result<(), Refusal> {
    for p in &plan.databases {
        let label = servers
            .get(p.target)
            .map(TargetServer::label)
            .unwrap_or_default();
        if existing.contains(&(p.target, Existing::Database, p.db.name.clone())) {
            return Err(Refusal::DatabaseExists {
                name: p.db.name.clone(),
                server: label,
            });
        }
        if let Some(user) =
            p.db.users
                .iter()
                .find(|u| existing.contains(&(p.target, Existing::User, (*u).clone())))
        {
            return Err(Refusal::DbUserExists {
                user: user.clone(),
                database: p.db.name.clone(),
                server: label,
            });
        }
    }
    Ok(())
}

/// Refuses a plan when another running or queued migration holds one of
/// its objects (checked when planning, and again when it is admitted).
pub fn check_busy(plan: &Plan, busy: &Busy) -> Result<(), Refusal> {
    for hold in plan.holds() {
        if let Some(id) = busy.get(&hold) {
            let (kind, name) = hold;
            return Err(Refusal::Busy {
                kind,
                name,
                migration: *id,
            });
        }
    }
    Ok(())
}

/// The objects a request names, as holds (what an interrupted migration
/// keeps from other starts before anything is read again).
pub fn requested_holds(req: &StartRequest) -> Vec<Hold> {
    let plan = Plan {
        objects: objects(req).0,
        addresses: BTreeMap::new(),
        databases: Vec::new(),
    };
    plan.holds()
}

/// The objects a request selects and every address mapping it gives.
fn objects(req: &StartRequest) -> (Vec<Object>, Vec<MappedIp>) {
    let mut objects = Vec::new();
    let mut mappings = Vec::new();
    let domain_maps = |domains: &[MappedDomain], mappings: &mut Vec<MappedIp>| {
        mappings.extend(domains.iter().filter_map(|d| d.ip));
    };
    match &req.selection {
        Selection::Domains(groups) => {
            for g in groups {
                domain_maps(&g.domains, &mut mappings);
                objects.extend(g.domains.iter().map(|d| Object::Domain {
                    name: d.name.clone(),
                    owner: g.target_owner.clone(),
                }));
            }
        }
        Selection::Clients { clients, .. } => {
            for c in clients {
                mappings.extend(c.ips.iter().copied());
                domain_maps(&c.domains, &mut mappings);
                objects.push(Object::Client {
                    login: c.name.clone(),
                    domains: c.domains.iter().map(|d| d.name.clone()).collect(),
                });
            }
        }
        Selection::Resellers(_) => {}
    }
    (objects, mappings)
}

/// Every address the selected objects use on the source.
fn used_addresses(objects: &[Object], source: &SourceFacts) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for o in objects {
        let domains: Vec<&String> = match o {
            Object::Client { login, domains } => {
                used.extend(source.pools.get(login).into_iter().flatten().cloned());
                domains.iter().collect()
            }
            Object::Domain { name, .. } => vec![name],
        };
        for d in domains {
            used.extend(source.domains.get(d).into_iter().flatten().cloned());
        }
    }
    used
}

/// A resync's databases: each one deployed (journal: domain, server,
/// name) that the source's panel still lists, on the server it was
/// deployed to; and a note for each database left as it is.
pub fn resync_databases(
    deployed: &[(String, String, String)],
    facts: &SourceFacts,
    servers: &[crate::config::DbServer],
) -> (Vec<PlannedDb>, Vec<(String, String)>) {
    let mut planned = Vec::new();
    let mut notes = Vec::new();
    for (domain, server, name) in deployed {
        let on_source = facts
            .databases
            .get(domain)
            .and_then(|dbs| dbs.iter().find(|d| &d.name == name));
        let target = servers.iter().position(|s| &s.label() == server);
        match (on_source, target) {
            (Some(db), Some(target)) => planned.push(PlannedDb {
                domain: domain.clone(),
                db: db.clone(),
                target,
            }),
            (None, _) => notes.push((
                domain.clone(),
                format!("database {name} was left as it is: the source's panel no longer lists it"),
            )),
            (_, None) => notes.push((
                domain.clone(),
                format!("database {name} was left as it is: its server {server} is no longer configured"),
            )),
        }
    }
    for (domain, dbs) in &facts.databases {
        for db in dbs {
            if !deployed
                .iter()
                .any(|(d, _, n)| d == domain && n == &db.name)
            {
                notes.push((
                    domain.clone(),
                    format!("database {} was added on the source after the migration and was not copied: migrate it with a start", db.name),
                ));
            }
        }
    }
    (planned, notes)
}
