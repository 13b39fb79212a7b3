//! Request packets: the typed form of what a client asks, and the pure decoder
//! that turns an XML tree into it, enforcing order and cardinality the way
//! `schemas/agent_input.xsd` states them (serde alone would accept children
//! out of order).

use std::net::Ipv4Addr;

use super::code::{Code, RpcError};
use super::xml::{self, is_xml_space, short, Element};
use crate::db::DbKind;
use crate::migration::request::{
    DbServerSpec, DomainGroup, IpSpec, IpType, MappedClient, MappedDbServer, MappedDomain,
    MappedIp, MappedReseller, MigrationId, Scope, Selection, StartRequest, SystemType, Transport,
};
use crate::secret::Secret;

/// Oldest and newest protocol versions hostmig speaks.
pub const OLDEST_VERSION: [u32; 4] = [1, 4, 0, 0];
pub const NEWEST_VERSION: [u32; 4] = [1, 6, 9, 1];
/// The version written when a request names none, or before it was read.
pub const NEWEST_VERSION_TEXT: &str = "1.6.9.1";

/// A whole request packet, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPacket {
    /// The version as the request wrote it, echoed in the response.
    pub version: String,
    pub operators: Vec<Operator>,
}

/// One operator element; `migration` is the only one hostmig serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Migration(Vec<Operation>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Check,
    GetFs,
    Start(Box<StartRequest>),
    GetStatus(MigrationId),
    /// hostmig's extension: the per-object report.
    GetReport(MigrationId),
    Finish(MigrationId),
    Resync {
        id: MigrationId,
        password: Option<Secret>,
    },
    /// hostmig's extension: go on with a migration a restart interrupted.
    Resume {
        id: MigrationId,
        password: Option<Secret>,
    },
    /// hostmig's extension: every migration the journal knows.
    List,
    /// hostmig's extension: a migration's event log from line `from`
    /// (the first is 1), at most `limit` lines.
    GetLog {
        id: MigrationId,
        from: u64,
        limit: u64,
    },
}

/// `get_log` answers this many lines unless asked for fewer; never more
/// than [`LOG_LIMIT_MAX`].
pub const LOG_LIMIT: u64 = 1_000;
pub const LOG_LIMIT_MAX: u64 = 10_000;

impl Operation {
    /// The element name, for logs and responses.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Check => "check",
            Operation::GetFs => "get_fs",
            Operation::Start(_) => "start",
            Operation::GetStatus(_) => "get_status",
            Operation::GetReport(_) => "get_report",
            Operation::Finish(_) => "finish",
            Operation::Resync { .. } => "resync",
            Operation::Resume { .. } => "resume",
            Operation::List => "list",
            Operation::GetLog { .. } => "get_log",
        }
    }
}

/// A packet refused as a whole: answered with a system error packet alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketError {
    /// The version to write in the answer: the request's when it was valid.
    pub version: String,
    pub error: RpcError,
}

impl PacketError {
    fn new(version: &str, code: Code, text: impl Into<String>) -> Self {
        PacketError {
            version: version.to_owned(),
            error: RpcError::new(code, text),
        }
    }
}

