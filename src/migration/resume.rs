//! Going on with a migration that a restart of hostmig interrupted (a
//! crash, a kill, a reboot): what the journal keeps of its request (never
//! a password), and how that request is narrowed to what is left: the
//! domains it deployed are not planned again, a client it deployed stays
//! the owner of its remaining domains without being written again, and
//! its content and databases go on from what the first run left.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::plan::{Object, Plan};
use super::request::{Selection, StartRequest};
use crate::journal::Resumable;

/// A migration's request as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StoredRequest {
    /// A `start`; `keyed` when it logged in by the configured key (it can
    /// then go on by itself after a restart).
    Start {
        request: Box<StartRequest>,
        keyed: bool,
    },
    /// A `resync` of migration `of`.
    Resync { of: u64, keyed: bool },
}

impl StoredRequest {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// Whether it logged in by the configured key.
    pub fn keyed(&self) -> bool {
        match self {
            StoredRequest::Start { keyed, .. } | StoredRequest::Resync { keyed, .. } => *keyed,
        }
    }
}

/// What an interrupted migration did before the restart, as its second
/// run needs it.
#[derive(Debug, Clone, Default)]
pub struct ResumeFrom {
    pub id: u64,
    /// When its work first began (Unix seconds): files written since are
    /// checked by hash, not trusted by size and time alone.
    pub since: Option<i64>,
    /// Its work steps and how many were done (the status never goes
    /// below).
    pub total: u64,
    pub completed: u64,
    pub clients: BTreeSet<String>,
    pub domains: BTreeSet<String>,
    /// (server, database) → the scratch database its rows are in.
    pub scratches: HashMap<(String, String), String>,
}

impl ResumeFrom {
    pub fn new(id: u64, stored: &Resumable) -> Self {
        ResumeFrom {
            id,
            since: stored.began_at,
            total: stored.total,
            completed: stored.completed,
            clients: stored.clients.iter().cloned().collect(),
            domains: stored.domains.iter().cloned().collect(),
            scratches: stored
                .scratches
                .iter()
                .map(|(server, db, scratch)| ((server.clone(), db.clone()), scratch.clone()))
                .collect(),
        }
    }

    /// The first number free for this run's scratch databases
    /// (`hostmig_<id>_<n>`): after the first run's.
    pub fn next_scratch(&self) -> usize {
        let prefix = format!("hostmig_{}_", self.id);
        self.scratches
            .values()
            .filter_map(|s| s.strip_prefix(&prefix)?.parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0)
    }

    /// The request without the domains already deployed.
    pub fn remaining(&self, req: &StartRequest) -> StartRequest {
        let mut out = req.clone();
        let keep = |name: &String| !self.domains.contains(name);
        match &mut out.selection {
            Selection::Domains(groups) => {
                for g in groups.iter_mut() {
                    g.domains.retain(|d| keep(&d.name));
                }
                groups.retain(|g| !g.domains.is_empty());
            }
            Selection::Clients { clients, .. } => {
                for c in clients.iter_mut() {
                    c.domains.retain(|d| keep(&d.name));
                }
                // A deployed client with nothing left is done.
                clients.retain(|c| !(self.clients.contains(&c.name) && c.domains.is_empty()));
            }
            Selection::Resellers(_) => {}
        }
        out
    }

    /// A client deployed before the restart is not written again: its
    /// remaining domains go to it as domains of an existing owner.
    pub fn narrow(&self, plan: &mut Plan) {
        let objects = std::mem::take(&mut plan.objects);
        for o in objects {
            match o {
                Object::Client { login, domains } if self.clients.contains(&login) => {
                    plan.objects
                        .extend(domains.into_iter().map(|name| Object::Domain {
                            name,
                            owner: login.clone(),
                        }));
                }
                other => plan.objects.push(other),
            }
        }
    }

    /// The step numbers of the second run shown on the first run's scale:
    /// the steps of what was done before the restart are counted done,
    /// and what was shown never goes down.
    pub fn shown(&self, total_now: u64, completed_now: u64) -> (u64, u64) {
        Steps {
            own_total: total_now,
            earlier: Some((self.total, self.completed)),
        }
        .shown(completed_now)
    }
}

/// How a run's work steps are shown: its own, or, for the second run of
/// an interrupted migration, on the first run's scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steps {
    /// This run's steps.
    pub own_total: u64,
    /// The first run's total and the steps it had done.
    pub earlier: Option<(u64, u64)>,
}

