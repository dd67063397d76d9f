//! A generated walk through filters and hysteresis: inside a 500 m circle, out past the edge with
//! jitter and 200 m-accuracy fixes near it, a coverage gap whose buffered fixes then arrive late and
//! out of order, resends, outliers, and back in. Exactly one Exit and one Restoral must come out.
//!
//! The generator keeps every fix's true position within its claimed accuracy (outliers aside, which
//! the speed filter must drop): that is the premise under which the fence decisions are sound.

use super::test_util::{offset, SplitMix64, HOME, T0};
use super::*;

const RADIUS: f64 = 500.0;
const MARGIN: f64 = 50.0;

/// One fix as it reaches the engine.
#[derive(Clone, Debug)]
struct Delivery {
    fix: Fix,
    now_ms: i64,
    alarm: bool,
}

#[derive(Default, Debug)]
struct Stats {
    late: usize,
    uncertain: usize,
    stale: usize,
    glitches: usize,
    rejected: [usize; FilterReason::ALL.len()],
}

struct Walk {
    rng: SplitMix64,
    /// True position, metres (north, east) from HOME.
    pos: (f64, f64),
    t_ms: i64,
    out: Vec<Delivery>,
    /// Fixes taken during a coverage gap, not yet delivered.
    buffer: Option<Vec<Fix>>,
    last_was_outlier: bool,
    recent_gap: bool,
    /// Multipath glitches on: now and then a fix lands 150-250 m outward, claiming 8-15 m.
    glitchy: bool,
    glitches: usize,
    /// The previous fix was delivered plain (normal accuracy, nothing odd).
    prev_plain: bool,
}

impl Walk {
    fn r(&self) -> f64 {
        self.pos.0.hypot(self.pos.1)
    }

    /// Take a fix at the true position with bounded noise, and deliver (or buffer) it.
    fn fix(&mut self) {
        self.t_ms += 1_000 * (9 + self.rng.below(3) as i64); // every 9-11 s, whole seconds
        let near_edge = (350.0..700.0).contains(&self.r());
        let (acc, noise) = if near_edge && self.rng.chance(0.3) {
            (200.0, 150.0)
        } else {
            let a = self.rng.range(5.0, 20.0);
            (a, a)
        };
        let (dn, de) = self.rng.in_disc(noise);
        let (lat, lon) = offset(HOME, self.pos.0 + dn, self.pos.1 + de);
        let mut fix = Fix::at(self.t_ms, lat, lon).with_accuracy(acc as f32);
        fix.speed_mps = Some(1.2);
        if let Some(buf) = &mut self.buffer {
            buf.push(fix);
            return;
        }
        let now_ms = self.t_ms + 100 + self.rng.below(2_900) as i64;
        // Now and then: a wild outlier instead (never twice in a row, never right after a gap).
        if !self.last_was_outlier && !self.recent_gap && self.rng.chance(0.03) {
            let (n, e) = self.rng.in_disc(1.0);
            let k = self.rng.range(5_000.0, 10_000.0) / n.hypot(e).max(1e-9);
            let (lat, lon) = offset(HOME, self.pos.0 + n * k, self.pos.1 + e * k);
            let wild = Fix::at(self.t_ms, lat, lon).with_accuracy(10.0);
            self.deliver(wild, now_ms);
            self.last_was_outlier = true;
            return;
        }
        self.last_was_outlier = false;
        self.recent_gap = false;
        // A glitch: wrong beyond its claimed accuracy, so it can decide Outside from inside. Only
        // after a plain fix (which, this far inside, decides Inside and resets any pending exit):
        // a lone glitch is exactly what hysteresis must absorb.
        let was_plain = std::mem::replace(&mut self.prev_plain, false);
        if self.glitchy && was_plain && self.rng.chance(0.15) {
            let r = self.r().max(1.0);
            let k = 1.0 + self.rng.range(150.0, 250.0) / r;
            let (lat, lon) = offset(HOME, self.pos.0 * k, self.pos.1 * k);
            let acc = self.rng.range(8.0, 15.0) as f32;
            self.deliver(Fix::at(self.t_ms, lat, lon).with_accuracy(acc), now_ms);
            self.glitches += 1;
            return;
        }
        // Now and then a fix the device flags invalid, or a (0, 0).
        if self.rng.chance(0.02) {
            self.deliver(
                Fix {
                    valid: false,
                    ..fix
                },
                now_ms,
            );
            return;
        }
        if self.rng.chance(0.01) {
            self.deliver(Fix::at(self.t_ms, 0.0, 0.0), now_ms);
            return;
        }
        let alarm = self.rng.chance(0.01);
        self.prev_plain = acc < 100.0;
        self.out.push(Delivery { fix, now_ms, alarm });
        // Resends: the same fix again, or one a few back.
        if self.rng.chance(0.05) {
            let back = self.rng.below(5) as usize;
            let i = self.out.len().saturating_sub(1 + back);
            let again = Delivery {
                now_ms: now_ms + 500,
                ..self.out[i].clone()
            };
            self.out.push(again);
        }
    }

