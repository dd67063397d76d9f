//! Hysteresis: table of decision sequences and the transitions they must raise.

use super::*;
use Decision::{Inside as I, Outside as O, Uncertain as U};
use Transition::{Exit, None as N, Restoral, Stale};

/// (name, config, decisions setting up the zone, (seconds, decision) fed, transitions, final zone)
type Row<'a> = (
    &'a str,
    &'a HysteresisConfig,
    &'a [Decision],
    Vec<(i64, Decision)>,
    Vec<Transition>,
    Zone,
);
/// The same, with the default config.
type TieRow<'a> = (
    &'a str,
    &'a [Decision],
    Vec<(i64, Decision)>,
    Vec<Transition>,
    Zone,
);

/// Feed (seconds, decision) pairs; return the transitions and the final zone.
fn run(
    cfg: &HysteresisConfig,
    start: &[Decision],
    seq: &[(i64, Decision)],
) -> (Vec<Transition>, Zone) {
    let mut t = FenceTracker::new();
    // Optional prefix at negative times to set up a zone.
    for (i, &d) in start.iter().enumerate() {
        let tr = t.feed(cfg, -1_000_000 + i as i64 * 10_000, d);
        assert_ne!(tr, Stale);
    }
    let out = seq.iter().map(|&(s, d)| t.feed(cfg, s * 1000, d)).collect();
    (out, t.zone())
}

