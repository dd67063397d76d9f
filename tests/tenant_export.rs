//! Export and import of one tenant (`GET /api/v1/tenants/{t}/export`, `POST .../import`,
//! `vaka admin export|import`), over the real binary and RocksDB: a tenant with a QUIC device
//! (alarm with text and callback, positions, telemetry) and a SCAIP device (alarm over SIP) is
//! exported; a new engine refuses a cut-short archive and one with a broken line (naming the
//! file and line, changing nothing), then imports it; the new engine's export of the tenant
//! equals the original file by file (directory, alarms with audit trails, events, positions;
//! the admin audit holds every original entry); the SCAIP device alarms again there; the
//! tenant's own admin may not import alarms, trails, messages or positions (403); a repeated
//! import changes nothing; another
//! tenant's admin can neither export nor import the tenant.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use admin::{mrq, scenario, Engine, OPERATOR};
use binary::vaka_bin;
use serde_json::{json, Value};
use vaka_admin::archive::{schemas, Kind};
use vaka_device::events;

const SOURCE: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[tenants]]\nid = \"t2\"\ncentres = []\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"q1\"\ntype = \"0003\"\n";

/// The new engine: the same centre (serving another tenant so far), no tenant "t".
const TARGET: &str = "[[tenants]]\nid = \"t2\"\ncentres = []\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t2\"]\ntoken = \"token-of-the-alarm-centre\"\n";

const SCAIP: &str = "100001";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every file of a tar, by name.
fn files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

/// A tar of `files` (in the order given).
fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn admin_cli(engine: &Engine, args: &[&str]) -> std::process::Output {
    std::process::Command::new(vaka_bin())
        .args(["admin", "--server", &engine.url(""), "--token", OPERATOR])
        .args(args)
        .output()
        .unwrap()
}

