//! The request vocabulary of `start` (what a client asks for, as typed
//! values; the wire codec in `rpc/` decodes packets into these), and the
//! rules that the request alone decides, checked before anything else is
//! looked at (PROTOCOL.md §3): what hostmig does not support, and mappings
//! that contradict themselves.

use std::fmt;
use std::net::Ipv4Addr;

use super::refusal::Refusal;
use crate::db::DbKind;
use crate::secret::Secret;

/// A migration id as the client sent it: opaque text, hostmig's are decimal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MigrationId(pub String);

impl fmt::Display for MigrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartRequest {
    /// `host` or `host:port`, exactly as sent (per-source overrides match it).
    pub host: String,
    pub login: String,
    /// Never kept: the journal's copy of a request has none.
    #[serde(skip)]
    pub password: Secret,
    /// Empty: `destination.dump_dir`.
    pub destination_dir: String,
    pub system_type: SystemType,
    pub transport: Transport,
    pub scope: Scope,
    pub selection: Selection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SystemType {
    Unix,
    Windows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    Archive,
    Rsync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    #[default]
    Everything,
    OnlyHosting,
    OnlyMail,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Selection {
    /// One group per `migrate-domains` / `migrate-webspaces` element.
    Domains(Vec<DomainGroup>),
    Clients {
        target_owner: String,
        clients: Vec<MappedClient>,
    },
    Resellers(Vec<MappedReseller>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainGroup {
    pub target_owner: String,
    pub domains: Vec<MappedDomain>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappedDomain {
    pub name: String,
    pub ip: Option<MappedIp>,
    pub db_servers: Vec<MappedDbServer>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappedClient {
    pub name: String,
    pub ips: Vec<MappedIp>,
    pub domains: Vec<MappedDomain>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappedReseller {
    pub name: String,
    pub ips: Vec<MappedIp>,
    pub clients: Vec<MappedClient>,
    pub domains: Vec<MappedDomain>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappedIp {
    pub old: IpSpec,
    pub new: IpSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpSpec {
    pub kind: IpType,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IpType {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappedDbServer {
    pub old: DbServerSpec,
    pub new: DbServerSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbServerSpec {
    pub host: String,
    pub port: u16,
    pub kind: DbKind,
}

/// The first rule the request breaks.
pub fn check(req: &StartRequest) -> Result<(), Refusal> {
    if req.system_type == SystemType::Windows {
        return Err(Refusal::WindowsSource);
    }
    let (clients, domains): (Vec<&MappedClient>, Vec<&MappedDomain>) = match &req.selection {
        Selection::Resellers(_) => return Err(Refusal::Resellers),
        Selection::Clients {
            target_owner,
            clients,
        } => {
            if target_owner != "admin" {
                return Err(Refusal::ClientsNotToAdmin {
                    owner: target_owner.clone(),
                });
            }
            let domains = clients.iter().flat_map(|c| &c.domains).collect();
            (clients.iter().collect(), domains)
        }
        Selection::Domains(groups) => {
            (Vec::new(), groups.iter().flat_map(|g| &g.domains).collect())
        }
    };
    let ips = clients
        .iter()
        .flat_map(|c| &c.ips)
        .chain(domains.iter().filter_map(|d| d.ip.as_ref()));
    for ip in ips {
        if ip.old.kind != ip.new.kind {
            return Err(Refusal::IpTypeMismatch {
                old_kind: ip.old.kind,
                old: ip.old.address.to_string(),
                new_kind: ip.new.kind,
                new: ip.new.address.to_string(),
            });
        }
    }
    for server in domains.iter().flat_map(|d| &d.db_servers) {
        for spec in [&server.old, &server.new] {
            if spec.kind != DbKind::Mysql {
                return Err(Refusal::MappedServerNotMysql {
                    host: spec.host.clone(),
                    port: spec.port,
                    kind: spec.kind,
                });
            }
        }
    }
    Ok(())
}

impl IpType {
    pub fn as_str(self) -> &'static str {
        match self {
            IpType::Shared => "shared",
            IpType::Exclusive => "exclusive",
        }
    }
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Everything => "everything",
            Scope::OnlyHosting => "only-hosting",
            Scope::OnlyMail => "only-mail",
        }
    }
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Archive => "archive",
            Transport::Rsync => "rsync",
        }
    }
}