#[test]
fn transitions() {
    let def = HysteresisConfig::default(); // 3 fixes or 60 s
    let fixes_only = HysteresisConfig {
        confirm_fixes: 3,
        confirm_secs: None,
    };
    let at_once = HysteresisConfig {
        confirm_fixes: 0,
        confirm_secs: None,
    };
    let inside = [I, I, I];
    let outside = [O, O, O];
    let table: Vec<Row> = vec![
        (
            "start inside: silent",
            &def,
            &[],
            vec![(0, I), (10, I), (20, I)],
            vec![N, N, N],
            Zone::Inside,
        ),
        (
            "start: not yet confirmed",
            &def,
            &[],
            vec![(0, I), (10, I)],
            vec![N, N],
            Zone::Unknown,
        ),
        (
            "start outside: one exit",
            &def,
            &[],
            vec![(0, O), (10, O), (20, O), (30, O)],
            vec![N, N, Exit, N],
            Zone::Outside,
        ),
        (
            "exit after 3",
            &def,
            &inside,
            vec![(0, O), (10, O), (20, O)],
            vec![N, N, Exit],
            Zone::Outside,
        ),
        (
            "inside resets",
            &def,
            &inside,
            vec![(0, O), (10, O), (20, I), (30, O), (40, O), (45, O)],
            vec![N, N, N, N, N, Exit],
            Zone::Outside,
        ),
        (
            "uncertain neither counts nor resets",
            &def,
            &inside,
            vec![(0, O), (5, U), (10, O), (15, U), (20, O)],
            vec![N, N, N, N, Exit],
            Zone::Outside,
        ),
        (
            "uncertain alone: nothing",
            &def,
            &inside,
            vec![(0, U), (100, U), (200, U), (300, U)],
            vec![N, N, N, N],
            Zone::Inside,
        ),
        (
            "by time: 2 outside 60 s apart",
            &def,
            &inside,
            vec![(0, O), (30, U), (60, O)],
            vec![N, N, Exit],
            Zone::Outside,
        ),
        (
            "by time: 59 s is not enough",
            &def,
            &inside,
            vec![(0, O), (59, O)],
            vec![N, N],
            Zone::Inside,
        ),
        (
            "time rule off",
            &fixes_only,
            &inside,
            vec![(0, O), (600, O), (1200, O)],
            vec![N, N, Exit],
            Zone::Outside,
        ),
        (
            "confirm at once",
            &at_once,
            &inside,
            vec![(0, O), (10, I)],
            vec![Exit, Restoral],
            Zone::Inside,
        ),
        (
            "re-entry: restoral",
            &def,
            &outside,
            vec![(0, I), (10, I), (20, I)],
            vec![N, N, Restoral],
            Zone::Inside,
        ),
        (
            "re-entry reset by outside",
            &def,
            &outside,
            vec![(0, I), (10, I), (20, O), (30, I), (40, I), (50, I)],
            vec![N, N, N, N, N, Restoral],
            Zone::Inside,
        ),
        (
            "stale fixes ignored",
            &def,
            &inside,
            vec![(0, O), (10, O), (5, O), (-10, O), (20, O)],
            vec![N, N, Stale, Stale, Exit],
            Zone::Outside,
        ),
        (
            "full cycle",
            &def,
            &[],
            vec![
                (0, I),
                (10, I),
                (20, I),
                (30, O),
                (40, O),
                (50, O),
                (60, I),
                (70, I),
                (80, I),
            ],
            vec![N, N, N, N, N, Exit, N, N, Restoral],
            Zone::Inside,
        ),
    ];
    let mut failed = Vec::new();
    for (name, cfg, start, seq, want, zone) in table {
        let (got, z) = run(cfg, start, &seq);
        if got != want || z != zone {
            failed.push(format!("{name}: got {got:?} {z:?}, want {want:?} {zone:?}"));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

#[test]
fn equal_times_are_one_observation() {
    let cfg = HysteresisConfig::default();
    let inside = [I, I, I];
    let table: Vec<TieRow> = vec![
        // The advancing decision wins a tie, whichever comes first.
        (
            "O then I at 20",
            &inside,
            vec![(0, O), (10, O), (20, O), (20, I)],
            vec![N, N, Exit, N],
            Zone::Outside,
        ),
        (
            "I then O at 20",
            &inside,
            vec![(0, O), (10, O), (20, I), (20, O)],
            vec![N, N, N, Exit],
            Zone::Outside,
        ),
        // Repeats at one time count once.
        (
            "O O O at one time",
            &inside,
            vec![(0, O), (0, O), (0, O)],
            vec![N, N, N],
            Zone::Inside,
        ),
        (
            "U then I at 10: I resets",
            &inside,
            vec![(0, O), (10, U), (10, I), (20, O), (30, O)],
            vec![N, N, N, N, N],
            Zone::Inside,
        ),
    ];
    for (name, start, seq, want, zone) in table {
        let (got, z) = run(&cfg, start, &seq);
        assert_eq!((got, z), (want, zone), "{name}");
    }
}

#[test]
fn tracker_helpers() {
    let cfg = HysteresisConfig::default();
    let fence = Fence::circle(57.7, 11.97, 500.0, 50.0).unwrap();
    let mut t = FenceTracker::new();
    assert_eq!(t.zone(), Zone::Unknown);
    assert_eq!(t.last_time_ms(), None);
    assert_eq!(t.feed_fix(&cfg, &fence, &Fix::at(1_000, 57.7, 11.97)), N);
    assert_eq!(t.pending(), 1);
    assert_eq!(t.last_time_ms(), Some(1_000));
    assert_eq!(t.feed_fix(&cfg, &fence, &Fix::at(500, 57.7, 11.97)), Stale);
}

#[test]
fn config_shape() {
    use super::test_util::{from_map, V};
    let c: HysteresisConfig = from_map(vec![]).unwrap();
    assert_eq!(c, HysteresisConfig::default());
    let c: HysteresisConfig = from_map(vec![
        ("confirm_fixes", V::I(5)),
        ("confirm_secs", V::B(false)),
    ])
    .unwrap();
    assert_eq!(
        c,
        HysteresisConfig {
            confirm_fixes: 5,
            confirm_secs: None
        }
    );
    assert!(from_map::<HysteresisConfig>(vec![("confirm_metres", V::I(5))]).is_err());
}
