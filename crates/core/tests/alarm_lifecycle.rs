//! The alarm state machine, driven through its public API: offers, receipts, escalation, unhandled,
//! repeats and resets.
use vaka_core::alarm::{
    escalation_waits_until, step, Context, DeadlineKind, Notice, TransitionError, UpdateKind,
};
use vaka_core::event::{AlarmInfo, Event, EventKind};
use vaka_core::intake::{intake, Outcome};
use vaka_core::*;

fn chain() -> Vec<CentreId> {
    vec![CentreId::new("primary"), CentreId::new("backup")]
}

fn ctx<'a>(chain: &'a [CentreId], reachable: &'a [bool], now: i64) -> Context<'a> {
    Context {
        chain,
        reachable,
        deadlines: Deadlines {
            receipt_ms: 10_000,
            accept_ms: 60_000,
        },
        centre_deadlines: &[],
        now,
    }
}

fn alarm_event(key: &str, at: i64) -> Event {
    Event {
        device: DeviceKey::new("t", "d"),
        key: key.into(),
        received_ms: at,
        kind: EventKind::Alarm(AlarmInfo {
            code: "0010".into(),
            priority: 3,
            text: None,
            callback: vec![],
        }),
        fix: None,
        raw: vec![],
        occurred_ms: None,
    }
}

fn open(reachable: &[bool]) -> (Alarm, Vec<Effect>) {
    let c = chain();
    match intake(
        &alarm_event("r1", 0),
        EventId(7),
        [],
        &ctx(&c, reachable, 0),
    )
    .unwrap()
    {
        Outcome::Opened { alarm, effects } => (alarm, effects),
        other => panic!("expected a new alarm, got {other:?}"),
    }
}

fn offers(fx: &[Effect]) -> Vec<(String, bool)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Offer { centre, unhandled } => Some((centre.to_string(), *unhandled)),
            _ => None,
        })
        .collect()
}

#[test]
fn new_alarm_is_offered_to_first_reachable_centre_with_receipt_deadline() {
    let (a, fx) = open(&[true, true]);
    assert_eq!(a.id, AlarmId(7));
    assert_eq!(
        a.state,
        AlarmState::Offered {
            centre: CentreId::new("primary")
        }
    );
    assert_eq!(offers(&fx), vec![("primary".into(), false)]);
    assert_eq!(a.deadline.unwrap().kind, DeadlineKind::Receipt);
    assert_eq!(a.deadline.unwrap().at_ms, 10_000);
}

#[test]
fn disconnected_centre_is_skipped_at_once() {
    let (a, fx) = open(&[false, true]);
    assert_eq!(offers(&fx), vec![("backup".into(), false)]);
    assert_eq!(a.step, 1);
}

#[test]
fn nobody_reachable_stays_pending_then_goes_unhandled_at_the_deadline() {
    let c = chain();
    let (a, fx) = open(&[false, false]);
    assert_eq!(a.state, AlarmState::Pending);
    assert!(offers(&fx).is_empty());
    // A centre connects before the deadline: offered.
    let (b, fx) = step(&a, &AlarmInput::Dispatch, &ctx(&c, &[true, false], 5_000)).unwrap();
    assert_eq!(offers(&fx), vec![("primary".into(), false)]);
    assert!(matches!(b.state, AlarmState::Offered { .. }));
    // Nobody connects: unhandled, loudly.
    let (u, fx) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &[false, false], 10_000),
    )
    .unwrap();
    assert_eq!(u.state, AlarmState::Unhandled);
    assert!(fx.contains(&Effect::Unhandled));
}

