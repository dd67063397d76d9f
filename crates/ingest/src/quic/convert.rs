//! vaka/1 events to core events (with the protocol's field limits), engine answers to replies.
use vaka_core::event::MAX_PRIORITY;
use vaka_core::gps::Fix;
use vaka_core::{AlarmInfo, DeviceId, DeviceKey, Event, EventKind, Lane, UnixMillis};
use vaka_proto::pb::{self, event::Body, Status};
use vaka_router::{Reply, SubmitError};

pub(crate) const MAX_KEY: usize = 128;
pub(crate) const MAX_DEVICE: usize = 128;
const MAX_CODE: usize = 32;
const MAX_TEXT: usize = 1024;
const MAX_CALLBACKS: usize = 8;
const MAX_CALLBACK: usize = 32;
const MAX_NAME: usize = 64;
const MAX_REFERENCE: usize = 128;

/// Why an event was not handed to the router; becomes its reply.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// The event is malformed: ERROR.
    Malformed(String),
    /// Well formed but not allowed: REJECTED.
    Forbidden(String),
}

fn text_field(name: &str, s: &str, max: usize, required: bool) -> Result<(), Refusal> {
    if required && s.is_empty() {
        return Err(Refusal::Malformed(format!("{name} is empty")));
    }
    if s.len() > max {
        return Err(Refusal::Malformed(format!(
            "{name} longer than {max} bytes"
        )));
    }
    Ok(())
}

fn fix(f: &pb::Fix) -> Fix {
    Fix {
        time_ms: f.time_ms,
        lat: f.lat,
        lon: f.lon,
        accuracy_m: f.accuracy_m,
        speed_mps: f.speed_mps,
        course_deg: f.course_deg,
        valid: f.valid.unwrap_or(true),
    }
}

/// The device an event is for: the connection's own when `device` is empty.
pub(crate) fn target(own: &DeviceKey, device: &str) -> Result<DeviceKey, Refusal> {
    if device.is_empty() || device == own.device.as_str() {
        return Ok(own.clone());
    }
    text_field("device", device, MAX_DEVICE, true)?;
    if device.contains('\0') {
        return Err(Refusal::Malformed("device contains NUL".into()));
    }
    Ok(DeviceKey {
        tenant: own.tenant.clone(),
        device: DeviceId::new(device),
    })
}

/// Checks the key (before anything else: every other answer carries it).
pub(crate) fn check_key(key: &str) -> Result<(), Refusal> {
    text_field("key", key, MAX_KEY, true)
}

/// Builds the core event. `ev` is consumed (its strings move into the event).
pub(crate) fn to_core(
    ev: pb::Event,
    device: DeviceKey,
    received_ms: UnixMillis,
    raw: Vec<u8>,
) -> Result<Event, Refusal> {
    let mut fix_out = ev.fix.as_ref().map(fix);
    let occurred_ms = match ev.occurred_ms {
        None => None,
        Some(t) => Some(
            UnixMillis::try_from(t)
                .map_err(|_| Refusal::Malformed(format!("occurred_ms {t} out of range")))?,
        ),
    };
    let kind = match ev.body {
        None => return Err(Refusal::Malformed("event has no body".into())),
        Some(Body::Alarm(a)) => {
            text_field("alarm.code", &a.code, MAX_CODE, true)?;
            if a.priority > u32::from(MAX_PRIORITY) {
                return Err(Refusal::Malformed(format!(
                    "alarm.priority {} out of 0..={MAX_PRIORITY}",
                    a.priority
                )));
            }
            if let Some(t) = &a.text {
                text_field("alarm.text", t, MAX_TEXT, false)?;
            }
            if a.callback.len() > MAX_CALLBACKS {
                return Err(Refusal::Malformed(format!(
                    "more than {MAX_CALLBACKS} callback numbers"
                )));
            }
            for c in &a.callback {
                text_field("alarm.callback", c, MAX_CALLBACK, true)?;
            }
            EventKind::Alarm(AlarmInfo {
                code: a.code,
                priority: a.priority as u8,
                text: a.text,
                callback: a.callback,
            })
        }
        Some(Body::Technical(t)) => {
            text_field("technical.code", &t.code, MAX_CODE, true)?;
            EventKind::Technical {
                code: t.code,
                restoral: t.restoral,
            }
        }
        Some(Body::Heartbeat(_)) => EventKind::Heartbeat,
        Some(Body::Position(p)) => {
            if fix_out.is_some() {
                return Err(Refusal::Malformed(
                    "a position event carries its fix in `position`, not in `fix`".into(),
                ));
            }
            fix_out = Some(fix(&p));
            EventKind::Position
        }
        Some(Body::Telemetry(t)) => {
            text_field("telemetry.name", &t.name, MAX_NAME, true)?;
            EventKind::Telemetry {
                name: t.name,
                value: t.value,
            }
        }
        Some(Body::Reset(r)) => {
            text_field("reset.reference", &r.reference, MAX_REFERENCE, true)?;
            EventKind::Reset {
                reference: r.reference,
            }
        }
    };
    Ok(Event {
        device,
        key: ev.key,
        received_ms,
        kind,
        fix: fix_out,
        raw,
        occurred_ms,
    })
}

/// The reply head every answer carries.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub key: String,
    pub device: String,
    pub index: u32,
}

impl Head {
    pub(crate) fn reply(self, status: Status, reason: String) -> pb::EventReply {
        pb::EventReply {
            key: self.key,
            device: self.device,
            status: status as i32,
            reason,
            event_id: None,
            alarm_id: None,
            duplicate: false,
            index: self.index,
        }
    }
}

