//! The status page's HTML. Every value that comes from a source (names,
//! error texts, log lines) goes through [`esc`]: control characters shown
//! as escapes, then HTML-escaped. No inline script or style (the CSP
//! allows only the page's own files).

use std::fmt::Write;

use crate::client::output::{bytes, safe};
use crate::migration::report::Report;
use crate::migration::status::{ItemProgress, MigrationStatus, Progress};
use crate::rpc::response::Listed;

/// Text as HTML: control characters as escapes, then `& < > " '` escaped.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in safe(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page; `csrf` (when logged in) puts a logout button in its head.
pub fn layout(title: &str, body: &str, csrf: Option<&str>) -> String {
    let logout = csrf.map_or(String::new(), |t| {
        format!(
            "<form method=\"post\" action=\"/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"logout\">Log out</button></form>",
            esc(t)
        )
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - hostmig</title>\
<link rel=\"stylesheet\" href=\"/static/page.css\"><script src=\"/static/page.js\" defer></script></head>\
<body><header><a href=\"/\" class=\"home\">hostmig</a>{logout}</header><main>{body}</main></body></html>\n",
        esc(title)
    )
}

pub fn login(csrf: &str, message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" id=\"message\">{}</p>", esc(m))
    });
    layout(
        "Log in",
        &format!(
            "<h1>Log in</h1>{message}<form method=\"post\" action=\"/login\" id=\"login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label>Login <input name=\"login\" id=\"login-name\" autocomplete=\"username\" required></label>\
<label>Password <input name=\"password\" id=\"login-password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\" id=\"login-submit\">Log in</button></form>",
            esc(csrf)
        ),
        None,
    )
}

/// The list of migrations, refreshed in place (`live`).
pub fn overview(listed: &[Listed], csrf: &str) -> String {
    layout(
        "Migrations",
        &format!(
            "<h1>Migrations</h1><div id=\"live\" data-src=\"/live\">{}</div>",
            overview_live(listed)
        ),
        Some(csrf),
    )
}

pub fn overview_live(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "<p id=\"none\">No migrations yet.</p>".into();
    }
    let mut out = String::from(
        "<table id=\"migrations\"><thead><tr><th>ID</th><th>State</th><th>Source</th><th>Objects</th><th>Started</th><th>Progress</th></tr></thead><tbody>",
    );
    for l in listed {
        let objects: Vec<String> = l
            .objects
            .iter()
            .map(|(kind, name)| format!("{} {}", kind.as_str(), esc(name)))
            .collect();
        let _ = write!(
            out,
            "<tr id=\"migration-{id}\" data-state=\"{state}\"><td><a href=\"/migration/{id}\">{id}</a></td><td class=\"state\">{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.source),
            objects.join(", "),
            esc(&l.started),
            l.status.as_ref().map_or(String::new(), summary),
            id = l.id,
            state = l.state,
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// One line of a status: bars of steps and bytes, rate, time left; or
/// the outcome.
fn summary(status: &MigrationStatus) -> String {
    match status {
        MigrationStatus::InProgress(p) => {
            let rate: u64 = p.items.iter().map(|i| i.rate).sum();
            format!(
                "<progress class=\"steps\" max=\"{}\" value=\"{}\"></progress> {} of {} steps; {}",
                p.total.max(1),
                p.completed,
                p.completed,
                p.total,
                amounts(p.bytes.done, p.bytes.total, rate)
            )
        }
        MigrationStatus::Finished { errors } if errors.is_empty() => {
            "<span class=\"outcome success\">success</span>".into()
        }
        MigrationStatus::Finished { errors } => format!(
            "<span class=\"outcome failed\">failed</span> ({} error{})",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ),
    }
}

/// "1.2 MiB of 10.0 MiB, 3.0 MiB/s, 3 s left".
fn amounts(done: u64, total: u64, rate: u64) -> String {
    let mut text = format!(
        "<span class=\"bytes\">{} of {}</span>",
        bytes(done),
        bytes(total)
    );
    if rate > 0 {
        let _ = write!(text, ", {}/s", bytes(rate));
        if total > done {
            let _ = write!(
                text,
                ", <span class=\"left\">{}</span> left",
                duration((total - done) / rate)
            );
        }
    }
    text
}

/// "42 s", "3 min 20 s", "2 h 5 min".
fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs / 60 % 60),
    }
}

