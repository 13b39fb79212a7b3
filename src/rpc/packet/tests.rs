use super::*;

/// Decodes `body`; a refusal is `(version, code, text)`.
fn run(body: &str) -> Result<RequestPacket, (String, u32, String)> {
    decode(body.as_bytes()).map_err(|e| (e.version, e.error.code.number(), e.error.text))
}

fn refused(body: &str, code: u32, text: &str) {
    match run(body) {
        Ok(p) => panic!("accepted {body:?}: {p:?}"),
        Err((_, c, t)) => assert_eq!((c, t.as_str()), (code, text), "body: {body}"),
    }
}

fn ops(body: &str) -> Vec<Operation> {
    let packet = run(body).unwrap_or_else(|e| panic!("refused {body:?}: {e:?}"));
    packet
        .operators
        .into_iter()
        .flat_map(|Operator::Migration(ops)| ops)
        .collect()
}

fn start_of(sel: &str, extra: &str) -> String {
    format!(
        "<packet><migration><start><host>192.0.2.1</host><login>root</login><password> p w </password>\
         <destination-host-directory/>{extra}<selected-objects>{sel}</selected-objects></start></migration></packet>"
    )
}

fn the_start(body: &str) -> StartRequest {
    match ops(body).into_iter().next() {
        Some(Operation::Start(s)) => *s,
        other => panic!("not a start: {other:?}"),
    }
}

const DOMAINS: &str = "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>";

#[test]
fn versions() {
    let v = |body: &str| run(body).map(|p| p.version).map_err(|e| (e.0, e.1));
    assert_eq!(
        v("<packet><migration><check/></migration></packet>"),
        Ok("1.6.9.1".into())
    );
    assert_eq!(
        v("<packet version=\"1.4.0.0\"><migration><check/></migration></packet>"),
        Ok("1.4.0.0".into())
    );
    assert_eq!(
        v("<packet version=\"1.6.9.1\"><migration><check/></migration></packet>"),
        Ok("1.6.9.1".into())
    );
    for bad in [
        "1.3.9.9",
        "1.6.9.2",
        "2.0.0.0",
        "1.6",
        "",
        "1.6.3.x",
        "1.6.3.0.0",
        "99999999999.0.0.0",
        "+1.5.0.0",
    ] {
        let body = format!("<packet version=\"{bad}\"><migration><check/></migration></packet>");
        assert_eq!(v(&body), Err(("1.6.9.1".into(), 1005)), "version {bad}");
    }
}

#[test]
fn checks_run_in_protocol_order() {
    // XML before version, version before operators, operators before content.
    refused(
        "<packet version=\"9\"><migration>",
        1014,
        "the packet ends before its root element is closed",
    );
    refused(
        "<packet version=\"9\"><server/></packet>",
        1005,
        "protocol version 9 is not supported; use a version from 1.4.0.0 to 1.6.9.1",
    );
    refused(
        "<packet><migration><bogus/></migration><server/></packet>",
        1017,
        "operator server is not supported; hostmig serves the migration operator only",
    );
    refused("<packet><migration><bogus/></migration></packet>", 1014, "packet/migration: unknown operation bogus; expected check, get_fs, start, get_status, finish, resync, resume, get_report, list or get_log");
    // A version that passed is echoed in the refusal.
    let e = run("<packet version=\"1.5.0.0\"><webspace/></packet>").expect_err("refused");
    assert_eq!((e.0.as_str(), e.1), ("1.5.0.0", 1017));
}

