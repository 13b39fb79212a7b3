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

// The comparisons below are written apart from hostmig's own copy and
// checksum (`db::rows`) on purpose: a proof that shared their SQL would
// share their mistakes.

/// The session the comparisons run in (the caller's is restored after):
/// raw stored bytes, UTC, no SQL mode (CHAR read without its padding).
const COMPARE_SESSION: &str =
    "SET @hostmig_mode = @@session.sql_mode, @hostmig_tz = @@session.time_zone; \
     SET NAMES binary, time_zone = '+00:00', SESSION sql_mode = ''";
const RESTORE_SESSION: &str =
    "SET NAMES utf8mb4, SESSION sql_mode = @hostmig_mode, time_zone = @hostmig_tz";

/// Runs `$body` (a future using `$conn`) in `COMPARE_SESSION`.
macro_rules! in_compare_session {
    ($conn:expr, $body:expr) => {{
        $conn.query_drop(COMPARE_SESSION).await?;
        let out = $body.await;
        $conn.query_drop(RESTORE_SESSION).await?;
        out
    }};
}

/// Characters (bytes, for binary strings) of a long value read at once:
/// its hex stays far below a 4 MiB max_allowed_packet.
const PAGE: u64 = 256 * 1024;
/// Characters of each long value read with its row.
const FIRST_PAGE: u64 = 4096;
/// Rows read at a time.
const BATCH: u64 = 200;
/// Differences reported per table before the rest is skipped.
const MAX_DIFFERENCES: usize = 20;

/// A column as the comparisons read it.
#[derive(Debug, Clone)]
struct ColumnShape {
    name: String,
    /// Long strings, read in pages (`PAGE`) by SUBSTRING.
    long: bool,
    /// The SQL of its exact value (long columns: the column itself).
    value: String,
}

/// A table (base, system-versioned or sequence) as the comparisons read it.
#[derive(Debug, Clone)]
struct TableShape {
    name: String,
    /// `db`.`t`, with `FOR SYSTEM_TIME ALL` for a versioned table.
    from: String,
    columns: Vec<ColumnShape>,
    /// The primary key's columns (with a versioned table's row end),
    /// empty without one.
    key: Vec<String>,
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The exact value of a column of `data_type` as SQL, and whether it is
/// a long string read in pages.
fn column_value(name: &str, data_type: &str) -> (String, bool) {
    let c = quoted(name);
    match data_type {
        "float" | "double" | "real" => (
            format!(
                "CONCAT(IF({c} = 0 AND ATAN2({c}, -1) < 0, '-', ''), ABS(CAST({c} AS DOUBLE)))"
            ),
            false,
        ),
        "bit" => (format!("CAST({c} AS UNSIGNED)"), false),
        "enum" | "set" => (format!("CONCAT(CAST({c} AS UNSIGNED), '=', {c})"), false),
        "uuid" | "inet4" | "inet6" => (format!("UNHEX(HEX({c}))"), false),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "binary"
        | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "json" | "geometry"
        | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => (c, true),
        _ => (format!("CAST({c} AS BINARY)"), false),
    }
}

/// Every table of `db` with its columns, period columns and key.
async fn table_shapes(conn: &mut Conn, db: &str) -> Result<Vec<TableShape>, mysql_async::Error> {
    let tables: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY TABLE_NAME",
            (db,),
        )
        .await?;
    let mut out = Vec::new();
    for (table, kind) in tables {
        let columns: Vec<(String, String, Option<String>)> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, GENERATION_EXPRESSION FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, &table),
            )
            .await?;
        let mut key: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (db, &table),
            )
            .await?;
        let versioned = kind == "SYSTEM VERSIONED";
        let mut shaped: Vec<ColumnShape> = columns
            .iter()
            .map(|(name, data_type, _)| {
                let (value, long) = column_value(name, &data_type.to_ascii_lowercase());
                ColumnShape {
                    name: name.clone(),
                    long,
                    value,
                }
            })
            .collect();
        let row_end = columns
            .iter()
            .find(|(_, _, g)| {
                g.as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case("ROW END"))
            })
            .map(|(name, _, _)| name.clone());
        if versioned && row_end.is_none() {
            // Period columns the table did not name: the server's own.
            for name in ["row_start", "row_end"] {
                shaped.push(ColumnShape {
                    name: name.into(),
                    long: false,
                    value: format!("CAST({} AS BINARY)", quoted(name)),
                });
            }
        }
        if versioned && !key.is_empty() {
            let end = row_end.unwrap_or_else(|| "row_end".into());
            if !key.contains(&end) {
                key.push(end);
            }
        }
        out.push(TableShape {
            from: format!(
                "{}.{}{}",
                quoted(db),
                quoted(&table),
                if versioned {
                    " FOR SYSTEM_TIME ALL"
                } else {
                    ""
                }
            ),
            name: table,
            columns: shaped,
            key,
        });
    }
    Ok(out)
}

