//! Tables as hostmig copies them: their columns and how each value is
//! read exactly and written back, the primary-key chunks of large tables,
//! the SELECT that reads a chunk, the INSERT statements that write it
//! (bounded in size), and the checksum SQL both servers run on it.

use mysql_async::Value;

use super::ident;

/// How a column's values are written into an INSERT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Integers, DECIMAL, YEAR, and BIT, ENUM and SET (read as their
    /// number): the server's text, unquoted.
    Number,
    /// FLOAT and DOUBLE, read as the exact DOUBLE: unquoted.
    Float,
    /// Binary strings, spatial values, and UUID and INET addresses (read
    /// in their binary form): a hex literal.
    Hex,
    /// Everything else (text, dates, JSON): a quoted literal of the raw
    /// stored bytes.
    Quoted,
}

/// How a column's value is read so that writing it back is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The stored bytes (strings), or the server's exact text of the value
    /// (integers, DECIMAL, dates and times in the UTC session).
    Raw,
    /// BIT, ENUM and SET: their number (an ENUM's empty member and its
    /// invalid value both read as '', a member may read as a number),
    /// loaded through a variable.
    Number,
    /// FLOAT: its exact value as a DOUBLE; a negative zero (which a FLOAT
    /// can hold) as -1e-50, which stores as -0 again.
    Float,
    /// DOUBLE: its exact value (DOUBLE(M,D) shows only D decimals); a
    /// negative zero as -0, which MariaDB stores as 0, so that the
    /// checksum tells them apart.
    Double,
    /// UUID, INET4, INET6: their binary form of this many bytes. Their
    /// text, arriving as a binary string (the sessions are `binary`), is
    /// refused by the column and stored as NULL.
    Binary(u8),
}

impl Kind {
    /// The kind of an information_schema `DATA_TYPE` with its character set.
    pub fn of(data_type: &str, charset: Option<&str>) -> Kind {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
            | "numeric" | "year" | "bit" | "enum" | "set" => Kind::Number,
            "float" | "double" | "real" => Kind::Float,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "uuid" | "inet4"
            | "inet6" => Kind::Hex,
            _ if charset.is_none_or(|c| c.eq_ignore_ascii_case("binary"))
                && matches!(data_type, "char" | "varchar") =>
            {
                Kind::Hex
            }
            _ => Kind::Quoted,
        }
    }
}

impl Read {
    pub fn of(data_type: &str) -> Read {
        match data_type.to_ascii_lowercase().as_str() {
            "bit" | "enum" | "set" => Read::Number,
            "float" => Read::Float,
            "double" | "real" => Read::Double,
            "uuid" | "inet6" => Read::Binary(16),
            "inet4" => Read::Binary(4),
            _ => Read::Raw,
        }
    }
}

/// Whether values of an information_schema `DATA_TYPE` are short texts
/// that never hold a comma (numbers, dates and times, BIT, ENUM and SET
/// read as numbers): the checksum takes them as they read, unhashed.
pub fn scalar(data_type: &str) -> bool {
    matches!(
        data_type.to_ascii_lowercase().as_str(),
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "numeric"
            | "float"
            | "double"
            | "real"
            | "year"
            | "bit"
            | "enum"
            | "set"
            | "date"
            | "time"
            | "datetime"
            | "timestamp"
    )
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub read: Read,
    /// See `scalar`.
    pub scalar: bool,
    /// Computed by the server (VIRTUAL or STORED): never written.
    pub generated: bool,
}

impl Column {
    /// The SQL that reads this column's value exactly (see `Read`).
    pub fn value(&self) -> String {
        let col = ident(&self.name);
        match self.read {
            Read::Raw => col,
            Read::Number => format!("CAST({col} AS UNSIGNED)"),
            Read::Float => {
                format!("IF({col} = 0 AND ATAN2({col}, -1) < 0, '-1e-50', CAST({col} AS DOUBLE))")
            }
            Read::Double => {
                format!("IF({col} = 0 AND ATAN2({col}, -1) < 0, '-0', CAST({col} AS DOUBLE))")
            }
            Read::Binary(bytes) => format!("CAST({col} AS BINARY({bytes}))"),
        }
    }
}

