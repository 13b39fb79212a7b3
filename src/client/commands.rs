//! The client's subcommands, each one or a few API operations.

use std::io::Write;
use std::time::Duration;

use super::output::{safe, to_json};
use super::{child, children, esc, text_of, Connection, Failure, FAILED, OK};
use crate::rpc::xml::Element;

/// What a `migrate` starts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MigrateArgs {
    /// The source: [user@]host[:port] (user: root).
    #[arg(long, value_name = "USER@HOST")]
    pub from: String,
    /// The source's SSH password (empty: the daemon's configured key).
    #[arg(skip)]
    pub password: String,
    /// A client to migrate (repeat for more); alone, its account only:
    /// name its domains with --domain (one client then).
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
    /// A domain to migrate (repeat for more): the named client's, or
    /// one given to --to-owner.
    #[arg(long = "domain", value_name = "NAME")]
    pub domains: Vec<String>,
    /// Who receives the domains (default admin; clients go to admin).
    #[arg(long, value_name = "LOGIN", default_value = "")]
    pub to_owner: String,
    /// An address mapping: OLD=NEW (shared) or exclusive:OLD=exclusive:NEW.
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub maps: Vec<String>,
    /// A database server mapping: OLDHOST:PORT=NEWHOST:PORT (MySQL).
    #[arg(long = "db-map", value_name = "OLD=NEW")]
    pub db_maps: Vec<String>,
    /// Content transport: archive or rsync.
    #[arg(long, value_parser = ["archive", "rsync"])]
    pub transport: Option<String>,
    /// Mail only: mail names and their content.
    #[arg(long, conflicts_with = "only_hosting")]
    pub only_mail: bool,
    /// Hosting only: web content and databases, no mail.
    #[arg(long)]
    pub only_hosting: bool,
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// An address mapping as the packet's `<ip>`.
fn ip_element(map: &str) -> Result<String, Failure> {
    let usage = || {
        Failure::new(
            super::USAGE,
            format!(
                "--map {}: expected OLD=NEW or exclusive:OLD=exclusive:NEW",
                safe(map)
            ),
        )
    };
    let (old, new) = map.split_once('=').ok_or_else(usage)?;
    let side = |s: &str| -> Result<(String, String), Failure> {
        let (kind, address) = match s.split_once(':') {
            Some((k, a)) if k == "shared" || k == "exclusive" => (k.to_owned(), a.to_owned()),
            Some(_) => return Err(usage()),
            None => ("shared".to_owned(), s.to_owned()),
        };
        address.parse::<std::net::Ipv4Addr>().map_err(|_| usage())?;
        Ok((kind, address))
    };
    let (old, new) = (side(old)?, side(new)?);
    Ok(format!(
        "<ip><old><ip-type>{}</ip-type><ip-address>{}</ip-address></old><new><ip-type>{}</ip-type><ip-address>{}</ip-address></new></ip>",
        old.0, old.1, new.0, new.1
    ))
}

/// A database server mapping as the packet's `<db-server>`.
fn db_server_element(map: &str) -> Result<String, Failure> {
    let usage = || {
        Failure::new(
            super::USAGE,
            format!("--db-map {}: expected OLDHOST:PORT=NEWHOST:PORT", safe(map)),
        )
    };
    let (old, new) = map.split_once('=').ok_or_else(usage)?;
    let side = |s: &str| -> Result<String, Failure> {
        let (host, port) = s.rsplit_once(':').ok_or_else(usage)?;
        port.parse::<u16>().map_err(|_| usage())?;
        Ok(format!(
            "<host>{}</host><port>{port}</port><type>mysql</type>",
            esc(host)
        ))
    };
    Ok(format!(
        "<db-server><old>{}</old><new>{}</new></db-server>",
        side(old)?,
        side(new)?
    ))
}

