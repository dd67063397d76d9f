//! The router's side of delivery, with paused tokio time: offers land in centre outboxes only once
//! durable, centre inputs move alarms on, missed deadlines escalate along the chain to unhandled,
//! a vanished centre is skipped once its reconnect grace is over (at once without one), deadlines
//! survive a restart, and a restart or a brief disconnect escalates nothing (invariant 11).
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::alarm::{AlarmInput, Notice, UpdateKind};
use vaka_core::directory::Directory;
use vaka_core::{AlarmId, AlarmState, CentreId, DeviceKey};
use vaka_router::{Clock, InputError, Reply, Router, RouterConfig};
use vaka_store::{read_outbox, Backend, MemBackend, Store};

const T0: i64 = 1_700_000_000_000;

fn chain_dir() -> Directory {
    let mut d = directory(4);
    let t = d.tenants.get_mut(&vaka_core::TenantId::new("t")).unwrap();
    t.chain = vec![CentreId::new("c1"), CentreId::new("c2")];
    d
}

struct World {
    backend: Arc<MemBackend>,
    store: Store,
    router: Arc<Router>,
    clock: Clock,
}

/// Without a reconnect grace: a centre that goes is passed at once.
fn start(backend: Arc<MemBackend>, clock: Clock) -> World {
    start_with(backend, clock, chain_dir(), 0)
}

fn start_with(backend: Arc<MemBackend>, clock: Clock, dir: Directory, grace_ms: i64) -> World {
    let rc = RouterConfig {
        shards: 2,
        reconnect_grace_ms: grace_ms,
        ..RouterConfig::default()
    };
    let (store, router) = start_router(backend.clone(), dir, rc, clock);
    World {
        backend,
        store,
        router,
        clock,
    }
}

fn outbox(w: &World, centre: &str) -> Vec<Notice> {
    read_outbox(
        w.backend.as_ref() as &dyn Backend,
        &CentreId::new(centre),
        0,
        1000,
    )
    .unwrap()
    .into_iter()
    .map(|(_, n)| n)
    .collect()
}

/// Waits (in real time, bounded) until `centre` has `n` notices.
async fn notices(w: &World, centre: &str, n: usize) -> Vec<Notice> {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = outbox(w, centre);
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < until,
            "{centre} has {} notices, wanted {n}: {got:?}",
            got.len()
        );
        tokio::task::yield_now().await;
    }
}

async fn raise(w: &World, device: &str, key: &str) -> (AlarmId, bool) {
    match w.router.submit(alarm(device, key)).await.unwrap() {
        Reply::Accepted {
            alarm: Some(a),
            centre_available,
            ..
        } => (a, centre_available),
        other => panic!("{other:?}"),
    }
}

fn dev(d: &str) -> DeviceKey {
    DeviceKey::new("t", d)
}

fn is_offer(n: &Notice, id: AlarmId, unhandled_flag: bool) -> bool {
    matches!(n, Notice::Offer { alarm, unhandled } if alarm.id == id && *unhandled == unhandled_flag)
}

#[tokio::test(start_paused = true)]
async fn offer_receipt_accept_close_with_audit_trail() {
    let _busy = hold_clock();
    let w = start(Arc::new(MemBackend::new()), Clock::starting_at(T0));
    w.router.centre_up(&CentreId::new("c1")).await;
    let (id, available) = raise(&w, "d1", "r1").await;
    assert!(available);
    let got = notices(&w, "c1", 1).await;
    assert!(is_offer(&got[0], id, false));
    assert_eq!(
        got[0].alarm().state,
        AlarmState::Offered {
            centre: CentreId::new("c1")
        }
    );

    let c1 = CentreId::new("c1");
    w.router
        .centre_input(&dev("d1"), id, AlarmInput::Receipt { centre: c1.clone() })
        .await
        .unwrap();
    w.router
        .centre_input(
            &dev("d1"),
            id,
            AlarmInput::Accept {
                centre: c1.clone(),
                operator: "op7".into(),
            },
        )
        .await
        .unwrap();
    // Deadlines are stopped: nothing happens over the next ten minutes.
    tokio::time::advance(Duration::from_secs(600)).await;
    tokio::task::yield_now().await;
    assert!(outbox(&w, "c2").is_empty());
    w.router
        .centre_input(
            &dev("d1"),
            id,
            AlarmInput::Close {
                centre: c1.clone(),
                outcome: "visited".into(),
            },
        )
        .await
        .unwrap();
    // A closed alarm takes no more input.
    let late = w
        .router
        .centre_input(&dev("d1"), id, AlarmInput::Receipt { centre: c1 })
        .await;
    assert_eq!(late, Err(InputError::NotFound(id)));

    let trail: Vec<String> = vaka_store::load_audit(w.backend.as_ref(), id)
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        trail,
        ["received", "offered to c1", "receipt", "accepted", "closed"]
    );
}