impl Steps {
    /// (total, completed) as shown when this run has done `completed_now`.
    pub fn shown(&self, completed_now: u64) -> (u64, u64) {
        let Some((total_before, completed_before)) = self.earlier else {
            return (self.own_total, completed_now.min(self.own_total));
        };
        let total = total_before.max(self.own_total);
        let done_before = total - self.own_total;
        let completed = (done_before + completed_now)
            .max(completed_before)
            .min(total);
        (total, completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::request::{
        DomainGroup, MappedClient, MappedDomain, Scope, SystemType, Transport,
    };
    use crate::secret::Secret;

    fn domain(name: &str) -> MappedDomain {
        MappedDomain {
            name: name.into(),
            ip: None,
            db_servers: Vec::new(),
        }
    }

    fn request(selection: Selection) -> StartRequest {
        StartRequest {
            host: "192.0.2.1".into(),
            login: "root".into(),
            password: Secret::new("pw".into()),
            destination_dir: String::new(),
            system_type: SystemType::Unix,
            transport: Transport::Rsync,
            scope: Scope::Everything,
            selection,
        }
    }

    fn from(clients: &[&str], domains: &[&str]) -> ResumeFrom {
        ResumeFrom {
            clients: clients.iter().map(|s| s.to_string()).collect(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
            ..ResumeFrom::default()
        }
    }

    #[test]
    fn the_stored_request_never_holds_the_password() {
        let stored = StoredRequest::Start {
            request: Box::new(request(Selection::Domains(Vec::new()))),
            keyed: false,
        };
        let text = stored.to_json();
        assert!(!text.contains("pw"), "{text}");
        let back = StoredRequest::parse(&text).expect("parses");
        let StoredRequest::Start { request, keyed } = back else {
            panic!("a start");
        };
        assert!(!keyed);
        assert!(request.password.is_empty());
        assert_eq!(request.host, "192.0.2.1");
    }

    #[test]
    fn deployed_domains_and_clients_are_not_planned_again() {
        let req = request(Selection::Clients {
            target_owner: "admin".into(),
            clients: vec![
                MappedClient {
                    name: "jdoe".into(),
                    ips: Vec::new(),
                    domains: vec![domain("a.example"), domain("b.example")],
                },
                MappedClient {
                    name: "done".into(),
                    ips: Vec::new(),
                    domains: vec![domain("c.example")],
                },
            ],
        });
        let resume = from(&["jdoe", "done"], &["a.example", "c.example"]);
        let Selection::Clients { clients, .. } = resume.remaining(&req).selection else {
            panic!("clients");
        };
        assert_eq!(clients.len(), 1, "the client with nothing left is done");
        assert_eq!(clients[0].domains, vec![domain("b.example")]);

        let mut plan = Plan {
            objects: vec![
                Object::Client {
                    login: "jdoe".into(),
                    domains: vec!["b.example".into()],
                },
                Object::Client {
                    login: "new".into(),
                    domains: vec!["d.example".into()],
                },
            ],
            addresses: Default::default(),
            databases: Vec::new(),
        };
        resume.narrow(&mut plan);
        assert_eq!(
            plan.objects,
            vec![
                Object::Domain {
                    name: "b.example".into(),
                    owner: "jdoe".into()
                },
                Object::Client {
                    login: "new".into(),
                    domains: vec!["d.example".into()]
                },
            ]
        );

        let req = request(Selection::Domains(vec![DomainGroup {
            target_owner: "admin".into(),
            domains: vec![domain("a.example")],
        }]));
        let Selection::Domains(groups) = resume.remaining(&req).selection else {
            panic!("domains");
        };
        assert!(groups.is_empty());
    }

    #[test]
    fn the_shown_steps_never_go_down() {
        let resume = ResumeFrom {
            total: 10,
            completed: 6,
            ..ResumeFrom::default()
        };
        // 4 steps left to plan (6 done before, of which 2 are redone).
        assert_eq!(resume.shown(4, 1), (10, 7));
        assert_eq!(resume.shown(6, 1), (10, 6), "never below what was shown");
        assert_eq!(resume.shown(6, 6), (10, 10));
        assert_eq!(resume.shown(12, 12), (12, 12), "never above the total");
    }
}