#[test]
fn packet_structure() {
    refused(
        "<packet/>",
        1014,
        "packet: expected at least one operator element",
    );
    refused(
        "<packet><migration/></packet>",
        1014,
        "packet/migration: expected at least one operation",
    );
    refused(
        "<request><migration><check/></migration></request>",
        1014,
        "the root element must be packet, not request",
    );
    refused(
        "<packet foo=\"1\"><migration><check/></migration></packet>",
        1014,
        "packet: unexpected attribute foo",
    );
    refused(
        "<packet>x<migration><check/></migration></packet>",
        1014,
        "packet: unexpected text",
    );
    refused(
        "<packet><migration><check/></migration><request-settings/></packet>",
        1014,
        "packet: request-settings must come before the operators",
    );
    refused(
        "<packet><migration><check>x</check></migration></packet>",
        1014,
        "packet/migration/check: must be empty",
    );
    refused(
        "<packet><migration><check> </check></migration></packet>",
        1014,
        "packet/migration/check: must be empty",
    );
    refused(
        "<packet><migration><check a=\"1\"/></migration></packet>",
        1014,
        "packet/migration/check: unexpected attribute a",
    );
    refused(
        "<packet><migration><get_fs><x/></get_fs></migration></packet>",
        1014,
        "packet/migration/get_fs: unexpected element x",
    );
    assert_eq!(
        ops("<packet><request-settings><setting><name>a</name><value>b</value></setting></request-settings>\
             <migration><check/><!-- c --><get_fs/></migration><migration>\n<get_status><migration_id> 7 </migration_id></get_status></migration></packet>"),
        vec![Operation::Check, Operation::GetFs, Operation::GetStatus(MigrationId("7".into()))]
    );
    refused("<packet><request-settings><setting><value>b</value></setting></request-settings><migration><check/></migration></packet>",
        1014, "packet/request-settings/setting: expected element name, found value");
}

#[test]
fn id_operations() {
    assert_eq!(
        ops("<packet><migration><finish><migration_id>12</migration_id></finish><resync><migration_id>3</migration_id><password>pw</password></resync><resync><migration_id>4</migration_id></resync><resume><migration_id>5</migration_id><password>pw2</password></resume><resume><migration_id>6</migration_id></resume></migration></packet>"),
        vec![
            Operation::Finish(MigrationId("12".into())),
            Operation::Resync { id: MigrationId("3".into()), password: Some(Secret::new("pw".into())) },
            Operation::Resync { id: MigrationId("4".into()), password: None },
            Operation::Resume { id: MigrationId("5".into()), password: Some(Secret::new("pw2".into())) },
            Operation::Resume { id: MigrationId("6".into()), password: None },
        ]
    );
    assert_eq!(
        ops("<packet><migration><list/><get_log><migration_id>2</migration_id></get_log><get_log><migration_id>2</migration_id><from>40</from><limit>10000</limit></get_log></migration></packet>"),
        vec![
            Operation::List,
            Operation::GetLog { id: MigrationId("2".into()), from: 1, limit: 1_000 },
            Operation::GetLog { id: MigrationId("2".into()), from: 40, limit: 10_000 },
        ]
    );
    refused(
        "<packet><migration><get_log><migration_id>2</migration_id><limit>10001</limit></get_log></migration></packet>",
        1014,
        "packet/migration/get_log/limit: expected a whole number from 1 to 10000, not 10001",
    );
    refused(
        "<packet><migration><get_log><migration_id>2</migration_id><from>0</from></get_log></migration></packet>",
        1014,
        "packet/migration/get_log/from: expected a whole number of at least 1, not 0",
    );
    refused(
        "<packet><migration><get_status/></migration></packet>",
        1014,
        "packet/migration/get_status: missing element migration_id",
    );
    refused(
        "<packet><migration><get_status><migration_id/></get_status></migration></packet>",
        1014,
        "packet/migration/get_status/migration_id: must not be empty",
    );
    refused("<packet><migration><get_status><migration_id>1</migration_id><migration_id>2</migration_id></get_status></migration></packet>", 1014, "packet/migration/get_status: unexpected element migration_id");
    refused("<packet><migration><resync><password>p</password><migration_id>1</migration_id></resync></migration></packet>", 1014, "packet/migration/resync: expected element migration_id, found password");
}