/// A migration's own page: its live status and report, its log, and the
/// stop button.
pub fn detail(
    id: u64,
    listed: &Listed,
    report: Option<&Report>,
    log: Result<(Vec<String>, u64), String>,
    csrf: &str,
) -> String {
    let stop = if matches!(listed.state, "queued" | "running" | "interrupted") {
        format!(
            "<form method=\"post\" action=\"/migration/{id}/stop\" id=\"stop\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"stop-button\">Stop this migration…</button></form>",
            esc(csrf)
        )
    } else {
        String::new()
    };
    let log = match log {
        Ok((lines, next)) => {
            let items: String = lines.iter().map(|l| log_line(l)).collect();
            format!("<ol id=\"log\" data-src=\"/migration/{id}/log\" data-next=\"{next}\" start=\"{}\">{items}</ol>", next.saturating_sub(lines.len() as u64).max(1))
        }
        Err(e) => format!("<p class=\"note\" id=\"log\">{}</p>", esc(&e)),
    };
    layout(
        &format!("Migration {id}"),
        &format!(
            "<h1>Migration {id} from {}</h1>{stop}<div id=\"live\" data-src=\"/migration/{id}/live\">{}</div>\
<h2>Event log</h2>{log}",
            esc(&listed.source),
            detail_live(listed, report)
        ),
        Some(csrf),
    )
}

pub fn detail_live(listed: &Listed, report: Option<&Report>) -> String {
    let mut out = format!(
        "<p>State: <span class=\"state\" id=\"state\" data-state=\"{s}\">{s}</span>",
        s = report.map_or(listed.state, |r| r.outcome.as_str())
    );
    match &listed.status {
        Some(MigrationStatus::InProgress(p)) => {
            let _ = write!(
                out,
                " — <span id=\"description\">{}</span></p>",
                esc(&p.description())
            );
            out.push_str(&progress(p));
        }
        Some(MigrationStatus::Finished { errors }) => {
            out.push_str("</p>");
            if !errors.is_empty() {
                out.push_str("<ul class=\"errors\">");
                for e in errors {
                    for m in &e.messages {
                        let about = e.object.as_ref().map_or(String::new(), |o| {
                            format!("{} {}: ", o.kind.as_str(), esc(&o.name))
                        });
                        let _ = write!(out, "<li>{about}{}</li>", esc(m));
                    }
                }
                out.push_str("</ul>");
            }
        }
        None => out.push_str("</p>"),
    }
    if let Some(r) = report {
        out.push_str(&report_table(r));
    }
    out
}

fn progress(p: &Progress) -> String {
    let rate: u64 = p.items.iter().map(|i| i.rate).sum();
    let mut out = format!(
        "<p><progress id=\"steps\" max=\"{}\" value=\"{}\"></progress> {} of {} steps</p>\
<p><progress id=\"bytes\" max=\"{}\" value=\"{}\"></progress> {}</p>",
        p.total.max(1),
        p.completed,
        p.completed,
        p.total,
        p.bytes.total.max(1),
        p.bytes.done.min(p.bytes.total.max(1)),
        amounts(p.bytes.done, p.bytes.total, rate)
    );
    if let Some(cap) = &p.held_back {
        let _ = write!(
            out,
            "<p class=\"note\">held back by {}</p>",
            esc(&cap.describe())
        );
    }
    if !p.items.is_empty() {
        out.push_str("<table id=\"items\"><thead><tr><th>Copying</th><th>Phase</th><th>Progress</th><th>Files</th><th>Rows</th></tr></thead><tbody>");
        for i in &p.items {
            out.push_str(&item(i));
        }
        out.push_str("</tbody></table>");
    }
    out
}

fn item(i: &ItemProgress) -> String {
    let counted = |done: u64, total: u64| {
        if total > 0 {
            format!("{done} of {total}")
        } else if done > 0 {
            done.to_string()
        } else {
            String::new()
        }
    };
    let retry = i.retrying.as_ref().map_or(String::new(), |r| {
        format!(
            "<br><span class=\"note\">{}</span>",
            esc(&r.describe(&i.item.label()))
        )
    });
    format!(
        "<tr class=\"item\"><td>{}{retry}</td><td>{:?}</td><td><progress max=\"{}\" value=\"{}\"></progress> {}</td><td>{}</td><td>{}</td></tr>",
        esc(&i.item.label()),
        i.phase,
        i.bytes_total.max(1),
        i.bytes_done.min(i.bytes_total.max(1)),
        amounts(i.bytes_done, i.bytes_total, i.rate),
        counted(i.files_done, i.files_total),
        counted(i.rows_done, i.rows_total),
    )
}