/// What kind of table it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Base,
    /// System-versioned: its history rows are read and written with the
    /// current ones, their period columns among the written columns.
    Versioned,
    /// A sequence: created and set, not loaded (`sequences::copy`).
    Sequence,
}

impl TableKind {
    /// How `SHOW CREATE` and `DROP` name it.
    pub fn object(self) -> &'static str {
        match self {
            TableKind::Sequence => "SEQUENCE",
            _ => "TABLE",
        }
    }
}

/// A table of the database being copied.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<Column>,
    /// InnoDB (read inside the snapshot) or not (read under a table lock).
    pub transactional: bool,
    pub rows_estimate: u64,
    pub bytes_estimate: u64,
    /// The single integer primary-key column, when the table has one.
    pub chunk_key: Option<String>,
    /// Columns whose default draws from a sequence of the same database:
    /// (column, the default as information_schema shows it). Created in
    /// the scratch database drawing from its copy of the sequence, and
    /// pointed at the database's own once the tables are moved into it.
    pub sequence_defaults: Vec<(String, String)>,
}

/// A part of a table: all of it, or a primary-key range `[from, to)`
/// (`to` `None`: no upper end), or only some blocks of such a range.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub table: usize,
    pub range: Option<(i128, Option<i128>)>,
    /// Only the rows of these blocks (a catch-up's differing ones).
    pub blocks: Option<Blocks>,
}

/// Blocks of a primary key: block `i` holds the keys `[i·width,
/// (i+1)·width)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocks {
    pub width: i128,
    pub ids: Vec<i128>,
}

/// Rows per chunk hostmig aims at.
pub const CHUNK_ROWS: u64 = 50_000;

/// Splits `[min, max]` into about `rows / chunk_rows` ranges.
pub fn chunks(
    table: usize,
    key_range: Option<(i128, i128)>,
    rows: u64,
    chunk_rows: u64,
) -> Vec<Chunk> {
    let Some((min, max)) = key_range else {
        return vec![Chunk {
            table,
            range: None,
            blocks: None,
        }];
    };
    let parts = rows.div_ceil(chunk_rows.max(1)).max(1) as i128;
    if parts == 1 {
        return vec![Chunk {
            table,
            range: Some((i128::MIN, None)),
            blocks: None,
        }];
    }
    let width = ((max - min + 1) / parts).max(1);
    let mut out = Vec::new();
    let mut from = i128::MIN;
    let mut bound = min + width;
    while bound <= max {
        out.push(Chunk {
            table,
            range: Some((from, Some(bound))),
            blocks: None,
        });
        from = bound;
        bound += width;
    }
    out.push(Chunk {
        table,
        range: Some((from, None)),
        blocks: None,
    });
    out
}

/// What a checksum adds for a row whose hash the server could not compute
/// (a value it could not read whole): above any sum of 2^32 row hashes,
/// so that such rows are counted, never silently equal on both sides.
const UNHASHED: &str = "18446744073709551616";

/// A chunk's checksum: row count, the sum of the row hashes (modulo
/// 2^64), and the rows whose hash the server could not compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub sum: u64,
    pub unhashed: u64,
}

impl Checksum {
    /// From the checksum SQL's answer: the count and the exact sum.
    pub fn parse(rows: u64, sum: &str) -> Option<Checksum> {
        let total: u128 = sum.trim().parse().ok()?;
        Some(Checksum {
            rows,
            sum: total as u64,
            unhashed: (total >> 64) as u64,
        })
    }
}