#[test]
fn start_fields() {
    let s = the_start(&start_of(DOMAINS, ""));
    assert_eq!(s.host, "192.0.2.1");
    assert_eq!(s.password.expose(), " p w ");
    assert_eq!(
        (s.system_type, s.transport, s.scope),
        (SystemType::Unix, Transport::Archive, Scope::Everything)
    );
    let s = the_start(&start_of(DOMAINS, "<system-type>windows</system-type><content-transport> rsync </content-transport><only-mail/>"));
    assert_eq!(
        (s.system_type, s.transport, s.scope),
        (SystemType::Windows, Transport::Rsync, Scope::OnlyMail)
    );
    assert_eq!(
        the_start(&start_of(DOMAINS, "<only-hosting/>")).scope,
        Scope::OnlyHosting
    );
    assert!(format!("{:?}", s).contains("Secret(***)") && !format!("{:?}", s).contains(" p w "));

    refused(
        &start_of(DOMAINS, "<content-transport>scp</content-transport>"),
        1014,
        "packet/migration/start/content-transport: scp is not one of archive, rsync",
    );
    refused(
        &start_of(DOMAINS, "<only-mail/><only-hosting/>"),
        1014,
        "packet/migration/start: expected element selected-objects, found only-hosting",
    );
    refused(
        &start_of(
            DOMAINS,
            "<only-mail/><content-transport>rsync</content-transport>",
        ),
        1014,
        "packet/migration/start: expected element selected-objects, found content-transport",
    );
    refused(
        &start_of(DOMAINS, "<system-type>mac</system-type>"),
        1014,
        "packet/migration/start/system-type: mac is not one of unix, windows",
    );
    refused(
        "<packet><migration><start><login>root</login></start></migration></packet>",
        1014,
        "packet/migration/start: expected element host, found login",
    );
    refused("<packet><migration><start><host>h</host><login>root</login><password/></start></migration></packet>", 1014, "packet/migration/start: missing element destination-host-directory");
    refused(
        &start_of(DOMAINS, "").replace("<host>192.0.2.1</host>", "<host>192.0.2.1:0</host>"),
        1014,
        "packet/migration/start/host: port 0 is not a number from 1 to 65535",
    );
    refused(
        &start_of(DOMAINS, "").replace("<host>192.0.2.1</host>", "<host>a b</host>"),
        1014,
        "packet/migration/start/host: must not contain spaces",
    );
    refused(
        &start_of(DOMAINS, "").replace("<host>192.0.2.1</host>", "<host>a/b</host>"),
        1014,
        "packet/migration/start/host: a/b is not a host or host:port",
    );
    assert_eq!(
        the_start(
            &start_of(DOMAINS, "").replace("<host>192.0.2.1</host>", "<host>[::1]:2222</host>")
        )
        .host,
        "[::1]:2222"
    );
    assert_eq!(
        the_start(
            &start_of(DOMAINS, "")
                .replace("<host>192.0.2.1</host>", "<host>src.example:65535</host>")
        )
        .host,
        "src.example:65535"
    );
}

