//! The alarm and its lifecycle as a pure state machine.
//!
//! `pending → offered(centre) → receipted(centre) → accepted(operator) → closed`, or `cancelled` by
//! the device, or `unhandled` once the whole escalation chain has been tried. Every call takes the
//! alarm, an input and the time, and returns the new alarm plus the effects the caller must carry out
//! (offers, updates, deadline timers, audit records). Nothing here reads a clock or touches I/O.
use crate::event::MAX_PRIORITY;
use crate::ids::{AlarmId, CentreId, DeviceKey, UnixMillis};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    /// A person or sensor asked for help.
    Help,
    /// A technical condition such as battery low.
    Technical,
    /// The device fell silent (supervision).
    Silent,
    /// The device left its geofence.
    GeofenceExit,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    /// Durable, but no centre of the chain could be offered it yet.
    Pending,
    Offered {
        centre: CentreId,
    },
    Receipted {
        centre: CentreId,
    },
    Accepted {
        centre: CentreId,
        operator: String,
    },
    Closed {
        centre: CentreId,
        outcome: String,
    },
    Cancelled,
    /// The whole chain missed its deadlines; offered to every centre with the unhandled flag.
    Unhandled,
    /// A test alarm that missed a deadline (or lost its centre): it ends here, never escalated,
    /// so a test can never take a place in the chain a real alarm needs.
    Expired,
}

impl AlarmState {
    /// Final states: no deadline runs, no input but none changes them.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            AlarmState::Closed { .. } | AlarmState::Cancelled | AlarmState::Expired
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            AlarmState::Pending => "pending",
            AlarmState::Offered { .. } => "offered",
            AlarmState::Receipted { .. } => "receipted",
            AlarmState::Accepted { .. } => "accepted",
            AlarmState::Closed { .. } => "closed",
            AlarmState::Cancelled => "cancelled",
            AlarmState::Unhandled => "unhandled",
            AlarmState::Expired => "expired",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeadlineKind {
    /// The centre must confirm it has the alarm.
    Receipt,
    /// An operator must take the alarm.
    Accept,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub kind: DeadlineKind,
    pub at_ms: UnixMillis,
}

/// Deadlines in force for one alarm (tenant defaults with per-device overrides, resolved by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    pub receipt_ms: i64,
    pub accept_ms: i64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            receipt_ms: 10_000,
            accept_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub device: DeviceKey,
    /// The device's reference (SCAIP `ref`) of the message that opened it.
    pub reference: String,
    pub kind: AlarmKind,
    pub code: String,
    pub priority: u8,
    pub text: Option<String>,
    pub callback: Vec<String>,
    pub state: AlarmState,
    /// Index into the device's escalation chain of the centre currently responsible.
    pub step: u32,
    pub deadline: Option<Deadline>,
    /// How many times the device alarmed again while this alarm was open.
    pub repeats: u32,
    pub created_ms: UnixMillis,
    pub updated_ms: UnixMillis,
    /// When it reached each stage after `created_ms` (the device's message received).
    pub stages: Stages,
    /// A test alarm (device or tenant on test, a canary): marked so on every offer, carried in
    /// the lane below real alarms, never escalated (it expires instead).
    pub test: bool,
}

/// When an alarm first reached each stage of its path, unix ms; `None`: not (yet). The answer-time
/// statistics and the stage histograms read these; the audit trail has every transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stages {
    /// Its first write was synced (known when the commit returns, so stored with its next change).
    pub durable_ms: Option<UnixMillis>,
    /// First offered to a centre (unhandled offers included).
    pub offered_ms: Option<UnixMillis>,
    /// First receipted by a centre.
    pub receipted_ms: Option<UnixMillis>,
    /// An operator accepted it.
    pub accepted_ms: Option<UnixMillis>,
    /// A responder reached the person (reported by the accepting centre).
    pub attended_ms: Option<UnixMillis>,
    /// It ended: closed by an operator or cancelled by the device.
    pub closed_ms: Option<UnixMillis>,
}

impl Stages {
    /// Sets `slot` to `at` unless an earlier time is there (stages record the first time).
    fn first(slot: &mut Option<UnixMillis>, at: UnixMillis) {
        if slot.is_none() {
            *slot = Some(at);
        }
    }
}

/// What a centre is told about an alarm it was offered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    CancelledByDevice,
    EscalatedElsewhere,
    Closed,
    Repeated,
    Restored,
    /// Another centre's operator took this unhandled alarm.
    TakenElsewhere,
    /// A test alarm missed its deadline and ended (tests are not escalated).
    Expired,
}

