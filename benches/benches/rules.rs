//! Activity rule evaluation per event: what one sensor event costs a device with rules (the
//! shard calls `Rule::input` for each of the device's rules, then `on_input` for those it
//! concerns), in the tenant's time zone. Also the cost for an event no rule reads.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vaka_core::rules::time::zone;
use vaka_core::rules::{Rule, RuleRecord, RuleState};
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
                        if r.on_input(&mut s, input, EventId(1), ev.received_ms, &tz)
                            .is_some()
                        {
                            fired += 1;
                        }
                    }
                }
                fired
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
