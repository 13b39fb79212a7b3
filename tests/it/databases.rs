//! The database copy against the sandbox's real servers: the source's
//! MariaDB through an SSH tunnel (as a migration reaches it), two
//! destination servers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hostmig::db::{copy_database, Checksum, DbError, DbJob, DbReport, Recorder};
use hostmig::sandbox::{compare, Destination, Profile, Source};
use hostmig::ssh::Tunnel;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

use crate::harness::sandbox::{rt, start_both};

fn tunnel(source: &Source, dir: &std::path::Path) -> Tunnel {
    let (login, opts) = source.root_login(dir);
    Tunnel::open(login, opts, "localhost", source.db.port).expect("tunnel")
}

fn job(source: &Source, tunnel: &Tunnel, dest: &Destination, server: usize, db: &str) -> DbJob {
    let users = source
        .model
        .domains
        .iter()
        .flat_map(|d| &d.databases)
        .filter(|d| d.name == db)
        .flat_map(|d| d.users.iter().map(|(login, _)| login.clone()))
        .collect();
    DbJob {
        name: db.to_owned(),
        source: tunnel.mysql_opts("admin", &source.admin_password).into(),
        target: Opts::from_url(&dest.db_servers[server].root_url(None)).expect("url"),
        target_label: format!("localhost:{}", dest.db_servers[server].port),
        stage: format!("hostmig_1_{db}"),
        resume_stage: false,
        users,
        connections: 4,
        chunk_rows: 20_000,
        load_data: true,
        retry: hostmig::retry::RetryPolicy::default(),
    }
}

/// Runs a copy; records what it announced.
async fn copy(
    job: &DbJob,
    stop: &AtomicBool,
    on_progress: &mut dyn FnMut(u64),
) -> (Result<DbReport, DbError>, Vec<String>) {
    let recorded = std::cell::RefCell::new(Vec::new());
    let recorder = Recorder {
        record: Box::new(|kind, name| {
            recorded
                .borrow_mut()
                .push(format!("{} {name}", kind.as_str()));
            async { Ok(()) }.boxed_local()
        }),
        created_account: Box::new(|_, _| false),
    };
    let result = copy_database(job, &recorder, stop, &mut |p| on_progress(p.rows_done)).await;
    drop(recorder);
    (result, recorded.into_inner())
}

async fn conn(url: String) -> Conn {
    Conn::from_url(url).await.expect("connect")
}

