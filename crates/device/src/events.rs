//! Builders for the events a device sends. Set [`pb::Event::device`] (or use [`for_device`]) when
//! a gateway sends for another device.
use vaka_proto::pb::{self, event::Body};

fn event(key: impl Into<String>, body: Body) -> pb::Event {
    pb::Event {
        key: key.into(),
        device: String::new(),
        fix: None,
        body: Some(body),
        occurred_ms: None,
    }
}

/// `ev` with the time it happened by the device's clock (ms since the epoch): a reading sent
/// late is then judged at that time by the engine's activity rules.
pub fn occurred_at(mut ev: pb::Event, time_ms: u64) -> pb::Event {
    ev.occurred_ms = Some(time_ms);
    ev
}

/// An alarm (`code` as SCAIP stc, e.g. "0010" manual alarm; `priority` 0..=9).
pub fn alarm(key: impl Into<String>, code: impl Into<String>, priority: u32) -> pb::Event {
    event(
        key,
        Body::Alarm(pb::Alarm {
            code: code.into(),
            priority,
            text: None,
            callback: Vec::new(),
        }),
    )
}

pub fn technical(key: impl Into<String>, code: impl Into<String>, restoral: bool) -> pb::Event {
    event(
        key,
        Body::Technical(pb::Technical {
            code: code.into(),
            restoral,
        }),
    )
}

pub fn heartbeat(key: impl Into<String>) -> pb::Event {
    event(key, Body::Heartbeat(pb::Heartbeat {}))
}

/// A valid position fix at `time_ms` with an optional accuracy.
pub fn position(
    key: impl Into<String>,
    time_ms: i64,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f32>,
) -> pb::Event {
    event(key, Body::Position(fix(time_ms, lat, lon, accuracy_m)))
}

pub fn telemetry(key: impl Into<String>, name: impl Into<String>, value: f64) -> pb::Event {
    event(
        key,
        Body::Telemetry(pb::Telemetry {
            name: name.into(),
            value,
        }),
    )
}

/// Cancels the open alarm that carried `reference` as its key.
pub fn reset(key: impl Into<String>, reference: impl Into<String>) -> pb::Event {
    event(
        key,
        Body::Reset(pb::Reset {
            reference: reference.into(),
        }),
    )
}

pub fn fix(time_ms: i64, lat: f64, lon: f64, accuracy_m: Option<f32>) -> pb::Fix {
    pb::Fix {
        time_ms,
        lat,
        lon,
        accuracy_m,
        speed_mps: None,
        course_deg: None,
        valid: None,
    }
}

/// The same event, sent for `device` (a gateway relaying).
pub fn for_device(mut ev: pb::Event, device: impl Into<String>) -> pb::Event {
    ev.device = device.into();
    ev
}