#[test]
fn receipt_then_accept_stops_the_deadlines() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    let primary = CentreId::new("primary");
    let (a, _) = step(
        &a,
        &AlarmInput::Receipt {
            centre: primary.clone(),
        },
        &ctx(&c, &r, 1_000),
    )
    .unwrap();
    assert_eq!(a.deadline.unwrap().kind, DeadlineKind::Accept);
    assert_eq!(a.deadline.unwrap().at_ms, 61_000);
    // Nobody can have reached the person before an operator took the alarm.
    let early = AlarmInput::Attended {
        centre: primary.clone(),
    };
    assert!(step(&a, &early, &ctx(&c, &r, 1_500)).is_err());
    let (a, fx) = step(
        &a,
        &AlarmInput::Accept {
            centre: primary.clone(),
            operator: "op1".into(),
        },
        &ctx(&c, &r, 2_000),
    )
    .unwrap();
    assert!(a.deadline.is_none());
    assert!(fx.contains(&Effect::ClearDeadline));
    // The old deadline firing late changes nothing.
    let (same, fx) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Accept,
        },
        &ctx(&c, &r, 61_000),
    )
    .unwrap();
    assert_eq!(same, a);
    assert!(fx.is_empty());
    // The responder reaches the person: attended, once (a second report changes nothing).
    let attended = AlarmInput::Attended {
        centre: primary.clone(),
    };
    let (a, fx) = step(&a, &attended, &ctx(&c, &r, 2_500)).unwrap();
    assert_eq!(a.stages.attended_ms, Some(2_500));
    assert_eq!(fx.len(), 1, "one audit record: {fx:?}");
    let (again, fx) = step(&a, &attended, &ctx(&c, &r, 2_700)).unwrap();
    assert_eq!(again.stages.attended_ms, Some(2_500));
    assert!(fx.is_empty());
    let (closed, _) = step(
        &a,
        &AlarmInput::Close {
            centre: primary,
            outcome: "visited".into(),
        },
        &ctx(&c, &r, 3_000),
    )
    .unwrap();
    assert!(closed.state.is_final());
    // Each stage keeps the time it was first reached; durable is the shard's to set.
    assert_eq!(
        closed.stages,
        vaka_core::alarm::Stages {
            durable_ms: None,
            offered_ms: Some(0),
            receipted_ms: Some(1_000),
            accepted_ms: Some(2_000),
            attended_ms: Some(2_500),
            closed_ms: Some(3_000),
        }
    );
}

#[test]
fn escalation_through_the_chain_to_unhandled() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    // Primary never answers: backup gets it, priority raised, primary told.
    let (a, fx) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &r, 10_000),
    )
    .unwrap();
    assert_eq!(offers(&fx), vec![("backup".into(), false)]);
    assert!(fx.contains(&Effect::Update {
        centre: CentreId::new("primary"),
        update: UpdateKind::EscalatedElsewhere
    }));
    assert_eq!(a.priority, 4);
    // Backup receives but no operator accepts: escalates past the end -> unhandled everywhere.
    let (a, _) = step(
        &a,
        &AlarmInput::Receipt {
            centre: CentreId::new("backup"),
        },
        &ctx(&c, &r, 11_000),
    )
    .unwrap();
    let (a, fx) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Accept,
        },
        &ctx(&c, &r, 71_000),
    )
    .unwrap();
    assert_eq!(a.state, AlarmState::Unhandled);
    assert_eq!(a.priority, 5);
    assert!(fx.contains(&Effect::Unhandled));
    assert_eq!(
        offers(&fx),
        vec![("primary".into(), true), ("backup".into(), true)]
    );
    // Any centre may take an unhandled alarm; the others hear that it is taken.
    let (a, fx) = step(
        &a,
        &AlarmInput::Accept {
            centre: CentreId::new("primary"),
            operator: "op9".into(),
        },
        &ctx(&c, &r, 72_000),
    )
    .unwrap();
    assert!(matches!(a.state, AlarmState::Accepted { .. }));
    assert!(fx.contains(&Effect::Update {
        centre: CentreId::new("backup"),
        update: UpdateKind::TakenElsewhere
    }));
    // Escalation does not move the first offer or the first receipt.
    assert_eq!(a.stages.offered_ms, Some(0));
    assert_eq!(a.stages.receipted_ms, Some(11_000));
    assert_eq!(a.stages.accepted_ms, Some(72_000));
}

#[test]
fn an_alarm_nobody_could_take_is_offered_when_it_goes_unhandled() {
    let c = chain();
    let r = [false, false];
    let (a, _) = open(&r);
    assert_eq!(a.stages.offered_ms, None);
    let (a, _) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &r, 10_000),
    )
    .unwrap();
    assert_eq!(a.state, AlarmState::Unhandled);
    assert_eq!(a.stages.offered_ms, Some(10_000));
    let (a, _) = step(&a, &AlarmInput::DeviceCancel, &ctx(&c, &r, 12_000)).unwrap();
    assert_eq!(a.stages.closed_ms, Some(12_000));
}

#[test]
fn only_the_holder_may_act() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    let err = step(
        &a,
        &AlarmInput::Accept {
            centre: CentreId::new("backup"),
            operator: "x".into(),
        },
        &ctx(&c, &r, 1),
    )
    .unwrap_err();
    assert!(matches!(err, TransitionError::NotHolder { .. }));
}