#[test]
fn databases_arrive_identical_consistent_and_a_stop_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (mut source, mut dest) = start_both(&rt, dir.path(), Profile::Small, 7, 2);
    let tunnel = tunnel(&source, dir.path());
    let names = source.databases();
    let (hard, busy) = (names[0].clone(), names[1].clone());
    let never = AtomicBool::new(false);

    rt.block_on(async {
        let mut src = source.db.open(source.db.opts(None)).await.expect("source");
        let mut dst = conn(dest.db_servers[1].root_url(None)).await;

        // 1. The hard-case database, to the second server: identical.
        let j = job(&source, &tunnel, &dest, 1, &hard);
        let (report, recorded) = copy(&j, &never, &mut |_| {}).await;
        let report = report.expect("copy");
        assert!(!report.single_connection);
        // The values crossed the SSH tunnel (never a local socket: without
        // it only the handshakes would, a few hundred bytes each; the count
        // is of wire bytes, the report's of escaped load data).
        assert!(
            tunnel.carried() > report.bytes / 2,
            "the tunnel carried {} bytes of {} bytes of values",
            tunnel.carried(),
            report.bytes
        );
        assert!(report.tables >= 7 && report.objects >= 6, "{report:?}");
        assert_eq!(
            report.redefined,
            vec!["view posts_count (definer gone@localhost)".to_owned()]
        );
        assert_eq!(recorded[0], format!("scratch hostmig_1_{hard}"));
        assert!(recorded.contains(&format!("database {hard}")));
        let rows = compare::table_rows(&mut src, &mut dst, &hard).await.expect("rows");
        assert!(rows.differences.is_empty(), "{:#?}", rows.differences);
        for (table, count) in &rows.rows {
            assert!(*count > 0, "{table} has rows in the fixture");
        }
        let src_schema = compare::schema(&mut src, &hard).await.expect("schema");
        let dst_schema = compare::schema(&mut dst, &hard).await.expect("schema");
        assert_eq!(src_schema, dst_schema);
        for kind in ["TABLE visits", "VIEW counters_view", "TRIGGER counters_ai", "PROCEDURE touch_counter", "FUNCTION counter_total", "EVENT purge_log"] {
            assert!(dst_schema.contains_key(kind), "{kind} on the destination");
        }
        assert!(dst_schema["TABLE counters"].contains("AUTO_INCREMENT=1000"));
        assert!(dst_schema["TABLE posts"].contains("AUTO_INCREMENT=50000000"));
        assert!(dst_schema["TABLE visits"].contains("PARTITION BY RANGE"));
        let auto = "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1";
        let a: Vec<(String, Option<u64>)> = src.exec(auto, (&hard,)).await.expect("auto");
        let b: Vec<(String, Option<u64>)> = dst.exec(auto, (&hard,)).await.expect("auto");
        assert_eq!(a, b, "AUTO_INCREMENT counters");
        // Nothing else was left on the target: the scratch database is gone.
        let stray: Vec<String> = dst
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'hostmig%'")
            .await
            .expect("schemata");
        assert!(stray.is_empty(), "{stray:?}");
        // The users log in with their source passwords; same grants.
        let users = &source
            .model
            .domains
            .iter()
            .flat_map(|d| &d.databases)
            .find(|d| d.name == hard)
            .expect("model")
            .users;
        assert!(!users.is_empty());
        for (login, password) in users {
            assert_eq!(
                compare::grants(&mut src, login).await.expect("grants"),
                compare::grants(&mut dst, login).await.expect("grants"),
                "grants of {login}"
            );
            let url = format!(
                "mysql://{login}:{password}@127.0.0.1:{}/{hard}",
                dest.db_servers[1].port
            );
            let mut as_user = conn(url).await;
            let n: Option<u64> = as_user.query_first("SELECT COUNT(*) FROM posts").await.expect("select as the user");
            assert!(n.unwrap_or(0) > 0);
            let _ = as_user.disconnect().await;
        }

        // 1b. A source login without the right to a global read lock: one
        // connection reads everything in one snapshot, and it still arrives,
        src.query_drop(format!(
            "CREATE USER 'limited'@'%' IDENTIFIED BY 'limited-pw'; \
             GRANT SELECT, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT ON `{hard}`.* TO 'limited'@'%'; \
             GRANT SELECT ON mysql.* TO 'limited'@'%'"
        ))
        .await
        .expect("limited login");
        let mut j = job(&source, &tunnel, &dest, 0, &hard);
        j.source = OptsBuilder::from_opts(j.source.clone())
            .user(Some("limited"))
            .pass(Some("limited-pw"))
            .into();
        j.users.clear();
        // And by INSERT statements (the way for targets without LOCAL INFILE),
        // which cannot carry a value larger than the target's
        // max_allowed_packet (4 MiB): a named error, and nothing left there.
        j.load_data = false;
        let (refused, _) = copy(&j, &never, &mut |_| {}).await;
        match refused {
            Err(DbError::RowTooLarge { table, max, .. }) => {
                assert_eq!((table.as_str(), max), ("f_binary", 4 << 20));
            }
            other => panic!("a row larger than max_allowed_packet went by INSERT: {other:?}"),
        }
        let mut first = conn(dest.db_servers[0].root_url(None)).await;
        let left: Vec<String> = first
            .exec(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, ?)",
                (&hard, &j.stage),
            )
            .await
            .expect("schemata");
        assert!(left.is_empty(), "{left:?}");
        // With room for the largest statement, every value goes by INSERT.
        first.query_drop("SET GLOBAL max_allowed_packet = 32 << 20").await.expect("packet");
        let (report, _) = copy(&j, &never, &mut |_| {}).await;
        first.query_drop("SET GLOBAL max_allowed_packet = 4 << 20").await.expect("packet");
        let report = report.expect("copy with a limited login");
        assert!(report.single_connection, "{report:?}");
        let rows = compare::table_rows(&mut src, &mut first, &hard).await.expect("rows");
        assert!(rows.differences.is_empty(), "{:#?}", rows.differences);
        first.query_drop(format!("DROP DATABASE `{hard}`")).await.expect("drop");
        let _ = first.disconnect().await;

        // 2. A busy database: writes on the source during the copy do not
        // tear it. It is made large enough that the copy takes a while.
        for _ in 0..6 {
            src.query_drop(format!(
                "INSERT INTO `{busy}`.posts (author_id, title, body, status, views, rating, created) \
                 SELECT author_id, title, body, status, views, rating, created FROM `{busy}`.posts"
            ))
            .await
            .expect("grow");
        }
        let j = job(&source, &tunnel, &dest, 1, &busy);
        let done = AtomicBool::new(false);
        let writer = async {
            let mut w = source.db.open(source.db.opts(Some(&busy))).await.expect("source");
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                w.query_drop(format!(
                    "INSERT INTO posts (author_id, title, body, status, views, created) VALUES (1, 'during {n}', 'x', 'draft', 0, NOW()); \
                     INSERT INTO counters (name) VALUES ('during {n}')"
                ))
                .await
                .expect("write during the copy");
            }
            n
        };
        let copying = async {
            let result = copy(&j, &never, &mut |_| {}).await;
            done.store(true, Ordering::SeqCst);
            result
        };
        let (written, (report, _)) = futures_util::join!(writer, copying);
        let report = report.expect("copy of the busy database");
        assert!(report.chunks > 3, "the bulk table went in chunks: {report:?}");
        // Its keys, built after the rows, are the source's, in its order
        // (the counter moved on with the writes after the snapshot).
        let posts = |schema: std::collections::BTreeMap<String, String>| {
            let create = &schema["TABLE posts"];
            let at = create.find(" AUTO_INCREMENT=").expect("a counter");
            let end = create[at + 1..].find(' ').map_or(create.len(), |e| at + 1 + e);
            format!("{}{}", &create[..at], &create[end..])
        };
        assert_eq!(
            posts(compare::schema(&mut src, &busy).await.expect("schema")),
            posts(compare::schema(&mut dst, &busy).await.expect("schema"))
        );
        assert!(written > 0);
        let max: Option<u64> = dst
            .query_first(format!("SELECT MAX(id) FROM `{busy}`.posts"))
            .await
            .expect("max");
        let max = max.expect("rows");
        let as_of = |db: &str| {
            format!(
                "SELECT COUNT(*), CAST(SUM(CRC32(CONCAT_WS('|', id, title, body, views))) AS UNSIGNED) FROM `{db}`.posts WHERE id <= {max}"
            )
        };
        let s: Option<(u64, u64)> = src.query_first(as_of(&busy)).await.expect("sum");
        let d: Option<(u64, u64)> = dst.query_first(as_of(&busy)).await.expect("sum");
        assert_eq!(s, d, "the copy is the source as of one moment");
        let later: Option<u64> = src
            .query_first(format!("SELECT COUNT(*) FROM `{busy}`.posts WHERE id > {max}"))
            .await
            .expect("later");
        assert!(later.unwrap_or(0) > 0, "rows were written after the snapshot");
        // InnoDB rows and the MyISAM log the trigger writes agree.
        for (a, b) in [("counters", "counters_log"), ("counters_log", "counters")] {
            let (key_a, key_b) = if a == "counters" { ("name", "counter_name") } else { ("counter_name", "name") };
            let unmatched: Option<u64> = dst
                .query_first(format!(
                    "SELECT COUNT(*) FROM `{busy}`.{a} x LEFT JOIN `{busy}`.{b} y ON y.{key_b} = x.{key_a} \
                     WHERE y.id IS NULL AND x.{key_a} LIKE 'during %'"
                ))
                .await
                .expect("torn");
            assert_eq!(unmatched, Some(0), "every {a} row written during the copy has its {b} row");
        }

        // 3. Stopped mid-copy: within 2 s, and nothing is left behind.
        let j = job(&source, &tunnel, &dest, 0, &busy);
        let stop = AtomicBool::new(false);
        let mut asked = None;
        let (result, recorded) = copy(&j, &stop, &mut |rows| {
            if rows > 0 && asked.is_none() {
                asked = Some(Instant::now());
                stop.store(true, Ordering::SeqCst);
            }
        })
        .await;
        let asked = asked.expect("the copy reported rows before it ended");
        assert!(matches!(result, Err(DbError::Stopped)), "{result:?}");
        assert!(asked.elapsed() < Duration::from_secs(2), "stopped in {:?}", asked.elapsed());
        assert!(!recorded.is_empty());
        let mut first = conn(dest.db_servers[0].root_url(None)).await;
        let left: Vec<String> = first
            .exec(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, ?)",
                (&busy, format!("hostmig_1_{busy}")),
            )
            .await
            .expect("schemata");
        assert!(left.is_empty(), "left behind: {left:?}");
        for login in &j.users {
            assert!(!hostmig::db::user_exists(&mut first, login).await.expect("users"));
        }
        for c in [src, dst, first] {
            let _ = c.disconnect().await;
        }
    });
    drop(tunnel);
    source.stop();
    dest.stop();
}

