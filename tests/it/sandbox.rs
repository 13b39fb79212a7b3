//! The sandbox: real private sshd and MariaDB servers, a generated source
//! that is what PANEL.md describes, determinism, and clean tear-down.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hostmig::sandbox::compare::{self, Kind, Manifest, TableSum};
use hostmig::sandbox::sshd::{self, TEST_LOGIN, TEST_PASSWORD};
use hostmig::sandbox::{Profile, Source};
use mysql_async::prelude::Queryable;

use crate::harness::sandbox::{rt, start_both};
use crate::harness::{self, first, Server};

fn ssh_session(source: &Source) -> ssh2::Session {
    let tcp = TcpStream::connect((source.ssh.addr, source.ssh.port))
        .expect("connect to the sandbox sshd");
    let mut session = ssh2::Session::new().expect("session");
    session.set_tcp_stream(tcp);
    session.handshake().expect("handshake");
    session
}

fn exec(session: &ssh2::Session, command: &str) -> (String, i32) {
    let mut channel = session.channel_session().expect("channel");
    channel.exec(command).expect("exec");
    let mut out = String::new();
    channel.read_to_string(&mut out).expect("read");
    channel.wait_close().expect("close");
    (out, channel.exit_status().expect("exit status"))
}

#[test]
fn source_and_destination_servers_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (source, dest) = start_both(&rt, dir.path(), Profile::Tiny, 42, 2);

    // sshd: the generated key logs in as root.
    let session = ssh_session(&source);
    session
        .userauth_pubkey_file("root", None, &source.ssh.client_key, None)
        .expect("key login as root");
    assert!(session.authenticated());
    let (out, status) = exec(&session, "echo sandbox-ok");
    assert_eq!((out.trim(), status), ("sandbox-ok", 0));

    // Password logins for the dedicated test login; a wrong password is refused.
    assert!(
        sshd::ensure_test_login().expect("test login"),
        "password logins need root to create {TEST_LOGIN}: run the tests as root (CI does)"
    );
    let session = ssh_session(&source);
    assert!(session
        .userauth_password(TEST_LOGIN, "wrong-password")
        .is_err());
    assert!(!session.authenticated());
    let session = ssh_session(&source);
    session
        .userauth_password(TEST_LOGIN, TEST_PASSWORD)
        .expect("password login");
    let (out, _) = exec(&session, "id -un");
    assert_eq!(out.trim(), TEST_LOGIN);

    rt.block_on(async {
        // Every MariaDB answers, on its own port, never 3306.
        for server in std::iter::once(&source.db).chain(&dest.db_servers) {
            assert_ne!(server.port, 3306);
            let mut conn = server.connect(None).await.expect("connect");
            let version: String = conn
                .query_first("SELECT VERSION()")
                .await
                .expect("query")
                .expect("row");
            assert!(version.contains("MariaDB"), "{version}");
        }
        // The source's admin logs in with the password of .psa.shadow.
        let shadow = std::fs::read_to_string(&source.layout.psa_shadow).expect("shadow");
        let mut admin = source
            .db
            .connect_as("admin", shadow.trim(), Some("psa"))
            .await
            .expect("admin login with .psa.shadow");
        let (host, port): (String, u16) = admin
            .query_first("SELECT host, port FROM DatabaseServers WHERE id = 1")
            .await
            .expect("query")
            .expect("row");
        assert_eq!((host.as_str(), port), ("localhost", source.db.port));

        // The destination: panel schema, its addresses, its servers registered.
        let mut d = dest.db_servers[0]
            .connect(Some("psa"))
            .await
            .expect("dest panel");
        let ips: Vec<String> = d
            .query("SELECT ip_address FROM IP_Addresses ORDER BY id")
            .await
            .expect("ips");
        assert_eq!(
            ips,
            ["198.51.100.4", "198.51.100.5", "203.0.113.5", "203.0.113.9"]
        );
        // hostmig registers the configured servers itself (engine tests).
        let servers: Vec<(String, u16)> = d
            .query("SELECT host, port FROM DatabaseServers ORDER BY id")
            .await
            .expect("servers");
        assert!(servers.is_empty(), "{servers:?}");
        let clients: Vec<String> = d.query("SELECT login FROM clients").await.expect("clients");
        assert_eq!(clients, ["admin"]);
    });
    assert!(dest.vhosts.is_dir() && dest.mailnames.is_dir() && dest.dump.is_dir());
    assert_eq!(std::fs::read_dir(&dest.vhosts).expect("vhosts").count(), 0);
}

