//! vaka/1 end to end: real sockets on 127.0.0.1, real RocksDB, the device client library.
mod support;

use std::collections::HashSet;
use std::time::Duration;
use support::*;
use vaka_core::{CentreId, DeviceKey, EventKind};
use vaka_device::{events, pb, Client, ClientError};
use vaka_ingest::quic::{codes, QuicServer};
use vaka_proto::pb::Status;
use vaka_proto::Message;

fn status(r: &pb::EventReply) -> Status {
    r.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_all_ok_and_all_stored() {
    let env = Env::start().await;
    env.presence.connected(&CentreId::new("c1"));
    let client = within(10, Client::connect(env.device("t1", "d0")))
        .await
        .unwrap();
    let w = client.welcome();
    assert_eq!((w.tenant.as_str(), w.device.as_str()), ("t1", "d0"));

    const N: usize = 10_000;
    let mk = |i: usize| {
        let key = format!("e{i}");
        match i % 10 {
            0 => events::alarm(key, "0010", 3),
            1 => events::heartbeat(key),
            2..=4 => events::position(
                key,
                1_700_000_000_000 + i as i64 * 1000,
                59.3,
                18.0 + i as f64 * 1e-5,
                Some(8.0),
            ),
            5 => events::technical(key, "BATLOW", i % 20 == 5),
            _ => events::telemetry(key, "temp", i as f64),
        }
    };
    // Pipelined: every batch is submitted before any reply is awaited.
    let mut futs = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(250) {
        futs.extend(
            client
                .submit(chunk.iter().map(|&i| mk(i)).collect())
                .await
                .unwrap(),
        );
    }
    let mut replies = Vec::with_capacity(N);
    for f in futs {
        replies.push(within(60, f).await.unwrap());
    }
    for r in &replies {
        assert_eq!(status(r), Status::Ok, "{r:?}");
        assert!(r.event_id.is_some());
    }
    let keys: HashSet<_> = replies.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), N);

    let stored = env.stored_events();
    let own = DeviceKey::new("t1", "d0");
    let mine: Vec<_> = stored.iter().filter(|s| s.event.device == own).collect();
    assert_eq!(mine.len(), N, "every event is in the store, once");
    let ids: HashSet<u64> = replies.iter().map(|r| r.event_id.unwrap()).collect();
    for s in &mine {
        assert!(ids.contains(&s.id.0));
        // The raw message is the event's exact wire bytes.
        let ev = pb::Event::decode(s.event.raw.as_slice()).unwrap();
        assert_eq!(ev.key, s.event.key);
        if matches!(s.event.kind, EventKind::Position) {
            assert!(s.event.fix.is_some());
        }
    }
    client.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_wrong_tenant_certificates_are_refused_at_the_handshake() {
    let env = Env::start().await;
    // A certificate from a CA the server does not know (it calls itself t1, names d1).
    let e = within(10, Client::connect(env.rogue("d1")))
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Refused(_)), "{e}");
    // A certificate from t2's CA naming d1, a device of t1: not one of t2's devices.
    let e = within(10, Client::connect(env.device("t2", "d1")))
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Refused(_)), "{e}");
    // A certificate from t1's CA for a device not in the directory.
    let e = within(10, Client::connect(env.device("t1", "ghost")))
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Refused(_)), "{e}");
    // The right ones work, in both tenants.
    let c = within(10, Client::connect(env.device("t2", "x1")))
        .await
        .unwrap();
    assert_eq!(c.welcome().tenant, "t2");
    let r = within(10, c.send(events::heartbeat("h1"))).await.unwrap();
    assert_eq!(status(&r), Status::Ok);
    until(10, || env.server.connections() == 1).await;
    c.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_as_another_device_is_rejected_and_the_connection_goes_on() {
    let env = Env::start().await;
    env.presence.connected(&CentreId::new("c1"));
    let c = within(10, Client::connect(env.device("t1", "d1")))
        .await
        .unwrap();
    let replies = within(
        10,
        c.send_batch(vec![
            events::for_device(events::alarm("a1", "0010", 5), "d2"),
            events::for_device(events::heartbeat("h1"), "ghost"),
            events::for_device(events::heartbeat("h2"), "x1"),
            events::alarm("a2", "0010", 5),
            events::for_device(events::heartbeat("h3"), "d1"),
        ]),
    )
    .await
    .unwrap();
    let st: Vec<_> = replies.iter().map(status).collect();
    assert_eq!(
        st,
        vec![
            Status::Rejected,
            Status::Rejected,
            Status::Rejected,
            Status::Ok,
            Status::Ok
        ]
    );
    assert!(
        replies[0].reason.contains("may not send as"),
        "{}",
        replies[0].reason
    );
    // Still the same connection, still working.
    let r = within(10, c.send(events::heartbeat("h4"))).await.unwrap();
    assert_eq!(status(&r), Status::Ok);
    assert_eq!(c.reconnects(), 0);
    let stored = env.stored_events();
    assert_eq!(stored.len(), 3);
    assert!(stored
        .iter()
        .all(|s| s.event.device == DeviceKey::new("t1", "d1")));
    c.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_sends_for_its_registered_devices_only() {
    let env = Env::start().await;
    let mut cfg = env.device("t1", "gw");
    cfg.gateway = true;
    let c = within(10, Client::connect(cfg)).await.unwrap();
    let replies = within(
        10,
        c.send_batch(vec![
            events::for_device(events::heartbeat("k1"), "d1"),
            events::for_device(events::position("k1", 5_000, 59.0, 18.0, None), "d2"),
            events::for_device(events::heartbeat("k1"), "d3"),
            events::heartbeat("k1"),
            // No centre connected: an alarm is stored but not treated (invariant 5).
            events::for_device(events::alarm("k2", "0010", 5), "d1"),
        ]),
    )
    .await
    .unwrap();
    let st: Vec<_> = replies.iter().map(status).collect();
    assert_eq!(
        st,
        vec![
            Status::Ok,
            Status::Ok,
            Status::Rejected,
            Status::Ok,
            Status::NotTreated
        ]
    );
    assert!(replies[4].alarm_id.is_some());
    let stored: HashSet<_> = env
        .stored_events()
        .into_iter()
        .map(|s| (s.event.device.device.0, s.event.key))
        .collect();
    let want: HashSet<_> = [("d1", "k1"), ("d2", "k1"), ("gw", "k1"), ("d1", "k2")]
        .into_iter()
        .map(|(d, k)| (d.to_string(), k.to_string()))
        .collect();
    assert_eq!(stored, want);
    c.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_gets_an_error_and_the_connection_goes_on() {
    let env = Env::start().await;
    let cfg = env.device("t1", "d2");
    let mut raw = within(10, Raw::open(&cfg, true)).await;

    // A well-delimited frame that is not a ClientFrame: ServerFrame.error, nothing stored.
    raw.write(&[3, 0xff, 0xff, 0xff]).await;
    match raw.next().await.kind {
        Some(pb::server_frame::Kind::Error(e)) => {
            assert!(e.reason.contains("malformed"), "{}", e.reason)
        }
        other => panic!("expected a frame error, got {other:?}"),
    }

    // A frame with a good event, an event without a body, an undecodable event, a bad key.
    let good = events::heartbeat("ok1");
    let no_body = pb::Event {
        key: "nobody".into(),
        ..Default::default()
    };
    let mut frame = Vec::new();
    let mut inner = Vec::new();
    for ev in [
        good.encode_to_vec(),
        no_body.encode_to_vec(),
        vec![0x0a, 0x05, b'x'],
        events::heartbeat("").encode_to_vec(),
    ] {
        inner.push(0x0a);
        prost_len(ev.len(), &mut inner);
        inner.extend_from_slice(&ev);
    }
    let mut body = vec![0x12];
    prost_len(inner.len(), &mut body);
    body.extend_from_slice(&inner);
    prost_len(body.len(), &mut frame);
    frame.extend_from_slice(&body);
    raw.write(&frame).await;
    let mut replies = raw.replies(4).await;
    replies.sort_by_key(|r| r.index);
    assert_eq!(
        replies.iter().map(status).collect::<Vec<_>>(),
        vec![Status::Ok, Status::Error, Status::Error, Status::Error]
    );
    assert_eq!(replies[1].key, "nobody");
    assert_eq!((replies[2].key.as_str(), replies[2].index), ("", 2));

    // The connection goes on.
    raw.events(vec![events::heartbeat("ok2")]).await;
    let r = raw.replies(1).await;
    assert_eq!(status(&r[0]), Status::Ok);
    assert_eq!(env.stored_events().len(), 2);

    // A second Hello is a protocol violation: closed with PROTOCOL.
    raw.frame(&pb::ClientFrame {
        kind: Some(pb::client_frame::Kind::Hello(pb::Hello::default())),
    })
    .await;
    assert_eq!(raw.closed_code().await, u64::from(codes::PROTOCOL));

    // Events before Hello: PROTOCOL too.
    let mut raw = within(10, Raw::open(&cfg, false)).await;
    raw.events(vec![events::heartbeat("early")]).await;
    assert_eq!(raw.closed_code().await, u64::from(codes::PROTOCOL));
    env.stop().await;
}

fn prost_len(n: usize, buf: &mut Vec<u8>) {
    prost::encode_length_delimiter(n, buf).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_and_too_many_events_are_refused() {
    let env = Env::start_with(|c| {
        c.max_frame_bytes = 4096;
        c.max_events_per_frame = 10;
        c.max_inflight_events = 10;
    })
    .await;
    let cfg = env.device("t1", "d3");
    let mut raw = within(10, Raw::open(&cfg, true)).await;
    // Only the length prefix is needed: the server refuses before the body arrives.
    let mut prefix = Vec::new();
    prost_len(4097, &mut prefix);
    raw.write(&prefix).await;
    assert_eq!(raw.closed_code().await, u64::from(codes::FRAME_TOO_LARGE));

    let mut raw = within(10, Raw::open(&cfg, true)).await;
    raw.events(
        (0..11)
            .map(|i| events::heartbeat(format!("h{i}")))
            .collect(),
    )
    .await;
    assert_eq!(raw.closed_code().await, u64::from(codes::TOO_MANY_EVENTS));
    assert!(env.stored_events().is_empty());

    // The client library keeps to the limits it was told in Welcome: 25 events in 3 frames.
    let c = within(10, Client::connect(cfg)).await.unwrap();
    assert_eq!(c.welcome().max_events_per_frame, 10);
    let replies = within(
        10,
        c.send_batch(
            (0..25)
                .map(|i| events::heartbeat(format!("b{i}")))
                .collect(),
        ),
    )
    .await
    .unwrap();
    assert!(replies.iter().all(|r| status(r) == Status::Ok));
    let big = events::telemetry("big", "x".repeat(5000), 1.0);
    assert!(matches!(
        c.send(big).await,
        Err(ClientError::InvalidEvent(_))
    ));
    c.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_reconnect_makes_no_duplicate() {
    let env = Env::start().await;
    env.presence.connected(&CentreId::new("c1"));

    // 1. An alarm answered on one connection, resent on a new one: same ids, duplicate.
    let c = within(10, Client::connect(env.device("t1", "d4")))
        .await
        .unwrap();
    let first = within(10, c.send(events::alarm("ref-1", "0010", 5)))
        .await
        .unwrap();
    assert_eq!(status(&first), Status::Ok);
    assert!(!first.duplicate);
    c.close().await;
    let c = within(10, Client::connect(env.device("t1", "d4")))
        .await
        .unwrap();
    let again = within(10, c.send(events::alarm("ref-1", "0010", 5)))
        .await
        .unwrap();
    assert_eq!(status(&again), Status::Ok);
    assert!(again.duplicate);
    assert_eq!(
        (again.event_id, again.alarm_id),
        (first.event_id, first.alarm_id)
    );

    // 2. The library resends by itself: events in flight when the connection drops (their
    // replies lost with it) are resent on the next connection and answered as duplicates.
    env.gate.hold();
    let futs = c
        .submit(
            (0..50)
                .map(|i| events::alarm(format!("r{i}"), "0010", 5))
                .collect(),
        )
        .await
        .unwrap();
    // The frame's events are submitted together: once one is at the store, all are.
    until(10, || env.gate.blocked() > 0).await;
    c.force_reconnect();
    until(10, || c.reconnects() >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.gate.release();
    let mut dups = 0;
    for f in futs {
        let r = within(30, f).await.unwrap();
        assert_eq!(status(&r), Status::Ok, "{r:?}");
        dups += usize::from(r.duplicate);
    }
    assert_eq!(
        dups, 50,
        "every reply came to the resend, recognised as a duplicate"
    );
    let stored: Vec<_> = env
        .stored_events()
        .into_iter()
        .filter(|s| s.event.device == DeviceKey::new("t1", "d4"))
        .map(|s| s.event.key)
        .collect();
    assert_eq!(stored.len(), 51, "no event stored twice");
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), 51);
    c.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_was_submitted_and_devices_reconnect_to_the_next_server() {
    let env = Env::start().await;
    let c = within(10, Client::connect(env.device("t1", "d5")))
        .await
        .unwrap();
    assert_eq!(
        status(&within(10, c.send(events::heartbeat("h0"))).await.unwrap()),
        Status::Ok
    );

    // Events submitted and held at the store when shutdown starts are still answered.
    env.gate.hold();
    let futs = c
        .submit(
            (1..=20)
                .map(|i| events::heartbeat(format!("h{i}")))
                .collect(),
        )
        .await
        .unwrap();
    until(10, || env.gate.blocked() > 0).await;
    let addr = env.addr();
    let release = {
        let gate = env.gate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            gate.release();
        })
    };
    within(10, env.server.shutdown()).await;
    release.await.unwrap();
    assert_eq!(env.server.connections(), 0);
    for f in futs {
        assert_eq!(status(&within(10, f).await.unwrap()), Status::Ok);
    }

    // A new server on the same address (the old one released it): the device reconnects by
    // itself.
    let cfg = vaka_ingest::quic::QuicConfig {
        listen: addr,
        ..env.cfg.clone()
    };
    let server = within(10, async {
        loop {
            match QuicServer::start(&cfg, env.router.clone(), env.directory.clone()) {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let r = within(20, c.send(events::heartbeat("after")))
        .await
        .unwrap();
    assert_eq!(status(&r), Status::Ok);
    assert!(c.reconnects() >= 1);
    c.close().await;
    within(10, server.shutdown()).await;
    within(20, env.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused() {
    let env = Env::start_with(|c| c.max_connections = 1).await;
    let a = within(10, Client::connect(env.device("t1", "d6")))
        .await
        .unwrap();
    let e = within(10, Client::connect(env.device("t1", "d7")))
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Connection(_)), "{e}");
    a.close().await;
    // The permit comes back when the first connection ends.
    let b = within(10, async {
        loop {
            match Client::connect(env.device("t1", "d7")).await {
                Ok(b) => break b,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    b.close().await;
    env.stop().await;
}

/// The telemetry port counts its connections apart: telemetry connections up to its limit
/// never take an alarm device's place on the alarm port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_connections_do_not_take_the_alarm_ports_places() {
    let env = Env::start_with(|c| {
        c.max_connections = 1;
        c.telemetry_max_connections = 1;
        c.telemetry_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    env.presence.connected(&CentreId::new("c1"));
    let port = env.server.telemetry_addr().unwrap();
    let on_port = |d: &str| device_config(port, &env.certs, &env.certs, "t1", d);
    let tracker = within(10, Client::connect(on_port("d1"))).await.unwrap();
    assert!(
        within(10, Client::connect(on_port("d2"))).await.is_err(),
        "the telemetry port's second connection is refused"
    );
    let alarms = within(10, Client::connect(env.device("t1", "d0")))
        .await
        .expect("the alarm port has its place");
    let r = within(10, alarms.send(events::alarm("a1", "0010", 3)))
        .await
        .unwrap();
    assert_eq!(status(&r), Status::Ok);
    tracker.close().await;
    alarms.close().await;
    env.stop().await;
}
