//! What a receiver is told about an alarm, as JSON (the webhook body) and as the fields the
//! responder page and the SMS/e-mail text show. Pure: built from the stored alarm, the
//! directory and the opening position.
use serde::Serialize;
use vaka_core::alarm::{AlarmState, Notice, UpdateKind};
use vaka_core::directory::Directory;
use vaka_core::gps::Fix;
use vaka_core::{Alarm, AlarmKind};

/// One notice as a receiver gets it.
#[derive(Clone, Debug, Serialize)]
pub struct NoticeJson {
    /// "offer" or "update".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The notice's outbox sequence (with the alarm id, its idempotency key).
    pub notice: u64,
    /// For an update: "closed", "cancelled_by_device", "escalated_elsewhere", ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<&'static str>,
    /// An offer of an alarm every centre of its chain has had (the hunt goes on).
    pub unhandled: bool,
    pub alarm: AlarmJson,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmJson {
    pub id: u64,
    pub tenant: String,
    pub device: String,
    pub device_type: String,
    /// "help", "technical", "silent", "geofence_exit".
    pub kind: &'static str,
    pub code: String,
    pub priority: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub state: String,
    /// Who holds it (a centre id), and the operator who accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionJson>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub test: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PositionJson {
    pub lat: f64,
    pub lon: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f32>,
    pub time_ms: i64,
}

pub fn kind_name(k: AlarmKind) -> &'static str {
    match k {
        AlarmKind::Help => "help",
        AlarmKind::Technical => "technical",
        AlarmKind::Silent => "silent",
        AlarmKind::GeofenceExit => "geofence_exit",
    }
}

pub fn update_name(u: &UpdateKind) -> &'static str {
    match u {
        UpdateKind::CancelledByDevice => "cancelled_by_device",
        UpdateKind::EscalatedElsewhere => "escalated_elsewhere",
        UpdateKind::Closed => "closed",
        UpdateKind::Repeated => "repeated",
        UpdateKind::Restored => "restored",
        UpdateKind::TakenElsewhere => "taken_elsewhere",
        UpdateKind::Expired => "expired",
    }
}

pub fn alarm(a: &Alarm, dir: &Directory, fix: Option<&Fix>) -> AlarmJson {
    let (holder, operator) = match &a.state {
        AlarmState::Accepted { centre, operator } => {
            (Some(centre.to_string()), Some(operator.clone()))
        }
        _ => (a.holder().map(|c| c.to_string()), None),
    };
    AlarmJson {
        id: a.id.0,
        tenant: a.device.tenant.to_string(),
        device: a.device.device.to_string(),
        device_type: dir
            .device(&a.device)
            .map(|d| d.device_type.clone())
            .unwrap_or_default(),
        kind: kind_name(a.kind),
        code: a.code.clone(),
        priority: a.priority,
        text: a.text.clone(),
        state: a.state.name().to_string(),
        holder,
        operator,
        position: position(fix),
        created_ms: a.created_ms,
        updated_ms: a.updated_ms,
        test: a.test,
    }
}

pub fn position(fix: Option<&Fix>) -> Option<PositionJson> {
    fix.filter(|f| f.valid).map(|f| PositionJson {
        lat: f.lat,
        lon: f.lon,
        accuracy_m: f.accuracy_m,
        time_ms: f.time_ms,
    })
}

pub fn notice(seq: u64, n: &Notice, dir: &Directory, fix: Option<&Fix>) -> NoticeJson {
    match n {
        Notice::Offer {
            alarm: a,
            unhandled,
        } => NoticeJson {
            kind: "offer",
            notice: seq,
            update: None,
            unhandled: *unhandled,
            alarm: alarm(a, dir, fix),
        },
        Notice::Update { alarm: a, update } => NoticeJson {
            kind: "update",
            notice: seq,
            update: Some(update_name(update)),
            unhandled: false,
            alarm: alarm(a, dir, fix),
        },
    }
}