    fn deliver(&mut self, fix: Fix, now_ms: i64) {
        self.out.push(Delivery {
            fix,
            now_ms,
            alarm: false,
        });
    }

    /// Walk straight to `to` at 1.0-1.5 m/s with a little sideways wobble, fixing as we go.
    fn walk_to(&mut self, to: (f64, f64)) {
        let speed = self.rng.range(1.0, 1.5);
        loop {
            let (dn, de) = (to.0 - self.pos.0, to.1 - self.pos.1);
            let d = dn.hypot(de);
            let step = speed * 10.0;
            if d <= step {
                self.pos = to;
                self.fix();
                return;
            }
            let w = self.rng.range(-2.0, 2.0);
            self.pos.0 += dn / d * step - de / d * w;
            self.pos.1 += de / d * step + dn / d * w;
            self.fix();
        }
    }

    /// Wander for `n` fixes, keeping the distance from HOME within `keep`.
    fn wander(&mut self, n: usize, keep: std::ops::Range<f64>) {
        for _ in 0..n {
            let (sn, se) = self.rng.in_disc(12.0);
            let next = (self.pos.0 + sn, self.pos.1 + se);
            if keep.contains(&next.0.hypot(next.1)) {
                self.pos = next;
            }
            self.fix();
        }
    }

    fn start_gap(&mut self) {
        self.buffer = Some(Vec::new());
    }

    /// Coverage is back: the buffered fixes arrive in a burst, shuffled, around the live one.
    fn end_gap(&mut self) {
        let mut buf = self.buffer.take().unwrap_or_default();
        // Fisher-Yates with our own PRNG.
        for i in (1..buf.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            buf.swap(i, j);
        }
        let live_first = self.rng.chance(0.5);
        self.recent_gap = true;
        if live_first {
            self.fix();
        }
        let now_ms = self.t_ms + 2_000;
        for (k, f) in buf.iter().enumerate() {
            self.deliver(*f, now_ms + k as i64);
            if self.rng.chance(0.1) {
                self.deliver(*f, now_ms + k as i64); // a resend inside the burst
            }
        }
        if !live_first {
            self.t_ms = now_ms; // the next live fix comes after the burst
            self.fix();
        }
    }
}

/// The deliveries, and how many glitches they hold.
fn generate(seed: u64) -> (Vec<Delivery>, usize) {
    let mut rng = SplitMix64(seed);
    let start = rng.in_disc(150.0);
    let mut w = Walk {
        rng,
        pos: start,
        t_ms: T0,
        out: Vec::new(),
        buffer: None,
        last_was_outlier: true, // the first fix is clean
        recent_gap: false,
        glitchy: false,
        prev_plain: false,
        glitches: 0,
    };
    let n = 30 + w.rng.below(30) as usize;
    w.wander(n, 0.0..250.0);
    // Loiter 350-450 m out, inside but near the edge, with multipath glitches.
    let b = w.rng.range(0.0, std::f64::consts::TAU);
    w.walk_to((400.0 * b.cos(), 400.0 * b.sin()));
    w.glitchy = true;
    let n = 20 + w.rng.below(30) as usize;
    w.wander(n, 350.0..450.0);
    w.glitchy = false;
    // Out along a random bearing to 900-1500 m.
    let bearing = w.rng.range(0.0, std::f64::consts::TAU);
    let far = w.rng.range(900.0, 1_500.0);
    w.walk_to((far * bearing.cos(), far * bearing.sin()));
    let n = 10 + w.rng.below(30) as usize;
    w.wander(n, 800.0..3_000.0);
    w.start_gap();
    let n = 30 + w.rng.below(90) as usize;
    w.wander(n, 800.0..3_000.0);
    w.end_gap();
    let n = 10 + w.rng.below(30) as usize;
    w.wander(n, 800.0..3_000.0);
    // Home again.
    let back = w.rng.in_disc(200.0);
    w.walk_to(back);
    let n = 20 + w.rng.below(20) as usize;
    w.wander(n, 0.0..250.0);
    (w.out, w.glitches)
}