#[test]
fn repeat_updates_the_open_alarm_instead_of_a_second_offer() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    let out = intake(&alarm_event("r2", 500), EventId(8), [&a], &ctx(&c, &r, 500)).unwrap();
    match out {
        Outcome::Changed { alarm, effects } => {
            assert_eq!(alarm.id, a.id);
            assert_eq!(alarm.repeats, 1);
            assert_eq!(alarm.priority, 4);
            assert!(offers(&effects).is_empty());
            assert!(effects.contains(&Effect::Update {
                centre: CentreId::new("primary"),
                update: UpdateKind::Repeated
            }));
        }
        other => panic!("expected a repeat, got {other:?}"),
    }
}

#[test]
fn reset_cancels_the_alarm_with_that_reference() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    let mut reset = alarm_event("r9", 900);
    reset.kind = EventKind::Reset {
        reference: "r1".into(),
    };
    match intake(&reset, EventId(9), [&a], &ctx(&c, &r, 900)).unwrap() {
        Outcome::Changed { alarm, effects } => {
            assert_eq!(alarm.state, AlarmState::Cancelled);
            assert!(effects.contains(&Effect::Update {
                centre: CentreId::new("primary"),
                update: UpdateKind::CancelledByDevice
            }));
        }
        other => panic!("expected a cancel, got {other:?}"),
    }
    reset.kind = EventKind::Reset {
        reference: "nope".into(),
    };
    assert_eq!(
        intake(&reset, EventId(10), [&a], &ctx(&c, &r, 900)).unwrap(),
        Outcome::NothingToCancel
    );
}

#[test]
fn final_alarms_refuse_further_input() {
    let c = chain();
    let r = [true, true];
    let (a, _) = open(&r);
    let (a, _) = step(&a, &AlarmInput::DeviceCancel, &ctx(&c, &r, 1)).unwrap();
    assert!(matches!(
        step(&a, &AlarmInput::Dispatch, &ctx(&c, &r, 2)),
        Err(TransitionError::Final(..))
    ));
}

#[test]
fn same_inputs_same_outputs() {
    // Invariant 10 in miniature: the machine has no hidden state or clock.
    let c = chain();
    let r = [false, true];
    let run = || {
        let (a, f1) = open(&r);
        let (b, f2) = step(
            &a,
            &AlarmInput::DeadlineExpired {
                kind: DeadlineKind::Receipt,
            },
            &ctx(&c, &r, 10_000),
        )
        .unwrap();
        (a, f1, b, f2)
    };
    assert_eq!(run(), run());
}

// Invariant 11: escalation waits for an away centre's reconnect grace, and a notice sent again
// carries its alarm's current state.

fn chain3() -> Vec<CentreId> {
    ["first", "second", "third"]
        .into_iter()
        .map(CentreId::new)
        .collect()
}

/// An alarm of a three-centre chain opened at 0 with the given centres reachable.
fn open3(reachable: &[bool]) -> Alarm {
    let c = chain3();
    match intake(
        &alarm_event("r1", 0),
        EventId(7),
        [],
        &ctx(&c, reachable, 0),
    )
    .unwrap()
    {
        Outcome::Opened { alarm, .. } => alarm,
        other => panic!("expected a new alarm, got {other:?}"),
    }
}

#[test]
fn a_due_deadline_waits_for_an_away_holder_within_its_grace() {
    let c = chain3();
    let alarm = open3(&[true, true, true]);
    assert_eq!(alarm.holder(), Some(&c[0]));
    // The holder is away (a restart, a dropped stream) and may be back until 15 s.
    let none = [false, false, false];
    let back_by = [Some(15_000), Some(15_000), Some(15_000)];
    assert_eq!(
        escalation_waits_until(&alarm, &ctx(&c, &none, 12_000), &back_by),
        Some(15_000)
    );
    // Grace over: escalate now.
    assert_eq!(
        escalation_waits_until(&alarm, &ctx(&c, &none, 15_000), &back_by),
        None
    );
    // The holder connected but slow: its deadline applies at once.
    let up = [true, false, true];
    let back = [None, Some(9_000), None];
    assert_eq!(
        escalation_waits_until(&alarm, &ctx(&c, &up, 12_000), &back),
        None
    );
}