/// Decodes a request body, running the checks of PROTOCOL.md §2 that follow
/// authentication, in their order: well-formed XML with root `packet` and no
/// DOCTYPE (1014), version (1005), operators (1017), content (1014).
pub fn decode(body: &[u8]) -> Result<RequestPacket, PacketError> {
    let root = xml::parse(body)
        .map_err(|e| PacketError::new(NEWEST_VERSION_TEXT, Code::Parse, e.to_string()))?;
    if root.name != "packet" {
        return Err(PacketError::new(
            NEWEST_VERSION_TEXT,
            Code::Parse,
            format!("the root element must be packet, not {}", short(&root.name)),
        ));
    }
    let mut version = None;
    for (key, value) in &root.attrs {
        match key.as_str() {
            "version" => version = Some(value.as_str()),
            other => {
                return Err(PacketError::new(
                    NEWEST_VERSION_TEXT,
                    Code::Parse,
                    format!("packet: unexpected attribute {}", short(other)),
                ))
            }
        }
    }
    let version = match version {
        None => NEWEST_VERSION_TEXT.to_owned(),
        Some(v) if version_supported(v) => v.to_owned(),
        Some(v) => {
            return Err(PacketError::new(
                NEWEST_VERSION_TEXT,
                Code::UnsupportedVersion,
                format!(
                    "protocol version {} is not supported; use a version from 1.4.0.0 to {NEWEST_VERSION_TEXT}",
                    short(v)
                ),
            ))
        }
    };

    let mut kids = root.children.iter().peekable();
    if kids.peek().is_some_and(|el| el.name == "request-settings") {
        kids.next();
    }
    let operator_elements: Vec<&Element> = kids.collect();
    if let Some(unknown) = operator_elements.iter().find(|el| el.name != "migration") {
        let code = if unknown.name == "request-settings" {
            Code::Parse
        } else {
            Code::Unsupported
        };
        let text = if code == Code::Parse {
            "packet: request-settings must come before the operators".to_owned()
        } else {
            format!(
                "operator {} is not supported; hostmig serves the migration operator only",
                short(&unknown.name)
            )
        };
        return Err(PacketError::new(&version, code, text));
    }

    let content = || -> Result<Vec<Operator>, String> {
        if !root.text.chars().all(is_xml_space) {
            return Err("packet: unexpected text".into());
        }
        if let Some(settings) = root
            .children
            .first()
            .filter(|el| el.name == "request-settings")
        {
            request_settings(settings)?;
        }
        if operator_elements.is_empty() {
            return Err("packet: expected at least one operator element".into());
        }
        operator_elements
            .iter()
            .map(|el| migration(el).map(Operator::Migration))
            .collect()
    };
    let operators = content().map_err(|text| PacketError::new(&version, Code::Parse, text))?;
    Ok(RequestPacket { version, operators })
}

/// `1.4.0.0` to `1.6.9.1`, four dotted decimal numbers.
pub fn version_supported(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 4 {
        return false;
    }
    let mut nums = [0u32; 4];
    for (slot, part) in nums.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        match part.parse() {
            Ok(n) => *slot = n,
            Err(_) => return false,
        }
    }
    (OLDEST_VERSION..=NEWEST_VERSION).contains(&nums)
}

type Decoded<T> = Result<T, String>;

/// Walks an element's children in order; every call names what it expects,
/// so an error says where the packet went wrong.
struct Children<'a> {
    path: String,
    items: &'a [Element],
    pos: usize,
}

impl<'a> Children<'a> {
    fn of(el: &'a Element, path: &str) -> Decoded<Self> {
        container(el, path)?;
        Ok(Children {
            path: path.to_owned(),
            items: &el.children,
            pos: 0,
        })
    }

    fn peek(&self) -> Option<&'a Element> {
        self.items.get(self.pos)
    }

    fn sub(&self, el: &Element) -> String {
        format!("{}/{}", self.path, el.name)
    }

    /// The next child if its name is one of `names`.
    fn opt(&mut self, names: &[&str]) -> Option<&'a Element> {
        let el = self.peek().filter(|el| names.contains(&el.name.as_str()))?;
        self.pos += 1;
        Some(el)
    }

    fn one(&mut self, names: &[&str]) -> Decoded<&'a Element> {
        self.opt(names).ok_or_else(|| self.expected(names))
    }

    fn many(&mut self, names: &[&str]) -> Vec<&'a Element> {
        std::iter::from_fn(|| self.opt(names)).collect()
    }

    fn at_least_one(&mut self, names: &[&str]) -> Decoded<Vec<&'a Element>> {
        let found = self.many(names);
        if found.is_empty() {
            return Err(self.expected(names));
        }
        Ok(found)
    }

    fn expected(&self, names: &[&str]) -> String {
        let what = names.join(" or ");
        match self.peek() {
            Some(el) => format!(
                "{}: expected element {what}, found {}",
                self.path,
                short(&el.name)
            ),
            None => format!("{}: missing element {what}", self.path),
        }
    }

    fn end(self) -> Decoded<()> {
        match self.peek() {
            Some(el) => Err(format!(
                "{}: unexpected element {}",
                self.path,
                short(&el.name)
            )),
            None => Ok(()),
        }
    }
}

