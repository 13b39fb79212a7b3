//! What `start` answers, as a client reads it: packets decoded by the
//! codec, checked by the request rules and the plan, refusals rendered by
//! this table (code and text), and the plans that pass.

use super::*;
use crate::db::DbKind;
use crate::migration::plan::{
    build, check_databases_free, Busy, DestinationFacts, Existing, Object, Plan, SourceDb,
    SourceFacts, TargetServer,
};
use crate::migration::refusal::NotReady;
use crate::migration::request::{self, IpType, StartRequest};
use crate::migration::status::ObjectKind;
use crate::rpc::packet::{decode, Operation, Operator};

/// The `start` request of a packet with this selection (and optional
/// elements before it).
fn start_request(extra: &str, selection: &str) -> StartRequest {
    let body = format!(
        "<packet><migration><start><host>192.0.2.1</host><login>root</login><password>x</password>\
         <destination-host-directory/>{extra}<selected-objects>{selection}</selected-objects></start></migration></packet>"
    );
    let packet = decode(body.as_bytes()).expect("test packet is valid");
    let Operator::Migration(ops) = &packet.operators[0];
    match &ops[0] {
        Operation::Start(s) => (**s).clone(),
        other => panic!("not a start: {other:?}"),
    }
}

/// A refusal as the wire carries it.
fn wire(refusal: Refusal) -> (u32, String) {
    let e = RpcError::from(refusal);
    (e.code.number(), e.text)
}

fn check_case(extra: &str, sel: &str, expected: Result<(), (u32, &str)>) {
    let got = request::check(&start_request(extra, sel)).map_err(wire);
    let expected = expected.map_err(|(c, t)| (c, t.to_owned()));
    assert_eq!(got, expected, "selection: {sel}");
}

const IP: &str = "<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old>\
                  <new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip>";

#[test]
fn packet_rules() {
    let dom = "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>";
    check_case("", dom, Ok(()));
    check_case("<system-type>windows</system-type>", dom, Err((1017, "Unable to start migration: Windows sources are not supported; hostmig migrates from Unix servers only")));
    check_case("", "<migrate-resellers><reseller><name>r</name></reseller></migrate-resellers>",
        Err((1017, "Unable to start migration: resellers are not supported; migrate their clients with migrate-clients")));
    check_case("", "<migrate-clients><target-owner>neo</target-owner><client><name>jdoe</name></client></migrate-clients>",
        Err((1023, "Unable to start migration: clients can only be migrated to admin, not to \"neo\"")));
    check_case("", &format!("<migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name>{IP}</client></migrate-clients>"),
        Err((1019, "cannot map shared IP 192.0.2.10 to exclusive IP 203.0.113.5")));
    check_case("", &format!("<migrate-webspaces><target-owner>admin</target-owner><webspace><name>a.example</name>{IP}</webspace></migrate-webspaces>"),
        Err((1019, "cannot map shared IP 192.0.2.10 to exclusive IP 203.0.113.5")));
    check_case("", "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name>\
        <db-server><old><host>localhost</host><port>5432</port><type>postgresql</type></old>\
        <new><host>localhost</host><port>5432</port><type>postgresql</type></new></db-server></domain></migrate-domains>",
        Err((14008, "Unable to start migration: database server localhost:5432 is of type postgresql; only mysql databases are migrated")));
}

fn request(selection: &str) -> StartRequest {
    start_request("", selection)
}

