//! The generated source as a plain value: which clients, domains, mail
//! names, zones and databases exist, derived from a seed and a profile
//! alone. The writers (panel rows, content, databases) turn it into bytes.

use super::rng::Rng;
use super::Profile;

/// Addresses of the source: data only, never connected to.
pub const SOURCE_IPS: &[(&str, IpKind)] = &[
    ("192.0.2.10", IpKind::Shared),
    ("192.0.2.100", IpKind::Shared),
    ("192.0.2.20", IpKind::Exclusive),
    ("192.0.2.21", IpKind::Exclusive),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpKind {
    Shared,
    Exclusive,
}

impl IpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IpKind::Shared => "shared",
            IpKind::Exclusive => "exclusive",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub clients: Vec<Client>,
    pub domains: Vec<Domain>,
    /// Size of the content and databases.
    pub sizes: Sizes,
}

#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Small files per hosting domain's httpdocs.
    pub files_per_domain: u64,
    /// Small files of the big domain (the one with the big files).
    pub files_big_domain: u64,
    /// Largest small file.
    pub max_file_bytes: u64,
    /// Big files (bytes each) in the first hosting domain.
    pub big_files: &'static [u64],
    /// Messages per mailbox.
    pub messages_per_box: u64,
    /// Rows of the bulk table of the big database (the big domain's, or
    /// the first hosting domain's when the profile has no big domain).
    pub rows_big_db: u64,
    /// Rows of the bulk table of every other database.
    pub rows_per_db: u64,
    /// Bytes of text per bulk row (about).
    pub row_text_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub login: String,
    pub pname: String,
    pub cname: String,
    pub email: String,
    pub password: String,
    /// Indexes into [`SOURCE_IPS`].
    pub pool: Vec<usize>,
    pub limits: Vec<(&'static str, i64)>,
    /// `None`: the client's `perm_id` is NULL (defaults).
    pub permissions: Option<Vec<(&'static str, bool)>>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    /// ASCII (punycode) name.
    pub name: String,
    pub display_name: String,
    /// Index into `clients`; `None` for the administrator.
    pub owner: Option<usize>,
    pub hosting: HostingKind,
    pub mail: Vec<MailName>,
    pub records: Vec<Record>,
    pub subdomains: Vec<String>,
    pub aliases: Vec<String>,
    pub databases: Vec<Database>,
    pub admin: Option<DomainAdmin>,
    /// Carries the content hard cases (names, links, modes, sparse file).
    pub hard_cases: bool,
    /// Carries the big files of the profile.
    pub big: bool,
}

#[derive(Debug, Clone)]
pub enum HostingKind {
    None,
    Virtual {
        ip: usize,
        sys_login: String,
        sys_password: String,
    },
    Forward {
        ip: usize,
        url: String,
    },
}

#[derive(Debug, Clone)]
pub struct MailName {
    pub name: String,
    pub password: String,
    pub postbox: bool,
    pub aliases: Vec<String>,
    /// Forward target (a catch-all-like forward when `postbox` is false).
    pub redirect: Option<String>,
    /// Members when it is a mail group.
    pub group: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub kind: &'static str,
    pub host: String,
    pub value: String,
    pub opt: String,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub name: String,
    pub users: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DomainAdmin {
    pub password: String,
    pub personal_name: String,
    /// `None`: `perm_id` NULL.
    pub permissions: Option<Vec<(&'static str, bool)>>,
}

const FIRST: &[&str] = &[
    "anna", "bob", "carla", "dmitri", "erin", "farid", "gita", "hugo", "ines", "jonas", "kemal",
    "lena",
];
const LAST: &[&str] = &[
    "smith", "novak", "garcia", "muller", "rossi", "kowalski", "dubois", "jensen",
];

const MIB: u64 = 1024 * 1024;

impl Profile {
    pub fn sizes(self) -> Sizes {
        match self {
            Profile::Tiny => Sizes {
                files_per_domain: 12,
                files_big_domain: 12,
                max_file_bytes: 8 * 1024,
                big_files: &[],
                messages_per_box: 3,
                rows_big_db: 50,
                rows_per_db: 50,
                row_text_bytes: 200,
            },
            Profile::Small => Sizes {
                files_per_domain: 150,
                files_big_domain: 150,
                max_file_bytes: 32 * 1024,
                big_files: &[2 * MIB],
                messages_per_box: 20,
                rows_big_db: 2_000,
                rows_per_db: 500,
                row_text_bytes: 300,
            },
            Profile::Medium => Sizes {
                files_per_domain: 500,
                files_big_domain: 5_000,
                max_file_bytes: 64 * 1024,
                big_files: &[40 * MIB],
                messages_per_box: 200,
                // The links' benchmarks: at least 500,000 rows.
                rows_big_db: 500_000,
                rows_per_db: 2_000,
                row_text_bytes: 300,
            },
            Profile::Large => Sizes {
                files_per_domain: 300,
                files_big_domain: 20_000,
                max_file_bytes: 40 * 1024,
                big_files: &[100 * MIB, 128 * MIB, 160 * MIB, 200 * MIB],
                messages_per_box: 500,
                rows_big_db: 3_000_000,
                rows_per_db: 5_000,
                row_text_bytes: 300,
            },
        }
    }

    /// Extra clients beyond the fixed hard-case ones.
    fn extra_clients(self) -> usize {
        match self {
            Profile::Tiny => 0,
            Profile::Small => 5,
            Profile::Medium => 12,
            Profile::Large => 4,
        }
    }
}

impl Model {
    /// A model of nothing, for a source whose panel was written by hand.
    pub fn empty() -> Model {
        Model {
            clients: Vec::new(),
            domains: Vec::new(),
            sizes: Profile::Tiny.sizes(),
        }
    }

    pub fn generate(profile: Profile, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let sizes = profile.sizes();
        let mut clients = vec![
            client(&mut rng, "jdoe", "John Doe", vec![0, 2], true),
            client(&mut rng, "mrsmith", "Mary Smith", vec![1, 3], true),
            client(&mut rng, "nodomains", "Nora Domainless", vec![], false),
        ];
        let mut domains = vec![
            hosting_domain(
                &mut rng,
                "jdoe.example",
                "jdoe.example",
                Some(0),
                0,
                "jdoe_ftp",
                true,
            ),
            hosting_domain(
                &mut rng,
                "xn--bcher-kva.example",
                "bücher.example",
                Some(0),
                0,
                "buecher_ftp",
                false,
            ),
            Domain {
                hosting: HostingKind::Forward {
                    ip: 3,
                    url: "http://www.smith-new.example/".into(),
                },
                mail: Vec::new(),
                databases: Vec::new(),
                subdomains: Vec::new(),
                aliases: Vec::new(),
                admin: None,
                ..hosting_domain(
                    &mut rng,
                    "smith-fwd.example",
                    "smith-fwd.example",
                    Some(1),
                    3,
                    "unused",
                    false,
                )
            },
            hosting_domain(
                &mut rng,
                "admin-site.example",
                "admin-site.example",
                None,
                1,
                "adminsite",
                false,
            ),
        ];
        // The hard cases of the panel: the IDN domain's administrator has
        // perm_id NULL, mrsmith's pool holds an exclusive address.
        if let Some(admin) = domains[1].admin.as_mut() {
            admin.permissions = None;
        }
        domains[1].databases.clear();
        for i in 0..profile.extra_clients() {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len() + i) % LAST.len()];
            let login = format!("{first}{i}");
            let owner = clients.len();
            clients.push(client(
                &mut rng,
                &login,
                &format!("{} {}", cap(first), cap(last)),
                vec![0],
                i % 2 == 0,
            ));
            for d in 0..(1 + i % 3) {
                let name = format!("{first}{i}-site{d}.example");
                let sys = format!("{first}{i}_s{d}");
                domains.push(hosting_domain(
                    &mut rng,
                    &name,
                    &name,
                    Some(owner),
                    d % 2,
                    &sys,
                    false,
                ));
            }
        }
        // The big files go to one domain of their own when the profile has them.
        if !sizes.big_files.is_empty() {
            let mut big = hosting_domain(
                &mut rng,
                "big.example",
                "big.example",
                Some(0),
                0,
                "big_ftp",
                false,
            );
            big.big = true;
            big.mail.truncate(1);
            domains.push(big);
        }
        Model {
            clients,
            domains,
            sizes,
        }
    }

    /// The hosting address of a domain with virtual hosting.
    pub fn hosting_ip(&self, name: &str) -> Option<&'static str> {
        self.domains
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| match d.hosting {
                HostingKind::Virtual { ip, .. } => Some(SOURCE_IPS[ip].0),
                _ => None,
            })
    }

    /// The domains of client `owner` (an index into `clients`), or the
    /// administrator's with `None`.
    /// The hard-case database: the first database of the model, which
    /// also holds the type families (`data.rs`).
    pub fn hard_database(&self) -> Option<String> {
        self.domains
            .iter()
            .flat_map(|d| &d.databases)
            .map(|db| db.name.clone())
            .next()
    }

    pub fn domains_of(&self, owner: Option<usize>) -> impl Iterator<Item = &Domain> {
        self.domains.iter().filter(move |d| d.owner == owner)
    }

    pub fn hosting_domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains
            .iter()
            .filter(|d| matches!(d.hosting, HostingKind::Virtual { .. }))
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn client(rng: &mut Rng, login: &str, name: &str, pool: Vec<usize>, with_perms: bool) -> Client {
    Client {
        login: login.to_owned(),
        pname: name.to_owned(),
        cname: format!("{name} Hosting Ltd"),
        email: format!("{login}@mail.example"),
        password: format!("cl-{}", rng.hex(6)),
        pool,
        limits: vec![
            ("max_dom", rng.range(1, 20) as i64),
            ("max_subdom", -1),
            ("disk_space", (rng.range(1, 50) * 1024 * 1024 * 1024) as i64),
            ("max_traffic", -1),
            ("max_box", rng.range(5, 100) as i64),
            ("max_db", rng.range(1, 10) as i64),
            ("max_wu", -1),
            ("expiration", -1),
        ],
        permissions: with_perms.then(|| {
            vec![
                ("create_domains", true),
                ("manage_dns", rng.range(0, 2) == 1),
                ("manage_log", true),
                ("manage_phosting", true),
                ("cp_access", true),
            ]
        }),
    }
}

