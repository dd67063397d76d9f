//! A device moving to another tenant (`POST .../devices/{d}/move`, `POST .../device-moves/{d}`),
//! `vaka serve` with SCAIP devices over UDP: offered by its owner, accepted by the receiver; its
//! next alarm goes to the new tenant's chain, not the old one's; its history stays with the
//! first owner unless both consented, then moves; each step is in both tenants' admin audit;
//! no other tenant can offer it, accept it, or accept on another's behalf; a device with an
//! open alarm is not offered.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use std::time::Duration;

use admin::{mrq, scenario, Centre, Engine, OPERATOR};
use serde_json::json;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[tenants]]\nid = \"u\"\ncentres = [\"c2\"]\n\
    [[tenants]]\nid = \"x\"\ncentres = []\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-one\"\n\
    [[centres]]\nid = \"c2\"\ntenants = [\"u\"]\ntoken = \"token-of-centre-two\"\n";

async fn alarm(engine: &Engine, device: &str, reference: &str) {
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        engine.sip,
        device,
        &format!("pw-{device}"),
        &mrq(device, reference),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), [(0, reference.to_string(), None)], "{}", run.log);
}

/// An alarm of `device`, offered to `centre`, handled and closed there.
async fn handled(engine: &Engine, centre: &mut Centre, device: &str, reference: &str) -> u64 {
    alarm(engine, device, reference).await;
    let o = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (o.device.as_str(), o.reference.as_str()),
        (device, reference)
    );
    centre.handle_and_close(o.alarm_id).await;
    o.alarm_id
}

fn alarm_ids(engine: &Engine, tenant: &str, device: &str) -> Vec<u64> {
    engine
        .alarms(tenant, &format!("device={device}"))
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_moves_with_both_tenants_consent_and_alarms_to_the_new_chain() {
    let engine = Engine::start(DIRECTORY, &[]);
    let mut c1 = engine.centre("token-of-centre-one").await;
    let mut c2 = engine.centre("token-of-centre-two").await;
    for d in ["200001", "200002", "200003"] {
        engine.send_ok(
            "PUT",
            &format!("/api/v1/tenants/t/devices/{d}"),
            OPERATOR,
            &json!({"type": "0003", "password": format!("pw-{d}"), "centres": ["c1"]}),
        );
    }
    let first = handled(&engine, &mut c1, "200001", "before1").await;
    let (_, t_admin) = engine.tenant_admin("t");
    let (_, u_admin) = engine.tenant_admin("u");
    let (_, x_admin) = engine.tenant_admin("x");

    // Only the owner offers; the receiver is named in the offer.
    let offer = |token: &str, tenant: &str, device: &str, body: serde_json::Value| {
        engine.send(
            "POST",
            &format!("/api/v1/tenants/{tenant}/devices/{device}/move"),
            token,
            &body,
        )
    };
    let accept = |token: &str, tenant: &str, device: &str, body: serde_json::Value| {
        engine.send(
            "POST",
            &format!("/api/v1/tenants/{tenant}/device-moves/{device}"),
            token,
            &body,
        )
    };
    let r = offer(&u_admin, "t", "200001", json!({"to": "u"}));
    assert_eq!(
        r.status, 404,
        "another tenant offers t's device: {}",
        r.body
    );
    let r = offer(
        &t_admin,
        "t",
        "200001",
        json!({"to": "u", "history": false}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // Nobody but the receiver accepts: not x, not t on u's behalf.
    let r = accept(&x_admin, "x", "200001", json!({"from": "t"}));
    assert_eq!(r.status, 404, "an offer to u accepted by x: {}", r.body);
    let r = accept(&t_admin, "u", "200001", json!({"from": "t"}));
    assert!(
        r.status == 404 || r.status == 403,
        "t accepts for u: {}",
        r.body
    );
    assert!(engine.device("t", "200001").is_some(), "nothing moved yet");

    // The receiver accepts, consenting to the history; the owner did not: it stays.
    let r = accept(
        &u_admin,
        "u",
        "200001",
        json!({"from": "t", "history": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = r.json();
    assert_eq!(done["history_moved"], false, "{done}");
    assert!(engine.device("t", "200001").is_none());
    let moved = engine.device("u", "200001").expect("in u now");
    assert_eq!(
        moved["centres"],
        json!([]),
        "its own chain named t's centre: {moved}"
    );
    assert_eq!(alarm_ids(&engine, "t", "200001"), [first]);
    // Its alarms now go to u's chain.
    alarm(&engine, "200001", "after1").await;
    let o = c2.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (o.device.as_str(), o.reference.as_str()),
        ("200001", "after1")
    );
    c1.no_offer_for(Duration::from_millis(500)).await;
    assert_eq!(alarm_ids(&engine, "u", "200001"), [o.alarm_id]);
    assert_eq!(
        alarm_ids(&engine, "t", "200001"),
        [first],
        "the history stayed with t"
    );
    c2.handle_and_close(o.alarm_id).await;
    // The offer was used: accepting again finds nothing.
    let r = accept(&u_admin, "u", "200001", json!({"from": "t"}));
    assert_eq!(r.status, 404, "{}", r.body);

    // Both consent: the history moves with the device.
    let second = handled(&engine, &mut c1, "200002", "before2").await;
    let r = offer(&t_admin, "t", "200002", json!({"to": "u", "history": true}));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = accept(
        &u_admin,
        "u",
        "200002",
        json!({"from": "t", "history": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = r.json();
    assert_eq!(done["history_moved"], true, "{done}");
    assert_eq!(done["alarms"], 1, "{done}");
    assert!(done["events"].as_u64().unwrap() >= 1, "{done}");
    assert_eq!(alarm_ids(&engine, "u", "200002"), [second]);
    assert!(alarm_ids(&engine, "t", "200002").is_empty());
    let a = engine
        .get(&format!("/api/v1/alarms/{second}"), &u_admin)
        .json();
    assert_eq!(a["alarm"]["tenant"], "u", "{a}");
    assert_eq!(
        engine
            .get(&format!("/api/v1/alarms/{second}"), &t_admin)
            .status,
        404
    );

    // A device with an open alarm is neither offered nor moved: it is handled where it is.
    alarm(&engine, "200003", "open3").await;
    let open = c1.offer(Duration::from_secs(10)).await.alarm.unwrap();
    let r = offer(&t_admin, "t", "200003", json!({"to": "u"}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains(&open.alarm_id.to_string()), "{}", r.body);

    // Both audit logs tell it.
    let actions = |tenant: &str| -> Vec<String> {
        engine
            .audit(Some(tenant))
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    let t = actions("t");
    assert_eq!(
        t.iter().filter(|a| *a == "offer device move").count(),
        2,
        "{t:?}"
    );
    assert_eq!(
        t.iter().filter(|a| *a == "device moved out").count(),
        2,
        "{t:?}"
    );
    let u = actions("u");
    assert_eq!(
        u.iter().filter(|a| *a == "device moved in").count(),
        2,
        "{u:?}"
    );
}