fn run(
    deliveries: &[Delivery],
    cfg: &FilterConfig,
    hcfg: &HysteresisConfig,
    stats: &mut Stats,
) -> Vec<(i64, Transition)> {
    let fence = Fence::circle(HOME.0, HOME.1, RADIUS, MARGIN).unwrap();
    let mut fs = FilterState::new();
    let mut tracker = FenceTracker::new();
    let mut out = Vec::new();
    let thinning = cfg.min_distance_m.is_some() || cfg.min_period_s.is_some();
    for d in deliveries {
        let v = fs.process(cfg, &d.fix, d.alarm, d.now_ms);
        if let Some(r) = v.reason() {
            stats.rejected[FilterReason::ALL.iter().position(|x| *x == r).unwrap()] += 1;
        }
        if v == Verdict::AcceptLate {
            stats.late += 1;
        }
        if v.feeds_geofence() {
            let dec = fence.decide_fix(&d.fix);
            if dec == Decision::Uncertain {
                stats.uncertain += 1;
            }
            match tracker.feed_fix(hcfg, &fence, &d.fix) {
                Transition::None => {}
                // With thinning on, a thinned fix may have been fed ahead of one that arrives
                // later with an earlier time; the tracker ignores the older. Without thinning,
                // filters feed only fixes at or after the newest fed.
                Transition::Stale => {
                    assert!(thinning, "filters fed a stale fix: {d:?}");
                    stats.stale += 1;
                }
                t => out.push((d.fix.time_ms, t)),
            }
        }
    }
    out
}

fn check_seeds(cfg: &FilterConfig, seeds: std::ops::Range<u64>) -> Stats {
    let mut stats = Stats::default();
    for seed in seeds {
        let (trace, glitches) = generate(seed);
        stats.glitches += glitches;
        let got = run(&trace, cfg, &HysteresisConfig::default(), &mut stats);
        let kinds: Vec<Transition> = got.iter().map(|&(_, t)| t).collect();
        assert_eq!(
            kinds,
            [Transition::Exit, Transition::Restoral],
            "seed {seed}: {got:?}"
        );
    }
    stats
}

#[test]
fn walk_out_and_back_raises_one_exit_and_one_restoral() {
    let stats = check_seeds(&FilterConfig::default(), 0..200);
    // The walk really exercised what it claims to.
    let count =
        |r: FilterReason| stats.rejected[FilterReason::ALL.iter().position(|x| *x == r).unwrap()];
    assert!(stats.late > 1_000, "{stats:?}");
    assert!(stats.glitches > 200, "{stats:?}");
    assert!(stats.uncertain > 1_000, "{stats:?}");
    assert!(count(FilterReason::Duplicate) > 500, "{stats:?}");
    assert!(count(FilterReason::MaxSpeed) > 100, "{stats:?}");
    assert!(count(FilterReason::Invalid) > 50, "{stats:?}");
    assert!(count(FilterReason::Zero) > 20, "{stats:?}");
}

#[test]
fn same_walk_with_thinning_on() {
    // Thinned fixes still feed the geofence, so thinning changes nothing about the alarms.
    let cfg = FilterConfig {
        min_distance_m: Some(15.0),
        min_period_s: Some(20),
        ..FilterConfig::default()
    };
    let stats = check_seeds(&cfg, 1_000..1_100);
    assert!(
        stats.rejected[FilterReason::ALL
            .iter()
            .position(|x| *x == FilterReason::MinPeriod)
            .unwrap()]
            > 100
    );
}

#[test]
fn without_hysteresis_the_glitches_would_alarm() {
    // The same walks, confirming on a single decision: the lone glitches now raise exits.
    let eager = HysteresisConfig {
        confirm_fixes: 1,
        confirm_secs: None,
    };
    let mut stats = Stats::default();
    let mut noisy = 0;
    for seed in 0..200 {
        let (trace, _) = generate(seed);
        let got = run(&trace, &FilterConfig::default(), &eager, &mut stats);
        if got.len() > 2 {
            noisy += 1;
        }
    }
    assert!(
        noisy > 100,
        "only {noisy} of 200 walks had extra transitions"
    );
}

#[test]
fn generator_is_deterministic() {
    let a = generate(42);
    let b = generate(42);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_ne!(format!("{a:?}"), format!("{:?}", generate(43)));
}