#[test]
fn escalation_waits_for_the_next_centre_it_would_skip_but_not_beyond_the_first_reachable() {
    let c = chain3();
    let alarm = open3(&[true, true, true]);
    // Holder connected and slow; the second is away in its grace: wait for it, keep the order.
    let r = [true, false, true];
    assert_eq!(
        escalation_waits_until(&alarm, &ctx(&c, &r, 12_000), &[None, Some(14_000), None]),
        Some(14_000)
    );
    // The second is connected: nothing to wait for, even if the third is away.
    let r = [true, true, false];
    assert_eq!(
        escalation_waits_until(&alarm, &ctx(&c, &r, 12_000), &[None, None, Some(14_000)]),
        None
    );
    // Earliest grace first.
    let r = [false, false, false];
    assert_eq!(
        escalation_waits_until(
            &alarm,
            &ctx(&c, &r, 12_000),
            &[Some(20_000), Some(13_000), Some(30_000)]
        ),
        Some(13_000)
    );
}

#[test]
fn a_pending_alarm_waits_for_any_centre_of_its_chain_and_final_ones_never_wait() {
    let c = chain3();
    let none = [false, false, false];
    let pending = open3(&none);
    assert_eq!(pending.state, AlarmState::Pending);
    let back_by = [None, None, Some(5_000)];
    assert_eq!(
        escalation_waits_until(&pending, &ctx(&c, &none, 1_000), &back_by),
        Some(5_000)
    );
    // The pending alarm's receipt deadline at 10 s: after every grace, it turns unhandled.
    let (unhandled, _) = step(
        &pending,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &none, 10_000),
    )
    .unwrap();
    assert_eq!(unhandled.state, AlarmState::Unhandled);
    assert_eq!(
        escalation_waits_until(&unhandled, &ctx(&c, &none, 1_000), &back_by),
        None
    );
}

#[test]
fn a_notice_sent_again_carries_the_alarms_current_state() {
    let c = chain3();
    let all = [true, true, true];
    let offered = open3(&all);
    let offer = Notice::Offer {
        alarm: offered.clone(),
        unhandled: false,
    };
    let input = |i| step(&offered, &i, &ctx(&c, &all, 1_000)).unwrap().0;
    // Still with this centre: an offer, with the newer state.
    let receipted = input(AlarmInput::Receipt {
        centre: c[0].clone(),
    });
    assert_eq!(
        offer.refreshed(&receipted, &c[0]),
        Notice::Offer {
            alarm: receipted.clone(),
            unhandled: false
        }
    );
    // Closed by this centre since: its latest update, not a fresh offer.
    let closed = input(AlarmInput::Close {
        centre: c[0].clone(),
        outcome: "ok".into(),
    });
    assert_eq!(
        offer.refreshed(&closed, &c[0]),
        Notice::Update {
            alarm: closed.clone(),
            update: UpdateKind::Closed
        }
    );
    let cancelled = input(AlarmInput::DeviceCancel);
    assert_eq!(
        offer.refreshed(&cancelled, &c[0]),
        Notice::Update {
            alarm: cancelled.clone(),
            update: UpdateKind::CancelledByDevice
        }
    );
    let escalated = input(AlarmInput::Refuse {
        centre: c[0].clone(),
        reason: "busy".into(),
    });
    assert_eq!(escalated.holder(), Some(&c[1]));
    assert_eq!(
        offer.refreshed(&escalated, &c[0]),
        Notice::Update {
            alarm: escalated.clone(),
            update: UpdateKind::EscalatedElsewhere
        }
    );
    // The centre it went to still gets it as an offer.
    assert!(matches!(
        offer.refreshed(&escalated, &c[1]),
        Notice::Offer {
            unhandled: false,
            ..
        }
    ));
    // An update keeps its kind and carries the current alarm.
    let update = Notice::Update {
        alarm: offered.clone(),
        update: UpdateKind::Repeated,
    };
    assert_eq!(
        update.refreshed(&closed, &c[0]),
        Notice::Update {
            alarm: closed,
            update: UpdateKind::Repeated
        }
    );
}

