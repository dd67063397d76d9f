//! The operators' pages in a real browser (Debian's headless Chromium through chromedriver,
//! driven by `tests/python/dashboard_browser.py`) against `vaka serve` under load: the live
//! figures move and agree with /metrics and the admin API, a tenant admin sees only their
//! tenant, the alarm page shows the whole timeline, the statistics page the API's figures, and a
//! wrong token is refused. Screenshots are saved under the target directory (the path is printed).
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vaka_device::events;

const DIRECTORY: &str = "[[tenants]]\nid = \"t1\"\ncentres = [\"c1\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
    [[tenants]]\nid = \"t2\"\ncentres = [\"c1\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t1\", \"t2\"]\ntoken = \"token-of-the-alarm-centre\"\n\
    [[devices]]\ntenant = \"t1\"\nid = \"a1\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t1\"\nid = \"a2\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t1\"\nid = \"a3\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t1\"\nid = \"a4\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t2\"\nid = \"b1\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t2\"\nid = \"b2\"\ntype = \"0003\"\n";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one harness subcommand; its JSON answer.
fn browser(args: &[&str]) -> Value {
    let py = std::env::var("VAKA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = format!(
        "{}/tests/python/dashboard_browser.py",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let out = Command::new(&py)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "dashboard_browser.py {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// [`browser`] off the test's runtime (the engine's load keeps running on it meanwhile).
async fn browse(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        browser(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// The sum of a metric's samples in /metrics whose label set contains `labels` (e.g.
/// `stage="quic"`), 0 when absent.
fn metric(engine: &Engine, name: &str, labels: &str) -> f64 {
    let text = binary::get_metrics(engine.http).expect("/metrics answers");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.is_empty() || l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn open_alarm_ids(engine: &Engine, tenant: &str) -> Vec<String> {
    engine
        .alarms(tenant, "state=open&limit=1000")
        .iter()
        .map(|a| a["id"].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_figures_that_agree_with_the_engine() {
    let engine = Engine::start(
        DIRECTORY,
        &[("t1", &["a1", "a2", "a3", "a4"]), ("t2", &["b1", "b2"])],
    );
    let base = engine.url("");
    let base = base.trim_end_matches('/').to_owned();
    let shots = screenshots();
    let shots_arg = shots.to_str().unwrap().to_owned();
    eprintln!("screenshots in {}", shots.display());
    let mut centre = engine.centre("token-of-the-alarm-centre").await;
    let a1 = engine.quic_client("t1", "a1").await;
    let mut alarming = Vec::new();
    for (t, d) in [
        ("t1", "a2"),
        ("t2", "b1"),
        ("t1", "a3"),
        ("t2", "b2"),
        ("t1", "a4"),
    ] {
        alarming.push(engine.quic_client(t, d).await);
    }

    // One alarm handled from start to close: the alarm page's timeline.
    a1.send(events::alarm("x1", "0010", 5)).await.unwrap();
    let handled = centre
        .offer(Duration::from_secs(5))
        .await
        .alarm
        .unwrap()
        .alarm_id;
    centre.handle_and_close(handled).await;

    // Load while the browser looks: positions, and every 1.5 s one more device of either tenant
    // alarms (left open, so the open alarms grow).
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            // Until every device alarmed and the browser has seen the figures move.
            while n / 10 < alarming.len() || running.load(Ordering::Relaxed) {
                n += 1;
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let pos = events::position(format!("p{n}"), at, 57.7, 11.97, Some(8.0));
                let _ = alarming[0].send(pos).await;
                if n.is_multiple_of(10) && n / 10 <= alarming.len() {
                    let device = &alarming[n / 10 - 1];
                    let _ = device.send(events::alarm(format!("l{n}"), "0010", 5)).await;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // The platform operator's view: the open alarms move while the load runs.
    let op = browse(&[
        "dashboard",
        "--base",
        &base,
        "--token",
        OPERATOR,
        "--screenshots",
        &shots_arg,
        "--wait-moving",
        "alarms.open",
        "--timeout",
        "30",
    ])
    .await;
    running.store(false, Ordering::Relaxed);
    load.await.unwrap();
    let (first, second) = (&op["first"], &op["second"]);
    assert!(
        second["alarms.open"].as_f64() > first["alarms.open"].as_f64(),
        "the open alarms moved: {op}"
    );
    assert!(
        op["scope"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("platform"),
        "{op}"
    );
    assert!(
        second["events_per_second.quic"].as_f64().unwrap() > 0.0,
        "{op}"
    );
    assert!(
        second["alarms_per_second.quic"].is_number(),
        "alarms/s by front: {op}"
    );

    // Once the load has stopped, the page's figures equal /metrics and the admin API.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = browse(&[
        "dashboard",
        "--base",
        &base,
        "--token",
        OPERATOR,
        "--screenshots",
        &shots_arg,
    ])
    .await;
    let shown = &still["first"];
    let open_t1 = open_alarm_ids(&engine, "t1");
    let open_t2 = open_alarm_ids(&engine, "t2");
    assert_eq!(
        shown["alarms.open"].as_f64(),
        Some((open_t1.len() + open_t2.len()) as f64),
        "{still}"
    );
    for (name, metric_name, labels) in [
        ("connections.centres", "vaka_centres_connected", ""),
        (
            "connections.devices_quic",
            "vaka_connections_active",
            "stage=\"quic\"",
        ),
        ("deadline_misses", "vaka_deadlines_missed_total", ""),
        ("udp_drops.sip", "vaka_udp_drops_total", "socket=\"sip\""),
    ] {
        assert_eq!(
            shown[name].as_f64(),
            Some(metric(&engine, metric_name, labels)),
            "{name} on the page vs {metric_name} in /metrics: {still}"
        );
    }
    assert_eq!(shown["connections.centres"].as_f64(), Some(1.0));
    // a1 only: the load's devices went with it.
    assert_eq!(shown["connections.devices_quic"].as_f64(), Some(1.0));

    // A tenant admin of t2 sees t2's alarms only, and no engine-wide figures.
    let (_, t2_secret) = engine.tenant_admin("t2");
    let t2_shots = shots.join("tenant-t2");
    std::fs::create_dir_all(&t2_shots).unwrap();
    let tenant_view = browse(&[
        "dashboard",
        "--base",
        &base,
        "--token",
        &t2_secret,
        "--screenshots",
        t2_shots.to_str().unwrap(),
    ])
    .await;
    assert!(
        tenant_view["scope"].as_str().unwrap().contains("t2"),
        "{tenant_view}"
    );
    let ids: Vec<String> = tenant_view["recent_alarm_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.is_empty(), "t2 has open alarms: {tenant_view}");
    assert!(
        ids.iter().all(|id| open_t2.contains(id)),
        "{ids:?} vs {open_t2:?}"
    );
    assert_eq!(
        tenant_view["first"]["alarms.open"].as_f64(),
        Some(open_t2.len() as f64)
    );
    assert!(
        tenant_view["first"].get("udp_drops.sip").is_none()
            && tenant_view["first"].get("events_per_second.quic").is_none(),
        "engine-wide figures are not a tenant's: {tenant_view}"
    );
    // ...and may not open t1's alarm.
    let denied = Command::new("python3")
        .arg(format!(
            "{}/tests/python/dashboard_browser.py",
            std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
        ))
        .args([
            "alarm",
            "--base",
            &base,
            "--token",
            &engine.tenant_admin("t2").1,
        ])
        .args(["--id", &handled.to_string(), "--screenshots", &shots_arg])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(4), "{denied:?}");

    // The alarm page: the whole audit trail and the stage times, as the API has them.
    let detail = engine
        .get(&format!("/api/v1/alarms/{handled}"), OPERATOR)
        .json();
    let page = browse(&[
        "alarm",
        "--base",
        &base,
        "--token",
        OPERATOR,
        "--id",
        &handled.to_string(),
        "--screenshots",
        &shots_arg,
    ])
    .await;
    let rows = page["rows"].as_array().unwrap();
    let audit = detail["audit"].as_array().unwrap();
    assert_eq!(rows.len(), audit.len(), "{page}");
    for (row, rec) in rows.iter().zip(audit) {
        for k in ["actor", "action", "reason", "at_ms"] {
            assert_eq!(row[k], rec[k], "{k}: {row} vs {rec}");
        }
    }
    for stage in [
        "received_ms",
        "offered_ms",
        "receipted_ms",
        "accepted_ms",
        "closed_ms",
    ] {
        let want = &detail["alarm"]["stages"][stage];
        assert!(!want.is_null(), "{stage} of a closed alarm: {detail}");
        let key = stage.trim_end_matches("_ms");
        assert_eq!(
            page["stages"][key]
                .as_f64()
                .or(page["stages"][stage].as_f64()),
            want.as_f64(),
            "{stage}: {page}"
        );
    }

    // The statistics page shows the API's figures.
    let created = detail["alarm"]["created_ms"].as_i64().unwrap();
    let (from, to) = (created - 60_000, created + 3_600_000);
    let api = engine
        .get(
            &format!("/api/v1/tenants/t1/statistics?from_ms={from}&to_ms={to}"),
            OPERATOR,
        )
        .json();
    let stats = browse(&[
        "statistics",
        "--base",
        &base,
        "--token",
        OPERATOR,
        "--tenant",
        "t1",
        "--from-ms",
        &from.to_string(),
        "--to-ms",
        &to.to_string(),
        "--screenshots",
        &shots_arg,
    ])
    .await;
    assert_eq!(
        stats["stats.alarms.total"].as_f64(),
        api["alarms"]["total"].as_f64()
    );
    assert_eq!(
        stats["stats.accept_ms.p90"].as_f64(),
        api["accept_ms"]["p90"].as_f64()
    );
    assert_eq!(
        stats["stats.within.accepted_60s"].as_f64(),
        api["within"]["accepted_60s"].as_f64()
    );

    // A wrong token is refused on the login page.
    let refused = browse(&["login-fails", "--base", &base, "--token", "not-a-token"]).await;
    assert_eq!(refused["failed_shown"], true);
}
