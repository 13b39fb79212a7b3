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
/// migration: every cell whose whole value is an old address mapped, the
/// owner renamed, paths under the source's roots moved to the
/// destination's, and the source's database server (`host:port`) replaced
/// by the one databases went to.
pub fn expected_panel(
    lines: &[String],
    addresses: &BTreeMap<&str, &str>,
    roots: &[(String, String)],
    server: (&str, &str),
    owner: Option<(&str, &str)>,
) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|line| {
            line.split(" | ")
                .map(|cell| {
                    let Some((column, value)) = cell.split_once('=') else {
                        return cell.to_owned();
                    };
                    let mut value = addresses.get(value).copied().unwrap_or(value).to_owned();
                    if column == "server" && value == server.0 {
                        value = server.1.to_owned();
                    }
                    if let Some((from, to)) = owner {
                        if column == "owner" && value == from {
                            value = to.to_owned();
                        }
                    }
                    for (from, to) in roots {
                        if let Some(rest) = value.strip_prefix(&format!("{from}/")) {
                            value = format!("{to}/{rest}");
                        }
                    }
                    format!("{column}={value}")
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    out.sort();
    out
}

/// Which columns a panel dump shows: by default every column of the
/// server's table but ids and references (`id`, `*_id`), which are shown
/// resolved to what they name instead.
pub type Columns<'a> = &'a dyn Fn(&str, &str) -> bool;

/// Every column but the keys a migration renumbers.
pub fn all_columns(_table: &str, column: &str) -> bool {
    column != "id" && !column.ends_with("_id")
}

/// The columns both servers' panels have (for a source older or newer
/// than the destination), ids and references aside: (table, column).
pub async fn common_columns(
    a: &mut Conn,
    b: &mut Conn,
) -> Result<std::collections::BTreeSet<(String, String)>, mysql_async::Error> {
    let sql = "SELECT TABLE_NAME, LOWER(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()";
    let left: std::collections::BTreeSet<(String, String)> = a
        .query::<(String, String), _>(sql)
        .await?
        .into_iter()
        .collect();
    let right: std::collections::BTreeSet<(String, String)> = b
        .query::<(String, String), _>(sql)
        .await?
        .into_iter()
        .collect();
    Ok(left.intersection(&right).cloned().collect())
}

/// A value as a dump shows it: NULL, text (control characters escaped),
/// or the hex of bytes that are not UTF-8.
fn shown_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::NULL) => "NULL".to_owned(),
        Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(s) => s.escape_debug().to_string(),
            Err(_) => format!(
                "0x{}",
                b.iter().fold(String::new(), |mut s, x| {
                    let _ = write!(s, "{x:02x}");
                    s
                })
            ),
        },
        Some(other) => other.as_sql(true),
    }
}

/// One panel table's rows for a dump, by name.
struct Dump<'c, 'k> {
    conn: &'c mut Conn,
    keep: Columns<'k>,
}

type Cells = Vec<(String, String)>;

