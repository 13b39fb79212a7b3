//! The operator's client (issue 19): the real `hostmig` binary, as a
//! client, against a real daemon and the sandbox's servers, through the
//! XML API only.

use std::process::Command;

use hostmig::sandbox::Profile;

use crate::harness::world::World;
use crate::harness::PASSWORD;

pub(crate) struct Ran {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `hostmig ARGS` as a client of `w`'s daemon (trusted by its
/// certificate's fingerprint), with `env` on top; no client config file.
pub(crate) fn client(w: &World, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let fingerprint = hostmig::rpc::tls::file_fingerprint(&w.dest.state.join("tls/cert.pem"))
        .expect("fingerprint");
    let url = w.server.url();
    let mut all = vec!["--url", &url, "--fingerprint", &fingerprint];
    all.extend_from_slice(args);
    raw_client(w, &all, env)
}

/// Runs `hostmig ARGS` with the API password, no client config file.
fn raw_client(w: &World, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hostmig"));
    command
        .args(args)
        .env("HOSTMIG_PASSWORD", PASSWORD)
        .env_remove("HOSTMIG_KEY")
        .env("XDG_CONFIG_HOME", w.dir.path().join("no-config"));
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run the client");
    Ran {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(ran: &Ran) -> serde_json::Value {
    assert_eq!(ran.status, 0, "{}{}", ran.stdout, ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", ran.stdout))
}

/// One line on stderr, saying what to do, and this exit status.
fn refused(ran: &Ran, status: i32, says: &str) {
    assert_eq!(ran.status, status, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
    assert!(ran.stderr.contains(says), "{}", ran.stderr);
}

#[test]
fn the_client_migrates_watches_reports_and_says_what_went_wrong() {
    let w = World::new(Profile::Tiny, "");
    let from = format!("root@{}", w.source.ssh_host());
    let ran = client(
        &w,
        &[
            "migrate",
            "--from",
            &from,
            "--client",
            "jdoe",
            "--map",
            "192.0.2.10=198.51.100.4",
            "--map",
            "exclusive:192.0.2.20=exclusive:203.0.113.5",
            "--watch",
        ],
        &[],
    );
    assert_eq!(ran.status, 0, "{}{}", ran.stdout, ran.stderr);
    let id = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("migration ")?.strip_suffix(" started"))
        .expect("the id printed")
        .to_owned();
    assert!(
        ran.stdout
            .contains(&format!("migration {id}: finished: success")),
        "{}",
        ran.stdout
    );
    // The account alone (no domain named): the client's record is there.
    let client_row = |dump: Vec<String>| -> Vec<String> {
        dump.into_iter()
            .filter(|l| l.starts_with("client "))
            .collect()
    };
    let arrived = client_row(w.dest_dump(Some("jdoe"), None));
    assert!(!arrived.is_empty(), "client jdoe is on the destination");
    assert_eq!(
        arrived,
        client_row(w.expected(
            w.source_dump(Some("jdoe"), None),
            &[
                ("192.0.2.10", "198.51.100.4"),
                ("192.0.2.20", "203.0.113.5")
            ],
            None
        ))
    );

    let list = json(&client(&w, &["--json", "list"], &[]));
    let first = &list[0];
    assert_eq!(first["migration_id"], id.as_str(), "{list}");
    assert_eq!(first["state"], "finished", "{list}");
    assert_eq!(first["finished"]["success"], true, "{list}");
    assert!(
        first["object"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["name"] == "jdoe")),
        "{list}"
    );
    let status = json(&client(&w, &["--json", "status", &id], &[]));
    assert_eq!(status["finished"]["success"], true, "{status}");
    let report = json(&client(&w, &["--json", "report", &id], &[]));
    assert_eq!(report["outcome"], "success", "{report}");
    let log = client(&w, &["log", &id], &[]);
    assert_eq!(log.status, 0, "{}", log.stderr);
    let lines: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() > 3, "{}", log.stdout);

    // A domain of the client, then its resync, each watched; resume of
    // an ended migration fails (1).
    let started = json(&client(
        &w,
        &[
            "--json",
            "migrate",
            "--from",
            &from,
            "--domain",
            "jdoe.example",
            "--to-owner",
            "jdoe",
            "--map",
            "192.0.2.10=198.51.100.4",
            "--transport",
            "rsync",
        ],
        &[],
    ));
    let domain = started["migration_id"].as_str().expect("an id").to_owned();
    let watched = client(&w, &["--json", "watch", &domain], &[]);
    let outcome = json(&watched);
    assert_eq!(outcome[0]["success"], true, "{outcome}");
    // What arrived is what the source has: the domain's records (the
    // address remapped) and its content trees, byte for byte.
    let map = [("192.0.2.10", "198.51.100.4")];
    assert_eq!(
        w.dest_dump(None, Some("jdoe.example")),
        w.expected(w.source_dump(None, Some("jdoe.example")), &map, None)
    );
    w.assert_content("jdoe.example", map[0]);
    let resync = json(&client(&w, &["--json", "resync", &domain], &[]));
    let again = resync["migration_id"].as_str().expect("an id").to_owned();
    let watched = client(&w, &["watch", &again], &[]);
    assert_eq!(watched.status, 0, "{}{}", watched.stdout, watched.stderr);
    refused(&client(&w, &["resume", &id], &[]), 1, "not interrupted");
    // stop cleans up an ended migration; its log is gone then.
    let stopped = client(&w, &["stop", &id], &[]);
    assert_eq!(stopped.status, 0, "{}", stopped.stderr);
    refused(&client(&w, &["log", &id], &[]), 1, "deleted by finish");

    // What goes wrong: one line each, and the exit status.
    refused(
        &client(
            &w,
            &["status", &id],
            &[("HOSTMIG_PASSWORD", "wrong-api-pw")],
        ),
        3,
        "1001",
    );
    refused(&client(&w, &["status", "999999"], &[]), 1, "does not exist");
    refused(
        &raw_client(
            &w,
            &[
                "--url",
                "https://127.0.0.1:1",
                "--fingerprint",
                "SHA256:00",
                "list",
            ],
            &[],
        ),
        3,
        "cannot reach",
    );
    let url = w.server.url();
    refused(
        &raw_client(
            &w,
            &["--url", &url, "--fingerprint", "SHA256:00:11", "list"],
            &[],
        ),
        3,
        "not trusted",
    );
    refused(
        &raw_client(&w, &["--url", &url, "list"], &[]),
        3,
        "--fingerprint",
    );
    // Trust by a CA file: the daemon's own certificate; another one is refused.
    let cert = w.dest.state.join("tls/cert.pem").display().to_string();
    let by_ca = raw_client(&w, &["--url", &url, "--ca", &cert, "--json", "list"], &[]);
    assert_eq!(json(&by_ca)[0]["state"], "finished");
    let other_ca = w.dir.path().join("other.pem");
    std::fs::write(
        &other_ca,
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a certificate")
            .cert
            .pem(),
    )
    .expect("write");
    let other = other_ca.display().to_string();
    refused(
        &raw_client(&w, &["--url", &url, "--ca", &other, "list"], &[]),
        3,
        "not trusted",
    );
    // A client config file holding a secret that others may read.
    let config_home = w.dir.path().join("config");
    std::fs::create_dir_all(config_home.join("hostmig")).expect("dir");
    let file = config_home.join("hostmig/client.toml");
    std::fs::write(&file, format!("password = \"{PASSWORD}\"\n")).expect("write");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let home = config_home.display().to_string();
    refused(
        &client(&w, &["list"], &[("XDG_CONFIG_HOME", &home)]),
        2,
        "chmod 600",
    );
}
