//! The SCAIP front against sipp, the standard SIP test tool, as the device: each test starts
//! a real server (RocksDB, router, SIP on 127.0.0.1 ephemeral ports) and runs one scenario
//! from `tests/sipp/` as a child process, checking its exit code, what it logged of the
//! `<mrs>`, and what the store holds. sipp missing fails the test (never a silent skip).
//!
//! TLS is not run with sipp: Debian's sip-tester 3.6.1 is built without TLS (`sipp -v` lists
//! no TLS, `-t l1` is not offered). `sip_front.rs` covers TLS with a Rust client instead.
mod sip_support;

use sip_support::*;
use vaka_core::alarm::AlarmState;
use vaka_core::{CentreId, EventKind};

const ALARM: &str = "<mty>ME</mty><stc>0010</stc><pri>7</pri><crd>gsm:+46701234567</crd>";

async fn alarm_exchange(transport: &str) {
    let env = Env::start().await;
    let addr = if transport == "t1" {
        env.tcp()
    } else {
        env.udp()
    };
    let run = sipp(
        "scaip_message.xml",
        transport,
        addr,
        TRIGGER,
        PASSWORD,
        &mrq("A1", TRIGGER, ALARM),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), vec![(0, "A1".to_string(), None)]);
    let events = env.stored_events();
    assert_eq!(events.len(), 1, "one event stored");
    let ev = &events[0].event;
    assert_eq!(ev.key, "A1");
    assert_eq!(ev.device.device.as_str(), TRIGGER);
    match &ev.kind {
        EventKind::Alarm(a) => {
            assert_eq!((a.code.as_str(), a.priority), ("0010", 7));
            assert_eq!(a.callback, vec!["gsm:+46701234567".to_string()]);
        }
        other => panic!("expected an alarm, got {other:?}"),
    }
    assert!(
        String::from_utf8_lossy(&ev.raw).contains("<ref>A1</ref>"),
        "raw XML kept"
    );
    assert_eq!(env.alarms().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_alarm_over_udp_gets_mrs_snu_0() {
    alarm_exchange("u1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_alarm_over_tcp_gets_mrs_snu_0() {
    alarm_exchange("t1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_wrong_password_is_forbidden_and_stores_nothing() {
    let env = Env::start().await;
    for (transport, addr) in [("u1", env.udp()), ("t1", env.tcp())] {
        let run = sipp(
            "scaip_forbidden.xml",
            transport,
            addr,
            TRIGGER,
            "not-the-password",
            &mrq("W1", TRIGGER, ALARM),
            &[],
        )
        .await;
        run.assert_ok();
    }
    assert!(
        env.stored_events().is_empty(),
        "no event from a wrong password"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_resent_request_makes_one_alarm() {
    let env = Env::start().await;
    let run = sipp(
        "scaip_resend.xml",
        "u1",
        env.udp(),
        TRIGGER,
        PASSWORD,
        &mrq("R1", TRIGGER, ALARM),
        &[],
    )
    .await;
    run.assert_ok();
    // The retransmission (same branch) got the stored 200 and no second <mrs>; the SCAIP
    // resend (new transaction, same ref) got its own <mrs> with snu 0.
    assert_eq!(
        run.mrs(),
        vec![(0, "R1".to_string(), None), (0, "R1".to_string(), None)]
    );
    assert_eq!(env.stored_events().len(), 1, "one event");
    assert_eq!(env.alarms().len(), 1, "one alarm");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_reset_cancels_the_alarm() {
    let env = Env::start().await;
    let run = sipp(
        "scaip_message.xml",
        "u1",
        env.udp(),
        TRIGGER,
        PASSWORD,
        &mrq("X7", TRIGGER, ALARM),
        &[],
    )
    .await;
    run.assert_ok();
    let alarm = env.alarms().pop().expect("alarm opened");
    assert_ne!(alarm.state, AlarmState::Cancelled);
    let run = sipp(
        "scaip_message.xml",
        "t1",
        env.tcp(),
        TRIGGER,
        PASSWORD,
        &mrq("X7", TRIGGER, "<mty>RE</mty>"),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), vec![(0, "X7".to_string(), None)]);
    assert_eq!(env.alarm(alarm.id).unwrap().state, AlarmState::Cancelled);
    assert_eq!(env.alarms().len(), 1, "the reset opened nothing");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_heartbeat_is_answered_with_hbi_once() {
    let env = Env::start().await;
    let pi = mrq("P1", TRACKER, "<mty>PI</mty><hbo>001</hbo>")
        .replace("<dty>0003</dty>", "<dty>0051</dty>");
    let run = sipp(
        "scaip_message.xml",
        "u1",
        env.udp(),
        TRACKER,
        PASSWORD,
        &pi,
        &[],
    )
    .await;
    run.assert_ok();
    // The tracker is configured for 630 s: hbi 11 minutes (whole minutes, rounded up), and from
    // now on it is supervised with the 660 s it was told, durably.
    assert_eq!(run.mrs(), vec![(0, "P1".to_string(), Some(11))]);
    let tracker = vaka_core::DeviceKey::new("demo", TRACKER);
    until(5, || {
        env.heartbeat_intervals().contains(&(tracker.clone(), 660))
    })
    .await;
    // Confirmed once, not repeated; a device that cannot adjust gets none.
    let run = sipp(
        "scaip_message.xml",
        "u1",
        env.udp(),
        TRACKER,
        PASSWORD,
        &pi.replace("P1", "P2"),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), vec![(0, "P2".to_string(), None)]);
    let events = env.stored_events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event.kind == EventKind::Heartbeat));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_malformed_xml_gets_snu_2_and_missing_cid_snu_7() {
    let env = Env::start().await;
    let cases: &[(&str, &str, u8, &str)] = &[
        (
            "u1",
            "<mrq><ref>M1</ref><cid>100001</cid><dty>0003",
            2,
            "M1",
        ),
        ("t1", "this is not xml", 2, ""),
        ("u1", "<mrq><ref>M2</ref><dty>0003</dty></mrq>", 7, "M2"),
        ("t1", "<mrq><cid>100001</cid><dty>0003</dty></mrq>", 10, ""),
        (
            "u1",
            "<mrq><ref>M3</ref><cid>100001</cid><dty>0003</dty><pri>12</pri></mrq>",
            3,
            "M3",
        ),
    ];
    for (transport, body, snu, reference) in cases {
        let addr = if *transport == "t1" {
            env.tcp()
        } else {
            env.udp()
        };
        let run = sipp(
            "scaip_message.xml",
            transport,
            addr,
            TRIGGER,
            PASSWORD,
            body,
            &[],
        )
        .await;
        run.assert_ok();
        assert_eq!(
            run.mrs(),
            vec![(*snu, reference.to_string(), None)],
            "{body}"
        );
    }
    assert!(
        env.stored_events().is_empty(),
        "nothing stored from invalid requests"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_no_centre_gets_snu_5_and_the_alarm_is_kept() {
    let env = Env::start().await;
    env.presence.disconnected(&CentreId::new(CENTRE));
    let run = sipp(
        "scaip_message.xml",
        "u1",
        env.udp(),
        TRIGGER,
        PASSWORD,
        &mrq("N1", TRIGGER, ALARM),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), vec![(5, "N1".to_string(), None)]);
    assert_eq!(env.alarms().len(), 1, "stored although nobody can act now");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_register_then_mrs_goes_to_the_registered_contact() {
    let env = Env::start().await;
    let run = sipp(
        "scaip_register.xml",
        "u1",
        env.udp(),
        TRIGGER,
        PASSWORD,
        &mrq("G1", TRIGGER, ALARM),
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), vec![(0, "G1".to_string(), None)]);
    assert_eq!(env.server.registrations(), 1);
    env.stop().await;
}
