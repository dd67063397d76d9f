//! Rough ns/op figures, for when the criterion benches (benches/benches/gps.rs) are not at hand:
//! `cargo test -p vaka-core --release --lib gps::perf -- --ignored --nocapture`.
//! Timing uses the wall clock: test code only, never the engine.

use super::test_util::{offset, SplitMix64, HOME, T0};
use super::*;
use std::hint::black_box;
use std::time::Instant;

/// A walk of `n` fixes, 10 s apart, jittered, with a resend and an outlier now and then.
pub(crate) fn fix_stream(n: usize) -> Vec<Fix> {
    let mut rng = SplitMix64(7);
    let mut pos = (0.0, 0.0);
    (0..n)
        .map(|i| {
            pos.0 += rng.range(-10.0, 10.0);
            pos.1 += rng.range(-10.0, 10.0);
            let (dn, de) = rng.in_disc(15.0);
            let (lat, lon) = if rng.chance(0.02) {
                offset(HOME, 20_000.0, 0.0)
            } else {
                offset(HOME, pos.0 + dn, pos.1 + de)
            };
            Fix::at(T0 + i as i64 * 10_000, lat, lon).with_accuracy(15.0)
        })
        .collect()
}

/// A wobbly ring of `n` vertices around HOME, radius 500 ± 60 m.
pub(crate) fn wobbly_polygon(n: usize) -> Fence {
    let pts: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = i as f64 * std::f64::consts::TAU / n as f64;
            let r = 500.0 + 60.0 * (7.0 * a).sin();
            let (lat, lon) = offset(HOME, r * a.cos(), r * a.sin());
            [lat, lon]
        })
        .collect();
    Fence::polygon(&pts, 50.0).unwrap()
}

fn time<F: FnMut(usize)>(label: &str, iters: usize, mut f: F) -> f64 {
    for i in 0..iters / 10 {
        f(i); // warm up
    }
    let t = Instant::now();
    for i in 0..iters {
        f(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    eprintln!("{label:<44} {ns:>8.1} ns/op");
    ns
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timings() {
    let fixes = fix_stream(4096);
    let n = fixes.len();
    let span = n as i64 * 10_000;
    let cfg = FilterConfig::default();
    let thin = FilterConfig {
        min_distance_m: Some(10.0),
        min_period_s: Some(5),
        ..FilterConfig::default()
    };
    for (label, cfg) in [
        ("filter chain (check + apply), defaults", &cfg),
        ("filter chain, thinning on", &thin),
    ] {
        let mut state = FilterState::new();
        time(label, 5_000_000, |i| {
            let mut f = fixes[i % n];
            f.time_ms += (i / n) as i64 * span;
            black_box(state.process(cfg, black_box(&f), false, f.time_ms + 1_000));
        });
    }
    let mut state = FilterState::new();
    for f in &fixes[..100] {
        state.process(&cfg, f, false, f.time_ms);
    }
    let next = fixes[100];
    time("filter check only", 5_000_000, |_| {
        black_box(check(
            &cfg,
            black_box(&state),
            black_box(&next),
            false,
            next.time_ms,
        ));
    });

    let circle = Fence::circle(HOME.0, HOME.1, 500.0, 50.0).unwrap();
    let near_out = offset(HOME, 650.0 * 0.8f64.cos(), 650.0 * 0.8f64.sin());
    let deep_in = offset(HOME, 10.0, 20.0);
    let far = offset(HOME, 5_000.0, 0.0);
    let mut t = 0.0f64;
    for (name, fence) in [
        ("circle", circle),
        ("polygon 4", wobbly_polygon(4)),
        ("polygon 100", wobbly_polygon(100)),
        ("polygon 1000", wobbly_polygon(1000)),
    ] {
        for (what, p, want) in [
            ("near outside", near_out, Decision::Outside),
            ("deep inside", deep_in, Decision::Inside),
            ("far away", far, Decision::Outside),
        ] {
            assert_eq!(fence.decide(p.0, p.1, 20.0), want, "{name} {what}");
            t = t.max(time(&format!("{name}: {what}"), 2_000_000, |_| {
                black_box(fence.decide(black_box(p.0), black_box(p.1), black_box(20.0)));
            }));
        }
    }
    // Worst case: an accuracy so large that every chunk is near, so every segment is measured.
    let f = wobbly_polygon(1000);
    assert_eq!(f.decide(deep_in.0, deep_in.1, 2_000.0), Decision::Uncertain);
    time(
        "polygon 1000: every segment (accuracy 2 km)",
        500_000,
        |_| {
            black_box(f.decide(
                black_box(deep_in.0),
                black_box(deep_in.1),
                black_box(2_000.0),
            ));
        },
    );
    eprintln!("slowest fence decision above: {t:.1} ns");
    eprintln!(
        "sizes: FilterState {} B, FenceTracker {} B, Fix {} B",
        std::mem::size_of::<FilterState>(),
        std::mem::size_of::<FenceTracker>(),
        std::mem::size_of::<Fix>()
    );
}