impl Dump<'_, '_> {
    /// Rows of `table` where `condition` holds (`?` bound to `id`), each
    /// as (column, shown value) for every shown column, sorted by column;
    /// the ids and references are kept under their names for following.
    async fn rows(
        &mut self,
        table: &str,
        condition: &str,
        id: Value,
    ) -> Result<Vec<(Cells, Row)>, mysql_async::Error> {
        if matches!(id, Value::NULL) {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = self
            .conn
            .exec(
                format!("SELECT * FROM psa.`{table}` WHERE {condition}"),
                (id,),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut cells: Cells = row
                    .columns_ref()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name_str().to_lowercase(), i))
                    .filter(|(c, _)| all_columns(table, c) && (self.keep)(table, c))
                    .map(|(c, i)| (c, shown_value(row.as_ref(i))))
                    .collect();
                cells.sort();
                (cells, row)
            })
            .collect())
    }

    /// One row of `table` by its `id`.
    async fn by_id(
        &mut self,
        table: &str,
        id: Value,
    ) -> Result<Option<(Cells, Row)>, mysql_async::Error> {
        Ok(self.rows(table, "id = ?", id).await?.into_iter().next())
    }

    /// An account's cells, prefixed (`account.type=plain`), or `account=NULL`.
    async fn account(&mut self, id: Value) -> Result<Cells, mysql_async::Error> {
        Ok(match self.by_id("accounts", id).await? {
            Some((cells, _)) => cells
                .into_iter()
                .map(|(c, v)| (format!("account.{c}"), v))
                .collect(),
            None => vec![("account".to_owned(), "NULL".to_owned())],
        })
    }

    /// A Limits or Permissions set as one cell (`name=value,...`), or NULL.
    async fn set(
        &mut self,
        table: &str,
        name_col: &str,
        id: Value,
    ) -> Result<String, mysql_async::Error> {
        if matches!(id, Value::NULL) {
            return Ok("NULL".to_owned());
        }
        let pairs: Vec<(String, Option<String>)> = self
            .conn
            .exec(
                format!("SELECT {name_col}, CAST(value AS CHAR) FROM psa.{table} WHERE id = ? ORDER BY {name_col}"),
                (id,),
            )
            .await?;
        Ok(format!(
            "[{}]",
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", v.unwrap_or_else(|| "NULL".into())))
                .collect::<Vec<_>>()
                .join(",")
        ))
    }

    async fn ip(&mut self, id: Value) -> Result<String, mysql_async::Error> {
        let found: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT ip_address FROM psa.IP_Addresses WHERE id = ?",
                (id,),
            )
            .await?;
        Ok(found.flatten().unwrap_or_else(|| "NULL".into()))
    }

    /// A DNS zone and its records, one line each, under `prefix`.
    async fn zone(
        &mut self,
        prefix: &str,
        id: Value,
        out: &mut Vec<String>,
    ) -> Result<(), mysql_async::Error> {
        let Some((cells, row)) = self.by_id("dns_zone", id).await? else {
            out.push(format!("{prefix}zone NULL"));
            return Ok(());
        };
        out.push(line(&format!("{prefix}zone"), cells));
        let zone_id = field(&row, "id");
        for (cells, _) in self.rows("dns_recs", "dns_zone_id = ?", zone_id).await? {
            out.push(line(&format!("{prefix}record"), cells));
        }
        Ok(())
    }
}

fn field(row: &Row, name: &str) -> Value {
    row.columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case(name))
        .and_then(|i| row.as_ref(i).cloned())
        .unwrap_or(Value::NULL)
}

fn line(label: &str, cells: Cells) -> String {
    let mut parts = vec![label.to_owned()];
    parts.extend(cells.into_iter().map(|(c, v)| format!("{c}={v}")));
    parts.join(" | ")
}

/// The panel rows of a client (by login) and its domains, ids resolved to
/// names, one line per row, sorted: equal dumps mean equal accounts.
pub async fn panel_client(conn: &mut Conn, login: &str) -> Result<Vec<String>, mysql_async::Error> {
    panel_client_with(conn, login, &|_, _| true).await
}

