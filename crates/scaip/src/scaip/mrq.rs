//! The request `<mrq>`: lenient parsing with errors classified by the `snu` that answers them.
//!
//! Leniency follows what devices send: any namespace or none, any order and whitespace,
//! unknown tags ignored, empty optional tags treated as absent, and the patterns on which the
//! standard's tables and schema disagree accepted in their wider form (cid 1-32 digits,
//! did 1-16 printable, sco 0-3, hbo 0-3 or "001", stc 3 or 4 digits). Code values are
//! normalised (stc/dty to 4 digits, dco/lco/ico to 3) so that later lookups are exact.
//! Free texts are not length-checked: refusing an alarm over a long label helps nobody, and
//! the SIP size limit already bounds them.

use std::fmt;

use super::location::{format_time, parse_geo, parse_gga, parse_time, GeoPos, Gga};
use super::mrs::Snu;
use super::status::{classify, EventClass, Mty};
use super::xml::{read_fields, write_element, Field, XmlFail};

/// Position data from `<lge>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lge {
    /// `geo`: WGS-84 position.
    pub geo: Option<GeoPos>,
    /// `tim`: time of the position, Unix milliseconds.
    pub tim_ms: Option<i64>,
    /// `gga`: the NMEA sentence as received (already validated; see [`Lge::gga`]).
    pub gga: Option<String>,
    /// Values that were present but malformed (`"geo"`, `"tim"`, `"gga"`) and were dropped.
    pub rejected: Vec<&'static str>,
}

impl Lge {
    /// The parsed GGA sentence.
    pub fn gga(&self) -> Option<Gga> {
        parse_gga(self.gga.as_deref()?).ok()
    }

    /// The best position: `geo`, else a valid GGA fix.
    pub fn position(&self) -> Option<GeoPos> {
        self.geo.or_else(|| self.gga()?.position())
    }
}

/// A request `<mrq>`. Field names follow the tags; see the crate's protocol notes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mrq {
    /// `ref`: 1-16 alphanumerics matching the answer to this request.
    pub reference: String,
    /// `ver`: "NN.NN"; absent means "01.00".
    pub ver: Option<String>,
    /// `sco`: system configuration 0-3.
    pub sco: Option<u8>,
    /// `cha`: 0 normal call, 1 callback requested.
    pub cha: Option<u8>,
    /// `mty`: message type (ME when absent).
    pub mty: Mty,
    /// `hbo`: heartbeat options 0-3 ("001" = 1 = can adjust).
    pub hbo: Option<u8>,
    /// `cid`: controller id, digits.
    pub cid: String,
    /// `dty`: device type, 4 digits.
    pub dty: String,
    /// `did`: device id.
    pub did: Option<String>,
    /// `dco`: device component, 3 digits.
    pub dco: Option<String>,
    /// `dte`: device text.
    pub dte: Option<String>,
    /// `crd`: caller ids (repeatable), e.g. `gsm:+46...`.
    pub crd: Vec<String>,
    /// `stc`: status code, 4 digits.
    pub stc: Option<String>,
    /// `stt`: status text.
    pub stt: Option<String>,
    /// `pri`: priority 0-9 (absent = 0, see [`Mrq::priority`]).
    pub pri: Option<u8>,
    /// `lco`: location code, 3 digits.
    pub lco: Option<String>,
    /// `lva`: location value.
    pub lva: Option<String>,
    /// `lge`: position.
    pub lge: Option<Lge>,
    /// `lte`: location text.
    pub lte: Option<String>,
    /// `ico`: info code, 3 digits.
    pub ico: Option<String>,
    /// `ite`: info text.
    pub ite: Option<String>,
    /// `ame`: number of fragments still to follow.
    pub ame: Option<u32>,
}

/// Which `snu` an unusable request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MrqErrorKind {
    /// snu 2: not XML or not an `<mrq>`.
    InvalidFormat,
    /// snu 3: a value is malformed or out of range.
    WrongData,
    /// snu 7: `cid` or `dty` is missing.
    MandatoryMissing,
    /// snu 10: `ref` is missing or invalid.
    ReferenceMissing,
}

impl MrqErrorKind {
    /// The answering status.
    pub fn snu(self) -> Snu {
        match self {
            MrqErrorKind::InvalidFormat => Snu::InvalidFormat,
            MrqErrorKind::WrongData => Snu::WrongData,
            MrqErrorKind::MandatoryMissing => Snu::MandatoryMissing,
            MrqErrorKind::ReferenceMissing => Snu::ReferenceMissing,
        }
    }
}

impl fmt::Display for MrqErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MrqErrorKind::InvalidFormat => "invalid format",
            MrqErrorKind::WrongData => "wrong data",
            MrqErrorKind::MandatoryMissing => "mandatory tag missing",
            MrqErrorKind::ReferenceMissing => "reference missing or invalid",
        })
    }
}

/// An `<mrq>` that cannot be accepted, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct MrqError {
    kind: MrqErrorKind,
    detail: String,
    reference: Option<String>,
}

