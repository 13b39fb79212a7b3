//! Two hosts: the sandbox's source in a network namespace of its own,
//! reachable from the destination only over SSH, as a real server is; a
//! client migration with databases across that link; bandwidth caps held
//! over every window, shared by two migrations. These need root (CI runs
//! as root): without it they fail, saying so.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostmig::caps::{Caps, Meter};
use hostmig::sandbox::host::{self, SourceHost};
use hostmig::sandbox::{Destination, Network, Profile, Source, SourceSetup};
use hostmig::ssh::Tunnel;

use crate::harness::big_tree;
use hostmig::transfer::conf::Rewrites;
use hostmig::transfer::tree::{sync_tree, Transport, TreeJob};
use mysql_async::prelude::Queryable;

use crate::harness::sandbox::rt;
use crate::harness::tars::session;
use crate::harness::world::{jdoe_client, World};

fn require_root() {
    assert!(
        SourceHost::available(),
        "this test gives the source a host of its own (a network namespace): run the tests as root (CI does; deploy/test.sh as root)"
    );
}

/// The CPU list a process may run on (`Cpus_allowed_list`).
fn cpus_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned()
}

fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

#[test]
fn the_source_is_reachable_only_over_ssh_and_a_client_migration_still_arrives() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let last_core = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let setup = SourceSetup {
        network: Network::Namespace,
        link_bits_per_s: None,
        cpus: Some(vec![last_core]),
    };
    let (source, dest) = rt.block_on(async {
        (
            Source::start_with(&dir.path().join("src"), Profile::Small, 41, &setup)
                .await
                .expect("source"),
            Destination::start(&dir.path().join("dst"), 1)
                .await
                .expect("destination"),
        )
    });
    let h = source.host.clone().expect("a host of its own");
    let slot = h.slot;

    // The route to the source is the veth, and the packet names the
    // source by that address, on port 22, as an operator would.
    let route = Command::new("ip")
        .args(["route", "get", &h.source_addr.to_string()])
        .output()
        .expect("ip route get");
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    assert!(route.contains(&format!("dev {}", h.link)), "{route}");
    assert_eq!(source.ssh_host(), h.source_addr.to_string());
    assert!(h.source_addr.is_private() && !h.source_addr.is_loopback());

    // Its database server cannot be reached from the destination's
    // network: not at the source's address, not on this machine's
    // loopback, not by its Unix socket (in a mount of its own).
    let port = source.db.port;
    assert!(refused(SocketAddr::from((h.source_addr, port))));
    assert!(refused(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
    assert!(!source.db.socket.exists(), "{}", source.db.socket.display());
    // Inside the source's host it listens, on its loopback only.
    h.tcp_inside(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .expect("the source's MariaDB listens on its own loopback");
    assert!(h
        .tcp_inside(SocketAddr::from((h.source_addr, port)))
        .is_err());
    // SSH is the way in: a tunnel through the source's sshd reaches it.
    let (login, opts) = source.root_login(dir.path());
    let tunnel = Tunnel::open(login, opts, "localhost", port).expect("tunnel");
    let through: u16 = rt.block_on(async {
        let mut c = mysql_async::Conn::new(tunnel.mysql_opts("admin", &source.admin_password))
            .await
            .expect("through the tunnel");
        let p: Option<u16> = c.query_first("SELECT @@port").await.expect("port");
        let _ = c.disconnect().await;
        p.expect("row")
    });
    assert_eq!(through, port);
    drop(tunnel);
    // The source's processes run on the core they were pinned to.
    for pid in [source.db.pid(), source.ssh.pid()] {
        assert_eq!(cpus_of(pid.expect("running")), last_core.to_string());
    }

    // A client migration with its databases crosses the link and arrives.
    let w = World::of(rt, dir, source, dest, "");
    let id = w
        .start(&jdoe_client(
            "<domain><name>jdoe.example</name></domain><domain><name>xn--bcher-kva.example</name></domain>",
        ))
        .expect("started");
    let status = w.wait(&id);
    assert!(status.contains("<success/>"), "{status}");
    let databases: Vec<String> = w
        .source
        .model
        .domains
        .iter()
        .filter(|d| d.name == "jdoe.example" || d.name == "xn--bcher-kva.example")
        .flat_map(|d| d.databases.iter().map(|db| db.name.clone()))
        .collect();
    assert!(!databases.is_empty());
    for db in &databases {
        w.assert_database(db, 0);
    }
    w.assert_content("jdoe.example", ("192.0.2.10", "198.51.100.4"));
    // What the migration read came across the link: the veth carried
    // at least the content and rows that arrived.
    let received: u64 =
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/rx_bytes", h.link))
            .expect("rx_bytes")
            .trim()
            .parse()
            .expect("a number");
    let report = w.report(&id);
    assert!(
        received > 100_000,
        "{received} bytes over the link: {report}"
    );

    // Gone with the world: namespace, link, owner file.
    drop(h);
    drop(w);
    assert!(!std::path::Path::new(&format!("/run/netns/hostmig-sb-{slot}")).exists());
    assert!(!std::path::Path::new(&format!("/sys/class/net/hmsb{slot}d")).exists());
    assert!(!host::owned_by_me().contains(&slot));
}

/// File bytes the trees of a migration sent, from its event log.
pub(crate) fn sent_bytes(state: &std::path::Path, id: &str) -> u64 {
    let log =
        std::fs::read_to_string(state.join(format!("migrations/{id}.jsonl"))).expect("event log");
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e.get("event")?.get("report")?.get("sent_bytes")?.as_u64())
        .sum()
}

/// Every pair of samples at most `window` apart: the bytes between them.
fn worst_window(samples: &[(Instant, u64)], window: Duration) -> (u64, usize) {
    let mut worst = 0;
    let mut pairs = 0;
    for (i, &(t0, b0)) in samples.iter().enumerate() {
        for &(t1, b1) in &samples[i + 1..] {
            if t1.duration_since(t0) > window {
                break;
            }
            pairs += 1;
            worst = worst.max(b1 - b0);
        }
    }
    (worst, pairs)
}

#[test]
fn caps_hold_over_every_window_and_two_migrations_share_the_global_cap() {
    require_root();
    const CAP: u64 = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let source = rt
        .block_on(Source::start(&dir.path().join("src"), Profile::Tiny, 5))
        .expect("source");
    let trees = [
        big_tree(&source.layout.vhosts, "cap-a.example", 5, 1 << 20),
        big_tree(&source.layout.vhosts, "cap-b.example", 4, 1 << 20),
    ];

    // 1. Two trees and rows through a tunnel at once, under a global cap
    // and a looser one of the source's (written with :22, the packet
    // without: one host), every read sampled as it is counted.
    let host = source.ssh_host();
    let caps = Caps::new(Some(CAP), &[(&format!("{host}:22"), 4 * CAP)]);
    let meters: Vec<Arc<Meter>> = (0..3).map(|_| caps.meter_for(&host)).collect();
    assert!(
        format!("{:?}", meters[0]).contains("Source"),
        "{:?}",
        meters[0]
    );
    let samples = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let total: u64 = meters.iter().map(|m| m.read_bytes()).sum();
                samples
                    .lock()
                    .expect("samples")
                    .push((Instant::now(), total));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut readers = Vec::new();
        for (i, tree) in trees.iter().enumerate() {
            let (meter, source, dir) = (meters[i].clone(), &source, dir.path());
            readers.push(s.spawn(move || {
                let job = TreeJob {
                    label: format!("web content of tree {i}"),
                    remote: tree.clone(),
                    local: dir.join(format!("copy-{i}")),
                    transport: Transport::Archive,
                    staging: dir.join(format!("staging-{i}")),
                    owner: None,
                    conf_remap: None,
                    rewritten: Rewrites::new(),
                    meter,
                    compression: hostmig::transfer::link::Codec::None,
                };
                let copy = [session(source, dir)];
                let hasher = session(source, dir);
                let report = sync_tree(&copy, &hasher, &job, &AtomicBool::new(false), &mut |_| {})
                    .expect("copied and verified under the cap");
                assert_eq!(report.sent_bytes, report.bytes);
            }));
        }
        let (meter, source, dir) = (meters[2].clone(), &source, dir.path());
        readers.push(s.spawn(move || {
            let (login, opts) = source.root_login(dir);
            let tunnel = Tunnel::open_metered(login, opts, "localhost", source.db.port, meter)
                .expect("tunnel");
            let value: Vec<u8> = crate::harness::sandbox::rt().block_on(async {
                let mut c =
                    mysql_async::Conn::new(tunnel.mysql_opts("admin", &source.admin_password))
                        .await
                        .expect("through the tunnel");
                let v: Option<Vec<u8>> = c
                    .query_first("SELECT REPEAT(SHA2('cap', 256), 40000)")
                    .await
                    .expect("select");
                let _ = c.disconnect().await;
                v.expect("row")
            });
            assert_eq!(value.len(), 64 * 40000);
        }));
        for r in readers {
            r.join().expect("a capped reader");
        }
        done.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler");
    });
    let elapsed = started.elapsed();
    let samples = samples.into_inner().expect("samples");
    let total = samples.last().map_or(0, |s| s.1);
    assert!(total >= (9 << 20) + 64 * 40000, "{total}");
    // Over any 10 s: at most 5 % above the cap.
    let (worst, pairs) = worst_window(&samples, Duration::from_secs(10));
    assert!(pairs > 100, "{pairs} windows in {elapsed:?}");
    eprintln!(
        "capped readers: {total} bytes in {:.2} s ({:.3} of the cap on average); worst 10 s window {worst} bytes = {:.4} of the cap, {pairs} windows",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() / CAP as f64,
        worst as f64 / (CAP as f64 * 10.0)
    );
    assert!(
        worst as f64 <= 1.05 * CAP as f64 * 10.0,
        "{worst} bytes in a 10 s window, cap {CAP}/s"
    );
    // And on the whole: never faster than the cap over the time it ran.
    assert!(
        elapsed.as_secs_f64() * 1.05 * CAP as f64 >= total as f64,
        "{total} bytes in {elapsed:?}"
    );

    // 2. Through the daemon: two migrations at once share the global cap;
    // their status says so while they are held back.
    let dest = rt
        .block_on(Destination::start(&dir.path().join("dst"), 1))
        .expect("destination");
    for tree in &trees {
        std::fs::remove_dir_all(tree).expect("remove the library test's tree");
    }
    let big = [
        big_tree(
            &source.layout.vhosts,
            "xn--bcher-kva.example/httpdocs/big-a",
            3,
            1 << 20,
        ),
        big_tree(
            &source.layout.vhosts,
            "admin-site.example/httpdocs/big-b",
            3,
            1 << 20,
        ),
    ];
    let w = World::of(
        rt,
        dir,
        source,
        dest,
        &format!("\n[migrations]\nmax_bytes_per_s = {CAP}\n"),
    );
    let domain = |name: &str, old: &str, new: &str| {
        crate::harness::world::mapped_domain("admin", name, (old, new))
    };
    let t = Instant::now();
    let first = w
        .start_as(
            "root",
            "",
            &domain("xn--bcher-kva.example", "192.0.2.10", "198.51.100.4"),
            "<only-hosting/>",
        )
        .expect("started");
    let second = w
        .start_as(
            "root",
            "",
            &domain("admin-site.example", "192.0.2.100", "198.51.100.5"),
            "<only-hosting/>",
        )
        .expect("started");
    let mut held = None;
    let mut statuses = Vec::new();
    for id in [&first, &second] {
        loop {
            let status = w.status(id);
            if status.contains(
                "held back by the cap of 1.0 MiB/s on all sources (migrations.max_bytes_per_s)",
            ) {
                held.get_or_insert(status.clone());
            }
            if status.contains("<finished>") {
                statuses.push(status);
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(180), "{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let elapsed = t.elapsed();
    eprintln!(
        "two capped migrations: {:.2} s; held back: {}",
        elapsed.as_secs_f64(),
        held.as_deref().unwrap_or("never")
    );
    for s in &statuses {
        assert!(s.contains("<success/>"), "{s}");
    }
    assert!(
        held.is_some(),
        "no status said the cap held the migrations back"
    );
    // Together they read at least the file bytes their trees sent (their
    // event logs say), never faster than the cap allows over the time
    // they ran.
    let moved: u64 = [&first, &second]
        .iter()
        .map(|id| sent_bytes(&w.dest.state, id))
        .sum();
    assert!(moved >= 6 << 20, "{moved}");
    eprintln!(
        "the two migrations sent {moved} bytes of files: {:.3} of the cap on average",
        moved as f64 / elapsed.as_secs_f64() / CAP as f64
    );
    assert!(
        moved as f64 <= 1.05 * CAP as f64 * elapsed.as_secs_f64() + (CAP / 10) as f64,
        "{moved} bytes in {elapsed:?} under a cap of {CAP}/s"
    );
    for tree in &big {
        let relative = tree
            .strip_prefix(&w.source.layout.vhosts)
            .expect("under vhosts");
        assert_eq!(
            hostmig::sandbox::compare::manifest(tree).expect("manifest"),
            hostmig::sandbox::compare::manifest(&w.dest.vhosts.join(relative)).expect("arrived"),
        );
    }
}
