//! What tests and benchmarks use to prove a migration: manifests of content
//! trees and their differences, per-table row counts and value checksums
//! computed by the same SQL on both servers, and panel rows of a client or
//! domain with ids resolved to names.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use sha2::{Digest, Sha256};

/// One entry of a tree, relative to its root (the root itself is `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path's bytes (names need not be UTF-8).
    pub path: Vec<u8>,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits, setuid, setgid and sticky included.
    pub mode: u32,
    pub mtime: i64,
    pub link_target: Option<Vec<u8>>,
    /// Hex SHA-256 of a regular file's content.
    pub sha256: Option<String>,
    /// The first path (in manifest order) of the same inode, for hard links.
    pub hard_link_of: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

pub type Manifest = Vec<Entry>;

/// Walks `root` without following symlinks; entries sorted by path.
pub fn manifest(root: &Path) -> std::io::Result<Manifest> {
    let mut raw = Vec::new();
    walk(root, Vec::new(), &mut raw)?;
    raw.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut first_of_inode: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    Ok(raw
        .into_iter()
        .map(|(mut entry, dev_ino, nlink)| {
            if entry.kind == Kind::File && nlink > 1 {
                match first_of_inode.get(&dev_ino) {
                    Some(first) => entry.hard_link_of = Some(first.clone()),
                    None => {
                        first_of_inode.insert(dev_ino, entry.path.clone());
                    }
                }
            }
            entry
        })
        .collect())
}

fn walk(path: &Path, rel: Vec<u8>, out: &mut Vec<(Entry, (u64, u64), u64)>) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    let entry = Entry {
        path: rel.clone(),
        kind,
        size: if kind == Kind::File { meta.len() } else { 0 },
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        link_target: if kind == Kind::Symlink {
            Some(fs::read_link(path)?.as_os_str().as_bytes().to_vec())
        } else {
            None
        },
        sha256: if kind == Kind::File {
            Some(hash_file(path)?)
        } else {
            None
        },
        hard_link_of: None,
    };
    out.push((entry, (meta.dev(), meta.ino()), meta.nlink()));
    if kind == Kind::Dir {
        for child in fs::read_dir(path)? {
            let child = child?;
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(child.file_name().as_bytes());
            walk(&child.path(), child_rel, out)?;
        }
    }
    Ok(())
}

/// Streams a file through SHA-256 (never the whole file in memory).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }))
}

/// What a comparison may leave out: the documented differences of a
/// migration.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// setuid and setgid bits are dropped on the destination.
    pub ignore_setid_bits: bool,
    /// Paths whose content may differ (remapped `conf/` files).
    pub content_may_differ: Vec<Vec<u8>>,
    /// Leave the root entry's own mode and mtime out.
    pub ignore_root: bool,
}

/// Every difference between two manifests, one line each, in path order.
pub fn diff(expected: &Manifest, actual: &Manifest, opts: &DiffOptions) -> Vec<String> {
    let show = |p: &[u8]| String::from_utf8_lossy(p).escape_debug().to_string();
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < actual.len() {
        match (expected.get(i), actual.get(j)) {
            (Some(a), Some(b)) if a.path == b.path => {
                i += 1;
                j += 1;
                if opts.ignore_root && a.path.is_empty() {
                    continue;
                }
                let p = show(&a.path);
                if a.kind != b.kind {
                    out.push(format!("{p}: type {:?} became {:?}", a.kind, b.kind));
                    continue;
                }
                let mask = if opts.ignore_setid_bits {
                    0o1777
                } else {
                    0o7777
                };
                if a.mode & mask != b.mode & mask {
                    out.push(format!("{p}: mode {:04o} became {:04o}", a.mode, b.mode));
                }
                if a.mtime != b.mtime && a.kind != Kind::Symlink {
                    out.push(format!("{p}: mtime {} became {}", a.mtime, b.mtime));
                }
                if a.link_target != b.link_target {
                    out.push(format!("{p}: link target differs"));
                }
                let may_differ = opts.content_may_differ.contains(&a.path);
                if !may_differ && (a.size != b.size || a.sha256 != b.sha256) {
                    out.push(format!(
                        "{p}: content differs ({} bytes became {})",
                        a.size, b.size
                    ));
                }
                if a.hard_link_of != b.hard_link_of {
                    out.push(format!("{p}: hard link structure differs"));
                }
            }
            (Some(a), Some(b)) if a.path < b.path => {
                out.push(format!("{}: missing", show(&a.path)));
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                out.push(format!("{}: unexpected", show(&b.path)));
                j += 1;
            }
            (Some(a), None) => {
                out.push(format!("{}: missing", show(&a.path)));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Row count and value checksum of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    pub checksum: u64,
}

/// Per base table of `db`: the row count and the sum of CRC32s of each
/// row's values (as binary, NULLs marked), the same SQL on any server.
pub async fn table_checksums(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, TableSum>, mysql_async::Error> {
    let tables: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (db,),
        )
        .await?;
    let mut out = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, &table),
            )
            .await?;
        let values: Vec<String> = columns
            .iter()
            .map(|c| format!("IFNULL(HEX(CAST(`{c}` AS BINARY)), '\\\\N')"))
            .collect();
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT_WS('|', {}))), 0) AS UNSIGNED) FROM `{db}`.`{table}`",
            values.join(", ")
        );
        let row: Option<(u64, u64)> = conn.query_first(sql).await?;
        let (rows, checksum) = row.unwrap_or((0, 0));
        out.insert(table, TableSum { rows, checksum });
    }
    Ok(out)
}

