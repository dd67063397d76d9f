//! Bulk import and the write checks of the admin API, over real HTTP against `vaka serve`:
//! - 10,000 devices as CSV with a few bad rows: every good row created, every bad row named
//!   with its row number and field, the summary counts right; the same file again changes
//!   nothing (every good row `unchanged`, the directory revision unchanged); the same as JSON Lines;
//! - `If-Match` with a stale revision -> 412 problem+json naming the revision; a wrong field ->
//!   422 with `errors[].field`.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;

use admin::{Engine, OPERATOR};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n";

const GOOD: usize = 10_000;

/// The bad rows: (1-based data row, the CSV line, the JSON line, the field named).
fn bad_rows() -> Vec<(usize, String, String, &'static str)> {
    vec![
        (
            17,
            "bad-type,12,pw,600,c1".into(),
            r#"{"id":"bad-type","type":"12","password":"pw","heartbeat_secs":600,"centres":["c1"]}"#
                .into(),
            "type",
        ),
        (
            2_500,
            "bad-centre,0003,pw,600,c1;nowhere".into(),
            r#"{"id":"bad-centre","type":"0003","password":"pw","heartbeat_secs":600,"centres":["c1","nowhere"]}"#
                .into(),
            "centres[1]",
        ),
        (
            5_001,
            ",0003,pw,600,c1".into(),
            r#"{"type":"0003","password":"pw","heartbeat_secs":600,"centres":["c1"]}"#.into(),
            "id",
        ),
        (
            9_999,
            "bad-number,0003,pw,ten,c1".into(),
            r#"{"id":"bad-number","type":"0003","password":"pw","heartbeat_secs":"ten","centres":["c1"]}"#
                .into(),
            "heartbeat_secs",
        ),
    ]
}

/// 10,000 good rows `prefix-N` with the bad rows at their places: (CSV, JSON Lines, good ids
/// by row).
fn files(prefix: &str) -> (Vec<u8>, Vec<u8>, BTreeMap<usize, String>) {
    let bad = bad_rows();
    let mut csv = String::from("id,type,password,heartbeat_secs,centres\n");
    let mut jsonl = String::new();
    let mut good = BTreeMap::new();
    let mut n = 0;
    for row in 1..=GOOD + bad.len() {
        if let Some((_, c, j, _)) = bad.iter().find(|b| b.0 == row) {
            csv.push_str(c);
            jsonl.push_str(j);
        } else {
            let id = format!("{prefix}-{n:05}");
            n += 1;
            csv.push_str(&format!("{id},0003,pw-{id},600,c1\n"));
            jsonl.push_str(
                &json!({"id": id, "type": "0003", "password": format!("pw-{id}"),
                        "heartbeat_secs": 600, "centres": ["c1"]})
                .to_string(),
            );
            good.insert(row, id);
            jsonl.push('\n');
            continue;
        }
        csv.push('\n');
        jsonl.push('\n');
    }
    assert_eq!(good.len(), GOOD);
    (csv.into_bytes(), jsonl.into_bytes(), good)
}

/// Every good row has `result`, every bad row is an error naming its field; the summary counts.
fn check(what: &str, import: &admin::Import, good: &BTreeMap<usize, String>, result: &str) {
    let bad = bad_rows();
    assert_eq!(
        import.rows.len(),
        GOOD + bad.len(),
        "{what}: one line per row"
    );
    for r in &import.rows {
        let row = r["row"].as_u64().expect("row number") as usize;
        if let Some(id) = good.get(&row) {
            assert_eq!(r["device"], id.as_str(), "{what}: row {row}: {r}");
            assert_eq!(r["result"], result, "{what}: row {row}: {r}");
        } else {
            let (_, _, _, field) = bad
                .iter()
                .find(|b| b.0 == row)
                .unwrap_or_else(|| panic!("{what}: unknown row {row}: {r}"));
            assert_eq!(r["result"], "error", "{what}: bad row {row}: {r}");
            assert_eq!(
                r["field"], *field,
                "{what}: bad row {row} names its field: {r}"
            );
            assert!(
                r["reason"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: bad row {row} says why: {r}"
            );
        }
    }
    let rows: std::collections::BTreeSet<u64> = import
        .rows
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows.len(), GOOD + bad.len(), "{what}: every row once");
    let s = &import.summary;
    assert_eq!(s["rows"], GOOD + bad.len(), "{what}: {s}");
    assert_eq!(s["errors"], bad.len(), "{what}: {s}");
    for word in ["created", "updated", "unchanged"] {
        let expected = if word == result { GOOD } else { 0 };
        assert_eq!(s[word], expected, "{what}: {word} in {s}");
    }
}