/// The `start` packet of a `migrate`.
pub fn start_packet(a: &MigrateArgs) -> Result<String, Failure> {
    let (login, host) = match a.from.split_once('@') {
        Some((user, host)) => (user.to_owned(), host.to_owned()),
        None => ("root".to_owned(), a.from.clone()),
    };
    if host.is_empty() {
        return Err(Failure::new(
            super::USAGE,
            "--from: expected [user@]host[:port]",
        ));
    }
    let ips = a
        .maps
        .iter()
        .map(|m| ip_element(m))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let db_servers = a
        .db_maps
        .iter()
        .map(|m| db_server_element(m))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let owner = if a.to_owner.is_empty() {
        "admin"
    } else {
        &a.to_owner
    };
    let domain =
        |d: &String, ip: &str| format!("<domain><name>{}</name>{ip}{db_servers}</domain>", esc(d));
    let selection = match (a.clients.as_slice(), a.domains.is_empty()) {
        // One client with the domains named: every mapping goes on the
        // client (a mapping covers every use of its address).
        ([one], _) => {
            let domains: String = a.domains.iter().map(|d| domain(d, "")).collect();
            format!(
                "<migrate-clients><target-owner>admin</target-owner><client><name>{}</name>{ips}{domains}</client></migrate-clients>",
                esc(one)
            )
        }
        ([_, _, ..], true) => {
            if !db_servers.is_empty() {
                return Err(Failure::new(
                    super::USAGE,
                    "--db-map goes with --domain (name the client's domains, one client at a time)",
                ));
            }
            let clients: String = a
                .clients
                .iter()
                .map(|c| format!("<client><name>{}</name>{ips}</client>", esc(c)))
                .collect();
            format!(
                "<migrate-clients><target-owner>admin</target-owner>{clients}</migrate-clients>"
            )
        }
        ([], false) => {
            if a.maps.len() > 1 {
                return Err(Failure::new(
                    super::USAGE,
                    "with --domain alone give at most one --map (a domain has one address); name their client with --client, or start one migration per address",
                ));
            }
            let domains: String = a.domains.iter().map(|d| domain(d, &ips)).collect();
            format!(
                "<migrate-domains><target-owner>{}</target-owner>{domains}</migrate-domains>",
                esc(owner)
            )
        }
        ([_, _, ..], false) => {
            return Err(Failure::new(
                super::USAGE,
                "with --domain name one --client (whose domains they are), or none",
            ))
        }
        ([], true) => {
            return Err(Failure::new(
                super::USAGE,
                "name what to migrate: --client NAME (with its --domain NAMEs) or --domain NAME...",
            ))
        }
    };
    let transport = a
        .transport
        .as_ref()
        .map(|t| format!("<content-transport>{}</content-transport>", esc(t)))
        .unwrap_or_default();
    let scope = match (a.only_mail, a.only_hosting) {
        (true, false) => "<only-mail/>",
        (false, true) => "<only-hosting/>",
        (false, false) => "",
        (true, true) => {
            return Err(Failure::new(
                super::USAGE,
                "--only-mail and --only-hosting exclude each other",
            ))
        }
    };
    Ok(format!(
        "<start><host>{}</host><login>{}</login><password>{}</password><destination-host-directory/>{transport}{scope}<selected-objects>{selection}</selected-objects></start>",
        esc(&host),
        esc(&login),
        esc(&a.password)
    ))
}

/// `migrate`: starts it; answers its id.
pub fn migrate(conn: &Connection, a: &MigrateArgs, json: bool) -> Result<String, Failure> {
    let result = conn.call(&start_packet(a)?, "start")?;
    let id = text_of(&result, "migration_id").unwrap_or_default();
    if json {
        print_json(&serde_json::json!({ "migration_id": id }));
    } else {
        println!("migration {} started", safe(&id));
    }
    Ok(id)
}

/// An operation on one migration that answers a new (or the same) id:
/// `resync`, `resume`.
pub fn with_id(
    conn: &Connection,
    op: &str,
    id: &str,
    password: Option<&str>,
    json: bool,
) -> Result<i32, Failure> {
    let password = password
        .map(|p| format!("<password>{}</password>", esc(p)))
        .unwrap_or_default();
    let result = conn.call(
        &format!(
            "<{op}><migration_id>{}</migration_id>{password}</{op}>",
            esc(id)
        ),
        op,
    )?;
    let new = text_of(&result, "migration_id").unwrap_or_default();
    if json {
        print_json(&serde_json::json!({ "migration_id": new }));
    } else if op == "resume" {
        println!("migration {} resumed", safe(&new));
    } else {
        println!("migration {} started ({op} of {})", safe(&new), safe(id));
    }
    Ok(OK)
}

/// `stop`: the protocol's `finish`.
pub fn stop(conn: &Connection, id: &str, json: bool) -> Result<i32, Failure> {
    conn.call(
        &format!("<finish><migration_id>{}</migration_id></finish>", esc(id)),
        "finish",
    )?;
    if json {
        print_json(&serde_json::json!({ "migration_id": id, "stopped": true }));
    } else {
        println!("migration {} stopped", safe(id));
    }
    Ok(OK)
}

