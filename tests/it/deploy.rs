//! Records and remapping: accounts read from the sandbox source, planned,
//! and written into the sandbox destination, compared row by row with ids
//! resolved to names.

use std::collections::BTreeMap;

use hostmig::migration::plan::{self, Busy};
use hostmig::migration::prepare::{destination_facts, source_facts};
use hostmig::migration::refusal::Refusal;
use hostmig::migration::request::StartRequest;
use hostmig::panel::deploy;
use hostmig::panel::destination;
use hostmig::panel::source;
use hostmig::remap::Remap;
use hostmig::rpc::packet::{decode, Operation, Operator};
use hostmig::sandbox::compare;
use hostmig::sandbox::Profile;
use mysql_async::prelude::Queryable;

use crate::harness::sandbox::rt;

fn start(selection: &str) -> StartRequest {
    let body = format!(
        "<packet><migration><start><host>127.0.0.1</host><login>root</login><password/>\
         <destination-host-directory/><selected-objects>{selection}</selected-objects></start></migration></packet>"
    );
    let packet = decode(body.as_bytes()).expect("valid packet");
    let Operator::Migration(ops) = &packet.operators[0];
    match &ops[0] {
        Operation::Start(s) => (**s).clone(),
        other => panic!("not a start: {other:?}"),
    }
}

fn ip(kind: &str, old: &str, new: &str) -> String {
    format!("<ip><old><ip-type>{kind}</ip-type><ip-address>{old}</ip-address></old><new><ip-type>{kind}</ip-type><ip-address>{new}</ip-address></new></ip>")
}

/// A source dump line as the destination should have it: whole addresses
/// mapped, source roots moved, owner renamed.
fn expected_line(
    line: &str,
    map: &BTreeMap<String, String>,
    roots: &[(String, String)],
    owner: Option<(&str, &str)>,
) -> String {
    let map: BTreeMap<&str, &str> = map.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    compare::expected_panel(&[line.to_owned()], &map, roots, ("", ""), owner).remove(0)
}

#[test]
fn migrated_records_equal_the_source_modulo_ids_owners_paths_and_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (src, dst) = crate::harness::sandbox::start_both(&rt, dir.path(), Profile::Tiny, 31, 1);
    let roots = vec![
        (
            src.layout.vhosts.display().to_string(),
            dst.vhosts.display().to_string(),
        ),
        (
            src.layout.mailnames.display().to_string(),
            dst.mailnames.display().to_string(),
        ),
    ];
    rt.block_on(async {
        let mut s = src.db.connect(Some("psa")).await.expect("source panel");
        let mut d = dst.db_servers[0].connect(Some("psa")).await.expect("destination panel");
        assert_eq!(hostmig::panel::schema::state(&mut d).await.expect("schema"), hostmig::panel::schema::SchemaState::Current);

        // A client migration with both its domains and its pool remapped.
        let request = start(&format!(
            "<migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name>{}{}\
             <domain><name>jdoe.example</name></domain><domain><name>xn--bcher-kva.example</name></domain></client></migrate-clients>",
            ip("shared", "192.0.2.10", "198.51.100.4"),
            ip("exclusive", "192.0.2.20", "203.0.113.5"),
        ));
        let mut reader = source::Reader::open(&mut s).await.expect("catalog");
        let (clients, _) = reader.clients(&["jdoe".into()]).await.expect("client");
        let (domains, _) = reader.domains(&clients[0].domains).await.expect("domains");
        drop(reader);
        let mut writer = deploy::Writer::open(&panel_url(&dst)).await.expect("writer");
        let mut facts = destination_facts(destination::inventory(&mut d).await.expect("facts"), &[]);
        facts.db_servers = vec![default_server()];
        let plan = plan::build(&request, &source_facts(&clients, &domains), &facts, &Busy::new()).expect("plan");
        let path_roots = vec![(src.layout.vhosts.clone(), dst.vhosts.clone()), (src.layout.mailnames.clone(), dst.mailnames.clone())];
        let rw = Remap { addresses: plan.addresses.clone(), roots: path_roots.clone() };
        writer.client(&rw.client(clients[0].clone())).await.expect("deploy client");
        for domain in &domains {
            writer.domain(&rw.domain(domain.clone()), "jdoe", &[]).await.expect("deploy domain");
        }
        let expected: Vec<String> = compare::panel_client(&mut s, "jdoe")
            .await
            .expect("source dump")
            .iter()
            .filter(|l| !l.contains(" database "))
            .map(|l| expected_line(l, &plan.addresses, &roots, None))
            .collect();
        let mut expected = expected;
        expected.sort();
        let actual = compare::panel_client(&mut d, "jdoe").await.expect("destination dump");
        assert_eq!(actual, expected);
        // The longer address that shares a prefix stays as it was.
        let legacy: Vec<String> = d
            .query("SELECT val FROM dns_recs WHERE host = 'legacy.jdoe.example.'")
            .await
            .expect("legacy");
        assert_eq!(legacy, ["192.0.2.100"]);
        let a_records: Vec<String> = d.query("SELECT DISTINCT val FROM dns_recs WHERE type = 'A' AND host LIKE '%jdoe.example.'").await.expect("a");
        assert!(!a_records.contains(&"192.0.2.10".to_owned()), "{a_records:?}");

        // A domain migration to another client: admin's site goes to jdoe.
        let request = start(&format!(
            "<migrate-domains><target-owner>jdoe</target-owner><domain><name>admin-site.example</name>{}</domain></migrate-domains>",
            ip("shared", "192.0.2.100", "198.51.100.5")
        ));
        let (domains, _) = source::Reader::open(&mut s).await.expect("catalog").domains(&["admin-site.example".into()]).await.expect("domain");
        let mut facts = destination_facts(destination::inventory(&mut d).await.expect("facts"), &[]);
        facts.db_servers = vec![default_server()];
        let plan = plan::build(&request, &source_facts(&[], &domains), &facts, &Busy::new()).expect("plan");
        let rw = Remap { addresses: plan.addresses.clone(), roots: path_roots };
        writer.domain(&rw.domain(domains[0].clone()), "jdoe", &[]).await.expect("deploy domain");
        let mut expected: Vec<String> = compare::panel_domain(&mut s, "admin-site.example")
            .await
            .expect("dump")
            .iter()
            .filter(|l| !l.contains(" database "))
            .map(|l| expected_line(l, &plan.addresses, &roots, Some(("admin", "jdoe"))))
            .collect();
        expected.sort();
        assert_eq!(compare::panel_domain(&mut d, "admin-site.example").await.expect("dump"), expected);

        // Planning the same client again is refused now that it exists.
        let mut facts = destination_facts(destination::inventory(&mut d).await.expect("facts"), &[]);
        facts.db_servers = vec![default_server()];
        let again = plan::build(&start("<migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name></client></migrate-clients>"),
            &source_facts(&clients, &[]), &facts, &Busy::new());
        assert_eq!(again.err(), Some(Refusal::ClientExists { login: "jdoe".into() }));
    });
}

