//! `<mrq>` to core events, and the router's answer to the `snu` of the `<mrs>`.
//!
//! | class (mty, stc)          | event                                   | key        |
//! |---------------------------|-----------------------------------------|------------|
//! | alarm (ME, alarm or none) | `Alarm` (stc, pri, stt/dte, crd)         | ref        |
//! | technical (unknown stc)   | `Technical { restoral: false }`          | ref        |
//! | restoral (0094)           | `Technical { restoral: true }`           | ref        |
//! | reset (RE)                | `Reset { reference: ref }`               | `RE/` ref  |
//! | heartbeat (PI)            | `Heartbeat`                              | ref        |
//! | info (IN) with a position | `Position`                               | ref        |
//! | info without a position   | `Telemetry { name: "scaip.info.<code>" }`| ref        |
//!
//! A reset carries the `ref` of the alarm it cancels, so its own idempotency key must differ
//! from that alarm's (otherwise it would be taken for a resend of the alarm).
//! `lge` (geo, else a valid GGA) becomes the event's fix, whatever the class.
use vaka_core::gps::Fix;
use vaka_core::{AlarmInfo, DeviceKey, Event, EventKind, Lane, UnixMillis};
use vaka_router::{Reply, SubmitError};
use vaka_scaip::scaip::{EventClass, Mrq, Snu};

/// Alarm code used when an alarm `<mrq>` has no `stc` (SCAIP: omitted means alarm).
pub const DEFAULT_ALARM_CODE: &str = "alarm";

/// Rough metres per unit of HDOP (a typical user range error), for a GGA fix's accuracy.
const HDOP_METRES: f64 = 5.0;

const DAY_MS: i64 = 86_400_000;