#[test]
fn the_generated_source_is_what_panel_md_describes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let source = rt
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 7))
        .expect("source");
    let l = &source.layout;

    // psa.conf points into the sandbox root.
    let conf = std::fs::read_to_string(&l.psa_conf).expect("psa.conf");
    for (key, path) in [
        ("HTTPD_VHOSTS_D", &l.vhosts),
        ("PLESK_MAILNAMES_D", &l.mailnames),
        ("DUMP_D", &l.dump),
    ] {
        assert!(
            conf.lines()
                .any(|line| line == format!("{key} {}", path.display())),
            "{key} in {conf}"
        );
    }

    rt.block_on(async {
        let mut c = source.db.connect(Some("psa")).await.expect("psa");
        assert_eq!(one(&mut c, "SELECT COUNT(*) FROM clients WHERE login = 'admin'").await, 1);
        // A client with no domains.
        assert_eq!(one(&mut c, "SELECT COUNT(*) FROM clients c WHERE login = 'nodomains' AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.cl_id = c.id)").await, 1);
        // A domain administrator whose perm_id is NULL.
        assert_eq!(one(&mut c, "SELECT COUNT(*) FROM dom_level_usrs WHERE perm_id IS NULL").await, 1);
        // A forwarding-only domain.
        assert_eq!(one(&mut c, "SELECT COUNT(*) FROM domains d JOIN forwarding f ON f.dom_id = d.id WHERE d.htype = 'std_fwd'").await, 1);
        // An exclusive address, in a client's pool.
        assert!(one(&mut c, "SELECT COUNT(*) FROM Repository r JOIN IP_Addresses ip ON ip.id = r.component_id WHERE ip.type = 'exclusive'").await >= 1);
        // A mail group with members and a catch-all-like forward.
        assert!(one(&mut c, "SELECT COUNT(*) FROM mail m JOIN mail_redir r ON r.mn_id = m.id WHERE m.mail_group = 'true'").await >= 2);
        assert!(one(&mut c, "SELECT COUNT(*) FROM mail WHERE postbox = 'false' AND redirect = 'true' AND redir_addr <> ''").await >= 1);
        assert!(one(&mut c, "SELECT COUNT(*) FROM mail_aliases").await >= 2);
        // DNS zones with A, MX, CNAME, TXT, NS records; the prefix-sharing address.
        for kind in ["A", "MX", "CNAME", "TXT", "NS"] {
            assert!(one(&mut c, format!("SELECT COUNT(*) FROM dns_recs WHERE type = '{kind}'")).await >= 1, "{kind}");
        }
        assert!(one(&mut c, "SELECT COUNT(*) FROM dns_recs WHERE type = 'A' AND val = '192.0.2.100'").await >= 1);
        // An IDN domain, subdomains, aliases, hosting with system users, domain admins.
        assert_eq!(one(&mut c, "SELECT COUNT(*) FROM domains WHERE name = 'xn--bcher-kva.example' AND displayName = 'bücher.example'").await, 1);
        for table in ["subdomains", "domainaliases", "hosting", "sys_users", "dom_level_usrs", "Cards", "Limits", "Permissions"] {
            assert!(one(&mut c, format!("SELECT COUNT(*) FROM {table}")).await >= 1, "{table}");
        }
        // Homes lie under the source's vhosts root.
        let homes: Vec<String> = c.query("SELECT home FROM sys_users").await.expect("homes");
        assert!(homes.iter().all(|h| Path::new(h).starts_with(&l.vhosts)), "{homes:?}");
        // The panel dump resolves ids to names.
        let dump = compare::panel_client(&mut c, "jdoe").await.expect("dump");
        let has = |prefix: &str, parts: &[&str]| dump.iter().any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)));
        assert!(dump.contains(&"client jdoe pool | address=192.0.2.10 | type=shared".to_owned()), "{dump:#?}");
        assert!(dump.contains(&"client jdoe pool | address=192.0.2.20 | type=exclusive".to_owned()), "{dump:#?}");
        assert!(has("domain jdoe.example hosting | ", &["| ip=192.0.2.10", "| sysuser.login=jdoe_ftp"]), "{dump:#?}");
        assert!(has("domain xn--bcher-kva.example admin | ", &["| permissions=NULL"]), "perm_id NULL: {dump:#?}");
        assert!(has("domain jdoe.example record | ", &["| host=legacy.jdoe.example.", "| type=A", "| val=192.0.2.100"]), "{dump:#?}");
        assert!(has("domain jdoe.example mail sales | ", &["redirects=info@jdoe.example,team@partner.example"]), "{dump:#?}");
        assert!(has("domain jdoe.example database jdoe_ftp_db | ", &["| type=mysql", "| server=localhost:"]), "{dump:#?}");
        assert!(has("domain jdoe.example param | ", &["param=seo_redirect"]), "{dump:#?}");
        assert!(dump.iter().any(|l| l.starts_with("domain jdoe.example alias ") && l.contains(" record | ") && l.contains("| type=A")), "an alias's own zone: {dump:#?}");
        assert!(has("domain jdoe.example | ", &["| real_size="]) && !has("domain jdoe.example | ", &["| real_size=0 "]), "{dump:#?}");
        let smith = compare::panel_client(&mut c, "mrsmith").await.expect("dump");
        assert!(smith.iter().any(|l| l.starts_with("domain smith-fwd.example forwarding | ") && l.contains("redirect=http://www.smith-new.example/") && l.contains("ip=192.0.2.21")), "{smith:#?}");
        let lonely = compare::panel_client(&mut c, "nodomains").await.expect("dump");
        assert!(lonely.iter().any(|l| l.starts_with("client nodomains | ") && l.contains("| permissions=NULL")) && !lonely.iter().any(|l| l.starts_with("domain ")), "{lonely:#?}");
        assert_eq!(compare::panel_client(&mut c, "ghost").await.expect("dump"), ["client ghost: absent"]);

        // Databases with users, and each database exists with its hard cases.
        let dbs: Vec<(String, String)> = c
            .query("SELECT db.name, u.login FROM data_bases db JOIN db_users u ON u.db_id = db.id ORDER BY db.name")
            .await
            .expect("databases");
        assert!(!dbs.is_empty());
        for (db, login) in &dbs {
            let tables: Vec<(String, String)> = c
                .exec("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (db,))
                .await
                .expect("tables");
            let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).filter(|n| !n.starts_with("f_")).collect();
            assert_eq!(names, ["counters", "counters_log", "counters_view", "counter_notes", "nopk", "posts", "posts_count", "types", "visits"], "{db}");
            // The hard-case database alone holds the type families.
            let families: Vec<(&str, &str)> = tables.iter().filter(|(n, _)| n.starts_with("f_")).map(|(n, t)| (n.as_str(), t.as_str())).collect();
            if Some(db) == source.model.hard_database().as_ref() {
                assert_eq!(families.len(), 26, "{families:?}");
                for expected in [("f_seq", "SEQUENCE"), ("f_versioned", "SYSTEM VERSIONED"), ("f_periods", "SYSTEM VERSIONED"), ("f_wide", "BASE TABLE")] {
                    assert!(families.contains(&expected), "{expected:?} in {families:?}");
                }
            } else {
                assert!(families.is_empty(), "{db}: {families:?}");
            }
            let nopk_keys: u64 = c
                .exec_first("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'nopk'", (db,))
                .await
                .expect("keys")
                .unwrap_or(1);
            assert_eq!(nopk_keys, 0, "nopk has no key at all");
            let (next, max): (u64, u64) = c
                .exec_first(
                    format!("SELECT (SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'counters'), (SELECT MAX(id) FROM `{db}`.counters)"),
                    (db,),
                )
                .await
                .expect("counter")
                .expect("row");
            assert_eq!((next, max), (1000, 6), "AUTO_INCREMENT is not max(id)+1");
            let routines: Vec<String> = c
                .exec("SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1", (db,))
                .await
                .expect("routines");
            assert_eq!(routines, ["FUNCTION counter_total", "PROCEDURE touch_counter"]);
            let triggers: Vec<String> = c
                .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", (db,))
                .await
                .expect("triggers");
            assert_eq!(triggers, ["counters_ai"]);
            // Edge values as stored: zero bytes, emoji, zero dates, full-precision DECIMAL, generated columns.
            let edge: Vec<EdgeRow> = c
                .query(format!(
                    "SELECT HEX(c_binary), c_varchar, CAST(c_date AS CHAR), CAST(c_decimal AS CHAR), c_virtual FROM `{db}`.types ORDER BY id"
                ))
                .await
                .expect("types");
            assert_eq!(edge.len(), 6);
            assert_eq!(edge[0], (None, None, None, None, None));
            // An invalid date and the string 'NULL', as stored.
            assert_eq!((edge[5].1.as_deref(), edge[5].2.as_deref()), (Some("NULL"), Some("2024-00-15")));
            assert_eq!(edge[1].2.as_deref(), Some("0000-00-00"));
            assert_eq!(edge[2].0.as_deref(), Some("00FF00FF00FF00FF"));
            assert_eq!(edge[2].1.as_deref(), Some("emoji 😀 and ümlauts"));
            assert_eq!(edge[3].3.as_deref(), Some("12345678901234567890123456789012345.123456789012345678901234567890"));
            assert_eq!(edge[3].4, Some(254));
            // The database user logs in with the password the panel holds.
            let password: String = c
                .exec_first(
                    "SELECT a.password FROM db_users u JOIN accounts a ON a.id = u.account_id WHERE u.login = ?",
                    (login,),
                )
                .await
                .expect("password")
                .expect("row");
            let mut user = source.db.connect_as(login, &password, Some(db)).await.expect("database user login");
            let rows: u64 = user.query_first("SELECT COUNT(*) FROM posts").await.expect("posts").expect("row");
            assert!(rows == source.model.sizes.rows_per_db || rows == source.model.sizes.rows_big_db, "{rows}");
        }
    });

    // The content trees and their hard cases.
    let tree = compare::manifest(&l.vhosts.join("jdoe.example")).expect("manifest");
    let get = |p: &[u8]| {
        tree.iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(p)))
    };
    let odd = |name: &str| format!("httpdocs/odd/{name}").into_bytes();
    assert_eq!(get(&odd("name with spaces.txt")).kind, Kind::File);
    assert_eq!(get(&odd("new\nline.txt")).kind, Kind::File);
    assert_eq!(get(b"httpdocs/odd/caf\xe9-latin1.txt").kind, Kind::File);
    assert_eq!(get(&odd("zero-bytes.bin")).size, 0);
    assert_eq!(get(&odd("empty-dir")).kind, Kind::Dir);
    assert_eq!(
        get(&odd("hardlink-b.txt")).hard_link_of.as_deref(),
        Some(odd("hardlink-a.txt").as_slice())
    );
    assert_eq!(
        get(&odd("link-outside")).link_target.as_deref(),
        Some(&b"/etc/passwd"[..])
    );
    assert_eq!(
        get(&odd("link-to-index")).link_target.as_deref(),
        Some(&b"../index.html"[..])
    );
    assert_eq!(get(&odd("setuid.sh")).mode, 0o4755);
    assert_eq!(get(&odd("setgid.sh")).mode, 0o2755);
    assert_eq!(get(&odd("secret.txt")).mode, 0o600);
    assert_eq!(get(&odd("private-dir")).mode, 0o700);
    let sparse = l.vhosts.join("jdoe.example/httpdocs/odd/sparse.img");
    let meta = std::fs::metadata(&sparse).expect("sparse");
    assert!(
        meta.blocks() * 512 < meta.len() / 4,
        "sparse.img is not sparse"
    );
    assert!(
        tree.iter().all(|e| e.mtime < 1_704_067_200),
        "mtimes lie in the past"
    );
    let vhost_conf =
        std::fs::read_to_string(l.vhosts.join("jdoe.example/conf/vhost.conf")).expect("vhost.conf");
    assert!(vhost_conf.contains("192.0.2.10:80") && vhost_conf.contains("192.0.2.100:80"));
    assert!(
        tree.iter().filter(|e| e.kind == Kind::File).count() as u64
            >= source.model.sizes.files_per_domain
    );
    let maildir = l.mailnames.join("jdoe.example/info/Maildir");
    for sub in ["cur", "new", "tmp"] {
        assert!(maildir.join(sub).is_dir(), "{sub}");
    }
    assert!(std::fs::read_dir(maildir.join("cur")).expect("cur").count() > 0);
    // The forwarding-only domain has no web content.
    assert!(!l.vhosts.join("smith-fwd.example").exists());
}