/// The same, showing only the columns `keep` accepts.
pub async fn panel_client_with(
    conn: &mut Conn,
    login: &str,
    keep: Columns<'_>,
) -> Result<Vec<String>, mysql_async::Error> {
    conn.query_drop("SET time_zone = '+00:00'").await?;
    let mut d = Dump { conn, keep };
    let Some((mut cells, row)) = d
        .rows("clients", "login = ?", login.into())
        .await?
        .into_iter()
        .next()
    else {
        return Ok(vec![format!("client {login}: absent")]);
    };
    let p = format!("client {login}");
    cells.extend(d.account(field(&row, "account_id")).await?);
    cells.push((
        "limits".into(),
        d.set("Limits", "limit_name", field(&row, "limits_id"))
            .await?,
    ));
    cells.push((
        "permissions".into(),
        d.set("Permissions", "permission", field(&row, "perm_id"))
            .await?,
    ));
    let pool_id = field(&row, "pool_id");
    cells.push((
        "pool".into(),
        if matches!(pool_id, Value::NULL) {
            "NULL"
        } else {
            "set"
        }
        .into(),
    ));
    let pool: Vec<(String, String)> = if matches!(pool_id, Value::NULL) {
        Vec::new()
    } else {
        d.conn
            .exec(
                "SELECT ip.ip_address, CAST(ip.type AS CHAR) FROM psa.Repository r JOIN psa.IP_Addresses ip ON ip.id = r.component_id
                 WHERE r.rep_id = ? ORDER BY ip.ip_address",
                (pool_id,),
            )
            .await?
    };
    let mut out = vec![line(&p, cells)];
    for (address, kind) in pool {
        out.push(line(
            &format!("{p} pool"),
            vec![("address".into(), address), ("type".into(), kind)],
        ));
    }
    let id = field(&row, "id");
    for (cells, _) in d.rows("cl_param", "cl_id = ?", id.clone()).await? {
        out.push(line(&format!("{p} param"), cells));
    }
    let domains: Vec<String> = d
        .conn
        .exec(
            "SELECT name FROM psa.domains WHERE cl_id = ? ORDER BY name",
            (id,),
        )
        .await?;
    for name in domains {
        out.extend(panel_domain_with(d.conn, &name, keep).await?);
    }
    out.sort();
    Ok(out)
}

/// The panel rows of one domain, ids resolved to names, sorted.
pub async fn panel_domain(conn: &mut Conn, name: &str) -> Result<Vec<String>, mysql_async::Error> {
    panel_domain_with(conn, name, &|_, _| true).await
}

