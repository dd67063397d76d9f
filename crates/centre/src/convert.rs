//! The core's alarms and notices as vaka.centre.v1 messages.
use crate::pb;
use vaka_core::alarm::{AlarmState, AuditRecord, DeadlineKind, Notice, UpdateKind};
use vaka_core::directory::Directory;
use vaka_core::gps::Fix;
use vaka_core::{Alarm, AlarmKind};

/// An alarm as a centre sees it. `fix` is the position the opening event carried, if any.
pub fn alarm(a: &Alarm, dir: &Directory, fix: Option<&Fix>) -> pb::Alarm {
    let (holder, operator_id, outcome) = match &a.state {
        AlarmState::Offered { centre } | AlarmState::Receipted { centre } => {
            (centre.to_string(), String::new(), String::new())
        }
        AlarmState::Accepted { centre, operator } => {
            (centre.to_string(), operator.clone(), String::new())
        }
        AlarmState::Closed { centre, outcome } => {
            (centre.to_string(), String::new(), outcome.clone())
        }
        AlarmState::Pending
        | AlarmState::Cancelled
        | AlarmState::Unhandled
        | AlarmState::Expired => (String::new(), String::new(), String::new()),
    };
    let deadlines = dir.deadlines_held(a);
    pb::Alarm {
        alarm_id: a.id.0,
        tenant: a.device.tenant.to_string(),
        device: a.device.device.to_string(),
        device_type: dir
            .device(&a.device)
            .map(|d| d.device_type.clone())
            .unwrap_or_default(),
        kind: kind(a.kind) as i32,
        code: a.code.clone(),
        priority: u32::from(a.priority),
        position: fix.filter(|f| f.valid).map(|f| pb::Position {
            lat: f.lat,
            lon: f.lon,
            accuracy_m: f.accuracy_m,
            time_ms: f.time_ms,
        }),
        text: a.text.clone(),
        callback: a.callback.clone(),
        state: a.state.name().to_string(),
        holder,
        operator_id,
        outcome,
        escalation_step: a.step,
        chain: dir.alarm_chain(a).iter().map(|c| c.to_string()).collect(),
        deadlines: Some(pb::Deadlines {
            receipt_ms: deadlines.receipt_ms,
            accept_ms: deadlines.accept_ms,
        }),
        deadline: a.deadline.map(|d| pb::Deadline {
            kind: match d.kind {
                DeadlineKind::Receipt => pb::DeadlineKind::Receipt,
                DeadlineKind::Accept => pb::DeadlineKind::Accept,
            } as i32,
            at_ms: d.at_ms,
        }),
        repeats: a.repeats,
        created_ms: a.created_ms,
        updated_ms: a.updated_ms,
        reference: a.reference.clone(),
        test: a.test,
    }
}

fn kind(k: AlarmKind) -> pb::AlarmKind {
    match k {
        AlarmKind::Help => pb::AlarmKind::Help,
        AlarmKind::Technical => pb::AlarmKind::Technical,
        AlarmKind::Silent => pb::AlarmKind::Silent,
        AlarmKind::GeofenceExit => pb::AlarmKind::GeofenceExit,
    }
}

pub fn update_kind(u: &UpdateKind) -> pb::UpdateKind {
    match u {
        UpdateKind::CancelledByDevice => pb::UpdateKind::CancelledByDevice,
        UpdateKind::EscalatedElsewhere => pb::UpdateKind::EscalatedElsewhere,
        UpdateKind::Closed => pb::UpdateKind::Closed,
        UpdateKind::Repeated => pb::UpdateKind::Repeated,
        UpdateKind::Restored => pb::UpdateKind::Restored,
        UpdateKind::TakenElsewhere => pb::UpdateKind::TakenElsewhere,
        UpdateKind::Expired => pb::UpdateKind::Expired,
    }
}

/// One outbox notice as the message that carries it on the stream.
pub fn notice(cursor: u64, n: &Notice, dir: &Directory, fix: Option<&Fix>) -> pb::ServerMessage {
    let msg = match n {
        Notice::Offer {
            alarm: a,
            unhandled,
        } => pb::server_message::Msg::Offer(pb::Offer {
            cursor,
            alarm: Some(alarm(a, dir, fix)),
            unhandled: *unhandled,
        }),
        Notice::Update { alarm: a, update } => pb::server_message::Msg::Update(pb::Update {
            cursor,
            alarm: Some(alarm(a, dir, fix)),
            kind: update_kind(update) as i32,
        }),
    };
    pb::ServerMessage { msg: Some(msg) }
}

pub fn audit(r: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        at_ms: r.at_ms,
        actor: r.actor.clone(),
        action: r.action.clone(),
        reason: r.reason.clone(),
    }
}
