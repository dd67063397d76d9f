//! GPS hot path: the filter chain per fix, and geofence decisions for circles and for polygons of
//! 4, 100 and 1,000 vertices (a fix near but outside, one deep inside, one far away).
//! Targets: filter chain < 200 ns per fix; 1,000-vertex polygon < 2 µs per decision.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use vaka_core::gps::{check, Decision, Fence, FilterConfig, FilterState, Fix};

const HOME: (f64, f64) = (57.7089, 11.9746);
const T0: i64 = 1_700_000_000_000;
const M_PER_DEG: f64 = vaka_core::gps::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

fn offset(north_m: f64, east_m: f64) -> (f64, f64) {
    (
        HOME.0 + north_m / M_PER_DEG,
        HOME.1 + east_m / (M_PER_DEG * HOME.0.to_radians().cos()),
    )
}

/// splitmix64, so the bench input is the same on every run.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// A jittered walk, a fix every 10 s, with a 2 % of wild outliers.
fn fix_stream(n: usize) -> Vec<Fix> {
    let mut rng = Rng(7);
    let mut pos = (0.0, 0.0);
    (0..n)
        .map(|i| {
            pos.0 += rng.range(-10.0, 10.0);
            pos.1 += rng.range(-10.0, 10.0);
            let (lat, lon) = if rng.unit() < 0.02 {
                offset(20_000.0, 0.0)
            } else {
                offset(
                    pos.0 + rng.range(-10.0, 10.0),
                    pos.1 + rng.range(-10.0, 10.0),
                )
            };
            Fix::at(T0 + i as i64 * 10_000, lat, lon).with_accuracy(15.0)
        })
        .collect()
}

/// A wobbly ring of `n` vertices, radius 500 ± 60 m, margin 50 m.
fn wobbly_polygon(n: usize) -> Fence {
    let pts: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = i as f64 * std::f64::consts::TAU / n as f64;
            let r = 500.0 + 60.0 * (7.0 * a).sin();
            let (lat, lon) = offset(r * a.cos(), r * a.sin());
            [lat, lon]
        })
        .collect();
    Fence::polygon(&pts, 50.0).expect("valid polygon")
}

fn filters(c: &mut Criterion) {
    let fixes = fix_stream(4096);
    let n = fixes.len();
    let span = n as i64 * 10_000;
    let mut g = c.benchmark_group("gps/filter");
    g.throughput(Throughput::Elements(1));
    let thinning = FilterConfig {
        min_distance_m: Some(10.0),
        min_period_s: Some(5),
        ..FilterConfig::default()
    };
    for (name, cfg) in [
        ("chain_defaults", FilterConfig::default()),
        ("chain_thinning", thinning),
    ] {
        g.bench_function(name, |b| {
            // check + apply per fix; the stream repeats shifted in time so it never goes late.
            let mut state = FilterState::new();
            let mut i = 0usize;
            b.iter(|| {
                let mut f = fixes[i % n];
                f.time_ms += (i / n) as i64 * span;
                i += 1;
                black_box(state.process(&cfg, black_box(&f), false, f.time_ms + 1_000))
            })
        });
    }
    let cfg = FilterConfig::default();
    let mut state = FilterState::new();
    for f in &fixes[..100] {
        state.process(&cfg, f, false, f.time_ms);
    }
    let next = fixes[100];
    g.bench_function("check_only", |b| {
        b.iter(|| {
            check(
                &cfg,
                black_box(&state),
                black_box(&next),
                false,
                next.time_ms,
            )
        })
    });
    g.finish();
}

fn fences(c: &mut Criterion) {
    let near_out = offset(650.0 * 0.8f64.cos(), 650.0 * 0.8f64.sin());
    let deep_in = offset(10.0, 20.0);
    let far = offset(5_000.0, 0.0);
    let mut g = c.benchmark_group("gps/fence");
    g.throughput(Throughput::Elements(1));
    let shapes = [
        (
            "circle".to_string(),
            Fence::circle(HOME.0, HOME.1, 500.0, 50.0).expect("valid circle"),
        ),
        ("polygon_4".to_string(), wobbly_polygon(4)),
        ("polygon_100".to_string(), wobbly_polygon(100)),
        ("polygon_1000".to_string(), wobbly_polygon(1000)),
    ];
    for (name, fence) in &shapes {
        for (what, p, want) in [
            ("near_outside", near_out, Decision::Outside),
            ("deep_inside", deep_in, Decision::Inside),
            ("far_away", far, Decision::Outside),
        ] {
            assert_eq!(fence.decide(p.0, p.1, 20.0), want, "{name} {what}");
            g.bench_with_input(BenchmarkId::new(what, name), &p, |b, p| {
                b.iter(|| fence.decide(black_box(p.0), black_box(p.1), black_box(20.0)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, filters, fences);
criterion_main!(benches);