/// Every row of every base table of `db`, value for value: each value as
/// hex of its stored bytes (FLOAT as its exact DOUBLE), NULL as `NULL`,
/// rows sorted. For test-sized databases.
pub async fn table_rows(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, Vec<String>>, mysql_async::Error> {
    let columns: Vec<(String, String, String)> = conn
        .exec(
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE FROM information_schema.COLUMNS c \
             JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
            (db,),
        )
        .await?;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column, data_type) in columns {
        let value = if data_type == "float" {
            format!("CAST(`{column}` AS DOUBLE)")
        } else {
            format!("`{column}`")
        };
        tables
            .entry(table)
            .or_default()
            .push(format!("IFNULL(HEX(CAST({value} AS BINARY)), 'NULL')"));
    }
    let mut out = BTreeMap::new();
    for (table, values) in tables {
        let mut rows: Vec<String> = conn
            .query(format!(
                "SELECT CONCAT_WS(',', {}) FROM `{db}`.`{table}`",
                values.join(", ")
            ))
            .await?;
        rows.sort();
        out.insert(table, rows);
    }
    Ok(out)
}

/// The definition of every table, view, trigger, routine and event of
/// `db` (SHOW CREATE), keyed `kind name`, with any DEFINER clause removed
/// (a target without the definer's account defines it otherwise).
pub async fn schema(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, String>, mysql_async::Error> {
    let lists = [
        ("TABLE", "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", 1),
        ("VIEW", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?", 1),
        ("TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", 2),
        ("PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE'", 2),
        ("FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION'", 2),
        ("EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", 3),
    ];
    let mut out = BTreeMap::new();
    for (kind, list, column) in lists {
        let names: Vec<String> = conn.exec(list, (db,)).await?;
        for name in names {
            let row: Option<Row> = conn
                .query_first(format!("SHOW CREATE {kind} `{db}`.`{name}`"))
                .await?;
            let create = row
                .and_then(|r| r.get::<Option<String>, _>(column).flatten())
                .unwrap_or_default();
            out.insert(format!("{kind} {name}"), without_definer(&create));
        }
    }
    Ok(out)
}

fn without_definer(create: &str) -> String {
    let Some(start) = create.find("DEFINER=`") else {
        return create.to_owned();
    };
    // DEFINER=`user`@`host` and the space after it.
    let rest = &create[start..];
    let mut ticks = 0;
    for (i, c) in rest.char_indices() {
        if c == '`' {
            ticks += 1;
            if ticks == 4 {
                let end = start + i + 1;
                let end = if create[end..].starts_with(' ') {
                    end + 1
                } else {
                    end
                };
                return format!("{}{}", &create[..start], &create[end..]);
            }
        }
    }
    create.to_owned()
}

/// `SHOW GRANTS` of every account of `login`, by host, sorted.
pub async fn grants(
    conn: &mut Conn,
    login: &str,
) -> Result<BTreeMap<String, Vec<String>>, mysql_async::Error> {
    let hosts: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (login,))
        .await?;
    let mut out = BTreeMap::new();
    for host in hosts {
        let mut lines: Vec<String> = conn
            .query(format!(
                "SHOW GRANTS FOR {}@{}",
                super::sql_literal(login),
                super::sql_literal(&host)
            ))
            .await?;
        lines.sort();
        out.insert(host, lines);
    }
    Ok(out)
}

/// Source panel dump lines as the destination should hold them after a
/// migration: addresses mapped (whole tokens), the owner renamed, paths
/// under the source's roots moved to the destination's, and the source's
/// database server (`host:port`) replaced by the one databases went to.
pub fn expected_panel(
    lines: &[String],
    addresses: &BTreeMap<&str, &str>,
    roots: &[(String, String)],
    server: (&str, &str),
    owner: Option<(&str, &str)>,
) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| l.replace(server.0, server.1))
        .map(|l| {
            let mut line = l
                .split(' ')
                .map(|t| addresses.get(t).copied().unwrap_or(t))
                .collect::<Vec<_>>()
                .join(" ");
            if let Some((from, to)) = owner {
                line = line.replace(&format!(" | {from} | "), &format!(" | {to} | "));
            }
            for (from, to) in roots {
                line = line.replace(&format!("{from}/"), &format!("{to}/"));
            }
            line
        })
        .collect();
    out.sort();
    out
}