impl Table {
    fn written(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// `db.t`, with every row of a system-versioned table (history too).
    fn source(&self, db: &str) -> String {
        let all = if self.kind == TableKind::Versioned {
            " FOR SYSTEM_TIME ALL"
        } else {
            ""
        };
        format!("{}.{}{all}", ident(db), ident(&self.name))
    }

    /// `WHERE` of a chunk (empty for a whole table).
    fn filter(&self, chunk: &Chunk) -> String {
        let Some(key) = &self.chunk_key else {
            return String::new();
        };
        let key = ident(key);
        let mut parts = Vec::new();
        if let Some((from, to)) = chunk.range {
            if from != i128::MIN {
                parts.push(format!("{key} >= {from}"));
            }
            if let Some(to) = to {
                parts.push(format!("{key} < {to}"));
            }
        }
        if let Some(b) = &chunk.blocks {
            let ranges: Vec<String> = b
                .ids
                .iter()
                .map(|i| {
                    format!(
                        "({key} >= {} AND {key} < {})",
                        i * b.width,
                        (i + 1) * b.width
                    )
                })
                .collect();
            parts.push(format!("({})", ranges.join(" OR ")));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        }
    }

    /// Row count and key range of a chunk (a table with a chunk key).
    pub fn key_stats(&self, db: &str, chunk: &Chunk) -> Option<String> {
        let key = ident(self.chunk_key.as_ref()?);
        Some(format!(
            "SELECT COUNT(*), MIN({key}), MAX({key}) FROM {}{}",
            self.source(db),
            self.filter(chunk)
        ))
    }

    /// Deletes a chunk's rows on the target (a catch-up's replacement).
    pub fn delete(&self, db: &str, chunk: &Chunk) -> String {
        format!(
            "DELETE FROM {}.{}{}",
            ident(db),
            ident(&self.name),
            self.filter(chunk)
        )
    }

    /// The SELECT that reads a chunk's written columns on the source.
    pub fn select(&self, db: &str, chunk: &Chunk) -> String {
        let cols: Vec<String> = self.written().map(Column::value).collect();
        format!(
            "SELECT {} FROM {}{}",
            cols.join(", "),
            self.source(db),
            self.filter(chunk)
        )
    }

    /// `INSERT INTO t (cols) VALUES ` for the target database.
    pub fn insert_head(&self, db: &str) -> Vec<u8> {
        let cols: Vec<String> = self.written().map(|c| ident(&c.name)).collect();
        format!(
            "INSERT INTO {}.{} ({}) VALUES ",
            ident(db),
            ident(&self.name),
            cols.join(", ")
        )
        .into_bytes()
    }

    /// `LOAD DATA LOCAL INFILE` of a chunk in the format `push_line`
    /// writes (raw bytes, tab-separated, backslash escapes, `\N` for NULL);
    /// columns read as numbers (BIT, ENUM, SET) go through a variable, as
    /// LOAD DATA would take their text for a member or bit string.
    pub fn load(&self, db: &str) -> String {
        let mut cols = Vec::new();
        let mut sets = Vec::new();
        for (i, c) in self.written().enumerate() {
            if c.read == Read::Number {
                cols.push(format!("@v{i}"));
                sets.push(format!("{} = CAST(@v{i} AS UNSIGNED)", ident(&c.name)));
            } else {
                cols.push(ident(&c.name));
            }
        }
        let mut sql = format!(
            "LOAD DATA LOCAL INFILE 'hostmig' INTO TABLE {}.{} CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
            ident(db),
            ident(&self.name),
            cols.join(", ")
        );
        if !sets.is_empty() {
            sql.push_str(" SET ");
            sql.push_str(&sets.join(", "));
        }
        sql
    }

    /// Kinds of the written columns, in SELECT order.
    pub fn kinds(&self) -> Vec<Kind> {
        self.written().map(|c| c.kind).collect()
    }

    /// Row count and value checksum of a chunk, the same SQL on both
    /// servers (answering the count and the sum as text, for
    /// `Checksum::parse`). Each row's hash is the CRC32 of its columns,
    /// comma-separated, each as `-` for NULL, a scalar as its exact text
    /// (which holds no comma), anything else as its length and CRC32: no
    /// two different rows give the same input, and no long value is ever
    /// copied into a larger string, so a value larger than
    /// max_allowed_packet is hashed as it is stored (the server reads it
    /// whole; a copy of it would be NULL). A row the server cannot hash
    /// adds `UNHASHED`.
    pub fn checksum(&self, db: &str, chunk: &Chunk) -> String {
        format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM({}), 0) AS CHAR) FROM {}{}",
            self.row_hash(),
            self.source(db),
            self.filter(chunk)
        )
    }

    /// A row's hash, as `checksum` sums it.
    fn row_hash(&self) -> String {
        let pieces: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let value = c.value();
                let piece = if c.scalar {
                    value
                } else {
                    format!("CONCAT(LENGTH({value}), ':', CRC32({value}))")
                };
                format!("IF({} IS NULL, '-', {piece})", ident(&c.name))
            })
            .collect();
        format!(
            "IFNULL(CRC32(CONCAT({})), {UNHASHED})",
            pieces.join(", ',', ")
        )
    }

    /// The checksum of every block of `width` keys in a chunk: block (the
    /// key divided by `width`, rounded down), row count and sum as
    /// `checksum` gives them (only for a table with a chunk key).
    pub fn block_sums(&self, db: &str, chunk: &Chunk, width: i128) -> Option<String> {
        let key = ident(self.chunk_key.as_ref()?);
        Some(format!(
            "SELECT CAST({key} DIV {width} - ({key} < 0 AND {key} MOD {width} <> 0) AS CHAR), COUNT(*), CAST(SUM({}) AS CHAR) FROM {}{} GROUP BY 1",
            self.row_hash(),
            self.source(db),
            self.filter(chunk)
        ))
    }
}