impl TableShape {
    /// A digest of a whole row, for ordering and finding the rows of a
    /// table without a key (equal rows have equal digests).
    fn digest(&self) -> String {
        let pieces: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "IF({n} IS NULL, '-', CONCAT(LENGTH({v}), ':', SHA2({v}, 256)))",
                    n = quoted(&c.name),
                    v = c.value
                )
            })
            .collect();
        format!("SHA2(CONCAT({}), 256)", pieces.join(", ',', "))
    }

    /// The SQL naming one row: its key, or its digest.
    fn locator(&self) -> String {
        if self.key.is_empty() {
            format!("{} = ?", self.digest())
        } else {
            self.key
                .iter()
                .map(|k| format!("{} <=> ?", quoted(k)))
                .collect::<Vec<_>>()
                .join(" AND ")
        }
    }

    /// Rows `offset..offset+BATCH` in a fixed order: the locator's values,
    /// then per column its length in characters (long columns) and the
    /// hex of its value (long columns: the first page).
    fn batch(&self, offset: u64) -> String {
        let mut select: Vec<String> = if self.key.is_empty() {
            vec![self.digest()]
        } else {
            self.key.iter().map(|k| quoted(k)).collect()
        };
        for c in &self.columns {
            if c.long {
                select.push(format!("CHAR_LENGTH({})", c.value));
                select.push(format!("HEX(LEFT({}, {FIRST_PAGE}))", c.value));
            } else {
                select.push("NULL".into());
                select.push(format!("HEX({})", c.value));
            }
        }
        let order = if self.key.is_empty() {
            "1".to_owned()
        } else {
            (1..=self.key.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "SELECT {} FROM {} ORDER BY {order} LIMIT {BATCH} OFFSET {offset}",
            select.join(", "),
            self.from
        )
    }

    /// The SQL of page `from..from+PAGE` (1-based, in characters) of a
    /// long column of one row.
    fn page(&self, column: &ColumnShape) -> String {
        format!(
            "SELECT HEX(SUBSTRING({}, ?, {PAGE})) FROM {} WHERE {} LIMIT 1",
            column.value,
            self.from,
            self.locator()
        )
    }
}

/// What comparing two servers' copies of a database found.
#[derive(Debug, Clone, Default)]
pub struct RowsCompared {
    /// Rows of each table on the first server.
    pub rows: BTreeMap<String, u64>,
    /// What differs, one line each; empty when every value is equal.
    pub differences: Vec<String>,
}

/// Compares every table of `db` (base tables with their values,
/// system-versioned tables with their history rows and period columns,
/// sequences with their state) on two servers, value for value: the hex
/// of each value's stored bytes (FLOAT and DOUBLE as their exact value
/// with a negative zero's sign, BIT, ENUM and SET as their number),
/// rows in key order (by row digest without a key), long values page by
/// page so that no answer nears a server's max_allowed_packet.
pub async fn table_rows(
    a: &mut Conn,
    b: &mut Conn,
    db: &str,
) -> Result<RowsCompared, mysql_async::Error> {
    in_compare_session!(a, async {
        in_compare_session!(b, compare_tables(a, b, db))
    })
}