fn source() -> SourceFacts {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    SourceFacts {
        clients: [
            (
                "jdoe".to_owned(),
                s(&["jdoe.example", "xn--bcher-kva.example"]),
            ),
            ("mrsmith".to_owned(), s(&["smith-fwd.example"])),
            ("nodomains".to_owned(), vec![]),
        ]
        .into(),
        domains: [
            ("jdoe.example".to_owned(), s(&["192.0.2.10"])),
            ("xn--bcher-kva.example".to_owned(), s(&["192.0.2.10"])),
            ("smith-fwd.example".to_owned(), s(&["192.0.2.21"])),
            ("admin-site.example".to_owned(), s(&["192.0.2.100"])),
        ]
        .into(),
        pools: [
            ("jdoe".to_owned(), s(&["192.0.2.10", "192.0.2.20"])),
            ("mrsmith".to_owned(), s(&["192.0.2.100", "192.0.2.21"])),
        ]
        .into(),
        databases: [
            (
                "jdoe.example".to_owned(),
                vec![source_db("jdoe_db", "mysql", &["jdoe_u"])],
            ),
            (
                "admin-site.example".to_owned(),
                vec![source_db("pg_db", "postgresql", &[])],
            ),
        ]
        .into(),
    }
}

fn source_db(name: &str, kind: &str, users: &[&str]) -> SourceDb {
    SourceDb {
        name: name.into(),
        kind: kind.into(),
        host: "localhost".into(),
        port: if kind == "mysql" { 3306 } else { 5432 },
        users: users.iter().map(|u| u.to_string()).collect(),
    }
}

fn destination() -> DestinationFacts {
    DestinationFacts {
        client_logins: ["admin".to_owned(), "neo".to_owned()].into(),
        domains: ["taken.example".to_owned()].into(),
        ips: [
            ("198.51.100.4".to_owned(), IpType::Shared),
            ("198.51.100.5".to_owned(), IpType::Shared),
            ("203.0.113.5".to_owned(), IpType::Exclusive),
        ]
        .into(),
        db_servers: vec![
            TargetServer {
                host: "localhost".into(),
                port: 3306,
                kind: DbKind::Mysql,
                default: true,
            },
            TargetServer {
                host: "db2".into(),
                port: 3307,
                kind: DbKind::Mysql,
                default: false,
            },
        ],
    }
}

fn ip(kind: &str, old: &str, new_kind: &str, new: &str) -> String {
    format!(
        "<ip><old><ip-type>{kind}</ip-type><ip-address>{old}</ip-address></old>\
         <new><ip-type>{new_kind}</ip-type><ip-address>{new}</ip-address></new></ip>"
    )
}

fn domains(owner: &str, inner: &str) -> String {
    format!("<migrate-domains><target-owner>{owner}</target-owner>{inner}</migrate-domains>")
}

fn domain(name: &str, extra: &str) -> String {
    format!("<domain><name>{name}</name>{extra}</domain>")
}

const JDOE_IPS: &str = "<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip>\
                        <ip><old><ip-type>exclusive</ip-type><ip-address>192.0.2.20</ip-address></old><new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip>";

fn check(
    selection: &str,
    dest: &DestinationFacts,
    busy: &Busy,
    expected: Result<&str, (u32, &str)>,
) {
    let got = build(&request(selection), &source(), dest, busy).map_err(wire);
    match (got, expected) {
        (Ok(plan), Ok(summary)) => assert_eq!(summarise(&plan), summary, "{selection}"),
        (Err((code, text)), Err((want_code, want_text))) => {
            assert_eq!((code, text.as_str()), (want_code, want_text), "{selection}")
        }
        (got, want) => panic!("{selection}\n got: {got:?}\nwant: {want:?}"),
    }
}

fn summarise(plan: &Plan) -> String {
    let objects: Vec<String> = plan
        .objects
        .iter()
        .map(|o| match o {
            Object::Client { login, domains } => format!("client {login} [{}]", domains.join(" ")),
            Object::Domain { name, owner } => format!("domain {name} to {owner}"),
        })
        .collect();
    let map: Vec<String> = plan
        .addresses
        .iter()
        .map(|(o, n)| format!("{o}>{n}"))
        .collect();
    format!(
        "{}; {}; steps {}",
        objects.join(", "),
        map.join(" "),
        plan.total_steps()
    )
}