fn import_raw(engine: &Engine, token: &str, tar: Vec<u8>) -> admin::Reply {
    engine.call(
        "POST",
        "/api/v1/tenants/t/import",
        Some(token),
        Some(("application/x-tar", tar)),
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_exported_and_imported_into_a_new_engine_is_the_same_and_works() {
    let source = Engine::start(SOURCE, &[("t", &["q1"])]);
    let mut centre = source.centre("token-of-the-alarm-centre").await;
    source.send_ok(
        "PUT",
        &format!("/api/v1/tenants/t/devices/{SCAIP}"),
        OPERATOR,
        &json!({"type": "0003", "password": "pw-of-the-scaip-device"}),
    );
    source.send_ok(
        "PUT",
        "/api/v1/tenants/t/deadline-policies/night",
        OPERATOR,
        &json!({"receipt_deadline_secs": 20, "accept_deadline_secs": 90}),
    );

    // Data: a QUIC alarm with text and callback, positions, a sensor reading; a SCAIP alarm.
    let q1 = source.quic_client("t", "q1").await;
    let mut alarm = events::alarm("a1", "0010", 9);
    if let Some(vaka_device::pb::event::Body::Alarm(a)) = &mut alarm.body {
        a.text = Some("fell in the kitchen".into());
        a.callback = vec!["+46700001234".into()];
    }
    q1.send(alarm).await.unwrap();
    let t0 = now_ms();
    for i in 0..20 {
        let fix = events::position(
            format!("p{i}"),
            t0 - 20_000 + i * 1_000,
            57.7 + i as f64 * 1e-5,
            11.97,
            Some(8.0),
        );
        q1.send(fix).await.unwrap();
    }
    q1.send(events::telemetry("s1", "bed", 1.0)).await.unwrap();
    let o = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    centre.receipt(o.alarm_id).await;
    centre.accept(o.alarm_id).await;
    centre
        .close_with(o.alarm_id, "visited", "helped up, no injury")
        .await;
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        source.sip,
        SCAIP,
        "pw-of-the-scaip-device",
        &mrq(SCAIP, "beforemove"),
        &[],
    )
    .await;
    run.assert_ok();
    let o = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(o.device, SCAIP);
    centre.handle_and_close(o.alarm_id).await;

    // Another tenant's admin: the tenant is not there for it.
    let (_, other) = source.tenant_admin("t2");
    let r = source.get("/api/v1/tenants/t/export", &other);
    assert_eq!(r.status, 404, "{}", r.body);
    // Its own admin may export it.
    let (_, own) = source.tenant_admin("t");
    let r = source.get("/api/v1/tenants/t/export", &own);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/x-tar");

    // Export with the CLI.
    let work = tempfile::tempdir().unwrap();
    let a_tar = work.path().join("a.tar");
    let out = admin_cli(
        &source,
        &["export", "--tenant", "t", "--out", a_tar.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("positions.jsonl\t20 lines"), "{stdout}");
    let a_bytes = std::fs::read(&a_tar).unwrap();
    let a = files(&a_bytes);
    assert!(
        a.contains_key("README.md") && a.contains_key("manifest.json"),
        "{:?}",
        a.keys()
    );
    let alarms = lines(&a["alarms.jsonl"]);
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    assert!(alarms
        .iter()
        .all(|l| l["audit"].as_array().unwrap().len() >= 4));
    assert_eq!(lines(&a["devices.jsonl"]).len(), 2);
    assert!(lines(&a["events.jsonl"]).len() >= 23);
    // Every line has the shape its schema says (the schemas are documents of the archive).
    for k in Kind::ALL {
        let schema: Value = serde_json::from_slice(&a[&k.schema_file()]).unwrap();
        assert_eq!(schema, schemas::schema(k));
        for (i, l) in lines(&a[&k.file()]).iter().enumerate() {
            schemas::check_shape(&schema, l, &format!("{} line {}", k.file(), i + 1))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    drop(centre);
    drop(source);

    // A new engine.
    let target = Engine::start(TARGET, &[]);
    // A cut-short archive: refused, nothing changed.
    let cut = a_bytes[..a_bytes.len() / 2].to_vec();
    let r = import_raw(&target, OPERATOR, cut);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["type"],
        "urn:vaka:problem:bad-archive",
        "{}",
        r.body
    );
    eprintln!("cut short: {}", r.body);
    // A broken line: refused, naming the file and line.
    let mut broken: Vec<(String, Vec<u8>)> = a.clone().into_iter().collect();
    for (name, bytes) in &mut broken {
        if name == "positions.jsonl" {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let mut ls: Vec<String> = text.lines().map(str::to_owned).collect();
            ls[1] = ls[1].replace("\"fix\"", "\"fax\"");
            *bytes = (ls.join("\n") + "\n").into_bytes();
        }
    }
    // README first, manifest last, as exported.
    broken.sort_by_key(|(n, _)| (n == "manifest.json", n != "README.md"));
    let r = import_raw(&target, OPERATOR, tar_of(&broken));
    assert_eq!(r.status, 422, "{}", r.body);
    let p = r.json();
    assert_eq!(p["errors"][0]["field"], "positions.jsonl line 2", "{p}");
    assert!(
        p["errors"][0]["reason"].as_str().unwrap().contains("fix"),
        "{p}"
    );
    assert_eq!(target.get("/api/v1/tenants/t", OPERATOR).status, 404);
    // Another tenant's admin cannot import it either.
    let (_, other) = target.tenant_admin("t2");
    let r = import_raw(&target, &other, a_bytes.clone());
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(target.get("/api/v1/tenants/t", OPERATOR).status, 404);

    // The import, with the CLI.
    let out = admin_cli(
        &target,
        &["import", "--tenant", "t", a_tar.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The new engine's export equals the original.
    let r = target.get("/api/v1/tenants/t/export", OPERATOR);
    assert_eq!(r.status, 200, "{}", r.body);
    let b = files(r.body.as_bytes());
    for k in Kind::ALL {
        if k == Kind::AdminAudit {
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&b[&k.file()]),
            String::from_utf8_lossy(&a[&k.file()]),
            "{} differs",
            k.file()
        );
    }
    let after = String::from_utf8_lossy(&b["admin_audit.jsonl"]).into_owned();
    for l in String::from_utf8_lossy(&a["admin_audit.jsonl"]).lines() {
        assert!(after.contains(l), "admin audit entry lost: {l}");
    }
    assert!(after.contains("\"import tenant\""), "the import is audited");

    // The tenant's own admin may not write its care record (alarms, trails, messages,
    // positions): refused, nothing written.
    let (_, own_here) = target.tenant_admin("t");
    let r = import_raw(&target, &own_here, a_bytes.clone());
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("platform operator"), "{}", r.body);
    // A repeated import by the operator changes nothing.
    let r = import_raw(&target, OPERATOR, a_bytes.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["created"].as_u64(), v["updated"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    for (file, n) in v["files"].as_object().unwrap() {
        assert_eq!(n["written"], 0, "{file}: {v}");
    }

    // The SCAIP device alarms again, to the centre of the tenant's chain.
    let mut centre = target.centre("token-of-the-alarm-centre").await;
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        target.sip,
        SCAIP,
        "pw-of-the-scaip-device",
        &mrq(SCAIP, "aftermove"),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(
        run.mrs(),
        [(0, "aftermove".to_string(), None)],
        "{}",
        run.log
    );
    let o = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (o.device.as_str(), o.reference.as_str()),
        (SCAIP, "aftermove")
    );
    // Its id is new: above every imported one.
    let max_imported = alarms
        .iter()
        .map(|l| l["alarm"]["id"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        o.alarm_id > max_imported,
        "{} <= {max_imported}",
        o.alarm_id
    );
}
