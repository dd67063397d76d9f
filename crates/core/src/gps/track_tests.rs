//! The per-device pipeline: filters then fences, fence (re)configuration, the plan's resolution.

use super::test_util::{offset, HOME, T0};
use super::*;
use crate::ids::DeviceKey;
use proptest::prelude::*;

fn home_fence(radius_m: f64) -> DeviceFence {
    DeviceFence::new(
        "home",
        Fence::circle(HOME.0, HOME.1, radius_m, 50.0).unwrap(),
        HysteresisConfig {
            confirm_fixes: 2,
            confirm_secs: None,
        },
    )
}

/// A fix `north_m` metres north of HOME at T0 + `secs`, accuracy 10 m.
fn at(secs: i64, north_m: f64) -> Fix {
    let (lat, lon) = offset(HOME, north_m, 0.0);
    Fix::at(T0 + secs * 1000, lat, lon).with_accuracy(10.0)
}

/// (seconds, metres north, expected fence events)
type Step = (i64, f64, Vec<(String, bool)>);

fn exits(o: &Observed) -> Vec<(String, bool)> {
    o.fences.iter().map(|e| (e.fence.clone(), e.exit)).collect()
}

#[test]
fn exit_then_restoral_each_once() {
    let cfg = FilterConfig::default();
    let fences = [home_fence(500.0)];
    let mut t = DeviceTrack::default();
    let now = |s: i64| T0 + s * 1000 + 500;
    // (secs, metres north, expected fence events)
    let steps: Vec<Step> = vec![
        (0, 0.0, vec![]),
        (60, 100.0, vec![]),
        (120, 400.0, vec![]),
        (180, 700.0, vec![]),                       // first outside: pending
        (240, 800.0, vec![("home".into(), true)]),  // second: exit confirmed
        (300, 900.0, vec![]),                       // still out: nothing new
        (360, 300.0, vec![]),                       // first inside: pending
        (420, 200.0, vec![("home".into(), false)]), // restoral
        (480, 100.0, vec![]),
    ];
    for (secs, north, want) in steps {
        let o = t.observe(&cfg, &fences, &at(secs, north), false, now(secs));
        assert_eq!(o.verdict, Verdict::Accept, "at {secs}s");
        assert_eq!(exits(&o), want, "at {secs}s");
    }
    assert_eq!(t.zone("home"), Zone::Inside);
}

#[test]
fn late_rejected_and_alarm_only_fixes_do_not_move_fences() {
    let cfg = FilterConfig::default();
    let fences = [home_fence(500.0)];
    let mut t = DeviceTrack::default();
    let now = T0 + 1_000_000;
    t.observe(&cfg, &fences, &at(600, 0.0), false, now);
    t.observe(&cfg, &fences, &at(610, 0.0), false, now);
    // Late fixes from far outside: history only.
    for s in [100, 110, 120, 130] {
        let o = t.observe(&cfg, &fences, &at(s, 2_000.0), false, now);
        assert_eq!(o.verdict, Verdict::AcceptLate);
        assert!(o.fences.is_empty());
        assert!(o.to_history() && !o.is_latest());
    }
    // A poor fix carried by an alarm: kept with the alarm, never fed.
    let poor = at(620, 2_000.0).with_accuracy(5_000.0);
    let o = t.observe(&cfg, &fences, &poor, true, now);
    assert_eq!(o.verdict, Verdict::AlarmOnly(FilterReason::Accuracy));
    assert!(!o.to_history());
    let o = t.observe(&cfg, &fences, &poor, true, now);
    assert!(o.fences.is_empty());
    assert_eq!(t.zone("home"), Zone::Inside);
    assert_eq!(t.fences[0].tracker.pending(), 0);
}

