//! Supervision through the real router with paused tokio time: a silent device is alarmed once, on
//! time; its next message raises the restoral; a restart in the middle keeps the deadline.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::alarm::{Notice, UpdateKind};
use vaka_core::{AlarmKind, CentreId, DeviceKey, Event, EventId, EventKind};
use vaka_router::{Clock, Owners, Router, RouterConfig};
use vaka_store::{read_outbox, MemBackend, Store};

const T0: i64 = 1_700_000_000_000;

fn start(backend: Arc<MemBackend>, clock: Clock) -> (Store, Arc<Router>) {
    start_owning(backend, clock, Owners::all())
}

/// [`start`] as a cluster node that speaks for the devices `owners` says.
fn start_owning(backend: Arc<MemBackend>, clock: Clock, owners: Owners) -> (Store, Arc<Router>) {
    let mut dir = directory(2);
    dir.devices
        .get_mut(&DeviceKey::new("t", "d0"))
        .unwrap()
        .heartbeat_secs = Some(60);
    let rc = RouterConfig {
        shards: 2,
        supervision_grace_ms: 30_000,
        owners,
        ..RouterConfig::default()
    };
    start_router(backend, dir, rc, clock)
}

fn heartbeat(n: u64) -> Event {
    Event {
        kind: EventKind::Heartbeat,
        ..telemetry("d0", n)
    }
}

fn c1(backend: &MemBackend) -> Vec<Notice> {
    read_outbox(backend, &CentreId::new("c1"), 0, 100)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(0)).await;
}

