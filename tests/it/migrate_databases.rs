//! Databases through the API: each lands on its mapped or default server,
//! every database refusal of `start`, and `finish` mid-copy leaves no
//! database or user behind.

use std::time::{Duration, Instant};

use hostmig::sandbox::Profile;
use mysql_async::prelude::Queryable;

use crate::harness::world::{domains, finish, ip, World};

fn domain(name: &str, old_ip: &str, new_ip: &str, extra: &str) -> String {
    domains(
        "admin",
        &format!(
            "<domain><name>{name}</name>{}{extra}</domain>",
            ip("shared", old_ip, new_ip)
        ),
    )
}

const JDOE: (&str, &str, &str) = ("jdoe.example", "192.0.2.10", "198.51.100.4");
const ADMIN_SITE: (&str, &str, &str) = ("admin-site.example", "192.0.2.100", "198.51.100.5");
const ANNA: (&str, &str, &str) = ("anna0-site0.example", "192.0.2.10", "198.51.100.4");

fn db_map(w: &World, port: u16) -> String {
    format!(
        "<db-server><old><host>localhost</host><port>{}</port><type>mysql</type></old>\
         <new><host>localhost</host><port>{port}</port><type>mysql</type></new></db-server>",
        w.source.db.port
    )
}

/// Runs SQL on a destination database server (0 or 1) or, with `None`,
/// on the source's.
fn sql(w: &World, server: Option<usize>, query: &str) -> Vec<String> {
    let db = match server {
        Some(i) => &w.dest.db_servers[i],
        None => &w.source.db,
    };
    w.rt.block_on(async {
        let mut c = db.connect(None).await.expect("connect");
        let rows: Vec<String> = c.query(query).await.expect("query");
        let _ = c.disconnect().await;
        rows
    })
}

/// Databases, scratch databases and accounts of the sandbox's logins on a
/// destination server.
fn leftovers(w: &World, server: usize) -> Vec<String> {
    let mut out = sql(
        w,
        Some(server),
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%\\_db' OR SCHEMA_NAME LIKE 'hostmig\\_%'",
    );
    out.extend(sql(
        w,
        Some(server),
        "SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE '%\\_u'",
    ));
    out
}