/// What a centre's outbox carries: the alarm as it was when the notice was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    Offer { alarm: Alarm, unhandled: bool },
    Update { alarm: Alarm, update: UpdateKind },
}

impl Notice {
    /// The notice with its alarm [`Alarm::erased`].
    pub fn erased(&self) -> Notice {
        match self {
            Notice::Offer { alarm, unhandled } => Notice::Offer {
                alarm: alarm.erased(),
                unhandled: *unhandled,
            },
            Notice::Update { alarm, update } => Notice::Update {
                alarm: alarm.erased(),
                update: update.clone(),
            },
        }
    }

    pub fn alarm(&self) -> &Alarm {
        match self {
            Notice::Offer { alarm, .. } | Notice::Update { alarm, .. } => alarm,
        }
    }
}

impl Notice {
    /// This notice sent again after its alarm moved on (a centre resuming its outbox after a
    /// restart or a reconnect): it carries the alarm's `current` state, and an offer of an alarm
    /// `centre` no longer holds becomes the update that says why, so no operator is shown an offer
    /// for an alarm that is closed (delivery stays at-least-once; centres dedup on the id).
    pub fn refreshed(&self, current: &Alarm, centre: &CentreId) -> Notice {
        let alarm = current.clone();
        let update = match self {
            Notice::Update { update, .. } => update.clone(),
            Notice::Offer { unhandled, .. } => match &current.state {
                AlarmState::Unhandled => {
                    return Notice::Offer {
                        alarm,
                        unhandled: true,
                    }
                }
                _ if current.is_open() && current.holder() == Some(centre) => {
                    return Notice::Offer {
                        alarm,
                        unhandled: false,
                    }
                }
                AlarmState::Closed { .. } => UpdateKind::Closed,
                AlarmState::Cancelled => UpdateKind::CancelledByDevice,
                AlarmState::Expired => UpdateKind::Expired,
                AlarmState::Accepted { .. } if *unhandled => UpdateKind::TakenElsewhere,
                _ => UpdateKind::EscalatedElsewhere,
            },
        };
        Notice::Update { alarm, update }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub alarm: AlarmId,
    pub at_ms: UnixMillis,
    /// Who caused the transition: "device", "engine", "centre:X", "operator:Y".
    pub actor: String,
    pub action: String,
    pub reason: String,
}

impl AuditRecord {
    /// The record with the free text a centre wrote gone: a closing outcome and note, and a
    /// refusal's reason (quoted in the engine's escalation record, "refused by c1: ...")
    /// become [`ERASED`]; every other reason is a fixed phrase about the alarm's course (and
    /// statistics read them), so it stays.
    pub fn erased(&self) -> AuditRecord {
        let mut r = self.clone();
        if r.action == "closed" && !r.reason.is_empty() {
            r.reason = ERASED.to_owned();
        } else if let Some(at) = r.reason.find("refused by ") {
            if let Some(colon) = r.reason[at..].find(": ") {
                r.reason = format!("{}{ERASED}", &r.reason[..at + colon + 2]);
            }
        }
        r
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Offer {
        centre: CentreId,
        unhandled: bool,
    },
    Update {
        centre: CentreId,
        update: UpdateKind,
    },
    /// Replace the alarm's running deadline (if any) by this one.
    ArmDeadline(Deadline),
    ClearDeadline,
    /// The chain is exhausted: log at error and count it.
    Unhandled,
    Audit(AuditRecord),
}

/// A centre's own deadlines for the alarms offered to it, replacing the device's (a relative may
/// take minutes where an alarm centre has seconds); `None`: the device's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentreDeadlines {
    pub receipt_ms: Option<i64>,
    pub accept_ms: Option<i64>,
}

impl CentreDeadlines {
    /// These where set, else `device`'s.
    pub fn over(self, device: Deadlines) -> Deadlines {
        Deadlines {
            receipt_ms: self.receipt_ms.unwrap_or(device.receipt_ms),
            accept_ms: self.accept_ms.unwrap_or(device.accept_ms),
        }
    }
}

/// The facts about the world a transition needs, supplied by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub chain: &'a [CentreId],
    /// `reachable[i]` says whether `chain[i]` is connected and acking right now.
    pub reachable: &'a [bool],
    /// The device's deadlines.
    pub deadlines: Deadlines,
    /// `centre_deadlines[i]`: `chain[i]`'s own, if any (empty: none has).
    pub centre_deadlines: &'a [CentreDeadlines],
    pub now: UnixMillis,
}

