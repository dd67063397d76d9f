//! Activity rules through the real router with paused tokio time: a missed dose goes to the
//! nurses (the device's chain for that kind), not the alarm centre, exactly when it is due and
//! once; taking the dose restores it; a restart in the middle of the wait keeps the due time;
//! a door opened on the night clocks go forward is alarmed by the local window.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::alarm::{Notice, UpdateKind};
use vaka_core::directory::Centre;
use vaka_core::rules::{Rule, RuleRecord};
use vaka_core::{CentreId, DeviceKey, Event, EventKind};
use vaka_router::{Clock, Owners, Router, RouterConfig};
use vaka_store::{read_outbox, MemBackend, Store};

/// 2026-03-28T20:00:00Z: 21:00 in Stockholm, the evening before clocks go forward.
const T0: i64 = 1_774_728_000_000;
const MIN: u64 = 60;

fn rule(json: &str) -> Rule {
    let r: RuleRecord = serde_json::from_str(json).unwrap();
    Rule::from_record(&r, "rules").unwrap()
}

fn start(backend: Arc<MemBackend>, clock: Clock) -> (Store, Arc<Router>) {
    start_owning(backend, clock, Owners::all())
}

/// [`start`] as a cluster node that speaks for the devices `owners` says.
fn start_owning(backend: Arc<MemBackend>, clock: Clock, owners: Owners) -> (Store, Arc<Router>) {
    let mut dir = directory(2);
    dir.insert_centre(Centre::new("nurse", &["t"]));
    // Nobody answers in these tests: deadlines long enough not to escalate meanwhile.
    dir.tenants
        .get_mut(&vaka_core::TenantId::new("t"))
        .unwrap()
        .deadlines = vaka_core::alarm::Deadlines {
        receipt_ms: 604_800_000,
        accept_ms: 604_800_000,
    };
    let d0 = dir.devices.get_mut(&DeviceKey::new("t", "d0")).unwrap();
    d0.rules = vec![rule(
        r#"{"id":"dose","kind":"missed_dose","due":"dose-due","taken":"dose-taken","minutes":30}"#,
    )];
    d0.chains_by_kind
        .insert("missed_dose".into(), vec![CentreId::new("nurse")]);
    let d1 = dir.devices.get_mut(&DeviceKey::new("t", "d1")).unwrap();
    d1.rules = vec![rule(
        r#"{"id":"door","kind":"door_at_night","sensor":"front-door","window":"23:00-06:00"}"#,
    )];
    start_router(
        backend,
        dir,
        RouterConfig {
            shards: 2,
            owners,
            ..RouterConfig::default()
        },
        clock,
    )
}

fn reading(device: &str, name: &str, value: f64, n: u64) -> Event {
    Event {
        kind: EventKind::Telemetry {
            name: name.into(),
            value,
        },
        key: format!("{name}-{n}"),
        ..telemetry(device, n)
    }
}

