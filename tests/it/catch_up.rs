//! Databases catch up: `resync` brings a deployed database up to date by
//! comparing blocks of rows on both servers, copying only what changed
//! (rows inserted, updated and deleted; tables added, altered, dropped;
//! views, triggers and passwords changed), and an interrupted first copy
//! resumes from its scratch database instead of starting over.

use std::time::{Duration, Instant};

use hostmig::sandbox::{compare, Profile};
use mysql_async::prelude::Queryable;

use crate::harness::first;
use crate::harness::world::{finish, jdoe_client, World};

const DB: &str = "jdoe_ftp_db";

/// The catch-up reports in a migration's event log: (database, report).
fn caught_up(w: &World, id: &str) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
        .expect("event log");
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e.get("event")?.get("catch_up").cloned())
        .collect()
}

fn resync(w: &World, id: &str) -> String {
    let answer = w.exchange(&format!(
        "<resync><migration_id>{id}</migration_id></resync>"
    ));
    let new = first(&answer, "migration_id").unwrap_or_else(|| panic!("{answer}"));
    let status = w.wait(&new);
    assert!(status.contains("<success/>"), "{status}");
    new
}

/// The destination's database equals the source's, value for value and
/// definition for definition.
fn assert_same(w: &World) {
    w.rt.block_on(async {
        let mut src = w.source.db.connect(None).await.expect("source");
        let mut dst = w.dest.db_servers[0]
            .connect(None)
            .await
            .expect("destination");
        let rows = compare::table_rows(&mut src, &mut dst, DB)
            .await
            .expect("rows");
        assert!(rows.differences.is_empty(), "{:#?}", rows.differences);
        assert_eq!(
            compare::schema(&mut src, DB).await.expect("schema"),
            compare::schema(&mut dst, DB).await.expect("schema"),
        );
    });
}

fn number(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key)
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| panic!("{key} in {v}"))
}

