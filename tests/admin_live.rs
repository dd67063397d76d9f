//! Directory changes through the admin API reach the running engine, with no restart, over real
//! sockets (`vaka serve` with SIP over UDP, QUIC and the centre API, like `make run`):
//! - a SCAIP device PUT with a password alarms (sipp) within 1 s of the PUT's answer: `<mrs>`
//!   snu 0 and the offer at the centre; a chain change of it sends its next alarm to the other
//!   centre; deleting it makes its next digest fail (403);
//! - a QUIC device PUT through the API connects and alarms; deleting it closes its open
//!   connection with application code 0x5 (IDENTITY).
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{mrq, scenario, Engine, OPERATOR};
use serde_json::json;
use std::time::{Duration, Instant};
use vaka_device::events;

/// Tenant `t` served by c1 (c2 serves it too, but is not in its chain).
const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n\
    [[centres]]\nid = \"c2\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c2\"\n";

const SCAIP: &str = "300001";
const QUIC: &str = "q-new";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaip_device_put_through_the_api_alarms_at_once_follows_its_chain_and_is_refused_once_deleted(
) {
    let engine = Engine::start(DIRECTORY, &[("t", &[QUIC])]);
    let mut c1 = engine.centre("token-of-centre-c1").await;
    let mut c2 = engine.centre("token-of-centre-c2").await;

    // Not there yet: its digest is refused.
    let run = sipp::run_sipp(
        &scenario("scaip_forbidden.xml"),
        "u1",
        engine.sip,
        SCAIP,
        "new-pw",
        &mrq(SCAIP, "before"),
        &[],
    )
    .await;
    run.assert_ok();

    let path = format!("/api/v1/tenants/t/devices/{SCAIP}");
    let r = engine.send(
        "PUT",
        &path,
        OPERATOR,
        &json!({"type": "0003", "password": "new-pw", "heartbeat_secs": 600}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let answered = Instant::now();
    let sip = engine.sip;
    let alarm = tokio::spawn(async move {
        sipp::run_sipp(
            &scenario("scaip_message.xml"),
            "u1",
            sip,
            SCAIP,
            "new-pw",
            &mrq(SCAIP, "first"),
            &[],
        )
        .await
    });
    let offer = c1.offer(Duration::from_secs(5)).await;
    let took = answered.elapsed();
    let a = offer.alarm.unwrap();
    assert_eq!((a.device.as_str(), a.reference.as_str()), (SCAIP, "first"));
    assert!(
        took < Duration::from_secs(1),
        "the alarm reached the centre {took:?} after the PUT was answered"
    );
    let run = alarm.await.unwrap();
    run.assert_ok();
    assert_eq!(
        run.mrs(),
        [(0, "first".to_string(), None)],
        "<mrs> snu 0: {}",
        run.log
    );
    eprintln!("SCAIP alarm offered {took:?} after the PUT's answer");
    c1.handle_and_close(a.alarm_id).await;

    // Its chain moved to c2: the next alarm is c2's, c1 hears nothing of it.
    let r = engine.send(
        "PUT",
        &format!("{path}/chain"),
        OPERATOR,
        &json!({"centres": ["c2"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        engine.sip,
        SCAIP,
        "new-pw",
        &mrq(SCAIP, "second"),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), [(0, "second".to_string(), None)], "{}", run.log);
    let a = c2.offer(Duration::from_secs(5)).await.alarm.unwrap();
    assert_eq!((a.device.as_str(), a.reference.as_str()), (SCAIP, "second"));
    c1.no_offer_for(Duration::from_millis(500)).await;

    // Deleted: the next digest is refused (403), the open alarm stays.
    let r = engine.call("DELETE", &path, Some(OPERATOR), None, &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    let run = sipp::run_sipp(
        &scenario("scaip_forbidden.xml"),
        "u1",
        engine.sip,
        SCAIP,
        "new-pw",
        &mrq(SCAIP, "afterdelete"),
        &[],
    )
    .await;
    run.assert_ok();
    let r = engine.get(&format!("/api/v1/alarms/{}", a.alarm_id), OPERATOR);
    assert_eq!(r.status, 200, "the deleted device's open alarm: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_device_put_through_the_api_connects_and_alarms_and_is_closed_with_identity_once_deleted(
) {
    let engine = Engine::start(DIRECTORY, &[("t", &[QUIC])]);
    let mut c1 = engine.centre("token-of-centre-c1").await;

    // Its certificate is good, but it is not in the directory: refused.
    let refused = vaka_device::Client::connect(engine.device_config("t", QUIC)).await;
    assert!(refused.is_err(), "a device not in the directory connected");

    let path = format!("/api/v1/tenants/t/devices/{QUIC}");
    let r = engine.send("PUT", &path, OPERATOR, &json!({"type": "0003"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let answered = Instant::now();
    let client = engine.quic_client("t", QUIC).await;
    let reply = client
        .submit(vec![events::alarm("q-1", "0010", 5)])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        reply.status(),
        vaka_device::pb::Status::Ok,
        "{}",
        reply.reason
    );
    let offer = c1.offer(Duration::from_secs(5)).await;
    let took = answered.elapsed();
    let a = offer.alarm.unwrap();
    assert_eq!((a.device.as_str(), a.reference.as_str()), (QUIC, "q-1"));
    assert!(
        took < Duration::from_secs(1),
        "the QUIC alarm reached the centre {took:?} after the PUT was answered"
    );
    eprintln!("QUIC alarm offered {took:?} after the PUT's answer");
    client.close().await;

    // An open connection of the device (raw QUIC, to see the close code).
    let endpoint = vaka_device::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = vaka_device::quic_client_config(&engine.device_config("t", QUIC)).unwrap();
    let conn = endpoint
        .connect_with(tls, engine.quic, "localhost")
        .unwrap()
        .await
        .expect("the device connects");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), conn.closed())
            .await
            .is_err(),
        "the connection closed before the device was deleted"
    );

    let r = engine.call("DELETE", &path, Some(OPERATOR), None, &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted = Instant::now();
    let why = tokio::time::timeout(Duration::from_secs(2), conn.closed())
        .await
        .expect("the deleted device's connection is still open after 2 s")
        .to_string();
    eprintln!(
        "QUIC connection closed {:?} after the DELETE: {why}",
        deleted.elapsed()
    );
    assert!(
        why.starts_with("closed by peer") && why.contains("(code 5)"),
        "closed, but not with IDENTITY (0x5): {why}"
    );
    assert_eq!(vaka_device::codes::IDENTITY, 5);
    // And it cannot come back.
    let again = vaka_device::Client::connect(engine.device_config("t", QUIC)).await;
    assert!(again.is_err(), "a deleted device connected again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_admission_limit_put_through_the_api_holds_at_once_and_a_bad_one_is_named() {
    let engine = Engine::start(DIRECTORY, &[("t", &[QUIC])]);
    let _c1 = engine.centre("token-of-centre-c1").await;
    let r = engine.send(
        "PUT",
        &format!("/api/v1/tenants/t/devices/{QUIC}"),
        OPERATOR,
        &json!({"type": "0051"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // A wrong field: 422 naming it; the tenant is unchanged.
    let mut tenant = engine.get("/api/v1/tenants/t", OPERATOR).json();
    assert_eq!(tenant["admission"], serde_json::Value::Null);
    tenant["admission"] = json!({"telemetry": {"per_sec": 0, "burst": 3}});
    let r = engine.send("PUT", "/api/v1/tenants/t", OPERATOR, &tenant);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("admission.telemetry.per_sec"),
        "the problem names the field: {}",
        r.body
    );

    // Three positions a second, three at once: the PUT's answer means it holds.
    tenant["admission"] = json!({"telemetry": {"per_sec": 1, "burst": 3}});
    let r = engine.send("PUT", "/api/v1/tenants/t", OPERATOR, &tenant);
    assert_eq!(r.status, 200, "{}", r.body);
    let shown = engine.get("/api/v1/tenants/t", OPERATOR).json();
    assert_eq!(
        shown["admission"],
        json!({"alarms": null, "telemetry": {"per_sec": 1, "burst": 3}})
    );
    let client = engine.quic_client("t", QUIC).await;
    let fixes = (0..10)
        .map(|i| events::position(format!("p{i}"), 1_000 + i, 59.3, 18.0, None))
        .collect();
    let mut statuses = Vec::new();
    for reply in client.submit(fixes).await.unwrap() {
        statuses.push(reply.await.unwrap().status());
    }
    let ok = statuses
        .iter()
        .filter(|s| **s == vaka_device::pb::Status::Ok)
        .count();
    let busy = statuses
        .iter()
        .filter(|s| **s == vaka_device::pb::Status::Busy)
        .count();
    assert!(
        (3..=4).contains(&ok) && ok + busy == 10,
        "3 (or 4, a token back meanwhile) taken, the rest told busy: {statuses:?}"
    );
    // The tenant's alarms have their own limit: one still goes through.
    let reply = client
        .submit(vec![events::alarm("q-a", "0010", 5)])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        reply.status(),
        vaka_device::pb::Status::Ok,
        "{}",
        reply.reason
    );
    client.close().await;
}