/// The panel rows of a client (by login) and its domains, ids resolved to
/// names, one line per row, sorted: equal dumps mean equal accounts.
pub async fn panel_client(conn: &mut Conn, login: &str) -> Result<Vec<String>, mysql_async::Error> {
    let mut out = Vec::new();
    let client: Option<Row> = conn
        .exec_first(
            "SELECT c.login, c.pname, c.cname, c.status, c.phone, c.fax, c.email, c.address, c.city, c.state, c.pcode, c.country, c.locale,
                    a.type, a.password, c.limits_id, c.perm_id, c.pool_id, c.id
             FROM psa.clients c LEFT JOIN psa.accounts a ON a.id = c.account_id WHERE c.login = ?",
            (login,),
        )
        .await?;
    let Some(client) = client else {
        return Ok(vec![format!("client {login}: absent")]);
    };
    let cells = row_text(&client);
    out.push(format!("client {}", cells[..15].join(" | ")));
    out.extend(
        sets(conn, "Limits", "limit_name", &client, 15)
            .await?
            .into_iter()
            .map(|l| format!("client limit {l}")),
    );
    out.extend(
        sets(conn, "Permissions", "permission", &client, 16)
            .await?
            .into_iter()
            .map(|l| format!("client permission {l}")),
    );
    let pool: Vec<(String, String)> = conn
        .exec(
            "SELECT ip.ip_address, ip.type FROM psa.Repository r JOIN psa.IP_Addresses ip ON ip.id = r.component_id
             WHERE r.rep_id = ? ORDER BY ip.ip_address",
            (client.get::<Option<u64>, _>(17).flatten(),),
        )
        .await?;
    out.extend(
        pool.into_iter()
            .map(|(a, t)| format!("client pool {a} {t}")),
    );
    let domains: Vec<String> = conn
        .exec(
            "SELECT name FROM psa.domains WHERE cl_id = ? ORDER BY name",
            (client.get::<u64, _>(18),),
        )
        .await?;
    for d in domains {
        out.extend(panel_domain(conn, &d).await?);
    }
    out.sort();
    Ok(out)
}

