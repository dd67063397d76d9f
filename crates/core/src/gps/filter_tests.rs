//! Table-driven tests of every filter and every exemption.

use super::test_util::{from_map, offset, HOME, T0, V};
use super::*;

const NOW: i64 = T0;
/// The last accepted fix in most cases: a minute ago, at HOME, 10 m accuracy.
fn last() -> Fix {
    Fix::at(NOW - 60_000, HOME.0, HOME.1).with_accuracy(10.0)
}
fn state_with_last() -> FilterState {
    let mut s = FilterState::new();
    s.accept(&last());
    s
}
/// A fix `secs` after the last one, moved `north_m` metres.
fn after(secs: i64, north_m: f64) -> Fix {
    let (lat, lon) = offset(HOME, north_m, 0.0);
    Fix::at(last().time_ms + secs * 1000, lat, lon).with_accuracy(10.0)
}

struct Case {
    name: &'static str,
    cfg: FilterConfig,
    state: FilterState,
    fix: Fix,
    alarm: bool,
    want: Verdict,
}

fn run(cases: Vec<Case>) {
    let mut failed = Vec::new();
    for c in &cases {
        let got = check(&c.cfg, &c.state, &c.fix, c.alarm, NOW);
        if got != c.want {
            failed.push(format!("{}: got {got:?}, want {:?}", c.name, c.want));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

fn case(name: &'static str, fix: Fix, alarm: bool, want: Verdict) -> Case {
    Case {
        name,
        cfg: FilterConfig::default(),
        state: state_with_last(),
        fix,
        alarm,
        want,
    }
}

use FilterReason as R;
use Verdict::{Accept, AcceptLate, AlarmOnly, Reject};

#[test]
fn coordinates_and_quality_filters() {
    let bad = |lat, lon| Fix::at(NOW, lat, lon);
    let mut cases = vec![
        case("normal", after(10, 5.0), false, Accept),
        case("lat > 90", bad(90.5, 1.0), false, Reject(R::BadCoordinates)),
        case(
            "lon < -180",
            bad(1.0, -180.5),
            false,
            Reject(R::BadCoordinates),
        ),
        case(
            "lat NaN",
            bad(f64::NAN, 1.0),
            false,
            Reject(R::BadCoordinates),
        ),
        case(
            "lon inf",
            bad(1.0, f64::INFINITY),
            false,
            Reject(R::BadCoordinates),
        ),
        // Even an alarm cannot make garbage a position (the alarm itself is not dropped).
        case(
            "alarm lat NaN",
            bad(f64::NAN, 1.0),
            true,
            Reject(R::BadCoordinates),
        ),
        case(
            "alarm lat > 90",
            bad(91.0, 1.0),
            true,
            Reject(R::BadCoordinates),
        ),
        case(
            "invalid flag",
            Fix {
                valid: false,
                ..after(10, 5.0)
            },
            false,
            Reject(R::Invalid),
        ),
        case(
            "alarm invalid flag",
            Fix {
                valid: false,
                ..after(10, 5.0)
            },
            true,
            AlarmOnly(R::Invalid),
        ),
        case(
            "future > 120 s",
            Fix::at(NOW + 121_000, HOME.0, HOME.1),
            false,
            Reject(R::Future),
        ),
        case(
            "future = 120 s",
            Fix::at(NOW + 120_000, HOME.0, HOME.1),
            false,
            Accept,
        ),
        case(
            "alarm future",
            Fix::at(NOW + 121_000, HOME.0, HOME.1),
            true,
            AlarmOnly(R::Future),
        ),
        case(
            "past > 7 d",
            Fix::at(NOW - 7 * 86_400_000 - 1, HOME.0, HOME.1),
            false,
            Reject(R::Past),
        ),
        case(
            "past = 7 d (late)",
            Fix::at(NOW - 7 * 86_400_000, HOME.0, HOME.1),
            false,
            AcceptLate,
        ),
        case(
            "alarm past",
            Fix::at(NOW - 8 * 86_400_000, HOME.0, HOME.1),
            true,
            AlarmOnly(R::Past),
        ),
        case(
            "accuracy 1001 m",
            after(10, 5.0).with_accuracy(1001.0),
            false,
            Reject(R::Accuracy),
        ),
        case(
            "accuracy 1000 m",
            after(10, 5.0).with_accuracy(1000.0),
            false,
            Accept,
        ),
        case(
            "alarm accuracy",
            after(10, 5.0).with_accuracy(5000.0),
            true,
            AlarmOnly(R::Accuracy),
        ),
        case(
            "accuracy unknown",
            Fix {
                accuracy_m: None,
                ..after(10, 5.0)
            },
            false,
            Accept,
        ),
        case(
            "accuracy NaN counts as unknown",
            after(10, 5.0).with_accuracy(f32::NAN),
            false,
            Accept,
        ),
    ];
    // Zero: checked with no last fix (else max speed would fire first from HOME).
    for (name, alarm, want) in [
        ("zero", false, Reject(R::Zero)),
        ("alarm zero", true, AlarmOnly(R::Zero)),
    ] {
        cases.push(Case {
            state: FilterState::new(),
            ..case(name, Fix::at(NOW, 0.0, 0.0), alarm, want)
        });
    }
    // Each quality filter can be turned off.
    let off = |f: fn(&mut FilterConfig)| {
        let mut c = FilterConfig::default();
        f(&mut c);
        c
    };
    cases.extend([
        Case {
            cfg: off(|c| c.invalid = false),
            ..case(
                "invalid off",
                Fix {
                    valid: false,
                    ..after(10, 5.0)
                },
                false,
                Accept,
            )
        },
        Case {
            cfg: off(|c| c.zero = false),
            state: FilterState::new(),
            ..case("zero off", Fix::at(NOW, 0.0, 0.0), false, Accept)
        },
        Case {
            cfg: off(|c| c.future_s = None),
            ..case(
                "future off",
                Fix::at(NOW + 3_600_000, HOME.0, HOME.1),
                false,
                Accept,
            )
        },
        Case {
            cfg: off(|c| c.past_s = None),
            ..case(
                "past off (late)",
                Fix::at(NOW - 30 * 86_400_000, HOME.0, HOME.1),
                false,
                AcceptLate,
            )
        },
        Case {
            cfg: off(|c| c.accuracy_m = None),
            ..case(
                "accuracy off",
                after(10, 5.0).with_accuracy(9e9),
                false,
                Accept,
            )
        },
    ]);
    run(cases);
}

#[test]
fn duplicates_and_late_fixes() {
    // A state that stored five fixes, 10 s apart, walking north; the last is at +40 m.
    let mut walked = FilterState::new();
    for i in 0..5 {
        walked.accept(&after(i * 10, i as f64 * 10.0));
    }
    let with = |state: &FilterState, name, fix, alarm, want| Case {
        state: state.clone(),
        ..case(name, fix, alarm, want)
    };
    let dup_off = FilterConfig {
        duplicate: false,
        ..FilterConfig::default()
    };
    run(vec![
        case("same as last", last(), false, Reject(R::Duplicate)),
        case("alarm same as last", last(), true, Accept),
        Case {
            cfg: dup_off.clone(),
            ..case("duplicate off", last(), false, Accept)
        },
        with(
            &walked,
            "resend of an earlier fix",
            after(20, 20.0),
            false,
            Reject(R::Duplicate),
        ),
        with(
            &walked,
            "alarm resend of an earlier fix",
            after(20, 20.0),
            true,
            AcceptLate,
        ),
        Case {
            cfg: dup_off,
            ..with(
                &walked,
                "earlier fix, duplicate off",
                after(20, 20.0),
                false,
                AcceptLate,
            )
        },
        // Same time as the last, another position: not a resend; a second observation.
        case("same time, 5 m away", after(0, 5.0), false, Accept),
        with(&walked, "late, new", after(25, 25.0), false, AcceptLate),
        with(&walked, "alarm late", after(25, 25.0), true, AcceptLate),
        // Late fixes skip max speed (they are not compared with the newest fix).
        with(
            &walked,
            "late and far",
            after(15, 50_000.0),
            false,
            AcceptLate,
        ),
        Case {
            state: FilterState::new(),
            ..case("no last fix yet", after(10, 5.0), false, Accept)
        },
    ]);
}

#[test]
fn max_speed() {
    let cfg_off = FilterConfig {
        max_speed_kmh: None,
        ..FilterConfig::default()
    };
    // 300 km/h for 10 s is 833.3 m.
    run(vec![
        case(
            "2 km in 10 s",
            after(10, 2_000.0),
            false,
            Reject(R::MaxSpeed),
        ),
        case(
            "alarm 2 km in 10 s",
            after(10, 2_000.0),
            true,
            AlarmOnly(R::MaxSpeed),
        ),
        case("830 m in 10 s", after(10, 830.0), false, Accept),
        case(
            "840 m in 10 s",
            after(10, 840.0),
            false,
            Reject(R::MaxSpeed),
        ),
        // Same second: elapsed counts as 1 s, so 80 m is fine and 90 m is not.
        case("80 m, same time", after(0, 80.0), false, Accept),
        case(
            "90 m, same time",
            after(0, 90.0),
            false,
            Reject(R::MaxSpeed),
        ),
        Case {
            cfg: cfg_off,
            ..case("max speed off", after(10, 2_000.0), false, Accept)
        },
    ]);
}

#[test]
fn thinning_and_gap_bypass() {
    let thin = FilterConfig {
        future_s: None, // some cases lie minutes after NOW
        min_distance_m: Some(20.0),
        min_period_s: Some(30),
        gap_bypass_s: Some(300),
        ..FilterConfig::default()
    };
    let c = |name, fix, alarm, want| Case {
        cfg: thin.clone(),
        ..case(name, fix, alarm, want)
    };
    let short_gap = FilterConfig {
        gap_bypass_s: Some(20),
        ..thin.clone()
    };
    run(vec![
        c("moved 10 m", after(40, 10.0), false, Reject(R::MinDistance)),
        c("moved 30 m", after(40, 30.0), false, Accept),
        c("alarm moved 10 m", after(40, 10.0), true, Accept),
        c("10 s after", after(10, 100.0), false, Reject(R::MinPeriod)),
        c("30 s after", after(30, 100.0), false, Accept),
        c("alarm 10 s after", after(10, 100.0), true, Accept),
        c(
            "both: distance named first",
            after(10, 1.0),
            false,
            Reject(R::MinDistance),
        ),
        // The gap bypass is "more than": 300 s is still thinned, 301 s is not.
        c(
            "gap 300 s, moved 1 m",
            after(300, 1.0),
            false,
            Reject(R::MinDistance),
        ),
        c("gap 301 s, moved 1 m", after(301, 1.0), false, Accept),
        Case {
            cfg: short_gap.clone(),
            ..case(
                "gap 25 s > bypass 20 s, period 30 s",
                after(25, 100.0),
                false,
                Accept,
            )
        },
        Case {
            cfg: short_gap,
            ..case(
                "gap 15 s, period 30 s",
                after(15, 100.0),
                false,
                Reject(R::MinPeriod),
            )
        },
        // The bypass never lets a speed outlier through, nor a resend.
        c(
            "gap 400 s, 50 km",
            after(400, 50_000.0),
            false,
            Reject(R::MaxSpeed),
        ),
        c(
            "duplicate after a long time",
            last(),
            false,
            Reject(R::Duplicate),
        ),
    ]);
}

#[test]
fn speed_reanchoring() {
    let cfg = FilterConfig::default();
    let far = 5_000.0;
    // The last accepted fix was wrong: the device is really 5 km north, and stays there.
    let mut s = state_with_last();
    let v: Vec<Verdict> = (1..=4)
        .map(|i| s.process(&cfg, &after(i * 10, far + i as f64), false, NOW))
        .collect();
    assert_eq!(
        v,
        [Reject(R::MaxSpeed), Reject(R::MaxSpeed), Accept, Accept]
    );
    assert_eq!(s.last().unwrap().time_ms, after(40, 0.0).time_ms);
    // Going back to the old place is now the outlier.
    assert_eq!(
        s.process(&cfg, &after(50, 0.0), false, NOW),
        Reject(R::MaxSpeed)
    );

    // Outliers that disagree with each other never re-anchor.
    let far = 50_000.0;
    let mut s = state_with_last();
    for i in 1..=10 {
        let north = if i % 2 == 0 { far } else { -far };
        let v = s.process(&cfg, &after(i * 10, north), false, NOW);
        assert_eq!(v, Reject(R::MaxSpeed), "fix {i}");
    }
    // And a good fix clears the chain.
    assert_eq!(s.process(&cfg, &after(110, 10.0), false, NOW), Accept);

    // Turned off: never.
    let off = FilterConfig {
        speed_reanchor_fixes: None,
        ..FilterConfig::default()
    };
    let mut s = state_with_last();
    for i in 1..=10 {
        let v = s.process(&off, &after(i * 10, far), false, NOW);
        assert_eq!(v, Reject(R::MaxSpeed), "fix {i}");
    }
}

#[test]
fn verdict_routing() {
    assert!(Accept.stores() && Accept.feeds_geofence());
    assert!(AcceptLate.stores() && !AcceptLate.feeds_geofence());
    assert!(AlarmOnly(R::Future).stores() && !AlarmOnly(R::Future).feeds_geofence());
    assert!(!Reject(R::MaxSpeed).stores() && !Reject(R::MaxSpeed).feeds_geofence());
    assert!(!Reject(R::MinDistance).stores() && Reject(R::MinDistance).feeds_geofence());
    assert!(Reject(R::MinPeriod).feeds_geofence());
    let labels: Vec<&str> = FilterReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        labels,
        [
            "bad_coordinates",
            "invalid",
            "zero",
            "future",
            "past",
            "accuracy",
            "duplicate",
            "max_speed",
            "min_distance",
            "min_period"
        ]
    );
}

#[test]
fn apply_keeps_late_and_alarm_fixes_out_of_last() {
    let cfg = FilterConfig::default();
    let mut s = state_with_last();
    let late = after(-30, 5.0);
    assert_eq!(s.process(&cfg, &late, false, NOW), AcceptLate);
    assert_eq!(s.last(), Some(&last()));
    // Its resend is now a duplicate.
    assert_eq!(s.process(&cfg, &late, false, NOW), Reject(R::Duplicate));
    let future = Fix::at(NOW + 3_600_000, HOME.0, HOME.1);
    assert_eq!(s.process(&cfg, &future, true, NOW), AlarmOnly(R::Future));
    assert_eq!(
        s.last(),
        Some(&last()),
        "a suspect alarm fix must not become last"
    );
    // A true fix after it is not late.
    assert_eq!(s.process(&cfg, &after(10, 5.0), false, NOW), Accept);
}

#[test]
fn config_shapes() {
    // Empty table: the defaults.
    let c: FilterConfig = from_map(vec![]).unwrap();
    assert_eq!(c, FilterConfig::default());
    // Numbers set, `false` turns off.
    let c: FilterConfig = from_map(vec![
        ("accuracy_m", V::I(250)),
        ("future_s", V::B(false)),
        ("min_distance_m", V::F(12.5)),
        ("min_period_s", V::I(5)),
        ("zero", V::B(false)),
    ])
    .unwrap();
    assert_eq!(c.accuracy_m, Some(250.0));
    assert_eq!(c.future_s, None);
    assert_eq!(c.min_distance_m, Some(12.5));
    assert_eq!(c.min_period_s, Some(5));
    assert!(!c.zero);
    assert_eq!(c.past_s, FilterConfig::default().past_s);
    // Mistakes are named.
    let e = from_map::<FilterConfig>(vec![("acuracy_m", V::I(5))]).unwrap_err();
    assert!(e.contains("acuracy_m"), "{e}");
    let e = from_map::<FilterConfig>(vec![("future_s", V::B(true))]).unwrap_err();
    assert!(e.contains("false to turn this off"), "{e}");
    let e = from_map::<FilterConfig>(vec![("future_s", V::I(-5))]).unwrap_err();
    assert!(e.contains("non-negative"), "{e}");
    let e = from_map::<FilterConfig>(vec![("future_s", V::F(1.5))]).unwrap_err();
    assert!(e.contains("non-negative"), "{e}");

    // Override: absent inherits, number sets, false turns off.
    let tenant = FilterConfig {
        min_distance_m: Some(20.0),
        ..FilterConfig::default()
    };
    let o: FilterOverride = from_map(vec![
        ("min_distance_m", V::B(false)),
        ("accuracy_m", V::I(100)),
        ("duplicate", V::B(false)),
    ])
    .unwrap();
    let c = tenant.with_override(&o);
    assert_eq!(c.min_distance_m, None);
    assert_eq!(c.accuracy_m, Some(100.0));
    assert!(!c.duplicate);
    assert_eq!(c.max_speed_kmh, tenant.max_speed_kmh);
    assert_eq!(tenant.with_override(&FilterOverride::default()), tenant);
    assert!(from_map::<FilterOverride>(vec![("speed", V::I(1))]).is_err());
}