/// The same, showing only the columns `keep` accepts.
pub async fn panel_domain_with(
    conn: &mut Conn,
    name: &str,
    keep: Columns<'_>,
) -> Result<Vec<String>, mysql_async::Error> {
    conn.query_drop("SET time_zone = '+00:00'").await?;
    let mut d = Dump { conn, keep };
    let Some((mut cells, dom)) = d
        .rows("domains", "name = ?", name.into())
        .await?
        .into_iter()
        .next()
    else {
        return Ok(vec![format!("domain {name}: absent")]);
    };
    let p = format!("domain {name}");
    let id = field(&dom, "id");
    let owner: Option<String> = d
        .conn
        .exec_first(
            "SELECT login FROM psa.clients WHERE id = ?",
            (field(&dom, "cl_id"),),
        )
        .await?;
    cells.push(("owner".into(), owner.unwrap_or_else(|| "NULL".into())));
    cells.push((
        "limits".into(),
        d.set("Limits", "limit_name", field(&dom, "limits_id"))
            .await?,
    ));
    let mut out = vec![line(&p, cells)];
    d.zone(&format!("{p} "), field(&dom, "dns_zone_id"), &mut out)
        .await?;
    for (mut cells, h) in d.rows("hosting", "dom_id = ?", id.clone()).await? {
        cells.push(("ip".into(), d.ip(field(&h, "ip_address_id")).await?));
        if let Some((mut su, su_row)) = d.by_id("sys_users", field(&h, "sys_user_id")).await? {
            su.extend(d.account(field(&su_row, "account_id")).await?);
            cells.extend(su.into_iter().map(|(c, v)| (format!("sysuser.{c}"), v)));
        }
        out.push(line(&format!("{p} hosting"), cells));
    }
    for (mut cells, f) in d.rows("forwarding", "dom_id = ?", id.clone()).await? {
        cells.push(("ip".into(), d.ip(field(&f, "ip_address_id")).await?));
        out.push(line(&format!("{p} forwarding"), cells));
    }
    for (mut cells, a) in d.rows("dom_level_usrs", "dom_id = ?", id.clone()).await? {
        cells.extend(d.account(field(&a, "account_id")).await?);
        match d.by_id("Cards", field(&a, "card_id")).await? {
            Some((card, _)) => {
                cells.extend(card.into_iter().map(|(c, v)| (format!("card.{c}"), v)))
            }
            None => cells.push(("card".into(), shown_value(Some(&field(&a, "card_id"))))),
        }
        cells.push((
            "permissions".into(),
            d.set("Permissions", "permission", field(&a, "perm_id"))
                .await?,
        ));
        out.push(line(&format!("{p} admin"), cells));
    }
    for (mut cells, m) in d.rows("mail", "dom_id = ?", id.clone()).await? {
        let mn = field(&m, "id");
        cells.extend(d.account(field(&m, "account_id")).await?);
        cells.push((
            "permissions".into(),
            d.set("Permissions", "permission", field(&m, "perm_id"))
                .await?,
        ));
        for (table, column, label) in [
            ("mail_aliases", "alias", "aliases"),
            ("mail_redir", "address", "redirects"),
        ] {
            let values: Vec<Option<String>> = d
                .conn
                .exec(
                    format!("SELECT {column} FROM psa.{table} WHERE mn_id = ? ORDER BY {column}"),
                    (mn.clone(),),
                )
                .await?;
            cells.push((
                label.into(),
                values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join(","),
            ));
        }
        let mail_name = shown_value(Some(&field(&m, "mail_name")));
        out.push(line(&format!("{p} mail {mail_name}"), cells));
    }
    for (mut cells, s) in d.rows("subdomains", "dom_id = ?", id.clone()).await? {
        let login: Option<Option<String>> = d
            .conn
            .exec_first(
                "SELECT login FROM psa.sys_users WHERE id = ?",
                (field(&s, "sys_user_id"),),
            )
            .await?;
        cells.push((
            "sysuser".into(),
            login.flatten().unwrap_or_else(|| "NULL".into()),
        ));
        out.push(line(&format!("{p} subdomain"), cells));
    }
    for (cells, a) in d.rows("domainaliases", "dom_id = ?", id.clone()).await? {
        let alias = shown_value(Some(&field(&a, "name")));
        out.push(line(&format!("{p} alias"), cells));
        d.zone(
            &format!("{p} alias {alias} "),
            field(&a, "dns_zone_id"),
            &mut out,
        )
        .await?;
    }
    for (cells, _) in d.rows("dom_param", "dom_id = ?", id.clone()).await? {
        out.push(line(&format!("{p} param"), cells));
    }
    for (mut cells, db) in d.rows("data_bases", "dom_id = ?", id.clone()).await? {
        let server: Option<(Option<String>, Option<u64>)> = d
            .conn
            .exec_first(
                "SELECT host, port FROM psa.DatabaseServers WHERE id = ?",
                (field(&db, "db_server_id"),),
            )
            .await?;
        cells.push((
            "server".into(),
            server
                .map(|(h, p)| format!("{}:{}", h.unwrap_or_default(), p.unwrap_or_default()))
                .unwrap_or_else(|| "NULL".into()),
        ));
        let default_user = field(&db, "default_user_id");
        let db_name = shown_value(Some(&field(&db, "name")));
        let users = d.rows("db_users", "db_id = ?", field(&db, "id")).await?;
        let mut default_login = "NULL".to_owned();
        for (mut ucells, u) in users {
            if field(&u, "id") == default_user {
                default_login = shown_value(Some(&field(&u, "login")));
            }
            ucells.extend(d.account(field(&u, "account_id")).await?);
            out.push(line(&format!("{p} database {db_name} user"), ucells));
        }
        cells.push(("default_user".into(), default_login));
        out.push(line(&format!("{p} database {db_name}"), cells));
    }
    out.sort();
    Ok(out)
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