/// Appends one row as a line of the LOAD DATA format: each value's raw
/// bytes with backslash, tab, newline, carriage return and NUL escaped,
/// `\N` for NULL, tab-separated.
pub fn push_line<'v>(out: &mut Vec<u8>, values: impl Iterator<Item = &'v Value>) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match value {
            Value::NULL => out.extend_from_slice(b"\\N"),
            Value::Bytes(bytes) => push_escaped(out, bytes, |b| match b {
                b'\\' => Some(b"\\\\"),
                b'\t' => Some(b"\\t"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                0 => Some(b"\\0"),
                _ => None,
            }),
            other => out.extend_from_slice(scalar_text(other).as_bytes()),
        }
    }
    out.push(b'\n');
}

/// Appends one row's values, `(v1, v2, ...)`, to an INSERT.
pub fn push_row<'v>(out: &mut Vec<u8>, kinds: &[Kind], values: impl Iterator<Item = &'v Value>) {
    out.push(b'(');
    for (i, (kind, value)) in kinds.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, *kind, value);
    }
    out.push(b')');
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_value(out: &mut Vec<u8>, kind: Kind, value: &Value) {
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Bytes(bytes) => match kind {
            Kind::Number | Kind::Float if is_number(bytes) => out.extend_from_slice(bytes),
            Kind::Hex => {
                out.extend_from_slice(b"X'");
                for b in bytes {
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                out.push(b'\'');
            }
            // Text, and anything a number column sent that is not a plain
            // number (never trusted as SQL).
            _ => push_quoted(out, bytes),
        },
        Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Double(_) => {
            out.extend_from_slice(scalar_text(value).as_bytes())
        }
        other => push_quoted(out, scalar_text(other).as_bytes()),
    }
}

/// A value that did not come as bytes, as text. The text protocol sends
/// every value as bytes; this keeps any other answer exact all the same.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => format!("{:e}", f64::from(*f)),
        Value::Double(f) => format!("{f:e}"),
        other => other.as_sql(false).trim_matches('\'').to_owned(),
    }
}