#[test]
fn a_changed_fence_starts_a_fresh_tracker_and_an_unchanged_one_keeps_its_state() {
    let cfg = FilterConfig::default();
    let mut t = DeviceTrack::default();
    let small = [home_fence(500.0)];
    let now = T0 + 1_000_000;
    t.observe(&cfg, &small, &at(0, 0.0), false, now);
    t.observe(&cfg, &small, &at(10, 700.0), false, now);
    assert_eq!(t.fences[0].tracker.pending(), 1);
    // Same fence plus a new one: the old tracker is kept, the new one starts at Unknown.
    let other = DeviceFence::new(
        "school",
        Fence::circle(HOME.0, HOME.1, 5_000.0, 0.0).unwrap(),
        HysteresisConfig::default(),
    );
    let two = [other.clone(), home_fence(500.0)];
    let o = t.observe(&cfg, &two, &at(20, 800.0), false, now);
    assert_eq!(exits(&o), vec![("home".to_string(), true)]);
    assert_eq!(
        t.zone("school"),
        Zone::Unknown,
        "its first fix: not confirmed yet"
    );
    assert_eq!(t.fences[0].tracker.pending(), 1);
    // The home fence grows to 2 km: a new tracker, and the device is inside it.
    let big = [home_fence(2_000.0)];
    let o = t.observe(&cfg, &big, &at(30, 800.0), false, now);
    assert!(o.fences.is_empty());
    assert_eq!(t.fences.len(), 1);
    assert_eq!(
        t.zone("home"),
        Zone::Unknown,
        "one inside decision is not confirmed yet"
    );
    t.observe(&cfg, &big, &at(40, 800.0), false, now);
    assert_eq!(t.zone("home"), Zone::Inside);
    assert_ne!(
        home_fence(500.0).fingerprint(),
        home_fence(2_000.0).fingerprint()
    );
    assert_eq!(
        home_fence(500.0).fingerprint(),
        home_fence(500.0).fingerprint()
    );
}

#[test]
fn plan_resolves_device_then_tenant_then_default() {
    let mut plan = GpsPlan::default();
    let d = DeviceKey::new("t", "d");
    let other = DeviceKey::new("t", "other");
    let stranger = DeviceKey::new("x", "y");
    let tenant = FilterConfig {
        accuracy_m: Some(300.0),
        ..FilterConfig::default()
    };
    plan.tenants.insert(d.tenant.clone(), tenant.clone());
    let over = FilterOverride {
        min_period_s: Some(Some(30)),
        ..FilterOverride::default()
    };
    plan.set_device(d.clone(), &over, vec![home_fence(500.0)]);
    assert_eq!(
        plan.filter(&d).accuracy_m,
        Some(300.0),
        "inherits the tenant's"
    );
    assert_eq!(plan.filter(&d).min_period_s, Some(30));
    assert_eq!(plan.filter(&other), &tenant);
    assert_eq!(plan.filter(&stranger), &FilterConfig::default());
    assert_eq!(plan.fences(&d).len(), 1);
    assert!(plan.fences(&other).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Through filters and fences: two fixes stamped the same time (within what max speed
    /// allows of each other) give the same fence events and the same zone in either order.
    #[test]
    fn equal_time_fixes_through_the_pipeline_do_not_depend_on_order(
        walk in prop::collection::vec((3i64..7, 0.0f64..1_200.0, 0.0f64..6.3), 1..30),
        pair in prop::collection::vec((1.0f64..40.0, 0.0f64..6.3, 0.0f64..250.0), 30),
        thin in any::<bool>(),
    ) {
        let mut cfg = FilterConfig::default();
        if thin {
            cfg.min_distance_m = Some(20.0);
            cfg.min_period_s = Some(15);
        }
        let fences = [home_fence(500.0)];
        let mut a = DeviceTrack::default();
        let mut b = DeviceTrack::default();
        let mut t = T0;
        for (i, &(step, r, bearing)) in walk.iter().enumerate() {
            t += step * 10_000;
            // Steps of 30-60 s: no pair of fixes is a speed outlier, so both are fed.
            let (d, dir, acc) = pair[i];
            let (dn, de) = (d * dir.cos(), d * dir.sin());
            let (lat1, lon1) = offset(HOME, r * bearing.cos(), r * bearing.sin());
            let (lat2, lon2) = offset(HOME, r * bearing.cos() + dn, r * bearing.sin() + de);
            let f1 = Fix::at(t, lat1, lon1).with_accuracy(10.0);
            let f2 = Fix::at(t, lat2, lon2).with_accuracy(acc as f32);
            let now = t + 1_000;
            let mut ea: Vec<FenceEvent> = Vec::new();
            ea.extend(a.observe(&cfg, &fences, &f1, false, now).fences);
            ea.extend(a.observe(&cfg, &fences, &f2, false, now).fences);
            let mut eb: Vec<FenceEvent> = Vec::new();
            eb.extend(b.observe(&cfg, &fences, &f2, false, now).fences);
            eb.extend(b.observe(&cfg, &fences, &f1, false, now).fences);
            prop_assert_eq!(&ea, &eb);
            prop_assert_eq!(a.zone("home"), b.zone("home"));
        }
    }
}
