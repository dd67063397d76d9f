//! What a SCAIP device says and what the answers mean, without I/O: a planned event as the
//! `<mrq>` it sends, the Call-ID that lets shared readers find the device, and the verdict of an
//! `<mrs>` or a final SIP response. Also whether a fleet can speak SCAIP at all.
use vaka_scaip::scaip::{is_valid_reference, GeoPos, Lge, Mrq, Mty, Snu};

use crate::fleet::Fleet;
use crate::scenario::{Kind, Planned};

/// SCAIP info code for telemetry (090-099 are vendor codes).
pub const TELEMETRY_ICO: &str = "090";
/// SCAIP status codes for technical events (SS 91100 Annex C).
pub const STC_BATTERY_LOW: &str = "0016";
pub const STC_RESTORAL: &str = "0094";

/// Checks the first `n` devices of `fleet` can speak SCAIP: a password (digest), an id that is a
/// SCAIP `cid` (digits) and a device type that is a `dty` (1-4 digits).
pub fn check_devices(fleet: &Fleet, n: usize) -> Result<(), String> {
    let devices = &fleet.devices[..n.min(fleet.devices.len())];
    let fix = "write a fleet with `vaka-load fleet-config` (digit ids, type, password)";
    let no_password = devices.iter().filter(|d| d.password.is_none()).count();
    if let Some(d) = devices.iter().find(|d| d.password.is_none()) {
        return Err(format!(
            "SIP needs a digest password for every device: {no_password} of the {n} devices of \
             tenant {:?} have none (e.g. {:?}); give them `password` or {fix}",
            fleet.tenant, d.id
        ));
    }
    if let Some(d) = devices
        .iter()
        .find(|d| !(1..=32).contains(&d.id.len()) || !d.id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "SIP: device id {:?} cannot be a SCAIP cid (1-32 digits); {fix}",
            d.id
        ));
    }
    if let Some(d) = devices.iter().find(|d| !valid_dty(&d.device_type)) {
        return Err(format!(
            "SIP: device {:?} has type {:?}, not a SCAIP device type (1-4 digits, e.g. \"0003\")",
            d.id, d.device_type
        ));
    }
    Ok(())
}