async fn compare_tables(
    a: &mut Conn,
    b: &mut Conn,
    db: &str,
) -> Result<RowsCompared, mysql_async::Error> {
    let mut out = RowsCompared::default();
    let (shapes_a, shapes_b) = (table_shapes(a, db).await?, table_shapes(b, db).await?);
    let names = |s: &[TableShape]| s.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(&shapes_a) != names(&shapes_b) {
        out.differences.push(format!(
            "the tables differ: {:?} against {:?}",
            names(&shapes_a),
            names(&shapes_b)
        ));
    }
    for table in &shapes_a {
        let Some(other) = shapes_b.iter().find(|t| t.name == table.name) else {
            continue;
        };
        let before = out.differences.len();
        let rows = compare_table(a, b, table, other, &mut out.differences).await?;
        if out.differences.len() - before >= MAX_DIFFERENCES {
            out.differences.push(format!(
                "table {}: further differences not shown",
                table.name
            ));
        }
        out.rows.insert(table.name.clone(), rows);
    }
    Ok(out)
}

/// Compares one table; answers its rows on the first server.
async fn compare_table(
    a: &mut Conn,
    b: &mut Conn,
    table: &TableShape,
    other: &TableShape,
    differences: &mut Vec<String>,
) -> Result<u64, mysql_async::Error> {
    let t = &table.name;
    let column_names =
        |s: &TableShape| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if column_names(table) != column_names(other) || table.key != other.key {
        differences.push(format!("table {t}: the columns or the key differ"));
        return Ok(0);
    }
    let start = differences.len();
    let mut offset = 0;
    loop {
        let rows_a: Vec<Row> = a.query(table.batch(offset)).await?;
        let rows_b: Vec<Row> = b.query(table.batch(offset)).await?;
        for (i, (ra, rb)) in rows_a.iter().zip(&rows_b).enumerate() {
            let keys = table.key.len().max(1);
            let locator: Vec<Value> = (0..keys)
                .map(|k| ra.as_ref(k).cloned().unwrap_or(Value::NULL))
                .collect();
            let row_name = format!("row {} ({})", offset + i as u64 + 1, show_values(&locator));
            if (0..keys).any(|k| ra.as_ref(k) != rb.as_ref(k)) {
                differences.push(format!(
                    "table {t}: {row_name} is not the other's row at that place ({})",
                    show_values(
                        &(0..keys)
                            .map(|k| rb.as_ref(k).cloned().unwrap_or(Value::NULL))
                            .collect::<Vec<_>>()
                    )
                ));
                return Ok(offset + rows_a.len() as u64);
            }
            for (c, column) in table.columns.iter().enumerate() {
                let (len, hex) = (keys + 2 * c, keys + 2 * c + 1);
                if ra.as_ref(len) != rb.as_ref(len) || ra.as_ref(hex) != rb.as_ref(hex) {
                    differences.push(format!(
                        "table {t}: {row_name}, column {}: {} against {}",
                        column.name,
                        show_cell(ra, len, hex),
                        show_cell(rb, len, hex)
                    ));
                } else if column.long {
                    let chars = number(ra.as_ref(len));
                    if chars > FIRST_PAGE {
                        if let Some(page) =
                            compare_pages(a, b, table, column, &locator, chars).await?
                        {
                            differences.push(format!(
                                "table {t}: {row_name}, column {}: the page from character {page} differs",
                                column.name
                            ));
                        }
                    }
                }
                if differences.len() - start >= MAX_DIFFERENCES {
                    return Ok(offset + rows_a.len() as u64);
                }
            }
        }
        if rows_a.len() != rows_b.len() {
            differences.push(format!(
                "table {t}: {} rows against {} from row {}",
                offset + rows_a.len() as u64,
                offset + rows_b.len() as u64,
                offset + 1
            ));
            return Ok(offset + rows_a.len() as u64);
        }
        offset += rows_a.len() as u64;
        if (rows_a.len() as u64) < BATCH {
            return Ok(offset);
        }
    }
}