#[tokio::test(start_paused = true)]
async fn missed_deadlines_escalate_along_the_chain_to_unhandled() {
    let _busy = hold_clock();
    let w = start(Arc::new(MemBackend::new()), Clock::starting_at(T0));
    w.router.centre_up(&CentreId::new("c1")).await;
    w.router.centre_up(&CentreId::new("c2")).await;
    let (id, _) = raise(&w, "d2", "r1").await;
    notices(&w, "c1", 1).await;

    // Primary never answers: just before the receipt deadline nothing moves, at it the backup is offered.
    tokio::time::advance(Duration::from_millis(9_900)).await;
    tokio::task::yield_now().await;
    assert!(outbox(&w, "c2").is_empty());
    tokio::time::advance(Duration::from_millis(100)).await;
    let c2 = notices(&w, "c2", 1).await;
    assert!(is_offer(&c2[0], id, false));
    assert_eq!(c2[0].alarm().priority, 3, "priority raised on escalation");
    let c1 = notices(&w, "c1", 2).await;
    assert!(matches!(
        &c1[1],
        Notice::Update {
            update: UpdateKind::EscalatedElsewhere,
            ..
        }
    ));

    // Backup confirms receipt, but no operator accepts within 60 s: the chain is exhausted.
    w.router
        .centre_input(
            &dev("d2"),
            id,
            AlarmInput::Receipt {
                centre: CentreId::new("c2"),
            },
        )
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    let c1 = notices(&w, "c1", 3).await;
    let c2 = notices(&w, "c2", 3).await;
    assert!(is_offer(&c1[2], id, true), "{c1:?}");
    assert!(is_offer(&c2[2], id, true), "{c2:?}");
    assert_eq!(c2[2].alarm().state, AlarmState::Unhandled);
}

#[tokio::test(start_paused = true)]
async fn a_centre_with_its_own_deadlines_has_them_and_the_next_one_the_devices() {
    let _busy = hold_clock();
    // c1 is a relative with 300 s to receipt; c2 has the device's 10 s.
    let mut dir = chain_dir();
    let mut relative = vaka_core::directory::Centre::new("c1", &["t"]);
    relative.deadlines.receipt_ms = Some(300_000);
    dir.insert_centre(relative);
    let w = start_with(Arc::new(MemBackend::new()), Clock::starting_at(T0), dir, 0);
    w.router.centre_up(&CentreId::new("c1")).await;
    w.router.centre_up(&CentreId::new("c2")).await;
    let (id, _) = raise(&w, "d2", "r1").await;
    notices(&w, "c1", 1).await;

    // Past the device's 10 s and up to just before 300 s: still the relative's.
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_millis(289_900)).await;
    tokio::task::yield_now().await;
    assert!(
        outbox(&w, "c2").is_empty(),
        "escalated before the relative's deadline"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    let c2 = notices(&w, "c2", 1).await;
    assert!(is_offer(&c2[0], id, false), "{c2:?}");

    // c2 has the device's 10 s: missed, the chain is exhausted.
    tokio::time::advance(Duration::from_millis(9_900)).await;
    tokio::task::yield_now().await;
    assert_eq!(outbox(&w, "c2").len(), 1);
    tokio::time::advance(Duration::from_millis(100)).await;
    let c2 = notices(&w, "c2", 3).await;
    assert!(is_offer(&c2[2], id, true), "{c2:?}");
}