#[test]
fn ten_thousand_devices_with_bad_rows_import_once_and_a_second_run_changes_nothing() {
    let engine = Engine::start(DIRECTORY, &[]);
    for (kind, prefix) in [("text/csv", "csv"), ("application/x-ndjson", "jl")] {
        let (csv, jsonl, good) = files(prefix);
        let body = if kind == "text/csv" { csv } else { jsonl };
        let before = engine.device_ids("t").len();

        let started = Instant::now();
        let first = engine.import("t", kind, body.clone());
        eprintln!("{kind}: 10,000 rows imported in {:?}", started.elapsed());
        check(&format!("{kind} first run"), &first, &good, "created");
        let ids = engine.device_ids("t");
        assert_eq!(ids.len(), before + GOOD, "{kind}: every good row is in");
        for bad in ["bad-type", "bad-centre", "bad-number"] {
            assert!(
                engine.device("t", bad).is_none(),
                "{kind}: {bad} was stored"
            );
        }
        // A stored device is what its row said (password as HA1, never shown).
        let d = engine.device("t", good.values().next().unwrap()).unwrap();
        assert_eq!(d["type"], "0003", "{d}");
        assert_eq!(d["heartbeat_secs"], 600, "{d}");
        assert_eq!(d["centres"], json!(["c1"]), "{d}");
        assert!(!d.to_string().contains("pw-"), "a password is shown: {d}");

        let revision = first.summary["revision"].as_u64().unwrap();
        let again = engine.import("t", kind, body);
        check(&format!("{kind} second run"), &again, &good, "unchanged");
        assert_eq!(
            again.summary["revision"].as_u64().unwrap(),
            revision,
            "{kind}: a second run of the same file moved the directory revision"
        );
        assert_eq!(engine.device_ids("t").len(), before + GOOD);
    }
}

#[test]
fn a_stale_if_match_is_412_naming_the_revision_and_a_wrong_field_is_422_naming_it() {
    let engine = Engine::start(DIRECTORY, &[]);
    let path = "/api/v1/tenants/t/devices/d1";
    let device =
        json!({"type": "0003", "password": "pw", "heartbeat_secs": 600, "centres": ["c1"]});
    let created = engine.send("PUT", path, OPERATOR, &device);
    assert_eq!(created.status, 201, "{}", created.body);
    let etag = created.etag.clone().expect("ETag on the created device");
    let rev: u64 = etag.trim_matches('"').parse().expect("ETag is a revision");

    // Changed with the right revision: accepted, the revision moves on.
    let body = json!({"type": "0003", "heartbeat_secs": 300, "centres": ["c1"]}).to_string();
    let r = engine.call(
        "PUT",
        path,
        Some(OPERATOR),
        Some(("application/json", body.clone().into_bytes())),
        &[("If-Match", &etag)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let now: u64 = r.etag.unwrap().trim_matches('"').parse().unwrap();
    assert!(now > rev, "revision {rev} -> {now}");

    // The same If-Match again is stale now: 412, problem+json naming both revisions.
    let r = engine.call(
        "PUT",
        path,
        Some(OPERATOR),
        Some(("application/json", body.into_bytes())),
        &[("If-Match", &etag)],
    );
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "content type {}",
        r.content_type
    );
    let p = r.json();
    let text = p.to_string();
    assert!(
        text.contains(&rev.to_string()) && text.contains(&now.to_string()),
        "412 names the stale revision {rev} and the current {now}: {p}"
    );
    assert_eq!(p["status"], 412, "{p}");
    assert_eq!(
        engine.device("t", "d1").unwrap()["heartbeat_secs"],
        300,
        "the refused write changed the device"
    );

    // A wrong field: 422, problem+json with errors[].field.
    for (body, field) in [
        (json!({"type": "12", "centres": ["c1"]}), "type"),
        (
            json!({"type": "0003", "centres": ["nowhere"]}),
            "centres[0]",
        ),
    ] {
        let r = engine.send("PUT", path, OPERATOR, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.content_type.starts_with("application/problem+json"));
        let p = r.json();
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors[] in {p}"))
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {field} not named in {p}");
    }
}
