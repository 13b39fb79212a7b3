//! SSH against the sandbox's real sshd: host-key policies, logins,
//! commands, SFTP, and the tunnel that database connections go through.

use std::path::Path;
use std::time::{Duration, Instant};

use hostmig::config::HostKeyPolicy;
use hostmig::sandbox::sshd::{self, TEST_LOGIN, TEST_PASSWORD};
use hostmig::sandbox::{Profile, Source};
use hostmig::secret::Secret;
use hostmig::ssh::{known_hosts, Credential, Login, Options, Session, SshError, Target, Tunnel};
use mysql_async::prelude::Queryable;

use crate::harness::sandbox::rt;

fn options(known_hosts: &Path, policy: HostKeyPolicy) -> Options {
    Options {
        known_hosts: known_hosts.to_owned(),
        policy,
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(30),
        stall: hostmig::ssh::DEFAULT_STALL,
    }
}

fn root_login(source: &Source) -> Login {
    Login {
        target: Target::parse(&source.ssh_host()).expect("target"),
        user: "root".into(),
        credential: Credential::Key(source.ssh.client_key.clone()),
    }
}

#[test]
fn host_key_policies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 11))
        .expect("source");
    let kh = dir.path().join("state/known_hosts");
    let login = root_login(&source);

    // strict refuses an unknown key and records nothing.
    let err = Session::connect(&login, &options(&kh, HostKeyPolicy::Strict))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{text}");
    assert!(
        text.contains(&source.ssh_host()) && text.contains("SHA256:"),
        "{text}"
    );
    assert!(!kh.exists());

    // accept-new records it; strict accepts it afterwards.
    let session =
        Session::connect(&login, &options(&kh, HostKeyPolicy::AcceptNew)).expect("accept-new");
    let out = session.exec("echo hello", 1024).expect("exec");
    assert_eq!((out.status, out.stdout.as_slice()), (0, &b"hello\n"[..]));
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts written");
    let host_pub =
        std::fs::read_to_string(source.ssh.dir.join("ssh_host_ed25519_key.pub")).expect("host key");
    let blob = host_pub.split_whitespace().nth(1).expect("blob");
    assert_eq!(
        recorded,
        format!("{} ssh-ed25519 {blob}\n", source.known_hosts_name())
    );
    Session::connect(&login, &options(&kh, HostKeyPolicy::Strict))
        .expect("strict with a known key");
    assert_eq!(
        std::fs::read_to_string(&kh).expect("kh"),
        recorded,
        "nothing added twice"
    );

    // A changed key is refused by both policies, naming the host and both fingerprints.
    let other = b"a different host key";
    std::fs::write(
        &kh,
        known_hosts::line(&source.known_hosts_name(), "ssh-ed25519", other),
    )
    .expect("kh");
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let err = Session::connect(&login, &options(&kh, policy))
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(matches!(err, SshError::HostKeyChanged { .. }), "{text}");
        assert!(text.contains(&source.ssh_host()), "{text}");
        assert!(
            text.contains(&known_hosts::fingerprint(other)),
            "expected fingerprint: {text}"
        );
        use base64::Engine;
        let real = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .expect("base64");
        assert!(
            text.contains(&known_hosts::fingerprint(&real)),
            "found fingerprint: {text}"
        );
    }
}

#[test]
fn logins_commands_files_and_unreachable_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = rt()
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 12))
        .expect("source");
    let opts = options(&dir.path().join("kh"), HostKeyPolicy::AcceptNew);
    assert!(
        sshd::ensure_test_login().expect("test login"),
        "run the tests as root (CI does)"
    );
    let target = Target::parse(&source.ssh_host()).expect("target");

    let password = |pw: &str| Login {
        target: target.clone(),
        user: TEST_LOGIN.into(),
        credential: Credential::Password(Secret::new(pw.into())),
    };
    let session = Session::connect(&password(TEST_PASSWORD), &opts).expect("password login");
    assert_eq!(
        session.exec("id -un", 1024).expect("exec").stdout,
        format!("{TEST_LOGIN}\n").into_bytes()
    );
    let err = Session::connect(&password("wrong-and-secret"), &opts)
        .err()
        .expect("refused");
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err}");
    assert!(
        !err.to_string().contains("wrong-and-secret"),
        "the password leaked: {err}"
    );

    // SFTP reads a small file and refuses a big one.
    let root = Session::connect(&root_login(&source), &opts).expect("key login");
    let conf = root
        .read_file(&source.layout.psa_conf, 64 * 1024)
        .expect("psa.conf");
    assert_eq!(
        conf,
        std::fs::read(&source.layout.psa_conf).expect("local read")
    );
    let big = source
        .layout
        .vhosts
        .join("jdoe.example/httpdocs/odd/sparse.img");
    assert!(root.read_file(&big, 1024).is_err());
    let out = root.exec("exit 3", 16).expect("exec");
    assert_eq!(out.status, 3);

    // A closed port on 127.0.0.1 is an unreachable host, answered fast.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let started = Instant::now();
    let err = Session::connect(
        &Login {
            target: Target::parse(&format!("127.0.0.1:{port}")).expect("target"),
            user: "root".into(),
            credential: Credential::Key(source.ssh.client_key.clone()),
        },
        &opts,
    )
    .err()
    .expect("unreachable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        format!("host 127.0.0.1:{port} is not accessible: connection refused")
    );

    // A missing identity file is named.
    let err = Session::connect(
        &Login {
            credential: Credential::Key(dir.path().join("no-such-key")),
            ..root_login(&source)
        },
        &opts,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("no-such-key"), "{err}");
}

