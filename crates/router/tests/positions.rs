//! GPS through the real router and store: filters, position history in fix-time order, the
//! latest position, geofence alarms routed to the centre, restart, retention.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::alarm::{Deadlines, Notice, UpdateKind};
use vaka_core::directory::Directory;
use vaka_core::gps::{DeviceFence, Fence, FilterOverride, Fix, HysteresisConfig};
use vaka_core::{AlarmId, AlarmKind, CentreId, DeviceKey, Event, EventKind};
use vaka_router::{Clock, Reply, Router, RouterConfig};
use vaka_store::{
    latest_position, position_history, read_outbox, Backend, RocksBackend, RocksConfig,
};

/// Fix times start here; the engine's clock is set a little after the fixes it is sent.
const T0: i64 = 1_700_000_000_000;
const HOME: (f64, f64) = (57.7089, 11.9746);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// (lat, lon) `north_m` and `east_m` metres from HOME.
fn offset(north_m: f64, east_m: f64) -> (f64, f64) {
    let m_per_deg = vaka_core::gps::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
    (
        HOME.0 + north_m / m_per_deg,
        HOME.1 + east_m / (m_per_deg * HOME.0.to_radians().cos()),
    )
}

fn fix_at(time_ms: i64, north_m: f64, east_m: f64, acc: f32) -> Fix {
    let (lat, lon) = offset(north_m, east_m);
    Fix::at(time_ms, lat, lon).with_accuracy(acc)
}

/// `devices` devices with a 500 m home fence (margin 50 m, confirmed by 3 fixes or 60 s), long
/// deadlines so nothing escalates while a test runs.
fn gps_dir(devices: usize) -> Directory {
    let mut d = directory(devices);
    for t in d.tenants.values_mut() {
        t.deadlines = Deadlines {
            receipt_ms: 3_600_000,
            accept_ms: 3_600_000,
        };
    }
    for i in 0..devices {
        let fence = DeviceFence::new(
            "home",
            Fence::circle(HOME.0, HOME.1, 500.0, 50.0).unwrap(),
            HysteresisConfig {
                confirm_fixes: 3,
                confirm_secs: Some(60),
            },
        );
        d.gps.set_device(
            DeviceKey::new("t", format!("d{i}")),
            &FilterOverride::default(),
            vec![fence],
        );
    }
    d
}

fn position(device: &str, key: &str, fix: Fix) -> Event {
    Event {
        device: DeviceKey::new("t", device),
        key: key.into(),
        received_ms: fix.time_ms + 500,
        kind: EventKind::Position,
        fix: Some(fix),
        raw: format!("pos {key}").into_bytes(),
        occurred_ms: None,
    }
}

fn alarm_with(device: &str, key: &str, fix: Fix) -> Event {
    Event {
        fix: Some(fix),
        ..alarm(device, key)
    }
}

fn rocks(path: &std::path::Path) -> Arc<dyn Backend> {
    Arc::new(RocksBackend::open(&RocksConfig::new(path)).unwrap())
}

fn rc() -> RouterConfig {
    RouterConfig {
        shards: 2,
        ..RouterConfig::default()
    }
}

async fn send(router: &Router, ev: Event) -> (Option<AlarmId>, bool) {
    match router.submit(ev).await.expect("durable") {
        Reply::Accepted {
            alarm, duplicate, ..
        } => (alarm, duplicate),
        r => panic!("not accepted: {r:?}"),
    }
}

fn history(backend: &dyn Backend, device: &str) -> Vec<Fix> {
    position_history(
        backend,
        &DeviceKey::new("t", device),
        i64::MIN,
        i64::MAX,
        100_000,
    )
    .unwrap()
    .into_iter()
    .map(|r| r.fix)
    .collect()
}

/// Geofence offers and restorals in c1's outbox for `device`.
fn fence_notices(backend: &dyn Backend, device: &str) -> (Vec<AlarmId>, Vec<AlarmId>) {
    let key = DeviceKey::new("t", device);
    let mut offers = Vec::new();
    let mut restorals = Vec::new();
    for (_, n) in read_outbox(backend, &CentreId::new("c1"), 0, 1_000_000).unwrap() {
        let a = n.alarm();
        if a.kind != AlarmKind::GeofenceExit || a.device != key {
            continue;
        }
        match &n {
            Notice::Offer { .. } => offers.push(a.id),
            Notice::Update {
                update: UpdateKind::Restored,
                ..
            } => restorals.push(a.id),
            Notice::Update { .. } => {}
        }
    }
    (offers, restorals)
}