/// Appends `bytes` with each byte `escape` names replaced.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8], escape: impl Fn(u8) -> Option<&'static [u8]>) {
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if let Some(escaped) = escape(*b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(escaped);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A plain decimal or scientific number (what a numeric column sends).
fn is_number(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && bytes.iter().any(u8::is_ascii_digit)
}

fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    push_escaped(out, bytes, |b| match b {
        b'\'' => Some(b"\\'"),
        b'\\' => Some(b"\\\\"),
        0 => Some(b"\\0"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        0x1a => Some(b"\\Z"),
        _ => None,
    });
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_exactly_and_safely() {
        let kinds = [
            Kind::Number,
            Kind::Quoted,
            Kind::Hex,
            Kind::Number,
            Kind::Float,
        ];
        let values = [
            Value::Bytes(b"-12.5e3".to_vec()),
            Value::Bytes(b"a'b\\c\0\n".to_vec()),
            Value::Bytes(vec![0, 255]),
            // A hostile source cannot inject SQL through a numeric column.
            Value::Bytes(b"1); DROP TABLE x; --".to_vec()),
            Value::NULL,
        ];
        let mut out = Vec::new();
        push_row(&mut out, &kinds, values.iter());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(-12.5e3,'a\\'b\\\\c\\0\\n',X'00FF','1); DROP TABLE x; --',NULL)"
        );
    }

    #[test]
    fn load_lines_escape_what_the_format_needs() {
        let mut out = Vec::new();
        push_line(
            &mut out,
            [
                Value::Bytes(b"a\tb\nc\\d\0".to_vec()),
                Value::NULL,
                Value::Bytes(Vec::new()),
            ]
            .iter(),
        );
        assert_eq!(out, b"a\\tb\\nc\\\\d\\0\t\\N\t\n");
    }

    #[test]
    fn checksum_sums_keep_the_rows_that_could_not_be_hashed() {
        let ok = Checksum::parse(3, "12345").unwrap();
        assert_eq!((ok.rows, ok.sum, ok.unhashed), (3, 12345, 0));
        // Two unhashed rows beside a row hash of 7.
        let two = Checksum::parse(3, "36893488147419103239").unwrap();
        assert_eq!((two.sum, two.unhashed), (7, 2));
        assert!(Checksum::parse(1, "NULL").is_none());
    }

    #[test]
    fn chunks_cover_the_key_range_without_gaps() {
        let parts = chunks(0, Some((1, 1_000_000)), 1_000_000, 200_000);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].range, Some((i128::MIN, Some(200_001))));
        for pair in parts.windows(2) {
            assert_eq!(pair[0].range.unwrap().1, Some(pair[1].range.unwrap().0));
        }
        assert_eq!(parts.last().unwrap().range.unwrap().1, None);
        assert_eq!(chunks(3, None, 10, CHUNK_ROWS).len(), 1);
        assert_eq!(
            chunks(3, Some((5, 5)), 10, CHUNK_ROWS)[0].range,
            Some((i128::MIN, None))
        );
    }

    #[test]
    fn kinds_follow_the_column_type() {
        assert_eq!(Kind::of("bigint", None), Kind::Number);
        assert_eq!(Kind::of("float", None), Kind::Float);
        assert_eq!(Kind::of("double", None), Kind::Float);
        assert_eq!(Kind::of("enum", Some("utf8mb4")), Kind::Number);
        assert_eq!(Read::of("enum"), Read::Number);
        assert_eq!(Read::of("float"), Read::Float);
        assert_eq!(Read::of("datetime"), Read::Raw);
        assert_eq!(
            (Kind::of("uuid", None), Read::of("uuid")),
            (Kind::Hex, Read::Binary(16))
        );
        assert_eq!(Read::of("inet4"), Read::Binary(4));
        assert!(scalar("timestamp") && scalar("enum") && scalar("double"));
        assert!(!scalar("varchar") && !scalar("uuid") && !scalar("json") && !scalar("point"));
        assert_eq!(Kind::of("point", None), Kind::Hex);
        assert_eq!(Kind::of("varchar", Some("binary")), Kind::Hex);
        assert_eq!(Kind::of("varchar", Some("latin1")), Kind::Quoted);
        assert_eq!(Kind::of("datetime", None), Kind::Quoted);
    }
}