fn hosting_domain(
    rng: &mut Rng,
    name: &str,
    display: &str,
    owner: Option<usize>,
    ip: usize,
    sys_login: &str,
    hard_cases: bool,
) -> Domain {
    let ip_addr = SOURCE_IPS[ip].0;
    let mail = vec![
        MailName {
            name: "info".into(),
            password: format!("mb-{}", rng.hex(5)),
            postbox: true,
            aliases: vec!["contact".into(), "hello".into()],
            redirect: None,
            group: Vec::new(),
        },
        MailName {
            name: "sales".into(),
            password: format!("mb-{}", rng.hex(5)),
            postbox: true,
            aliases: Vec::new(),
            redirect: None,
            group: vec![format!("info@{name}"), "team@partner.example".into()],
        },
        MailName {
            name: "everything".into(),
            password: format!("mb-{}", rng.hex(5)),
            postbox: false,
            aliases: Vec::new(),
            redirect: Some("owner@elsewhere.example".into()),
            group: Vec::new(),
        },
    ];
    let mut records = vec![
        rec("NS", &format!("{name}."), &format!("ns.{name}."), ""),
        rec("A", &format!("{name}."), ip_addr, ""),
        rec("A", &format!("www.{name}."), ip_addr, ""),
        rec("A", &format!("ns.{name}."), ip_addr, ""),
        rec("CNAME", &format!("ftp.{name}."), &format!("{name}."), ""),
        rec("MX", &format!("{name}."), &format!("mail.{name}."), "10"),
        rec("A", &format!("mail.{name}."), ip_addr, ""),
        rec("TXT", &format!("{name}."), "v=spf1 +a +mx -all", ""),
    ];
    if hard_cases {
        // An A record whose value starts like the hosting address but is longer.
        records.push(rec("A", &format!("legacy.{name}."), "192.0.2.100", ""));
    }
    Domain {
        name: name.to_owned(),
        display_name: display.to_owned(),
        owner,
        hosting: HostingKind::Virtual {
            ip,
            sys_login: sys_login.to_owned(),
            sys_password: format!("ftp-{}", rng.hex(6)),
        },
        mail,
        records,
        subdomains: vec!["blog".into()],
        aliases: vec![format!("alias-{name}")],
        databases: vec![Database {
            name: format!("{sys_login}_db"),
            users: vec![(format!("{sys_login}_u"), format!("db-{}", rng.hex(6)))],
        }],
        admin: Some(DomainAdmin {
            password: format!("da-{}", rng.hex(6)),
            personal_name: format!("Admin of {display}"),
            permissions: Some(vec![("manage_dns", true), ("manage_log", false)]),
        }),
        hard_cases,
        big: false,
    }
}

fn rec(kind: &'static str, host: &str, value: &str, opt: &str) -> Record {
    Record {
        kind,
        host: host.to_owned(),
        value: value.to_owned(),
        opt: opt.to_owned(),
    }
}
