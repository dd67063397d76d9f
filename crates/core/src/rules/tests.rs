//! Whole nights and days through the pure evaluation, driven as the shard drives it: due
//! timers first, then each event at its time.
use super::time::zone;
use super::*;
use crate::event::{Event, EventKind};
use crate::ids::{DeviceKey, EventId, UnixMillis};

fn ms(s: &str) -> UnixMillis {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn rule(json: &str) -> Rule {
    let r: RuleRecord = serde_json::from_str(json).unwrap();
    Rule::from_record(&r, "rules[0]").unwrap()
}

fn reading(name: &str, value: f64, at: UnixMillis) -> Event {
    Event {
        device: DeviceKey::new("t", "d"),
        key: format!("{name}-{at}"),
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

/// Runs `events` (time-ordered) and then time up to `until`; returns (time, outcome) in order.
fn run(
    rule: &Rule,
    events: &[Event],
    start: UnixMillis,
    until: UnixMillis,
) -> Vec<(UnixMillis, Outcome)> {
    let tz = zone("Europe/Stockholm").unwrap();
    let mut s = RuleState::default();
    rule.start(&mut s, start, &tz);
    let mut out = Vec::new();
    let due_until = |s: &mut RuleState, t: UnixMillis, out: &mut Vec<(UnixMillis, Outcome)>| {
        while let Some(d) = s.due.filter(|d| *d <= t) {
            if let Some(o) = rule.on_due(s, d, &tz) {
                out.push((d, o));
            }
            if s.due == Some(d) {
                break;
            }
        }
    };
    for (i, ev) in events.iter().enumerate() {
        due_until(&mut s, ev.received_ms, &mut out);
        if let Some(input) = rule.input(ev) {
            if let Some(o) =
                rule.on_input(&mut s, input, EventId(i as u64 + 1), ev.received_ms, &tz)
            {
                out.push((ev.received_ms, o));
            }
        }
    }
    due_until(&mut s, until, &mut out);
    out
}

fn fired(out: &[(UnixMillis, Outcome)]) -> Vec<UnixMillis> {
    out.iter()
        .filter(|(_, o)| matches!(o, Outcome::Fire { .. }))
        .map(|(t, _)| *t)
        .collect()
}

fn restored(out: &[(UnixMillis, Outcome)]) -> Vec<UnixMillis> {
    out.iter()
        .filter(|(_, o)| matches!(o, Outcome::Restore { .. }))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn out_of_bed_fires_once_after_its_minutes_and_restores() {
    let r = rule(
        r#"{"id":"bed","kind":"out_of_bed","sensor":"bed","window":"22:00-07:00","minutes":30}"#,
    );
    // Stockholm is UTC+1 in January: 02:00 local = 01:00Z.
    let evs = [
        reading("bed", 1.0, ms("2026-01-14T21:30:00Z")),
        reading("bed", 0.0, ms("2026-01-15T01:00:00Z")), // up at 02:00
        reading("bed", 0.0, ms("2026-01-15T01:10:00Z")), // still up: nothing new
        reading("bed", 1.0, ms("2026-01-15T01:45:00Z")), // back after 45 min
        reading("bed", 0.0, ms("2026-01-15T02:00:00Z")), // up again 15 min: no alarm
        reading("bed", 1.0, ms("2026-01-15T02:15:00Z")),
        reading("bed", 0.0, ms("2026-01-15T07:00:00Z")), // 08:00 local: the day, no alarm
    ];
    let out = run(
        &r,
        &evs,
        ms("2026-01-14T20:00:00Z"),
        ms("2026-01-15T12:00:00Z"),
    );
    assert_eq!(fired(&out), [ms("2026-01-15T01:30:00Z")]);
    assert_eq!(restored(&out), [ms("2026-01-15T01:45:00Z")]);
    let Outcome::Fire { causes, .. } = &out[0].1 else {
        panic!()
    };
    assert_eq!(causes, &[EventId(2)], "the getting up is the cause");
}

#[test]
fn door_at_night_follows_the_window_across_the_spring_night() {
    let r = rule(
        r#"{"id":"door","kind":"door_at_night","sensor":"front-door","window":"23:00-06:00"}"#,
    );
    // 2026-03-29, clocks forward at 02:00 CET: 06:00 local is 04:00Z that morning.
    let evs = [
        reading("front-door", 1.0, ms("2026-03-28T21:30:00Z")), // 22:30 CET: evening, nothing
        reading("front-door", 0.0, ms("2026-03-28T21:31:00Z")),
        reading("front-door", 1.0, ms("2026-03-29T03:50:00Z")), // 05:50 CEST: night
        reading("front-door", 1.0, ms("2026-03-29T03:52:00Z")), // still open: one alarm
        reading("front-door", 0.0, ms("2026-03-29T03:55:00Z")),
        reading("front-door", 1.0, ms("2026-03-29T04:05:00Z")), // 06:05 CEST: morning
    ];
    let out = run(
        &r,
        &evs,
        ms("2026-03-28T12:00:00Z"),
        ms("2026-03-29T12:00:00Z"),
    );
    assert_eq!(fired(&out), [ms("2026-03-29T03:50:00Z")]);
    assert_eq!(restored(&out), [ms("2026-03-29T03:55:00Z")]);
}

#[test]
fn not_in_bed_by_fires_at_local_time_on_the_autumn_night_and_restores_in_bed() {
    let r = rule(r#"{"id":"bedtime","kind":"not_in_bed_by","sensor":"bed","at":"23:30"}"#);
    // 2026-10-24 23:30 CEST = 21:30Z; the next night (after the change) 23:30 CET = 22:30Z.
    let evs = [
        reading("bed", 0.0, ms("2026-10-24T18:00:00Z")),
        reading("bed", 1.0, ms("2026-10-24T22:00:00Z")),
        reading("bed", 0.0, ms("2026-10-25T06:00:00Z")),
        reading("bed", 1.0, ms("2026-10-25T22:00:00Z")), // in bed before 23:30 CET
    ];
    let out = run(
        &r,
        &evs,
        ms("2026-10-24T12:00:00Z"),
        ms("2026-10-26T12:00:00Z"),
    );
    assert_eq!(fired(&out), [ms("2026-10-24T21:30:00Z")]);
    assert_eq!(restored(&out), [ms("2026-10-24T22:00:00Z")]);
}

#[test]
fn no_motion_during_the_day_counts_from_the_window_start() {
    let r = rule(
        r#"{"id":"still","kind":"no_motion","sensor":"motion","window":"08:00-20:00","hours":4}"#,
    );
    // January, UTC+1: 08:00 local = 07:00Z.
    let evs = [
        reading("motion", 1.0, ms("2026-01-15T05:00:00Z")), // 06:00 local, before the window
        reading("motion", 1.0, ms("2026-01-15T08:00:00Z")), // 09:00: quiet until 13:00 fires
        reading("motion", 1.0, ms("2026-01-15T13:00:00Z")), // 14:00: restores; quiet until 18:00
        reading("motion", 1.0, ms("2026-01-15T17:30:00Z")), // 18:30: restores
    ];
    // The next day nothing moves: 4 h after the window opens (12:00 local) it fires.
    let out = run(
        &r,
        &evs,
        ms("2026-01-15T00:00:00Z"),
        ms("2026-01-16T12:00:00Z"),
    );
    assert_eq!(
        fired(&out),
        [
            ms("2026-01-15T12:00:00Z"),
            ms("2026-01-15T17:00:00Z"),
            ms("2026-01-16T11:00:00Z")
        ]
    );
    assert_eq!(
        restored(&out),
        [ms("2026-01-15T13:00:00Z"), ms("2026-01-15T17:30:00Z")]
    );
}

#[test]
fn missed_dose_by_timeout_or_by_the_robot_and_restored_by_taking_it() {
    let r = rule(
        r#"{"id":"dose","kind":"missed_dose","due":"dose-due","taken":"dose-taken","missed":"dose-missed","minutes":30}"#,
    );
    let evs = [
        reading("dose-due", 1.0, ms("2026-01-15T07:00:00Z")),
        reading("dose-taken", 1.0, ms("2026-01-15T07:10:00Z")), // taken in time
        reading("dose-due", 1.0, ms("2026-01-15T12:00:00Z")),   // not taken: fires 12:30
        reading("dose-taken", 1.0, ms("2026-01-15T12:50:00Z")), // restores
        reading("dose-missed", 1.0, ms("2026-01-15T18:00:00Z")), // the robot says so: at once
    ];
    let out = run(
        &r,
        &evs,
        ms("2026-01-15T00:00:00Z"),
        ms("2026-01-16T00:00:00Z"),
    );
    assert_eq!(
        fired(&out),
        [ms("2026-01-15T12:30:00Z"), ms("2026-01-15T18:00:00Z")]
    );
    assert_eq!(restored(&out), [ms("2026-01-15T12:50:00Z")]);
}

#[test]
fn threshold_with_duration_and_hysteresis() {
    let r = rule(
        r#"{"id":"cold","kind":"threshold","sensor":"temperature","below":16.0,"minutes":120,"hysteresis":0.5}"#,
    );
    let h = |n: i64| ms("2026-01-15T00:00:00Z") + n * 3_600_000;
    let evs = [
        reading("temperature", 15.0, h(1)), // cold from 01:00
        reading("temperature", 16.2, h(2)), // inside the hysteresis band: still pending
        reading("temperature", 15.5, h(2) + 1),
        reading("temperature", 16.2, h(4)), // fired at 03:00; 16.2 is not back yet
        reading("temperature", 16.6, h(5)), // back: restores
        reading("temperature", 15.0, h(6)), // cold again, warm within 2 h: nothing
        reading("temperature", 17.0, h(7)),
    ];
    let out = run(&r, &evs, h(0), h(12));
    assert_eq!(fired(&out), [h(3)]);
    assert_eq!(restored(&out), [h(5)]);
}

#[test]
fn a_restart_continues_from_the_persisted_state() {
    // Waiting for a dose when the engine stops; it restarts after the due time: the timer
    // fires at once (the shard arms it from the persisted state).
    let r = rule(
        r#"{"id":"dose","kind":"missed_dose","due":"dose-due","taken":"dose-taken","minutes":30}"#,
    );
    let tz = zone("Europe/Stockholm").unwrap();
    let mut s = RuleState::default();
    let t = ms("2026-01-15T12:00:00Z");
    r.on_input(&mut s, Input::DoseDue, EventId(7), t, &tz);
    let persisted = serde_json::to_string(&s).unwrap();
    let mut back: RuleState = serde_json::from_str(&persisted).unwrap();
    let restart = t + 45 * 60_000;
    let out = r.on_due(&mut back, restart, &tz);
    assert!(matches!(out, Some(Outcome::Fire { ref causes, .. }) if causes == &[EventId(7)]));
    assert!(
        r.on_due(&mut back, restart + 1, &tz).is_none(),
        "fires once"
    );
}

#[test]
fn bad_rules_are_named_by_field() {
    let rec = |j: &str| serde_json::from_str::<RuleRecord>(j).unwrap();
    let fields = |p: Problems| p.into_iter().map(|(f, _)| f).collect::<Vec<_>>();
    let p = check_rules(
        &[
            rec(r#"{"id":"a","kind":"out_of_bed","window":"22:00-22:00","minutes":0}"#),
            rec(r#"{"id":"a","kind":"no_motion","sensor":"m","window":"08:00-10:00","hours":3}"#),
            rec(r#"{"id":"c","kind":"teleport"}"#),
            rec(r#"{"id":"d","kind":"threshold","sensor":"t","below":20,"above":10}"#),
        ],
        "rules",
    );
    assert_eq!(
        fields(p),
        [
            "rules[0].sensor",
            "rules[0].window",
            "rules[0].minutes",
            "rules[1].hours",
            "rules[1].id",
            "rules[2].kind",
            "rules[3].below",
        ]
    );
}
