//! One alarm's timeline (`GET /api/v1/alarms/{id}/timeline`, `vaka serve`, RocksDB): an alarm
//! whose first centre misses its receipt deadline and whose second takes it shows every
//! transition with time, actor and reason, the three deadlines (the first missed), the
//! device's messages (the opening one marked) and positions around it; as JSON and as a
//! self-contained printable page (headless Chromium prints it to an A4 PDF, every host
//! unresolvable); another tenant's admin does not see it.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use std::time::Duration;

use admin::{Engine, OPERATOR};
use serde_json::Value;
use vaka_device::events;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\", \"c2\"]\n\
    receipt_deadline_secs = 1\naccept_deadline_secs = 60\n\
    [[tenants]]\nid = \"t2\"\ncentres = []\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-one\"\n\
    [[centres]]\nid = \"c2\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-two\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"q1\"\ntype = \"0003\"\n";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalated_alarms_timeline_shows_what_happened_and_which_deadline_was_missed() {
    let engine = Engine::start(DIRECTORY, &[("t", &["q1"])]);
    let mut c1 = engine.centre("token-of-centre-one").await;
    let mut c2 = engine.centre("token-of-centre-two").await;
    let q1 = engine.quic_client("t", "q1").await;
    let t0 = now_ms();
    for i in 0..3 {
        let fix = events::position(
            format!("p{i}"),
            t0 - 3_000 + i * 1_000,
            57.7,
            11.97,
            Some(5.0),
        );
        q1.send(fix).await.unwrap();
    }
    let mut alarm = events::alarm("a1", "0010", 9);
    if let Some(vaka_device::pb::event::Body::Alarm(a)) = &mut alarm.body {
        a.text = Some("<fell> & could not rise".into());
    }
    q1.send(alarm).await.unwrap();
    // c1 is offered it and stays silent: after a second it goes to c2.
    let id = c1
        .offer(Duration::from_secs(10))
        .await
        .alarm
        .unwrap()
        .alarm_id;
    let o = c2.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(o.alarm_id, id);
    c2.receipt(id).await;
    c2.accept(id).await;
    c2.close_with(id, "visited", "helped up").await;

    let path = format!("/api/v1/alarms/{id}/timeline");
    let t = engine.get(&path, OPERATOR).json();
    let actions: Vec<&str> = t["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "offered to c1",
        "escalated",
        "offered to c2",
        "receipt",
        "accepted",
        "closed",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let escalated = t["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "escalated")
        .unwrap();
    assert_eq!(escalated["actor"], "engine");
    assert_eq!(escalated["reason"], "no receipt from c1");
    let d: Vec<(String, String, String)> = t["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_owned();
            (s("kind"), s("centre"), s("outcome"))
        })
        .collect();
    let d: Vec<(&str, &str, &str)> = d
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        d,
        [
            ("receipt", "c1", "missed"),
            ("receipt", "c2", "met"),
            ("accept", "c2", "met")
        ],
        "{t}"
    );
    assert_eq!(t["receipt_deadline_ms"], 1_000);
    let evs = t["events"].as_array().unwrap();
    let opening: Vec<&Value> = evs
        .iter()
        .filter(|e| e["opened_this_alarm"] == true)
        .collect();
    assert_eq!(opening.len(), 1, "{t}");
    assert_eq!(opening[0]["kind"], "alarm");
    assert!(
        opening[0]["raw_hex"].is_string(),
        "vaka/1 messages are binary: {t}"
    );
    assert!(
        evs.iter().filter(|e| e["kind"] == "position").count() >= 3,
        "{t}"
    );
    assert!(t["positions"].as_array().unwrap().len() >= 3, "{t}");
    assert_eq!(t["time_zone"], "Europe/Stockholm");

    // The page: by query or by Accept, self-contained, the text escaped.
    for (p, accept) in [
        (format!("{path}?format=html"), "*/*"),
        (path.clone(), "text/html,application/xhtml+xml"),
    ] {
        let r = engine.call("GET", &p, Some(OPERATOR), None, &[("Accept", accept)]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.content_type.starts_with("text/html"),
            "{}",
            r.content_type
        );
        let page = &r.body;
        assert!(page.contains(&format!("Alarm {id}: t / q1")), "{page}");
        assert!(page.contains("no receipt from c1"));
        assert!(page.contains("<td class=\"missed\">missed</td>"), "{page}");
        assert!(page.contains("&lt;fell&gt; &amp; could not rise"), "{page}");
        assert!(!page.contains("<fell>"));
        assert!(page.contains("(opened this alarm)"));
        assert!(page.contains("@media print"));
        for external in [
            "<script", "src=", "href=", "http://", "https://", "@import", "url(",
        ] {
            assert!(
                !page.contains(external),
                "the page fetches something: {external}"
            );
        }
    }

    // It prints: headless Chromium, with every host unresolvable, makes an A4 PDF of it.
    let page = engine.get(&format!("{path}?format=html"), OPERATOR).body;
    print_to_pdf(&page);

    // Tenant-scoped: its own admin sees it, another tenant's does not.
    let (_, own) = engine.tenant_admin("t");
    assert_eq!(engine.get(&path, &own).status, 200);
    let (_, other) = engine.tenant_admin("t2");
    let r = engine.get(&path, &other);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = engine.get(&format!("{path}?format=html"), &other);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        engine
            .get("/api/v1/alarms/999999/timeline", OPERATOR)
            .status,
        404
    );
    let r = engine.get(&format!("{path}?window_secs=999999"), OPERATOR);
    assert_eq!(r.status, 422, "{}", r.body);
}

/// Prints `page` to PDF with headless Chromium (when installed) and checks the PDF is A4.
fn print_to_pdf(page: &str) {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!("no /usr/bin/chromium: the page is not printed to PDF here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (html, pdf) = (dir.path().join("t.html"), dir.path().join("t.pdf"));
    std::fs::write(&html, page).unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let bytes = std::fs::read(&pdf)
        .unwrap_or_else(|e| panic!("no PDF ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(bytes.starts_with(b"%PDF"), "not a PDF");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("/MediaBox [0 0 594.9"),
        "not A4 (595 x 842 pt)"
    );
}