#[tokio::test(start_paused = true)]
async fn a_vanished_centre_is_skipped_at_once() {
    let _busy = hold_clock();
    let w = start(Arc::new(MemBackend::new()), Clock::starting_at(T0));
    w.router.centre_up(&CentreId::new("c1")).await;
    w.router.centre_up(&CentreId::new("c2")).await;
    let (id, _) = raise(&w, "d1", "r1").await;
    notices(&w, "c1", 1).await;
    // No time passes: the backup gets it as soon as the primary goes.
    w.router.centre_down(&CentreId::new("c1")).await;
    let c2 = notices(&w, "c2", 1).await;
    assert!(is_offer(&c2[0], id, false));
    // With nobody left, the first alarm is unhandled, a new one waits, and its device is told
    // nobody can act (invariant 5).
    w.router.centre_down(&CentreId::new("c2")).await;
    let c2 = notices(&w, "c2", 3).await;
    assert!(is_offer(&c2[2], id, true), "{c2:?}");
    let (id2, available) = raise(&w, "d3", "r9").await;
    assert!(!available);
    // ...and both are offered the moment a centre connects: the new one normally, the unhandled
    // one again with its flag.
    w.router.centre_up(&CentreId::new("c2")).await;
    let c2 = notices(&w, "c2", 5).await;
    assert!(c2[3..].iter().any(|n| is_offer(n, id2, false)), "{c2:?}");
    assert!(c2[3..].iter().any(|n| is_offer(n, id, true)), "{c2:?}");
}

#[tokio::test(start_paused = true)]
async fn deadlines_survive_a_restart() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let w = start(backend.clone(), Clock::starting_at(T0));
    w.router.centre_up(&CentreId::new("c1")).await;
    w.router.centre_up(&CentreId::new("c2")).await;
    let (id, _) = raise(&w, "d1", "r1").await;
    notices(&w, "c1", 1).await;
    tokio::time::advance(Duration::from_secs(4)).await;
    let now = w.clock.now_ms();
    w.router.shutdown().await;
    w.store.close().unwrap();

    // Same data, new process, clock continuing where it was.
    let w = start(backend, Clock::starting_at(now));
    w.router.centre_up(&CentreId::new("c2")).await;
    tokio::time::advance(Duration::from_millis(5_900)).await;
    tokio::task::yield_now().await;
    assert!(
        outbox(&w, "c2").is_empty(),
        "the deadline is still 100 ms away"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    let c2 = notices(&w, "c2", 1).await;
    assert!(is_offer(&c2[0], id, false));
}

#[tokio::test(start_paused = true)]
async fn only_the_holder_may_act_and_unknown_alarms_are_refused() {
    let _busy = hold_clock();
    let w = start(Arc::new(MemBackend::new()), Clock::starting_at(T0));
    w.router.centre_up(&CentreId::new("c1")).await;
    let (id, _) = raise(&w, "d1", "r1").await;
    let r = w
        .router
        .centre_input(
            &dev("d1"),
            id,
            AlarmInput::Accept {
                centre: CentreId::new("c2"),
                operator: "x".into(),
            },
        )
        .await;
    assert_eq!(r, Err(InputError::NotHolder(id)));
    let r = w
        .router
        .centre_input(
            &dev("d1"),
            AlarmId(999_999),
            AlarmInput::Receipt {
                centre: CentreId::new("c1"),
            },
        )
        .await;
    assert_eq!(r, Err(InputError::NotFound(AlarmId(999_999))));
}

const GRACE_MS: i64 = 5_000;

fn c(id: &str) -> CentreId {
    CentreId::new(id)
}

async fn receipt(w: &World, device: &str, id: AlarmId, centre: &str) {
    w.router
        .centre_input(&dev(device), id, AlarmInput::Receipt { centre: c(centre) })
        .await
        .unwrap();
}

/// An alarm offered to c1 (receipt deadline 10 s) and an engine down for 30 s: the deadline is
/// overdue at the restart. Returns the restarted world (no centre connected yet) and the alarm.
async fn restart_with_an_overdue_receipt_deadline() -> (World, AlarmId) {
    let backend = Arc::new(MemBackend::new());
    let w = start_with(
        backend.clone(),
        Clock::starting_at(T0),
        chain_dir(),
        GRACE_MS,
    );
    w.router.centre_up(&c("c1")).await;
    w.router.centre_up(&c("c2")).await;
    let (id, _) = raise(&w, "d1", "r1").await;
    notices(&w, "c1", 1).await;
    let down_at = w.clock.now_ms();
    w.router.shutdown().await;
    w.store.close().unwrap();
    let w = start_with(
        backend,
        Clock::starting_at(down_at + 30_000),
        chain_dir(),
        GRACE_MS,
    );
    (w, id)
}

fn state(w: &World, id: AlarmId) -> AlarmState {
    vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test(start_paused = true)]
