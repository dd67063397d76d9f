//! Invariant 11 in the core: escalation waits for an away centre's reconnect grace, and a notice
//! sent again carries its alarm's current state.
use vaka_core::alarm::{
    escalation_waits_until, step, AlarmState, Context, DeadlineKind, Notice, UpdateKind,
};
use vaka_core::event::{AlarmInfo, Event, EventKind};
use vaka_core::intake::{intake, Outcome};
use vaka_core::*;

fn chain() -> Vec<CentreId> {
    ["first", "second", "third"]
        .into_iter()
        .map(CentreId::new)
        .collect()
}

fn ctx<'a>(chain: &'a [CentreId], reachable: &'a [bool], now: i64) -> Context<'a> {
    Context {
        chain,
        reachable,
        deadlines: Deadlines {
            receipt_ms: 10_000,
            accept_ms: 60_000,
        },
        now,
    }
}

/// An alarm opened at 0 with the given centres reachable.
fn open(reachable: &[bool]) -> Alarm {
    let c = chain();
    let ev = Event {
        device: DeviceKey::new("t", "d"),
        key: "r1".into(),
        received_ms: 0,
        kind: EventKind::Alarm(AlarmInfo {
            code: "0010".into(),
            priority: 3,
            text: None,
            callback: vec![],
        }),
        fix: None,
        raw: vec![],
    };
    match intake(&ev, EventId(7), [], &ctx(&c, reachable, 0)).unwrap() {
        Outcome::Opened { alarm, .. } => alarm,
        other => panic!("expected a new alarm, got {other:?}"),
    }
}

#[test]
fn a_due_deadline_waits_for_an_away_holder_within_its_grace() {
    let c = chain();
    let alarm = open(&[true, true, true]);
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
    let c = chain();
    let alarm = open(&[true, true, true]);
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
    let c = chain();
    let none = [false, false, false];
    let pending = open(&none);
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
    let c = chain();
    let all = [true, true, true];
    let offered = open(&all);
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
    let c = chain();
    let none = [false, false, false];
    let pending = open(&none);
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