/// HEX(c_binary), c_varchar, c_date, c_decimal, c_virtual of `types`.
type EdgeRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// The single number a query answers.
async fn one(conn: &mut mysql_async::Conn, sql: impl AsRef<str>) -> u64 {
    let sql = sql.as_ref();
    conn.query_first(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or(0)
}

/// Manifests of the content, checksums of every table but the one that
/// names the (changing) port, and the panel dumps of every client.
fn fingerprint(
    source: &Source,
    rt: &tokio::runtime::Runtime,
) -> (Manifest, Manifest, BTreeMap<String, TableSum>, Vec<String>) {
    let vhosts = compare::manifest(&source.layout.vhosts).expect("vhosts");
    let mail = compare::manifest(&source.layout.mailnames).expect("mail");
    let sums = rt.block_on(async {
        let mut conn = source.db.connect(None).await.expect("connect");
        let mut all = BTreeMap::new();
        for db in std::iter::once("psa".to_owned()).chain(source.databases()) {
            for (table, sum) in compare::table_checksums(&mut conn, &db)
                .await
                .expect("checksums")
            {
                if table != "DatabaseServers" {
                    all.insert(format!("{db}.{table}"), sum);
                }
            }
        }
        all
    });
    let dumps = rt.block_on(async {
        let mut conn = source.db.connect(None).await.expect("connect");
        let mut lines = Vec::new();
        // The database server's port is the one thing that differs per start.
        let port = format!("localhost:{}", source.db.port);
        for client in &source.model.clients {
            let dump = compare::panel_client(&mut conn, &client.login)
                .await
                .expect("dump");
            lines.extend(dump.into_iter().map(|l| l.replace(&port, "localhost:PORT")));
        }
        lines
    });
    (vhosts, mail, sums, dumps)
}

#[test]
fn the_generator_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("src");
    let rt = rt();
    let mut runs = Vec::new();
    for seed in [99, 99, 100] {
        let mut source = rt
            .block_on(Source::start(&root, Profile::Tiny, seed))
            .expect("source");
        assert!(source.generated_in.is_some(), "generated afresh");
        runs.push(fingerprint(&source, &rt));
        source.stop();
        drop(source);
        std::fs::remove_dir_all(&root).expect("remove the first run");
    }
    let opts = compare::DiffOptions::default();
    let d = compare::diff(&runs[0].0, &runs[1].0, &opts);
    assert!(
        d.is_empty(),
        "vhosts differ between equal seeds: {:?}",
        &d[..d.len().min(10)]
    );
    assert!(
        compare::diff(&runs[0].1, &runs[1].1, &opts).is_empty(),
        "mail differs between equal seeds"
    );
    assert_eq!(
        runs[0].2, runs[1].2,
        "table checksums differ between equal seeds"
    );
    let first_difference = runs[0].3.iter().zip(&runs[1].3).find(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "panel dumps differ between equal seeds"
    );
    assert_eq!(runs[0].3.len(), runs[1].3.len());
    assert!(runs[0].3.iter().any(|l| l.contains("localhost:PORT")));
    assert!(
        runs[0].2.len() > 20,
        "psa and the domain databases are checksummed"
    );
    // Another seed gives other bytes: the comparison can fail.
    assert!(!compare::diff(&runs[0].0, &runs[2].0, &opts).is_empty());
    assert_ne!(runs[0].2, runs[2].2);
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for pid in hostmig::sandbox::all_pids() {
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[test]
fn tear_down_leaves_no_process_or_directory_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let needle = root.display().to_string();
    let rt = rt();
    let (mut source, mut dest) = start_both(&rt, &root, Profile::Tiny, 1, 2);
    // An open SSH session gives sshd a child process of its own.
    let session = ssh_session(&source);
    session
        .userauth_pubkey_file("root", None, &source.ssh.client_key, None)
        .expect("login");
    let running = processes_mentioning(&needle);
    assert!(
        running.len() >= 4,
        "sshd, its session and three MariaDB servers: {running:?}"
    );

    source.stop();
    dest.stop();
    source.stop();
    dest.stop();
    drop(session);
    assert_eq!(
        processes_mentioning(&needle),
        vec![],
        "processes left behind"
    );
    drop((source, dest));
    drop(dir);
    assert!(!root.exists(), "the sandbox directory is gone");
}

#[test]
fn a_test_can_make_the_sources_commands_hostile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let source = rt
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 3))
        .expect("source");
    let bin = dir.path().join("evil-bin");
    std::fs::create_dir(&bin).expect("bin");
    let tar = bin.join("tar");
    std::fs::write(&tar, "#!/bin/sh\necho 'not the real tar'\n").expect("fake tar");
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    source
        .ssh
        .set_command_path(Some(&bin))
        .expect("hostile PATH");
    let session = ssh_session(&source);
    session
        .userauth_pubkey_file("root", None, &source.ssh.client_key, None)
        .expect("login");
    assert_eq!(exec(&session, "tar --version").0.trim(), "not the real tar");
    source.ssh.set_command_path(None).expect("restore");
    let session = ssh_session(&source);
    session
        .userauth_pubkey_file("root", None, &source.ssh.client_key, None)
        .expect("login");
    assert!(exec(&session, "tar --version").0.contains("GNU tar"));
}

