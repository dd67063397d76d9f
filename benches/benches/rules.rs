//! Activity rule evaluation per event: what one sensor event costs a device with rules (the
//! shard calls `Rule::input` for each of the device's rules, then `step` for those it
//! concerns), in the tenant's time zone. Also the cost for an event no rule reads, and what
//! taking readings in the order they happened costs: a reading with a full reorder span kept,
//! a late one replayed among them, and the JSON the shard writes of such a state.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vaka_core::rules::time::zone;
use vaka_core::rules::{Input, Rule, RuleRecord, RuleState, MAX_KEPT};
use vaka_core::{DeviceKey, Event, EventId, EventKind};

fn rule(json: &str) -> Rule {
    let r: RuleRecord = serde_json::from_str(json).unwrap();
    Rule::from_record(&r, "rules").unwrap()
}

fn reading(name: &str, value: f64, at: i64) -> Event {
    Event {
        device: DeviceKey::new("t", "d"),
        key: "k".into(),
        received_ms: at,
        kind: EventKind::Telemetry {
            name: name.into(),
            value,
        },
        fix: None,
        raw: Vec::new(),
        occurred_ms: None,
    }
}

fn bench_rules(c: &mut Criterion) {
    let tz = zone("Europe/Stockholm").unwrap();
    // A night-check device: four rules, as a municipality would set them.
    let rules = [
        rule(
            r#"{"id":"a","kind":"out_of_bed","sensor":"bed","window":"22:00-07:00","minutes":30}"#,
        ),
        rule(r#"{"id":"b","kind":"not_in_bed_by","sensor":"bed","at":"23:30"}"#),
        rule(r#"{"id":"c","kind":"door_at_night","sensor":"door","window":"23:00-06:00"}"#),
        rule(
            r#"{"id":"d","kind":"threshold","sensor":"temp","below":16,"minutes":120,"hysteresis":0.5}"#,
        ),
    ];
    let night = 1_768_438_800_000; // 2026-01-15T01:00:00Z, 02:00 in Stockholm
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(1));
    for (name, ev) in [
        ("bed_event_4_rules", reading("bed", 0.0, night)),
        ("temperature_event_4_rules", reading("temp", 15.0, night)),
        ("unrelated_event_4_rules", reading("battery", 80.0, night)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut fired = 0;
                for r in &rules {
                    if let Some(input) = r.input(black_box(&ev)) {
                        let mut s = RuleState::default();
                        let t = ev.received_ms;
                        fired += r.step(&mut s, input, EventId(1), t, t, &tz).unwrap().len();
                    }
                }
                fired
            })
        });
    }
    // A thermometer reading every 28 s: the 30 min reorder span holds the 64 kept at most.
    let cold = &rules[3];
    let mut full = RuleState::default();
    let mut t = night;
    for i in 0..64 {
        t += 28_000;
        let v = if i % 2 == 0 { 15.0 } else { 17.0 };
        cold.step(&mut full, Input::Value(v), EventId(i), t, t, &tz)
            .unwrap();
    }
    assert_eq!(full.order.recent.len(), MAX_KEPT);
    g.bench_function("threshold_in_order_64_kept", |b| {
        b.iter(|| {
            let mut s = full.clone();
            let at = t + 28_000;
            cold.step(&mut s, Input::Value(15.0), EventId(99), at, at, &tz)
                .unwrap()
                .len()
        })
    });
    g.bench_function("threshold_late_replayed_among_64", |b| {
        b.iter(|| {
            let mut s = full.clone();
            let at = t - 10 * 60_000;
            cold.step(&mut s, Input::Value(15.0), EventId(99), at, t, &tz)
                .unwrap()
                .len()
        })
    });
    g.bench_function("clone_state_64_kept", |b| {
        b.iter(|| black_box(&full).clone())
    });
    g.bench_function("state_json_64_kept", |b| {
        b.iter(|| serde_json::to_vec(black_box(&full)).unwrap().len())
    });
    println!(
        "rule state with 64 kept readings: {} bytes of JSON",
        serde_json::to_vec(&full).unwrap().len()
    );
    g.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