#[test]
fn an_unhandled_offer_taken_elsewhere_is_sent_again_as_taken_elsewhere() {
    let c = chain3();
    let none = [false, false, false];
    let pending = open3(&none);
    let (unhandled, _) = step(
        &pending,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &none, 10_000),
    )
    .unwrap();
    let offer = Notice::Offer {
        alarm: unhandled.clone(),
        unhandled: true,
    };
    assert!(matches!(
        offer.refreshed(&unhandled, &c[2]),
        Notice::Offer {
            unhandled: true,
            ..
        }
    ));
    let (taken, _) = step(
        &unhandled,
        &AlarmInput::Accept {
            centre: c[1].clone(),
            operator: "op".into(),
        },
        &ctx(&c, &[true, true, true], 11_000),
    )
    .unwrap();
    assert_eq!(
        offer.refreshed(&taken, &c[2]),
        Notice::Update {
            alarm: taken.clone(),
            update: UpdateKind::TakenElsewhere
        }
    );
    // The centre whose operator took it sees it as its own.
    assert!(matches!(
        offer.refreshed(&taken, &c[1]),
        Notice::Offer { .. }
    ));
}

/// A test alarm never escalates: a missed deadline, a refusal or a lost centre ends it where it
/// is (Expired, its centre told), and it never becomes unhandled.
#[test]
fn a_test_alarm_expires_instead_of_escalating() {
    let c = chain();
    let r = [true, true];
    let primary = CentreId::new("primary");
    let (mut a, _) = open(&r);
    a.test = true;
    let (expired, fx) = step(
        &a,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &r, 10_000),
    )
    .unwrap();
    assert_eq!(expired.state, AlarmState::Expired);
    assert!(expired.state.is_final() && expired.deadline.is_none());
    assert_eq!(
        expired.priority, a.priority,
        "not raised as an escalation would"
    );
    assert_eq!(offers(&fx), vec![], "offered to nobody else");
    assert!(fx.contains(&Effect::Update {
        centre: primary.clone(),
        update: UpdateKind::Expired
    }));
    assert_eq!(expired.stages.closed_ms, Some(10_000));
    // Its repeats are kept but not sent: a testing device cannot fill a centre's stream.
    let (repeated, fx) =
        step(&a, &AlarmInput::Repeat { priority: 5 }, &ctx(&c, &r, 1_000)).unwrap();
    assert_eq!(repeated.repeats, 1);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Update { .. })),
        "{fx:?}"
    );
    // A refusal or the centre going away ends it the same way.
    for input in [
        AlarmInput::Refuse {
            centre: primary.clone(),
            reason: "busy".into(),
        },
        AlarmInput::CentreLost {
            centre: primary.clone(),
        },
    ] {
        let (next, fx) = step(&a, &input, &ctx(&c, &r, 5_000)).unwrap();
        assert_eq!(next.state, AlarmState::Expired, "{input:?}");
        assert_eq!(offers(&fx), vec![]);
    }
    // With nobody reachable it stays pending, then expires rather than going unhandled.
    let none = [false, false];
    let (mut p, _) = open(&none);
    p.test = true;
    let (p, fx) = step(
        &p,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &none, 10_000),
    )
    .unwrap();
    assert_eq!(p.state, AlarmState::Expired);
    assert!(!fx.contains(&Effect::Unhandled));
    // A real alarm in the same place escalates (the contrast).
    let (real, _) = open(&r);
    let (real, _) = step(
        &real,
        &AlarmInput::DeadlineExpired {
            kind: DeadlineKind::Receipt,
        },
        &ctx(&c, &r, 10_000),
    )
    .unwrap();
    assert_eq!(
        real.state,
        AlarmState::Offered {
            centre: CentreId::new("backup")
        }
    );
}

/// Erasure keeps an alarm's facts and the engine's fixed phrases (statistics read them) and
/// removes what a device or a centre wrote about the person.
#[test]
fn erasure_keeps_the_facts_and_drops_the_free_text() {
    use vaka_core::alarm::{AuditRecord, ERASED};
    let record = |actor: &str, action: &str, reason: &str| AuditRecord {
        alarm: AlarmId(1),
        at_ms: 5,
        actor: actor.into(),
        action: action.into(),
        reason: reason.into(),
    };
    let closed = record(
        "centre:c1",
        "closed",
        "visited: found on the floor, dementia",
    );
    assert_eq!(closed.erased().reason, ERASED);
    let refused = record(
        "engine",
        "escalated",
        "refused by c1: daughter says she is away",
    );
    assert_eq!(refused.erased().reason, "refused by c1: erased");
    for kept in [
        record("engine", "unhandled", "no receipt within 60 s"),
        record("device", "cancelled", "reset by device"),
        record("operator:op", "accepted", "c1"),
        record("centre:c1", "receipt", "unhandled"),
    ] {
        assert_eq!(kept.erased(), kept);
    }
}