#[test]
fn plans_and_refusals() {
    let dest = destination();
    let none = Busy::new();
    let clients = |inner: &str| {
        format!("<migrate-clients><target-owner>admin</target-owner>{inner}</migrate-clients>")
    };
    let jdoe = |extra: &str| format!("<client><name>jdoe</name>{JDOE_IPS}{extra}</client>");

    check(
        &clients(&jdoe(&domain("jdoe.example", ""))),
        &dest,
        &none,
        Ok("client jdoe [jdoe.example]; 192.0.2.10>198.51.100.4 192.0.2.20>203.0.113.5; steps 3"),
    );
    check(
        &clients(&jdoe("")),
        &dest,
        &none,
        Ok("client jdoe []; 192.0.2.10>198.51.100.4 192.0.2.20>203.0.113.5; steps 2"),
    );
    check(
        &clients("<client><name>nodomains</name></client>"),
        &dest,
        &none,
        Ok("client nodomains []; ; steps 2"),
    );
    check(&clients("<client><name>jdoe</name></client>"), &dest, &none,
        Err((1018, "IP address 192.0.2.10 does not exist on the destination; map it to one of the destination's addresses")));
    check(&clients(&format!("<client><name>ghost</name></client>{}", jdoe(&domain("nope.example", "")))), &dest, &none,
        Err((1013, "Unable to start migration: the following clients do not exist on the source: ghost; the following domains do not exist on the source (or not under the client named): nope.example")));
    check(&domains("admin", &format!("{}{}", domain("ghost.example", ""), domain("nope.example", ""))), &dest, &none,
        Err((1013, "Unable to start migration: the following domains do not exist on the source: ghost.example, nope.example")));
    check(&domains("trinity", &domain("jdoe.example", "")), &dest, &none,
        Err((1023, "Unable to start migration: the target owner \"trinity\" does not exist on the destination")));
    let to_neo = domains(
        "neo",
        &domain(
            "jdoe.example",
            &ip("shared", "192.0.2.10", "shared", "198.51.100.5"),
        ),
    );
    check(
        &to_neo,
        &dest,
        &none,
        Ok("domain jdoe.example to neo; 192.0.2.10>198.51.100.5; steps 2"),
    );
    // A whole address only: 192.0.2.100 is not 192.0.2.10.
    check(&domains("admin", &domain("admin-site.example", &ip("shared", "192.0.2.10", "shared", "198.51.100.5"))), &dest, &none,
        Err((1018, "IP address 192.0.2.100 does not exist on the destination; map it to one of the destination's addresses")));

    let mut has_jdoe = destination();
    has_jdoe.client_logins.insert("jdoe".into());
    check(
        &clients(&jdoe("")),
        &has_jdoe,
        &none,
        Err((15012, "client with login \"jdoe\" already exists")),
    );
    let mut has_domain = destination();
    has_domain.domains.insert("jdoe.example".into());
    check(
        &to_neo,
        &has_domain,
        &none,
        Err((15006, "domain \"jdoe.example\" already exists")),
    );

    check(
        &domains(
            "admin",
            &domain(
                "jdoe.example",
                &ip("shared", "192.0.2.10", "shared", "203.0.113.9"),
            ),
        ),
        &dest,
        &none,
        Err((
            1018,
            "IP address 203.0.113.9 does not exist on the destination",
        )),
    );
    check(
        &domains(
            "admin",
            &domain(
                "jdoe.example",
                &ip("shared", "192.0.2.10", "shared", "203.0.113.5"),
            ),
        ),
        &dest,
        &none,
        Err((
            1019,
            "IP address 203.0.113.5 is exclusive on the destination, not shared",
        )),
    );
    check(
        &domains(
            "admin",
            &format!(
                "{}{}",
                domain(
                    "jdoe.example",
                    &ip("shared", "192.0.2.10", "shared", "198.51.100.4")
                ),
                domain(
                    "xn--bcher-kva.example",
                    &ip("shared", "192.0.2.10", "shared", "198.51.100.5")
                )
            ),
        ),
        &dest,
        &none,
        Err((
            1019,
            "IP address 192.0.2.10 is mapped to both 198.51.100.4 and 198.51.100.5; map it once",
        )),
    );

    let busy: Busy = [((ObjectKind::Domain, "jdoe.example".to_owned()), 12)].into();
    check(
        &to_neo,
        &dest,
        &busy,
        Err((
            1023,
            "domain \"jdoe.example\" is already being migrated by migration 12",
        )),
    );
    check(
        &clients(&jdoe(&domain("jdoe.example", ""))),
        &dest,
        &busy,
        Err((
            1023,
            "domain \"jdoe.example\" is already being migrated by migration 12",
        )),
    );
    // The packet's own rules still come first.
    check(
        &clients("<client><name>jdoe</name></client>")
            .replace("<target-owner>admin", "<target-owner>neo"),
        &dest,
        &none,
        Err((
            1023,
            "Unable to start migration: clients can only be migrated to admin, not to \"neo\"",
        )),
    );
}