async fn an_overdue_deadline_after_a_restart_waits_for_the_first_centre_to_reconnect() {
    let _busy = hold_clock();
    let (w, id) = restart_with_an_overdue_receipt_deadline().await;
    // The deadline is due at once, but no centre had a chance to reconnect: nothing moves.
    tokio::time::advance(Duration::from_millis(1_500)).await;
    tokio::task::yield_now().await;
    assert!(outbox(&w, "c2").is_empty(), "not escalated past c1");
    // An alarm meanwhile is stored and its device told the truth: nobody can act yet (snu 5).
    let (fresh, available) = raise(&w, "d2", "r2").await;
    assert!(!available);
    // c1 reconnects within the grace, finds the offer in its outbox and confirms it; the new
    // alarm is offered to it as it connects.
    w.router.centre_up(&c("c1")).await;
    w.router.centre_up(&c("c2")).await;
    receipt(&w, "d1", id, "c1").await;
    receipt(&w, "d2", fresh, "c1").await;
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::task::yield_now().await;
    assert_eq!(state(&w, id), AlarmState::Receipted { centre: c("c1") });
    assert!(outbox(&w, "c2").is_empty(), "never escalated nor unhandled");
    let c1 = outbox(&w, "c1");
    assert_eq!(c1.len(), 2, "the one offer, kept, and the new one: {c1:?}");
    assert!(is_offer(&c1[1], fresh, false), "{c1:?}");
}

#[tokio::test(start_paused = true)]
async fn an_overdue_deadline_escalates_after_the_grace_when_the_centre_stays_away() {
    let _busy = hold_clock();
    let (w, id) = restart_with_an_overdue_receipt_deadline().await;
    w.router.centre_up(&c("c2")).await;
    tokio::time::advance(Duration::from_millis(GRACE_MS as u64 - 100)).await;
    tokio::task::yield_now().await;
    assert!(outbox(&w, "c2").is_empty(), "c1 is waited for its grace");
    tokio::time::advance(Duration::from_millis(200)).await;
    let c2 = notices(&w, "c2", 1).await;
    assert!(is_offer(&c2[0], id, false), "escalated in order: {c2:?}");
    assert_eq!(state(&w, id), AlarmState::Offered { centre: c("c2") });
}

/// A world whose chain is c1 alone (`directory(4)`), with the grace, c1 connected.
async fn only_c1_connected() -> World {
    let w = start_with(
        Arc::new(MemBackend::new()),
        Clock::starting_at(T0),
        directory(4),
        GRACE_MS,
    );
    w.router.centre_up(&c("c1")).await;
    w
}

#[tokio::test(start_paused = true)]
async fn the_only_centre_back_within_its_grace_keeps_every_alarm() {
    let _busy = hold_clock();
    let w = only_c1_connected().await;
    let (confirmed, _) = raise(&w, "d1", "r1").await;
    let (offered, _) = raise(&w, "d2", "r2").await;
    notices(&w, "c1", 2).await;
    receipt(&w, "d1", confirmed, "c1").await;
    // The stream drops for 3 s; the offered alarm's receipt deadline (10 s) falls meanwhile.
    tokio::time::advance(Duration::from_secs(8)).await;
    w.router.centre_down(&c("c1")).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    tokio::task::yield_now().await;
    w.router.centre_up(&c("c1")).await;
    receipt(&w, "d2", offered, "c1").await;
    tokio::time::advance(Duration::from_secs(20)).await;
    tokio::task::yield_now().await;
    for id in [confirmed, offered] {
        assert_eq!(state(&w, id), AlarmState::Receipted { centre: c("c1") });
    }
    assert_eq!(
        outbox(&w, "c1").len(),
        2,
        "no escalation, no unhandled offer"
    );
}

#[tokio::test(start_paused = true)]
async fn the_only_centre_away_beyond_its_grace_leaves_its_alarms_unhandled() {
    let _busy = hold_clock();
    let w = only_c1_connected().await;
    let (id, _) = raise(&w, "d1", "r1").await;
    notices(&w, "c1", 1).await;
    receipt(&w, "d1", id, "c1").await;
    w.router.centre_down(&c("c1")).await;
    tokio::time::advance(Duration::from_millis(GRACE_MS as u64 - 100)).await;
    tokio::task::yield_now().await;
    assert_eq!(state(&w, id), AlarmState::Receipted { centre: c("c1") });
    tokio::time::advance(Duration::from_millis(200)).await;
    let c1 = notices(&w, "c1", 3).await;
    assert!(is_offer(&c1[2], id, true), "{c1:?}");
    assert_eq!(state(&w, id), AlarmState::Unhandled);
}
