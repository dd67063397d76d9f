//! Properties: alarm fixes are never rejected, dedup is idempotent, equal-time fixes decide the
//! same whatever their order, and chunked polygon tests equal the brute-force ones.

use super::test_util::{offset, HOME, T0};
use super::*;
use proptest::prelude::*;

fn arb_opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

fn arb_cfg() -> impl Strategy<Value = FilterConfig> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (
            arb_opt(0u32..600),
            arb_opt(0u32..1_000_000),
            arb_opt(0.0f32..2_000.0),
        ),
        (
            arb_opt(0.0f32..100.0),
            arb_opt(0u32..120),
            arb_opt(1.0f32..500.0),
        ),
        (arb_opt(0u32..5), arb_opt(0u32..1_000)),
    )
        .prop_map(
            |(
                (invalid, zero, duplicate),
                (future_s, past_s, accuracy_m),
                (min_distance_m, min_period_s, max_speed_kmh),
                (speed_reanchor_fixes, gap_bypass_s),
            )| FilterConfig {
                invalid,
                zero,
                duplicate,
                future_s,
                past_s,
                accuracy_m,
                min_distance_m,
                min_period_s,
                max_speed_kmh,
                speed_reanchor_fixes,
                gap_bypass_s,
            },
        )
}

/// Fixes that collide often: a few times and places near HOME, sometimes anywhere on Earth,
/// (0, 0), bad coordinates, odd accuracies.
fn arb_fix() -> impl Strategy<Value = Fix> {
    let near = (-20i64..20, -3i32..3, -3i32..3).prop_map(|(k, n, e)| {
        let (lat, lon) = offset(HOME, f64::from(n) * 400.0, f64::from(e) * 400.0);
        (T0 + k * 10_000, lat, lon)
    });
    let anywhere = (
        -1_000_000_000i64..1_000_000_000,
        -90.0f64..=90.0,
        -180.0f64..=180.0,
    )
        .prop_map(|(dt, lat, lon)| (T0 + dt, lat, lon));
    let odd = prop_oneof![
        Just((T0, 0.0, 0.0)),
        Just((T0, 90.0, 180.0)),
        Just((T0, -90.0, -180.0)),
        Just((T0, f64::NAN, 1.0)),
        Just((T0, 91.0, 1.0)),
        Just((T0, 1.0, -180.5)),
    ];
    let acc = prop_oneof![
        Just(None),
        (0.0f32..3_000.0).prop_map(Some),
        Just(Some(-1.0)),
        Just(Some(f32::INFINITY))
    ];
    (
        prop_oneof![6 => near, 2 => anywhere, 1 => odd],
        acc,
        any::<bool>(),
    )
        .prop_map(|((time_ms, lat, lon), accuracy_m, valid)| Fix {
            time_ms,
            lat,
            lon,
            accuracy_m,
            speed_mps: None,
            course_deg: None,
            valid: valid || lat > 0.5, // mostly valid
        })
}

fn arb_now() -> impl Strategy<Value = i64> {
    prop_oneof![Just(T0), (-400_000i64..400_000).prop_map(|d| T0 + d)]
}