/// One change of one value on the destination, per type family: the
/// statements that make it, in a transaction that is rolled back after.
struct Tamper {
    family: &'static str,
    table: &'static str,
    sql: &'static str,
}

const TAMPERS: &[Tamper] = &[
    Tamper { family: "integers", table: "f_integers", sql: "UPDATE f_integers SET bu = 18446744073709551614 WHERE id = 2" },
    Tamper { family: "decimals", table: "f_decimals", sql: "UPDATE f_decimals SET d65_30 = '-99999999999999999999999999999999999.999999999999999999999999999998' WHERE id = 2" },
    Tamper { family: "float negative zero", table: "f_floats", sql: "UPDATE f_floats SET f = 0 WHERE id = 4" },
    Tamper { family: "double, one unit in the last place", table: "f_floats", sql: "UPDATE f_floats SET d = 0.10000000000000002 WHERE id = 6" },
    Tamper { family: "bits", table: "f_bits", sql: "UPDATE f_bits SET b64 = 18446744073709551614 WHERE id = 2" },
    Tamper { family: "text", table: "f_text", sql: "UPDATE f_text SET tt = 'back/slash' WHERE id = 3" },
    Tamper { family: "CHAR", table: "f_text", sql: "UPDATE f_text SET c = 'ac' WHERE id = 1" },
    Tamper { family: "VARCHAR trailing spaces", table: "f_text", sql: "UPDATE f_text SET v = 'trail  ' WHERE id = 1" },
    Tamper { family: "single-byte charset", table: "f_charsets", sql: "UPDATE f_charsets SET latin1 = CONCAT(LEFT(latin1, 100), 'X', SUBSTRING(latin1, 102)) WHERE id = 3" },
    Tamper { family: "multi-byte charset", table: "f_charsets", sql: "UPDATE f_charsets SET sjis = _sjis X'955C5C955D' WHERE id = 3" },
    Tamper { family: "binary padding", table: "f_binary", sql: "UPDATE f_binary SET bin8 = X'6163' WHERE id = 1" },
    Tamper { family: "ENUM empty member against the invalid value", table: "f_enums", sql: "UPDATE f_enums SET e = 0 WHERE id = 1" },
    Tamper { family: "SET", table: "f_enums", sql: "UPDATE f_enums SET s64 = 18446744073709551614 WHERE id = 2" },
    Tamper { family: "TIMESTAMP in a fall-back hour", table: "f_temporal", sql: "UPDATE f_temporal SET ts3 = '2024-11-03 05:30:00.000' WHERE id = 4" },
    Tamper { family: "negative TIME fraction", table: "f_temporal", sql: "UPDATE f_temporal SET tm6 = '00:00:00.000001' WHERE id = 4" },
    Tamper { family: "zero date", table: "f_temporal", sql: "UPDATE f_temporal SET d = '0000-00-01' WHERE id = 1" },
    Tamper { family: "YEAR", table: "f_temporal", sql: "UPDATE f_temporal SET y = 2154 WHERE id = 3" },
    Tamper { family: "JSON", table: "f_json", sql: "UPDATE f_json SET j = ' {  \"spaced\" :  \"ouT\"  }  ' WHERE id = 4" },
    Tamper { family: "UUID", table: "f_network", sql: "UPDATE f_network SET u = '6ccd780c-baba-1026-9564-5b8c656024dc' WHERE id = 4" },
    Tamper { family: "INET6", table: "f_network", sql: "UPDATE f_network SET v6 = '2001:db8::2' WHERE id = 4" },
    Tamper { family: "spatial SRID", table: "f_spatial", sql: "UPDATE f_spatial SET p = ST_GeomFromText('POINT(1.5 -2.25)', 1) WHERE id = 1" },
    Tamper { family: "generated columns", table: "f_generated", sql: "UPDATE f_generated SET a = 2147483646 WHERE id = 1" },
    Tamper { family: "invisible columns", table: "f_invisible", sql: "UPDATE f_invisible SET hidden = 'not in SELECT +' WHERE id = 1" },
    Tamper { family: "no primary key", table: "f_nokey", sql: "UPDATE f_nokey SET note = 'same row twicE' WHERE note = 'same row twice' LIMIT 1" },
    Tamper { family: "no primary key, a value past the first page", table: "f_nokey", sql: "UPDATE f_nokey SET note = CONCAT(LEFT(note, 500000), 'X', SUBSTRING(note, 500002)) WHERE k = 'long' LIMIT 1" },
    Tamper { family: "composite key", table: "f_composite", sql: "UPDATE f_composite SET v = 'casE' WHERE b = 'X'" },
    Tamper { family: "text key", table: "f_textkey", sql: "UPDATE f_textkey SET k = 'b ' WHERE k = 'a '" },
    Tamper { family: "binary key", table: "f_binkey", sql: "UPDATE f_binkey SET v = 'escapeS' WHERE v = 'escapes'" },
    Tamper { family: "date key", table: "f_datekey", sql: "UPDATE f_datekey SET v = 3 WHERE v = 2" },
    Tamper { family: "very wide row", table: "f_wide", sql: "UPDATE f_wide SET s39 = CONCAT('Z', SUBSTRING(s39, 2)) WHERE id = 2" },
    Tamper { family: "system-versioned history row", table: "f_versioned", sql: "SET SESSION system_versioning_insert_history = 1; \
        DELETE HISTORY FROM f_versioned BEFORE SYSTEM_TIME '2021-06-30 12:00:00.500001'; \
        INSERT INTO f_versioned (id, v, row_start, row_end) VALUES (1, 'firsT', '2020-01-01 00:00:00.000001', '2021-06-30 12:00:00.5'); \
        SET SESSION system_versioning_insert_history = 0" },
    Tamper { family: "system-versioned, named periods", table: "f_periods", sql: "UPDATE f_periods SET v = 'neW' WHERE id = 1" },
];