#[test]
fn hostmig_serve_starts_against_a_sandbox_destination_in_one_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let (source, dest) = start_both(&rt, dir.path(), Profile::Tiny, 5, 1);
    // A destination whose panel database has no schema yet: the server
    // creates it when it starts, before it listens.
    rt.block_on(async {
        let mut conn = dest.db_servers[0].connect(None).await.expect("connect");
        conn.query_drop("DROP DATABASE psa; CREATE DATABASE psa")
            .await
            .expect("empty panel");
    });
    let config = dest.hostmig_config(harness::password_hash(), Some(&source));
    let server = Server::start_config(&config, &dest.state);
    let answer = server.post("<packet><migration><check/></migration></packet>");
    harness::assert_valid(&answer, "agent_output.xsd");
    let check = first(&answer, "check").expect("check");
    assert_eq!(
        first(&check, "status").as_deref(),
        Some("ok"),
        "the sandbox destination is complete: {check}"
    );
    let tables: Option<u64> = rt
        .block_on(async {
            let mut conn = dest.db_servers[0].connect(None).await.expect("connect");
            conn.query_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'psa'",
            )
            .await
        })
        .expect("count");
    assert_eq!(
        tables,
        Some(26),
        "the panel schema of PANEL.md, with cl_param and dom_param"
    );
}
