//! One rule's state and how events and time move it. Deterministic: the same inputs at the
//! same times give the same outcomes; the state is plain data the shard persists, so a restart
//! continues where it stopped (a timer that came due while the engine was down fires at start).
use super::time::{next_at, Window};
use super::{Rule, RuleKind};
use crate::event::{Event, EventKind};
use crate::ids::{EventId, UnixMillis};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

const MINUTE: i64 = 60_000;
/// Causes kept per firing, for the audit (the most recent).
const MAX_CAUSES: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Watching; nothing pending.
    #[default]
    Armed,
    /// The condition began; it fires at `due` unless it ends first.
    Waiting,
    /// Fired; its alarm is open until the condition ends.
    Fired,
}

/// A rule's state on one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub phase: Phase,
    /// When the rule is next to be looked at (its timer), if at all.
    pub due: Option<UnixMillis>,
    /// Since when the condition holds (waiting or fired).
    pub since: Option<UnixMillis>,
    /// The last sensor reading, if any.
    pub last: Option<f64>,
    /// The last motion (no_motion).
    pub last_motion: Option<UnixMillis>,
    /// The events that led to the pending or fired condition (the firing's audit).
    pub causes: Vec<EventId>,
    /// The inputs kept to put a late one in its place (`order`).
    #[serde(default, skip_serializing_if = "Reorder::is_empty")]
    pub order: Reorder,
}

/// What a rule keeps to take inputs in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reorder {
    /// Device time of the newest input taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_at: Option<UnixMillis>,
    /// The inputs of the last [`super::order::REORDER_MS`] of device time, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Kept>,
    /// The state before the first of `recent`, and the time of the last input folded into it
    /// (nothing earlier can be put in its place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Box<RuleState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_at: Option<UnixMillis>,
}

impl Reorder {
    pub fn is_empty(&self) -> bool {
        *self == Reorder::default()
    }
}

/// An input kept for reordering.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub at: UnixMillis,
    pub input: Input,
    pub id: EventId,
}

/// What an event is to a rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A reading of the rule's sensor.
    Value(f64),
    DoseDue,
    DoseTaken,
    DoseMissed,
}

/// What the shard does with a step's result.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Raise the rule's alarm.
    Fire { text: String, causes: Vec<EventId> },
    /// End it.
    Restore { text: String },
}

impl Rule {
    /// What `ev` is to this rule, if anything.
    pub fn input(&self, ev: &Event) -> Option<Input> {
        let (name, value) = match &ev.kind {
            EventKind::Telemetry { name, value } => (name.as_str(), Some(*value)),
            EventKind::Alarm(a) => (a.code.as_str(), None),
            EventKind::Technical { code, .. } => (code.as_str(), None),
            _ => return None,
        };
        if let RuleKind::MissedDose {
            due, taken, missed, ..
        } = &self.kind
        {
            return if name == due {
                Some(Input::DoseDue)
            } else if name == taken {
                Some(Input::DoseTaken)
            } else if missed.as_deref() == Some(name) {
                Some(Input::DoseMissed)
            } else {
                None
            };
        }
        if self.sensor.as_deref() == Some(name) {
            value.map(Input::Value)
        } else if self.sensor_off.as_deref() == Some(name) {
            Some(Input::Value(0.0))
        } else {
            None
        }
    }

    /// Sets the first timer of a new state (rules that look at the clock on their own).
    pub fn start(&self, s: &mut RuleState, now: UnixMillis, tz: &TimeZone) {
        match &self.kind {
            RuleKind::NotInBedBy { at } => s.due = Some(next_at(now, *at, tz)),
            RuleKind::NoMotion { window, hours } => {
                s.due = no_motion_due(s, *window, *hours, now, tz)
            }
            _ => {}
        }
    }

