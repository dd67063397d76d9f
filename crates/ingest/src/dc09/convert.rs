//! DC-09 messages to core events, and the answer the router's outcome gets.
//!
//! One message may carry several SIA events; each becomes one core event. Codes map to Vaka's
//! kinds through the tables below (the SIA DC-03 letters and the Contact ID ranges); a code
//! in neither table becomes a technical alarm, so an unknown code is seen by a person rather
//! than lost.
//!
//! | SIA-DCS code                                   | Contact ID (qualifier)            | event |
//! |------------------------------------------------|-----------------------------------|-------|
//! | `xA` of an alarm family (BA FA PA MA HA GA KA QA SA TA UA WA ZA) | 100-169 (new, repeat) | `Alarm` (`sia:BA`, `cid:130`), priority by family |
//! | alarm restorals `xR` (BR FR ...)               | 100-169 (restoral)                | `Technical { restoral: true }` of the alarm code: stored, an alarm is closed only by its receiver |
//! | troubles `xT`                                  | 200-399, 500-599 (new)... see [`cid_class`] | `Technical` (`sia:AT/zone`) |
//! | trouble restorals `xJ`, AR YR LR NR XR         | the same codes (restoral)         | `Technical { restoral: true }` of the trouble |
//! | tests RP RX TX                                 | 601 602 603 604 607               | the device's test call: a test `Alarm` (`test:sia:RP`, `test:cid:602`), offered marked as a test, never escalated; feeds supervision |
//! | openings OP OA OG OK OQ OR OS; closings CL CA CF CG CK CQ CS | 400-499 (new: opening, restoral: closing) | `Telemetry` `dc09.opening.<code>` / `dc09.closing.<code>`, value = user or zone |
//! | bypasses `xB`, unbypasses `xU`                 | 500-599 bypasses: troubles above  | `Telemetry` `dc09.status.<code>` |
//! | `NULL` (link test)                             |                                   | `Heartbeat` |
//!
//! Idempotency key: `<seq>/<hash of data and xdata>/<index>`. A resend (after a lost ACK, or
//! after a NAK with a corrected timestamp) repeats sequence and data, so it is the same key
//! and makes no second alarm (invariant 2); a new message that reuses a sequence number after
//! the 9999 wrap differs in its data or is outside the idempotency window. A NULL poll's key
//! is its time of arrival: every poll is news to supervision.
//! The account inside SIA data (`#acct|`, a cloud receiver's sub-account) is not used: the
//! header's account is the device.
use vaka_core::gps::Fix;
use vaka_core::{AlarmInfo, DeviceKey, Event, EventKind, Lane, UnixMillis};
use vaka_dc09::{CidData, Message, Payload, Qualifier, SiaEvent};
use vaka_router::{Reply, SubmitError};

/// What a code is to Vaka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A person or a sensor needs help: an alarm with this priority.
    Alarm(u8),
    /// A technical condition named by `condition` (also what its restoral names).
    Trouble,
    /// Ends the condition named by the code.
    Restoral,
    /// A test report: proof of life.
    Test,
    Opening,
    Closing,
    /// A status change with no alarm (bypass, unbypass, other reports).
    Status,
}

/// Priority of an alarm family's first letter (9 highest, as SCAIP `pri`).
fn sia_alarm_priority(family: u8) -> Option<u8> {
    Some(match family {
        b'F' | b'P' | b'M' | b'G' | b'K' | b'Q' => 9,
        b'H' | b'S' => 8,
        b'B' | b'U' => 7,
        b'W' | b'Z' => 6,
        b'T' => 5,
        _ => return None,
    })
}

/// The class of a SIA code and the condition it opens or restores (`sia:AT`).
pub fn sia_class(code: &str) -> (Class, String) {
    let b = code.as_bytes();
    let (first, second) = match b {
        [f, s] => (*f, *s),
        _ => return (Class::Trouble, format!("sia:{code}")),
    };
    let same = format!("sia:{code}");
    let family = |letter: u8| format!("sia:{}{}", char::from(first), char::from(letter));
    match code {
        "RP" | "RX" | "TX" => return (Class::Test, same),
        "OP" | "OA" | "OG" | "OK" | "OQ" | "OR" | "OS" => return (Class::Opening, same),
        "CL" | "CA" | "CF" | "CG" | "CK" | "CQ" | "CS" => return (Class::Closing, same),
        // AC, battery, phone line, network, transmitter battery: restored with `R`.
        "AR" | "YR" | "LR" | "NR" | "XR" => return (Class::Restoral, family(b'T')),
        _ => {}
    }
    match (sia_alarm_priority(first), second) {
        (Some(p), b'A') => (Class::Alarm(p), same),
        (Some(_), b'R') => (Class::Restoral, family(b'A')),
        (_, b'T') => (Class::Trouble, same),
        (_, b'J') => (Class::Restoral, family(b'T')),
        (_, b'B' | b'U') => (Class::Status, same),
        _ => (Class::Trouble, same),
    }
}

