//! Tenant isolation over the whole admin API (DESIGN.md invariant 7), against `vaka serve` over
//! real HTTP. The operations are read from the OpenAPI document the engine serves, so an
//! operation added later is walked too (and a path parameter this test cannot fill fails it):
//! - every operation, with a tenant-A admin token, on tenant B's resources: 403 or 404;
//!   operations naming no tenant answer nothing of B's and change nothing;
//! - every operation without a token, or with a wrong one: 401;
//! - B's data is the same afterwards (every GET of B's resources, as the operator);
//! - positive control: every GET of A's own resources with A's token is 200, and A may write its
//!   own devices and chain, so the checks above are not passed by an API that refuses everything.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{mrq, scenario, Engine, OPERATOR};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const A_DEVICE: &str = "400001";
const B_DEVICE: &str = "500001";

const DIRECTORY: &str = "\
    [[tenants]]\nid = \"tenant-a\"\ncentres = [\"centre-a\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
    [[tenants]]\nid = \"tenant-b\"\ncentres = [\"centre-b\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
    [[centres]]\nid = \"centre-a\"\ntenants = [\"tenant-a\"]\ntoken = \"token-of-centre-a-000\"\n\
    [[centres]]\nid = \"centre-b\"\ntenants = [\"tenant-b\"]\ntoken = \"token-of-centre-b-000\"\n\
    [[devices]]\ntenant = \"tenant-a\"\nid = \"400001\"\ntype = \"0003\"\npassword = \"pw-a\"\n\
    [[devices]]\ntenant = \"tenant-b\"\nid = \"500001\"\ntype = \"0003\"\npassword = \"pw-b\"\n";

/// One tenant's resources, by path parameter name.
struct Side {
    values: BTreeMap<&'static str, String>,
}