/// An element whose content is elements only: no attributes, no text.
fn container(el: &Element, path: &str) -> Decoded<()> {
    no_attrs(el, path)?;
    if !el.text.chars().all(is_xml_space) {
        return Err(format!("{path}: unexpected text"));
    }
    Ok(())
}

fn no_attrs(el: &Element, path: &str) -> Decoded<()> {
    match el.attrs.first() {
        Some((key, _)) => Err(format!("{path}: unexpected attribute {}", short(key))),
        None => Ok(()),
    }
}

/// A simple-content element: text only.
fn leaf<'a>(el: &'a Element, path: &str) -> Decoded<&'a str> {
    no_attrs(el, path)?;
    if let Some(child) = el.children.first() {
        return Err(format!("{path}: unexpected element {}", short(&child.name)));
    }
    Ok(&el.text)
}

/// An element with no content at all (`<check/>`).
fn empty(el: &Element, path: &str) -> Decoded<()> {
    if !leaf(el, path)?.is_empty() {
        return Err(format!("{path}: must be empty"));
    }
    Ok(())
}

/// `xs:token`: white space collapsed to single spaces, trimmed.
fn token(el: &Element, path: &str) -> Decoded<String> {
    let raw = leaf(el, path)?;
    Ok(raw
        .split(is_xml_space)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" "))
}

/// A token of 1 to `max` characters without spaces (names, logins, hosts, ids).
fn word(el: &Element, path: &str, max: usize) -> Decoded<String> {
    let value = token(el, path)?;
    if value.is_empty() {
        return Err(format!("{path}: must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{path}: longer than {max} characters"));
    }
    if value.contains(' ') {
        return Err(format!("{path}: must not contain spaces"));
    }
    Ok(value)
}

fn choice<T: Copy>(el: &Element, path: &str, options: &[(&str, T)]) -> Decoded<T> {
    let value = token(el, path)?;
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!(
                "{path}: {} is not one of {}",
                short(&value),
                names.join(", ")
            )
        })
}

fn request_settings(el: &Element) -> Decoded<()> {
    let path = "packet/request-settings";
    let mut kids = Children::of(el, path)?;
    for setting in kids.many(&["setting"]) {
        let sp = format!("{path}/setting");
        let mut parts = Children::of(setting, &sp)?;
        leaf(parts.one(&["name"])?, &format!("{sp}/name"))?;
        leaf(parts.one(&["value"])?, &format!("{sp}/value"))?;
        parts.end()?;
    }
    kids.end()
}

fn migration(el: &Element) -> Decoded<Vec<Operation>> {
    let path = "packet/migration";
    let kids = Children::of(el, path)?;
    if kids.items.is_empty() {
        return Err(format!("{path}: expected at least one operation"));
    }
    kids.items
        .iter()
        .map(|op| {
            let p = kids.sub(op);
            match op.name.as_str() {
                "check" => empty(op, &p).map(|_| Operation::Check),
                "get_fs" => empty(op, &p).map(|_| Operation::GetFs),
                "start" => start(op, &p).map(|s| Operation::Start(Box::new(s))),
                "get_status" => id_only(op, &p).map(Operation::GetStatus),
                "get_report" => id_only(op, &p).map(Operation::GetReport),
                "finish" => id_only(op, &p).map(Operation::Finish),
                "resync" => id_and_password(op, &p)
                    .map(|(id, password)| Operation::Resync { id, password }),
                "resume" => id_and_password(op, &p)
                    .map(|(id, password)| Operation::Resume { id, password }),
                "list" => empty(op, &p).map(|_| Operation::List),
                "get_log" => get_log(op, &p),
                other => Err(format!(
                    "{path}: unknown operation {}; expected check, get_fs, start, get_status, finish, resync, resume, get_report, list or get_log",
                    short(other)
                )),
            }
        })
        .collect()
}

fn migration_id(el: &Element, path: &str) -> Decoded<MigrationId> {
    word(el, path, 64).map(MigrationId)
}

fn id_only(el: &Element, path: &str) -> Decoded<MigrationId> {
    let mut kids = Children::of(el, path)?;
    let id_el = kids.one(&["migration_id"])?;
    let id = migration_id(id_el, &kids.sub(id_el))?;
    kids.end()?;
    Ok(id)
}