/// The panel rows of one domain, ids resolved to names, sorted.
pub async fn panel_domain(conn: &mut Conn, name: &str) -> Result<Vec<String>, mysql_async::Error> {
    let mut out = Vec::new();
    let dom: Option<Row> = conn
        .exec_first(
            "SELECT d.name, d.displayName, c.login, d.status, d.htype, d.id, d.dns_zone_id, d.limits_id
             FROM psa.domains d JOIN psa.clients c ON c.id = d.cl_id WHERE d.name = ?",
            (name,),
        )
        .await?;
    let Some(dom) = dom else {
        return Ok(vec![format!("domain {name}: absent")]);
    };
    let id: u64 = dom.get(5).unwrap_or_default();
    let p = |s: &str| format!("domain {name} {s}");
    out.push(p(&row_text(&dom)[..5].join(" | ")));
    out.extend(
        sets(conn, "Limits", "limit_name", &dom, 7)
            .await?
            .into_iter()
            .map(|l| p(&format!("limit {l}"))),
    );
    let queries: &[(&str, &str)] = &[
        ("hosting", "SELECT ip.ip_address, su.login, su.home, su.shell, su.quota, a.type, a.password, h.ssi, h.php, h.php_safe_mode, h.cgi, h.perl, h.python, h.fastcgi, h.`ssl`, h.same_ssl, h.webstat, h.traffic_bandwidth, h.max_connection
                     FROM psa.hosting h JOIN psa.sys_users su ON su.id = h.sys_user_id LEFT JOIN psa.accounts a ON a.id = su.account_id
                     LEFT JOIN psa.IP_Addresses ip ON ip.id = h.ip_address_id WHERE h.dom_id = ?"),
        ("forwarding", "SELECT ip.ip_address, f.redirect FROM psa.forwarding f LEFT JOIN psa.IP_Addresses ip ON ip.id = f.ip_address_id WHERE f.dom_id = ?"),
        ("admin", "SELECT u.state, a.type, a.password, c.personalname, c.companyname, c.phone, c.fax, c.email, c.address, c.city, c.state, c.zip, c.country,
                   (SELECT GROUP_CONCAT(CONCAT(p.permission, '=', p.value) ORDER BY p.permission) FROM psa.Permissions p WHERE p.id = u.perm_id)
                   FROM psa.dom_level_usrs u LEFT JOIN psa.accounts a ON a.id = u.account_id LEFT JOIN psa.Cards c ON c.id = u.card_id WHERE u.dom_id = ?"),
        ("mail", "SELECT m.mail_name, a.type, a.password, m.postbox, m.redirect, m.redir_addr, m.mail_group, m.autoresponder, m.spamfilter, m.virusfilter, m.mbox_quota,
                  (SELECT GROUP_CONCAT(al.alias ORDER BY al.alias) FROM psa.mail_aliases al WHERE al.mn_id = m.id),
                  (SELECT GROUP_CONCAT(r.address ORDER BY r.address) FROM psa.mail_redir r WHERE r.mn_id = m.id),
                  (SELECT GROUP_CONCAT(CONCAT(p.permission, '=', p.value) ORDER BY p.permission) FROM psa.Permissions p WHERE p.id = m.perm_id)
                  FROM psa.mail m LEFT JOIN psa.accounts a ON a.id = m.account_id WHERE m.dom_id = ?"),
        ("zone", "SELECT z.name, z.displayName, z.status, z.email, z.type, z.ttl, z.refresh, z.retry, z.expire, z.minimum, z.serial_format
                  FROM psa.dns_zone z JOIN psa.domains d ON d.dns_zone_id = z.id WHERE d.id = ?"),
        ("record", "SELECT r.type, r.host, r.displayHost, r.val, r.displayVal, r.opt FROM psa.dns_recs r JOIN psa.domains d ON d.dns_zone_id = r.dns_zone_id WHERE d.id = ?"),
        ("subdomain", "SELECT s.name, s.displayName, s.sys_user_type, su.login, s.ssi, s.php, s.cgi, s.perl, s.python, s.fastcgi
                       FROM psa.subdomains s LEFT JOIN psa.sys_users su ON su.id = s.sys_user_id WHERE s.dom_id = ?"),
        ("alias", "SELECT name, displayName, status, dns, mail, web FROM psa.domainaliases WHERE dom_id = ?"),
        ("database", "SELECT db.name, db.type, CONCAT(s.host, ':', s.port), du.login, a.type, a.password, (db.default_user_id = du.id)
                      FROM psa.data_bases db JOIN psa.DatabaseServers s ON s.id = db.db_server_id
                      LEFT JOIN psa.db_users du ON du.db_id = db.id LEFT JOIN psa.accounts a ON a.id = du.account_id WHERE db.dom_id = ?"),
    ];
    for (label, sql) in queries {
        let rows: Vec<Row> = conn.exec(*sql, (id,)).await?;
        out.extend(
            rows.iter()
                .map(|r| p(&format!("{label} {}", row_text(r).join(" | ")))),
        );
    }
    out.sort();
    Ok(out)
}

/// `name=value` lines of the Limits or Permissions set whose id is `row[idx]`.
async fn sets(
    conn: &mut Conn,
    table: &str,
    name_col: &str,
    row: &Row,
    idx: usize,
) -> Result<Vec<String>, mysql_async::Error> {
    let Some(id) = row.get::<Option<u64>, _>(idx).flatten() else {
        return Ok(vec!["(none)".to_owned()]);
    };
    let pairs: Vec<(String, String)> = conn
        .exec(format!("SELECT {name_col}, CAST(value AS CHAR) FROM psa.{table} WHERE id = ? ORDER BY {name_col}"), (id,))
        .await?;
    Ok(pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn row_text(row: &Row) -> Vec<String> {
    (0..row.len())
        .map(|i| match row.as_ref(i) {
            None | Some(Value::NULL) => "NULL".to_owned(),
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(other) => other.as_sql(true),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, mode: u32) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            size,
            mode,
            mtime: 1,
            link_target: None,
            sha256: Some(format!("{size}")),
            hard_link_of: None,
        }
    }

    #[test]
    fn diff_names_each_difference() {
        let a = vec![
            entry("a", 1, 0o644),
            entry("b", 2, 0o4755),
            entry("c", 3, 0o644),
        ];
        let b = vec![
            entry("a", 1, 0o600),
            entry("b", 2, 0o755),
            entry("d", 4, 0o644),
        ];
        assert_eq!(
            diff(&a, &b, &DiffOptions::default()),
            vec![
                "a: mode 0644 became 0600",
                "b: mode 4755 became 0755",
                "c: missing",
                "d: unexpected"
            ]
        );
        let opts = DiffOptions {
            ignore_setid_bits: true,
            ..DiffOptions::default()
        };
        assert_eq!(
            diff(&a, &b, &opts),
            vec!["a: mode 0644 became 0600", "c: missing", "d: unexpected"]
        );
        assert!(diff(&a, &a, &DiffOptions::default()).is_empty());
    }
}
