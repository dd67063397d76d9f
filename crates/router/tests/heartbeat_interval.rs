//! A device that announces its heartbeat interval (SCAIP hbi) is supervised with it, also after a
//! restart; an unsupervised device becomes supervised by announcing one.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::alarm::Notice;
use vaka_core::{AlarmKind, CentreId, DeviceKey, Event, EventKind};
use vaka_router::{Clock, InputError, Router, RouterConfig};
use vaka_store::{read_outbox, MemBackend, Store};

const T0: i64 = 1_700_000_000_000;

/// d1 has no configured interval (unsupervised); grace is 30 s.
fn start(backend: Arc<MemBackend>, clock: Clock) -> (Store, Arc<Router>) {
    let rc = RouterConfig {
        shards: 2,
        supervision_grace_ms: 30_000,
        ..RouterConfig::default()
    };
    start_router(backend, directory(2), rc, clock)
}

fn silent_offers(backend: &MemBackend) -> usize {
    read_outbox(backend, &CentreId::new("c1"), 0, 100)
        .unwrap()
        .iter()
        .filter(
            |(_, n)| matches!(n, Notice::Offer { alarm, .. } if alarm.kind == AlarmKind::Silent),
        )
        .count()
}

async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

async fn wait_offers(backend: &MemBackend, n: usize) {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while silent_offers(backend) < n {
        assert!(std::time::Instant::now() < until, "no silent alarm");
        tokio::task::yield_now().await;
    }
}

fn heartbeat(n: u64) -> Event {
    Event {
        kind: EventKind::Heartbeat,
        ..telemetry("d1", n)
    }
}

#[tokio::test(start_paused = true)]
async fn announced_interval_supervises_the_device_across_a_restart() {
    let _busy = hold_clock();
    let backend = Arc::new(MemBackend::new());
    let clock = Clock::starting_at(T0);
    let (store, router) = start(backend.clone(), clock);
    let d1 = DeviceKey::new("t", "d1");
    // Refused: unknown device, zero interval.
    assert!(matches!(
        router
            .heartbeat_interval(&DeviceKey::new("t", "ghost"), 60)
            .await,
        Err(InputError::Invalid(_))
    ));
    assert!(matches!(
        router.heartbeat_interval(&d1, 0).await,
        Err(InputError::Invalid(_))
    ));
    router.heartbeat_interval(&d1, 60).await.unwrap();
    router.submit(heartbeat(1)).await.unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    let now = clock.now_ms();
    router.shutdown().await;
    store.close().unwrap();

    // After the restart the announced interval still holds: silent 90 s after the heartbeat.
    let (_store, router) = start(backend.clone(), Clock::starting_at(now));
    router.centre_up(&CentreId::new("c1")).await;
    tokio::time::advance(Duration::from_millis(39_900)).await;
    settle().await;
    assert_eq!(silent_offers(&backend), 0, "not before interval + grace");
    tokio::time::advance(Duration::from_millis(100)).await;
    wait_offers(&backend, 1).await;
}
