//! The router through its public API, on the in-memory and RocksDB backends.
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use vaka_core::{AlarmState, CentreId};
use vaka_router::{Clock, Presence, Reply, Router, RouterConfig, SubmitError};
use vaka_store::{
    Backend, Cf, GroupConfig, MemBackend, RecoverOptions, RocksBackend, RocksConfig, Store,
};

fn cfg(shards: usize) -> RouterConfig {
    RouterConfig {
        shards,
        ..RouterConfig::default()
    }
}

fn start(backend: Arc<dyn Backend>, rc: RouterConfig, presence: Presence) -> (Store, Arc<Router>) {
    let (store, rec) = Store::open(
        backend,
        GroupConfig::default(),
        RecoverOptions {
            now_ms: Clock::new().now_ms(),
            idem_window_ms: rc.idempotency_window_ms,
        },
    )
    .unwrap();
    let router = Router::start(
        rc,
        store.clone(),
        rec,
        Arc::new(directory(8)),
        presence,
        Clock::new(),
    );
    (store, router)
}

fn accepted(r: Result<Reply, SubmitError>) -> (u64, Option<u64>, bool, bool) {
    match r {
        Ok(Reply::Accepted {
            event,
            alarm,
            duplicate,
            centre_available,
        }) => (event.0, alarm.map(|a| a.0), duplicate, centre_available),
        other => panic!("expected accepted, got {other:?}"),
    }
}

#[tokio::test]
async fn accepted_events_are_in_the_store() {
    let mem = Arc::new(MemBackend::new());
    let (store, router) = start(mem.clone(), cfg(2), Presence::new());
    let mut ids = Vec::new();
    for i in 0..100 {
        let (id, _, dup, _) = accepted(router.submit(telemetry(&format!("d{}", i % 8), i)).await);
        assert!(!dup);
        ids.push(id);
    }
    for id in ids {
        assert!(mem.get(Cf::Events, &id.to_be_bytes()).unwrap().is_some());
    }
    router.shutdown().await;
    store.close().unwrap();
}

#[tokio::test]
async fn unknown_device_is_rejected_not_stored() {
    let mem = Arc::new(MemBackend::new());
    let (_store, router) = start(mem.clone(), cfg(1), Presence::new());
    let r = router.submit(alarm("nobody", "r1")).await.unwrap();
    assert!(matches!(r, Reply::Rejected { .. }), "{r:?}");
    assert!(mem.last_key(Cf::Events).unwrap().is_none());
}

#[tokio::test]
async fn centre_availability_is_reported_and_alarm_offered() {
    let presence = Presence::new();
    let mem = Arc::new(MemBackend::new());
    let (_store, router) = start(mem.clone(), cfg(1), presence.clone());
    let (_, alarm_id, _, available) = accepted(router.submit(alarm("d1", "r1")).await);
    assert!(
        !available,
        "no centre connected: device must be told (invariant 5)"
    );
    let stored = vaka_store::load_alarm(mem.as_ref(), vaka_core::AlarmId(alarm_id.unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, AlarmState::Pending);

    presence.connected(&CentreId::new("c1"));
    let (_, alarm_id, _, available) = accepted(router.submit(alarm("d2", "r1")).await);
    assert!(available);
    let stored = vaka_store::load_alarm(mem.as_ref(), vaka_core::AlarmId(alarm_id.unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.state,
        AlarmState::Offered {
            centre: CentreId::new("c1")
        }
    );
}

/// Stage times: durable and offered are known when the opening write commits (the offer is
/// released then) and are stored with the alarm's next change; the receipt keeps its own time.
#[tokio::test]
async fn an_alarm_records_its_stage_times() {
    let presence = Presence::new();
    presence.connected(&CentreId::new("c1"));
    let mem = Arc::new(MemBackend::new());
    let (_store, router) = start(mem.clone(), cfg(1), presence.clone());
    let ev = alarm("d1", "r1");
    let device = ev.device.clone();
    let (_, alarm_id, _, _) = accepted(router.submit(ev).await);
    let id = vaka_core::AlarmId(alarm_id.unwrap());
    let load = || vaka_store::load_alarm(mem.as_ref(), id).unwrap().unwrap();
    let first = load();
    assert!(first.stages.offered_ms.is_some());
    assert_eq!(
        first.stages.durable_ms, None,
        "known only once the write is synced"
    );
    router
        .centre_input(
            &device,
            id,
            vaka_core::AlarmInput::Receipt {
                centre: CentreId::new("c1"),
            },
        )
        .await
        .unwrap();
    let s = load().stages;
    let durable = s.durable_ms.expect("stored with the next change");
    assert!(durable >= first.created_ms);
    assert_eq!(
        s.offered_ms,
        Some(durable),
        "the offer leaves when it is durable"
    );
    assert!(s.receipted_ms.unwrap() >= durable);
    assert_eq!((s.accepted_ms, s.closed_ms), (None, None));
}

#[tokio::test]
async fn resend_makes_no_second_alarm_even_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn Backend> {
        Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap())
    };
    let (store, router) = start(open(), cfg(2), Presence::new());
    let (ev1, a1, dup, _) = accepted(router.submit(alarm("d3", "ref1")).await);
    assert!(!dup);
    let (ev2, a2, dup, _) = accepted(router.submit(alarm("d3", "ref1")).await);
    assert!(dup);
    assert_eq!((ev1, a1), (ev2, a2));
    router.shutdown().await;
    store.close().unwrap();
    drop(store);

    // Restart: the same resend gets the same alarm, and alarm ids keep their meaning.
    let (store, router) = start(open(), cfg(3), Presence::new());
    let (ev3, a3, dup, _) = accepted(router.submit(alarm("d3", "ref1")).await);
    assert!(dup, "a resend after restart must be recognised");
    assert_eq!((ev3, a3), (ev1, a1));
    let (ev4, a4, dup, _) = accepted(router.submit(alarm("d4", "ref1")).await);
    assert!(!dup, "same ref from another device is another message");
    assert!(ev4 > ev1 && a4 != a1);
    router.shutdown().await;
    store.close().unwrap();
}

