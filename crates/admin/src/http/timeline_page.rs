//! The printable page of an alarm's timeline: one self-contained HTML document (styles inline,
//! no script, no font or image fetched), laid out for A4 when printed. Times in the tenant's
//! time zone, with their distance from the alarm's creation.
use std::fmt::Write;

use jiff::tz::TimeZone;

use super::timeline::Timeline;

const STYLE: &str = "
body{font:10.5pt/1.35 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em;color:#111}
h1{font-size:16pt;margin:0 0 .2em}h2{font-size:12pt;margin:1.4em 0 .4em;border-bottom:1px solid #999}
.sub{color:#555;margin:0 0 1em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #bbb;padding:.25em .4em;text-align:left;vertical-align:top}
th{background:#eee}td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
.missed{color:#a00;font-weight:bold}.met{color:#060}.transition{background:#f4f7ff}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font-size:9pt}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dt{font-weight:bold}dd{margin:0}
@media print{body{margin:0}@page{size:A4;margin:15mm}tr{break-inside:avoid}}";

/// `&`, `<`, `>`, `"` and `'` as entities.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// `ms` as local date and time to the millisecond.
fn at(ms: i64, zone: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => {
            let d = t.to_zoned_datetime(zone.clone()).datetime();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                ms.rem_euclid(1000)
            )
        }
        Err(_) => ms.to_string(),
    }
}

/// Signed seconds from the alarm's creation.
fn rel(ms: i64, created: i64) -> String {
    format!("{:+.3} s", (ms - created) as f64 / 1000.0)
}

/// One row of the chronological table.
struct Row {
    ms: i64,
    class: &'static str,
    what: String,
    detail: String,
}

pub fn render(t: &Timeline, zone: &TimeZone, now_ms: i64) -> String {
    let a = &t.alarm;
    let c = a.created_ms;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Alarm {id} timeline</title><style>{STYLE}</style></head><body>\
         <h1>Alarm {id}: {tenant} / {device}</h1>\
         <p class=\"sub\">Timeline made {now} from the engine's records. Times in {zone} \
         (± from the alarm's creation). Window: {from} to {to}.</p>",
        id = a.id,
        tenant = esc(&a.tenant),
        device = esc(&a.device),
        now = esc(&at(now_ms, zone)),
        zone = esc(&t.time_zone),
        from = esc(&at(t.window.from_ms, zone)),
        to = esc(&at(t.window.to_ms, zone)),
    );
    h.push_str("<h2>The alarm</h2><dl>");
    let opt = |v: &Option<String>| v.as_deref().map(esc).unwrap_or_else(|| "–".into());
    let facts = [
        ("Kind", esc(&a.kind)),
        (
            "Code / priority",
            format!("{} / {}", esc(&a.code), a.priority),
        ),
        ("Device reference", esc(&a.reference)),
        ("Text", opt(&a.text)),
        ("Callback", esc(&a.callback.join(", "))),
        ("State now", esc(&a.state)),
        ("Centre", opt(&a.centre)),
        ("Operator", opt(&a.operator)),
        ("Outcome", opt(&a.outcome)),
        ("Created", esc(&at(c, zone))),
        (
            "Test alarm",
            if a.test { "yes".into() } else { "no".into() },
        ),
    ];
    for (k, v) in facts {
        let _ = write!(h, "<dt>{k}</dt><dd>{v}</dd>");
    }
    let s = &a.stages;
    for (k, v) in [
        ("Durable", s.durable_ms),
        ("Offered", s.offered_ms),
        ("Receipted", s.receipted_ms),
        ("Accepted", s.accepted_ms),
        ("Attended", s.attended_ms),
        ("Closed", s.closed_ms),
    ] {
        let v = v.map_or_else(
            || "–".into(),
            |ms| format!("{} ({})", at(ms, zone), rel(ms, c)),
        );
        let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    h.push_str("</dl>");

    let _ = write!(
        h,
        "<h2>Deadlines</h2><p>Configured for this device now: receipt {} s, accept {} s.</p>\
         <table><tr><th>Deadline</th><th>Centre</th><th>Started</th><th>Due</th>\
         <th>Outcome</th><th>Ended</th></tr>",
        t.receipt_deadline_ms / 1000,
        t.accept_deadline_ms / 1000
    );
    if t.deadlines.is_empty() {
        h.push_str(
            "<tr><td colspan=\"6\">No deadline ran (the alarm was never offered).</td></tr>",
        );
    }
    for d in &t.deadlines {
        let class = match d.outcome.as_str() {
            "missed" => "missed",
            "met" => "met",
            _ => "",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>\
             <td class=\"{class}\">{}</td><td class=\"t\">{}</td></tr>",
            esc(&d.kind),
            esc(&d.centre),
            esc(&at(d.started_ms, zone)),
            esc(&at(d.due_ms, zone)),
            esc(&d.outcome),
            d.ended_ms
                .map(|m| esc(&at(m, zone)))
                .unwrap_or_else(|| "–".into()),
        );
    }
    h.push_str("</table>");

    let mut rows: Vec<Row> = Vec::new();
    for r in &t.transitions {
        rows.push(Row {
            ms: r.at_ms,
            class: "transition",
            what: format!("{} by {}", esc(&r.action), esc(&r.actor)),
            detail: esc(&r.reason),
        });
    }
    for e in &t.events {
        let raw = match (&e.raw_text, &e.raw_hex) {
            (Some(text), _) => esc(text),
            (None, Some(hex)) => format!("(binary) {}", esc(hex)),
            _ => String::new(),
        };
        let opened = if e.opened_this_alarm {
            " (opened this alarm)"
        } else {
            ""
        };
        rows.push(Row {
            ms: e.received_ms,
            class: "",
            what: format!("message {} {}{opened}", esc(&e.kind), esc(&e.key)),
            detail: format!("<pre>{raw}</pre>"),
        });
    }
    for p in &t.positions {
        rows.push(Row {
            ms: p.time_ms,
            class: "",
            what: "position".into(),
            detail: format!(
                "{:.6}, {:.6}{}",
                p.lat,
                p.lon,
                p.accuracy_m
                    .map(|m| format!(" ± {m:.0} m"))
                    .unwrap_or_default()
            ),
        });
    }
    rows.sort_by_key(|r| r.ms);
    h.push_str(
        "<h2>What happened</h2><table><tr><th>Time</th><th>±</th><th>What</th><th>Detail</th></tr>",
    );
    for r in &rows {
        let _ = write!(
            h,
            "<tr class=\"{}\"><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td></tr>",
            r.class,
            esc(&at(r.ms, zone)),
            esc(&rel(r.ms, c)),
            r.what,
            r.detail
        );
    }
    h.push_str("</table>");
    if t.events_truncated {
        h.push_str("<p class=\"missed\">More messages were in the window than shown.</p>");
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn times_are_local_to_the_millisecond() {
        let z = TimeZone::get("Europe/Stockholm").unwrap();
        // 2023-11-14 22:13:20.123 UTC is 23:13:20.123 in Stockholm (winter time).
        assert_eq!(at(1_700_000_000_123, &z), "2023-11-14 23:13:20.123");
        assert_eq!(rel(1_500, 0), "+1.500 s");
    }
}