#[tokio::test]
async fn fixes_are_filtered_kept_in_fix_time_order_and_the_latest_is_known() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = rocks(tmp.path());
    let clock = Clock::starting_at(T0 + 3_600_000);
    let (store, router) = start_router(backend.clone(), gps_dir(1), rc(), clock);
    let s = |n: i64| T0 + n * 10_000;
    let good = fix_at(s(10), 10.0, 0.0, 10.0);
    assert_eq!(
        send(&router, position("d0", "p1", good)).await,
        (None, false)
    );
    // The same fix resent: a duplicate, answered as such, stored once.
    assert_eq!(
        send(&router, position("d0", "p1b", good)).await,
        (None, true)
    );
    // Filtered: zero, invalid, too inaccurate, from the future.
    let zero = Fix::at(s(11), 0.0, 0.0);
    let invalid = Fix {
        valid: false,
        ..fix_at(s(12), 20.0, 0.0, 10.0)
    };
    let vague = fix_at(s(13), 30.0, 0.0, 5_000.0);
    let future = fix_at(T0 + 3_600_000 + 600_000, 40.0, 0.0, 10.0);
    for (i, f) in [zero, invalid, vague, future].into_iter().enumerate() {
        assert_eq!(
            send(&router, position("d0", &format!("f{i}"), f)).await,
            (None, false)
        );
    }
    // Newer, then a burst of older fixes buffered during a coverage gap, out of order.
    let newest = fix_at(s(20), 50.0, 0.0, 10.0);
    send(&router, position("d0", "p20", newest)).await;
    for n in [15, 12, 18, 14] {
        send(
            &router,
            position("d0", &format!("late{n}"), fix_at(s(n), 30.0, 0.0, 10.0)),
        )
        .await;
    }
    let times: Vec<i64> = history(backend.as_ref(), "d0")
        .iter()
        .map(|f| f.time_ms)
        .collect();
    assert_eq!(times, vec![s(10), s(12), s(14), s(15), s(18), s(20)]);
    let latest = latest_position(backend.as_ref(), &DeviceKey::new("t", "d0"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.fix, newest, "late fixes never become the latest");
    // A history row names the event that carried it (stored in `events` with its raw message).
    let rows = position_history(
        backend.as_ref(),
        &DeviceKey::new("t", "d0"),
        s(20),
        s(21),
        10,
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event, latest.event);
    router.shutdown().await;
    store.close().unwrap();
}

#[tokio::test]
async fn an_alarm_with_a_filtered_fix_is_never_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = rocks(tmp.path());
    let clock = Clock::starting_at(T0 + 3_600_000);
    let (store, router) = start_router(backend.clone(), gps_dir(1), rc(), clock);
    let home = fix_at(T0, 0.0, 0.0, 10.0);
    send(&router, position("d0", "p0", home)).await;
    // Wildly inaccurate, then an outlier 50 km away 10 s later, then a (0, 0): each with an alarm.
    let vague = fix_at(T0 + 10_000, 3_000.0, 0.0, 9_000.0);
    let (first, _) = send(&router, alarm_with("d0", "a1", vague)).await;
    assert!(first.is_some(), "the alarm opened");
    let outlier = fix_at(T0 + 20_000, 50_000.0, 0.0, 10.0);
    let (second, _) = send(&router, alarm_with("d0", "a2", outlier)).await;
    assert_eq!(second, first, "a repeat of the same open alarm");
    // A resend of an alarm carrying the very fix already stored is no duplicate position drop either.
    let (third, dup) = send(&router, alarm_with("d0", "a3", home)).await;
    assert_eq!((third, dup), (first, false));
    // None of the suspect fixes became a position; the device is where it was.
    let times: Vec<i64> = history(backend.as_ref(), "d0")
        .iter()
        .map(|f| f.time_ms)
        .collect();
    assert_eq!(times, vec![T0]);
    let latest = latest_position(backend.as_ref(), &DeviceKey::new("t", "d0"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.fix, home);
    // ...and no geofence alarm came of the outlier 50 km out.
    assert_eq!(fence_notices(backend.as_ref(), "d0"), (vec![], vec![]));
    router.shutdown().await;
    store.close().unwrap();
}

// ---- the recorded-style trace ----

/// splitmix64: deterministic, tiny.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A point uniformly in a disc of radius r.
    fn in_disc(&mut self, r: f64) -> (f64, f64) {
        let (rho, th) = (
            r * self.unit().sqrt(),
            self.range(0.0, std::f64::consts::TAU),
        );
        (rho * th.cos(), rho * th.sin())
    }
}