fn outbox(backend: &MemBackend, centre: &str) -> Vec<Notice> {
    read_outbox(backend, &CentreId::new(centre), 0, 100)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

async fn wait_for(backend: &MemBackend, centre: &str, n: usize) -> Vec<Notice> {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = outbox(backend, centre);
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < until,
            "{centre}: wanted {n} notices, have {got:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_missed_dose_goes_to_the_nurses_on_time_once_and_is_restored_when_taken() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let (_store, router) = start(backend.clone(), Clock::starting_at(T0));
    router.centre_up(&CentreId::new("c1")).await;
    router.centre_up(&CentreId::new("nurse")).await;
    router
        .submit(reading("d0", "dose-due", 1.0, 1))
        .await
        .unwrap();

    tokio::time::advance(Duration::from_secs(30 * MIN - 1)).await;
    settle().await;
    assert!(
        outbox(&backend, "nurse").is_empty(),
        "not due before 30 min"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let got = wait_for(&backend, "nurse", 1).await;
    let Notice::Offer { alarm, .. } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(alarm.code, "rule:missed_dose:dose");
    assert_eq!(alarm.created_ms, T0 + 30 * 60_000);
    assert!(
        alarm.text.as_deref().unwrap_or("").contains("events"),
        "{alarm:?}"
    );
    let id = alarm.id;

    // Nothing more while it waits; the alarm centre never hears of it.
    tokio::time::advance(Duration::from_secs(10 * MIN)).await;
    settle().await;
    assert!(
        outbox(&backend, "c1").is_empty(),
        "{:?}",
        outbox(&backend, "c1")
    );
    assert_eq!(outbox(&backend, "nurse").len(), 1);

    router
        .submit(reading("d0", "dose-taken", 1.0, 2))
        .await
        .unwrap();
    let got = wait_for(&backend, "nurse", 2).await;
    assert!(
        matches!(&got[1], Notice::Update { update: UpdateKind::Restored, alarm } if alarm.id == id),
        "{got:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_the_wait_keeps_the_due_time() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (store, router) = start(backend.clone(), clock);
    router
        .submit(reading("d0", "dose-due", 1.0, 1))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10 * MIN)).await;
    let now = clock.now_ms();
    router.shutdown().await;
    store.close().unwrap();

    let (_store, router) = start(backend.clone(), Clock::starting_at(now));
    router.centre_up(&CentreId::new("nurse")).await;
    tokio::time::advance(Duration::from_secs(20 * MIN - 1)).await;
    settle().await;
    assert!(
        outbox(&backend, "nurse").is_empty(),
        "due 30 min after the dose, not the restart"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let got = wait_for(&backend, "nurse", 1).await;
    assert_eq!(got[0].alarm().created_ms, T0 + 30 * 60_000);
}

#[tokio::test(start_paused = true)]
async fn a_door_opened_on_the_spring_night_follows_the_local_window() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (_store, router) = start(backend.clone(), clock);
    router.centre_up(&CentreId::new("c1")).await;
    // 22:30 CET: before the window.
    tokio::time::advance(Duration::from_secs(90 * MIN)).await;
    router
        .submit(reading("d1", "front-door", 1.0, 1))
        .await
        .unwrap();
    router
        .submit(reading("d1", "front-door", 0.0, 2))
        .await
        .unwrap();
    // 05:50 CEST on the 29th (03:50Z), after clocks went forward: inside 23:00-06:00.
    tokio::time::advance(Duration::from_secs(7 * 60 * MIN - 40 * MIN)).await;
    settle().await;
    assert!(outbox(&backend, "c1").is_empty());
    router
        .submit(reading("d1", "front-door", 1.0, 3))
        .await
        .unwrap();
    let got = wait_for(&backend, "c1", 1).await;
    assert_eq!(got[0].alarm().code, "rule:door_at_night:door");
    assert_eq!(got[0].alarm().created_ms, clock.now_ms());
    // 06:05 CEST: the window is over; closing restores, a new opening is nothing.
    router
        .submit(reading("d1", "front-door", 0.0, 4))
        .await
        .unwrap();
    let got = wait_for(&backend, "c1", 2).await;
    assert!(
        matches!(
            &got[1],
            Notice::Update {
                update: UpdateKind::Restored,
                ..
            }
        ),
        "{got:?}"
    );
    tokio::time::advance(Duration::from_secs(15 * MIN)).await;
    router
        .submit(reading("d1", "front-door", 1.0, 5))
        .await
        .unwrap();
    settle().await;
    // The store's committer is a thread of its own: give it real time (paused tokio time
    // does not move while the clock is held).
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        outbox(&backend, "c1").len(),
        2,
        "{:?}",
        outbox(&backend, "c1")
    );
}

/// 2026-10-24T20:00:00Z: 22:00 in Stockholm (CEST), the evening before clocks go back.
const AUTUMN: i64 = 1_792_872_000_000;