/// The per-object report: outcome, trees, databases, warnings, errors.
fn report_table(r: &Report) -> String {
    let mut out = String::from("<h2>Report</h2>");
    if !r.errors.is_empty() {
        out.push_str("<ul class=\"errors\">");
        for e in &r.errors {
            let _ = write!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul>");
    }
    out.push_str("<table id=\"report\"><thead><tr><th>Object</th><th>Outcome</th><th>Content and databases</th><th>Warnings and errors</th></tr></thead><tbody>");
    for o in &r.objects {
        let mut copies = Vec::new();
        for t in &o.trees {
            copies.push(format!(
                "{} content: {} ({} files, {}{})",
                esc(&t.kind),
                t.outcome.as_str(),
                t.files,
                bytes(t.bytes),
                if t.verified { ", verified" } else { "" }
            ));
        }
        for d in &o.databases {
            copies.push(format!(
                "database {} on {}: {} ({} tables, {} rows{})",
                esc(&d.name),
                esc(&d.server),
                d.outcome.as_str(),
                d.tables,
                d.rows,
                if d.verified { ", verified" } else { "" }
            ));
        }
        let notes: Vec<String> = o
            .warnings
            .iter()
            .map(|w| format!("<span class=\"warning\">{}</span>", esc(w)))
            .chain(
                o.errors
                    .iter()
                    .map(|e| format!("<span class=\"error\">{}</span>", esc(e))),
            )
            .collect();
        let _ = write!(
            out,
            "<tr class=\"object\" data-outcome=\"{outcome}\"><td>{} {}</td><td class=\"outcome {outcome}\">{outcome}</td><td>{}</td><td>{}</td></tr>",
            o.kind.as_str(),
            esc(&o.name),
            copies.join("<br>"),
            notes.join("<br>"),
            outcome = o.outcome.as_str(),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// One event log line (`{"at": ms, "event": {...}}`) as a list item: its
/// time in UTC and the event.
pub fn log_line(line: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(line).ok();
    let (at, event) = match &parsed {
        Some(v) => (
            v["at"]
                .as_u64()
                .map_or(String::new(), |ms| crate::observe::utc(ms / 1000)),
            v.get("event").map_or(line.to_owned(), |e| e.to_string()),
        ),
        None => (String::new(), line.to_owned()),
    };
    format!(
        "<li><time>{}</time> <code>{}</code></li>",
        esc(&at),
        esc(&event)
    )
}

pub fn confirm_stop(id: u64, source: &str, csrf: &str) -> String {
    layout(
        &format!("Stop migration {id}"),
        &format!(
            "<h1>Stop migration {id} from {}?</h1><p>What it has deployed stays; what it has not deployed is not migrated, and the report says so.</p>\
<form method=\"post\" action=\"/migration/{id}/stop\" id=\"confirm\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
<button type=\"submit\" id=\"confirm-stop\">Stop migration {id}</button> <a href=\"/migration/{id}\" id=\"cancel\">Cancel</a></form>",
            esc(source),
            esc(csrf)
        ),
        Some(csrf),
    )
}

/// A page that says what went wrong and where to go.
pub fn problem(title: &str, text: &str, csrf: Option<&str>) -> String {
    layout(
        title,
        &format!(
            "<h1>{}</h1><p id=\"message\">{}</p><p><a href=\"/\">Back to the migrations</a></p>",
            esc(title),
            esc(text)
        ),
        csrf,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_control_characters_shown() {
        assert_eq!(
            esc("<script>\"x\" & 'y'\u{1b}[0m"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;\\u{1b}[0m"
        );
        let line = r#"{"at":1796287599000,"event":{"warning":"<b>"}}"#;
        let li = log_line(line);
        assert!(li.contains("2026-12-03T08:46:39Z"), "{li}");
        assert!(li.contains("&lt;b&gt;") && !li.contains("<b>"), "{li}");
        assert_eq!(duration(3725), "1 h 2 min");
    }
}
