//! Alarms first at the QUIC front: the telemetry port, and telemetry waiting its turn while an
//! alarm decides. One test in this binary: it reads the front's counters from a process-wide
//! metrics recorder.
mod support;

use std::time::Duration;
use support::*;
use vaka_core::{CentreId, DeviceKey};
use vaka_device::{events, Client};
use vaka_proto::pb::Status;

/// The QUIC front's counter `name` (`stage="quic"`).
fn counter(metrics: &metrics_exporter_prometheus::PrometheusHandle, name: &str) -> u64 {
    let series = format!("{name}{{stage=\"quic\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

/// Events the front has handed to the router.
fn handed_to_router(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    counter(metrics, "vaka_events_sent_total")
}

/// Events the front has read and parsed.
fn read(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    counter(metrics, "vaka_events_received_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_on_its_own_port_waits_its_turn_while_an_alarm_decides() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let env = Env::start_with(|c| c.telemetry_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    env.presence.connected(&CentreId::new("c1"));
    let port = env.server.telemetry_addr().expect("a telemetry port");
    assert_ne!(port, env.addr());
    let alarms = within(10, Client::connect(env.device("t1", "d0")))
        .await
        .unwrap();
    let tracker = within(
        10,
        Client::connect(device_config(port, &env.certs, &env.certs, "t1", "d1")),
    )
    .await
    .unwrap();
    // Both ports take events.
    let first = within(10, alarms.send(events::heartbeat("a-h0")))
        .await
        .unwrap();
    assert_eq!(first.status(), Status::Ok);
    let first = within(10, tracker.send(events::heartbeat("t-h0")))
        .await
        .unwrap();
    assert_eq!(first.status(), Status::Ok);
    assert_eq!(handed_to_router(&metrics), 2);

    // An alarm decides (the store is held).
    env.gate.hold();
    let alarm = alarms
        .submit(vec![events::alarm("a-1", "0010", 3)])
        .await
        .unwrap();
    until(10, || env.gate.blocked() > 0).await;
    // No frame of telemetry alone is handed to the router while it decides, and the
    // connection is not read past the frame that waits.
    let beats = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| events::heartbeat(format!("t-h{i}")))
            .collect::<Vec<_>>()
    };
    let mut replies = tracker.submit(beats(1, 10)).await.unwrap();
    replies.extend(tracker.submit(beats(11, 10)).await.unwrap());
    until(10, || read(&metrics) == 2 + 1 + 20).await;
    // An alarm is never made to wait, whichever port it comes on: it goes past the held frames.
    replies.extend(
        tracker
            .submit(vec![events::alarm("t-a1", "0010", 3)])
            .await
            .unwrap(),
    );
    until(10, || handed_to_router(&metrics) == 2 + 1 + 1).await;
    // Past 64 held telemetry events the connection is not read any more: QUIC flow control
    // holds the rest at the device.
    replies.extend(tracker.submit(beats(21, 50)).await.unwrap());
    replies.extend(tracker.submit(beats(71, 10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        handed_to_router(&metrics),
        2 + 1 + 1,
        "telemetry taken while an alarm decides"
    );
    assert_eq!(
        read(&metrics),
        2 + 1 + 20 + 1 + 50,
        "a connection read past its held telemetry"
    );

    // The store answers: everything is stored and answered OK.
    env.gate.release();
    for r in alarm.into_iter().chain(replies) {
        assert_eq!(within(10, r).await.unwrap().status(), Status::Ok);
    }
    assert_eq!(handed_to_router(&metrics), 2 + 1 + 1 + 80);
    let stored = env.stored_events();
    let of = |d: &str| {
        stored
            .iter()
            .filter(|s| s.event.device == DeviceKey::new("t1", d))
            .count()
    };
    assert_eq!((of("d0"), of("d1")), (2, 1 + 80 + 1));
    alarms.close().await;
    tracker.close().await;
    env.stop().await;
}
