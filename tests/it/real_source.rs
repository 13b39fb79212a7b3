//! A source as it really is: a panel written by hand from PANEL.md's "Real
//! sources" (`tests/fixtures/real-source.sql`), not by the generator, with
//! NULLs, every enum word, columns missing and extra, latin1 tables, and
//! rows for every "Not migrated yet" item. Its client and domain migrations
//! deploy every value, the report names what stayed behind, a value the
//! destination cannot hold fails its object and leaves nothing, a name no
//! file system may see is refused, and a destination made by an earlier
//! hostmig is upgraded before it receives the source.

use std::collections::BTreeMap;

use hostmig::sandbox::compare;
use hostmig::sandbox::{Destination, Source};
use mysql_async::prelude::Queryable;

use crate::harness::sandbox::rt;
use crate::harness::world::{clients, domains, ip, World};
use crate::harness::{self, unescape};

const PANEL: &str = include_str!("../fixtures/real-source.sql");
const PANEL_V1: &str = include_str!("../fixtures/panel-v1.sql");

/// The customer database of zoe.example and its user, and a domain whose
/// mail name no file system may see.
const SETUP: &str = "
CREATE DATABASE zoe_wp CHARACTER SET utf8mb4;
CREATE TABLE zoe_wp.wp_posts (ID bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, post_title text, post_date datetime);
INSERT INTO zoe_wp.wp_posts (post_title, post_date) VALUES ('Hello', '2011-09-15 10:00:00'), ('Grüße', '0000-00-00 00:00:00');
CREATE USER 'zoe_wpu'@'%' IDENTIFIED BY 'db-user-pw';
GRANT ALL PRIVILEGES ON zoe_wp.* TO 'zoe_wpu'@'%';
INSERT INTO psa.domains (id, name, displayName, cl_id, htype) VALUES (9, 'evil.example', 'evil.example', 3, 'none');
INSERT INTO psa.mail (dom_id, mail_name, account_id) VALUES (9, '../../etc', 3);
";

/// zoe's pool and both of its domains' addresses, mapped.
const ZOE_MAP: &[(&str, &str)] = &[
    ("192.0.2.10", "198.51.100.4"),
    ("192.0.2.20", "203.0.113.5"),
];

/// A hand-written source, with content trees for its hosting domains, and
/// a destination (`prepare` may change it before hostmig starts).
fn world(prepare: impl FnOnce(&tokio::runtime::Runtime, &Destination)) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (source, dest) = rt.block_on(async {
        (
            Source::start_handwritten(&dir.path().join("src"), PANEL, SETUP)
                .await
                .expect("hand-written source"),
            Destination::start(&dir.path().join("dst"), 1)
                .await
                .expect("destination"),
        )
    });
    for (path, data) in [
        ("zoe.example/httpdocs/index.html", "<h1>Zoë</h1>\n"),
        (
            "zoe.example/conf/vhost.conf",
            "<VirtualHost 192.0.2.10:80>\n",
        ),
        ("legacy.example/httpdocs/index.php", "<?php echo 1;\n"),
        ("broken.example/httpdocs/big.bin", "not copied\n"),
    ] {
        let file = source.layout.vhosts.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        std::fs::write(&file, data).expect("content");
    }
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(
            source
                .layout
                .mailnames
                .join("zoe.example/info/Maildir")
                .join(d),
        )
        .expect("maildir");
    }
    prepare(&rt, &dest);
    World::of(rt, dir, source, dest, "")
}

fn zoe() -> String {
    clients(&format!(
        "<client><name>zoe</name>{}{}<domain><name>zoe.example</name></domain>\
         <domain><name>zoe-fwd.example</name></domain><domain><name>zoe-slave.example</name></domain></client>",
        ip("shared", ZOE_MAP[0].0, ZOE_MAP[0].1),
        ip("exclusive", ZOE_MAP[1].0, ZOE_MAP[1].1),
    ))
}