impl Context<'_> {
    fn is_reachable(&self, i: usize) -> bool {
        self.reachable.get(i).copied().unwrap_or(false)
    }

    /// The deadlines while `holder` has the alarm: its own where it sets them, else the device's.
    pub fn deadlines_for(&self, holder: Option<&CentreId>) -> Deadlines {
        let own = holder
            .and_then(|h| self.chain.iter().position(|c| c == h))
            .and_then(|i| self.centre_deadlines.get(i))
            .copied()
            .unwrap_or_default();
        own.over(self.deadlines)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmInput {
    /// Try to offer a pending alarm (on creation, and whenever a centre connects).
    Dispatch,
    Receipt {
        centre: CentreId,
    },
    /// A receipt by a named person of a receiver the engine runs (a relative opening the
    /// responder page): as `Receipt`, with the person in the audit.
    ReceiptBy {
        centre: CentreId,
        person: String,
    },
    Accept {
        centre: CentreId,
        operator: String,
    },
    Close {
        centre: CentreId,
        outcome: String,
    },
    /// The accepting centre's responder reached the person.
    Attended {
        centre: CentreId,
    },
    Refuse {
        centre: CentreId,
        reason: String,
    },
    /// The device cancelled (SCAIP reset).
    DeviceCancel,
    /// The device alarmed again while this alarm is open.
    Repeat {
        priority: u8,
    },
    /// The alarm's running deadline fired.
    DeadlineExpired {
        kind: DeadlineKind,
    },
    /// The centre holding the alarm went away before an operator accepted it.
    CentreLost {
        centre: CentreId,
    },
    /// The condition behind the alarm ended (technical restoral, silent device heard again). The
    /// alarm stays open until an operator closes it; its centres hear of it.
    Restored {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("alarm {0} is already {1}")]
    Final(AlarmId, &'static str),
    #[error("centre {centre} does not hold alarm {alarm}")]
    NotHolder { alarm: AlarmId, centre: CentreId },
    #[error("alarm {alarm} cannot take {input} while {state}")]
    Invalid {
        alarm: AlarmId,
        input: &'static str,
        state: &'static str,
    },
}

pub type Transition = Result<(Alarm, Vec<Effect>), TransitionError>;

/// What erasure leaves of a centre's or operator's free text about a person.
pub const ERASED: &str = "erased";

impl Alarm {
    /// The alarm with nothing personal left (a person's data erased on request): the device's
    /// free text and callback numbers go, a closing outcome (a centre's note) becomes
    /// [`ERASED`]; kind, code, times, stages, the chain position and the outcome class (the
    /// state) stay, so answer-time statistics are unchanged.
    pub fn erased(&self) -> Alarm {
        let mut a = self.clone();
        a.text = None;
        a.callback.clear();
        if let AlarmState::Closed { outcome, .. } = &mut a.state {
            *outcome = ERASED.to_owned();
        }
        a
    }

    /// The centre currently holding the alarm, if any.
    pub fn holder(&self) -> Option<&CentreId> {
        match &self.state {
            AlarmState::Offered { centre }
            | AlarmState::Receipted { centre }
            | AlarmState::Accepted { centre, .. }
            | AlarmState::Closed { centre, .. } => Some(centre),
            _ => None,
        }
    }

    /// Whether an operator or the device has finished with it (nothing more to deliver).
    pub fn is_open(&self) -> bool {
        !self.state.is_final()
    }

    fn audit(&self, at_ms: UnixMillis, actor: &str, action: &str, reason: &str) -> Effect {
        Effect::Audit(AuditRecord {
            alarm: self.id,
            at_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            reason: reason.to_string(),
        })
    }
}

/// Applies one input to an alarm. Pure: same alarm, input and context give the same result.
pub fn step(alarm: &Alarm, input: &AlarmInput, ctx: &Context<'_>) -> Transition {
    if alarm.state.is_final() {
        // A late duplicate from a centre or device changes nothing and is reported to the caller.
        return Err(TransitionError::Final(alarm.id, alarm.state.name()));
    }
    let mut next = alarm.clone();
    next.updated_ms = ctx.now;
    let mut fx = Vec::new();
    match input {
        AlarmInput::Dispatch => match &alarm.state {
            AlarmState::Pending => offer_from(&mut next, &mut fx, ctx, alarm.step as usize, None),
            // Unhandled alarms go to every reachable centre of the chain (centres dedup by id).
            AlarmState::Unhandled => {
                for (i, centre) in ctx.chain.iter().enumerate() {
                    if ctx.is_reachable(i) {
                        fx.push(Effect::Offer {
                            centre: centre.clone(),
                            unhandled: true,
                        });
                    }
                }
            }
            // Already with a centre: nothing to do (dispatch is idempotent).
            _ => {}
        },
        AlarmInput::Receipt { centre } | AlarmInput::ReceiptBy { centre, .. } => {
            // A person's receipt names them, and the receiver they came through.
            let (actor, via) = match input {
                AlarmInput::ReceiptBy { person, .. } => {
                    (format!("operator:{person}"), centre.as_str())
                }
                _ => (actor_centre(centre), ""),
            };
            require_holder(alarm, centre)?;
            match &alarm.state {
                AlarmState::Offered { .. } => {
                    Stages::first(&mut next.stages.receipted_ms, ctx.now);
                    next.state = AlarmState::Receipted {
                        centre: centre.clone(),
                    };
                    arm(&mut next, &mut fx, DeadlineKind::Accept, ctx);
                    fx.push(alarm.audit(ctx.now, &actor, "receipt", via));
                }
                // A repeated receipt (centre resumed its stream) is harmless.
                AlarmState::Receipted { .. } | AlarmState::Accepted { .. } => {}
                // Every centre has an unhandled alarm; the receipt is noted, the hunt goes on.
                AlarmState::Unhandled => {
                    Stages::first(&mut next.stages.receipted_ms, ctx.now);
                    fx.push(alarm.audit(ctx.now, &actor, "receipt", "unhandled"));
                }
                _ => return Err(invalid(alarm, "receipt")),
            }
        }
        AlarmInput::Accept { centre, operator } => {
            require_holder(alarm, centre)?;
            match &alarm.state {
                AlarmState::Offered { .. }
                | AlarmState::Receipted { .. }
                | AlarmState::Unhandled => {
                    Stages::first(&mut next.stages.accepted_ms, ctx.now);
                    next.state = AlarmState::Accepted {
                        centre: centre.clone(),
                        operator: operator.clone(),
                    };
                    next.deadline = None;
                    fx.push(Effect::ClearDeadline);
                    if alarm.state == AlarmState::Unhandled {
                        for other in ctx.chain.iter().filter(|c| *c != centre) {
                            fx.push(Effect::Update {
                                centre: other.clone(),
                                update: UpdateKind::TakenElsewhere,
                            });
                        }
                    }
                    fx.push(alarm.audit(
                        ctx.now,
                        &format!("operator:{operator}"),
                        "accepted",
                        centre.as_str(),
                    ));
                }
                AlarmState::Accepted { .. } => {}
                _ => return Err(invalid(alarm, "accept")),
            }
        }
        AlarmInput::Attended { centre } => {
            require_holder(alarm, centre)?;
            if !matches!(alarm.state, AlarmState::Accepted { .. }) {
                return Err(invalid(alarm, "attended"));
            }
            if next.stages.attended_ms.is_none() {
                next.stages.attended_ms = Some(ctx.now);
                fx.push(alarm.audit(ctx.now, &actor_centre(centre), "attended", ""));
            }
        }
        AlarmInput::Close { centre, outcome } => {
            require_holder(alarm, centre)?;
            Stages::first(&mut next.stages.closed_ms, ctx.now);
            next.state = AlarmState::Closed {
                centre: centre.clone(),
                outcome: outcome.clone(),
            };
            next.deadline = None;
            fx.push(Effect::ClearDeadline);
            fx.push(alarm.audit(ctx.now, &actor_centre(centre), "closed", outcome));
        }
        AlarmInput::Refuse { centre, reason } => {
            require_holder(alarm, centre)?;
            if matches!(alarm.state, AlarmState::Accepted { .. }) {
                return Err(invalid(alarm, "refuse"));
            }
            let why = format!("refused by {centre}: {reason}");
            escalate_or_expire(&mut next, &mut fx, ctx, &why);
        }
        AlarmInput::DeviceCancel => {
            Stages::first(&mut next.stages.closed_ms, ctx.now);
            next.state = AlarmState::Cancelled;
            next.deadline = None;
            fx.push(Effect::ClearDeadline);
            for centre in offered_to(alarm, ctx) {
                fx.push(Effect::Update {
                    centre,
                    update: UpdateKind::CancelledByDevice,
                });
            }
            fx.push(alarm.audit(ctx.now, "device", "cancelled", "reset by device"));
        }
        AlarmInput::Repeat { priority } => {
            next.repeats += 1;
            next.priority = (*priority)
                .max(alarm.priority.saturating_add(1))
                .min(MAX_PRIORITY);
            // A test alarm's repeats are kept and audited but not sent: a device (or a whole
            // tenant) testing must not fill a centre's stream ahead of real alarms' offers.
            let told = if alarm.test {
                Vec::new()
            } else {
                offered_to(alarm, ctx)
            };
            for centre in told {
                fx.push(Effect::Update {
                    centre,
                    update: UpdateKind::Repeated,
                });
            }
            let why = format!("repeat {} priority {}", next.repeats, next.priority);
            fx.push(alarm.audit(ctx.now, "device", "repeated", &why));
        }
        AlarmInput::DeadlineExpired { kind } => {
            let due = alarm
                .deadline
                .filter(|d| d.kind == *kind && d.at_ms <= ctx.now);
            if due.is_none() {
                // A stale timer (deadline replaced or already met): ignore.
                return Ok((alarm.clone(), Vec::new()));
            }
            let why = match (kind, alarm.holder()) {
                (_, None) => "no reachable centre before the receipt deadline".to_string(),
                (DeadlineKind::Receipt, Some(h)) => format!("no receipt from {h}"),
                (DeadlineKind::Accept, Some(h)) => format!("no operator accepted at {h}"),
            };
            escalate_or_expire(&mut next, &mut fx, ctx, &why);
        }
        AlarmInput::Restored { reason } => {
            for centre in offered_to(alarm, ctx) {
                fx.push(Effect::Update {
                    centre,
                    update: UpdateKind::Restored,
                });
            }
            fx.push(alarm.audit(ctx.now, "device", "restored", reason));
        }
        AlarmInput::CentreLost { centre } => {
            require_holder(alarm, centre)?;
            match alarm.state {
                AlarmState::Offered { .. } | AlarmState::Receipted { .. } => {
                    let why = format!("{centre} disconnected");
                    escalate_or_expire(&mut next, &mut fx, ctx, &why);
                }
                // An accepted alarm stays with its operator; the centre resumes on reconnect.
                _ => {}
            }
        }
    }
    Ok((next, fx))
}

/// The reconnect grace (invariant 11). A due deadline, or the loss of the holding centre, must not
/// escalate past a centre that is away but may still come back: a restart or a brief disconnect
/// would otherwise skip every centre of the chain and leave the alarm unhandled. `back_by[i]` is
/// when `chain[i]`'s grace ends if it is away (`None`: connected). Returns when to look again (the
/// earliest grace still running among the holder and the centres escalation would skip), or
/// `None` to escalate now.
pub fn escalation_waits_until(
    alarm: &Alarm,
    ctx: &Context<'_>,
    back_by: &[Option<UnixMillis>],
) -> Option<UnixMillis> {
    let from = match &alarm.state {
        AlarmState::Pending => 0,
        AlarmState::Offered { .. } | AlarmState::Receipted { .. } => alarm.step as usize,
        _ => return None,
    };
    // The holder, then every centre up to the first reachable one after it.
    let skipped = (from..ctx.chain.len()).take_while(|&i| i == from || !ctx.is_reachable(i));
    skipped
        .filter_map(|i| back_by.get(i).copied().flatten())
        .filter(|&end| end > ctx.now)
        .min()
}

fn actor_centre(c: &CentreId) -> String {
    format!("centre:{c}")
}

fn invalid(alarm: &Alarm, input: &'static str) -> TransitionError {
    TransitionError::Invalid {
        alarm: alarm.id,
        input,
        state: alarm.state.name(),
    }
}

fn require_holder(alarm: &Alarm, centre: &CentreId) -> Result<(), TransitionError> {
    // An unhandled alarm is offered to every centre: any of them may take it.
    if alarm.state == AlarmState::Unhandled || alarm.holder() == Some(centre) {
        Ok(())
    } else {
        Err(TransitionError::NotHolder {
            alarm: alarm.id,
            centre: centre.clone(),
        })
    }
}

/// Centres that currently know about the alarm and must hear of changes.
fn offered_to(alarm: &Alarm, ctx: &Context<'_>) -> Vec<CentreId> {
    match &alarm.state {
        AlarmState::Unhandled => ctx.chain.to_vec(),
        _ => alarm.holder().cloned().into_iter().collect(),
    }
}

fn arm(next: &mut Alarm, fx: &mut Vec<Effect>, kind: DeadlineKind, ctx: &Context<'_>) {
    let deadlines = ctx.deadlines_for(next.holder());
    let after = match kind {
        DeadlineKind::Receipt => deadlines.receipt_ms,
        DeadlineKind::Accept => deadlines.accept_ms,
    };
    let d = Deadline {
        kind,
        at_ms: ctx.now + after,
    };
    next.deadline = Some(d);
    fx.push(Effect::ArmDeadline(d));
}

/// Offers to the first reachable centre at or after `from`; past the end of the chain the alarm is
/// unhandled. `escalating_from` names the centre being left, if any.
fn offer_from(
    next: &mut Alarm,
    fx: &mut Vec<Effect>,
    ctx: &Context<'_>,
    from: usize,
    escalating_from: Option<&str>,
) {
    let found = (from..ctx.chain.len()).find(|&i| ctx.is_reachable(i));
    match found {
        Some(i) => {
            let centre = ctx.chain[i].clone();
            Stages::first(&mut next.stages.offered_ms, ctx.now);
            next.step = i as u32;
            next.state = AlarmState::Offered {
                centre: centre.clone(),
            };
            arm(next, fx, DeadlineKind::Receipt, ctx);
            let skipped = i - from;
            let reason = match (escalating_from, skipped) {
                (Some(why), _) => why.to_string(),
                (None, 0) => String::new(),
                (None, n) => format!("{n} unreachable centre(s) skipped"),
            };
            fx.push(Effect::Offer {
                centre: centre.clone(),
                unhandled: false,
            });
            fx.push(next.audit(ctx.now, "engine", &format!("offered to {centre}"), &reason));
        }
        None if escalating_from.is_none() && next.state == AlarmState::Pending => {
            // Nobody reachable for a new alarm: stay pending and be offered the moment a centre
            // connects; if none does before the receipt deadline, it becomes unhandled, loudly.
            arm(next, fx, DeadlineKind::Receipt, ctx);
        }
        None => {
            next.state = AlarmState::Unhandled;
            if !ctx.chain.is_empty() {
                Stages::first(&mut next.stages.offered_ms, ctx.now);
            }
            next.step = ctx.chain.len() as u32;
            next.deadline = None;
            fx.push(Effect::ClearDeadline);
            fx.push(Effect::Unhandled);
            for centre in ctx.chain {
                fx.push(Effect::Offer {
                    centre: centre.clone(),
                    unhandled: true,
                });
            }
            let why = escalating_from.unwrap_or("no reachable centre");
            fx.push(next.audit(ctx.now, "engine", "unhandled", why));
        }
    }
}

/// A real alarm escalates; a test alarm expires where it is (its centre is told), so tests never
/// reach further centres or the unhandled state.
fn escalate_or_expire(next: &mut Alarm, fx: &mut Vec<Effect>, ctx: &Context<'_>, why: &str) {
    if !next.test {
        return escalate(next, fx, ctx, why);
    }
    if let Some(holder) = next.holder().cloned() {
        fx.push(Effect::Update {
            centre: holder,
            update: UpdateKind::Expired,
        });
    }
    next.state = AlarmState::Expired;
    next.deadline = None;
    Stages::first(&mut next.stages.closed_ms, ctx.now);
    fx.push(Effect::ClearDeadline);
    let reason = format!("{why}; a test alarm is not escalated");
    fx.push(next.audit(ctx.now, "engine", "expired", &reason));
}

fn escalate(next: &mut Alarm, fx: &mut Vec<Effect>, ctx: &Context<'_>, why: &str) {
    if next.state == AlarmState::Unhandled {
        // Already offered to everyone; nothing further to escalate to.
        return;
    }
    if let Some(old) = next.holder().cloned() {
        fx.push(Effect::Update {
            centre: old,
            update: UpdateKind::EscalatedElsewhere,
        });
    }
    next.priority = next.priority.saturating_add(1).min(MAX_PRIORITY);
    fx.push(next.audit(ctx.now, "engine", "escalated", why));
    // A pending alarm has already found every centre unreachable: it goes straight to unhandled.
    let from = match next.state {
        AlarmState::Pending => ctx.chain.len(),
        _ => next.step as usize + 1,
    };
    offer_from(next, fx, ctx, from, Some(why));
}