/// Compares a long value past its first page, page by page; answers the
/// first character of the first page that differs.
async fn compare_pages(
    a: &mut Conn,
    b: &mut Conn,
    table: &TableShape,
    column: &ColumnShape,
    locator: &[Value],
    chars: u64,
) -> Result<Option<u64>, mysql_async::Error> {
    let sql = table.page(column);
    let mut from = FIRST_PAGE + 1;
    while from <= chars {
        let mut params = vec![Value::UInt(from)];
        params.extend(locator.iter().cloned());
        let pa: Option<Option<Vec<u8>>> = a.exec_first(&sql, params.clone()).await?;
        let pb: Option<Option<Vec<u8>>> = b.exec_first(&sql, params).await?;
        if pa != pb || pa.as_ref().is_none_or(|p| p.is_none()) {
            return Ok(Some(from));
        }
        from += PAGE;
    }
    Ok(None)
}

fn number(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::Bytes(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Some(Value::Int(n)) => *n as u64,
        Some(Value::UInt(n)) => *n,
        _ => 0,
    }
}

fn show_values(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::Bytes(b) if b.len() > 64 => format!("{}…", String::from_utf8_lossy(&b[..64])),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::NULL => "NULL".into(),
            other => other.as_sql(false),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_cell(row: &Row, len: usize, hex: usize) -> String {
    let hex = match row.as_ref(hex) {
        Some(Value::Bytes(b)) if b.len() > 80 => {
            format!("{}… (hex)", String::from_utf8_lossy(&b[..80]))
        }
        Some(Value::Bytes(b)) => format!("{} (hex)", String::from_utf8_lossy(b)),
        _ => "NULL".into(),
    };
    match row.as_ref(len) {
        Some(Value::NULL) | None => hex,
        Some(n) => format!("{hex}, {} characters", number(Some(n))),
    }
}

/// What a row the server cannot hash adds to a table's checksum sum.
const UNHASHABLE: &str = "1000000000000000000000000000000";

/// Per table of `db` (base, system-versioned with its history, sequence):
/// the row count and a checksum of every value (each column's length and
/// MD5, per row the MD5 of those; summed), the same SQL on any server,
/// whatever the size of a value. For databases too large to compare
/// value for value; a value the server cannot hash is an error.
pub async fn table_checksums(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, TableSum>, mysql_async::Error> {
    in_compare_session!(conn, checksum_tables(conn, db))
}

async fn checksum_tables(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, TableSum>, mysql_async::Error> {
    let mut out = BTreeMap::new();
    for table in table_shapes(conn, db).await? {
        let pieces: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                format!(
                    "IF({n} IS NULL, '-', CONCAT(LENGTH({v}), ':', MD5({v})))",
                    n = quoted(&c.name),
                    v = c.value
                )
            })
            .collect();
        // 60 bits of each row's MD5, summed exactly; a row the server
        // cannot hash adds 10^30, above any sum of hashes.
        let row = format!("MD5(CONCAT({}))", pieces.join(", ',', "));
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(IFNULL(CAST(CONV(LEFT({row}, 15), 16, 10) AS UNSIGNED), \
             {UNHASHABLE})), 0) AS CHAR) FROM {}",
            table.from
        );
        let (rows, sum): (u64, String) = conn.query_first(sql).await?.unwrap_or((0, "0".into()));
        let sum: u128 = sum.parse().unwrap_or(u128::MAX);
        let unhashed = sum / UNHASHABLE.parse::<u128>().unwrap_or(1);
        if unhashed > 0 {
            return Err(mysql_async::Error::Other(
                format!("{unhashed} rows of table {} cannot be hashed", table.name).into(),
            ));
        }
        let checksum = sum as u64;
        out.insert(table.name, TableSum { rows, checksum });
    }
    Ok(out)
}

/// The definition of every table, sequence, view, trigger, routine and event of
/// `db` (SHOW CREATE), keyed `kind name`, with any DEFINER clause removed
/// (a target without the definer's account defines it otherwise).
pub async fn schema(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, String>, mysql_async::Error> {
    // SHOW CREATE quotes as the session's SQL mode says.
    in_compare_session!(conn, definitions(conn, db))
}

async fn definitions(
    conn: &mut Conn,
    db: &str,
) -> Result<BTreeMap<String, String>, mysql_async::Error> {
    let lists = [
        ("TABLE", "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')", 1),
        ("SEQUENCE", "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE'", 1),
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
    // Hosts read unpadded, quoted with backslash escapes.
    in_compare_session!(conn, grants_of(conn, login))
}

async fn grants_of(
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