#[derive(Clone, Copy, Debug)]
struct Delivery {
    fix: Fix,
    alarm: bool,
}

/// A walk with a true position (metres from HOME). Every fix is within its claimed accuracy of
/// the truth: the premise under which fence decisions are sound.
struct Walk {
    rng: Rng,
    pos: (f64, f64),
    t_ms: i64,
    out: Vec<Delivery>,
    buffer: Option<Vec<Fix>>,
}

impl Walk {
    fn r(&self) -> f64 {
        self.pos.0.hypot(self.pos.1)
    }

    fn fix(&mut self) {
        self.t_ms += 1_000 * (9 + self.rng.below(3) as i64);
        // Near the edge, now and then a 200 m-accuracy fix that strays up to 150 m.
        let (acc, noise) = if (350.0..700.0).contains(&self.r()) && self.rng.chance(0.3) {
            (200.0, 150.0)
        } else {
            let a = self.rng.range(5.0, 20.0);
            (a, a)
        };
        let (dn, de) = self.rng.in_disc(noise);
        let mut fix = fix_at(self.t_ms, self.pos.0 + dn, self.pos.1 + de, acc as f32);
        if let Some(buf) = &mut self.buffer {
            buf.push(fix);
            return;
        }
        if self.rng.chance(0.02) {
            fix.valid = false; // filtered, never stored
        }
        let alarm = fix.valid && self.rng.chance(0.01);
        self.out.push(Delivery { fix, alarm });
        if self.rng.chance(0.05) {
            // A resend of this fix or one a few back.
            let i = self.out.len() - 1 - (self.rng.below(5) as usize).min(self.out.len() - 1);
            let again = self.out[i];
            self.out.push(again);
        }
    }

    fn walk_to(&mut self, to: (f64, f64)) {
        let step = self.rng.range(10.0, 15.0);
        loop {
            let (dn, de) = (to.0 - self.pos.0, to.1 - self.pos.1);
            let d = dn.hypot(de);
            if d <= step {
                self.pos = to;
                self.fix();
                return;
            }
            self.pos.0 += dn / d * step;
            self.pos.1 += de / d * step;
            self.fix();
        }
    }

    fn wander(&mut self, n: u64, keep: std::ops::Range<f64>) {
        for _ in 0..n {
            let (sn, se) = self.rng.in_disc(12.0);
            let next = (self.pos.0 + sn, self.pos.1 + se);
            if keep.contains(&next.0.hypot(next.1)) {
                self.pos = next;
            }
            self.fix();
        }
    }

    /// Coverage is back: the buffered fixes arrive in a shuffled burst (with a few resends),
    /// before or after the first live fix.
    fn end_gap(&mut self) {
        let mut buf = self.buffer.take().unwrap_or_default();
        for i in (1..buf.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            buf.swap(i, j);
        }
        let live_first = self.rng.chance(0.5);
        if live_first {
            self.fix();
        }
        for f in buf {
            self.out.push(Delivery {
                fix: f,
                alarm: false,
            });
            if self.rng.chance(0.1) {
                self.out.push(Delivery {
                    fix: f,
                    alarm: false,
                });
            }
        }
        if !live_first {
            self.fix();
        }
    }
}