/// The reply to an event the router answered. `OK` unless an alarm-lane event finds no centre
/// able to act (`NOT_TREATED`, invariant 5). Engine trouble (busy, shutting down, store failure)
/// is `BUSY`: nothing was stored, the device retries or falls back.
pub(crate) fn reply_of(head: Head, lane: Lane, r: Result<Reply, SubmitError>) -> pb::EventReply {
    match r {
        Ok(Reply::Accepted {
            event,
            alarm,
            duplicate,
            centre_available,
        }) => {
            let status = if lane == Lane::Alarm && !centre_available {
                Status::NotTreated
            } else {
                Status::Ok
            };
            let mut rep = head.reply(status, String::new());
            rep.event_id = Some(event.0);
            rep.alarm_id = alarm.map(|a| a.0);
            rep.duplicate = duplicate;
            rep
        }
        Ok(Reply::Rejected { reason }) => head.reply(Status::Rejected, reason),
        Err(e) => head.reply(Status::Busy, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::{AlarmId, EventId};

    fn own() -> DeviceKey {
        DeviceKey::new("t", "d1")
    }

    fn ev(body: Option<Body>) -> pb::Event {
        pb::Event {
            key: "k".into(),
            device: String::new(),
            fix: None,
            body,
            occurred_ms: None,
        }
    }

    #[test]
    fn the_device_time_is_kept_and_one_out_of_range_refused() {
        let mut e = ev(Some(Body::Heartbeat(pb::Heartbeat {})));
        e.occurred_ms = Some(1_700_000_000_000);
        let c = to_core(e, own(), 1_700_000_500_000, vec![]).unwrap();
        assert_eq!(c.occurred_ms, Some(1_700_000_000_000));
        assert_eq!(c.at(), 1_700_000_000_000);
        let mut e = ev(Some(Body::Heartbeat(pb::Heartbeat {})));
        e.occurred_ms = Some(1_800_000_000_000);
        let c = to_core(e, own(), 1_700_000_500_000, vec![]).unwrap();
        assert_eq!(
            c.at(),
            1_700_000_500_000,
            "a clock ahead is taken as the arrival"
        );
        let mut e = ev(Some(Body::Heartbeat(pb::Heartbeat {})));
        e.occurred_ms = Some(u64::MAX);
        assert!(matches!(
            to_core(e, own(), 1, vec![]),
            Err(Refusal::Malformed(m)) if m.contains("occurred_ms")
        ));
    }

    #[test]
    fn alarm_with_location_converts() {
        let mut e = ev(Some(Body::Alarm(pb::Alarm {
            code: "0010".into(),
            priority: 9,
            text: Some("fall".into()),
            callback: vec!["+46".into()],
        })));
        e.fix = Some(pb::Fix {
            time_ms: 5,
            lat: 59.0,
            lon: 18.0,
            accuracy_m: Some(10.0),
            speed_mps: None,
            course_deg: None,
            valid: None,
        });
        let c = to_core(e, own(), 7, vec![1]).unwrap();
        assert_eq!(c.lane(), Lane::Alarm);
        assert_eq!(c.fix.unwrap().accuracy_m, Some(10.0));
        assert!(c.fix.unwrap().valid, "absent validity means valid");
        assert_eq!(c.received_ms, 7);
        assert_eq!(c.raw, vec![1]);
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        let cases = vec![
            ev(None),
            ev(Some(Body::Alarm(pb::Alarm {
                code: "0010".into(),
                priority: 10,
                ..Default::default()
            }))),
            ev(Some(Body::Alarm(pb::Alarm::default()))),
            ev(Some(Body::Telemetry(pb::Telemetry {
                name: "x".repeat(65),
                value: 1.0,
            }))),
            ev(Some(Body::Reset(pb::Reset::default()))),
            pb::Event {
                fix: Some(pb::Fix::default()),
                ..ev(Some(Body::Position(pb::Fix::default())))
            },
        ];
        for c in cases {
            assert!(
                matches!(
                    to_core(c.clone(), own(), 0, vec![]),
                    Err(Refusal::Malformed(_))
                ),
                "{c:?}"
            );
        }
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(129)).is_err());
        assert!(target(&own(), &"d".repeat(129)).is_err());
        assert_eq!(target(&own(), "").unwrap(), own());
        assert_eq!(target(&own(), "x").unwrap(), DeviceKey::new("t", "x"));
    }

    #[test]
    fn replies_follow_invariant_5() {
        let head = || Head {
            key: "k".into(),
            device: String::new(),
            index: 3,
        };
        let acc = |centre_available| {
            Ok(Reply::Accepted {
                event: EventId(4),
                alarm: Some(AlarmId(4)),
                duplicate: true,
                centre_available,
            })
        };
        let r = reply_of(head(), Lane::Alarm, acc(false));
        assert_eq!(r.status(), Status::NotTreated);
        assert_eq!(
            (r.event_id, r.alarm_id, r.duplicate, r.index),
            (Some(4), Some(4), true, 3)
        );
        assert_eq!(
            reply_of(head(), Lane::Alarm, acc(true)).status(),
            Status::Ok
        );
        assert_eq!(
            reply_of(head(), Lane::Telemetry, acc(false)).status(),
            Status::Ok
        );
        assert_eq!(
            reply_of(head(), Lane::Telemetry, Err(SubmitError::Busy)).status(),
            Status::Busy
        );
        assert_eq!(
            reply_of(
                head(),
                Lane::Alarm,
                Ok(Reply::Rejected { reason: "x".into() })
            )
            .status(),
            Status::Rejected
        );
    }
}