impl MrqError {
    fn new(kind: MrqErrorKind, detail: impl Into<String>, reference: Option<String>) -> MrqError {
        MrqError {
            kind,
            detail: detail.into(),
            reference,
        }
    }

    /// The error class.
    pub fn kind(&self) -> MrqErrorKind {
        self.kind
    }

    /// The `snu` to answer with (2, 3, 7 or 10).
    pub fn snu(&self) -> u8 {
        self.kind.snu().code()
    }

    /// The `ref` as read, when there was one the answer can echo (for snu 10 it may be
    /// present but invalid, e.g. too long; it is then still echoed so the device can match).
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// What was wrong, for logs.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

fn all_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Left-pad a digit string with zeros to `width`.
fn pad(s: &str, width: usize) -> String {
    format!("{s:0>width$}")
}

/// A `cid` (controller id) is 1-32 digits.
pub fn is_valid_cid(s: &str) -> bool {
    all_digits(s, 1, 32)
}

/// A `ref` is 1-16 ASCII letters or digits.
pub fn is_valid_reference(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A `ref` we can echo even though it is invalid: short and free of control characters.
fn readable_reference(s: &str) -> Option<String> {
    (!s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control))
        .then(|| s.to_owned())
}

impl Mrq {
    /// Parse an `<mrq>`. Errors are checked in the order 2, 10, 7, 3, so that the most
    /// basic problem is the one reported.
    pub fn parse(xml: &str) -> Result<Mrq, MrqError> {
        let (fields, fail) = read_fields(xml, "mrq");
        let first = |tag: &str| fields.iter().find(|f| f.is(tag)).map(|f| &*f.text);
        let raw_ref = first("ref");
        let echo = raw_ref.and_then(readable_reference);
        if let Some(fail) = fail {
            let detail = match fail {
                XmlFail::NotXml(e) => e,
                XmlFail::WrongRoot(r) => format!("root element <{r}> is not <mrq>"),
            };
            return Err(MrqError::new(MrqErrorKind::InvalidFormat, detail, echo));
        }
        let reference = match raw_ref {
            Some(r) if is_valid_reference(r) => r.to_owned(),
            Some("") | None => {
                return Err(MrqError::new(
                    MrqErrorKind::ReferenceMissing,
                    "no ref",
                    None,
                ))
            }
            Some(_) => {
                return Err(MrqError::new(
                    MrqErrorKind::ReferenceMissing,
                    "ref is not 1-16 alphanumerics",
                    echo,
                ))
            }
        };
        for tag in ["cid", "dty"] {
            if !fields.iter().any(|f| f.is(tag) && !f.text.is_empty()) {
                return Err(MrqError::new(
                    MrqErrorKind::MandatoryMissing,
                    format!("no {tag}"),
                    Some(reference),
                ));
            }
        }
        build(&fields, reference.clone()).map_err(|tag| {
            MrqError::new(
                MrqErrorKind::WrongData,
                format!("bad value in {tag}"),
                Some(reference),
            )
        })
    }

    /// `pri` with its default 0.
    pub fn priority(&self) -> u8 {
        self.pri.unwrap_or(0)
    }

    /// `ver` with its default "01.00".
    pub fn version(&self) -> &str {
        self.ver.as_deref().unwrap_or("01.00")
    }

    /// True when the device lets the receiver adjust its heartbeat (`hbo` = 1, written "001").
    pub fn heartbeat_adjustable(&self) -> bool {
        self.hbo == Some(1)
    }

    /// What kind of event this request is (see [`classify`]).
    pub fn class(&self) -> EventClass {
        classify(self.mty, self.stc.as_deref())
    }

    /// Position from `lge`, if any.
    pub fn position(&self) -> Option<GeoPos> {
        self.lge.as_ref()?.position()
    }

    /// Canonical XML in the standard's tag order (used by test clients and the load tool).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq>");
        let opt = |out: &mut String, tag: &str, v: Option<String>| {
            if let Some(v) = v {
                write_element(out, tag, &v);
            }
        };
        write_element(&mut out, "ref", &self.reference);
        opt(&mut out, "ver", self.ver.clone());
        opt(&mut out, "sco", self.sco.map(|v| v.to_string()));
        opt(&mut out, "cha", self.cha.map(|v| v.to_string()));
        write_element(&mut out, "mty", self.mty.code());
        opt(
            &mut out,
            "hbo",
            self.hbo.map(|v| {
                if v == 0 {
                    "0".into()
                } else {
                    format!("{v:03}")
                }
            }),
        );
        write_element(&mut out, "cid", &self.cid);
        write_element(&mut out, "dty", &self.dty);
        opt(&mut out, "did", self.did.clone());
        opt(&mut out, "dco", self.dco.clone());
        opt(&mut out, "dte", self.dte.clone());
        for c in &self.crd {
            write_element(&mut out, "crd", c);
        }
        opt(&mut out, "stc", self.stc.clone());
        opt(&mut out, "stt", self.stt.clone());
        opt(&mut out, "pri", self.pri.map(|v| v.to_string()));
        opt(&mut out, "lco", self.lco.clone());
        opt(&mut out, "lva", self.lva.clone());
        if let Some(lge) = &self.lge {
            out.push_str("<lge>");
            opt(
                &mut out,
                "geo",
                lge.geo.map(|g| format!("{},{}", g.lat, g.lon)),
            );
            opt(&mut out, "tim", lge.tim_ms.map(format_time));
            opt(&mut out, "gga", lge.gga.clone());
            out.push_str("</lge>");
        }
        opt(&mut out, "lte", self.lte.clone());
        opt(&mut out, "ico", self.ico.clone());
        opt(&mut out, "ite", self.ite.clone());
        opt(&mut out, "ame", self.ame.map(|v| v.to_string()));
        out.push_str("</mrq>");
        out
    }
}

