//! IP remapping: the pure rewrite rules (whole addresses only: mapping
//! 192.0.2.10 never touches 192.0.2.100; paths under the source's roots
//! move to the destination's) and `IpRemap`, the sub-actor of a migration
//! that applies them to the records it deploys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix::{Actor, Context, Handler, Message, MessageResult};
use mysql_async::Value;

use crate::panel::source::{text, ClientRecord, DomainRecord, Fields};

/// The rules of one migration.
#[derive(Debug, Clone, Default)]
pub struct Remap {
    /// Old address → new address.
    pub addresses: BTreeMap<String, String>,
    /// Source root → destination root.
    pub roots: Vec<(PathBuf, PathBuf)>,
}

impl Remap {
    /// A whole address, mapped; any other value unchanged.
    pub fn address(&self, value: &str) -> String {
        self.addresses
            .get(value)
            .cloned()
            .unwrap_or_else(|| value.to_owned())
    }

    /// A path under a source root, moved under the destination's.
    pub fn path(&self, value: &str) -> String {
        let p = Path::new(value);
        for (from, to) in &self.roots {
            if let Ok(rest) = p.strip_prefix(from) {
                return to.join(rest).display().to_string();
            }
        }
        value.to_owned()
    }

    /// Every whole address in a text (one not part of a longer run of
    /// digits and dots) mapped; the rest of the text unchanged.
    pub fn text(&self, input: &str) -> String {
        let is_part = |c: char| c.is_ascii_digit() || c == '.';
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
            let (before, from) = rest.split_at(start);
            out.push_str(before);
            let end = from.find(|c: char| !is_part(c)).unwrap_or(from.len());
            let run = &from[..end];
            // A preceding dot would make this the tail of a longer run.
            let glued = out.ends_with('.');
            match self.addresses.get(run) {
                Some(new) if !glued => out.push_str(new),
                _ => out.push_str(run),
            }
            rest = &from[end..];
        }
        out.push_str(rest);
        out
    }

    fn value(&self, value: &Value, f: impl Fn(&Self, &str) -> String) -> Value {
        match text(Some(value)) {
            Some(s) => Value::from(f(self, &s)),
            None => value.clone(),
        }
    }

    /// A client's IP pool, remapped.
    pub fn client(&self, mut c: ClientRecord) -> ClientRecord {
        for (address, _) in &mut c.pool {
            *address = self.address(address);
        }
        c
    }

    /// A domain's hosting and forwarding addresses, the A records of its
    /// DNS zone and of its aliases' zones, and the paths of its system
    /// user's home and web root, remapped.
    pub fn domain(&self, mut d: DomainRecord) -> DomainRecord {
        if let Some(h) = d.hosting.as_mut() {
            h.ip = h.ip.as_deref().map(|a| self.address(a));
            self.column(&mut h.sys_user, "home", Self::path);
            self.column(&mut h.fields, "www_root", Self::path);
        }
        if let Some((_, ip)) = d.forwarding.as_mut() {
            *ip = ip.as_deref().map(|a| self.address(a));
        }
        let zones = d
            .zone
            .iter_mut()
            .chain(d.aliases.iter_mut().filter_map(|a| a.zone.as_mut()));
        for zone in zones {
            for r in zone
                .records
                .iter_mut()
                .filter(|r| r.text("type").as_deref() == Some("A"))
            {
                for col in ["val", "displayVal"] {
                    self.column(r, col, Self::address);
                }
            }
        }
        d
    }

    /// Rewrites one column of a row (NULL and absent stay as they are).
    fn column(&self, row: &mut Fields, col: &str, f: impl Fn(&Self, &str) -> String) {
        if let Some(v) = row.get(col) {
            let mapped = self.value(v, f);
            row.insert(col, mapped);
        }
    }
}

/// The sub-actor that applies a migration's address map to its records.
pub struct IpRemap {
    rules: Remap,
}

impl IpRemap {
    pub fn new(rules: Remap) -> Self {
        IpRemap { rules }
    }
}

impl Actor for IpRemap {
    type Context = Context<Self>;
}

/// Remap these records; answers them rewritten.
#[derive(Message)]
#[rtype(result = "(Vec<ClientRecord>, Vec<DomainRecord>)")]
pub struct RemapRecords {
    pub clients: Vec<ClientRecord>,
    pub domains: Vec<DomainRecord>,
}

impl Handler<RemapRecords> for IpRemap {
    type Result = MessageResult<RemapRecords>;

    fn handle(&mut self, msg: RemapRecords, _: &mut Self::Context) -> Self::Result {
        MessageResult((
            msg.clients
                .into_iter()
                .map(|c| self.rules.client(c))
                .collect(),
            msg.domains
                .into_iter()
                .map(|d| self.rules.domain(d))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Remap {
        Remap {
            addresses: [("192.0.2.10", "198.51.100.4"), ("192.0.2.1", "203.0.113.1")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            roots: vec![("/var/www/vhosts".into(), "/srv/vhosts".into())],
        }
    }

    fn check(input: &str, expected: &str) {
        assert_eq!(rules().text(input), expected, "input: {input:?}");
    }

    #[test]
    fn whole_addresses_only() {
        check("Listen 192.0.2.10:80", "Listen 198.51.100.4:80");
        check(
            "<VirtualHost 192.0.2.100:80>",
            "<VirtualHost 192.0.2.100:80>",
        );
        check(
            "192.0.2.10 192.0.2.1 192.0.2.11",
            "198.51.100.4 203.0.113.1 192.0.2.11",
        );
        check("10.192.0.2.10", "10.192.0.2.10");
        check("192.0.2.10.5", "192.0.2.10.5");
        check("x192.0.2.10y", "x198.51.100.4y");
        check("no addresses, 42 numbers", "no addresses, 42 numbers");
        check("", "");
        assert_eq!(rules().address("192.0.2.10"), "198.51.100.4");
        assert_eq!(rules().address("192.0.2.100"), "192.0.2.100");
        assert_eq!(
            rules().path("/var/www/vhosts/a.example"),
            "/srv/vhosts/a.example"
        );
        assert_eq!(rules().path("/var/www/vhostsX/a"), "/var/www/vhostsX/a");
        assert_eq!(rules().path("/home/a"), "/home/a");
    }
}
