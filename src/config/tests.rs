use super::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cbaeaZ2zw0sZf9OPokFhwg$C7DglRu8mxrxubBLld+Lu3FX/ze5bXxU7XA7vf68Fjg";

fn base(extra_api: &str, rest: &str) -> String {
    format!("[api]\nadmin_password_hash = \"{HASH}\"\n{extra_api}\n[state]\ndir = \"/var/lib/hostmig\"\n{rest}")
}

fn refused(text: &str, key: &str, message_start: &str) {
    match Config::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err((k, m)) => {
            assert_eq!(k, key, "message: {m}");
            assert!(
                m.starts_with(message_start),
                "key {k}: {m:?} does not start with {message_start:?}"
            );
        }
    }
}

#[test]
fn minimal_file_gets_defaults() {
    let c = Config::parse(&base("", "")).expect("valid");
    assert_eq!(
        c.api.listen,
        vec!["0.0.0.0:8443".parse::<SocketAddr>().expect("addr")]
    );
    assert!(c.api.listen_http.is_empty() && c.api.tls.is_none() && c.destination.is_none());
    assert_eq!(
        (
            c.api.admin_login.as_str(),
            c.api.max_packet_bytes,
            c.api.max_failed_logins_per_minute
        ),
        ("admin", 1048576, 5)
    );
    assert!(c.api.realtime, "HTTP workers real-time by default");
    let off = Config::parse(&base("realtime = false", "")).expect("valid");
    assert!(!off.api.realtime);
    refused(&base("realtime = \"yes\"", ""), "api.realtime", "");
    assert_eq!(c.migrations.max_parallel, 4);
    assert_eq!(c.migrations.retry, crate::retry::RetryPolicy::default());
    assert_eq!(c.migrations.stall, crate::ssh::DEFAULT_STALL);
    assert_eq!(
        c.ssh.known_hosts,
        PathBuf::from("/var/lib/hostmig/known_hosts")
    );
    assert_eq!(
        (c.ssh.host_key_policy, c.ssh.connect_timeout_s),
        (HostKeyPolicy::Strict, 15)
    );
}