/// The class of a Contact ID event (its code and qualifier).
pub fn cid_class(code: u16, q: Qualifier) -> Class {
    let restoral = q == Qualifier::Restoral;
    match code {
        100..=169 if restoral => Class::Restoral,
        // Medical, fire, panic.
        100..=129 => Class::Alarm(9),
        130..=149 => Class::Alarm(7),
        150..=169 => Class::Alarm(6),
        400..=499 if q == Qualifier::New => Class::Opening,
        400..=499 if restoral => Class::Closing,
        400..=499 => Class::Status,
        601..=604 | 607 => Class::Test,
        // 608: periodic test with a trouble present; other 6xx are logs and reports.
        600..=699 if code != 608 => Class::Status,
        _ if restoral => Class::Restoral,
        _ => Class::Trouble,
    }
}

/// The core events of an accepted message from `device`; `raw` (the frame as received, the
/// ciphertext when encrypted) is kept with each for audit, the decrypted data in the text.
pub fn to_events(
    msg: &Message,
    device: &DeviceKey,
    received_ms: UnixMillis,
    raw: &[u8],
) -> Vec<Event> {
    let fix = fix(msg, received_ms);
    let base = format!("{}/{:016x}", msg.header.seq, content_hash(msg));
    let event = |i: usize, kind: EventKind| Event {
        device: device.clone(),
        key: format!("{base}/{i}"),
        received_ms,
        kind,
        fix,
        raw: raw.to_vec(),
        occurred_ms: None,
    };
    match &msg.payload {
        Payload::Null => vec![Event {
            key: format!("null/{received_ms}"),
            ..event(0, EventKind::Heartbeat)
        }],
        Payload::Sia(sia) => sia
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| event(i, sia_kind(e, sia.text.as_deref(), msg)))
            .collect(),
        Payload::Cid(cid) => vec![event(0, cid_kind(cid, msg))],
    }
}

fn sia_kind(e: &SiaEvent, text: Option<&str>, msg: &Message) -> EventKind {
    let (class, condition) = sia_class(&e.code);
    let zone = e.address.as_deref().unwrap_or("");
    let number = zone.parse::<f64>().unwrap_or(0.0);
    let mut words = Vec::new();
    if let Some(n) = &e.name {
        words.push(n.clone());
    }
    if !zone.is_empty() {
        words.push(format!("zone {zone}"));
    }
    if let Some(a) = &e.area {
        words.push(format!("area {a}"));
    }
    if let Some(u) = &e.user {
        words.push(format!("user {u}"));
    }
    words.extend(text.map(str::to_owned));
    words.extend(alarm_text(msg));
    kind(class, condition, zone, number, words)
}

fn cid_kind(c: &CidData, msg: &Message) -> EventKind {
    let class = cid_class(c.code, c.qualifier);
    let zone = format!("{:03}", c.zone);
    let mut words = vec![format!("group {:02}", c.group), format!("zone {zone}")];
    words.extend(alarm_text(msg));
    let condition = format!("cid:{:03}", c.code);
    kind(class, condition, &zone, f64::from(c.zone), words)
}

/// The `I` (alarm text) and `L` (location) extended data, as panels send them.
fn alarm_text(msg: &Message) -> impl Iterator<Item = String> + '_ {
    msg.xdata
        .iter()
        .filter(|x| x.id == 'I' || x.id == 'L')
        .map(|x| x.value.clone())
}

fn kind(class: Class, condition: String, zone: &str, number: f64, words: Vec<String>) -> EventKind {
    let with_zone = if zone.is_empty() {
        condition.clone()
    } else {
        format!("{condition}/{zone}")
    };
    let text = (!words.is_empty()).then(|| words.join("; "));
    match class {
        Class::Alarm(priority) => EventKind::Alarm(AlarmInfo {
            code: condition,
            priority,
            text,
            callback: Vec::new(),
        }),
        Class::Trouble => EventKind::Technical {
            code: with_zone,
            restoral: false,
        },
        Class::Restoral => EventKind::Technical {
            code: with_zone,
            restoral: true,
        },
        Class::Test => EventKind::Alarm(AlarmInfo {
            code: format!("{}{condition}", vaka_core::event::TEST_CALL_PREFIX),
            priority: 0,
            text,
            callback: Vec::new(),
        }),
        Class::Opening | Class::Closing | Class::Status => {
            let what = match class {
                Class::Opening => "opening",
                Class::Closing => "closing",
                _ => "status",
            };
            EventKind::Telemetry {
                name: format!("dc09.{what}.{condition}"),
                value: number,
            }
        }
    }
}