/// Validate and convert every known field; the error is the first offending tag.
fn build(fields: &[Field], reference: String) -> Result<Mrq, &'static str> {
    // First non-empty occurrence: duplicates of single-valued tags are ignored.
    let get = |tag: &str| {
        fields
            .iter()
            .find(|f| f.is(tag) && !f.text.is_empty())
            .map(|f| &*f.text)
    };
    let text = |tag: &str| get(tag).map(str::to_owned);
    // A small number within `max`, written with at most `digits` digits.
    let small = |tag: &'static str, digits: usize, max: u8| -> Result<Option<u8>, &'static str> {
        match get(tag) {
            None => Ok(None),
            Some(v) if all_digits(v, 1, digits) => {
                v.parse().ok().filter(|n| *n <= max).map(Some).ok_or(tag)
            }
            Some(_) => Err(tag),
        }
    };
    // A code of `min..=max` digits, normalised to `width`.
    let code = |tag: &'static str,
                min: usize,
                max: usize,
                width: usize|
     -> Result<Option<String>, &'static str> {
        match get(tag) {
            None => Ok(None),
            Some(v) if all_digits(v, min, max) => Ok(Some(pad(v, width))),
            Some(_) => Err(tag),
        }
    };

    let ver = text("ver");
    if let Some(v) = &ver {
        let ok = v
            .split_once('.')
            .is_some_and(|(a, b)| all_digits(a, 1, 2) && all_digits(b, 1, 2));
        if !ok {
            return Err("ver");
        }
    }
    let mty = match get("mty") {
        None => Mty::Message,
        Some(v) => Mty::parse(v).ok_or("mty")?,
    };
    let cid = get("cid")
        .filter(|v| is_valid_cid(v))
        .ok_or("cid")?
        .to_owned();
    let dty = code("dty", 1, 4, 4)?.ok_or("dty")?;
    let did = text("did");
    if did
        .as_ref()
        .is_some_and(|d| d.len() > 16 || !d.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return Err("did");
    }
    let lge = if fields
        .iter()
        .any(|f| f.is("lge") || f.path.starts_with("lge/"))
    {
        // A malformed position never costs the message: the value is dropped and named in
        // `rejected`, the alarm it came with goes on.
        let mut rejected = Vec::new();
        let mut keep = |tag: &'static str, ok: bool| {
            if !ok {
                rejected.push(tag);
            }
            ok
        };
        let geo = get("lge/geo").and_then(|g| {
            let r = parse_geo(g);
            keep("geo", r.is_ok()).then(|| r.ok()).flatten()
        });
        let tim_ms = get("lge/tim").and_then(|t| {
            let r = parse_time(t);
            keep("tim", r.is_ok()).then(|| r.ok()).flatten()
        });
        let gga = get("lge/gga")
            .filter(|g| keep("gga", parse_gga(g).is_ok()))
            .map(str::to_owned);
        Some(Lge {
            geo,
            tim_ms,
            gga,
            rejected,
        })
    } else {
        None
    };
    let ame = match get("ame") {
        None => None,
        Some(v) if all_digits(v, 1, 5) => v.parse().ok(),
        Some(_) => return Err("ame"),
    };
    Ok(Mrq {
        reference,
        ver,
        sco: small("sco", 2, 3)?,
        cha: small("cha", 1, 1)?,
        mty,
        hbo: small("hbo", 3, 3)?,
        cid,
        dty,
        did,
        dco: code("dco", 1, 3, 3)?,
        dte: text("dte"),
        crd: fields
            .iter()
            .filter(|f| f.is("crd") && !f.text.is_empty())
            .map(|f| f.text.to_string())
            .collect(),
        stc: code("stc", 3, 4, 4)?,
        stt: text("stt"),
        pri: small("pri", 1, 9)?,
        lco: code("lco", 1, 3, 3)?,
        lva: text("lva"),
        lge,
        lte: text("lte"),
        ico: code("ico", 1, 3, 3)?,
        ite: text("ite"),
        ame,
    })
}