/// Inside; loitering near the edge with 200 m fixes; out to 0.9-1.5 km; a coverage gap and its
/// late burst; home again.
fn trace(seed: u64) -> Vec<Delivery> {
    let mut rng = Rng(seed);
    let start = rng.in_disc(150.0);
    let mut w = Walk {
        rng,
        pos: start,
        t_ms: T0,
        out: Vec::new(),
        buffer: None,
    };
    let n = 20 + w.rng.below(20);
    w.wander(n, 0.0..250.0);
    let b = w.rng.range(0.0, std::f64::consts::TAU);
    w.walk_to((400.0 * b.cos(), 400.0 * b.sin()));
    let n = 20 + w.rng.below(30);
    w.wander(n, 350.0..450.0);
    let bearing = w.rng.range(0.0, std::f64::consts::TAU);
    let far = w.rng.range(900.0, 1_500.0);
    w.walk_to((far * bearing.cos(), far * bearing.sin()));
    let n = 10 + w.rng.below(20);
    w.wander(n, 800.0..3_000.0);
    w.buffer = Some(Vec::new());
    let n = 20 + w.rng.below(60);
    w.wander(n, 800.0..3_000.0);
    w.end_gap();
    let n = 10 + w.rng.below(20);
    w.wander(n, 800.0..3_000.0);
    let back = w.rng.in_disc(200.0);
    w.walk_to(back);
    let n = 20 + w.rng.below(20);
    w.wander(n, 0.0..250.0);
    w.out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_with_jitter_gap_and_late_burst_raises_one_exit_and_one_restoral() {
    const DEVICES: usize = 6;
    let tmp = tempfile::tempdir().unwrap();
    let backend = rocks(tmp.path());
    let traces: Vec<Vec<Delivery>> = (0..DEVICES as u64).map(|s| trace(0xF00D + s)).collect();
    let last = traces
        .iter()
        .flatten()
        .map(|d| d.fix.time_ms)
        .max()
        .unwrap();
    let clock = Clock::starting_at(last + 5_000);
    let (store, router) = start_router(backend.clone(), gps_dir(DEVICES), rc(), clock);
    router.centre_up(&CentreId::new("c1")).await;
    // Each device replays its trace in order (one message at a time, as a device would);
    // the devices run side by side.
    let tasks: Vec<_> = traces
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, tr)| {
            let router = router.clone();
            tokio::spawn(async move {
                let device = format!("d{i}");
                for (k, d) in tr.iter().enumerate() {
                    let key = format!("m{k}");
                    let ev = if d.alarm {
                        alarm_with(&device, &key, d.fix)
                    } else {
                        position(&device, &key, d.fix)
                    };
                    send(&router, ev).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    router.shutdown().await;
    for (i, tr) in traces.iter().enumerate() {
        let device = format!("d{i}");
        let (offers, restorals) = fence_notices(backend.as_ref(), &device);
        assert_eq!(
            offers.len(),
            1,
            "{device}: one exit alarm offered: {offers:?}"
        );
        assert_eq!(restorals, offers, "{device}: one restoral, of that alarm");
        // Every valid fix is in the history exactly once, in fix-time order, late ones included.
        let mut want: Vec<i64> = tr
            .iter()
            .filter(|d| d.fix.valid)
            .map(|d| d.fix.time_ms)
            .collect();
        want.sort_unstable();
        want.dedup();
        let got: Vec<i64> = history(backend.as_ref(), &device)
            .iter()
            .map(|f| f.time_ms)
            .collect();
        assert_eq!(got, want, "{device}: history");
        let latest = latest_position(backend.as_ref(), &DeviceKey::new("t", device.as_str()))
            .unwrap()
            .unwrap();
        assert_eq!(latest.fix.time_ms, *want.last().unwrap());
    }
    store.close().unwrap();
}

#[tokio::test]
async fn restart_keeps_fence_state_filter_state_and_latest_position() {
    let tmp = tempfile::tempdir().unwrap();
    let now = T0 + DAY_MS;
    let s = |n: i64| T0 + n * 10_000;
    let run = |clock: Clock| start_router(rocks(tmp.path()), gps_dir(1), rc(), clock);

    let (store, router) = run(Clock::starting_at(now));
    router.centre_up(&CentreId::new("c1")).await;
    send(&router, position("d0", "p0", fix_at(s(0), 0.0, 0.0, 10.0))).await;
    send(
        &router,
        position("d0", "p1", fix_at(s(1), 400.0, 0.0, 10.0)),
    )
    .await;
    // Two fixes clearly outside: an exit pending (3 needed).
    send(
        &router,
        position("d0", "p2", fix_at(s(2), 900.0, 0.0, 10.0)),
    )
    .await;
    let last_before = fix_at(s(3), 950.0, 0.0, 10.0);
    send(&router, position("d0", "p3", last_before)).await;
    router.shutdown().await;
    store.close().unwrap();
    drop((store, router));

    let (store, router) = run(Clock::starting_at(now + 60_000));
    router.centre_up(&CentreId::new("c1")).await;
    let latest = latest_position(store.backend().as_ref(), &DeviceKey::new("t", "d0"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.fix, last_before);
    // The dedup ring survived: the resend of the last fix before the restart is a duplicate.
    assert_eq!(
        send(&router, position("d0", "p3", last_before)).await,
        (None, true)
    );
    // The third outside fix confirms the exit the first run left pending.
    send(
        &router,
        position("d0", "p4", fix_at(s(4), 1_000.0, 0.0, 10.0)),
    )
    .await;
    send(
        &router,
        position("d0", "p5", fix_at(s(5), 1_000.0, 0.0, 10.0)),
    )
    .await;
    let (offers, _) = fence_notices(store.backend().as_ref(), "d0");
    assert_eq!(offers.len(), 1, "the exit, confirmed across the restart");
    router.shutdown().await;
    store.close().unwrap();
    drop((store, router));

    // Another restart while outside: no second exit; coming back raises the one restoral.
    let (store, router) = run(Clock::starting_at(now + 120_000));
    router.centre_up(&CentreId::new("c1")).await;
    send(
        &router,
        position("d0", "p6", fix_at(s(6), 1_100.0, 0.0, 10.0)),
    )
    .await;
    // Back home (a few minutes later, so no speed filter objects).
    for n in 30..34 {
        send(
            &router,
            position("d0", &format!("p{n}"), fix_at(s(n), 50.0, 0.0, 10.0)),
        )
        .await;
    }
    let (offers, restorals) = fence_notices(store.backend().as_ref(), "d0");
    assert_eq!(offers.len(), 1, "still one exit alarm");
    assert_eq!(restorals, offers, "one restoral of it");
    router.shutdown().await;
    store.close().unwrap();
}

#[tokio::test]
async fn retention_deletes_history_older_than_each_tenants_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let now = T0 + 5 * DAY_MS;
    let mut dir = gps_dir(2);
    // Tenant "t" keeps one day; device "o1" belongs to tenant "other" keeping 30 days.
    dir.tenants
        .get_mut(&vaka_core::TenantId::new("t"))
        .unwrap()
        .retention_days = 1;
    let mut other = dir.tenants[&vaka_core::TenantId::new("t")].clone();
    other.id = vaka_core::TenantId::new("other");
    other.retention_days = 30;
    dir.tenants.insert(other.id.clone(), other);
    let o1 = DeviceKey::new("other", "o1");
    let mut dev = dir.devices[&DeviceKey::new("t", "d0")].clone();
    dev.key = o1.clone();
    dir.devices.insert(o1.clone(), dev);
    let dir = Arc::new(dir);
    let backend = rocks(tmp.path());
    let (store, router) = start_router(
        backend.clone(),
        (*dir).clone(),
        rc(),
        Clock::starting_at(now),
    );
    // Fixes 4 days, 2 days and 1 hour old, for a device of each tenant.
    let ages = [4 * DAY_MS, 2 * DAY_MS, 3_600_000];
    for (i, age) in ages.iter().enumerate() {
        let f = fix_at(now - age, 10.0 * i as f64, 0.0, 10.0);
        send(&router, position("d0", &format!("p{i}"), f)).await;
        let mut ev = position("o1", &format!("p{i}"), f);
        ev.device = o1.clone();
        send(&router, ev).await;
    }
    let times = |d: &DeviceKey| -> Vec<i64> {
        position_history(backend.as_ref(), d, i64::MIN, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| r.fix.time_ms)
            .collect()
    };
    let d0 = DeviceKey::new("t", "d0");
    assert_eq!(times(&d0).len(), 3);

    // Every position event is also stored in `events` with its raw message.
    let event_devices = || -> Vec<String> {
        let mut ids = Vec::new();
        backend
            .scan(vaka_store::Cf::Events, &[], &mut |k, _| {
                ids.extend(vaka_store::keys::decode_id(k));
                true
            })
            .unwrap();
        ids.into_iter()
            .map(|id| {
                let e = vaka_store::load_event(backend.as_ref(), vaka_core::EventId(id));
                e.unwrap().unwrap().device.device.0
            })
            .collect()
    };
    assert_eq!(event_devices().len(), 6);

    // The periodic task, with a short period, deletes what is older than a day for "t" only.
    let task = vaka_router::retention::spawn(
        vaka_router::RetentionConfig {
            every: Duration::from_millis(50),
            default_days: 90,
        },
        store.clone(),
        router.clone(),
        dir.clone(),
        Clock::starting_at(now),
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while times(&d0).len() != 1 || event_devices().len() != 4 {
        assert!(
            std::time::Instant::now() < until,
            "retention never ran: {:?} {:?}",
            times(&d0),
            event_devices()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(times(&d0), vec![now - 3_600_000]);
    assert_eq!(times(&o1).len(), 3, "the other tenant keeps 30 days");
    // The two old position events of d0 went with their history rows; o1 keeps all three.
    let mut devs = event_devices();
    devs.sort();
    assert_eq!(devs, ["d0", "o1", "o1", "o1"]);
    // The latest position is kept while it is younger than the limit (it is the device's state).
    assert_eq!(
        latest_position(backend.as_ref(), &d0)
            .unwrap()
            .map(|p| p.fix.time_ms),
        Some(now - 3_600_000)
    );

    // A device of a tenant no longer configured falls back to the default (here 3 days).
    let gone = Arc::new(Directory::default());
    let swept = vaka_router::retention::sweep(&store, &router, &gone, 3, now)
        .await
        .unwrap();
    assert_eq!(swept.devices, 2);
    assert_eq!(swept.events, 1);
    assert_eq!(times(&o1), vec![now - 2 * DAY_MS, now - 3_600_000]);

    // Two days later nothing of d0 is young enough: its latest position and the filter's memory of
    // it go too (the device went quiet), while the record itself (fence state) stays.
    let later = now + 2 * DAY_MS;
    let swept = vaka_router::retention::sweep(&store, &router, &dir, 90, later)
        .await
        .unwrap();
    assert_eq!(swept.records, 1, "{swept:?}");
    assert!(times(&d0).is_empty());
    assert_eq!(latest_position(backend.as_ref(), &d0).unwrap(), None);
    let rec = vaka_store::load_gps(backend.as_ref(), &d0)
        .unwrap()
        .unwrap();
    assert!(!rec.holds_fix_before(i64::MAX), "{rec:?}");
    assert_eq!(event_devices(), ["o1", "o1"]);
    // The device is heard again (the router's clock still says `now`): its fix is taken as a
    // first fix and becomes the latest.
    send(&router, position("d0", "p9", fix_at(now, 0.0, 0.0, 10.0))).await;
    assert_eq!(
        latest_position(backend.as_ref(), &d0)
            .unwrap()
            .map(|p| p.fix.time_ms),
        Some(now)
    );
    router.shutdown().await;
    store.close().unwrap();
}

/// A cluster node follows d0's fixes, taken by another node: its position history and latest
/// position are d0's, and the fence exit they confirm is the other node's alarm to make, not
/// this node's. When d0 then talks to this node (its node died, say), a fix outside raises no
/// second exit: the fence state here followed d0 out. Coming home, the restoral is this
/// node's to make, and there is no exit alarm here to restore: nothing is offered.
#[tokio::test]
async fn fixes_another_node_took_move_the_track_and_fence_state_here_but_raise_no_alarm_here() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = rocks(tmp.path());
    let (store, router) = start_router(
        backend.clone(),
        gps_dir(1),
        rc(),
        Clock::starting_at(T0 + DAY_MS),
    );
    router.centre_up(&CentreId::new("c1")).await;
    // A minute apart: no speed filter objects.
    let s = |n: i64| T0 + n * 60_000;
    let elsewhere: Vec<(vaka_core::EventId, Event)> =
        [(0, 0.0), (1, 900.0), (2, 950.0), (3, 1_000.0)]
            .into_iter()
            .map(|(n, north)| {
                let ev = position("d0", &format!("a{n}"), fix_at(s(n), north, 0.0, 10.0));
                (store.allocate_id(), ev)
            })
            .collect();
    let last_elsewhere = elsewhere[3].1.fix.unwrap();
    router.followed(elsewhere).await;
    // The followed batch is applied once a later event of the shard is durable.
    send(
        &router,
        position("d0", "b4", fix_at(s(4), 1_050.0, 0.0, 10.0)),
    )
    .await;
    let times: Vec<i64> = history(backend.as_ref(), "d0")
        .iter()
        .map(|f| f.time_ms)
        .collect();
    assert_eq!(times, vec![s(0), s(1), s(2), s(3), s(4)]);
    assert_ne!(last_elsewhere.time_ms, s(4));
    let (offers, _) = fence_notices(backend.as_ref(), "d0");
    assert!(
        offers.is_empty(),
        "an exit made here from another node's fixes: {offers:?}"
    );
    for n in 5..7 {
        send(
            &router,
            position("d0", &format!("b{n}"), fix_at(s(n), 1_100.0, 0.0, 10.0)),
        )
        .await;
    }
    let (offers, _) = fence_notices(backend.as_ref(), "d0");
    assert!(
        offers.is_empty(),
        "a second exit for a device already out: {offers:?}"
    );
    let latest = latest_position(backend.as_ref(), &DeviceKey::new("t", "d0"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.fix.time_ms, s(6));
    router.shutdown().await;
    store.close().unwrap();
}