/// `X` longitude and `Y` latitude (decimal degrees), when both are there and in range.
fn fix(msg: &Message, received_ms: UnixMillis) -> Option<Fix> {
    let value = |id: char| {
        msg.xdata
            .iter()
            .find(|x| x.id == id)
            .and_then(|x| x.value.trim().parse::<f64>().ok())
    };
    let (lon, lat) = (value('X')?, value('Y')?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
        .then(|| Fix::at(received_ms, lat, lon))
}

/// FNV-1a over the data and the extended data: what a resend repeats and a new message
/// (almost always) does not.
fn content_hash(msg: &Message) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(msg.header.token.as_str().as_bytes());
    eat(msg.data.as_bytes());
    for x in &msg.xdata {
        eat(&[0, x.id as u8]);
        eat(x.value.as_bytes());
    }
    h
}

/// Whether the panel may be told ACK, given the router's answer for each event of the message
/// (with its lane). ACK only when every event is stored (invariant 1) and, for alarm-lane
/// events, some receiver of the device's chain can act (invariant 5: otherwise DUH, so the
/// panel turns to its other path; the event is stored and offered once a centre connects).
/// `Err` names why not.
pub fn answer(results: &[(Lane, Result<Reply, SubmitError>)]) -> Result<(), &'static str> {
    for (lane, r) in results {
        match r {
            Ok(Reply::Accepted {
                centre_available: false,
                ..
            }) if *lane == Lane::Alarm => return Err("no_centre"),
            Ok(Reply::Accepted { .. }) => {}
            Ok(Reply::Rejected { .. }) => return Err("rejected"),
            Err(SubmitError::Busy) => return Err("busy"),
            Err(SubmitError::ShuttingDown) => return Err("shutting_down"),
            Err(SubmitError::Store(_)) => return Err("store"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_dc09::{decode, Window};

    const NOW: u64 = 1_758_730_801_000;

    fn msg(frame: &str) -> Message {
        // Frames from tests are written without CRC care: build them with the codec.
        decode(frame.as_bytes(), |_| None, NOW, &Window::default()).unwrap()
    }

    fn frame(token: &str, data: &str) -> String {
        let body = format!("\"{token}\"0042L0#1234[{data}");
        let crc = vaka_dc09::crc::crc16(body.as_bytes());
        format!("\n{crc:04X}{:04X}{body}\r", body.len())
    }

    fn events(token: &str, data: &str) -> Vec<Event> {
        let m = msg(&frame(token, data));
        to_events(&m, &DeviceKey::new("t", "p"), NOW as i64, b"raw")
    }

    #[test]
    fn sia_codes_map_to_kinds() {
        assert_eq!(sia_class("FA"), (Class::Alarm(9), "sia:FA".into()));
        assert_eq!(sia_class("BA"), (Class::Alarm(7), "sia:BA".into()));
        assert_eq!(sia_class("BR"), (Class::Restoral, "sia:BA".into()));
        assert_eq!(sia_class("AT"), (Class::Trouble, "sia:AT".into()));
        assert_eq!(sia_class("AR"), (Class::Restoral, "sia:AT".into()));
        assert_eq!(sia_class("BJ"), (Class::Restoral, "sia:BT".into()));
        assert_eq!(sia_class("RP").0, Class::Test);
        assert_eq!(sia_class("OP").0, Class::Opening);
        assert_eq!(sia_class("CL").0, Class::Closing);
        assert_eq!(sia_class("BB").0, Class::Status);
        // Unknown: seen by a person, not dropped.
        assert_eq!(sia_class("ZZ"), (Class::Trouble, "sia:ZZ".into()));
    }

    #[test]
    fn contact_id_codes_map_to_kinds() {
        assert_eq!(cid_class(101, Qualifier::New), Class::Alarm(9));
        assert_eq!(cid_class(130, Qualifier::Repeat), Class::Alarm(7));
        assert_eq!(cid_class(130, Qualifier::Restoral), Class::Restoral);
        assert_eq!(cid_class(301, Qualifier::New), Class::Trouble);
        assert_eq!(cid_class(301, Qualifier::Restoral), Class::Restoral);
        assert_eq!(cid_class(401, Qualifier::New), Class::Opening);
        assert_eq!(cid_class(401, Qualifier::Restoral), Class::Closing);
        assert_eq!(cid_class(602, Qualifier::New), Class::Test);
        assert_eq!(cid_class(608, Qualifier::New), Class::Trouble);
        assert_eq!(cid_class(625, Qualifier::New), Class::Status);
        assert_eq!(cid_class(999, Qualifier::New), Class::Trouble);
    }

    #[test]
    fn a_sia_message_becomes_one_event_per_code() {
        let ev = events("SIA-DCS", "#1234|Nri1/BA01/AT]");
        assert_eq!(ev.len(), 2);
        let EventKind::Alarm(a) = &ev[0].kind else {
            panic!("{:?}", ev[0].kind)
        };
        assert_eq!((a.code.as_str(), a.priority), ("sia:BA", 7));
        assert_eq!(a.text.as_deref(), Some("zone 01; area 1"));
        assert_eq!(
            ev[1].kind,
            EventKind::Technical {
                code: "sia:AT".into(),
                restoral: false
            }
        );
        assert_ne!(ev[0].key, ev[1].key);
        assert_eq!(ev[0].lane(), Lane::Alarm);
    }

    #[test]
    fn restoral_pairs_with_its_trouble_by_zone() {
        let t = events("SIA-DCS", "#1234|NBT05]");
        let r = events("SIA-DCS", "#1234|NBJ05]");
        let code = |e: &Event| match &e.kind {
            EventKind::Technical { code, restoral } => (code.clone(), *restoral),
            k => panic!("{k:?}"),
        };
        assert_eq!(code(&t[0]), ("sia:BT/05".into(), false));
        assert_eq!(code(&r[0]), ("sia:BT/05".into(), true));
    }

    #[test]
    fn contact_id_alarm_with_position() {
        let ev = events("ADM-CID", "#1234|1101 01 015][X18.0686][Y59.3293][Ifall]");
        let EventKind::Alarm(a) = &ev[0].kind else {
            panic!()
        };
        assert_eq!((a.code.as_str(), a.priority), ("cid:101", 9));
        assert_eq!(a.text.as_deref(), Some("group 01; zone 015; fall"));
        let f = ev[0].fix.as_ref().unwrap();
        assert_eq!((f.lat, f.lon), (59.3293, 18.0686));
    }

    #[test]
    fn resend_has_the_same_key_new_data_does_not() {
        let a = events("SIA-DCS", "#1234|NBA01]");
        let again = events("SIA-DCS", "#1234|NBA01]");
        let other = events("SIA-DCS", "#1234|NBA02]");
        assert_eq!(a[0].key, again[0].key);
        assert_ne!(a[0].key, other[0].key);
    }

    #[test]
    fn null_is_a_heartbeat_and_a_test_report_a_test_call() {
        let n = events("NULL", "]");
        assert_eq!(n[0].kind, EventKind::Heartbeat);
        assert_eq!(n[0].key, format!("null/{NOW}"));
        let t = events("ADM-CID", "#1234|1602 00 000]");
        assert!(t[0].kind.is_test_call(), "{:?}", t[0].kind);
        assert!(
            matches!(&t[0].kind, EventKind::Alarm(a) if a.code == "test:cid:602" && a.priority == 0)
        );
        let s = events("SIA-DCS", "#1234|NRP]");
        assert!(matches!(&s[0].kind, EventKind::Alarm(a) if a.code == "test:sia:RP"));
    }

    #[test]
    fn ack_only_when_stored_and_someone_can_act() {
        let ok = |avail| {
            Ok(Reply::Accepted {
                event: vaka_core::EventId(1),
                alarm: None,
                duplicate: false,
                centre_available: avail,
            })
        };
        assert_eq!(answer(&[(Lane::Alarm, ok(true))]), Ok(()));
        assert_eq!(answer(&[(Lane::Telemetry, ok(false))]), Ok(()));
        assert_eq!(answer(&[(Lane::Alarm, ok(false))]), Err("no_centre"));
        assert_eq!(
            answer(&[
                (Lane::Telemetry, ok(true)),
                (Lane::Alarm, Err(SubmitError::Busy))
            ]),
            Err("busy")
        );
    }
}