async fn wait_notices(backend: &MemBackend, n: usize) -> Vec<Notice> {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if std::env::var("DEBUG_SUP").is_ok() {
            use vaka_store::Backend;
            let mut n = 0;
            backend
                .scan(vaka_store::Cf::Alarms, &[], &mut |_, _| {
                    n += 1;
                    true
                })
                .unwrap();
            let mut e = 0;
            backend
                .scan(vaka_store::Cf::Events, &[], &mut |_, _| {
                    e += 1;
                    true
                })
                .unwrap();
            eprintln!("alarms {n} events {e}");
        }
        let got = c1(backend);
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < until,
            "wanted {n} notices, have {got:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// A node speaking for the devices `owners` says, c1 connected, d0 heard at T0, on a held
/// clock.
async fn heard_at_t0(owners: Owners) -> Held {
    let node = held_at(T0, |b, c| start_owning(b, c, owners), &["c1"]).await;
    node.router.submit(heartbeat(1)).await.unwrap();
    node
}

/// The first notice c1 gets is a "device silent" offer.
async fn assert_silent_offered(backend: &MemBackend) {
    let got = wait_notices(backend, 1).await;
    assert!(
        matches!(&got[0], Notice::Offer { alarm, .. } if alarm.kind == AlarmKind::Silent),
        "{got:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_device_is_alarmed_once_on_time_and_restored_when_heard() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let (_store, router) = start(backend.clone(), Clock::starting_at(T0));
    router.centre_up(&CentreId::new("c1")).await;
    router.submit(heartbeat(1)).await.unwrap();

    tokio::time::advance(Duration::from_millis(89_900)).await;
    settle().await;
    assert!(
        c1(&backend).is_empty(),
        "interval 60 s + grace 30 s not yet over"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_silent_offered(&backend).await;
    let silent_id = c1(&backend)[0].alarm().id;

    // Still silent ten minutes on: no second alarm (the one alarm escalates, unanswered, as any).
    tokio::time::advance(Duration::from_secs(600)).await;
    settle().await;
    // Wait for the escalation to be durable (offer, escalated, unhandled offer): the committer is a
    // thread of its own, so a settled runtime does not mean written yet.
    let got = wait_notices(&backend, 3).await;
    assert!(got.iter().all(|n| n.alarm().id == silent_id), "{got:?}");

    // Heard again: the centre is told it is restored.
    let before = got.len();
    router.submit(heartbeat(2)).await.unwrap();
    let got = wait_notices(&backend, before + 1).await;
    assert!(
        matches!(&got[before], Notice::Update { update: UpdateKind::Restored, alarm } if alarm.id == silent_id),
        "{got:?}"
    );
    // The other device is not supervised and never alarms.
    assert!(got.iter().all(|n| n.alarm().device.device.as_str() == "d0"));
}

#[tokio::test(start_paused = true)]
async fn restart_in_the_middle_keeps_the_silence_deadline() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (store, router) = start(backend.clone(), clock);
    router.submit(heartbeat(1)).await.unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    let now = clock.now_ms();
    router.shutdown().await;
    store.close().unwrap();

    let (_store, router) = start(backend.clone(), Clock::starting_at(now));
    router.centre_up(&CentreId::new("c1")).await;
    tokio::time::advance(Duration::from_millis(39_900)).await;
    settle().await;
    assert!(
        c1(&backend).is_empty(),
        "deadline is 90 s after the heartbeat, not after the restart"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_silent_offered(&backend).await;
}

/// A cluster node: another node took d0's heartbeat (stamped 80 s on), and this node's follower
/// stored it. Its deadline moves out from that stamp, so d0 is not called silent at 90 s as if
/// only this node's own events counted, but at 170 s.
#[tokio::test(start_paused = true)]
async fn a_device_heard_by_another_node_is_not_silent_here() {
    let Held { backend, router } = heard_at_t0(Owners::all()).await;
    tokio::time::advance(Duration::from_secs(80)).await;
    let elsewhere = Event {
        received_ms: T0 + 80_000,
        ..heartbeat(2)
    };
    router.followed(vec![(EventId(1_000), elsewhere)]).await;
    // An older one, followed late, moves nothing back.
    let older = Event {
        received_ms: T0 + 10_000,
        ..heartbeat(3)
    };
    router.followed(vec![(EventId(1_001), older)]).await;
    tokio::time::advance(Duration::from_secs(89)).await;
    settle().await;
    assert!(
        c1(&backend).is_empty(),
        "called silent 90 s after its own heartbeat"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_silent_offered(&backend).await;
}

/// A cluster node that does not own d0's partition holds its silence deadline back (its owner
/// calls it silent); taking the partition over, it fires at once what came due meanwhile.
#[tokio::test(start_paused = true)]
async fn only_the_partitions_owner_calls_a_device_silent_and_a_node_taking_over_fires_what_came_due(
) {
    let owners = Owners::cluster(8);
    // The router bound, so it runs to the test's end.
    let Held {
        backend,
        router: _router,
    } = heard_at_t0(owners.clone()).await;
    tokio::time::advance(Duration::from_secs(300)).await;
    settle().await;
    assert!(
        c1(&backend).is_empty(),
        "a node not owning d0 called it silent"
    );

    owners.set(DeviceKey::new("t", "d0").shard(8) as u32, true);
    assert_silent_offered(&backend).await;
}

/// The owner of d0's partition called it silent and this node followed that call: taking the
/// partition over later, it makes no second alarm of its own. Heard again, d0 is supervised
/// here again and called silent when it falls silent anew.
#[tokio::test(start_paused = true)]
async fn a_node_taking_over_does_not_call_silent_again_a_device_its_owner_called_silent() {
    let owners = Owners::cluster(8);
    let Held { backend, router } = heard_at_t0(owners.clone()).await;
    tokio::time::advance(Duration::from_secs(100)).await;
    settle().await;
    let called = Event {
        key: format!("silent-{}", T0 + 90_000),
        received_ms: T0 + 90_000,
        kind: EventKind::Silent,
        ..heartbeat(2)
    };
    router.followed(vec![(EventId(2_000), called)]).await;
    settle().await;
    owners.set(DeviceKey::new("t", "d0").shard(8) as u32, true);
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert!(
        c1(&backend).is_empty(),
        "called silent again: {:?}",
        c1(&backend)
    );

    router.submit(heartbeat(3)).await.unwrap();
    tokio::time::advance(Duration::from_secs(90)).await;
    assert_silent_offered(&backend).await;
}