#[tokio::test(start_paused = true)]
async fn not_in_bed_by_keeps_local_time_across_a_restart_and_the_autumn_change() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let start_with = |backend: Arc<MemBackend>, clock: Clock| {
        let mut dir = directory(1);
        dir.tenants
            .get_mut(&vaka_core::TenantId::new("t"))
            .unwrap()
            .deadlines = vaka_core::alarm::Deadlines {
            receipt_ms: 604_800_000,
            accept_ms: 604_800_000,
        };
        dir.devices
            .get_mut(&DeviceKey::new("t", "d0"))
            .unwrap()
            .rules = vec![rule(
            r#"{"id":"bedtime","kind":"not_in_bed_by","sensor":"bed","at":"23:30"}"#,
        )];
        start_router(
            backend,
            dir,
            RouterConfig {
                shards: 1,
                ..RouterConfig::default()
            },
            clock,
        )
    };
    let clock = Clock::starting_at(AUTUMN);
    let (store, router) = start_with(backend.clone(), clock);
    router.submit(reading("d0", "bed", 0.0, 1)).await.unwrap();
    // Restart at 23:00 CEST: the rule's time (23:30 CEST = 21:30Z) comes from its stored state.
    tokio::time::advance(Duration::from_secs(60 * MIN)).await;
    let now = clock.now_ms();
    router.shutdown().await;
    store.close().unwrap();
    let clock = Clock::starting_at(now);
    let (_store, router) = start_with(backend.clone(), clock);
    router.centre_up(&CentreId::new("c1")).await;
    tokio::time::advance(Duration::from_secs(30 * MIN - 1)).await;
    settle().await;
    std::thread::sleep(Duration::from_millis(20));
    assert!(outbox(&backend, "c1").is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    let got = wait_for(&backend, "c1", 1).await;
    assert_eq!(got[0].alarm().code, "rule:not_in_bed_by:bedtime");
    assert_eq!(
        got[0].alarm().created_ms,
        AUTUMN + 90 * 60_000,
        "23:30 CEST"
    );
    router.submit(reading("d0", "bed", 1.0, 2)).await.unwrap();
    let got = wait_for(&backend, "c1", 2).await;
    assert!(
        matches!(
            &got[1],
            Notice::Update {
                update: UpdateKind::Restored,
                ..
            }
        ),
        "{got:?}"
    );
    // The next evening is CET: up at 21:00 local, not in bed by 23:30 CET = 22:30Z.
    let next_evening = AUTUMN + 24 * 3_600_000 + 3_600_000; // 2026-10-25T21:00:00Z, 22:00 CET
    let wait = (next_evening - clock.now_ms()) as u64;
    tokio::time::advance(Duration::from_millis(wait)).await;
    router.submit(reading("d0", "bed", 0.0, 3)).await.unwrap();
    tokio::time::advance(Duration::from_secs(90 * MIN - 1)).await;
    settle().await;
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        outbox(&backend, "c1").len(),
        2,
        "not at 23:30 CEST time: {:?}",
        outbox(&backend, "c1")
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    // Its first alarm was restored but never closed by the centre: this firing repeats it.
    let got = wait_for(&backend, "c1", 3).await;
    assert!(
        matches!(&got[2], Notice::Update { update: UpdateKind::Repeated, alarm }
            if alarm.updated_ms == next_evening + 90 * 60_000),
        "23:30 CET: {:?}",
        got[2]
    );
}

/// A reading stamped with the time it happened (`occurred_ms`), arriving now.
fn happened(device: &str, name: &str, value: f64, n: u64, at: i64, now: i64) -> Event {
    Event {
        received_ms: now,
        occurred_ms: Some(at),
        ..reading(device, name, value, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_door_reported_in_reverse_across_a_restart_alarms_once_and_restores() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (store, router) = start(backend.clone(), clock);
    // 00:30 local: inside the night window.
    tokio::time::advance(Duration::from_secs(210 * MIN)).await;
    let now = clock.now_ms();
    router
        .submit(happened("d1", "front-door", 0.0, 1, now - 60 * 60_000, now))
        .await
        .unwrap();
    // Closed at 00:28 (reported first, over a flaky link), then the engine restarts...
    router
        .submit(happened("d1", "front-door", 0.0, 2, now - 2 * 60_000, now))
        .await
        .unwrap();
    router.shutdown().await;
    store.close().unwrap();
    let (_store, router) = start(backend.clone(), Clock::starting_at(now));
    router.centre_up(&CentreId::new("c1")).await;
    // ...and the opening at 00:25 arrives after it: the door was opened at night.
    let reply = router
        .submit(happened("d1", "front-door", 1.0, 3, now - 5 * 60_000, now))
        .await
        .unwrap();
    let got = wait_for(&backend, "c1", 2).await;
    let Notice::Offer { alarm, .. } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(alarm.code, "rule:door_at_night:door");
    let vaka_router::Reply::Accepted { event, .. } = reply else {
        panic!("{reply:?}")
    };
    let event = format!("events {}", event.0);
    assert!(
        alarm.text.as_deref().unwrap_or("").contains(&event),
        "the late opening is the cause: {alarm:?}"
    );
    assert!(
        matches!(&got[1], Notice::Update { update: UpdateKind::Restored, alarm: a } if a.id == alarm.id),
        "closed already: restored at once {got:?}"
    );
    settle().await;
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(outbox(&backend, "c1").len(), 2, "once");
}

#[tokio::test(start_paused = true)]
async fn a_dose_taken_report_overtaking_its_due_report_raises_nothing() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (_store, router) = start(backend.clone(), clock);
    router.centre_up(&CentreId::new("nurse")).await;
    let now = clock.now_ms();
    // Due at 21:00, taken at 21:05; the "taken" arrives first, at 21:06, the "due" at 21:07.
    tokio::time::advance(Duration::from_secs(6 * MIN)).await;
    router
        .submit(happened(
            "d0",
            "dose-taken",
            1.0,
            1,
            now + 5 * 60_000,
            clock.now_ms(),
        ))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(MIN)).await;
    router
        .submit(happened("d0", "dose-due", 1.0, 2, now, clock.now_ms()))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(60 * MIN)).await;
    settle().await;
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        outbox(&backend, "nurse").is_empty(),
        "{:?}",
        outbox(&backend, "nurse")
    );
    // Without its device time the same "due" would have been a missed dose 30 min later.
    router
        .submit(reading("d0", "dose-due", 1.0, 3))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30 * MIN)).await;
    wait_for(&backend, "nurse", 1).await;
}

