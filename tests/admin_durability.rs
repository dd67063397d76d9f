//! Directory changes and SIGKILL, against `vaka serve` over real HTTP and SIP:
//! - a change the API acknowledged (PUT device answered 201) is there after SIGKILL and restart,
//!   and the device authenticates with the password it was given;
//! - a change that was never acknowledged is whole or absent: an import of 5,000 rows (5 durable
//!   batches of 1,000) killed mid-stream leaves a multiple of 1,000 devices, and the directory
//!   revision and the tenant's admin audit agree with what is there.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{mrq, scenario, Engine, OPERATOR};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::time::Duration;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n";

/// `crates/admin/src/http/import.rs` BATCH.
const BATCH: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_device_survives_sigkill_and_authenticates() {
    let mut engine = Engine::start(DIRECTORY, &[]);
    let r = engine.send(
        "PUT",
        "/api/v1/tenants/t/devices/200001",
        OPERATOR,
        &json!({"type": "0003", "password": "acked-pw", "heartbeat_secs": 600, "centres": ["c1"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let revision = r.etag.clone().unwrap();
    // Killed right after the answer: nothing may be waiting for a later flush.
    engine.sigkill();
    engine.restart();

    let d = engine
        .device("t", "200001")
        .expect("the acknowledged device is gone after SIGKILL");
    assert_eq!(d["heartbeat_secs"], 600, "{d}");
    let again = engine.get("/api/v1/tenants/t/devices/200001", OPERATOR);
    assert_eq!(again.etag, Some(revision), "the device's revision changed");
    let audit = engine.audit(Some("t"));
    assert!(
        audit
            .iter()
            .any(|e| e["resource"].as_str().is_some_and(|s| s.contains("200001"))),
        "the change's audit entry is gone: {audit:?}"
    );

    // It authenticates with the password given to the API (stored as HA1) and alarms.
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        engine.sip,
        "200001",
        "acked-pw",
        &mrq("200001", "afterkill"),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs().len(), 1, "one <mrs>: {}", run.log);
}

/// One import of 5,000 rows `{prefix}NNNNN`, SIGKILLed `delay` after its first row's answer
/// (the first batch is durable then), then restarted. Returns the rows the client was told of
/// and the devices of `prefix` stored after the restart.
fn killed_import(
    engine: &mut Engine,
    prefix: &str,
    delay: Duration,
) -> (Vec<serde_json::Value>, BTreeSet<String>) {
    let mut csv = String::from("id,type,password,heartbeat_secs,centres\n");
    for i in 0..5 * BATCH {
        csv.push_str(&format!("{prefix}{i:05},0003,pw{i},600,c1\n"));
    }
    let mut answer = engine.import_stream("t", "text/csv", csv.into_bytes());
    let mut line = String::new();
    answer.read_line(&mut line).unwrap();
    let first: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(first["result"], "created", "{first}");
    std::thread::sleep(delay);
    engine.sigkill();
    // What the client was told before the kill: each of those rows must be in after it.
    let mut seen = vec![first];
    loop {
        line.clear();
        match answer.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) if v.get("row").is_some() => seen.push(v),
                _ => break,
            },
        }
    }
    engine.restart();
    let ids = engine
        .device_ids("t")
        .into_iter()
        .filter(|id| id.starts_with(prefix))
        .collect();
    (seen, ids)
}

#[test]
fn an_import_killed_mid_stream_leaves_whole_batches_only() {
    let mut engine = Engine::start(DIRECTORY, &[]);
    let mut partial = 0;
    let mut last_revision = 0;
    // Killed at different points of the stream: right after the first batch, and later.
    for (round, delay_ms) in [0u64, 150, 300, 450].into_iter().enumerate() {
        let prefix = format!("r{round}k");
        let (seen, ids) = killed_import(&mut engine, &prefix, Duration::from_millis(delay_ms));
        eprintln!(
            "killed {delay_ms} ms after the first batch: {} rows acknowledged, {} devices after \
             the restart",
            seen.len(),
            ids.len()
        );
        assert!(
            ids.len() % BATCH == 0,
            "{} devices: a batch was applied in part",
            ids.len()
        );
        if ids.len() < 5 * BATCH {
            partial += 1;
        }
        for r in &seen {
            let id = r["device"].as_str().unwrap();
            assert!(ids.contains(id), "row {r} was acknowledged but is gone");
        }
        // Whole batches are whole runs of rows: the first n * 1000 ids, none of the others.
        let expected: BTreeSet<String> =
            (0..ids.len()).map(|i| format!("{prefix}{i:05}")).collect();
        assert_eq!(ids, expected, "the devices are not the first whole batches");

        // The audit has one entry per stored device, 1,000 per revision at consecutive
        // revisions.
        let mut per_revision: BTreeMap<u64, usize> = BTreeMap::new();
        let mut audited = BTreeSet::new();
        for e in engine.audit(Some("t")) {
            let resource = e["resource"].as_str().unwrap_or("");
            if let Some(id) = resource
                .rsplit('/')
                .next()
                .filter(|id| id.starts_with(&prefix))
            {
                audited.insert(id.to_owned());
                *per_revision
                    .entry(e["revision"].as_u64().unwrap())
                    .or_default() += 1;
            }
        }
        assert_eq!(audited, ids, "the audit does not match the devices stored");
        assert!(
            per_revision.values().all(|n| *n == BATCH),
            "audit entries per revision: {per_revision:?}"
        );
        let revisions: Vec<u64> = per_revision.keys().copied().collect();
        assert!(
            revisions.windows(2).all(|w| w[1] == w[0] + 1),
            "batches at consecutive revisions: {revisions:?}"
        );
        last_revision = *revisions.last().unwrap();
    }
    assert!(
        partial >= 2,
        "the kills came after the imports ended: nothing was shown"
    );
    // The directory is at the last batch's revision: the next change is written at the next one.
    let r = engine.send(
        "PUT",
        "/api/v1/tenants/t/devices/after",
        OPERATOR,
        &json!({"type": "0003", "centres": ["c1"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let next: u64 = r.etag.unwrap().trim_matches('"').parse().unwrap();
    assert_eq!(
        next,
        last_revision + 1,
        "the directory revision after the restart is not the last batch's"
    );
}