fn names(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[test]
fn resync_catches_databases_up_copying_only_what_changed() {
    let w = World::new(Profile::Small, "");
    let id = w
        .start(&jdoe_client("<domain><name>jdoe.example</name></domain>"))
        .expect("started");
    assert!(w.wait(&id).contains("<success/>"));
    assert_same(&w);

    // Nothing changed: every block of every table (all the type
    // families) compares equal across the two servers; nothing is copied.
    let quiet = resync(&w, &id);
    let reports = caught_up(&w, &quiet);
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(
        (number(r, "blocks_copied"), number(r, "rows_copied")),
        (0, 0),
        "{r}"
    );
    assert!(
        names(r, "copied_whole").is_empty() && names(r, "dropped").is_empty(),
        "{r}"
    );
    let total_rows = number(r, "rows_kept");
    assert!(total_rows > 100, "{r}");

    // The source changes.
    let users: Vec<String> = w.rt.block_on(async {
        let mut c = w.source.db.connect(Some(DB)).await.expect("source");
        c.query_drop(
            "INSERT INTO posts (author_id, title, body, status, views, rating, created) VALUES \
               (1, 'added one', 'x', 'draft', 0, NULL, '2026-12-01 10:00:00'), \
               (1, 'added two', 'y', 'published', 3, 4.5, '2026-12-01 10:00:01'), \
               (2, 'added three', 'z', 'trash', 9, 1.25, '2026-12-01 10:00:02');
             UPDATE posts SET title = 'changed five' WHERE id = 5;
             UPDATE posts SET views = views + 1000 WHERE id = 100;
             DELETE FROM posts WHERE id IN (7, 50);
             UPDATE counters SET touched = 41 WHERE name = 'two';
             DROP TRIGGER counters_ai;
             CREATE TRIGGER counters_ai AFTER INSERT ON counters FOR EACH ROW
               INSERT INTO counters_log (counter_name) VALUES (CONCAT('new:', NEW.name));
             INSERT INTO counters (name) VALUES ('seven');
             INSERT INTO nopk VALUES ('added', 2, 'a row of a table without a key');
             UPDATE f_versioned SET v = 'changed' WHERE id = 3;
             CREATE TABLE added_t (id INT NOT NULL PRIMARY KEY, v VARCHAR(10) NULL) ENGINE=InnoDB;
             INSERT INTO added_t VALUES (1, 'a'), (2, NULL), (3, 'c');
             ALTER TABLE counter_notes ADD COLUMN extra INT NULL DEFAULT 7;
             DROP TABLE types;
             CREATE OR REPLACE VIEW counters_view AS SELECT id, LOWER(name) AS shout FROM counters;",
        )
        .await
        .expect("change the source");
        let hosts: Vec<String> = c
            .query("SELECT Host FROM mysql.user WHERE User = 'jdoe_ftp_u'")
            .await
            .expect("hosts");
        for h in &hosts {
            c.query_drop(format!(
                "ALTER USER 'jdoe_ftp_u'@'{h}' IDENTIFIED BY 'a-new-password-9'"
            ))
            .await
            .expect("new password");
        }
        hosts
    });
    assert!(!users.is_empty());

    let changed = resync(&w, &id);
    assert_same(&w);
    let reports = caught_up(&w, &changed);
    let r = &reports[0];
    assert_eq!(
        names(r, "copied_whole"),
        [
            "added_t (it is new)",
            "counter_notes (its definition changed)"
        ],
        "{r}"
    );
    assert_eq!(names(r, "dropped"), ["types"], "{r}");
    // posts: the inserted rows (one or two blocks), two updated, two
    // deleted; counters: an update and an insert; counters_log (MyISAM):
    // the trigger's row; nopk and f_versioned compared whole: one each.
    let blocks = number(r, "blocks_copied");
    assert!((5..=11).contains(&blocks), "{blocks} blocks copied: {r}");
    let rows = number(r, "rows_copied");
    assert!(rows >= 12, "{r}");
    assert!(
        rows < total_rows / 3,
        "{rows} of {total_rows} rows copied again: {r}"
    );
    assert!(number(r, "rows_kept") > total_rows / 2, "{r}");
    // The report says it per database.
    let report = w.report(&changed);
    assert!(
        report.contains(&format!("<copied-blocks>{blocks}</copied-blocks>"))
            && report.contains(&format!("<copied-rows>{rows}</copied-rows>"))
            && report.contains(&format!("<bytes>{}</bytes>", number(r, "bytes_copied"))),
        "{report}"
    );
    assert!(number(r, "bytes_copied") > 0, "{r}");
    // The new password works on the destination, the old one no more.
    w.rt.block_on(async {
        let dst = &w.dest.db_servers[0];
        let mut c = dst
            .connect_as("jdoe_ftp_u", "a-new-password-9", Some(DB))
            .await
            .expect("the new password logs in");
        let n: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM posts")
            .await
            .expect("select");
        assert!(n.unwrap_or(0) > 0);
        let _ = c.disconnect().await;
        let old = w
            .source
            .model
            .domains
            .iter()
            .flat_map(|d| &d.databases)
            .find(|d| d.name == DB)
            .and_then(|d| d.users.first().map(|u| u.1.clone()))
            .expect("a user");
        assert!(dst.connect_as("jdoe_ftp_u", &old, Some(DB)).await.is_err());
    });
}

/// Holds a first copy of jdoe's database mid-way and ends its connections
/// on the destination: the scratch copy of `nopk` (four rows, loaded among
/// the last) is locked as soon as it exists, so every other table loads
/// and verifies and the load of nopk waits; then a row changes on the
/// source and every connection of the copy is ended. Answers the rows
/// committed in the scratch database then.
fn interrupt_copy(w: &World) -> u64 {
    let dst = &w.dest.db_servers[0];
    let t = Instant::now();
    w.rt.block_on(async {
        let mut lock = dst.connect(None).await.expect("destination");
        let stage = loop {
            assert!(t.elapsed() < Duration::from_secs(120), "the copy never got under way");
            let stage: Option<String> = lock
                .query_first("SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'hostmig\\_%' AND TABLE_NAME = 'nopk'")
                .await
                .expect("tables");
            if let Some(stage) = stage {
                break stage;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        lock.query_drop(format!("LOCK TABLES `{stage}`.nopk READ"))
            .await
            .expect("lock");
        let mut c = dst.connect(None).await.expect("destination");
        loop {
            assert!(t.elapsed() < Duration::from_secs(120), "nopk was never loaded");
            let waiting: Option<u64> = c
                .query_first("SELECT ID FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table%lock' AND INFO LIKE '%nopk%'")
                .await
                .expect("processes");
            if waiting.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut src = w.source.db.connect(Some(DB)).await.expect("source");
        src.query_drop("UPDATE posts SET views = views + 1 WHERE id = 3")
            .await
            .expect("change");
        let tables: Vec<String> = c
            .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE != 'SEQUENCE'", (&stage,))
            .await
            .expect("tables");
        let mut committed = 0u64;
        for table in tables.iter().filter(|t| *t != "nopk") {
            let n: Option<u64> = c
                .query_first(format!("SELECT COUNT(*) FROM `{stage}`.`{table}`"))
                .await
                .expect("count");
            committed += n.unwrap_or(0);
        }
        let ids: Vec<u64> = c
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE ID != CONNECTION_ID() AND User = 'root' AND COMMAND != 'Daemon'")
            .await
            .expect("processes");
        let own = lock.id() as u64;
        for i in ids.iter().filter(|i| **i != own) {
            let _ = c.query_drop(format!("KILL {i}")).await;
        }
        lock.query_drop("UNLOCK TABLES").await.expect("unlock");
        committed
    })
}

/// A first copy whose connections are ended mid-way resumes from its
/// scratch database: every row is either kept (its block compared equal
/// there) or copied again, never both; what was loaded and verified
/// before the interruption is kept, but for a block changed on the source
/// meanwhile.
#[test]
fn an_interrupted_copy_resumes_from_what_it_had_verified() {
    let w = World::new(Profile::Small, "");
    let id = w
        .start(&jdoe_client("<domain><name>jdoe.example</name></domain>"))
        .expect("started");
    let committed = interrupt_copy(&w);
    assert!(committed > 100, "{committed}");
    // While it waits for its retry (2 s by default), the status says so.
    let t = Instant::now();
    let retrying = loop {
        let status = w.status(&id);
        if status.contains("retrying (1 of 5) after: ") || status.contains("<finished>") {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        retrying.contains("while copying database jdoe_ftp_db of jdoe.example"),
        "{retrying}"
    );
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    assert_same(&w);
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
        .expect("event log");
    let report = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|e| {
            e.get("event")?
                .get("report")
                .filter(|r| r.get("resumed").is_some())
                .cloned()
        })
        .expect("the database's report");
    let resumed = report["resumed"].as_array().expect("resumed");
    assert!(!resumed.is_empty(), "the copy did not resume: {report}");
    let r = &resumed[resumed.len() - 1];
    // Every row of the database (history rows included, sequences not)
    // was kept or copied by the resume, exactly once.
    let total: u64 = w.rt.block_on(async {
        let mut c = w.source.db.connect(None).await.expect("source");
        let sums = hostmig::db::checksums(&mut c, DB).await.expect("checksums");
        let sequences: Vec<String> = c
            .query(format!("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}' AND TABLE_TYPE = 'SEQUENCE'"))
            .await
            .expect("sequences");
        sums.iter()
            .filter(|(t, _)| !sequences.contains(t))
            .map(|(_, s)| s.rows)
            .sum()
    });
    let (kept, copied) = (number(r, "rows_kept"), number(r, "rows_copied"));
    assert_eq!(kept + copied, total, "{r}");
    // Copied again: nopk (never loaded), the changed block of posts, and
    // what the kill caught unverified (a MyISAM table keeps the part of a
    // load it got); everything else that had been verified was kept.
    let blocks = number(r, "blocks_copied");
    assert!((2..=4).contains(&blocks), "{r}");
    // A copied block holds at most twice BLOCK_ROWS rows (a larger one is
    // split again); nopk is copied whole (4 rows).
    let most = 4 + (blocks - 1) * 2 * hostmig::db::catchup::BLOCK_ROWS;
    assert!(copied <= most, "{copied} rows copied, at most {most}: {r}");
    assert!(
        kept + most >= committed,
        "{kept} rows kept, {committed} were verified before: {r}"
    );
}

/// `finish` during a retry's wait (a minute here) stops the migration at
/// once, and neither the scratch database nor the database stays.
#[test]
fn finish_during_a_retrys_wait_stops_at_once_and_leaves_nothing() {
    let w = World::new(
        Profile::Small,
        "\n[migrations]\nretry_first_delay_s = 60\nretry_max_delay_s = 60\n",
    );
    let id = w
        .start(&jdoe_client("<domain><name>jdoe.example</name></domain>"))
        .expect("started");
    interrupt_copy(&w);
    let t = Instant::now();
    loop {
        let status = w.status(&id);
        if status.contains("retrying (1 of 5) after: ") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = finish(&w, &id);
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    let left = |w: &World| -> Vec<String> {
        w.rt.block_on(async {
            let mut c = w.dest.db_servers[0].connect(None).await.expect("destination");
            c.query(format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'hostmig\\_%' OR SCHEMA_NAME = '{DB}'"))
                .await
                .expect("databases")
        })
    };
    let t = Instant::now();
    while !left(&w).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left(&w), Vec::<String>::new(), "left on the destination");
}