#[test]
fn databases_land_on_their_mapped_or_default_server_and_refusals_name_the_problem() {
    let w = World::with_db_servers(Profile::Small, "", 2);
    let second = w.dest.db_servers[1].port;
    let refused = |r: Result<String, (u32, String)>| r.expect_err("refused");

    // 14009: a mapping to a server the destination does not have.
    let (code, text) = refused(w.start(&domain(JDOE.0, JDOE.1, JDOE.2, &db_map(&w, 1))));
    assert_eq!(code, 14009);
    assert!(
        text.contains("localhost:1 (mysql) is not configured"),
        "{text}"
    );
    // 14008: the source's panel says the database is not MySQL.
    sql(
        &w,
        None,
        "UPDATE psa.data_bases SET type = 'postgresql' WHERE name = 'jdoe_ftp_db'",
    );
    let (code, text) = refused(w.start(&domain(JDOE.0, JDOE.1, JDOE.2, "")));
    sql(
        &w,
        None,
        "UPDATE psa.data_bases SET type = 'mysql' WHERE name = 'jdoe_ftp_db'",
    );
    assert_eq!(code, 14008);
    assert!(
        text.contains("jdoe_ftp_db") && text.contains("postgresql"),
        "{text}"
    );
    // 1007: the database, then a user of it, already on the target server.
    sql(&w, Some(1), "CREATE DATABASE jdoe_ftp_db");
    let (code, text) = refused(w.start(&domain(JDOE.0, JDOE.1, JDOE.2, &db_map(&w, second))));
    assert_eq!(code, 1007);
    assert_eq!(
        text,
        format!("database \"jdoe_ftp_db\" already exists on localhost:{second}")
    );
    sql(&w, Some(1), "DROP DATABASE jdoe_ftp_db");
    sql(&w, Some(0), "CREATE USER 'jdoe_ftp_u'@'%'");
    let (code, text) = refused(w.start(&domain(JDOE.0, JDOE.1, JDOE.2, "")));
    assert_eq!(code, 1007);
    assert!(text.contains("database user \"jdoe_ftp_u\""), "{text}");
    sql(&w, Some(0), "DROP USER 'jdoe_ftp_u'@'%'");
    // Nothing was created by the refused starts.
    assert!(leftovers(&w, 0).is_empty() && leftovers(&w, 1).is_empty());

    // Mapped to the second server; the other domain's goes to the default.
    let id = w
        .start(&domain(JDOE.0, JDOE.1, JDOE.2, &db_map(&w, second)))
        .expect("started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    w.assert_database("jdoe_ftp_db", 1);
    let id = w
        .start(&domain(ADMIN_SITE.0, ADMIN_SITE.1, ADMIN_SITE.2, ""))
        .expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    w.assert_database("adminsite_db", 0);
    assert_eq!(
        (leftovers(&w, 0), leftovers(&w, 1)),
        (
            vec![
                "adminsite_db".to_owned(),
                "adminsite_u@%".to_owned(),
                "adminsite_u@localhost".to_owned()
            ],
            vec![
                "jdoe_ftp_db".to_owned(),
                "jdoe_ftp_u@%".to_owned(),
                "jdoe_ftp_u@localhost".to_owned()
            ]
        )
    );
    // The panel rows name the server each database went to.
    let rows = sql(
        &w,
        Some(0),
        "SELECT CONCAT(d.name, ' ', s.host, ':', s.port, ' ', u.login) FROM psa.data_bases d \
         JOIN psa.DatabaseServers s ON s.id = d.db_server_id JOIN psa.db_users u ON u.id = d.default_user_id ORDER BY d.name",
    );
    assert_eq!(
        rows,
        [
            format!(
                "adminsite_db localhost:{} adminsite_u",
                w.dest.db_servers[0].port
            ),
            format!("jdoe_ftp_db localhost:{second} jdoe_ftp_u"),
        ]
    );
}

#[test]
fn finish_mid_copy_leaves_no_database_or_user_behind() {
    let w = World::with_db_servers(Profile::Small, "", 1);
    // A database large enough that its copy is still running when stopped
    // (128 times the fixture's rows: a few seconds of copying).
    for _ in 0..7 {
        sql(
            &w,
            None,
            "INSERT INTO anna0_s0_db.posts (author_id, title, body, status, views, rating, created) \
             SELECT author_id, title, body, status, views, rating, created FROM anna0_s0_db.posts",
        );
    }
    let id = w
        .start(&domain(ANNA.0, ANNA.1, ANNA.2, ""))
        .expect("started");
    let t = Instant::now();
    loop {
        let status = w.status(&id);
        if status.contains("copying database anna0_s0_db") && !status.contains(": 0 of") {
            break;
        }
        assert!(
            !status.contains("<finished>"),
            "ended before the test could stop it: {status}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never copied: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = finish(&w, &id);
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    // The copy removes what it created; the migration's end drops the rest.
    // The server first rolls back the chunks that were loading (tens of
    // thousands of rows each), which on a loaded machine takes a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(&w, 0).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}; the server runs: {:?}",
            leftovers(&w, 0),
            sql(&w, Some(0), "SELECT CONCAT(ID, ' ', COMMAND, ' ', TIME, ' ', IFNULL(STATE, ''), ' ', LEFT(IFNULL(INFO, ''), 80)) FROM information_schema.PROCESSLIST"),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new start of the same domain copies it whole.
    let id = w
        .start(&domain(ANNA.0, ANNA.1, ANNA.2, ""))
        .expect("a new start");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    w.assert_database("anna0_s0_db", 0);
}