#[test]
fn whole_file_parses() {
    let text = base(
        "listen = [\"127.0.0.1:8443\", \"[::1]:8443\"]\nlisten_http = [\"127.0.0.1:8880\"]\ntls_cert = \"/etc/hostmig/cert.pem\"\ntls_key = \"/etc/hostmig/key.pem\"\n\
         max_packet_bytes = 65536\nmax_failed_logins_per_minute = 3\n[[api.keys]]\nkey_sha256 = \"{}\"\nallow_from = [\"127.0.0.0/8\", \"::1\"]\n",
        "[destination]\npanel_db = \"mysql://admin:pw@127.0.0.1:3306/psa\"\nvhosts_root = \"/srv/vhosts\"\nmailnames_root = \"/srv/mail\"\nfallback_owner = \"www-data:www-data\"\n\
         [[destination.db_servers]]\nhost = \"localhost\"\nport = 3306\ntype = \"mysql\"\nurl = \"mysql://admin:pw@127.0.0.1:3306\"\ndefault = true\n\
         [[destination.db_servers]]\nhost = \"db2\"\nport = 3307\ntype = \"mysql\"\nurl = \"mysql://admin:pw@127.0.0.1:3307\"\n\
         [migrations]\nmax_parallel = 8\nmax_bytes_per_s = 2097152\nretry_attempts = 0\nretry_first_delay_s = 1\nretry_max_delay_s = 9\nstall_s = 30\ndisk_reserve_percent = 10\n[ssh]\nhost_key_policy = \"accept-new\"\nidentity = \"/etc/hostmig/id_ed25519\"\nconnect_timeout_s = 5\n\
         [[sources]]\nhost = \"127.0.0.1:2222\"\npsa_conf = \"/srv/src/etc/psa/psa.conf\"\npanel_db = \"mysql://admin@127.0.0.1:3307/psa\"\nmax_bytes_per_s = 1024\n\
         [[sources]]\nhost = \"old.example\"\nmax_bytes_per_s = 0\n",
    )
    .replace("{}", &"ab".repeat(32));
    let c = Config::parse(&text).expect("valid");
    assert_eq!(c.api.keys[0].allow_from.len(), 2);
    assert_eq!(c.api.keys[0].key_sha256, [0xab; 32]);
    let d = c.destination.as_ref().expect("destination");
    assert_eq!(d.dump_dir, PathBuf::from("/var/lib/hostmig/dumps"));
    assert_eq!(d.db_servers.len(), 2);
    assert!(d.db_servers[0].default && !d.db_servers[1].default);
    assert_eq!(c.ssh.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(c.sources[0].host, "127.0.0.1:2222");
    assert_eq!(c.migrations.max_bytes_per_s, Some(2 << 20));
    assert_eq!(c.migrations.stall, std::time::Duration::from_secs(30));
    assert_eq!(c.migrations.disk_reserve_percent, 10);
    let retry = c.migrations.retry;
    assert_eq!(
        (
            retry.attempts,
            retry.first_delay.as_secs(),
            retry.max_delay.as_secs()
        ),
        (0, 1, 9)
    );
    assert_eq!(
        (c.sources[0].max_bytes_per_s, c.sources[1].max_bytes_per_s),
        (Some(1024), None),
        "0 is no cap"
    );
    assert!(
        !format!("{c:?}").contains("pw@"),
        "Debug must not show passwords"
    );
}

#[test]
fn refusals_name_the_key() {
    refused("[state]\ndir = \"/x\"\n", "api", "missing field `api`");
    refused(
        &base("colour = 1", ""),
        "api.colour",
        "unknown field `colour`",
    );
    refused(&base("", "[bogus]\n"), "bogus", "unknown field `bogus`");
    refused(
        &base(
            "",
            "[destination]\npanel_db = \"mysql://u:topsecret@h/psa\"\nextra = 1\n",
        ),
        "destination.extra",
        "unknown field `extra`",
    );
    refused(
        &base("listen = [\"nonsense\"]", ""),
        "api.listen[0]",
        "must be address:port",
    );
    refused(
        &base("listen = []", ""),
        "api.listen",
        "no listener configured",
    );
    refused(
        &base("max_packet_bytes = \"big\"", ""),
        "api.max_packet_bytes",
        "invalid type",
    );
    refused(
        &base("", "[[destination.db_servers]]\nhost = \"h\"\n"),
        "destination.db_servers[0].port",
        "missing field `port`",
    );
    refused(
        &base("max_packet_bytes = 10", ""),
        "api.max_packet_bytes",
        "must be from 4096",
    );
    refused(
        &base("max_failed_logins_per_minute = 0", ""),
        "api.max_failed_logins_per_minute",
        "must be at least 1",
    );
    refused(
        &base("tls_cert = \"/c.pem\"", ""),
        "api.tls_key",
        "is required when api.tls_cert is set",
    );
    refused(
        &base("tls_key = \"k.pem\"\ntls_cert = \"/c.pem\"", ""),
        "api.tls_key",
        "must be an absolute path",
    );
    refused(
        &base("[[api.keys]]\nkey_sha256 = \"xyz\"", ""),
        "api.keys[0].key_sha256",
        "must be 64 hexadecimal digits",
    );
    refused(
        &base(
            &format!(
                "[[api.keys]]\nkey_sha256 = \"{}\"\nallow_from = [\"10.0.0.0/33\"]",
                "0".repeat(64)
            ),
            "",
        ),
        "api.keys[0].allow_from[0]",
        "must be an address or a network",
    );
    refused(
        "[api]\n[state]\ndir = \"/x\"\n",
        "api.admin_password_hash",
        "no credentials configured",
    );
    refused(
        &base("", "").replace(HASH, "plain"),
        "api.admin_password_hash",
        "is not a PHC password hash",
    );
    refused(
        &base("", "").replace("/var/lib/hostmig", "relative"),
        "state.dir",
        "must be an absolute path",
    );
    refused(
        &base("", "[migrations]\nmax_parallel = 0\n"),
        "migrations.max_parallel",
        "must be a number from 1 to 64",
    );
    refused(
        &base("", "[ssh]\nhost_key_policy = \"yolo\"\n"),
        "ssh.host_key_policy",
        "unknown variant `yolo`",
    );
    refused(
        &base("", "[ssh]\nconnect_timeout_s = 0\n"),
        "ssh.connect_timeout_s",
        "must be a number of seconds",
    );
    refused(
        &base(
            "",
            "[destination]\npanel_db = \"postgres://u:topsecret@h/psa\"\n",
        ),
        "destination.panel_db",
        "must be a mysql:// URL",
    );
    refused(
        &base("", "[destination]\nfallback_owner = \"root\"\n"),
        "destination.fallback_owner",
        "must be user:group",
    );
    let server = "[[destination.db_servers]]\nhost = \"localhost\"\nport = 3306\ntype = \"mysql\"\nurl = \"mysql://a:b@127.0.0.1:3306\"\ndefault = true\n";
    refused(
        &base(
            "",
            &format!("[destination]\n{server}{}", server.replace("3306", "3307")),
        ),
        "destination.db_servers[1].default",
        "another server of this type is already the default",
    );
    refused(
        &base("", &format!("[destination]\n{server}{server}")),
        "destination.db_servers[1].host",
        "the same host and port are listed twice",
    );
    refused(
        &base(
            "",
            &format!(
                "[destination]\n{}",
                server.replace("port = 3306", "port = 70000")
            ),
        ),
        "destination.db_servers[0].port",
        "must be a port from 1 to 65535",
    );
    refused(
        &base(
            "",
            &format!(
                "[destination]\n{}",
                server.replace("\"mysql\"", "\"oracle\"")
            ),
        ),
        "destination.db_servers[0].type",
        "unknown variant `oracle`",
    );
    refused(
        &base("", "[[sources]]\nhost = \"a\"\n[[sources]]\nhost = \"a\"\n"),
        "sources[1].host",
        "names the same host",
    );
    // `h` and `h:22` are one host, whatever the case.
    refused(
        &base(
            "",
            "[[sources]]\nhost = \"Src.Example\"\n[[sources]]\nhost = \"src.example:22\"\n",
        ),
        "sources[1].host",
        "names the same host",
    );
    for bad in ["-1", "1023"] {
        refused(
            &base("", &format!("[migrations]\nmax_bytes_per_s = {bad}\n")),
            "migrations.max_bytes_per_s",
            "must be 0 (no cap) or a number of bytes per second of at least 1024",
        );
        refused(
            &base(
                "",
                &format!("[[sources]]\nhost = \"a\"\nmax_bytes_per_s = {bad}\n"),
            ),
            "sources[0].max_bytes_per_s",
            "must be 0 (no cap)",
        );
    }
    for (text, key, message) in [
        (
            "retry_attempts = -1",
            "migrations.retry_attempts",
            "must be a number of tries",
        ),
        (
            "retry_attempts = 101",
            "migrations.retry_attempts",
            "must be a number of tries",
        ),
        (
            "retry_first_delay_s = -2",
            "migrations.retry_first_delay_s",
            "must be a number of seconds",
        ),
        (
            "retry_max_delay_s = 3601",
            "migrations.retry_max_delay_s",
            "must be a number of seconds",
        ),
        (
            "disk_reserve_percent = 51",
            "migrations.disk_reserve_percent",
            "must be a percentage",
        ),
        (
            "stall_s = 1",
            "migrations.stall_s",
            "must be a number of seconds from 2",
        ),
        (
            "retry_first_delay_s = 10\nretry_max_delay_s = 5",
            "migrations.retry_max_delay_s",
            "must be at least migrations.retry_first_delay_s",
        ),
    ] {
        refused(&base("", &format!("[migrations]\n{text}\n")), key, message);
    }
    refused("[api\n", "(file)", "not valid TOML");
}

#[test]
fn errors_never_echo_values() {
    for text in [
        base(
            "",
            "[destination]\npanel_db = \"mysql://u:topsecret@/psa\"\n",
        ),
        base("", "[destination]\npanel_db = \"topsecret\"\n"),
        base("", "[destination]\npanel_db = [\"topsecret\"]\n"),
    ] {
        let (key, message) = Config::parse(&text).expect_err("refused");
        assert!(!key.contains("topsecret"), "{key}");
        assert!(!message.contains("topsecret"), "{message}");
    }
}

#[test]
fn the_example_file_is_a_valid_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hostmig.example.toml");
    let text = std::fs::read_to_string(path).expect("example config");
    let text = text.replace("$argon2id$v=19$m=19456,t=2,p=1$REPLACE$REPLACE", HASH);
    let c = Config::parse(&text).unwrap_or_else(|e| panic!("example refused: {e:?}"));
    let d = c.destination.expect("destination documented");
    assert_eq!((d.db_servers.len(), c.migrations.max_parallel), (1, 4));
    assert_eq!(c.migrations.max_bytes_per_s, None);
    assert_eq!(c.migrations.retry, crate::retry::RetryPolicy::default());
}

