//! Engine-made geofence events through intake: an exit opens one alarm per fence (a second exit
//! while it is open repeats it), re-entry restores it, a re-entry with nothing open is only stored.
use vaka_core::alarm::{Context, UpdateKind};
use vaka_core::event::{Event, EventKind};
use vaka_core::intake::{geofence_code, intake, Outcome, GEOFENCE_PRIORITY};
use vaka_core::*;

fn fence_event(fence: &str, exit: bool, at: i64) -> Event {
    Event {
        device: DeviceKey::new("t", "d"),
        key: format!("geofence-{exit}-{fence}-{at}"),
        received_ms: at,
        kind: EventKind::Geofence {
            fence: fence.into(),
            exit,
        },
        fix: Some(vaka_core::gps::Fix::at(at, 57.72, 11.97)),
        raw: b"geofence".to_vec(),
        occurred_ms: None,
    }
}

fn run(ev: &Event, open: &[Alarm]) -> Outcome {
    let chain = [CentreId::new("c")];
    let ctx = Context {
        chain: &chain,
        reachable: &[true],
        deadlines: Deadlines::default(),
        centre_deadlines: &[],
        now: ev.received_ms,
    };
    intake(ev, EventId(ev.received_ms as u64), open, &ctx).unwrap()
}

#[test]
fn exit_opens_repeat_and_restoral_follow_per_fence() {
    let ev = fence_event("home", true, 100);
    assert_eq!(ev.lane(), Lane::Alarm);
    assert!(ev.kind.is_engine_made());
    let Outcome::Opened { alarm, effects } = run(&ev, &[]) else {
        panic!("an exit opens an alarm");
    };
    assert_eq!(alarm.kind, AlarmKind::GeofenceExit);
    assert_eq!(alarm.code, geofence_code("home"));
    assert_eq!(alarm.priority, GEOFENCE_PRIORITY);
    assert!(alarm.text.as_deref().unwrap().contains("home"));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Offer { centre, .. } if centre.as_str() == "c")));

    // Out again (after a restoral) while that alarm is still open: the same alarm repeats.
    let Outcome::Changed { alarm: again, .. } = run(
        &fence_event("home", true, 200),
        std::slice::from_ref(&alarm),
    ) else {
        panic!("a repeat");
    };
    assert_eq!((again.id, again.repeats), (alarm.id, 1));

    // Another fence is another alarm.
    assert!(matches!(
        run(
            &fence_event("school", true, 300),
            std::slice::from_ref(&alarm)
        ),
        Outcome::Opened { .. }
    ));

    // Back inside: its centre hears it is restored; the alarm stays open for the operator.
    let Outcome::Changed {
        alarm: back,
        effects,
    } = run(
        &fence_event("home", false, 400),
        std::slice::from_ref(&alarm),
    )
    else {
        panic!("a restoral");
    };
    assert!(back.is_open());
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Update {
            update: UpdateKind::Restored,
            ..
        }
    )));

    // A re-entry whose alarm was already closed: stored, nothing else.
    assert_eq!(run(&fence_event("home", false, 500), &[]), Outcome::Stored);
}