#[test]
fn selections() {
    let ip = |o: &str, n: &str| {
        format!("<ip><old><ip-type>shared</ip-type><ip-address>{o}</ip-address></old><new><ip-type>shared</ip-type><ip-address>{n}</ip-address></new></ip>")
    };
    let db = "<db-server><old><host>localhost</host><port>3306</port><type>mysql</type></old><new><host>db2</host><port>03307</port><type>mysql</type></new></db-server>";
    let sel = format!(
        "<migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name>{}{}<domain><name>j.example</name>{}{db}</domain></client><client><name>solo</name></client></migrate-clients>",
        ip("192.0.2.10", "198.51.100.4"), ip("192.0.2.11", "198.51.100.5"), ip("192.0.2.10", "198.51.100.4")
    );
    let Selection::Clients {
        target_owner,
        clients,
    } = the_start(&start_of(&sel, "")).selection
    else {
        panic!("clients expected")
    };
    assert_eq!(target_owner, "admin");
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0].ips.len(), 2);
    assert_eq!(
        clients[0].ips[1].new.address,
        Ipv4Addr::new(198, 51, 100, 5)
    );
    assert_eq!(
        clients[0].domains[0].db_servers[0].new,
        DbServerSpec {
            host: "db2".into(),
            port: 3307,
            kind: crate::db::DbKind::Mysql
        }
    );
    assert!(clients[1].domains.is_empty() && clients[1].ips.is_empty());

    let two = "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>\
               <migrate-webspaces><target-owner>jdoe</target-owner><webspace><name>b.example</name></webspace><webspace><name>c.example</name></webspace></migrate-webspaces>";
    let Selection::Domains(groups) = the_start(&start_of(two, "")).selection else {
        panic!("domains expected")
    };
    assert_eq!(
        (
            groups.len(),
            groups[1].target_owner.as_str(),
            groups[1].domains.len()
        ),
        (2, "jdoe", 2)
    );

    let customers = "<migrate-customers><target-owner>admin</target-owner><customer><name>c</name><webspace><name>w.example</name></webspace></customer></migrate-customers>";
    assert!(matches!(
        the_start(&start_of(customers, "")).selection,
        Selection::Clients { .. }
    ));
    let resellers = "<migrate-resellers><reseller><name>r</name><client><name>c</name></client><webspace><name>w.example</name></webspace></reseller></migrate-resellers>";
    assert!(matches!(
        the_start(&start_of(resellers, "")).selection,
        Selection::Resellers(_)
    ));

    let p = "packet/migration/start/selected-objects";
    refused(&start_of("", ""), 1014, &format!("{p}: missing element migrate-domains or migrate-webspaces or migrate-clients or migrate-customers or migrate-resellers"));
    refused(
        &start_of(&format!("{DOMAINS}<migrate-clients/>"), ""),
        1014,
        &format!("{p}: unexpected element migrate-clients"),
    );
    refused(&start_of("<migrate-clients><target-owner>admin</target-owner><client><name>c</name></client></migrate-clients><migrate-clients/>", ""), 1014, &format!("{p}: unexpected element migrate-clients"));
    refused(
        &start_of(
            "<migrate-domains><target-owner>admin</target-owner></migrate-domains>",
            "",
        ),
        1014,
        &format!("{p}/migrate-domains: missing element domain"),
    );
    refused(&start_of("<migrate-domains><domain><name>a</name></domain><target-owner>admin</target-owner></migrate-domains>", ""), 1014, &format!("{p}/migrate-domains: expected element target-owner, found domain"));
    refused(&start_of("<migrate-domains><target-owner>admin</target-owner><webspace><name>a</name></webspace></migrate-domains>", ""), 1014, &format!("{p}/migrate-domains: expected element domain, found webspace"));
    refused(&start_of("<migrate-customers><target-owner>admin</target-owner><customer><name>c</name><domain><name>d</name></domain></customer></migrate-customers>", ""), 1014, &format!("{p}/migrate-customers/customer: unexpected element domain"));
    refused(&start_of("<migrate-domains><target-owner>admin</target-owner><domain><name>a</name><db-server/><ip/></domain></migrate-domains>", ""), 1014, &format!("{p}/migrate-domains/domain/db-server: missing element old"));
    let dom = |inner: &str| {
        start_of(&format!("<migrate-domains><target-owner>admin</target-owner><domain><name>a</name>{inner}</domain></migrate-domains>"), "")
    };
    let dp = format!("{p}/migrate-domains/domain");
    refused(
        &dom(&format!("{db}{}", ip("192.0.2.1", "192.0.2.2"))),
        1014,
        &format!("{dp}: unexpected element ip"),
    );
    refused(
        &dom(&format!(
            "{}{}",
            ip("192.0.2.1", "192.0.2.2"),
            ip("192.0.2.1", "192.0.2.2")
        )),
        1014,
        &format!("{dp}: unexpected element ip"),
    );
    refused(
        &dom(&ip("192.0.2.256", "192.0.2.2")),
        1014,
        &format!("{dp}/ip/old/ip-address: 192.0.2.256 is not a dotted IPv4 address"),
    );
    refused(
        &dom(&ip("192.0.2.01", "192.0.2.2")),
        1014,
        &format!("{dp}/ip/old/ip-address: 192.0.2.01 is not a dotted IPv4 address"),
    );
    refused(
        &dom(&ip("192.0.2.1", "::1")),
        1014,
        &format!("{dp}/ip/new/ip-address: ::1 is not a dotted IPv4 address"),
    );
    refused(
        &dom(&ip("192.0.2.1", "192.0.2.2")
            .replace("<ip-type>shared</ip-type>", "<ip-type>dedicated</ip-type>")),
        1014,
        &format!("{dp}/ip/old/ip-type: dedicated is not one of shared, exclusive"),
    );
    refused(
        &dom(&db.replace("03307", "65536")),
        1014,
        &format!("{dp}/db-server/new/port: 65536 is not a port from 1 to 65535"),
    );
    refused(
        &dom(&db.replace("<type>mysql</type></new>", "<type>oracle</type></new>")),
        1014,
        &format!("{dp}/db-server/new/type: oracle is not one of mysql, postgresql, mssql"),
    );
}

#[test]
fn hostile_text_is_cut_in_errors() {
    let long = "x".repeat(500);
    let body = format!("<packet><{long}/></packet>");
    let (_, code, text) = run(&body).expect_err("refused");
    assert_eq!(code, 1017);
    assert!(text.len() < 200, "{text}");
}