impl Side {
    /// `path` with its parameters filled in; a parameter this test does not know fails it.
    fn fill(&self, path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').expect("closing brace") + open;
            let name = &rest[open + 1..close];
            let v = self.values.get(name).unwrap_or_else(|| {
                panic!(
                    "{path}: no value for path parameter {{{name}}}: add one to this test \
                     (an operation must not escape the isolation walk)"
                )
            });
            out.push_str(&rest[..open]);
            out.push_str(v);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Every (method, path) of the OpenAPI document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn is_write(method: &str) -> bool {
    matches!(method, "PUT" | "POST" | "PATCH")
}

/// Raises one alarm of `device` (sipp) and returns its id (as the operator sees it).
async fn alarm_of(engine: &Engine, tenant: &str, device: &str, password: &str) -> String {
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        engine.sip,
        device,
        password,
        &mrq(device, &format!("ref{device}")),
        &[],
    )
    .await;
    run.assert_ok();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = engine.get(&format!("/api/v1/tenants/{tenant}/alarms"), OPERATOR);
        assert_eq!(r.status, 200, "{}", r.body);
        if let Some(id) = r.json()["alarms"][0]["id"].as_u64() {
            return id.to_string();
        }
        assert!(Instant::now() < until, "no alarm of {device} listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_keeps_tenant_b_from_tenant_a_and_refuses_anonymous_calls() {
    let engine = Engine::start(DIRECTORY, &[]);
    let doc = engine
        .call("GET", "/api/v1/openapi.json", None, None, &[])
        .json();
    let ops = operations(&doc);
    assert!(
        ops.len() >= 20,
        "only {} operations in the document",
        ops.len()
    );

    // What each tenant has: a deadline policy, an alarm, a tenant-admin token.
    let mut sides = Vec::new();
    for (tenant, device, password, centre, policy) in [
        ("tenant-a", A_DEVICE, "pw-a", "centre-a", "policy-a"),
        ("tenant-b", B_DEVICE, "pw-b", "centre-b", "policy-b"),
    ] {
        engine.send_ok(
            "PUT",
            &format!("/api/v1/tenants/{tenant}/deadline-policies/{policy}"),
            OPERATOR,
            &json!({"receipt_deadline_secs": 600, "accept_deadline_secs": 600}),
        );
        let alarm = alarm_of(&engine, tenant, device, password).await;
        let (token_id, secret) = engine.tenant_admin(tenant);
        let values = BTreeMap::from([
            ("tenant", tenant.to_owned()),
            ("device", device.to_owned()),
            ("centre", centre.to_owned()),
            ("policy", policy.to_owned()),
            ("alarm", alarm),
            ("token", token_id),
        ]);
        sides.push((Side { values }, secret));
    }
    let (b, _) = sides.pop().unwrap();
    let (a, a_secret) = sides.pop().unwrap();
    // What must never show in an answer to A: B's names (the alarm id is a number, checked by
    // the 403/404 of the operations that name it).
    let b_names: Vec<&str> = ["tenant", "device", "centre", "policy", "token"]
        .iter()
        .map(|k| b.values[k].as_str())
        .collect();

    // B's data as the operator sees it (and proof that every value names a real resource).
    let snapshot = |engine: &Engine| -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        for (m, p) in &ops {
            // An export is audited (a read that writes the admin audit log) and stamped with
            // its time: not a snapshot (tests/tenant_export.rs checks it; the walk below too).
            if m != "GET" || p.ends_with("/export") {
                continue;
            }
            let path = b.fill(p);
            let r = engine.get(&path, OPERATOR);
            assert_eq!(r.status, 200, "operator GET {path}: {}", r.body);
            // Statistics are of a period ending now and count an open alarm as late once its
            // deadline passed: they move with time. What A must not change is B's alarms.
            let body = if path.ends_with("/statistics") {
                r.json()["alarms"].to_string()
            } else {
                r.body
            };
            s.insert(path, body);
        }
        s
    };
    let before = snapshot(&engine);

    // Tenant A's admin, on B's resources.
    let mut walked = 0;
    let mut tally: BTreeMap<u16, usize> = BTreeMap::new();
    for (method, p) in &ops {
        let path = b.fill(p);
        let body = is_write(method).then(|| ("application/json", b"{}".to_vec()));
        let r = engine.call(method, &path, Some(&a_secret), body, &[]);
        *tally.entry(r.status).or_default() += 1;
        if p.contains('{') {
            assert!(
                r.status == 403 || r.status == 404,
                "tenant A's admin: {method} {path} answered {}: {}",
                r.status,
                r.body
            );
        } else {
            // Naming no tenant: nothing of B's in the answer, and no write accepted.
            assert!(
                !(is_write(method) && (200..300).contains(&r.status)),
                "tenant A's admin: {method} {path} {{}} was accepted: {}",
                r.body
            );
            for name in &b_names {
                assert!(
                    !r.body.contains(name),
                    "tenant A's admin: {method} {path} shows {name:?}: {}",
                    r.body
                );
            }
        }
        walked += 1;
    }
    assert_eq!(walked, ops.len());
    eprintln!("{walked} operations walked with tenant A's token on B's resources: {tally:?}");
    // The one operation that creates for a tenant named in the body: not for B.
    let r = engine.send(
        "POST",
        "/api/v1/tokens",
        &a_secret,
        &json!({"role": "tenant-admin", "tenant": "tenant-b"}),
    );
    assert!(
        r.status == 403 || r.status == 404,
        "tenant A's admin made a token of B: {} {}",
        r.status,
        r.body
    );

    // No token, a wrong token, a malformed header: 401 for every operation.
    for (method, p) in &ops {
        let path = b.fill(p);
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic b3BlcmF0b3I6eA=="),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|v| ("Authorization", v)).into_iter().collect();
            let body = is_write(method).then(|| ("application/json", b"{}".to_vec()));
            let r = engine.call(method, &path, None, body, &headers);
            assert_eq!(
                r.status, 401,
                "{method} {path} with {auth:?} answered {}: {}",
                r.status, r.body
            );
        }
    }

    // Positive control: A's own resources with A's token.
    for (method, p) in &ops {
        if method != "GET" || !p.contains('{') {
            continue;
        }
        let path = a.fill(p);
        let r = engine.get(&path, &a_secret);
        assert_eq!(r.status, 200, "tenant A's admin: GET {path}: {}", r.body);
    }
    let r = engine.send(
        "PUT",
        &format!("/api/v1/tenants/tenant-a/devices/{A_DEVICE}"),
        &a_secret,
        &json!({"type": "0003", "heartbeat_secs": 900}),
    );
    assert_eq!(
        r.status, 200,
        "tenant A's admin writes its device: {}",
        r.body
    );
    let r = engine.send(
        "PUT",
        "/api/v1/tenants/tenant-a/chain",
        &a_secret,
        &json!({"centres": ["centre-a"]}),
    );
    assert_eq!(
        r.status, 200,
        "tenant A's admin writes its chain: {}",
        r.body
    );

    // B's data is what it was.
    let after = snapshot(&engine);
    for (path, body) in &before {
        assert_eq!(
            &after[path], body,
            "GET {path} changed while tenant A's admin was walking the API"
        );
    }
}