/// One migration's status line: (ended, succeeded, text).
fn status_line(status: &Element) -> (bool, bool, String) {
    if let Some(p) = child(status, "migration_status") {
        let total = text_of(p, "total").unwrap_or_default();
        let done = text_of(p, "completed").unwrap_or_default();
        let what = text_of(p, "description").unwrap_or_default();
        return (
            false,
            false,
            format!("{done} of {total} steps: {}", safe(&what)),
        );
    }
    let Some(f) = child(status, "finished") else {
        return (false, false, String::new());
    };
    if child(f, "success").is_some() {
        return (true, true, "finished: success".into());
    }
    let errors: Vec<String> = children(f, "error")
        .map(|e| {
            let object = child(e, "object")
                .map(|o| {
                    format!(
                        "{} {}: ",
                        text_of(o, "type").unwrap_or_default(),
                        safe(&text_of(o, "name").unwrap_or_default())
                    )
                })
                .unwrap_or_default();
            let messages: Vec<String> = children(e, "message").map(|m| safe(&m.text)).collect();
            format!("{object}{}", messages.join("; "))
        })
        .collect();
    (
        true,
        false,
        format!("finished with errors:\n  {}", errors.join("\n  ")),
    )
}

/// `status`.
pub fn status(conn: &Connection, id: &str, json: bool) -> Result<i32, Failure> {
    let result = conn.call(
        &format!(
            "<get_status><migration_id>{}</migration_id></get_status>",
            esc(id)
        ),
        "get_status",
    )?;
    if json {
        print_json(&to_json(&result));
    } else {
        println!("migration {}: {}", safe(id), status_line(&result).2);
    }
    Ok(OK)
}

/// `list`.
pub fn list(conn: &Connection, json: bool) -> Result<i32, Failure> {
    let result = conn.call("<list/>", "list")?;
    if json {
        let value = to_json(&result);
        print_json(value.get("migration").unwrap_or(&serde_json::json!([])));
        return Ok(OK);
    }
    println!(
        "{:<6} {:<12} {:<24} {:<26} OBJECTS / STATUS",
        "ID", "STATE", "SOURCE", "STARTED"
    );
    for m in children(&result, "migration") {
        let objects: Vec<String> = children(m, "object")
            .map(|o| {
                format!(
                    "{} {}",
                    text_of(o, "type").unwrap_or_default(),
                    safe(&text_of(o, "name").unwrap_or_default())
                )
            })
            .collect();
        println!(
            "{:<6} {:<12} {:<24} {:<26} {}",
            safe(&text_of(m, "migration_id").unwrap_or_default()),
            text_of(m, "state").unwrap_or_default(),
            safe(&text_of(m, "source").unwrap_or_default()),
            text_of(m, "started").unwrap_or_default(),
            objects.join(", ")
        );
        let line = status_line(m).2;
        if !line.is_empty() {
            println!("       {line}");
        }
    }
    Ok(OK)
}

/// `report`.
pub fn report(conn: &Connection, id: &str, json: bool) -> Result<i32, Failure> {
    let result = conn.call(
        &format!(
            "<get_report><migration_id>{}</migration_id></get_report>",
            esc(id)
        ),
        "get_report",
    )?;
    let report = child(&result, "report").unwrap_or(&result);
    if json {
        print_json(&to_json(report));
        return Ok(OK);
    }
    println!(
        "migration {} from {}: {}",
        safe(id),
        safe(&text_of(report, "source").unwrap_or_default()),
        text_of(report, "outcome").unwrap_or_default()
    );
    for o in children(report, "object") {
        println!(
            "  {} {}: {}",
            text_of(o, "type").unwrap_or_default(),
            safe(&text_of(o, "name").unwrap_or_default()),
            text_of(o, "outcome").unwrap_or_default()
        );
        for t in children(o, "tree") {
            println!(
                "    {} tree: {} files, {} bytes, verified {}",
                text_of(t, "kind").unwrap_or_default(),
                text_of(t, "files").unwrap_or_default(),
                text_of(t, "bytes").unwrap_or_default(),
                text_of(t, "verified").unwrap_or_default()
            );
        }
        for d in children(o, "database") {
            println!(
                "    database {}: {} rows on {}, verified {}",
                safe(&text_of(d, "name").unwrap_or_default()),
                text_of(d, "rows").unwrap_or_default(),
                safe(&text_of(d, "server").unwrap_or_default()),
                text_of(d, "verified").unwrap_or_default()
            );
        }
        for w in children(o, "warning") {
            println!("    warning: {}", safe(&w.text));
        }
        for e in children(o, "error") {
            println!("    error: {}", safe(&e.text));
        }
    }
    for e in children(report, "error") {
        println!("  error: {}", safe(&e.text));
    }
    Ok(OK)
}

