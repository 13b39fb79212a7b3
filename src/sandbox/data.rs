//! Writes each domain's MySQL database: every column type family with edge
//! values, a table without a primary key, a MyISAM table, a foreign key,
//! a partitioned table, views (one whose definer no longer exists), a
//! trigger, a procedure, a function, an event, AUTO_INCREMENT counters that
//! are not max(id)+1, a bulk table sized by the profile, and the
//! database's users with their grants. The model's first database is the
//! hard-case database: it also holds the type families (`families.sql`,
//! one table per family at its extremes, sequences and system-versioned
//! tables among them) and a very wide table.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::model::Model;
use super::rng::Rng;
use super::sql_literal;

type Sql<T> = std::result::Result<T, mysql_async::Error>;

const SCHEMA: &str = "
CREATE TABLE types (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  c_tinyint TINYINT NULL, c_smallint_u SMALLINT UNSIGNED NULL, c_mediumint MEDIUMINT NULL,
  c_int INT NULL, c_bigint BIGINT NULL, c_bigint_u BIGINT UNSIGNED NULL,
  c_decimal DECIMAL(65,30) NULL, c_float FLOAT NULL, c_double DOUBLE NULL, c_bit BIT(13) NULL,
  c_date DATE NULL, c_datetime DATETIME(6) NULL, c_timestamp TIMESTAMP(3) NULL DEFAULT NULL,
  c_time TIME(3) NULL, c_year YEAR NULL,
  c_char CHAR(10) NULL, c_varchar VARCHAR(255) NULL, c_text TEXT NULL, c_mediumtext MEDIUMTEXT NULL,
  c_latin1 VARCHAR(50) CHARACTER SET latin1 NULL,
  c_binary BINARY(8) NULL, c_varbinary VARBINARY(64) NULL, c_blob BLOB NULL, c_longblob LONGBLOB NULL,
  c_enum ENUM('a','b','c') NULL, c_set SET('x','y','z') NULL,
  c_json JSON NULL, c_point POINT NULL, c_geometry GEOMETRY NULL,
  c_virtual INT AS (c_tinyint * 2) VIRTUAL,
  c_stored VARCHAR(300) AS (CONCAT(IFNULL(c_varchar, ''), '!')) PERSISTENT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

INSERT INTO types (c_tinyint, c_smallint_u, c_mediumint, c_int, c_bigint, c_bigint_u, c_decimal, c_float, c_double, c_bit,
  c_date, c_datetime, c_timestamp, c_time, c_year, c_char, c_varchar, c_text, c_mediumtext, c_latin1,
  c_binary, c_varbinary, c_blob, c_longblob, c_enum, c_set, c_json, c_point, c_geometry) VALUES
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (0, 0, 0, 0, 0, 0, 0, 0, 0, b'0', '0000-00-00', '0000-00-00 00:00:00', NULL, '00:00:00', 0000, '', '', '', '', '',
  X'', X'', X'', X'', '', '', '{}', ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(0 0)')),
 (-128, 65535, -8388608, -2147483648, -9223372036854775808, 18446744073709551615,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -3.40282e38, -1.7976931348623157e308, b'1111111111111',
  '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000', '-838:59:59.000', 1901,
  'abcdefghij', 'emoji 😀 and ümlauts', 'line1\\nline2\\ttab \\\\ backslash \\' quote', REPEAT('long text ', 5000), 'café',
  X'00FF00FF00FF00FF', X'000102030405', X'00000000', REPEAT(X'00FF', 70000), 'a', 'x,z',
  '{\"k\": [1, 2.5, {\"e\": \"😀\"}], \"n\": null}', ST_GeomFromText('POINT(1.5 -2.25)'),
  ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')),
 (127, 1, 8388607, 2147483647, 9223372036854775807, 1,
  '12345678901234567890123456789012345.123456789012345678901234567890', 1.17549435e-38, 2.2250738585072014e-308, b'1010101010101',
  '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '838:59:59.999', 2155,
  'z', '\\'quoted\\' \"double\"', NULL, '', 'plain',
  X'0000000000000000', X'FF', X'7F454C46', NULL, 'c', 'x,y,z',
  '[]', NULL, ST_GeomFromText('LINESTRING(0 0,1 1,2 4)')),
 (1, 2, 3, 4, 5, 6, '0.000000000000000000000000000001', -0.0, 0.1, b'1',
  '2020-02-29', '2020-02-29 12:34:56.123456', '2020-02-29 12:34:56.789', '12:34:56.5', 2020,
  'ten chars!', 'NUL in text: \\0 end', '\\r\\n', 'x', NULL,
  X'6869', X'6869', X'6869', X'6869', 'b', '',
  '\"just a string\"', ST_GeomFromText('POINT(90 180)'), NULL),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '2024-00-15', '2024-02-00 00:00:00', NULL, '-100:00:00.25', NULL, 'NULL', 'NULL', 'NULL', NULL, X'C383C2A9',
  X'5C27220000', NULL, X'5C0027225C', NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE nopk (
  k VARCHAR(20) NULL, v INT NULL, note TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO nopk VALUES ('dup', 1, 'same row twice'), ('dup', 1, 'same row twice'), (NULL, NULL, NULL), ('', 0, '');

CREATE TABLE counters (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(50) NOT NULL,
  touched INT NOT NULL DEFAULT 0,
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO counters (name) VALUES ('one'), ('two'), ('three'), ('four'), ('five');
ALTER TABLE counters AUTO_INCREMENT = 1000;

CREATE TABLE counters_log (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  counter_name VARCHAR(50) NOT NULL,
  at DATETIME NOT NULL DEFAULT '2019-01-01 00:00:00'
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4 AUTO_INCREMENT = 77;

CREATE TRIGGER counters_ai AFTER INSERT ON counters FOR EACH ROW
  INSERT INTO counters_log (counter_name) VALUES (NEW.name);
INSERT INTO counters (id, name) VALUES (6, 'six');

CREATE TABLE counter_notes (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  counter_id INT UNSIGNED NOT NULL,
  note VARCHAR(50) NOT NULL,
  CONSTRAINT counter_notes_counter FOREIGN KEY (counter_id) REFERENCES counters (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO counter_notes (counter_id, note) VALUES (1, 'first'), (3, 'third'), (3, 'again');

CREATE TABLE visits (
  id INT NOT NULL,
  day DATE NOT NULL,
  hits INT NOT NULL DEFAULT 0,
  PRIMARY KEY (id, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci
  PARTITION BY RANGE (YEAR(day)) (PARTITION p2023 VALUES LESS THAN (2024), PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO visits VALUES (1, '2023-05-01', 3), (2, '2024-02-29', 5), (3, '2031-01-01', 0);

CREATE EVENT purge_log ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
  DO DELETE FROM counters_log WHERE at < '2000-01-01';

CREATE VIEW counters_view AS SELECT id, UPPER(name) AS shout, touched FROM counters WHERE touched >= 0;

CREATE PROCEDURE touch_counter(IN which VARCHAR(50))
  MODIFIES SQL DATA
  UPDATE counters SET touched = touched + 1 WHERE name = which;

CREATE FUNCTION counter_total() RETURNS INT
  READS SQL DATA
  RETURN (SELECT COALESCE(SUM(touched), 0) FROM counters);

CREATE TABLE posts (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  author_id INT UNSIGNED NOT NULL,
  title VARCHAR(200) NOT NULL,
  body TEXT NOT NULL,
  status ENUM('draft','published','trash') NOT NULL,
  views INT UNSIGNED NOT NULL,
  rating DECIMAL(5,2) NULL,
  created DATETIME NOT NULL,
  KEY author_id (author_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE DEFINER = 'gone'@'localhost' SQL SECURITY INVOKER VIEW posts_count AS SELECT COUNT(*) AS n FROM posts;
";

/// The type families of the hard-case database (`Model::hard_database`).
const FAMILIES: &str = include_str!("families.sql");

/// Columns of the very wide table: short integers, then long strings
/// filling a row to near the 64 KiB row-size limit.
const WIDE_INTS: usize = 200;
const WIDE_STRINGS: usize = 40;
const WIDE_STRING_BYTES: usize = 1500;

/// The very wide table of the hard-case database.
fn wide_table() -> String {
    let mut columns = vec!["id INT NOT NULL PRIMARY KEY".to_owned()];
    columns.extend((0..WIDE_INTS).map(|i| format!("i{i:03} TINYINT NULL")));
    columns.extend((0..WIDE_STRINGS).map(|i| format!("s{i:02} VARCHAR({WIDE_STRING_BYTES}) NULL")));
    let mut sql = format!(
        "CREATE TABLE f_wide ({}) ENGINE=InnoDB DEFAULT CHARSET=latin1 ROW_FORMAT=DYNAMIC;\n",
        columns.join(", ")
    );
    for row in 0..3i64 {
        let mut values = vec![row.to_string()];
        values.extend((0..WIDE_INTS as i64).map(|i| ((i * 7 + row * 13) % 256 - 128).to_string()));
        values.extend((0..WIDE_STRINGS).map(|i| {
            let c = char::from(b'a' + ((i as i64 + row) % 26) as u8);
            format!("REPEAT('{c}', {})", WIDE_STRING_BYTES - row as usize)
        }));
        sql.push_str(&format!(
            "INSERT INTO f_wide VALUES ({});\n",
            values.join(", ")
        ));
    }
    sql
}

/// Rows per multi-row INSERT of the bulk table.
const BATCH: u64 = 1000;

pub async fn write(conn: &mut Conn, model: &Model, seed: u64) -> Sql<()> {
    let mut rng = Rng::new(seed).fork("databases");
    // Stored values must not depend on the machine's time zone.
    conn.query_drop("SET time_zone = '+00:00'").await?;
    // Not strict: real servers hold values strict mode refuses (the empty
    // ENUM value, zero dates), and the fixture must hold them too.
    conn.query_drop("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        .await?;
    let big = model
        .domains
        .iter()
        .position(|d| d.big)
        .or_else(|| model.domains.iter().position(|d| !d.databases.is_empty()));
    let hard = model.hard_database();
    for (index, domain) in model.domains.iter().enumerate() {
        let rows = if Some(index) == big {
            model.sizes.rows_big_db
        } else {
            model.sizes.rows_per_db
        };
        for db in &domain.databases {
            let mut drng = rng.fork(&db.name);
            conn.query_drop(format!(
                "CREATE DATABASE `{0}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; USE `{0}`",
                db.name
            ))
            .await?;
            conn.query_drop(SCHEMA).await?;
            if hard.as_deref() == Some(db.name.as_str()) {
                conn.query_drop(FAMILIES).await?;
                conn.query_drop(wide_table()).await?;
            }
            bulk(conn, &mut drng, rows, model.sizes.row_text_bytes).await?;
            // Gaps: the counter continues past the highest id.
            conn.query_drop("ALTER TABLE posts AUTO_INCREMENT = 50000000")
                .await?;
            for (login, password) in &db.users {
                let password = sql_literal(password);
                conn.query_drop(format!(
                    "CREATE USER '{login}'@'%' IDENTIFIED BY {password}"
                ))
                .await?;
                conn.query_drop(format!(
                    "CREATE USER '{login}'@'localhost' IDENTIFIED BY {password}"
                ))
                .await?;
                conn.query_drop(format!(
                    "GRANT ALL PRIVILEGES ON `{0}`.* TO '{login}'@'%'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{0}`.* TO '{login}'@'localhost'",
                    db.name
                ))
                .await?;
            }
        }
    }
    conn.query_drop("USE mysql").await?;
    Ok(())
}

async fn bulk(conn: &mut Conn, rng: &mut Rng, rows: u64, text_bytes: u64) -> Sql<()> {
    let mut done = 0;
    let mut body = vec![0u8; text_bytes as usize];
    while done < rows {
        let n = BATCH.min(rows - done);
        let mut sql = String::with_capacity((n * (text_bytes + 120)) as usize);
        sql.push_str(
            "INSERT INTO posts (author_id, title, body, status, views, rating, created) VALUES ",
        );
        for i in 0..n {
            if i > 0 {
                sql.push(',');
            }
            let len = rng.range(text_bytes / 2, text_bytes + 1) as usize;
            rng.fill(&mut body[..len], true);
            let text = String::from_utf8_lossy(&body[..len])
                .replace('\\', "\\\\")
                .replace('\'', "\\'");
            let status = *rng.pick(&["draft", "published", "published", "trash"]);
            let rating = if rng.range(0, 10) == 0 {
                "NULL".to_owned()
            } else {
                format!("{}.{:02}", rng.range(0, 100), rng.range(0, 100))
            };
            let secs = 1_546_300_800 + rng.range(0, 4 * 365 * 86_400);
            sql.push_str(&format!(
                "({}, 'Post {} about {}', '{}', '{}', {}, {}, FROM_UNIXTIME({}))",
                rng.range(1, 500),
                done + i,
                rng.hex(4),
                text,
                status,
                rng.range(0, 1_000_000),
                rating,
                secs
            ));
        }
        conn.query_drop(sql).await?;
        done += n;
    }
    Ok(())
}