fn db_map(old_port: u16, host: &str, port: u16) -> String {
    format!(
        "<db-server><old><host>localhost</host><port>{old_port}</port><type>mysql</type></old>\
         <new><host>{host}</host><port>{port}</port><type>mysql</type></new></db-server>"
    )
}

#[test]
fn databases_go_to_the_mapped_or_default_server_or_are_refused() {
    let ip10 = ip("shared", "192.0.2.10", "shared", "198.51.100.4");
    let plan_of = |extra: &str| {
        build(
            &request(&domains(
                "admin",
                &domain("jdoe.example", &format!("{ip10}{extra}")),
            )),
            &source(),
            &destination(),
            &Busy::new(),
        )
    };
    let unmapped = plan_of("").expect("plan");
    assert_eq!(unmapped.databases.len(), 1);
    assert_eq!(
        (
            unmapped.databases[0].db.name.as_str(),
            unmapped.databases[0].target
        ),
        ("jdoe_db", 0)
    );
    let mapped = plan_of(&db_map(3306, "db2", 3307)).expect("plan");
    assert_eq!(mapped.databases[0].target, 1);
    // A mapping of another old server leaves this database on the default.
    assert_eq!(
        plan_of(&db_map(3310, "db2", 3307)).expect("plan").databases[0].target,
        0
    );
    let refused = RpcError::from(plan_of(&db_map(3306, "db9", 3308)).unwrap_err());
    assert_eq!(refused.code.number(), 14009);
    assert!(refused.text.contains("db9:3308"), "{}", refused.text);

    let pg = RpcError::from(
        build(
            &request(&domains(
                "admin",
                &domain(
                    "admin-site.example",
                    &ip("shared", "192.0.2.100", "shared", "198.51.100.5"),
                ),
            )),
            &source(),
            &destination(),
            &Busy::new(),
        )
        .unwrap_err(),
    );
    assert_eq!(pg.code.number(), 14008);
    assert!(pg.text.contains("pg_db"), "{}", pg.text);

    let mut no_default = destination();
    no_default.db_servers[0].default = false;
    let refused = build(
        &request(&domains("admin", &domain("jdoe.example", &ip10))),
        &source(),
        &no_default,
        &Busy::new(),
    )
    .unwrap_err();
    assert_eq!(wire(refused).0, 14009);

    let servers = destination().db_servers;
    let taken = [(0, Existing::Database, "jdoe_db".to_owned())].into();
    let e = wire(check_databases_free(&unmapped, &servers, &taken).unwrap_err());
    assert_eq!(
        (e.0, e.1.as_str()),
        (
            1007,
            "database \"jdoe_db\" already exists on localhost:3306"
        )
    );
    let user = [(0, Existing::User, "jdoe_u".to_owned())].into();
    assert_eq!(
        wire(check_databases_free(&unmapped, &servers, &user).unwrap_err()).0,
        1007
    );
    // The same names on another server are no conflict.
    assert!(check_databases_free(&mapped, &servers, &taken).is_ok());
}