/// `get_log`: a migration id, and optionally the first line and how many.
fn get_log(el: &Element, path: &str) -> Decoded<Operation> {
    let mut kids = Children::of(el, path)?;
    let id_el = kids.one(&["migration_id"])?;
    let id = migration_id(id_el, &kids.sub(id_el))?;
    let mut number = |name: &str, max: u64| -> Decoded<Option<u64>> {
        let Some(n) = kids.opt(&[name]) else {
            return Ok(None);
        };
        let p = kids.sub(n);
        let text = token(n, &p)?;
        match text.parse::<u64>() {
            Ok(v) if (1..=max).contains(&v) => Ok(Some(v)),
            _ if max == u64::MAX => Err(format!(
                "{p}: expected a whole number of at least 1, not {}",
                short(&text)
            )),
            _ => Err(format!(
                "{p}: expected a whole number from 1 to {max}, not {}",
                short(&text)
            )),
        }
    };
    let from = number("from", u64::MAX)?.unwrap_or(1);
    let limit = number("limit", LOG_LIMIT_MAX)?.unwrap_or(LOG_LIMIT);
    kids.end()?;
    Ok(Operation::GetLog { id, from, limit })
}

/// `resync` and `resume`: a migration id and an optional password.
fn id_and_password(el: &Element, path: &str) -> Decoded<(MigrationId, Option<Secret>)> {
    let mut kids = Children::of(el, path)?;
    let id_el = kids.one(&["migration_id"])?;
    let id = migration_id(id_el, &kids.sub(id_el))?;
    let password = match kids.opt(&["password"]) {
        Some(p) => Some(Secret::new(leaf(p, &kids.sub(p))?.to_owned())),
        None => None,
    };
    kids.end()?;
    Ok((id, password))
}

