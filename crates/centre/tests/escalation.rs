//! Deadlines and escalation seen through real gRPC streams on 127.0.0.1, with paused tokio time:
//! the test moves the clock, the router's deadline timers fire, the centres' streams show it.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_centre::pb;
use vaka_core::AlarmState;
use vaka_router::Clock;
use vaka_store::{Backend, MemBackend};

async fn world(cfg: vaka_centre::CentreApiConfig) -> World {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    World::start(backend, Clock::starting_at(T0), cfg).await
}

/// Moves tokio's clock and lets the timers that came due run.
async fn advance(d: Duration) {
    tokio::time::advance(d).await;
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn primary_silent_then_backup_without_operator_then_unhandled_everywhere() {
    let _busy = hold_clock();
    let w = world(test_config()).await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let mut ca2 = Centre::connect(&w, "ca2", None).await;
    eventually("both reachable", || {
        w.is_reachable("ca1") && w.is_reachable("ca2")
    })
    .await;
    let (id, _) = w.raise("a", "d1", "r1").await;
    let first = ca1.offer().await;
    ca1.ack(first.cursor).await;
    let a = first.alarm.unwrap();
    assert_eq!((a.escalation_step, a.priority), (0, 2));

    // The primary never confirms receipt: just before the deadline nothing moves...
    advance(Duration::from_millis(9_900)).await;
    ca2.quiet_for(Duration::from_millis(100)).await;
    // ...at it, the backup is offered the alarm with priority raised, the primary told.
    advance(Duration::from_millis(100)).await;
    let second = ca2.offer().await;
    ca2.ack(second.cursor).await;
    let a = second.alarm.unwrap();
    assert_eq!(a.alarm_id, id.0);
    assert!(!second.unhandled);
    assert_eq!(
        (a.escalation_step, a.priority, a.holder.as_str()),
        (1, 3, "ca2")
    );
    assert_eq!(
        a.deadline.unwrap().at_ms,
        T0 + 20_000,
        "a fresh receipt deadline"
    );
    let gone = ca1.update().await;
    ca1.ack(gone.cursor).await;
    assert_eq!(gone.kind, pb::UpdateKind::EscalatedElsewhere as i32);

    // The backup confirms receipt, but no operator accepts within 60 s.
    assert_eq!(code(&ca2.receipt(id.0).await), tonic::Code::Ok);
    advance(Duration::from_millis(59_900)).await;
    ca2.quiet_for(Duration::from_millis(100)).await;
    advance(Duration::from_millis(100)).await;
    // Chain exhausted: unhandled, offered to every centre of the chain with the flag.
    let u = ca2.update().await;
    assert_eq!(u.kind, pb::UpdateKind::EscalatedElsewhere as i32);
    let o2 = ca2.offer().await;
    let o1 = ca1.offer().await;
    for o in [&o1, &o2] {
        assert!(o.unhandled);
        let a = o.alarm.as_ref().unwrap();
        assert_eq!(
            (a.alarm_id, a.state.as_str(), a.priority),
            (id.0, "unhandled", 4)
        );
    }
    ca1.ack(o1.cursor).await;
    ca2.ack(o2.cursor).await;

    // Any centre of the chain may take it now; the other hears it was taken.
    assert_eq!(code(&ca1.accept(id.0, "op-1").await), tonic::Code::Ok);
    let taken = ca2.update().await;
    assert_eq!(taken.kind, pb::UpdateKind::TakenElsewhere as i32);
    let mut client = w.client("ca1").await;
    let trail: Vec<(String, String)> = client
        .get_audit(pb::GetAuditRequest { alarm_id: id.0 })
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .map(|r| (r.action, r.reason))
        .collect();
    let actions: Vec<&str> = trail.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "received",
            "offered to ca1",
            "escalated",
            "offered to ca2",
            "receipt",
            "escalated",
            "unhandled",
            "accepted"
        ]
    );
    assert_eq!(trail[2].1, "no receipt from ca1");
    assert_eq!(trail[5].1, "no operator accepted at ca2");
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn receipt_and_accept_stop_the_deadlines() {
    let _busy = hold_clock();
    let w = world(test_config()).await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let mut ca2 = Centre::connect(&w, "ca2", None).await;
    eventually("both reachable", || {
        w.is_reachable("ca1") && w.is_reachable("ca2")
    })
    .await;
    let (id, _) = w.raise("a", "d2", "r1").await;
    let o = ca1.offer().await;
    ca1.ack(o.cursor).await;
    advance(Duration::from_secs(9)).await;
    assert_eq!(code(&ca1.receipt(id.0).await), tonic::Code::Ok);
    // The receipt deadline no longer applies; the accept deadline (60 s from the receipt) does.
    advance(Duration::from_secs(59)).await;
    assert_eq!(code(&ca1.accept(id.0, "op-3").await), tonic::Code::Ok);
    advance(Duration::from_secs(600)).await;
    ca1.quiet_for(Duration::from_millis(100)).await;
    ca2.quiet_for(Duration::from_millis(100)).await;
    let alarm = vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert!(matches!(alarm.state, AlarmState::Accepted { .. }));
    assert_eq!(alarm.deadline, None);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn whole_chain_silent_makes_it_unhandled_and_every_centre_is_told() {
    let _busy = hold_clock();
    let w = world(test_config()).await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let mut ca2 = Centre::connect(&w, "ca2", None).await;
    eventually("both reachable", || {
        w.is_reachable("ca1") && w.is_reachable("ca2")
    })
    .await;
    let (id, _) = w.raise("a", "d3", "r1").await;
    ca1.offer().await;
    advance(Duration::from_secs(10)).await;
    ca1.update().await;
    ca2.offer().await;
    // Neither centre says anything: 10 s later the chain is exhausted.
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        ca2.update().await.kind,
        pb::UpdateKind::EscalatedElsewhere as i32
    );
    for c in [&mut ca1, &mut ca2] {
        let o = c.offer().await;
        assert!(o.unhandled, "flagged to every centre");
        assert_eq!(o.alarm.unwrap().alarm_id, id.0);
    }
    let alarm = vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert_eq!(alarm.state, AlarmState::Unhandled);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_centre_that_stops_acknowledging_is_cut_off_and_skipped() {
    let _busy = hold_clock();
    let cfg = vaka_centre::CentreApiConfig {
        ack_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let w = world(cfg).await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let mut ca2 = Centre::connect(&w, "ca2", None).await;
    eventually("both reachable", || {
        w.is_reachable("ca1") && w.is_reachable("ca2")
    })
    .await;
    let (id, _) = w.raise("a", "d4", "r1").await;
    ca1.offer().await; // never acknowledged
    advance(Duration::from_secs(5)).await;
    let e = ca1.ended().await;
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
    // Unreachable now: its alarm goes to the backup at once, well before the receipt deadline.
    eventually("ca1 unreachable", || !w.is_reachable("ca1")).await;
    let o = ca2.offer().await;
    assert_eq!(o.alarm.unwrap().alarm_id, id.0);
    w.shutdown().await;
}