/// The core event for an accepted `<mrq>` from `device`, with `raw` (the XML) kept for audit.
pub fn to_event(mrq: &Mrq, device: DeviceKey, received_ms: UnixMillis, raw: Vec<u8>) -> Event {
    let reference = mrq.reference.clone();
    let fix = fix(mrq, received_ms);
    let (key, kind) = match mrq.class() {
        EventClass::Alarm => {
            let text = [mrq.stt.as_deref(), mrq.dte.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            let info = AlarmInfo {
                code: mrq.stc.clone().unwrap_or_else(|| DEFAULT_ALARM_CODE.into()),
                priority: mrq.priority(),
                text: (!text.is_empty()).then_some(text),
                callback: mrq.crd.clone(),
            };
            (reference, EventKind::Alarm(info))
        }
        class @ (EventClass::Technical | EventClass::Restoral) => (
            reference,
            EventKind::Technical {
                code: mrq.stc.clone().unwrap_or_default(),
                restoral: class == EventClass::Restoral,
            },
        ),
        EventClass::Reset => (
            format!("RE/{reference}"),
            EventKind::Reset {
                reference: mrq.reference.clone(),
            },
        ),
        EventClass::Heartbeat => (reference, EventKind::Heartbeat),
        EventClass::Info if fix.is_some() => (reference, EventKind::Position),
        EventClass::Info => {
            let code = mrq.stc.as_deref().or(mrq.ico.as_deref()).unwrap_or("none");
            (
                reference,
                EventKind::Telemetry {
                    name: format!("scaip.info.{code}"),
                    value: 1.0,
                },
            )
        }
    };
    Event {
        device,
        key,
        received_ms,
        kind,
        fix,
        raw,
        occurred_ms: None,
    }
}

/// The position in `lge`: `geo` (with `tim`), else a valid GGA sentence.
fn fix(mrq: &Mrq, received_ms: UnixMillis) -> Option<Fix> {
    let lge = mrq.lge.as_ref()?;
    let gga = lge.gga();
    let pos = lge.position()?;
    let from_gga = lge.geo.is_none();
    let time_ms = lge
        .tim_ms
        .or_else(|| {
            let tod = gga.as_ref()?.time_of_day_ms?;
            from_gga.then(|| time_of_day_near(received_ms, i64::from(tod)))
        })
        .unwrap_or(received_ms);
    let accuracy_m = gga
        .filter(|_| from_gga)
        .and_then(|g| g.hdop)
        .map(|h| (h * HDOP_METRES) as f32);
    Some(Fix {
        time_ms,
        lat: pos.lat,
        lon: pos.lon,
        accuracy_m,
        speed_mps: None,
        course_deg: None,
        valid: true,
    })
}

/// A UTC time of day (GGA carries no date) placed on the day that puts it nearest `now_ms`.
fn time_of_day_near(now_ms: i64, tod_ms: i64) -> i64 {
    let t = now_ms.div_euclid(DAY_MS) * DAY_MS + tod_ms;
    if t - now_ms > DAY_MS / 2 {
        t - DAY_MS
    } else if now_ms - t > DAY_MS / 2 {
        t + DAY_MS
    } else {
        t
    }
}

/// The `snu` for the router's answer to an event of `lane` (invariant 5: an alarm-lane event
/// that no centre can act on is stored but answered "not treated"), with a status text.
pub fn snu_for(result: &Result<Reply, SubmitError>, lane: Lane) -> (Snu, Option<String>) {
    match result {
        Ok(Reply::Accepted {
            centre_available: false,
            ..
        }) if lane == Lane::Alarm => (
            Snu::NotTreated,
            Some("stored, but no alarm centre can act now".into()),
        ),
        Ok(Reply::Accepted { .. }) => (Snu::Ok, None),
        Ok(Reply::Rejected { reason }) => (Snu::WrongData, Some(reason.clone())),
        Err(SubmitError::Busy) => (Snu::Busy, Some("busy, not stored".into())),
        Err(SubmitError::ShuttingDown) => (Snu::Busy, Some("shutting down, not stored".into())),
        Err(SubmitError::Store(_)) => (Snu::Busy, Some("storage failure, not stored".into())),
    }
}

/// The `hbi` (minutes, 1..=1440) for a configured heartbeat interval in seconds.
pub fn hbi_minutes(heartbeat_secs: u32) -> u16 {
    heartbeat_secs.div_ceil(60).clamp(1, 1440) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::{AlarmId, EventId};

    fn parse(body: &str) -> Mrq {
        Mrq::parse(&format!(
            "<mrq><ref>R1</ref><cid>100001</cid><dty>0003</dty>{body}</mrq>"
        ))
        .unwrap()
    }

    fn event(body: &str) -> Event {
        to_event(
            &parse(body),
            DeviceKey::new("t", "100001"),
            1_700_000_000_000,
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn classes_map_to_events() {
        let a = event("<mty>ME</mty><stc>0010</stc><pri>7</pri><stt>Hjälp</stt><dte>Knapp</dte><crd>gsm:+4670</crd>");
        assert_eq!(a.key, "R1");
        assert_eq!(
            a.kind,
            EventKind::Alarm(AlarmInfo {
                code: "0010".into(),
                priority: 7,
                text: Some("Hjälp; Knapp".into()),
                callback: vec!["gsm:+4670".into()],
            })
        );
        assert_eq!(a.raw, b"<mty>ME</mty><stc>0010</stc><pri>7</pri><stt>Hj\xc3\xa4lp</stt><dte>Knapp</dte><crd>gsm:+4670</crd>".to_vec());
        match event("").kind {
            EventKind::Alarm(i) => assert_eq!((i.code.as_str(), i.priority), ("alarm", 0)),
            other => panic!("{other:?}"),
        }
        let cases: &[(&str, &str, EventKind)] = &[
            (
                "<stc>0016</stc>",
                "R1",
                EventKind::Technical {
                    code: "0016".into(),
                    restoral: false,
                },
            ),
            (
                "<stc>0094</stc>",
                "R1",
                EventKind::Technical {
                    code: "0094".into(),
                    restoral: true,
                },
            ),
            (
                "<mty>RE</mty>",
                "RE/R1",
                EventKind::Reset {
                    reference: "R1".into(),
                },
            ),
            ("<mty>PI</mty>", "R1", EventKind::Heartbeat),
            (
                "<mty>IN</mty><ico>091</ico>",
                "R1",
                EventKind::Telemetry {
                    name: "scaip.info.091".into(),
                    value: 1.0,
                },
            ),
            (
                "<mty>IN</mty><lge><geo>57.7089,11.9746</geo></lge>",
                "R1",
                EventKind::Position,
            ),
        ];
        for (body, key, kind) in cases {
            let e = event(body);
            assert_eq!((&e.key[..], &e.kind), (*key, kind), "{body}");
        }
    }

    #[test]
    fn positions_become_fixes() {
        let e = event("<lge><geo>57.7089,11.9746</geo><tim>2024-05-17T14:30:00+02</tim></lge>");
        let f = e.fix.unwrap();
        assert_eq!(
            (f.lat, f.lon, f.time_ms),
            (57.7089, 11.9746, 1_715_949_000_000)
        );
        assert!(
            matches!(e.kind, EventKind::Alarm(_)),
            "the alarm keeps its kind"
        );
        // GGA: 12:35:19 UTC placed on the day nearest receipt, accuracy from HDOP.
        let e = event("<mty>IN</mty><lge><gga>$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47</gga></lge>");
        let f = e.fix.unwrap();
        assert!((f.lat - 48.1173).abs() < 1e-4 && (f.lon - 11.516_666).abs() < 1e-4);
        assert_eq!(f.accuracy_m, Some(4.5));
        assert_eq!(f.time_ms.rem_euclid(DAY_MS), 45_319_000);
        assert!((f.time_ms - 1_700_000_000_000).abs() <= DAY_MS / 2);
        assert_eq!(e.kind, EventKind::Position);
        // A malformed position is dropped, the alarm is kept (never lost over its position).
        let e = event("<stc>0010</stc><lge><geo>95,10</geo></lge>");
        assert!(e.fix.is_none() && matches!(e.kind, EventKind::Alarm(_)));
        // GGA without a fix gives no position.
        let e = event("<mty>IN</mty><lge><gga>$GPGGA,123519,,,,,0,00,,,M,,M,,</gga></lge>");
        assert!(e.fix.is_none());
    }

    #[test]
    fn time_of_day_lands_on_the_nearest_day() {
        let day = 19_000 * DAY_MS;
        assert_eq!(time_of_day_near(day + 1_000, 500), day + 500);
        assert_eq!(time_of_day_near(day + 1_000, DAY_MS - 1_000), day - 1_000);
        assert_eq!(
            time_of_day_near(day + DAY_MS - 1_000, 1_000),
            day + DAY_MS + 1_000
        );
    }

    #[test]
    fn router_answers_map_to_snu() {
        let acc = |centre_available| {
            Ok(Reply::Accepted {
                event: EventId(1),
                alarm: Some(AlarmId(1)),
                duplicate: false,
                centre_available,
            })
        };
        assert_eq!(snu_for(&acc(true), Lane::Alarm).0, Snu::Ok);
        assert_eq!(snu_for(&acc(false), Lane::Alarm).0, Snu::NotTreated);
        assert_eq!(snu_for(&acc(false), Lane::Telemetry).0, Snu::Ok);
        assert_eq!(snu_for(&Err(SubmitError::Busy), Lane::Alarm).0, Snu::Busy);
        assert_eq!(
            snu_for(&Err(SubmitError::Store("x".into())), Lane::Alarm).0,
            Snu::Busy
        );
        assert_eq!(
            snu_for(
                &Ok(Reply::Rejected {
                    reason: "unknown device".into()
                }),
                Lane::Alarm
            ),
            (Snu::WrongData, Some("unknown device".into()))
        );
        assert_eq!(hbi_minutes(3600), 60);
        assert_eq!(hbi_minutes(61), 2);
        assert_eq!(hbi_minutes(1), 1);
        assert_eq!(hbi_minutes(10 * 86_400), 1440);
    }
}