fn valid_dty(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A status code of 3 or 4 digits as SCAIP writes it (4 digits).
fn stc(code: &str) -> Option<String> {
    ((3..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{code:0>4}"))
}

/// The `stc` of a technical event's code: SCAIP has no names, only numbers.
pub fn technical_stc(code: &str, restoral: bool) -> Option<String> {
    if restoral {
        return Some(STC_RESTORAL.into());
    }
    match code {
        "BATLOW" => Some(STC_BATTERY_LOW.into()),
        other => stc(other),
    }
}

/// Degrees rounded to 1e-6 (about 0.1 m), so that `geo` stays short.
fn micro_degrees(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The `<mrq>` a SCAIP device `cid` of type `dty` sends for a planned event.
pub fn to_mrq(p: &Planned, cid: &str, dty: &str) -> Result<Mrq, String> {
    if !is_valid_reference(&p.key) {
        return Err(format!("key {:?} is not a SCAIP ref", p.key));
    }
    let mut m = Mrq {
        reference: p.key.clone(),
        cid: cid.into(),
        dty: format!("{dty:0>4}"),
        ..Mrq::default()
    };
    match &p.kind {
        Kind::Alarm { code, priority } => {
            m.mty = Mty::Message;
            m.stc = Some(stc(code).ok_or_else(|| format!("alarm code {code:?} is no stc"))?);
            m.pri = Some(
                u8::try_from(*priority)
                    .ok()
                    .filter(|p| *p <= 9)
                    .ok_or_else(|| format!("priority {priority} is not 0-9"))?,
            );
        }
        Kind::Technical { code, restoral } => {
            m.mty = Mty::Message;
            m.stc = Some(
                technical_stc(code, *restoral)
                    .ok_or_else(|| format!("technical code {code:?} has no SCAIP stc"))?,
            );
        }
        Kind::Heartbeat => m.mty = Mty::Heartbeat,
        Kind::Position {
            time_ms, lat, lon, ..
        } => {
            m.mty = Mty::Info;
            m.lge = Some(Lge {
                geo: Some(GeoPos {
                    lat: micro_degrees(*lat),
                    lon: micro_degrees(*lon),
                }),
                tim_ms: Some(*time_ms),
                gga: None,
                rejected: Vec::new(),
            });
        }
        Kind::Telemetry { name, value } => {
            m.mty = Mty::Info;
            m.ico = Some(TELEMETRY_ICO.into());
            m.ite = Some(format!("{name}={value:.2}"));
        }
    }
    Ok(m)
}

/// The Call-ID of an event: its ref and the device's index, so that a reader shared by many
/// devices knows whose a message is.
pub fn call_id(reference: &str, device: usize) -> String {
    format!("{reference}-{device}@vaka-load")
}

/// The (ref, device index) a Call-ID of [`call_id`] names.
pub fn parse_call_id(id: &str) -> Option<(&str, usize)> {
    let (local, host) = id.split_once('@')?;
    if host != "vaka-load" {
        return None;
    }
    let (reference, device) = local.rsplit_once('-')?;
    let device = device.parse().ok().filter(|_| !device.starts_with('+'))?;
    is_valid_reference(reference).then_some((reference, device))
}

/// What an `<mrs>` status means for the event it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (`not_treated`: but no centre could act, snu 5).
    Acked { not_treated: bool },
    /// snu 4: resend the same request later.
    Hold,
    /// Not stored: the error kind.
    Failed(&'static str),
}

pub fn verdict(snu: Snu) -> Verdict {
    match snu {
        Snu::Ok => Verdict::Acked { not_treated: false },
        Snu::NotTreated => Verdict::Acked { not_treated: true },
        Snu::Hold => Verdict::Hold,
        Snu::Busy => Verdict::Failed("busy"),
        Snu::TooLong => Verdict::Failed("too_long"),
        Snu::InvalidFormat => Verdict::Failed("invalid_format"),
        Snu::WrongData => Verdict::Failed("wrong_data"),
        Snu::MandatoryMissing => Verdict::Failed("mandatory_missing"),
        Snu::ReferenceMissing => Verdict::Failed("reference_missing"),
        Snu::Undefined => Verdict::Failed("undefined"),
    }
}

/// The error kind of a final SIP response other than 2xx and 401.
pub(super) fn response_error_kind(code: u16) -> String {
    match code {
        403 => "forbidden".into(),
        404 => "not_found".into(),
        503 => "unavailable".into(),
        c => format!("sip_{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::tests::fleet;
    use vaka_core::{DeviceKey, EventKind};
    use vaka_ingest::sip::convert;

    fn planned(kind: Kind) -> Planned {
        Planned {
            device: 3,
            key: "00000512a".into(),
            kind,
        }
    }

    /// Every planned kind, as the engine's SIP front reads it.
    #[test]
    fn every_kind_becomes_an_mrq_the_engine_reads_as_that_kind() {
        let cases = [
            (
                Kind::Alarm {
                    code: "0010",
                    priority: 5,
                },
                "alarm",
            ),
            (
                Kind::Technical {
                    code: "BATLOW",
                    restoral: false,
                },
                "battery",
            ),
            (
                Kind::Technical {
                    code: "BATLOW",
                    restoral: true,
                },
                "restoral",
            ),
            (Kind::Heartbeat, "heartbeat"),
            (
                Kind::Position {
                    time_ms: 1_700_000_123_456,
                    lat: 59.336_111_23,
                    lon: 18.072_778_9,
                    accuracy_m: 8.0,
                },
                "position",
            ),
            (
                Kind::Telemetry {
                    name: "temp",
                    value: 21.456,
                },
                "telemetry",
            ),
        ];
        for (kind, what) in cases {
            let xml = to_mrq(&planned(kind), "90000003", "51").unwrap().to_xml();
            let mrq = Mrq::parse(&xml).unwrap_or_else(|e| panic!("{what}: {e}: {xml}"));
            assert_eq!(
                (mrq.reference.as_str(), mrq.cid.as_str(), mrq.dty.as_str()),
                ("00000512a", "90000003", "0051")
            );
            let e = convert::to_event(
                &mrq,
                DeviceKey::new("t", "90000003"),
                1_700_000_200_000,
                xml.clone().into_bytes(),
            );
            assert_eq!(e.key, "00000512a", "{what}");
            match (what, &e.kind) {
                ("alarm", EventKind::Alarm(a)) => {
                    assert_eq!((a.code.as_str(), a.priority), ("0010", 5))
                }
                ("battery", EventKind::Technical { code, restoral }) => {
                    assert_eq!((code.as_str(), *restoral), ("0016", false))
                }
                ("restoral", EventKind::Technical { restoral, .. }) => assert!(*restoral),
                ("heartbeat", EventKind::Heartbeat) => {}
                ("position", EventKind::Position) => {
                    let f = e.fix.as_ref().unwrap();
                    assert_eq!((f.lat, f.lon), (59.336111, 18.072779));
                    assert_eq!(f.time_ms, 1_700_000_123_456, "tim keeps milliseconds");
                }
                ("telemetry", EventKind::Telemetry { name, .. }) => {
                    assert_eq!(name, "scaip.info.090");
                    assert_eq!(mrq.ite.as_deref(), Some("temp=21.46"));
                }
                (w, k) => panic!("{w}: {k:?}"),
            }
        }
    }

    #[test]
    fn what_scaip_cannot_say_is_refused() {
        let bad = |kind| to_mrq(&planned(kind), "1", "3").unwrap_err();
        assert!(bad(Kind::Alarm {
            code: "fall",
            priority: 5
        })
        .contains("stc"));
        assert!(bad(Kind::Alarm {
            code: "0010",
            priority: 10
        })
        .contains("0-9"));
        assert!(bad(Kind::Technical {
            code: "MAINS",
            restoral: false
        })
        .contains("MAINS"));
        let mut p = planned(Kind::Heartbeat);
        p.key = "not-alnum".into();
        assert!(to_mrq(&p, "1", "3").unwrap_err().contains("ref"));
        assert_eq!(technical_stc("016", false).as_deref(), Some("0016"));
    }

    #[test]
    fn call_ids_name_the_event_and_its_device() {
        let id = call_id("0000051a", 12_345);
        assert_eq!(id, "0000051a-12345@vaka-load");
        assert_eq!(parse_call_id(&id), Some(("0000051a", 12_345)));
        for other in [
            "0000051a-1@elsewhere",
            "0000051a@vaka-load",
            "0000051a-x@vaka-load",
            "0000051a-+1@vaka-load",
            "bad-ref-1@vaka-load",
            "-1@vaka-load",
            "probe1234@vaka-load",
        ] {
            assert_eq!(parse_call_id(other), None, "{other}");
        }
    }

    #[test]
    fn mrs_statuses_decide_the_event() {
        assert_eq!(verdict(Snu::Ok), Verdict::Acked { not_treated: false });
        assert_eq!(
            verdict(Snu::NotTreated),
            Verdict::Acked { not_treated: true }
        );
        assert_eq!(verdict(Snu::Hold), Verdict::Hold);
        assert_eq!(verdict(Snu::Busy), Verdict::Failed("busy"));
        for (snu, kind) in [
            (Snu::InvalidFormat, "invalid_format"),
            (Snu::WrongData, "wrong_data"),
            (Snu::MandatoryMissing, "mandatory_missing"),
            (Snu::ReferenceMissing, "reference_missing"),
        ] {
            assert_eq!(verdict(snu), Verdict::Failed(kind));
        }
        assert_eq!(response_error_kind(403), "forbidden");
        assert_eq!(response_error_kind(500), "sip_500");
    }

    #[test]
    fn devices_that_cannot_speak_scaip_are_named() {
        assert!(check_devices(&fleet(&["100001", "100002"], Some("pw"), "0003"), 2).is_ok());
        let e = check_devices(&fleet(&["100001", "100002"], None, "0003"), 2).unwrap_err();
        assert!(e.contains("password") && e.contains("2 of the 2"), "{e}");
        let e = check_devices(&fleet(&["d1"], Some("pw"), "0003"), 1).unwrap_err();
        assert!(e.contains("cid"), "{e}");
        let e = check_devices(&fleet(&["1"], Some("pw"), "tracker"), 1).unwrap_err();
        assert!(e.contains("device type"), "{e}");
    }
}