#[test]
fn metrics_and_notify_entries_are_checked_whole() {
    let c = Config::parse(&base(
        "",
        "[metrics]\nallow_from = [\"127.0.0.0/8\", \"::1\"]\n\n\
         [[notify]]\nurl = \"https://ops.example/hooks/abc\"\nevents = [\"finished\", \"stalled\"]\n\n\
         [[notify]]\ncommand = \"/usr/local/bin/page-someone\"\ntimeout_s = 3\nretries = 0\n",
    ))
    .expect("valid");
    assert_eq!(c.metrics.allow_from.len(), 2);
    assert_eq!(c.notify.len(), 2);
    assert_eq!(
        c.notify[0].events,
        [NotifyEvent::Finished, NotifyEvent::Stalled]
    );
    assert!(
        matches!(&c.notify[0].receiver, Receiver::Url { ca, .. } if ca == Path::new("/etc/ssl/certs/ca-certificates.crt"))
    );
    assert_eq!(
        (c.notify[0].timeout.as_secs(), c.notify[0].retries),
        (10, 3)
    );
    assert_eq!(c.notify[1].events, NotifyEvent::ALL);
    assert_eq!(
        c.notify[1].receiver,
        Receiver::Command(PathBuf::from("/usr/local/bin/page-someone"))
    );
    let notify = |body: &str| base("", &format!("[[notify]]\n{body}\n"));
    refused(
        &notify("events = [\"finished\"]"),
        "notify[0].url",
        "is missing",
    );
    refused(
        &notify("url = \"ftp://x.example/\""),
        "notify[0].url",
        "must be an http",
    );
    refused(
        &notify("url = \"https://user:pw@x.example/\""),
        "notify[0].url",
        "must not carry a login",
    );
    refused(
        &notify("url = \"https://x.example/\"\ncommand = \"/bin/true\""),
        "notify[0].url",
        "give a url or a command",
    );
    refused(
        &notify("command = \"relative/script\""),
        "notify[0].command",
        "must be an absolute path",
    );
    refused(
        &notify("url = \"https://x.example/\"\nevents = [\"finished\", \"started\"]"),
        "notify[0].events[1]",
        "must be one of",
    );
    refused(
        &notify("url = \"https://x.example/\"\nevents = []"),
        "notify[0].events",
        "names no event",
    );
    refused(
        &notify("url = \"https://x.example/\"\ntimeout_s = 0"),
        "notify[0].timeout_s",
        "must be a number",
    );
    refused(
        &notify("url = \"https://x.example/\"\nfilter = 1"),
        "notify[0].filter",
        "unknown field",
    );
    refused(
        &base("", "[metrics]\nallow_from = [\"nowhere\"]\n"),
        "metrics.allow_from[0]",
        "must be an address",
    );
}