/// login, limits_id, perm_id, pool_id of a client row.
type ClientSets = (String, Option<u64>, Option<u64>, Option<u64>);

#[test]
fn concurrent_deploys_never_share_a_set_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (src, dst) = crate::harness::sandbox::start_both(&rt, dir.path(), Profile::Tiny, 32, 1);
    rt.block_on(async {
        let mut s = src.db.connect(Some("psa")).await.expect("source panel");
        let logins: Vec<String> = ["jdoe", "mrsmith", "nodomains"].iter().map(|l| l.to_string()).collect();
        let (clients, _) = source::Reader::open(&mut s).await.expect("catalog").clients(&logins).await.expect("clients");
        let map: BTreeMap<String, String> = [
            ("192.0.2.10", "198.51.100.4"),
            ("192.0.2.20", "203.0.113.5"),
            ("192.0.2.100", "198.51.100.5"),
            ("192.0.2.21", "203.0.113.9"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let rw = Remap { addresses: map.clone(), roots: Vec::new() };
        let remapped: Vec<_> = clients.iter().map(|c| rw.client(c.clone())).collect();
        let mut writers = Vec::new();
        for _ in &clients {
            writers.push(deploy::Writer::open(&panel_url(&dst)).await.expect("writer"));
        }
        let deploys = writers.iter_mut().zip(&remapped).map(|(w, c)| w.client(c));
        for result in futures_util::future::join_all(deploys).await {
            result.expect("deploy");
        }
        let mut d = dst.db_servers[0].connect(Some("psa")).await.expect("destination");
        let sets: Vec<ClientSets> = d
            .query("SELECT login, limits_id, perm_id, pool_id FROM clients WHERE login <> 'admin' ORDER BY login")
            .await
            .expect("sets");
        assert_eq!(sets.len(), 3);
        let limit_ids: std::collections::BTreeSet<_> = sets.iter().map(|r| r.1).collect();
        assert_eq!(limit_ids.len(), 3, "limits sets shared: {sets:?}");
        let perm_ids: Vec<_> = sets.iter().filter_map(|r| r.2).collect();
        assert_eq!(perm_ids.len(), 2, "nodomains keeps perm_id NULL: {sets:?}");
        assert_ne!(perm_ids[0], perm_ids[1]);
        let pools: Vec<_> = sets.iter().filter_map(|r| r.3).collect();
        assert_eq!(pools.len(), 2);
        assert_ne!(pools[0], pools[1]);
        for login in &logins {
            let mut expected: Vec<String> = compare::panel_client(&mut s, login)
                .await
                .expect("dump")
                .iter()
                .filter(|l| !l.starts_with("domain "))
                .map(|l| expected_line(l, &map, &[], None))
                .collect();
            expected.sort();
            assert_eq!(compare::panel_client(&mut d, login).await.expect("dump"), expected, "{login}");
        }
    });
}

/// The destination's panel database, as hostmig's config names it.
fn panel_url(dst: &hostmig::sandbox::Destination) -> url::Url {
    url::Url::parse(&dst.db_servers[0].root_url(Some("psa"))).expect("url")
}

/// A default MySQL server, so plans of domains with databases build.
fn default_server() -> hostmig::migration::plan::TargetServer {
    hostmig::migration::plan::TargetServer {
        host: "localhost".into(),
        port: 3306,
        kind: hostmig::db::DbKind::Mysql,
        default: true,
    }
}
