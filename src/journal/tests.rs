use super::*;
use crate::transfer::conf::{Rewrites, Stamp};
use std::collections::HashSet;

#[test]
fn creates_the_schema_once_and_refuses_newer_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    drop(open(&path).expect("first open"));
    drop(open(&path).expect("second open upgrades nothing"));
    let conn = Connection::open(&path).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    assert!(matches!(open(&path), Err(JournalError::TooNew { .. })));
}

#[test]
fn trees_rewrites_and_deployed_domains_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = open(&dir.path().join("journal.sqlite")).expect("open");
    let mut ctx = Context::new();
    let path = "/var/www/vhosts/a.example".to_owned();
    j.handle(
        RecordTree {
            path: path.clone(),
            domain: "a.example".into(),
            migration_id: 3,
        },
        &mut ctx,
    )
    .expect("tree");
    let known = j
        .handle(
            KnownTrees(vec![path.clone(), "/elsewhere".into()]),
            &mut ctx,
        )
        .expect("known");
    assert_eq!(known, HashSet::from([path.clone()]));
    assert_eq!(
        j.handle(
            LoadTreesOf(vec!["a.example".into(), "b.example".into()]),
            &mut ctx
        )
        .expect("trees"),
        [("a.example".to_owned(), path.clone())]
    );
    let mut rewrites = Rewrites::new();
    rewrites.insert(
        b"conf/caf\xe9".to_vec(),
        Stamp {
            size: 10,
            mtime: 20,
        },
    );
    j.handle(
        SaveRewrites {
            path: path.clone(),
            rewrites: rewrites.clone(),
        },
        &mut ctx,
    )
    .expect("save");
    assert_eq!(
        j.handle(LoadRewrites(path), &mut ctx).expect("load"),
        rewrites
    );
    for d in ["b.example", "a.example", "a.example"] {
        j.handle(
            RecordDeployed {
                migration_id: 3,
                domain: d.into(),
            },
            &mut ctx,
        )
        .expect("deployed");
    }
    assert_eq!(
        j.handle(LoadDeployed(3), &mut ctx).expect("load"),
        ["a.example", "b.example"]
    );
}

#[test]
fn reports_are_kept_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = open(&dir.path().join("journal.sqlite")).expect("open");
    let mut ctx = Context::new();
    assert_eq!(j.handle(LoadReport(5), &mut ctx).expect("load"), None);
    for text in ["{\"a\":1}", "{\"a\":2}"] {
        j.handle(
            SaveReport {
                migration_id: 5,
                report: text.into(),
            },
            &mut ctx,
        )
        .expect("save");
    }
    assert_eq!(
        j.handle(LoadReport(5), &mut ctx).expect("load").as_deref(),
        Some("{\"a\":2}")
    );
}

#[test]
fn an_interrupted_migration_keeps_its_request_progress_and_scratch_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = open(&dir.path().join("journal.sqlite")).expect("open");
    let mut ctx = Context::new();
    assert_eq!(j.handle(LoadResumable(9), &mut ctx).expect("load"), None);
    j.handle(
        RecordRequest {
            migration_id: 9,
            request: "{\"kind\":\"start\"}".into(),
            total: 12,
        },
        &mut ctx,
    )
    .expect("request");
    for at in [100, 200] {
        j.handle(
            RecordBegan {
                migration_id: 9,
                at,
            },
            &mut ctx,
        )
        .expect("began");
    }
    for completed in [5, 3] {
        j.handle(
            RecordSteps {
                migration_id: 9,
                completed,
            },
            &mut ctx,
        )
        .expect("steps");
    }
    j.handle(
        RecordDeployedClient {
            migration_id: 9,
            login: "jdoe".into(),
        },
        &mut ctx,
    )
    .expect("client");
    j.handle(
        RecordDeployed {
            migration_id: 9,
            domain: "a.example".into(),
        },
        &mut ctx,
    )
    .expect("domain");
    let object = |kind, name: &str, of: &str| RecordDbObject {
        migration_id: 9,
        domain: "b.example".into(),
        server: "localhost:3306".into(),
        kind,
        name: name.into(),
        of_database: of.into(),
    };
    j.handle(object(DbObjectKind::Scratch, "hostmig_9_0", "wp"), &mut ctx)
        .expect("scratch");
    j.handle(object(DbObjectKind::Database, "wp", ""), &mut ctx)
        .expect("database");
    let r = j
        .handle(LoadResumable(9), &mut ctx)
        .expect("load")
        .expect("known");
    assert_eq!(r.request, "{\"kind\":\"start\"}");
    assert_eq!(r.began_at, Some(100), "the first run's start is kept");
    assert_eq!((r.total, r.completed), (12, 5), "steps never go down");
    assert_eq!(r.clients, vec!["jdoe".to_owned()]);
    assert_eq!(r.domains, vec!["a.example".to_owned()]);
    assert_eq!(
        r.scratches,
        vec![(
            "localhost:3306".to_owned(),
            "wp".to_owned(),
            "hostmig_9_0".to_owned()
        )]
    );
    // Going on keeps the scratch databases; abandoning drops them too.
    let unkept = |j: &mut Journal, ctx: &mut Context<Journal>, scratch| {
        j.handle(
            LoadUnkeptDbObjects {
                migration_id: 9,
                scratch,
            },
            ctx,
        )
        .expect("unkept")
        .into_iter()
        .map(|(_, _, name)| name)
        .collect::<Vec<_>>()
    };
    assert_eq!(unkept(&mut j, &mut ctx, false), vec!["wp".to_owned()]);
    assert_eq!(
        unkept(&mut j, &mut ctx, true),
        vec!["wp", "hostmig_9_0"],
        "by kind: database, scratch"
    );
    j.handle(
        ForgetDbObjects {
            migration_id: 9,
            server: "localhost:3306".into(),
            scratch: false,
        },
        &mut ctx,
    )
    .expect("forget");
    assert_eq!(unkept(&mut j, &mut ctx, true), vec!["hostmig_9_0"]);
}

#[test]
fn an_abandoned_migration_finds_the_trees_no_migration_deployed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = open(&dir.path().join("journal.sqlite")).expect("open");
    let mut ctx = Context::new();
    for (path, domain, id) in [
        ("/v/a.example", "a.example", 4),
        ("/v/b.example", "b.example", 4),
        ("/v/c.example", "c.example", 5),
    ] {
        j.handle(
            RecordTree {
                path: path.into(),
                domain: domain.into(),
                migration_id: id,
            },
            &mut ctx,
        )
        .expect("tree");
    }
    // b.example was deployed by an earlier migration (4 resynced it).
    j.handle(
        RecordDeployed {
            migration_id: 2,
            domain: "b.example".into(),
        },
        &mut ctx,
    )
    .expect("deployed");
    let left = j.handle(LoadUndeployedTrees(4), &mut ctx).expect("load");
    assert_eq!(left, vec!["/v/a.example".to_owned()]);
    j.handle(ForgetTree("/v/a.example".into()), &mut ctx)
        .expect("forget");
    assert!(j
        .handle(LoadUndeployedTrees(4), &mut ctx)
        .expect("load")
        .is_empty());
}
