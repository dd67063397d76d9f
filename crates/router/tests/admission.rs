//! Per-tenant admission limits (`vaka_core::admission`) through the real router on RocksDB: one
//! tenant's flood of telemetry and alarms is answered busy beyond its limits while another
//! tenant's alarms are all taken and offered promptly, and the store holds exactly what was
//! acknowledged.
mod support;

use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use vaka_core::admission::{Limit, Limits};
use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::{AlarmId, AlarmState, CentreId, DeviceKey, Event};
use vaka_router::{Clock, Presence, Reply, RouterConfig, SubmitError};
use vaka_store::query::AlarmFilter;
use vaka_store::{Backend, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};

const A_ALARMS: Limit = Limit {
    per_sec: 20,
    burst: 20,
};
const A_TELEMETRY: Limit = Limit {
    per_sec: 200,
    burst: 200,
};

fn two_tenants() -> Directory {
    let mut d = Directory::default();
    d.insert_tenant(Tenant {
        admission: Limits {
            alarms: A_ALARMS,
            telemetry: A_TELEMETRY,
        },
        ..Tenant::new("a", &["c1"])
    });
    d.insert_tenant(Tenant::new("b", &["c1"]));
    d.insert_centre(Centre::new("c1", &["a", "b"]));
    for i in 0..50 {
        d.insert_device(Device::new(DeviceKey::new("a", format!("a{i}")), "0003"));
    }
    for i in 0..20 {
        d.insert_device(Device::new(DeviceKey::new("b", format!("b{i}")), "0003"));
    }
    d
}

fn of(tenant: &str, mut e: Event) -> Event {
    e.device.tenant = vaka_core::TenantId::new(tenant);
    e
}

#[derive(Default, Debug)]
struct Told {
    ok: u64,
    busy: u64,
    alarms: BTreeSet<AlarmId>,
}

impl Told {
    fn note(&mut self, r: Result<Reply, SubmitError>) {
        match r {
            Ok(Reply::Accepted { alarm, .. }) => {
                self.ok += 1;
                self.alarms.extend(alarm);
            }
            Err(SubmitError::Busy) => self.busy += 1,
            other => panic!("neither accepted nor busy: {other:?}"),
        }
    }
}

async fn tagged<F: std::future::Future>(is_alarm: bool, f: F) -> (bool, F::Output) {
    (is_alarm, f.await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_is_told_busy_and_another_tenants_alarms_all_pass() {
    // A slow disk (5 ms a group commit), so that the flood fills the lanes.
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
        telemetry_queue: 1024,
        max_batch: 64,
        max_inflight: 2,
        ..RouterConfig::default()
    };
    let presence = Presence::new();
    presence.connected(&CentreId::new("c1"));
    let (store, rec) = Store::open(
        faulty.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: Clock::new().now_ms(),
            idem_window_ms: rc.idempotency_window_ms,
        },
    )
    .unwrap();
    let router = vaka_router::Router::start(
        rc,
        store.clone(),
        rec,
        Arc::new(two_tenants()),
        presence,
        Clock::new(),
    );

    let started = Instant::now();
    let flood = {
        let router = router.clone();
        tokio::spawn(async move {
            let (mut fixes, mut alarms) = (Told::default(), Told::default());
            let mut note = |is_alarm: bool, r| {
                if is_alarm {
                    alarms.note(r)
                } else {
                    fixes.note(r)
                }
            };
            let mut waiting = FuturesUnordered::new();
            let until = Instant::now() + Duration::from_millis(1500);
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let device = format!("a{}", n % 50);
                let t = router.submit(of("a", telemetry(&device, n)));
                waiting.push(tagged(false, t));
                let a = router.submit(of("a", alarm(&device, &format!("fa{n}"))));
                waiting.push(tagged(true, a));
                // Reap what was answered so the test itself stays bounded.
                while let Some(Some((is_alarm, r))) =
                    futures::FutureExt::now_or_never(waiting.next())
                {
                    note(is_alarm, r);
                }
                tokio::task::yield_now().await;
            }
            while let Some((is_alarm, r)) = waiting.next().await {
                note(is_alarm, r);
            }
            (fixes, alarms)
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut worst = Duration::ZERO;
    let mut b_alarms = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let r = router
            .submit(of("b", alarm(&format!("b{i}"), &format!("rb{i}"))))
            .await;
        worst = worst.max(t.elapsed());
        match r {
            Ok(Reply::Accepted {
                alarm: Some(id),
                centre_available: true,
                ..
            }) => b_alarms.push(id),
            other => panic!("tenant b's alarm {i} during a's flood: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (fixes, alarms) = flood.await.unwrap();
    let secs = started.elapsed().as_secs_f64();

    // What a's devices were told: busy beyond the limits, and telemetry never above them.
    assert!(
        fixes.busy > 0,
        "a's telemetry flood is told busy: {fixes:?}"
    );
    let most = A_TELEMETRY.burst as f64 + A_TELEMETRY.per_sec as f64 * secs;
    assert!(
        (fixes.ok as f64) <= most,
        "a's telemetry taken {} > its limit over {secs:.1} s ({most})",
        fixes.ok
    );
    assert!(alarms.busy > 0, "a's alarm flood is told busy: {alarms:?}");
    assert!(alarms.ok > 0, "a's alarms are taken up to its limit");
    eprintln!(
        "a told: telemetry {fixes:?}, alarms ok {} busy {}; b worst {worst:?}",
        alarms.ok, alarms.busy
    );

    // b: every alarm taken, promptly, offered to the centre. Alone this is a few 5 ms commits
    // (17 ms measured); the bound leaves room for a CI machine busy with other tests.
    assert!(
        worst < Duration::from_millis(1000),
        "b's alarm took {worst:?} during a's flood"
    );
    for id in &b_alarms {
        let a = store.alarm(*id).unwrap().expect("b's alarm stored");
        assert_eq!(
            a.state,
            AlarmState::Offered {
                centre: CentreId::new("c1")
            }
        );
    }

    // The store holds a's alarms that were acknowledged, and none that were refused.
    let filter = |tenant: &str| AlarmFilter {
        tenant: Some(tenant.into()),
        ..AlarmFilter::default()
    };
    let stored: BTreeSet<AlarmId> = store
        .alarms_page(&filter("a"), None, 100_000)
        .unwrap()
        .alarms
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        stored, alarms.alarms,
        "a's stored alarms = a's acknowledged alarms"
    );
    let stored_b = store
        .alarms_page(&filter("b"), None, 1_000)
        .unwrap()
        .alarms
        .len();
    assert_eq!(stored_b, 20);

    router.shutdown().await;
    store.close().unwrap();
}