/// The panel rows of a client or a domain on both sides, as the
/// destination should hold them: the columns both panels have, the
/// source's mapped.
fn dumps(
    w: &World,
    client: Option<&str>,
    domain: Option<&str>,
    map: &[(&str, &str)],
    owner: Option<(&str, &str)>,
) -> (Vec<String>, Vec<String>) {
    w.rt.block_on(async {
        let mut s = w
            .source
            .db
            .connect(Some("psa"))
            .await
            .expect("source panel");
        let mut d = w.dest.db_servers[0]
            .connect(Some("psa"))
            .await
            .expect("destination panel");
        let common = compare::common_columns(&mut s, &mut d)
            .await
            .expect("columns");
        let keep = |t: &str, c: &str| common.contains(&(t.to_owned(), c.to_owned()));
        let (src, dst) = match (client, domain) {
            (Some(login), _) => (
                compare::panel_client_with(&mut s, login, &keep).await,
                compare::panel_client_with(&mut d, login, &keep).await,
            ),
            (_, Some(name)) => (
                compare::panel_domain_with(&mut s, name, &keep).await,
                compare::panel_domain_with(&mut d, name, &keep).await,
            ),
            _ => unreachable!("a client or a domain"),
        };
        let map: BTreeMap<&str, &str> = map.iter().copied().collect();
        let roots = vec![(
            w.source.layout.vhosts.display().to_string(),
            w.dest.vhosts.display().to_string(),
        )];
        let server = (
            format!("localhost:{}", w.source.db.port),
            format!("localhost:{}", w.dest.db_servers[0].port),
        );
        let expected = compare::expected_panel(
            &src.expect("source dump"),
            &map,
            &roots,
            (&server.0, &server.1),
            owner,
        );
        (expected, dst.expect("destination dump"))
    })
}

/// Four text columns, any NULL.
type Texts4 = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn sql<T: mysql_async::prelude::FromRow + Send + 'static>(w: &World, query: &str) -> Vec<T> {
    w.rt.block_on(async {
        let mut d = w.dest.db_servers[0]
            .connect(Some("psa"))
            .await
            .expect("destination panel");
        d.query(query).await.expect("query")
    })
}

/// The `<warning>`s of an object of a report.
fn warnings(report: &str, name: &str) -> Vec<String> {
    let at = report
        .find(&format!("<name>{name}</name>"))
        .unwrap_or_else(|| panic!("{name} is not in the report: {report}"));
    let object = &report[at..report[at..]
        .find("</object>")
        .map_or(report.len(), |e| at + e)];
    object
        .match_indices("<warning>")
        .filter_map(|(i, _)| {
            let rest = &object[i + 9..];
            Some(unescape(&rest[..rest.find("</warning>")?]))
        })
        .collect()
}

