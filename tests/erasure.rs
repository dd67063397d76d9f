//! Erasure of one person's data (`POST /api/v1/tenants/{t}/devices/{d}/erasure`, `vaka serve`,
//! a real RocksDB): a device's alarm text, callback number, positions, sensor readings and the
//! centre's closing note are in the database files before; after the erasure and its
//! compaction no file of the data directory (table files, logs, manifest) holds any of them,
//! while another device's data is still there; the tenant's alarm counts and answer-time
//! statistics are unchanged; the alarm record stays with its facts; the admin audit keeps the
//! tombstone; another tenant's admin cannot erase it.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use std::path::Path;
use std::time::Duration;
use vaka_device::events;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[tenants]]\nid = \"t2\"\ncentres = []\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"d1\"\ntype = \"0003\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"d2\"\ntype = \"0003\"\n";

/// Where the person was: a latitude no other fix has, found as its 8 bytes (little-endian
/// f64, as both the vaka/1 message and the stored position carry it).
const LAT: f64 = 57.123_456_789;

fn markers() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("alarm text", b"ERASE-ME-fell-in-bathroom".to_vec()),
        ("callback", b"+46700004711".to_vec()),
        ("closing note", b"ERASE-ME-dementia-note".to_vec()),
        ("sensor name", b"erase-me-bed-sensor".to_vec()),
        ("latitude", LAT.to_le_bytes().to_vec()),
    ]
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_holding(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_in_no_file_and_the_statistics_stay() {
    let engine = Engine::start(DIRECTORY, &[("t", &["d1", "d2"])]);
    let data = engine.dir.path().join("data");
    let mut centre = engine.centre("token-of-the-alarm-centre").await;
    let d1 = engine.quic_client("t", "d1").await;
    let d2 = engine.quic_client("t", "d2").await;

    let mut alarm = events::alarm("a1", "0010", 9);
    if let Some(vaka_device::pb::event::Body::Alarm(a)) = &mut alarm.body {
        a.text = Some("ERASE-ME-fell-in-bathroom".into());
        a.callback = vec!["+46700004711".into()];
    }
    d1.send(alarm).await.unwrap();
    let t = now_ms();
    for i in 0..20 {
        let lon = 11.97 + i as f64 * 1e-5;
        let fix = events::position(format!("p{i}"), t - 20_000 + i * 1_000, LAT, lon, Some(8.0));
        d1.send(fix).await.unwrap();
    }
    d1.send(events::telemetry("s1", "erase-me-bed-sensor", 1.0))
        .await
        .unwrap();
    let mut other = events::alarm("b1", "0010", 9);
    if let Some(vaka_device::pb::event::Body::Alarm(a)) = &mut other.body {
        a.text = Some("KEEP-ME-other-person".into());
    }
    d2.send(other).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let o = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
        ids.push((o.device.clone(), o.alarm_id));
    }
    for (device, id) in &ids {
        centre.receipt(*id).await;
        centre.accept(*id).await;
        let note = if device == "d1" {
            "ERASE-ME-dementia-note"
        } else {
            "KEEP-ME-note"
        };
        centre.close_with(*id, "visited", note).await;
    }
    let d1_alarm = ids.iter().find(|(d, _)| d == "d1").unwrap().1;

    // The markers are in the files now (the write-ahead log at least): the scan can see them.
    for (what, bytes) in markers() {
        assert!(
            !files_holding(&data, &bytes).is_empty(),
            "{what} not found in the data directory before the erasure: the check would prove nothing"
        );
    }
    let stats_path = format!(
        "/api/v1/tenants/t/statistics?from_ms={}&to_ms={}",
        t - 3_600_000,
        t + 3_600_000
    );
    let before = engine.get(&stats_path, OPERATOR).json();

    // Another tenant's admin: as if the device did not exist.
    let (_, other_admin) = engine.tenant_admin("t2");
    let refused = engine.send(
        "POST",
        "/api/v1/tenants/t/devices/d1/erasure",
        &other_admin,
        &serde_json::json!({}),
    );
    assert_eq!(refused.status, 404, "{}", refused.body);

    let (_, admin) = engine.tenant_admin("t");
    let done = engine
        .send_ok(
            "POST",
            "/api/v1/tenants/t/devices/d1/erasure",
            &admin,
            &serde_json::json!({}),
        )
        .json();
    assert_eq!(done["removed_from_directory"], true, "{done}");
    assert!(done["events"].as_u64().unwrap() >= 22, "{done}");
    assert!(done["positions"].as_u64().unwrap() >= 1, "{done}");
    assert_eq!(done["alarms"], 1, "{done}");
    assert!(done["audit_texts"].as_u64().unwrap() >= 1, "{done}");

    for (what, bytes) in markers() {
        let found = files_holding(&data, &bytes);
        assert!(found.is_empty(), "{what} still in {found:?}");
    }
    assert!(
        !files_holding(&data, b"KEEP-ME-other-person").is_empty(),
        "the other person's data must stay"
    );

    // The alarm record stays with its facts; the statistics do not move.
    let a = engine
        .get(&format!("/api/v1/alarms/{d1_alarm}"), OPERATOR)
        .json();
    assert_eq!(a["alarm"]["text"], serde_json::Value::Null, "{a}");
    let after = engine.get(&stats_path, OPERATOR).json();
    assert_eq!(after["alarms"], before["alarms"], "{after}");
    assert_eq!(after["receipt"], before["receipt"], "{after}");
    assert_eq!(after["accept"], before["accept"], "{after}");
    // The tombstone.
    let audit = engine.audit(Some("t"));
    let tomb = audit
        .iter()
        .find(|e| e["action"] == "erase device")
        .expect("the erasure is in the admin audit log");
    assert_eq!(tomb["resource"], "devices/t/d1");
    assert_eq!(tomb["after"]["events"], done["events"]);
    // The device is gone from the directory: its fronts refuse it.
    assert_eq!(
        engine.get("/api/v1/tenants/t/devices/d1", OPERATOR).status,
        404
    );
}