/// A tiny source, and a tunnel to its database as the source sees it
/// (localhost and its port), with the URL of its admin through it.
fn tunnel_to_source(dir: &Path) -> (tokio::runtime::Runtime, Source, Tunnel, String) {
    let rt = rt();
    let source = rt
        .block_on(Source::start(&dir.join("src"), Profile::Tiny, 13))
        .expect("source");
    let opts = options(&dir.join("kh"), HostKeyPolicy::AcceptNew);
    let tunnel =
        Tunnel::open(root_login(&source), opts, "localhost", source.db.port).expect("tunnel");
    let url = format!(
        "mysql://admin:{}@{}/psa?prefer_socket=false",
        source.admin_password, tunnel.local
    );
    (rt, source, tunnel, url)
}

#[test]
fn the_tunnel_carries_parallel_database_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, source, tunnel, url) = tunnel_to_source(dir.path());
    assert!(tunnel.local.ip().is_loopback());
    let counts = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = mysql_async::Conn::from_url(url)
                    .await
                    .expect("connect through the tunnel");
                let body: Vec<String> = conn
                    .query("SELECT body FROM jdoe_ftp_db.posts ORDER BY id")
                    .await
                    .expect("posts");
                // Values larger than an SSH window cross the bridge both ways.
                let big = "y".repeat(3_000_000);
                let echoed: (u64, String) = conn
                    .exec_first("SELECT LENGTH(?), REPEAT('x', 3000000)", (&big,))
                    .await
                    .expect("big values")
                    .expect("row");
                assert_eq!((echoed.0, echoed.1.len()), (3_000_000, 3_000_000));
                let clients: u64 = conn
                    .query_first("SELECT COUNT(*) FROM clients")
                    .await
                    .expect("count")
                    .expect("row");
                conn.disconnect().await.expect("disconnect");
                (clients, body.iter().map(String::len).sum::<usize>())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let direct = rt.block_on(async {
        let mut conn = source.db.connect(Some("psa")).await.expect("direct");
        let clients: u64 = conn
            .query_first("SELECT COUNT(*) FROM clients")
            .await
            .expect("count")
            .expect("row");
        let bytes: u64 = conn
            .query_first("SELECT CAST(SUM(LENGTH(body)) AS UNSIGNED) FROM jdoe_ftp_db.posts")
            .await
            .expect("sum")
            .expect("row");
        (clients, bytes as usize)
    });
    assert_eq!(counts, vec![direct; 4]);
    // All of it crossed SSH: four times the posts and the 3 MB values.
    assert!(
        tunnel.carried() as usize > 4 * (direct.1 + 3_000_000),
        "the tunnel carried {} bytes",
        tunnel.carried()
    );
    drop(tunnel);
}

/// A tunnel whose database connection waits longer than the SSH keepalive
/// interval asks the source for a keepalive reply, and the connection
/// still answers afterwards.
#[test]
fn an_idle_tunnel_sends_keepalives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, source, _tunnel, url) = tunnel_to_source(dir.path());
    let keepalives = || {
        std::fs::read_to_string(source.ssh.log())
            .expect("sshd log")
            .matches("server_input_global_request: rtype keepalive@")
            .count()
    };
    let before = keepalives();
    let clients: u64 = rt.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        let idle = Duration::from_secs(hostmig::ssh::SSH_KEEPALIVE_S as u64 + 4);
        tokio::time::sleep(idle).await;
        let n = conn
            .query_first("SELECT COUNT(*) FROM clients")
            .await
            .expect("count after the wait")
            .expect("row");
        conn.disconnect().await.expect("disconnect");
        n
    });
    assert!(clients > 0);
    let log = std::fs::read_to_string(source.ssh.log()).expect("sshd log");
    assert!(
        keepalives() > before,
        "no keepalive reached the source's sshd; its log ends: {}",
        &log[log.len().saturating_sub(3000)..]
    );
}