    /// An event (`id`, at `now`) that is `input` to this rule.
    pub fn on_input(
        &self,
        s: &mut RuleState,
        input: Input,
        id: EventId,
        now: UnixMillis,
        tz: &TimeZone,
    ) -> Option<Outcome> {
        let fired = s.phase == Phase::Fired;
        match (&self.kind, input) {
            (RuleKind::OutOfBed { window, minutes }, Input::Value(v)) => {
                s.last = Some(v);
                if v == 0.0 {
                    if s.phase == Phase::Armed && window.contains(now, tz) {
                        wait(s, id, now, now + i64::from(*minutes) * MINUTE);
                    }
                    None
                } else {
                    end(s, fired, "back in bed")
                }
            }
            (RuleKind::NotInBedBy { .. }, Input::Value(v)) => {
                s.last = Some(v);
                if v != 0.0 {
                    s.causes.clear();
                    if fired {
                        s.phase = Phase::Armed;
                        s.since = None;
                        return Some(Outcome::Restore {
                            text: "in bed".into(),
                        });
                    }
                }
                None
            }
            (RuleKind::DoorAtNight { window }, Input::Value(v)) => {
                s.last = Some(v);
                if v != 0.0 {
                    if !fired && window.contains(now, tz) {
                        s.causes = vec![id];
                        return fire(s, now, "front door opened at night");
                    }
                    None
                } else {
                    end(s, fired, "door closed")
                }
            }
            (RuleKind::NoMotion { window, hours }, Input::Value(v)) => {
                if v == 0.0 {
                    return None;
                }
                s.last_motion = Some(now);
                let out = end(s, fired, "motion again");
                s.due = no_motion_due(s, *window, *hours, now, tz);
                out
            }
            (RuleKind::MissedDose { minutes, .. }, Input::DoseDue) => {
                if s.phase == Phase::Armed {
                    wait(s, id, now, now + i64::from(*minutes) * MINUTE);
                }
                None
            }
            (RuleKind::MissedDose { .. }, Input::DoseTaken) => end(s, fired, "dose taken"),
            (RuleKind::MissedDose { .. }, Input::DoseMissed) => {
                if fired {
                    return None;
                }
                push_cause(s, id);
                fire(s, now, "the medication robot reports a missed dose")
            }
            (
                RuleKind::Threshold {
                    below,
                    above,
                    minutes,
                    hysteresis,
                },
                Input::Value(v),
            ) => {
                s.last = Some(v);
                let out = below.is_some_and(|b| v < b) || above.is_some_and(|a| v > a);
                let back = below.is_none_or(|b| v >= b + hysteresis)
                    && above.is_none_or(|a| v <= a - hysteresis);
                match s.phase {
                    Phase::Armed if out => {
                        wait(s, id, now, now + i64::from(*minutes) * MINUTE);
                        if *minutes == 0 {
                            return self.on_due(s, now, tz);
                        }
                        None
                    }
                    Phase::Waiting if back => end(s, false, ""),
                    Phase::Waiting | Phase::Fired if out => {
                        push_cause(s, id);
                        None
                    }
                    Phase::Fired if back => end(s, true, &format!("back in range: {v}")),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The rule's timer came due at or before `now`.
    pub fn on_due(&self, s: &mut RuleState, now: UnixMillis, tz: &TimeZone) -> Option<Outcome> {
        if s.due.is_none_or(|d| d > now) {
            return None;
        }
        match &self.kind {
            RuleKind::NotInBedBy { at } => {
                s.due = Some(next_at(now + 1, *at, tz));
                if s.phase == Phase::Fired || s.last.is_some_and(|v| v != 0.0) {
                    return None;
                }
                fire(s, now, "not in bed by the set time")
            }
            RuleKind::NoMotion { window, hours } => {
                let quiet_since = s
                    .last_motion
                    .is_none_or(|m| m + i64::from(*hours) * 3_600_000 <= now);
                let out = if s.phase != Phase::Fired && quiet_since && window.contains(now - 1, tz)
                {
                    fire(s, now, &format!("no motion for {hours} h"))
                } else {
                    None
                };
                // The next day's window counts from its start.
                s.due = if s.phase == Phase::Fired {
                    None
                } else {
                    no_motion_due(s, *window, *hours, now + 1, tz)
                };
                out
            }
            RuleKind::OutOfBed { minutes, .. } if s.phase == Phase::Waiting => {
                fire(s, now, &format!("out of bed for over {minutes} min"))
            }
            RuleKind::MissedDose { minutes, .. } if s.phase == Phase::Waiting => {
                fire(s, now, &format!("dose not taken within {minutes} min"))
            }
            RuleKind::Threshold { minutes, .. } if s.phase == Phase::Waiting => {
                let v = s.last.unwrap_or(f64::NAN);
                fire(
                    s,
                    now,
                    &format!("reading {v} out of range for {minutes} min"),
                )
            }
            _ => {
                s.due = None;
                None
            }
        }
    }
}

fn push_cause(s: &mut RuleState, id: EventId) {
    if s.causes.len() == MAX_CAUSES {
        s.causes.remove(0);
    }
    s.causes.push(id);
}

fn wait(s: &mut RuleState, id: EventId, now: UnixMillis, due: UnixMillis) {
    s.phase = Phase::Waiting;
    s.since = Some(now);
    s.due = Some(due);
    s.causes = vec![id];
}

fn fire(s: &mut RuleState, now: UnixMillis, text: &str) -> Option<Outcome> {
    s.phase = Phase::Fired;
    s.since.get_or_insert(now);
    if !matches!(s.due, Some(d) if d > now) {
        s.due = None;
    }
    Some(Outcome::Fire {
        text: text.to_owned(),
        causes: s.causes.clone(),
    })
}

/// The condition ended: a fired rule restores, a waiting one goes back to watching.
fn end(s: &mut RuleState, fired: bool, text: &str) -> Option<Outcome> {
    let (last, last_motion) = (s.last, s.last_motion);
    *s = RuleState {
        last,
        last_motion,
        order: std::mem::take(&mut s.order),
        ..RuleState::default()
    };
    if fired {
        Some(Outcome::Restore {
            text: text.to_owned(),
        })
    } else {
        None
    }
}

/// When a no-motion rule is next to be looked at: `hours` after the later of the last motion
/// and the start of the window occurrence around (or after) `now`, if that is inside it;
/// otherwise the same for the next occurrence.
fn no_motion_due(
    s: &RuleState,
    window: Window,
    hours: u32,
    now: UnixMillis,
    tz: &TimeZone,
) -> Option<UnixMillis> {
    let span = i64::from(hours) * 3_600_000;
    let mut from = now;
    for _ in 0..3 {
        let (start, end) = window.around_or_next(from, tz);
        let due = s.last_motion.map_or(start, |m| m.max(start)) + span;
        if due <= end {
            return Some(due.max(now));
        }
        from = end;
    }
    None
}
