use super::*;

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