/// A cluster node speaking for the devices `owners` says, c1 and the nurses connected, that
/// followed d0's "dose due" from another node at T0, on a held clock.
async fn dose_due_elsewhere(owners: Owners) -> Held {
    let node = held_at(T0, |b, c| start_owning(b, c, owners), &["c1", "nurse"]).await;
    let due = Event {
        received_ms: T0,
        ..reading("d0", "dose-due", 1.0, 1)
    };
    node.router
        .followed(vec![(vaka_core::EventId(1_000), due)])
        .await;
    settle().await;
    node
}

/// A cluster node that does not own d0's partition: a dose due, followed from another node,
/// steps the rule's state, but its timer is the owner's to fire, so no alarm is made here when
/// it comes due. A door opened at night that this node took itself is this node's alarm to make
/// (as the alarms of the events it takes are), owner or not. Taking d0's partition over, the
/// node fires the dose timer that came due meanwhile, once.
#[tokio::test(start_paused = true)]
async fn a_rule_timer_fires_on_the_partitions_owner_and_an_event_s_alarm_on_the_node_that_took_it()
{
    let owners = Owners::cluster(8);
    let Held { backend, router } = dose_due_elsewhere(owners.clone()).await;
    // 02:00 local: the front door at night, taken here.
    tokio::time::advance(Duration::from_secs(5 * 60 * MIN)).await;
    router
        .submit(reading("d1", "front-door", 1.0, 2))
        .await
        .unwrap();
    let got = wait_for(&backend, "c1", 1).await;
    assert_eq!(got[0].alarm().code, "rule:door_at_night:door");
    assert!(
        outbox(&backend, "nurse").is_empty(),
        "{:?}",
        outbox(&backend, "nurse")
    );

    owners.set(DeviceKey::new("t", "d0").shard(8) as u32, true);
    let got = wait_for(&backend, "nurse", 1).await;
    assert_eq!(got[0].alarm().code, "rule:missed_dose:dose");
    tokio::time::advance(Duration::from_secs(10 * MIN)).await;
    settle().await;
    assert_eq!(outbox(&backend, "nurse").len(), 1);
}

/// The owner of d0's partition fired its dose rule when the timer came due, and this node
/// followed that rule alarm: taking the partition over later, it makes no second one.
#[tokio::test(start_paused = true)]
async fn a_node_taking_over_does_not_fire_again_a_rule_its_owner_fired() {
    let owners = Owners::cluster(8);
    let Held { backend, router } = dose_due_elsewhere(owners.clone()).await;
    tokio::time::advance(Duration::from_secs(31 * MIN)).await;
    settle().await;
    let fired_there = Event {
        key: format!("rule:missed_dose:dose/fired/{}", T0 + 30 * 60_000),
        received_ms: T0 + 30 * 60_000,
        kind: EventKind::Rule {
            code: "rule:missed_dose:dose".into(),
            fired: true,
            text: "dose not taken".into(),
        },
        ..reading("d0", "x", 0.0, 2)
    };
    router
        .followed(vec![(vaka_core::EventId(1_001), fired_there)])
        .await;
    settle().await;
    owners.set(DeviceKey::new("t", "d0").shard(8) as u32, true);
    tokio::time::advance(Duration::from_secs(MIN)).await;
    settle().await;
    assert!(
        outbox(&backend, "nurse").is_empty(),
        "fired again: {:?}",
        outbox(&backend, "nurse")
    );
}
