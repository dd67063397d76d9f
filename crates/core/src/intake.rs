//! What one accepted device event does to that device's alarms: open a new alarm, update an open one
//! (a repeat), cancel one (a reset), or nothing beyond being stored.
use crate::alarm::{
    self, Alarm, AlarmInput, AlarmKind, AlarmState, Context, Effect, TransitionError,
};
use crate::event::{Event, EventKind};
use crate::ids::{AlarmId, EventId};

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Stored, no alarm involved (telemetry, heartbeat, restorals of nothing open, …).
    Stored,
    /// A new alarm was opened; effects include its first offer (or none if no centre is reachable).
    Opened { alarm: Alarm, effects: Vec<Effect> },
    /// An open alarm changed (a repeat, a device reset, a technical restoral).
    Changed { alarm: Alarm, effects: Vec<Effect> },
    /// A reset that names no open alarm: stored, nothing to cancel.
    NothingToCancel,
}

/// Decides the effect of `event` (already given id `id`) given the device's open alarms.
/// `ctx` carries the device's chain, centre reachability, deadlines and the time.
pub fn intake<'a>(
    event: &Event,
    id: EventId,
    open: impl IntoIterator<Item = &'a Alarm>,
    ctx: &Context<'_>,
) -> Result<Outcome, TransitionError> {
    let open: Vec<&Alarm> = open.into_iter().filter(|a| a.is_open()).collect();
    match &event.kind {
        EventKind::Alarm(info) => {
            // A person pressing again and again: one alarm, repeated, not a second offer.
            if let Some(existing) = open
                .iter()
                .find(|a| a.kind == AlarmKind::Help && a.state != AlarmState::Cancelled)
            {
                let (alarm, effects) = alarm::step(
                    existing,
                    &AlarmInput::Repeat {
                        priority: info.priority,
                    },
                    ctx,
                )?;
                return Ok(Outcome::Changed { alarm, effects });
            }
            let new = fresh_alarm(
                event,
                id,
                AlarmKind::Help,
                &info.code,
                info.priority,
                info.text.clone(),
                info.callback.clone(),
            );
            open_alarm(new, ctx)
        }
        EventKind::Technical { code, restoral } => {
            let existing = open
                .iter()
                .find(|a| a.kind == AlarmKind::Technical && &a.code == code);
            match (existing, restoral) {
                (Some(a), true) => {
                    let reason = format!("restoral of {code}");
                    let (alarm, effects) = alarm::step(a, &AlarmInput::Restored { reason }, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                (None, true) => Ok(Outcome::Stored),
                (Some(a), false) => {
                    let (alarm, effects) =
                        alarm::step(a, &AlarmInput::Repeat { priority: 0 }, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                (None, false) => open_alarm(
                    fresh_alarm(event, id, AlarmKind::Technical, code, 0, None, Vec::new()),
                    ctx,
                ),
            }
        }
        EventKind::Reset { reference } => match open.iter().find(|a| &a.reference == reference) {
            Some(a) => {
                let (alarm, effects) = alarm::step(a, &AlarmInput::DeviceCancel, ctx)?;
                Ok(Outcome::Changed { alarm, effects })
            }
            None => Ok(Outcome::NothingToCancel),
        },
        EventKind::Silent => match open.iter().find(|a| a.kind == AlarmKind::Silent) {
            // Silent again while its earlier silence alarm is still open: that alarm repeats.
            Some(a) => {
                let (alarm, effects) = alarm::step(a, &AlarmInput::Repeat { priority: 0 }, ctx)?;
                Ok(Outcome::Changed { alarm, effects })
            }
            None => open_alarm(
                fresh_alarm(
                    event,
                    id,
                    AlarmKind::Silent,
                    SILENT_CODE,
                    0,
                    None,
                    Vec::new(),
                ),
                ctx,
            ),
        },
        EventKind::Geofence { fence, exit } => {
            let code = geofence_code(fence);
            let existing = open
                .iter()
                .find(|a| a.kind == AlarmKind::GeofenceExit && a.code == code);
            match (existing, exit) {
                // Out again while the last exit alarm is still open: that alarm repeats.
                (Some(a), true) => {
                    let (alarm, effects) =
                        alarm::step(a, &AlarmInput::Repeat { priority: 0 }, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                (None, true) => open_alarm(
                    fresh_alarm(
                        event,
                        id,
                        AlarmKind::GeofenceExit,
                        &code,
                        GEOFENCE_PRIORITY,
                        Some(format!("left geofence \"{fence}\"")),
                        Vec::new(),
                    ),
                    ctx,
                ),
                (Some(a), false) => {
                    let reason = format!("back inside geofence \"{fence}\"");
                    let (alarm, effects) = alarm::step(a, &AlarmInput::Restored { reason }, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                // Its alarm was closed already: the re-entry is only stored.
                (None, false) => Ok(Outcome::Stored),
            }
        }
        EventKind::Rule { code, fired, text } => {
            let existing = open
                .iter()
                .find(|a| a.kind == AlarmKind::Technical && &a.code == code);
            match (existing, fired) {
                (Some(a), false) => {
                    let reason = format!("rule condition ended: {text}");
                    let (alarm, effects) = alarm::step(a, &AlarmInput::Restored { reason }, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                // Fired again while its alarm is still open (restored, not yet closed by its
                // receiver): the receiver is told it happened again.
                (Some(a), true) => {
                    let input = AlarmInput::Repeat {
                        priority: RULE_PRIORITY,
                    };
                    let (alarm, effects) = alarm::step(a, &input, ctx)?;
                    Ok(Outcome::Changed { alarm, effects })
                }
                (None, false) => Ok(Outcome::Stored),
                (None, true) => open_alarm(
                    fresh_alarm(
                        event,
                        id,
                        AlarmKind::Technical,
                        code,
                        RULE_PRIORITY,
                        Some(text.clone()),
                        Vec::new(),
                    ),
                    ctx,
                ),
            }
        }
        EventKind::Heartbeat | EventKind::Position | EventKind::Telemetry { .. } => {
            Ok(Outcome::Stored)
        }
    }
}

/// Priority of an activity rule's alarm (a missed dose, a night check): someone must go and
/// look, as for a geofence exit.
pub const RULE_PRIORITY: u8 = 5;

/// Status code of the engine's "device silent: visit" alarm.
pub const SILENT_CODE: &str = "device-silent";

/// Priority of a geofence exit alarm: someone (often with dementia) is outside the area they
/// should stay in, which is as urgent as a button press.
pub const GEOFENCE_PRIORITY: u8 = 5;

/// Status code of a geofence exit alarm, naming its fence.
pub fn geofence_code(fence: &str) -> String {
    format!("geofence-exit:{fence}")
}

/// A new alarm opened by `event`: pending, not yet offered.
fn fresh_alarm(
    event: &Event,
    id: EventId,
    kind: AlarmKind,
    code: &str,
    priority: u8,
    text: Option<String>,
    callback: Vec<String>,
) -> Alarm {
    Alarm {
        id: AlarmId::from(id),
        device: event.device.clone(),
        reference: event.key.clone(),
        kind,
        code: code.to_string(),
        priority: priority.min(crate::event::MAX_PRIORITY),
        text,
        callback,
        state: AlarmState::Pending,
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: event.received_ms,
        updated_ms: event.received_ms,
        stages: Default::default(),
        test: false,
    }
}

fn open_alarm(new: Alarm, ctx: &Context<'_>) -> Result<Outcome, TransitionError> {
    let (alarm, mut effects) = alarm::step(&new, &AlarmInput::Dispatch, ctx)?;
    effects.insert(
        0,
        Effect::Audit(alarm::AuditRecord {
            alarm: new.id,
            at_ms: new.created_ms,
            actor: "device".into(),
            action: "received".into(),
            reason: format!("code {} priority {}", new.code, new.priority),
        }),
    );
    Ok(Outcome::Opened { alarm, effects })
}