#[test]
fn a_hand_written_source_arrives_whole_and_the_report_names_what_stayed_behind() {
    let w = world(|_, _| {});
    let id = w.start(&zoe()).expect("zoe started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    let (expected, actual) = dumps(&w, Some("zoe"), None, ZOE_MAP, None);
    assert_eq!(
        actual, expected,
        "client zoe and its domains arrived as the source has them"
    );
    // A domain of the administrator, to the administrator.
    let legacy_map = [("192.0.2.100", "198.51.100.5")];
    let legacy = w
        .start(&domains(
            "admin",
            &format!(
                "<domain><name>legacy.example</name>{}</domain>",
                ip("shared", legacy_map[0].0, legacy_map[0].1)
            ),
        ))
        .expect("legacy started");
    assert!(w.wait(&legacy).contains("<success/>"));
    let (expected, actual) = dumps(&w, None, Some("legacy.example"), &legacy_map, None);
    assert_eq!(
        actual, expected,
        "legacy.example arrived as the source has it"
    );

    // Values the generator never makes, read back by hand.
    let zoe: Vec<Texts4> = sql(
        &w,
        "SELECT pname, cname, phone, CAST(cr_date AS CHAR) FROM clients WHERE login = 'zoe'",
    );
    assert_eq!(
        zoe,
        [(
            Some("Zoë Müller".to_owned()),
            Some("Zoe Ltd   ".to_owned()),
            None,
            Some("0000-00-00".to_owned())
        )],
        "latin1 bytes, trailing spaces, NULL and a zero date"
    );
    let sizes: Vec<(String, Option<u64>)> =
        sql(&w, "SELECT name, real_size FROM domains ORDER BY name");
    assert!(
        sizes.contains(&("zoe.example".to_owned(), Some(73_400_320))),
        "{sizes:?}"
    );
    assert!(
        sizes.contains(&("zoe-fwd.example".to_owned(), None)),
        "{sizes:?}"
    );
    let alias_zone: Vec<String> = sql(
        &w,
        "SELECT r.val FROM dns_recs r JOIN domainaliases a ON a.dns_zone_id = r.dns_zone_id WHERE a.name = 'zoe-alias.example' AND r.type = 'A'",
    );
    assert_eq!(
        alias_zone,
        ["198.51.100.4"],
        "the alias's own zone, remapped"
    );
    let words: Vec<String> = sql(
        &w,
        "SELECT DISTINCT CAST(type AS CHAR) FROM dns_recs ORDER BY 1",
    );
    for word in ["AAAA", "CAA", "DS", "AXFR", "master", "none"] {
        assert!(words.contains(&word.to_owned()), "{word}: {words:?}");
    }
    // Columns the source lacks take the destination's defaults.
    let defaults: Vec<(Option<String>, Option<u64>, Option<i64>)> = sql(
        &w,
        "SELECT c.locale, u.quota, h.max_connection FROM clients c JOIN domains d ON d.cl_id = c.id \
         JOIN hosting h ON h.dom_id = d.id JOIN sys_users u ON u.id = h.sys_user_id WHERE c.login = 'zoe'",
    );
    assert_eq!(defaults, [(Some("en-US".to_owned()), Some(0), Some(-1))]);

    // The report, kept in the journal, names what stayed behind.
    let report = w.report(&id);
    assert!(report.contains("<outcome>success</outcome>"), "{report}");
    let zoe_warnings = warnings(&report, "zoe.example");
    for expected in [
        "1 SSL certificate stayed behind",
        "the anonymous FTP settings stayed behind",
        "2 web users stayed behind",
        "1 protected directory (with their users) stayed behind",
        "1 mailing list stayed behind",
        "the autoresponder texts of alerts@zoe.example stayed behind",
        "the spam filter settings of info@zoe.example stayed behind",
        "the password of mail name info@zoe.example is encrypted with the source's own key (sym)",
        "the source's table sys_users has no column quota",
        "the source's table hosting has no column max_connection",
        "the source's table Cards has no column fax",
        "the source's table domainaliases has no column displayName",
    ] {
        assert!(
            zoe_warnings.iter().any(|w| w.contains(expected)),
            "{expected:?} is not among {zoe_warnings:#?}"
        );
    }
    let client_warnings = warnings(&report, "zoe");
    assert!(
        client_warnings
            .iter()
            .any(|w| w.contains("the password of client zoe is encrypted")),
        "{client_warnings:?}"
    );
    assert!(
        client_warnings
            .iter()
            .any(|w| w.contains("the source's table clients has no column locale")),
        "{client_warnings:?}"
    );
    assert!(
        report.contains("<kind>web</kind><outcome>copied</outcome>")
            || report.contains("<kind>web</kind>"),
        "{report}"
    );
    assert!(
        report.contains("<name>zoe_wp</name>") && report.contains("<rows>2</rows>"),
        "{report}"
    );
    let legacy_report = w.report(&legacy);
    assert!(
        warnings(&legacy_report, "legacy.example")
            .iter()
            .any(|w| w.contains("1 SSL certificate stayed behind")),
        "a Plesk 8 hosting certificate: {legacy_report}"
    );
    // The event log says so too, and the report survives finish.
    let log = std::fs::read_to_string(w.dest.state.join(format!("migrations/{id}.jsonl")))
        .expect("event log");
    assert!(
        log.contains("\"warning\":\"2 web users stayed behind"),
        "{log}"
    );
    w.exchange(&format!(
        "<finish><migration_id>{id}</migration_id></finish>"
    ));
    assert_eq!(w.report(&id), report, "the report survives finish");
    let unknown = w.exchange("<get_report><migration_id>999</migration_id></get_report>");
    assert_eq!(harness::codes(&unknown), [1013]);
}

#[test]
fn what_the_destination_cannot_hold_fails_its_object_and_leaves_nothing_of_it() {
    let w = world(|_, _| {});
    let broken = domains(
        "admin",
        &format!(
            "<domain><name>broken.example</name>{}</domain>",
            ip("shared", "192.0.2.100", "198.51.100.5")
        ),
    );
    let before = harness::panel_dump(&w.dest.db_servers[0]);
    let id = w.start(&broken).expect("started");
    let status = w.wait(&id);
    let text = unescape(&status);
    assert!(
        text.contains("<name>broken.example</name>")
            && text.contains("writing the destination: domain broken.example: table dns_recs, column type: the source's value \"WKS\" is not one of the words the destination knows"),
        "{text}"
    );
    assert!(
        !w.dest.vhosts.join("broken.example").exists(),
        "none of its content was copied"
    );
    let names: Vec<String> = sql(&w, "SELECT name FROM domains WHERE name = 'broken.example'");
    assert!(names.is_empty());
    assert_eq!(
        harness::panel_dump(&w.dest.db_servers[0]),
        before,
        "nothing of the domain reached the destination's panel"
    );
    // (Every answer, reports too, is checked against agent_output.xsd.)
    let report = w.report(&id);
    assert!(report.contains("<outcome>failed</outcome>"), "{report}");

    // A name no file system may see is refused at start, named.
    let (code, text) = w
        .start(&domains(
            "admin",
            "<domain><name>evil.example</name></domain>",
        ))
        .expect_err("refused");
    assert_eq!(code, 1019, "{text}");
    assert!(
        text.contains("mail name \"../../etc\" of domain evil.example"),
        "{text}"
    );
}

#[test]
fn a_destination_made_by_an_earlier_hostmig_is_upgraded_then_receives_the_source() {
    let w = world(|rt, dest| {
        rt.block_on(async {
            let mut c = dest.db_servers[0].connect(None).await.expect("connect");
            c.query_drop("DROP DATABASE psa; CREATE DATABASE psa CHARACTER SET utf8mb4; USE psa")
                .await
                .expect("empty panel");
            c.query_drop(PANEL_V1).await.expect("the earlier schema");
            c.query_drop(
                "INSERT INTO accounts (type, password) VALUES ('plain', 'dest-admin-panel-pw');
                 INSERT INTO clients (login, account_id, pname, cname, locale, cr_date) VALUES ('admin', 1, 'Administrator', 'Destination Hosting', 'en-US', '2024-01-01');
                 INSERT INTO clients (login, account_id, pname, cname, locale) VALUES ('earlier', 1, 'Migrated Before', '', 'de-DE');
                 INSERT INTO IP_Addresses (ip_address, type) VALUES ('198.51.100.4', 'shared'), ('198.51.100.5', 'shared'), ('203.0.113.5', 'exclusive'), ('203.0.113.9', 'exclusive');
                 INSERT INTO misc (param, val) VALUES ('def_ip_id', '1');
                 INSERT INTO dns_zone (name, serial_format, serial) VALUES ('earlier.example', 'UNIXTIME', '1700000000');",
            )
            .await
            .expect("rows of the earlier release");
        });
    });
    // hostmig upgraded the schema when it started: check is satisfied.
    assert!(w.exchange("<check/>").contains("<status>ok</status>"));
    let version: Vec<String> = sql(
        &w,
        "SELECT val FROM misc WHERE param = 'hostmig_schema_version'",
    );
    assert_eq!(version, ["2"]);
    let earlier: Vec<(String, String)> = sql(
        &w,
        "SELECT c.locale, CAST(z.serial_format AS CHAR) FROM clients c, dns_zone z WHERE c.login = 'earlier' AND z.name = 'earlier.example'",
    );
    assert_eq!(
        earlier,
        [("de-DE".to_owned(), "UNIXTIMESTAMP".to_owned())],
        "its data kept, hostmig 1's word for the serial format replaced by Plesk's"
    );
    let id = w.start(&zoe()).expect("zoe started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    let (expected, actual) = dumps(&w, Some("zoe"), None, ZOE_MAP, None);
    assert_eq!(actual, expected);
}