/// A filter state reached by processing some history.
fn arb_state() -> impl Strategy<Value = (FilterConfig, FilterState)> {
    (
        arb_cfg(),
        prop::collection::vec((arb_fix(), any::<bool>(), arb_now()), 0..40),
    )
        .prop_map(|(cfg, hist)| {
            let mut s = FilterState::new();
            for (f, alarm, now) in hist {
                s.process(&cfg, &f, alarm, now);
            }
            (cfg, s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn alarm_fix_with_usable_coordinates_is_never_rejected(
        (cfg, state) in arb_state(), fix in arb_fix(), now in arb_now()
    ) {
        let v = check(&cfg, &state, &fix, true, now);
        if fix.coords_ok() {
            prop_assert!(!matches!(v, Verdict::Reject(_)), "{v:?}");
        } else {
            prop_assert_eq!(v, Verdict::Reject(FilterReason::BadCoordinates));
        }
    }

    #[test]
    fn processing_a_fix_twice_is_processing_it_once(
        (cfg, state) in arb_state(), fix in arb_fix(), alarm in any::<bool>(), now in arb_now()
    ) {
        let mut once = state.clone();
        once.process(&cfg, &fix, alarm, now);
        let mut twice = once.clone();
        let v2 = twice.process(&cfg, &fix, alarm, now);
        // Debug, not ==: a NaN inside a stored fix would make a state unequal to itself.
        prop_assert_eq!(format!("{once:?}"), format!("{twice:?}"));
        // And a plain resend is recognised.
        if cfg.duplicate && !alarm {
            prop_assert!(matches!(v2, Verdict::Reject(_)), "second copy passed: {v2:?}");
        }
    }

    #[test]
    fn equal_time_decisions_do_not_depend_on_order(
        groups in prop::collection::vec(
            (0i64..3, prop::collection::vec(0u8..3, 1..4)), 1..40),
        fixes in 0u32..4,
        secs in prop_oneof![Just(None), (0u32..40).prop_map(Some)],
        rot in 0usize..4,
    ) {
        let cfg = HysteresisConfig { confirm_fixes: fixes, confirm_secs: secs };
        let dec = |d: u8| [Decision::Inside, Decision::Outside, Decision::Uncertain][usize::from(d)];
        let mut a = FenceTracker::new();
        let mut b = FenceTracker::new();
        let mut t = T0;
        for (step, ds) in &groups {
            t += step * 10_000; // step 0: the same time as the previous group, too
            let mut out_a: Vec<Transition> = ds.iter().map(|&d| a.feed(&cfg, t, dec(d))).collect();
            // The same fixes in another order: rotated and reversed.
            let mut other: Vec<u8> = ds.clone();
            let n = other.len();
            other.rotate_left(rot % n);
            other.reverse();
            let mut out_b: Vec<Transition> = other.iter().map(|&d| b.feed(&cfg, t, dec(d))).collect();
            out_a.sort_by_key(|x| *x as u8);
            out_b.sort_by_key(|x| *x as u8);
            prop_assert_eq!(&out_a, &out_b);
            prop_assert_eq!(&a, &b);
        }
    }

    #[test]
    fn equal_time_fixes_against_a_fence_do_not_depend_on_order(
        walk in prop::collection::vec(
            (0i64..2, 0.0f64..900.0, 0.0f64..6.3, prop_oneof![Just(0.0f64), 1.0f64..250.0]), 2..60),
    ) {
        let fence = Fence::circle(HOME.0, HOME.1, 500.0, 50.0).unwrap();
        let cfg = HysteresisConfig::default();
        let fixes: Vec<Fix> = {
            let mut t = T0;
            walk.iter().map(|&(step, r, a, acc)| {
                t += step * 10_000;
                let (lat, lon) = offset(HOME, r * a.cos(), r * a.sin());
                Fix::at(t, lat, lon).with_accuracy(acc as f32)
            }).collect()
        };
        // Feed in time order, equal times in given order vs reversed.
        let mut rev = fixes.clone();
        rev.reverse();
        rev.sort_by_key(|f| f.time_ms); // stable: equal times stay reversed
        let feed = |fs: &[Fix]| {
            let mut tr = FenceTracker::new();
            let mut raised: Vec<(i64, Transition)> = fs.iter()
                .map(|f| (f.time_ms, tr.feed_fix(&cfg, &fence, f)))
                .filter(|(_, t)| *t != Transition::None)
                .collect();
            raised.sort_by_key(|&(t, x)| (t, x as u8));
            (raised, tr)
        };
        let (ra, ta) = feed(&fixes);
        let (rb, tb) = feed(&rev);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(ta, tb);
    }

    #[test]
    fn chunked_polygon_equals_brute_force(
        radii in prop::collection::vec(150.0f64..2_000.0, 3..1_200),
        probes in prop::collection::vec((-3_000.0f64..3_000.0, -3_000.0f64..3_000.0, 0.0f64..300.0), 50),
        margin in prop_oneof![Just(0.0f64), 0.0f64..150.0],
    ) {
        // A star-shaped polygon (simple, often very concave).
        let n = radii.len();
        let pts: Vec<[f64; 2]> = radii.iter().enumerate().map(|(i, r)| {
            let a = i as f64 * std::f64::consts::TAU / n as f64;
            let (lat, lon) = offset(HOME, r * a.cos(), r * a.sin());
            [lat, lon]
        }).collect();
        let fence = Fence::polygon(&pts, margin).unwrap();
        for (pn, pe, acc) in probes {
            let (lat, lon) = offset(HOME, pn, pe);
            prop_assert_eq!(fence.decide(lat, lon, acc), fence.decide_brute_force(lat, lon, acc));
        }
    }
}

#[test]
fn alarm_property_holds_on_extremes() {
    // A few fixed corners the generator might miss.
    let cfg = FilterConfig::default();
    let mut s = FilterState::new();
    s.accept(&Fix::at(T0, HOME.0, HOME.1));
    for fix in [
        Fix::at(T0, -HOME.0, -HOME.1),
        Fix::at(i64::MAX, 0.0, 0.0),
        Fix::at(i64::MIN, 90.0, -180.0),
        Fix {
            valid: false,
            ..Fix::at(T0 - 1, 0.0, 0.0).with_accuracy(f32::MAX)
        },
    ] {
        for now in [i64::MIN, 0, T0, i64::MAX] {
            let v = check(&cfg, &s, &fix, true, now);
            assert!(!matches!(v, Verdict::Reject(_)), "{fix:?} at {now}: {v:?}");
        }
    }
}