fn start(el: &Element, path: &str) -> Decoded<StartRequest> {
    let mut kids = Children::of(el, path)?;
    let host_el = kids.one(&["host"])?;
    let host = source_host(host_el, &kids.sub(host_el))?;
    let login_el = kids.one(&["login"])?;
    let login = word(login_el, &kids.sub(login_el), 255)?;
    let password_el = kids.one(&["password"])?;
    let password = Secret::new(leaf(password_el, &kids.sub(password_el))?.to_owned());
    let dir_el = kids.one(&["destination-host-directory"])?;
    let destination_dir = leaf(dir_el, &kids.sub(dir_el))?.to_owned();
    let system_type = match kids.opt(&["system-type"]) {
        Some(e) => choice(
            e,
            &kids.sub(e),
            &[("unix", SystemType::Unix), ("windows", SystemType::Windows)],
        )?,
        None => SystemType::Unix,
    };
    let transport = match kids.opt(&["content-transport"]) {
        Some(e) => choice(
            e,
            &kids.sub(e),
            &[("archive", Transport::Archive), ("rsync", Transport::Rsync)],
        )?,
        None => Transport::Archive,
    };
    let scope = match kids.opt(&["only-hosting", "only-mail"]) {
        Some(e) => {
            empty(e, &kids.sub(e))?;
            if e.name == "only-hosting" {
                Scope::OnlyHosting
            } else {
                Scope::OnlyMail
            }
        }
        None => Scope::Everything,
    };
    let sel_el = kids.one(&["selected-objects"])?;
    let selection = selected_objects(sel_el, &kids.sub(sel_el))?;
    kids.end()?;
    Ok(StartRequest {
        host,
        login,
        password,
        destination_dir,
        system_type,
        transport,
        scope,
        selection,
    })
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`, with a port from 1 to 65535.
fn source_host(el: &Element, path: &str) -> Decoded<String> {
    let value = word(el, path, 261)?;
    let bad = || format!("{path}: {} is not a host or host:port", short(&value));
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        inner.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after {
            "" => (inner, None),
            _ => (inner, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value.as_str(), None),
        }
    };
    let name_ok = value.starts_with('[')
        || (!name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_')));
    if !name_ok {
        return Err(bad());
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && !port.starts_with('0')
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(format!(
                "{path}: port {} is not a number from 1 to 65535",
                short(port)
            ));
        }
    }
    Ok(value)
}

/// Which element names a branch uses for its objects.
#[derive(Clone, Copy)]
struct Vocabulary {
    client: &'static str,
    domain: &'static str,
}

const CLASSIC: Vocabulary = Vocabulary {
    client: "client",
    domain: "domain",
};
const CURRENT: Vocabulary = Vocabulary {
    client: "customer",
    domain: "webspace",
};

fn selected_objects(el: &Element, path: &str) -> Decoded<Selection> {
    let mut kids = Children::of(el, path)?;
    let branch = match kids.peek().map(|e| e.name.as_str()) {
        Some("migrate-domains" | "migrate-webspaces") => {
            let groups = kids
                .at_least_one(&["migrate-domains", "migrate-webspaces"])?
                .into_iter()
                .map(|g| {
                    let voc = if g.name == "migrate-domains" {
                        CLASSIC
                    } else {
                        CURRENT
                    };
                    domain_group(g, &kids.sub(g), voc)
                })
                .collect::<Decoded<Vec<_>>>()?;
            Selection::Domains(groups)
        }
        Some("migrate-clients" | "migrate-customers") => {
            let group = kids.one(&["migrate-clients", "migrate-customers"])?;
            let voc = if group.name == "migrate-clients" {
                CLASSIC
            } else {
                CURRENT
            };
            let gp = kids.sub(group);
            let mut g = Children::of(group, &gp)?;
            let owner_el = g.one(&["target-owner"])?;
            let target_owner = word(owner_el, &g.sub(owner_el), 255)?;
            let clients = g
                .at_least_one(&[voc.client])?
                .into_iter()
                .map(|c| mapped_client(c, &g.sub(c), voc.domain))
                .collect::<Decoded<Vec<_>>>()?;
            g.end()?;
            Selection::Clients {
                target_owner,
                clients,
            }
        }
        Some("migrate-resellers") => {
            let group = kids.one(&["migrate-resellers"])?;
            let gp = kids.sub(group);
            let mut g = Children::of(group, &gp)?;
            let resellers = g
                .at_least_one(&["reseller"])?
                .into_iter()
                .map(|r| mapped_reseller(r, &g.sub(r)))
                .collect::<Decoded<Vec<_>>>()?;
            g.end()?;
            Selection::Resellers(resellers)
        }
        _ => {
            return Err(kids.expected(&[
                "migrate-domains",
                "migrate-webspaces",
                "migrate-clients",
                "migrate-customers",
                "migrate-resellers",
            ]))
        }
    };
    kids.end()?;
    Ok(branch)
}

fn domain_group(el: &Element, path: &str, voc: Vocabulary) -> Decoded<DomainGroup> {
    let mut kids = Children::of(el, path)?;
    let owner_el = kids.one(&["target-owner"])?;
    let target_owner = word(owner_el, &kids.sub(owner_el), 255)?;
    let domains = kids
        .at_least_one(&[voc.domain])?
        .into_iter()
        .map(|d| mapped_domain(d, &kids.sub(d)))
        .collect::<Decoded<Vec<_>>>()?;
    kids.end()?;
    Ok(DomainGroup {
        target_owner,
        domains,
    })
}

fn mapped_domain(el: &Element, path: &str) -> Decoded<MappedDomain> {
    let mut kids = Children::of(el, path)?;
    let name_el = kids.one(&["name"])?;
    let name = word(name_el, &kids.sub(name_el), 255)?;
    let ip = match kids.opt(&["ip"]) {
        Some(e) => Some(mapped_ip(e, &kids.sub(e))?),
        None => None,
    };
    let db_servers = kids
        .many(&["db-server"])
        .into_iter()
        .map(|e| mapped_db_server(e, &kids.sub(e)))
        .collect::<Decoded<Vec<_>>>()?;
    kids.end()?;
    Ok(MappedDomain {
        name,
        ip,
        db_servers,
    })
}

fn mapped_client(el: &Element, path: &str, domain_name: &str) -> Decoded<MappedClient> {
    let mut kids = Children::of(el, path)?;
    let name_el = kids.one(&["name"])?;
    let name = word(name_el, &kids.sub(name_el), 255)?;
    let ips = mapped_ips(&mut kids)?;
    let domains = kids
        .many(&[domain_name])
        .into_iter()
        .map(|d| mapped_domain(d, &kids.sub(d)))
        .collect::<Decoded<Vec<_>>>()?;
    kids.end()?;
    Ok(MappedClient { name, ips, domains })
}

fn mapped_reseller(el: &Element, path: &str) -> Decoded<MappedReseller> {
    let mut kids = Children::of(el, path)?;
    let name_el = kids.one(&["name"])?;
    let name = word(name_el, &kids.sub(name_el), 255)?;
    let ips = mapped_ips(&mut kids)?;
    let clients = kids
        .many(&["client", "customer"])
        .into_iter()
        .map(|c| {
            let domain_name = if c.name == "client" {
                "domain"
            } else {
                "webspace"
            };
            mapped_client(c, &kids.sub(c), domain_name)
        })
        .collect::<Decoded<Vec<_>>>()?;
    let domains = kids
        .many(&["domain", "webspace"])
        .into_iter()
        .map(|d| mapped_domain(d, &kids.sub(d)))
        .collect::<Decoded<Vec<_>>>()?;
    kids.end()?;
    Ok(MappedReseller {
        name,
        ips,
        clients,
        domains,
    })
}

fn mapped_ips(kids: &mut Children<'_>) -> Decoded<Vec<MappedIp>> {
    kids.many(&["ip"])
        .into_iter()
        .map(|e| mapped_ip(e, &kids.sub(e)))
        .collect()
}

fn mapped_ip(el: &Element, path: &str) -> Decoded<MappedIp> {
    let mut kids = Children::of(el, path)?;
    let old_el = kids.one(&["old"])?;
    let old = ip_spec(old_el, &kids.sub(old_el))?;
    let new_el = kids.one(&["new"])?;
    let new = ip_spec(new_el, &kids.sub(new_el))?;
    kids.end()?;
    Ok(MappedIp { old, new })
}

fn ip_spec(el: &Element, path: &str) -> Decoded<IpSpec> {
    let mut kids = Children::of(el, path)?;
    let type_el = kids.one(&["ip-type"])?;
    let kind = choice(
        type_el,
        &kids.sub(type_el),
        &[("shared", IpType::Shared), ("exclusive", IpType::Exclusive)],
    )?;
    let addr_el = kids.one(&["ip-address"])?;
    let addr_path = kids.sub(addr_el);
    let text = token(addr_el, &addr_path)?;
    let address = text
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("{addr_path}: {} is not a dotted IPv4 address", short(&text)))?;
    kids.end()?;
    Ok(IpSpec { kind, address })
}

fn mapped_db_server(el: &Element, path: &str) -> Decoded<MappedDbServer> {
    let mut kids = Children::of(el, path)?;
    let old_el = kids.one(&["old"])?;
    let old = db_server_spec(old_el, &kids.sub(old_el))?;
    let new_el = kids.one(&["new"])?;
    let new = db_server_spec(new_el, &kids.sub(new_el))?;
    kids.end()?;
    Ok(MappedDbServer { old, new })
}

fn db_server_spec(el: &Element, path: &str) -> Decoded<DbServerSpec> {
    let mut kids = Children::of(el, path)?;
    let host_el = kids.one(&["host"])?;
    let host = word(host_el, &kids.sub(host_el), 255)?;
    let port_el = kids.one(&["port"])?;
    let port_path = kids.sub(port_el);
    let text = token(port_el, &port_path)?;
    let port = parse_port(&text).ok_or_else(|| {
        format!(
            "{port_path}: {} is not a port from 1 to 65535",
            short(&text)
        )
    })?;
    let type_el = kids.one(&["type"])?;
    let kind = choice(
        type_el,
        &kids.sub(type_el),
        &[
            ("mysql", DbKind::Mysql),
            ("postgresql", DbKind::Postgresql),
            ("mssql", DbKind::Mssql),
        ],
    )?;
    kids.end()?;
    Ok(DbServerSpec { host, port, kind })
}

/// A port from 1 to 65535, leading zeros allowed (the `Port` type of
/// `schemas/plesk_migration.xsd`).
fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 5 {
        return None;
    }
    trimmed.parse::<u16>().ok().filter(|&p| p >= 1)
}

#[cfg(test)]
mod tests;