/// `log`: the event log from line `from`; with `follow`, until the
/// migration ended and every line is printed.
pub fn log(
    conn: &Connection,
    id: &str,
    mut from: u64,
    follow: bool,
    json: bool,
) -> Result<i32, Failure> {
    let id_xml = esc(id);
    loop {
        let result = conn.call(
            &format!("<get_log><migration_id>{id_xml}</migration_id><from>{from}</from></get_log>"),
            "get_log",
        )?;
        let lines: Vec<&Element> = children(&result, "line").collect();
        let mut out = std::io::stdout().lock();
        for line in &lines {
            // JSON lines as they are (JSON escapes control characters).
            let _ = writeln!(
                out,
                "{}",
                if json {
                    line.text.clone()
                } else {
                    safe(&line.text)
                }
            );
        }
        drop(out);
        from = text_of(&result, "next")
            .and_then(|n| n.parse().ok())
            .unwrap_or(from + lines.len() as u64);
        if !lines.is_empty() {
            continue;
        }
        if !follow {
            return Ok(OK);
        }
        let status = conn.call(
            &format!("<get_status><migration_id>{id_xml}</migration_id></get_status>"),
            "get_status",
        )?;
        if status_line(&status).0 {
            // One last read: lines written as it ended.
            let last = conn.call(
                &format!(
                    "<get_log><migration_id>{id_xml}</migration_id><from>{from}</from></get_log>"
                ),
                "get_log",
            )?;
            for line in children(&last, "line") {
                println!(
                    "{}",
                    if json {
                        line.text.clone()
                    } else {
                        safe(&line.text)
                    }
                );
            }
            return Ok(OK);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What one copy under way shows: done of total, rate, time left.
fn item_line(item: &Element) -> (u64, u64, String) {
    let n = |tag: &str| -> u64 { text_of(item, tag).and_then(|t| t.parse().ok()).unwrap_or(0) };
    let (done, total) = (n("bytes_done"), n("bytes_total"));
    let mut parts = vec![format!(
        "{} of {}",
        super::output::bytes(done),
        super::output::bytes(total)
    )];
    if n("files_total") > 0 {
        parts.push(format!("{} of {} files", n("files_done"), n("files_total")));
    }
    if n("rows_total") > 0 {
        parts.push(format!("{} of ~{} rows", n("rows_done"), n("rows_total")));
    }
    let rate = n("rate");
    if rate > 0 {
        parts.push(format!("{}/s", super::output::bytes(rate)));
        if total > done {
            parts.push(format!("{} s left", (total - done) / rate));
        }
    }
    if let Some(r) = text_of(item, "retrying") {
        parts.push(format!("retrying ({})", safe(&r)));
    }
    (done, total.max(1), parts.join(", "))
}

/// `watch`: live progress of each migration until all ended (a bar per
/// migration, and one per copy under way with its rate and time left);
/// 0 when every one ended `success`.
pub fn watch(conn: &Connection, ids: &[String], json: bool) -> Result<i32, Failure> {
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::collections::HashMap;
    let multi = MultiProgress::with_draw_target(if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    };
    let migration_style =
        style("{prefix:>8} [{bar:30}] {pos}/{len} steps {elapsed_precise} {wide_msg}");
    let item_style = style("{prefix:>8}   [{bar:28}] {wide_msg}");
    let bars: Vec<ProgressBar> = ids
        .iter()
        .map(|id| {
            let bar = multi.add(ProgressBar::new(1));
            bar.set_style(migration_style.clone());
            bar.set_prefix(format!("#{}", safe(id)));
            bar
        })
        .collect();
    let mut item_bars: HashMap<(usize, String), ProgressBar> = HashMap::new();
    let mut outcomes: Vec<Option<(bool, String)>> = vec![None; ids.len()];
    let mut since: Vec<Option<(std::time::Instant, u64)>> = vec![None; ids.len()];
    loop {
        let list = conn.call("<list/>", "list")?;
        for (i, id) in ids.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            let Some(m) = children(&list, "migration")
                .find(|m| text_of(m, "migration_id").as_deref() == Some(id.as_str()))
            else {
                let text = format!("migration {} does not exist", safe(id));
                bars[i].abandon_with_message(text.clone());
                outcomes[i] = Some((false, text));
                continue;
            };
            if let Some(p) = child(m, "migration_status") {
                let n = |el: &Element, t: &str| -> u64 {
                    text_of(el, t).and_then(|v| v.parse().ok()).unwrap_or(0)
                };
                bars[i].set_length(n(p, "total").max(1));
                bars[i].set_position(n(p, "completed"));
                // The whole migration's bytes, and time left at the rate
                // seen since watching began.
                let (done, total) = (n(m, "bytes_done"), n(m, "bytes_total"));
                let first = *since[i].get_or_insert((std::time::Instant::now(), done));
                let secs = first.0.elapsed().as_secs_f64();
                let rate = (secs >= 2.0 && done > first.1).then(|| (done - first.1) as f64 / secs);
                let overall = match rate {
                    _ if total == 0 => String::new(),
                    Some(rate) if total > done => format!(
                        "{} of {}, {} s left; ",
                        super::output::bytes(done),
                        super::output::bytes(total),
                        ((total - done) as f64 / rate).ceil()
                    ),
                    _ => format!(
                        "{} of {}; ",
                        super::output::bytes(done),
                        super::output::bytes(total)
                    ),
                };
                let what = safe(&text_of(p, "description").unwrap_or_default());
                bars[i].set_message(format!("{overall}{what}"));
            }
            let mut seen = Vec::new();
            for item in children(m, "item") {
                let label = text_of(item, "label").unwrap_or_default();
                let bar = item_bars.entry((i, label.clone())).or_insert_with(|| {
                    let bar = multi.insert_after(&bars[i], ProgressBar::new(1));
                    bar.set_style(item_style.clone());
                    bar.set_prefix(safe(&label));
                    bar
                });
                let (done, total, text) = item_line(item);
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(text);
                seen.push(label);
            }
            item_bars.retain(|(owner, label), bar| {
                let keep = *owner != i || seen.contains(label);
                if !keep {
                    bar.finish_and_clear();
                }
                keep
            });
            let (ended, success, text) = status_line(m);
            if ended {
                bars[i].finish_with_message(if success { "success" } else { "failed" });
                outcomes[i] = Some((success, text));
            }
        }
        if outcomes.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let all_ok = outcomes.iter().flatten().all(|(ok, _)| *ok);
    if json {
        let list: Vec<serde_json::Value> = ids
            .iter()
            .zip(&outcomes)
            .map(|(id, o)| {
                let (ok, text) = o.clone().unwrap_or_default();
                serde_json::json!({ "migration_id": id, "success": ok, "outcome": text })
            })
            .collect();
        print_json(&serde_json::Value::Array(list));
    } else {
        for (id, o) in ids.iter().zip(&outcomes) {
            if let Some((_, text)) = o {
                println!("migration {}: {text}", safe(id));
            }
        }
    }
    Ok(if all_ok { OK } else { FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_packet_from_flags_and_the_usage_refusals() {
        let args = MigrateArgs {
            from: "192.0.2.7:2222".into(),
            domains: vec!["a<b.example".into()],
            to_owner: "jdoe".into(),
            maps: vec!["192.0.2.10=198.51.100.4".into()],
            db_maps: vec!["localhost:3306=db2:3307".into()],
            transport: Some("rsync".into()),
            only_hosting: true,
            ..MigrateArgs::default()
        };
        let packet = start_packet(&args).expect("packet");
        assert_eq!(
            packet,
            "<start><host>192.0.2.7:2222</host><login>root</login><password></password><destination-host-directory/><content-transport>rsync</content-transport><only-hosting/><selected-objects><migrate-domains><target-owner>jdoe</target-owner><domain><name>a&lt;b.example</name><ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old><new><ip-type>shared</ip-type><ip-address>198.51.100.4</ip-address></new></ip><db-server><old><host>localhost</host><port>3306</port><type>mysql</type></old><new><host>db2</host><port>3307</port><type>mysql</type></new></db-server></domain></migrate-domains></selected-objects></start>"
        );
        let usage = |a: MigrateArgs| start_packet(&a).expect_err("refused").status;
        assert_eq!(
            usage(MigrateArgs {
                from: "h".into(),
                ..MigrateArgs::default()
            }),
            super::super::USAGE
        );
        let bad_map = MigrateArgs {
            from: "h".into(),
            clients: vec!["jdoe".into()],
            maps: vec!["192.0.2.10=exclusive:not-an-ip".into()],
            ..MigrateArgs::default()
        };
        assert_eq!(usage(bad_map), super::super::USAGE);
        let db_map_with_clients = MigrateArgs {
            from: "h".into(),
            clients: vec!["jdoe".into(), "smith".into()],
            db_maps: vec!["a:1=b:2".into()],
            ..MigrateArgs::default()
        };
        assert_eq!(usage(db_map_with_clients), super::super::USAGE);
    }
}
