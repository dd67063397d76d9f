//! The invariants of DESIGN.md §3 as the world can see them from outside: through what devices
//! and centres were told and what the disk holds (what a restart would find).
use std::collections::HashMap;

use vaka_core::alarm::AlarmInput;
use vaka_core::{Alarm, AlarmId, AlarmKind, AlarmState};
use vaka_store::{keys, load_alarm, load_event, Backend, Cf};

use super::world::{Checked, World};

/// Everything checkable at rest (after a step and its barrier).
pub fn all(w: &World) -> Checked {
    acked_durable(w)?;
    alarms_end_somewhere(w)?;
    // Invariant 6 at rest: the barrier went through every lane, so nothing may be left queued.
    let queued = w.router().queued();
    if queued != 0 {
        return Err(format!("{queued} messages still queued at rest"));
    }
    Ok(())
}

/// Invariant 1: every event a device was answered OK for is on the disk, and so is every alarm
/// such an answer named.
pub fn acked_durable(w: &World) -> Checked {
    let disk: &dyn Backend = w.disk.as_ref();
    for id in &w.durable {
        if load_event(disk, *id).map_err(|e| e.to_string())?.is_none() {
            return Err(format!(
                "event {} was acknowledged but is not in the store",
                id.0
            ));
        }
    }
    for ((device, key), acked) in &w.acked {
        if let Some(a) = acked.alarm {
            if load_alarm(disk, a).map_err(|e| e.to_string())?.is_none() {
                return Err(format!(
                    "alarm {} named in the answer to {device} {key} is not in the store",
                    a.0
                ));
            }
        }
    }
    Ok(())
}

fn stored_alarms(disk: &dyn Backend) -> Result<Vec<Alarm>, String> {
    let mut ids = Vec::new();
    disk.scan(Cf::Alarms, &[], &mut |k, _| {
        ids.extend(keys::decode_id(k));
        true
    })
    .map_err(|e| e.to_string())?;
    ids.into_iter()
        .map(|id| {
            load_alarm(disk, AlarmId(id))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("alarm {id} listed but unreadable"))
        })
        .collect()
}

/// Invariants 2, 4 and 5 on the stored alarms: one alarm per device message (one open silence
/// alarm per device); every open alarm is on its way somewhere: a deadline not overdue (unless
/// a centre's reconnect grace holds it, invariant 11), accepted by an operator, or unhandled
/// (reported); pending only while no centre of its chain is connected; never held by a centre
/// gone past its grace.
fn alarms_end_somewhere(w: &World) -> Checked {
    let now = w.now_ms();
    let grace = w.params.reconnect_grace_ms;
    let within_grace = w.chain_within_grace(now);
    let may_wait = w.deadline_may_wait(now);
    let mut by_message: HashMap<(String, String), AlarmId> = HashMap::new();
    let mut silent_open: HashMap<String, AlarmId> = HashMap::new();
    for a in stored_alarms(w.disk.as_ref())? {
        let at = |ms: i64| ms - super::world_start();
        let id = a.id.0;
        let open = !a.state.is_final();
        if a.kind == AlarmKind::Silent {
            if open {
                if let Some(other) = silent_open.insert(a.device.to_string(), a.id) {
                    return Err(format!(
                        "two open silence alarms for {}: {} and {id}",
                        a.device, other.0
                    ));
                }
            }
        } else if let Some(other) =
            by_message.insert((a.device.to_string(), a.reference.clone()), a.id)
        {
            return Err(format!(
                "one message ({} {}) made two alarms: {} and {id}",
                a.device, a.reference, other.0
            ));
        }
        if !open {
            continue;
        }
        match a.deadline {
            Some(d) if d.at_ms + 1 < now && !may_wait => {
                return Err(format!(
                    "alarm {id} ({:?}) has a {:?} deadline at +{} ms still pending at +{} ms",
                    a.state,
                    d.kind,
                    at(d.at_ms),
                    at(now)
                ));
            }
            Some(_) => {}
            None => {
                if !matches!(a.state, AlarmState::Accepted { .. } | AlarmState::Unhandled) {
                    return Err(format!(
                        "alarm {id} is {:?} with no deadline running",
                        a.state
                    ));
                }
            }
        }
        match &a.state {
            AlarmState::Pending if w.centres.iter().any(|c| c.connected) => {
                return Err(format!(
                    "alarm {id} is pending while a centre of its chain is connected"
                ));
            }
            AlarmState::Offered { centre } | AlarmState::Receipted { centre } => {
                let c = w
                    .centres
                    .iter()
                    .find(|c| c.id == *centre)
                    .ok_or_else(|| format!("alarm {id} held by unknown {centre}"))?;
                if !c.connected
                    && c.left_this_life
                    && now > c.away_since + grace + 1
                    && !within_grace
                {
                    return Err(format!(
                        "alarm {id} still held by {centre}, gone since +{} ms, past its grace at +{} ms",
                        at(c.away_since),
                        at(now)
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A centre's input answered OK is what the store holds now.
pub fn input_durable(w: &World, id: AlarmId, input: &AlarmInput) -> Checked {
    let Some(a) = load_alarm(w.disk.as_ref(), id).map_err(|e| e.to_string())? else {
        return Err(format!(
            "alarm {} answered OK to {input:?} is not stored",
            id.0
        ));
    };
    let ok = match input {
        AlarmInput::Accept { centre, .. } => {
            matches!(&a.state, AlarmState::Accepted { centre: c, .. } if c == centre)
        }
        AlarmInput::Close { centre, .. } => {
            matches!(&a.state, AlarmState::Closed { centre: c, .. } if c == centre)
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{input:?} on alarm {} answered OK, but the store holds {:?}",
            id.0, a.state
        ))
    }
}
