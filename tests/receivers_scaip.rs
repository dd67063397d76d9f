//! SCAIP forwarding between two engines (two `vaka serve` processes on loopback): engine A's
//! chain starts with a SCAIP receiver that is engine B's SCAIP front, where A is a gateway
//! device. An alarm forwarded while B has no centre is answered snu 5 there: A escalates it to
//! its own centre at once. Once B's centre is connected, a forwarded alarm arrives at B as an
//! alarm of the gateway device (with the original device and what happened in its text), and
//! B's `<mrs>` snu 0 is the receipt in A's audit, where the alarm is then closed as handed over.
//! Over TLS only to a far side whose certificate A trusts. sipp as the far receiver checks A's
//! digest credentials and answers HOLD first: A sends the alarm again until it is taken. With
//! `per_device_cid`, alarms of two devices arrive at B as two devices' alarms behind the gateway.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use std::time::{Duration, Instant};
use vaka_device::events;

const GATEWAY: &str = "200001";
/// A's second gateway identity at B, in a tenant whose centre never connects.
const GATEWAY_2: &str = "200002";
const PASSWORD: &str = "forward-pass-of-a";

/// Waits until `engine`'s receiver `id` (a SCAIP forwarder) is up: its far side answered.
async fn until_up(engine: &Engine, id: &str) {
    let want = format!("vaka_receiver_up{{receiver=\"{id}\",kind=\"scaip\"}} 1");
    let end = Instant::now() + Duration::from_secs(15);
    while !binary::get_metrics(engine.http).is_some_and(|m| m.contains(&want)) {
        assert!(
            Instant::now() < end,
            "the SCAIP receiver {id} never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until alarm `id`'s audit in `engine` holds the receipt of receiver `fwd`.
async fn until_receipt(engine: &Engine, id: u64, fwd: &str) {
    until_action(engine, id, fwd, "receipt").await;
}

/// Until the receiver `fwd` has closed alarm `id` as handed over: its receipt, accept and close
/// are three inputs, applied one after another, so a receipt seen does not mean closed yet.
async fn until_handed_over(engine: &Engine, id: u64, fwd: &str) {
    until_action(engine, id, fwd, "closed").await;
}

async fn until_action(engine: &Engine, id: u64, fwd: &str, action: &str) {
    let who = format!("centre:{fwd}");
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let trail = engine.alarm_trail(id);
        if trail.iter().any(|(w, what, _)| *w == who && what == action) {
            return;
        }
        assert!(Instant::now() < end, "no {action} from {fwd}: {trail:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_forwarded_over_scaip_is_receipted_by_the_far_engine() {
    let b = Engine::start(
        &format!(
            "[[tenants]]\nid = \"b\"\ncentres = [\"cb\"]\n\
             [[centres]]\nid = \"cb\"\ntenants = [\"b\"]\ntoken = \"token-of-centre-b-here\"\n\
             [[devices]]\ntenant = \"b\"\nid = \"{GATEWAY}\"\ntype = \"0003\"\n\
             password = \"{PASSWORD}\"\n\
             [[tenants]]\nid = \"b2\"\ncentres = [\"cb2\"]\n\
             [[centres]]\nid = \"cb2\"\ntenants = [\"b2\"]\ntoken = \"token-of-centre-b2-here\"\n\
             [[devices]]\ntenant = \"b2\"\nid = \"{GATEWAY_2}\"\ntype = \"0003\"\n\
             password = \"{PASSWORD}\"\n"
        ),
        &[],
    );
    let a = Engine::start_with(
        &format!(
            "[[tenants]]\nid = \"t\"\ncentres = [\"fwd\", \"c1\"]\n\
             receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
             [[centres]]\nid = \"fwd\"\ntenants = [\"t\"]\n\
             receiver = {{ kind = \"scaip\", uri = \"sip:alarm@{}\", username = \"{GATEWAY}\", \
             password = \"{PASSWORD}\" }}\n\
             [[centres]]\nid = \"fwd-dead\"\ntenants = [\"t\"]\n\
             receiver = {{ kind = \"scaip\", uri = \"sip:alarm@{}\", username = \"{GATEWAY_2}\", \
             password = \"{PASSWORD}\" }}\n\
             [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-a-here\"\n\
             [[devices]]\ntenant = \"t\"\nid = \"d0\"\ntype = \"0003\"\n\
             centres = [\"fwd-dead\", \"c1\"]\n\
             [[devices]]\ntenant = \"t\"\nid = \"d1\"\ntype = \"0003\"\n",
            b.sip, b.sip
        ),
        &[("t", &["d0", "d1"])],
        "[receivers]\nprobe_secs = 1\n",
    );
    // The forwarder is up once B answers its OPTIONS.
    until_up(&a, "fwd").await;
    let mut c1 = a.centre("token-of-centre-a-here").await;
    let mut cb = b.centre("token-of-centre-b-here").await;

    // d0's alarms go first to B as a gateway of tenant b2, whose centre is away: B answers
    // snu 5, and A escalates at once to its own centre.
    let d0 = a.quic_client("t", "d0").await;
    let r = d0.send(events::alarm("x1", "0010", 1)).await.unwrap();
    let first = r.alarm_id.unwrap();
    let offer = c1.offer(Duration::from_secs(15)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, first);
    let trail = a.alarm_trail(first);
    assert!(
        trail.iter().any(|(_, _, why)| why.contains("snu 5")),
        "{trail:?}"
    );

    // d1's go to B as a gateway of tenant b, whose centre is there: snu 0 is A's receipt.
    let d1 = a.quic_client("t", "d1").await;
    let r = d1.send(events::alarm("y1", "0010", 2)).await.unwrap();
    let second = r.alarm_id.unwrap();
    let at_b = cb.offer(Duration::from_secs(15)).await.alarm.unwrap();
    assert_eq!(at_b.reference, format!("{second:x}"), "{at_b:?}");
    assert_eq!((at_b.tenant.as_str(), at_b.device.as_str()), ("b", GATEWAY));
    let text = at_b.text.clone().unwrap_or_default();
    assert!(
        text.contains("Hjälplarm") && text.contains("t/d1"),
        "{at_b:?}"
    );
    until_handed_over(&a, second, "fwd").await;
    let detail = a.get(&format!("/api/v1/alarms/{second}"), OPERATOR).json();
    assert_eq!(detail["alarm"]["state"], "closed", "handed over: {detail}");
    c1.no_offer_for(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_tcp_is_receipted_on_the_same_connection() {
    let b = Engine::start_full(&far_directory(), &[], "", true);
    let a = Engine::start_with(
        &forwarding_directory(b.sip_tcp.unwrap(), "tcp"),
        &[("t", &["d0"])],
        "[receivers]\nprobe_secs = 1\n",
    );
    forwards_one_alarm(&a, &b, "z1").await;
}

/// Engine B's directory: the gateway device A forwards as, in tenant b with the centre cb.
fn far_directory() -> String {
    format!(
        "[[tenants]]\nid = \"b\"\ncentres = [\"cb\"]\n\
         [[centres]]\nid = \"cb\"\ntenants = [\"b\"]\ntoken = \"token-of-centre-b-here\"\n\
         [[devices]]\ntenant = \"b\"\nid = \"{GATEWAY}\"\ntype = \"0003\"\n\
         password = \"{PASSWORD}\"\n"
    )
}

/// Once A's forwarder is up, an alarm of A's d0 (`reference`) arrives at B's centre as an alarm
/// of the gateway device, and B's `<mrs>` is the receipt in A. Returns B's centre, still
/// connected.
async fn forwards_one_alarm(a: &Engine, b: &Engine, reference: &str) -> admin::Centre {
    until_up(a, "fwd").await;
    let mut cb = b.centre("token-of-centre-b-here").await;
    let d0 = a.quic_client("t", "d0").await;
    let id = d0
        .send(events::alarm(reference, "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    let at_b = cb.offer(Duration::from_secs(15)).await.alarm.unwrap();
    assert_eq!(at_b.reference, format!("{id:x}"), "{at_b:?}");
    assert_eq!(at_b.device, GATEWAY);
    until_receipt(a, id, "fwd").await;
    cb
}

/// Engine A's directory: tenant t's alarms go to the SCAIP receiver `fwd` at `far` over
/// `transport`, then to the gRPC centre c1; its one device is d0.
fn forwarding_directory(far: std::net::SocketAddr, transport: &str) -> String {
    forwarding_directory_with(far, &format!("transport = \"{transport}\""), &["d0"])
}

/// As `forwarding_directory`, with `receiver` (more keys of the receiver) and `devices`.
fn forwarding_directory_with(
    far: std::net::SocketAddr,
    receiver: &str,
    devices: &[&str],
) -> String {
    let mut d = format!(
        "[[tenants]]\nid = \"t\"\ncentres = [\"fwd\", \"c1\"]\n\
         receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"fwd\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"scaip\", uri = \"sip:alarm@{far}\", username = \"{GATEWAY}\", \
         password = \"{PASSWORD}\", {receiver} }}\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-a-here\"\n"
    );
    for id in devices {
        d.push_str(&format!(
            "[[devices]]\ntenant = \"t\"\nid = \"{id}\"\ntype = \"0003\"\n"
        ));
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_tls_checks_the_far_certificate_and_is_receipted() {
    let b = Engine::start_sip(&far_directory(), &[], "", false, true);
    let far = b.sip_tls.unwrap();
    let b_ca = b.dir.path().join("certs/server-ca.pem");
    // A trusts B's (private) CA: the alarm goes over TLS and B's <mrs> is the receipt.
    let a = Engine::start_with(
        &forwarding_directory(far, "tls"),
        &[("t", &["d0"])],
        &format!(
            "[receivers]\nprobe_secs = 1\nscaip_ca_file = \"{}\"\n",
            b_ca.display()
        ),
    );
    let mut cb = forwards_one_alarm(&a, &b, "s1").await;

    // An engine that does not trust B's CA never speaks to it: the forwarder stays down, the
    // alarm goes to the next centre of the chain, and B gets nothing.
    let untrusted = Engine::start_with(
        &forwarding_directory(far, "tls"),
        &[("t", &["d0"])],
        "[receivers]\nprobe_secs = 1\n",
    );
    let mut c1 = untrusted.centre("token-of-centre-a-here").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = binary::get_metrics(untrusted.http).unwrap();
    assert!(
        m.contains("vaka_receiver_up{receiver=\"fwd\",kind=\"scaip\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("vaka_receiver_probe_failures_total{receiver=\"fwd\",kind=\"scaip\"}"),
        "{m}"
    );
    let d0 = untrusted.quic_client("t", "d0").await;
    let other = d0
        .send(events::alarm("s2", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    let offer = c1.offer(Duration::from_secs(15)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, other);
    cb.no_offer_for(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_as_the_far_receiver_holds_then_takes_the_alarm_and_it_is_handed_over() {
    // sipp's three calls: the forwarder's OPTIONS probe, the alarm answered HOLD, the same alarm
    // sent again and answered snu 0.
    let scenario = admin::scenario("scaip_far_receiver.xml");
    let far = sipp::SippServer::start(
        &scenario,
        "u1",
        3,
        &[("user", GATEWAY), ("pass", PASSWORD), ("first_snu", "4")],
    );
    let a = Engine::start_with(
        &forwarding_directory(far.addr, "udp"),
        &[("t", &["d0"])],
        "[receivers]\nprobe_secs = 1\n",
    );
    until_up(&a, "fwd").await;
    let mut c1 = a.centre("token-of-centre-a-here").await;
    let d0 = a.quic_client("t", "d0").await;
    let id = d0
        .send(events::alarm("p1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    let run = far.finish(Duration::from_secs(40)).await;
    run.assert_ok();
    // Our digest verified by sipp both times, the same reference sent again after the HOLD.
    for snu in [4, 0] {
        assert!(
            run.log
                .contains(&format!("far auth=true ref={id:x} snu={snu} ")),
            "sipp did not see our credentials, the alarm's reference or snu {snu}:\n{}",
            run.log
        );
    }
    until_handed_over(&a, id, "fwd").await;
    // Handed over: receipted, accepted and closed here; nothing left for a deadline of ours.
    let detail = a.get(&format!("/api/v1/alarms/{id}"), OPERATOR).json();
    assert_eq!(detail["alarm"]["state"], "closed", "{detail}");
    let trail = a.alarm_trail(id);
    assert!(
        trail.iter().any(|(who, what, why)| who == "centre:fwd"
            && what == "closed"
            && why.contains("handed over")),
        "{trail:?}"
    );
    c1.no_offer_for(Duration::from_secs(1)).await;
    let m = binary::get_metrics(a.http).unwrap();
    assert!(
        m.contains("vaka_receiver_holds_total{receiver=\"fwd\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_per_device_cid_each_device_is_its_own_alarm_at_the_far_engine() {
    // B lists A's devices behind the gateway account A forwards with (SCAIP ids are digits).
    let b = Engine::start(
        &format!(
            "[[tenants]]\nid = \"b\"\ncentres = [\"cb\"]\n\
             [[centres]]\nid = \"cb\"\ntenants = [\"b\"]\ntoken = \"token-of-centre-b-here\"\n\
             [[devices]]\ntenant = \"b\"\nid = \"{GATEWAY}\"\ntype = \"0003\"\n\
             password = \"{PASSWORD}\"\ngateway_for = [\"300001\", \"300002\"]\n\
             [[devices]]\ntenant = \"b\"\nid = \"300001\"\ntype = \"0003\"\n\
             [[devices]]\ntenant = \"b\"\nid = \"300002\"\ntype = \"0003\"\n"
        ),
        &[],
    );
    let a = Engine::start_with(
        &forwarding_directory_with(b.sip, "per_device_cid = true", &["300001", "300002"]),
        &[("t", &["300001", "300002"])],
        "[receivers]\nprobe_secs = 1\n",
    );
    until_up(&a, "fwd").await;
    let mut cb = b.centre("token-of-centre-b-here").await;
    let mut ids = Vec::new();
    for (device, reference) in [("300001", "m1"), ("300002", "m2")] {
        let client = a.quic_client("t", device).await;
        let id = client
            .send(events::alarm(reference, "0010", 1))
            .await
            .unwrap()
            .alarm_id
            .unwrap();
        ids.push(id);
        let at_b = cb.offer(Duration::from_secs(15)).await.alarm.unwrap();
        // Each arrives as its own device's alarm, a new one (not a repeat of the first).
        assert_eq!(
            (at_b.tenant.as_str(), at_b.device.as_str()),
            ("b", device),
            "{at_b:?}"
        );
        assert_eq!(at_b.reference, format!("{id:x}"), "{at_b:?}");
        assert_eq!(at_b.repeats, 0, "{at_b:?}");
        until_receipt(&a, id, "fwd").await;
    }
    assert_ne!(ids[0], ids[1]);
}