/// The long values of the hard-case database, as `families.sql` makes
/// them: too large for one statement on the destination, so changed by
/// LOAD DATA (which the packet size does not bound).
fn long_blob() -> Vec<u8> {
    (0..24576).flat_map(|_| 0..=255u8).collect()
}

fn long_text() -> Vec<u8> {
    "😀 ümlaut \\ tab\t q' ".repeat(262_144).into_bytes()
}

/// Replaces one row of `table` by LOAD DATA REPLACE of `values`.
async fn replace_row(conn: &mut Conn, db: &str, table: &str, columns: &str, values: Vec<Value>) {
    let mut line = Vec::new();
    hostmig::db::rows::push_line(&mut line, values.iter());
    // In blocks well below the destination's max_allowed_packet.
    let blocks: Vec<Result<bytes::Bytes, std::io::Error>> = line
        .chunks(256 * 1024)
        .map(|b| Ok(bytes::Bytes::copy_from_slice(b)))
        .collect();
    conn.set_infile_handler(async move {
        Ok(Box::pin(futures_util::stream::iter(blocks)) as mysql_async::InfileData)
    });
    conn.query_drop(format!(
        "LOAD DATA LOCAL INFILE 'row' REPLACE INTO TABLE `{db}`.`{table}` CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({columns})"
    ))
    .await
    .expect("replace the row");
}