#[tokio::test]
async fn resend_is_answered_only_after_the_original_is_durable() {
    let faulty = Faulty::new(Arc::new(MemBackend::new()));
    let (_store, router) = start(faulty.clone(), cfg(1), Presence::new());
    faulty.hold();
    let first = tokio::spawn(router.submit(alarm("d1", "r1")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resend = tokio::spawn(router.submit(alarm("d1", "r1")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !first.is_finished() && !resend.is_finished(),
        "nothing is durable yet"
    );
    faulty.release();
    let a = accepted(first.await.unwrap());
    let b = accepted(resend.await.unwrap());
    assert_eq!(a.1, b.1);
    assert!(b.2);
}

#[tokio::test]
async fn failed_commit_is_reported_and_forgotten() {
    let faulty = Faulty::new(Arc::new(MemBackend::new()));
    let (_store, router) = start(faulty.clone(), cfg(1), Presence::new());
    faulty
        .fail
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = router.submit(alarm("d1", "r1")).await;
    assert!(matches!(r, Err(SubmitError::Store(_))), "{r:?}");
    faulty
        .fail
        .store(false, std::sync::atomic::Ordering::Relaxed);
    // The store refuses commits until its committer has brought the backend back (within about
    // a second); the resend is then taken afresh, not answered "duplicate" from memory that
    // never became durable.
    let until = Instant::now() + Duration::from_secs(10);
    let r = loop {
        match router.submit(alarm("d1", "r1")).await {
            Err(SubmitError::Store(_)) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            r => break r,
        }
    };
    let (_, alarm_id, dup, _) = accepted(r);
    assert!(!dup);
    assert!(alarm_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_flood_gets_busy_while_alarms_pass_promptly() {
    // A slow disk: each group commit takes 5 ms, so telemetry piles up.
    let dir = tempfile::tempdir().unwrap();
    let rocks: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let faulty = Faulty::new(rocks);
    faulty
        .delay_us
        .store(5_000, std::sync::atomic::Ordering::Relaxed);
    let rc = RouterConfig {
        shards: 1,
        alarm_queue: 64,
        telemetry_queue: 256,
        max_batch: 64,
        max_inflight: 2,
        ..RouterConfig::default()
    };
    let bound = rc.alarm_queue + rc.telemetry_queue;
    let (store, router) = start(faulty.clone(), rc, Presence::new());

    let flood = {
        let router = router.clone();
        tokio::spawn(async move {
            use futures::{FutureExt, StreamExt};
            let (mut ok, mut busy, mut max_queued) = (0u64, 0u64, 0usize);
            let mut waiting = futures::stream::FuturesUnordered::new();
            let until = Instant::now() + Duration::from_millis(1500);
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                let mut f = Box::pin(router.submit(telemetry("d0", n)));
                max_queued = max_queued.max(router.queued());
                match (&mut f).now_or_never() {
                    Some(Err(SubmitError::Busy)) => {
                        busy += 1;
                        tokio::task::yield_now().await;
                    }
                    Some(r) => panic!("resolved before durable: {r:?}"),
                    None => waiting.push(f),
                }
                // Reap what became durable so the test itself stays bounded.
                while let Some(Some(r)) = waiting.next().now_or_never() {
                    r.expect("accepted telemetry");
                    ok += 1;
                }
            }
            while let Some(r) = waiting.next().await {
                r.expect("accepted telemetry");
                ok += 1;
            }
            (ok, busy, max_queued)
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let (_, alarm_id, _, _) = accepted(router.submit(alarm("d0", &format!("a{i}"))).await);
        assert!(alarm_id.is_some());
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (ok, busy, max_queued) = flood.await.unwrap();
    assert!(busy > 0, "the flood must be told busy (ok {ok})");
    assert!(ok > 0);
    assert!(
        max_queued <= bound,
        "queues stay within their bound: {max_queued} > {bound}"
    );
    // Each alarm waits at most for the commit in progress plus its own: a few 5 ms syncs.
    assert!(
        worst < Duration::from_millis(250),
        "alarm took {worst:?} during the flood"
    );
    router.shutdown().await;
    store.close().unwrap();
}

#[tokio::test]
async fn shutdown_answers_everything_taken_and_refuses_the_rest() {
    let mem = Arc::new(MemBackend::new());
    let (store, router) = start(mem.clone(), cfg(2), Presence::new());
    let futs: Vec<_> = (0..500)
        .map(|i| router.submit(telemetry(&format!("d{}", i % 8), i)))
        .collect();
    router.shutdown().await;
    for f in futs {
        let (id, ..) = accepted(f.await);
        assert!(mem.get(Cf::Events, &id.to_be_bytes()).unwrap().is_some());
    }
    assert_eq!(
        router.submit(telemetry("d1", 1)).await,
        Err(SubmitError::ShuttingDown)
    );
    store.close().unwrap();
    assert!(store
        .commit(vaka_core::Lane::Alarm, vaka_store::WriteSet::new())
        .await
        .is_err());
}

/// A device on test: its alarms ride the telemetry lane (shed as busy when that lane is full,
/// while another device's real alarm still passes), are marked `test`, and expire at their
/// deadline instead of escalating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_test_sends_test_alarms_below_real_ones() {
    let mut dir = directory(4);
    let on_test = vaka_core::DeviceKey::new("t", "d1");
    let mut dev = dir.device(&on_test).unwrap().clone();
    dev.test_until_ms = Some(i64::MAX);
    dev.deadlines = Some(vaka_core::Deadlines {
        receipt_ms: 200,
        accept_ms: 200,
    });
    dir.insert_device(dev);
    let mem: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let faulty = Faulty::new(mem.clone());
    let rc = RouterConfig {
        shards: 1,
        alarm_queue: 64,
        telemetry_queue: 4,
        max_inflight: 1,
        ..RouterConfig::default()
    };
    let (_store, router) = support::start_router(faulty.clone(), dir, rc, Clock::new());
    router.presence().connected(&CentreId::new("c1"));

    // The store holds every write: queues fill. Test alarms are told busy once the telemetry
    // lane is full; a real alarm still finds room in its own lane.
    faulty.hold();
    let mut waiting = Vec::new();
    let mut busy = 0;
    for i in 0..20 {
        let mut f = Box::pin(router.submit(alarm("d1", &format!("t{i}"))));
        match futures::FutureExt::now_or_never(&mut f) {
            Some(Err(SubmitError::Busy)) => busy += 1,
            Some(r) => panic!("resolved before durable: {r:?}"),
            None => waiting.push(f),
        }
    }
    let real = tokio::spawn(router.submit(alarm("d2", "real")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    faulty.release();
    // Asserted once the store is released: a held store would keep a failing test from ending.
    assert!(busy > 0, "test alarms ride the lane that sheds");
    let (_, real_id, _, _) = accepted(real.await.unwrap());
    let mut test_ids = Vec::new();
    for f in waiting {
        let (_, id, _, _) = accepted(f.await);
        test_ids.push(id.unwrap());
    }
    let load = |id: u64| {
        vaka_store::load_alarm(mem.as_ref(), vaka_core::AlarmId(id))
            .unwrap()
            .unwrap()
    };
    let real_alarm = load(real_id.unwrap());
    assert!(!real_alarm.test);
    let test_alarm = load(test_ids[0]);
    assert!(test_alarm.test);
    assert!(
        test_ids.iter().all(|id| *id == test_ids[0]),
        "repeats of one test alarm"
    );
    assert_ne!(test_ids[0], real_alarm.id.0);

    // Nobody receipts it: the test alarm expires at its deadline (a real one would escalate).
    let until = Instant::now() + Duration::from_secs(5);
    while load(test_ids[0]).state != AlarmState::Expired && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(load(test_ids[0]).state, AlarmState::Expired);

    // A device's own test call (a DC-09 test report, code "test:...") is a test alarm too,
    // though its device is not on test.
    let mut call = alarm("d3", "periodic");
    if let vaka_core::EventKind::Alarm(info) = &mut call.kind {
        info.code = "test:cid:602".into();
    }
    let (_, id, _, _) = accepted(router.submit(call).await);
    assert!(load(id.unwrap()).test);
    let (_, id, _, _) = accepted(router.submit(alarm("d3", "real")).await);
    assert!(
        !load(id.unwrap()).test,
        "the same device's real alarm is real"
    );
    router.shutdown().await;
}
