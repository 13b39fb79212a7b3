//! Discovery and reading a source's panel, over the sandbox's real sshd
//! and through a tunnel to its real MariaDB.

use std::time::Duration;

use hostmig::config::{self, HostKeyPolicy};
use hostmig::panel::discover::discover;
use hostmig::panel::source::{self, text};
use hostmig::sandbox::{Profile, Source};
use hostmig::ssh::{Credential, Login, Options, Session, Target, Tunnel};

use crate::harness::sandbox::rt;

#[test]
fn discovery_and_the_selected_objects_of_a_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let sandbox = rt
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 21))
        .expect("source");
    let login = Login {
        target: Target::parse(&sandbox.ssh_host()).expect("target"),
        user: "root".into(),
        credential: Credential::Key(sandbox.ssh.client_key.clone()),
    };
    let opts = Options {
        known_hosts: dir.path().join("known_hosts"),
        policy: HostKeyPolicy::AcceptNew,
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(30),
        stall: hostmig::ssh::DEFAULT_STALL,
    };
    let overrides = config::Source {
        host: sandbox.ssh_host(),
        psa_conf: Some(sandbox.layout.psa_conf.clone()),
        psa_shadow: Some(sandbox.layout.psa_shadow.clone()),
        panel_db: Some(
            url::Url::parse(&format!("mysql://admin@localhost:{}/psa", sandbox.db.port))
                .expect("url"),
        ),
        max_bytes_per_s: None,
    };
    let session = Session::connect(&login, &opts).expect("ssh");
    let access = discover(&session, Some(&overrides)).expect("discovery");
    assert_eq!(access.layout.vhosts, sandbox.layout.vhosts);
    assert_eq!(access.layout.mailnames, sandbox.layout.mailnames);
    assert_eq!(
        (access.panel_db.host.as_str(), access.panel_db.port),
        ("localhost", sandbox.db.port)
    );
    assert_eq!(access.panel_db.password.expose(), sandbox.admin_password);

    // Without the override the defaults are read, and their absence is named.
    let err = discover(&session, None)
        .err()
        .expect("no /etc/psa on this machine");
    assert!(err.to_string().contains("/etc/psa/psa.conf"), "{err}");

    let tunnel =
        Tunnel::open(login, opts, &access.panel_db.host, access.panel_db.port).expect("tunnel");
    let url = format!(
        "mysql://{}:{}@{}/{}?prefer_socket=false",
        access.panel_db.user,
        access.panel_db.password.expose(),
        tunnel.local,
        access.panel_db.database
    );
    rt.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url)
            .await
            .expect("panel through the tunnel");
        let mut reader = source::Reader::open(&mut conn).await.expect("catalog");
        let (clients, missing) = reader
            .clients(&["jdoe".into(), "ghost".into(), "nodomains".into()])
            .await
            .expect("clients");
        assert_eq!(missing, ["ghost"]);
        assert_eq!(clients.len(), 2);
        let jdoe = &clients[0];
        assert_eq!(jdoe.fields.text("login").as_deref(), Some("jdoe"));
        assert_eq!(
            jdoe.pool,
            [
                ("192.0.2.10".to_owned(), "shared".to_owned()),
                ("192.0.2.20".to_owned(), "exclusive".to_owned())
            ]
        );
        assert_eq!(jdoe.domains, ["jdoe.example", "xn--bcher-kva.example"]);
        assert!(jdoe.limits.iter().flatten().any(|(n, _)| n == "max_dom"));
        assert!(jdoe
            .permissions
            .as_ref()
            .is_some_and(|p| p.iter().any(|(n, _)| n == "create_domains")));
        assert!(text(jdoe.account.as_ref().and_then(|a| a.get("password")))
            .is_some_and(|p| p.starts_with("cl-")));
        assert!(clients[1].domains.is_empty() && clients[1].permissions.is_none());

        let names = [
            "jdoe.example".to_owned(),
            "smith-fwd.example".to_owned(),
            "nope.example".to_owned(),
        ];
        let (domains, missing) = reader.domains(&names).await.expect("domains");
        assert_eq!(missing, ["nope.example"]);
        let jd = &domains[0];
        assert_eq!(jd.owner, "jdoe");
        let hosting = jd.hosting.as_ref().expect("hosting");
        assert_eq!(hosting.ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(hosting.sys_user.text("login").as_deref(), Some("jdoe_ftp"));
        assert_eq!(
            hosting.sys_user.text("home"),
            Some(
                sandbox
                    .layout
                    .vhosts
                    .join("jdoe.example")
                    .display()
                    .to_string()
            )
        );
        let mail: Vec<String> = jd
            .mail
            .iter()
            .filter_map(|m| m.fields.text("mail_name"))
            .collect();
        assert_eq!(mail, ["everything", "info", "sales"]);
        assert_eq!(jd.mail[1].aliases, ["contact", "hello"]);
        assert_eq!(
            jd.mail[2].redirects,
            ["info@jdoe.example", "team@partner.example"]
        );
        let zone = jd.zone.as_ref().expect("zone");
        assert!(zone
            .records
            .iter()
            .any(|r| r.text("val").as_deref() == Some("192.0.2.100")));
        assert_eq!(jd.subdomains.len(), 1);
        assert_eq!(jd.subdomains[0].1.as_deref(), Some("jdoe_ftp"));
        assert_eq!(jd.aliases.len(), 1);
        assert_eq!(jd.databases.len(), 1);
        let db = &jd.databases[0];
        assert_eq!(db.fields.text("name").as_deref(), Some("jdoe_ftp_db"));
        assert_eq!(db.server.text("port"), Some(sandbox.db.port.to_string()));
        assert_eq!(
            text(db.users[0].0.get("login")).as_deref(),
            Some("jdoe_ftp_u")
        );
        let admin = jd.admin.as_ref().expect("domain admin");
        assert!(admin.card.is_some() && admin.permissions.is_some());

        let fwd = &domains[1];
        assert!(fwd.hosting.is_none());
        let (_, ip) = fwd.forwarding.as_ref().expect("forwarding");
        assert_eq!(ip.as_deref(), Some("192.0.2.21"));
        assert_eq!(fwd.owner, "mrsmith");
        conn.disconnect().await.expect("disconnect");
    });
}