#[test]
fn every_refusal_has_its_code_and_words() {
    let check = |refusal: Refusal, code: u32, text: &str| {
        assert_eq!(
            wire(refusal.clone()),
            (code, text.to_owned()),
            "{refusal:?}"
        );
        assert_eq!(refusal.to_string(), text);
    };
    check(Refusal::NotReady(NotReady::NoDestination), 1026, "Unable to start migration: the [destination] section is not configured; `check` lists what is missing");
    check(Refusal::NotReady(NotReady::NoPanelDb), 1026, "Unable to start migration: destination.panel_db is not configured; `check` lists what is missing");
    check(Refusal::NotReady(NotReady::PanelDbUnreachable("error 1045: denied".into())), 1026,
        "Unable to start migration: the destination panel database is not reachable (error 1045: denied); `check` lists what is missing");
    check(Refusal::NotReady(NotReady::DbServerUnreachable { server: "localhost:3307".into(), reason: "refused".into() }), 1026,
        "Unable to start migration: database server localhost:3307 is not reachable (refused); `check` lists what is missing");
    check(
        Refusal::StagingNotAbsolute {
            path: "dumps".into(),
        },
        1019,
        "destination-host-directory dumps is not an absolute path",
    );
    check(
        Refusal::BadHost { host: "h:0".into() },
        1023,
        "Unable to start migration: h:0 is not a host or host:port",
    );
    check(
        Refusal::NoCredential,
        1023,
        "Unable to start migration: the password is empty and no ssh.identity is configured",
    );
    check(
        Refusal::Source("host 192.0.2.7 is not accessible: connection refused".into()),
        1023,
        "Unable to start migration: host 192.0.2.7 is not accessible: connection refused",
    );
    check(Refusal::ContentDirExists { domain: "a.example".into(), path: "/v/a.example".into() }, 15006,
        "domain \"a.example\" already exists: its content directory /v/a.example is on the destination and no earlier hostmig migration left it there; move it away to migrate this domain");
    check(
        Refusal::DbUserExists {
            user: "u".into(),
            database: "d".into(),
            server: "localhost:3306".into(),
        },
        1007,
        "database user \"u\" (of database d) already exists on localhost:3306",
    );
    check(
        Refusal::Busy {
            kind: ObjectKind::Client,
            name: "jdoe".into(),
            migration: 7,
        },
        1023,
        "client \"jdoe\" is already being migrated by migration 7",
    );
    check(
        Refusal::UnknownMigration { id: "42".into() },
        1013,
        "migration 42 does not exist",
    );
    check(
        Refusal::StillRunning { id: 3 },
        1023,
        "migration 3 is still running; resync it after it ended",
    );
    check(Refusal::HeldByInterrupted { kind: ObjectKind::Domain, name: "a.example".into(), migration: 7 }, 1023, "domain \"a.example\" is held by migration 7, which a restart of hostmig interrupted; continue it with <resume><migration_id>7</migration_id></resume> (with <password> if it logged into the source by password) or abandon it with <finish><migration_id>7</migration_id></finish>");
    check(
        Refusal::LogDeleted { id: 7 },
        1013,
        "the event log of migration 7 was deleted by finish; its report (get_report) is kept",
    );
    check(Refusal::NotInterrupted { id: 7 }, 1023, "migration 7 is not interrupted (it is queued, running, being resumed, or it ended); only a migration a restart of hostmig interrupted can be resumed");
    check(Refusal::ResumeNeedsPassword { id: 7 }, 1023, "Unable to resume migration 7: hostmig does not keep source passwords and no ssh.identity is configured; send the password in <password>");
    check(Refusal::ResyncNeedsPassword, 1023, "Unable to resync: hostmig no longer holds the source's password (it restarted) and no ssh.identity is configured; send the password in <password>");
    check(
        Refusal::NothingDeployed,
        1023,
        "Unable to resync: that migration deployed no domain",
    );
    check(
        Refusal::Journal("the journal is closed".into()),
        1023,
        "hostmig's journal failed (the journal is closed); see the server log and try again",
    );
}