/// After `what` changed a value of `table` on `dst`: hostmig's checksum
/// differs from `expected` for that table alone, and the comparison
/// reports differences in that table alone.
async fn noticed(
    what: &str,
    table: &str,
    (src, dst): (&mut Conn, &mut Conn),
    db: &str,
    expected: &BTreeMap<String, Checksum>,
) {
    let found = hostmig::db::checksums(dst, db).await.expect("checksums");
    let changed: Vec<&String> = expected
        .keys()
        .filter(|t| expected.get(*t) != found.get(*t))
        .collect();
    assert_eq!(changed, vec![table], "{what}: the checksum");
    let rows = compare::table_rows(src, dst, db).await.expect("rows");
    assert!(
        !rows.differences.is_empty(),
        "{what}: the comparison saw no change"
    );
    assert!(
        rows.differences
            .iter()
            .all(|d| d.starts_with(&format!("table {table}:"))),
        "{what}: {:#?}",
        rows.differences
    );
}

#[test]
fn type_families_arrive_exactly_and_a_changed_byte_in_any_of_them_is_noticed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (source, dest) = start_both(&rt, dir.path(), Profile::Tiny, 3, 1);
    let tunnel = tunnel(&source, dir.path());
    let hard = source.model.hard_database().expect("a hard-case database");
    let never = AtomicBool::new(false);
    rt.block_on(async {
        // Into a destination configured unlike the source (time zone, SQL
        // mode, character set, a max_allowed_packet below the largest value).
        let mut dst = dest.db_servers[0].connect(None).await.expect("destination");
        let mut src = source.db.connect(None).await.expect("source");
        let settings = "SELECT @@global.time_zone, @@global.sql_mode, @@global.character_set_server, @@global.max_allowed_packet";
        let d: (String, String, String, u64) = dst.query_first(settings).await.expect("settings").expect("row");
        let s: (String, String, String, u64) = src.query_first(settings).await.expect("settings").expect("row");
        assert!(d.0 != s.0 && d.1 != s.1 && d.2 != s.2 && d.3 < s.3, "{d:?} against {s:?}");
        for mode in ["ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "PAD_CHAR_TO_FULL_LENGTH"] {
            assert!(d.1.contains(mode), "{}", d.1);
        }
        let largest: Option<u64> = src
            .query_first(format!("SELECT MAX(LENGTH(lb)) FROM `{hard}`.f_binary"))
            .await
            .expect("largest");
        assert!(largest.expect("a value") > d.3, "a value larger than the destination's packet");

        let j = job(&source, &tunnel, &dest, 0, &hard);
        let (report, _) = copy(&j, &never, &mut |_| {}).await;
        report.expect("copy of the type families");

        // Value for value, hex of the stored bytes, long values in pages.
        let rows = compare::table_rows(&mut src, &mut dst, &hard).await.expect("rows");
        assert!(rows.differences.is_empty(), "{:#?}", rows.differences);
        let families: Vec<&String> = rows.rows.keys().filter(|t| t.starts_with("f_")).collect();
        assert!(families.len() >= 24, "{families:?}");
        for table in &families {
            assert!(rows.rows[*table] > 0, "{table} has rows");
        }
        assert_eq!(rows.rows["f_versioned"], 5, "history rows are compared");
        assert!(rows.rows.contains_key("f_seq") && rows.rows.contains_key("f_seq_down"));
        let expected = hostmig::db::checksums(&mut src, &hard).await.expect("checksums");
        assert_eq!(expected, hostmig::db::checksums(&mut dst, &hard).await.expect("checksums"));
        assert!(expected.contains_key("f_seq") && expected["f_versioned"].rows == 5);
        // The default that draws from a sequence draws from the database's own.
        let schema = compare::schema(&mut dst, &hard).await.expect("schema");
        assert!(
            schema["TABLE f_seq_user"].contains(&format!("nextval(`{hard}`.`f_seq_ids`)")),
            "{}",
            schema["TABLE f_seq_user"]
        );

        // One value changed, family by family, in a transaction rolled back.
        for t in TAMPERS {
            dst.query_drop(format!("USE `{hard}`; START TRANSACTION")).await.expect("begin");
            dst.query_drop(t.sql).await.unwrap_or_else(|e| panic!("{}: {e}", t.family));
            noticed(t.family, t.table, (&mut src, &mut dst), &hard, &expected).await;
            dst.query_drop("ROLLBACK").await.expect("rollback");
        }
        // The values larger than the destination's max_allowed_packet.
        let mut blob = long_blob();
        blob[3_000_000] ^= 1;
        let mut row: Vec<Value> = [&b"5"[..], &[1, 2, 3, 4, 5, 6, 7, 8], &[10], &[], &[0x27], &[0x22], &[0x1a]]
            .iter()
            .map(|b| Value::Bytes(b.to_vec()))
            .collect();
        row.push(Value::Bytes(blob));
        dst.query_drop("START TRANSACTION").await.expect("begin");
        replace_row(&mut dst, &hard, "f_binary", "id, bin8, bin1, vb, tb, b, mb, lb", row).await;
        noticed("a LONGBLOB past max_allowed_packet", "f_binary", (&mut src, &mut dst), &hard, &expected).await;
        dst.query_drop("ROLLBACK").await.expect("rollback");
        let mut text = long_text();
        text[5_000_000] = b'#';
        let mut row = vec![Value::Bytes(b"5".to_vec())];
        row.extend((0..6).map(|_| Value::NULL));
        row.push(Value::Bytes(text));
        dst.query_drop("START TRANSACTION").await.expect("begin");
        replace_row(&mut dst, &hard, "f_text", "id, c, c255, v, tt, t, mt, lt", row).await;
        noticed("a LONGTEXT past max_allowed_packet", "f_text", (&mut src, &mut dst), &hard, &expected).await;
        dst.query_drop("ROLLBACK").await.expect("rollback");
        // Nothing changed is left: equal again.
        assert_eq!(expected, hostmig::db::checksums(&mut dst, &hard).await.expect("checksums"));
        // Sequences are not transactional: changed last.
        dst.query_drop(format!("ALTER SEQUENCE `{hard}`.f_seq RESTART WITH 998")).await.expect("restart");
        noticed("sequence", "f_seq", (&mut src, &mut dst), &hard, &expected).await;

        // What no copy can carry is a named error for its table, and
        // leaves nothing behind: history versioned by the source's own
        // transaction ids.
        src.query_drop(
            "CREATE DATABASE by_trx; CREATE TABLE by_trx.kept (id INT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE TABLE by_trx.ledger (id INT PRIMARY KEY, v INT, \
               t0 BIGINT UNSIGNED GENERATED ALWAYS AS ROW START, t1 BIGINT UNSIGNED GENERATED ALWAYS AS ROW END, \
               PERIOD FOR SYSTEM_TIME (t0, t1)) ENGINE=InnoDB WITH SYSTEM VERSIONING; \
             INSERT INTO by_trx.ledger (id, v) VALUES (1, 1); UPDATE by_trx.ledger SET v = 2",
        )
        .await
        .expect("a table versioned by transaction");
        let j = job(&source, &tunnel, &dest, 0, "by_trx");
        match copy(&j, &never, &mut |_| {}).await.0 {
            Err(e @ DbError::Uncarriable { .. }) => {
                let text = e.to_string();
                assert!(text.contains("table ledger") && text.contains("transaction"), "{text}");
            }
            other => panic!("a table versioned by transaction was copied: {other:?}"),
        }
        let left: Vec<String> = dst
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%by\\_trx'")
            .await
            .expect("schemata");
        assert!(left.is_empty(), "{left:?}");
    });
}
