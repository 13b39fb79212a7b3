//! The database copy against the sandbox's real servers: the source's
//! MariaDB through an SSH tunnel (as a migration reaches it), two
//! destination servers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hostmig::db::{copy_database, DbError, DbJob, DbReport, Recorder};
use hostmig::sandbox::{compare, Destination, Profile, Source};
use hostmig::ssh::Tunnel;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

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
        users,
        connections: 4,
        chunk_rows: 20_000,
        load_data: true,
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
        let mut src = conn(source.db.root_url(None)).await;
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
        let src_rows = compare::table_rows(&mut src, &hard).await.expect("rows");
        let dst_rows = compare::table_rows(&mut dst, &hard).await.expect("rows");
        assert_eq!(src_rows.keys().collect::<Vec<_>>(), dst_rows.keys().collect::<Vec<_>>());
        for (table, rows) in &src_rows {
            assert!(!rows.is_empty(), "{table} has rows in the fixture");
            assert_eq!(rows, &dst_rows[table], "rows of {table}");
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
        // And by INSERT statements (the way for targets without LOCAL INFILE).
        j.load_data = false;
        let (report, _) = copy(&j, &never, &mut |_| {}).await;
        let report = report.expect("copy with a limited login");
        assert!(report.single_connection, "{report:?}");
        let mut first = conn(dest.db_servers[0].root_url(None)).await;
        assert_eq!(
            compare::table_rows(&mut first, &hard).await.expect("rows"),
            src_rows
        );
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
            let mut w = conn(source.db.root_url(Some(&busy))).await;
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
