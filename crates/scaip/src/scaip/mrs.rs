//! The response `<mrs>`: built strictly (fixed tag order, values clamped to their ranges,
//! text escaped) and parsed leniently (for test clients and the load tool).

use std::fmt;

use super::xml::{read_fields, write_element, XmlFail};

/// `snu`: the status number of an `<mrs>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Snu {
    /// 0: received and handled; voice may follow if `mre` says so.
    Ok,
    /// 1: request too long.
    TooLong,
    /// 2: not an `<mrq>` we can read.
    InvalidFormat,
    /// 3: a value is out of range.
    WrongData,
    /// 4: HOLD: being processed, resend the same request later.
    Hold,
    /// 5: not treated: the device should try its next action.
    NotTreated,
    /// 6: busy.
    Busy,
    /// 7: a mandatory tag is missing.
    MandatoryMissing,
    /// 10: `ref` missing or invalid.
    ReferenceMissing,
    /// 99: undefined error.
    Undefined,
}

impl Snu {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Snu::Ok => 0,
            Snu::TooLong => 1,
            Snu::InvalidFormat => 2,
            Snu::WrongData => 3,
            Snu::Hold => 4,
            Snu::NotTreated => 5,
            Snu::Busy => 6,
            Snu::MandatoryMissing => 7,
            Snu::ReferenceMissing => 10,
            Snu::Undefined => 99,
        }
    }

    /// The status for a numeric code, if it is one the standard defines.
    pub fn from_code(code: u8) -> Option<Snu> {
        Some(match code {
            0 => Snu::Ok,
            1 => Snu::TooLong,
            2 => Snu::InvalidFormat,
            3 => Snu::WrongData,
            4 => Snu::Hold,
            5 => Snu::NotTreated,
            6 => Snu::Busy,
            7 => Snu::MandatoryMissing,
            10 => Snu::ReferenceMissing,
            99 => Snu::Undefined,
            _ => return None,
        })
    }

    /// True for the statuses that end a SCAIP session (0, 5, 6): the device stops resending.
    pub fn ends_session(self) -> bool {
        matches!(self, Snu::Ok | Snu::NotTreated | Snu::Busy)
    }
}

impl fmt::Display for Snu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// `mre`: which voice path the receiver offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaReply {
    /// 0: no voice.
    None,
    /// 1: full duplex.
    Duplex,
    /// 2: simplex, device microphone.
    SimplexMicrophone,
    /// 3: simplex, device speaker.
    SimplexSpeaker,
}

impl MediaReply {
    /// Numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// From a numeric code.
    pub fn from_code(code: u8) -> Option<MediaReply> {
        [
            MediaReply::None,
            MediaReply::Duplex,
            MediaReply::SimplexMicrophone,
            MediaReply::SimplexSpeaker,
        ]
        .get(usize::from(code))
        .copied()
    }
}

/// `cre`: callback request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callback {
    /// 01-60: the device should accept calls for this many minutes (clamped to 1..=60).
    WindowMinutes(u8),
    /// 61: the device calls its predefined receiver.
    PredefinedReceiver,
    /// 62: the device calls the number in `tnu`.
    CallTransferredNumber,
}

impl Callback {
    /// Numeric code, windows clamped into 1..=60.
    pub fn code(self) -> u8 {
        match self {
            Callback::WindowMinutes(m) => m.clamp(1, 60),
            Callback::PredefinedReceiver => 61,
            Callback::CallTransferredNumber => 62,
        }
    }

    /// From a numeric code.
    pub fn from_code(code: u8) -> Option<Callback> {
        match code {
            1..=60 => Some(Callback::WindowMinutes(code)),
            61 => Some(Callback::PredefinedReceiver),
            62 => Some(Callback::CallTransferredNumber),
            _ => None,
        }
    }
}

/// A response `<mrs>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mrs {
    /// `ref` of the request answered (empty only when the request had none).
    pub reference: String,
    /// `snu` status.
    pub snu: Snu,
    /// `ste` status text.
    pub ste: Option<String>,
    /// `cve` common version.
    pub cve: Option<String>,
    /// `mre` media reply.
    pub mre: Option<MediaReply>,
    /// `cre` callback request.
    pub cre: Option<Callback>,
    /// `tnu` transferred number.
    pub tnu: Option<String>,
    /// `hbi` heartbeat interval in minutes (clamped to 1..=1440 when written).
    pub hbi: Option<u16>,
}

/// Why an `<mrs>` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrsError {
    /// Not XML, or not an `<mrs>`.
    #[error("not an mrs document: {0}")]
    InvalidFormat(String),
    /// `ref` or `snu` absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A value is out of range.
    #[error("bad value in {0}")]
    WrongData(&'static str),
}

impl Mrs {
    /// A response with only `ref` and `snu`.
    pub fn new(reference: impl Into<String>, snu: Snu) -> Mrs {
        Mrs {
            reference: reference.into(),
            snu,
            ste: None,
            cve: None,
            mre: None,
            cre: None,
            tnu: None,
            hbi: None,
        }
    }

    /// Canonical XML: declaration, no namespace, tags in the standard's order.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrs>");
        write_element(&mut out, "ref", &self.reference);
        write_element(&mut out, "snu", &self.snu.code().to_string());
        if let Some(v) = &self.ste {
            write_element(&mut out, "ste", v);
        }
        if let Some(v) = &self.cve {
            write_element(&mut out, "cve", v);
        }
        if let Some(v) = self.mre {
            write_element(&mut out, "mre", &v.code().to_string());
        }
        if let Some(v) = self.cre {
            write_element(&mut out, "cre", &format!("{:02}", v.code()));
        }
        if let Some(v) = &self.tnu {
            write_element(&mut out, "tnu", v);
        }
        if let Some(v) = self.hbi {
            write_element(&mut out, "hbi", &v.clamp(1, 1440).to_string());
        }
        out.push_str("</mrs>");
        out
    }

    /// Parse an `<mrs>` leniently (namespaces, order, whitespace, unknown tags).
    pub fn parse(xml: &str) -> Result<Mrs, MrsError> {
        let (fields, fail) = read_fields(xml, "mrs");
        match fail {
            Some(XmlFail::NotXml(e)) => return Err(MrsError::InvalidFormat(e)),
            Some(XmlFail::WrongRoot(r)) => {
                return Err(MrsError::InvalidFormat(format!("root <{r}>")))
            }
            None => {}
        }
        let get = |tag: &str| fields.iter().find(|f| f.is(tag)).map(|f| &*f.text);
        let num = |tag: &'static str| -> Result<Option<u16>, MrsError> {
            match get(tag) {
                None | Some("") => Ok(None),
                Some(v) if v.len() <= 4 && v.bytes().all(|b| b.is_ascii_digit()) => {
                    v.parse().map(Some).map_err(|_| MrsError::WrongData(tag))
                }
                Some(_) => Err(MrsError::WrongData(tag)),
            }
        };
        let text = |tag: &str| get(tag).filter(|v| !v.is_empty()).map(str::to_owned);
        let reference = get("ref").ok_or(MrsError::Missing("ref"))?.to_owned();
        let snu = num("snu")?.ok_or(MrsError::Missing("snu"))?;
        let snu = u8::try_from(snu)
            .ok()
            .and_then(Snu::from_code)
            .ok_or(MrsError::WrongData("snu"))?;
        let small = |v: Option<u16>| v.map(|v| u8::try_from(v).unwrap_or(u8::MAX));
        let mre = match small(num("mre")?) {
            None => None,
            Some(c) => Some(MediaReply::from_code(c).ok_or(MrsError::WrongData("mre"))?),
        };
        let cre = match small(num("cre")?) {
            None => None,
            Some(c) => Some(Callback::from_code(c).ok_or(MrsError::WrongData("cre"))?),
        };
        let hbi = num("hbi")?;
        if hbi.is_some_and(|h| !(1..=1440).contains(&h)) {
            return Err(MrsError::WrongData("hbi"));
        }
        Ok(Mrs {
            reference,
            snu,
            ste: text("ste"),
            cve: text("cve"),
            mre,
            cre,
            tnu: text("tnu"),
            hbi,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn canonical_output() {
        let mut m = Mrs::new("A1", Snu::Ok);
        assert_eq!(
            m.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrs><ref>A1</ref><snu>0</snu></mrs>"
        );
        m.ste = Some("Ok & <received>".into());
        m.cve = Some("01.00".into());
        m.mre = Some(MediaReply::Duplex);
        m.cre = Some(Callback::WindowMinutes(5));
        m.tnu = Some("gsm:+46701234567".into());
        m.hbi = Some(5000);
        assert_eq!(
            m.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrs><ref>A1</ref><snu>0</snu>\
<ste>Ok &amp; &lt;received&gt;</ste><cve>01.00</cve><mre>1</mre><cre>05</cre>\
<tnu>gsm:+46701234567</tnu><hbi>1440</hbi></mrs>"
        );
        assert_eq!(
            Mrs::new("x", Snu::Hold)
                .to_xml()
                .matches("<snu>4</snu>")
                .count(),
            1
        );
    }

    #[test]
    fn lenient_parse() {
        let xml = "<?xml version='1.0'?>\n<mrs xmlns=\"http://www.hi.se/2012/XScaipXML\">\n  <hbi> 15 </hbi>\n  \
<snu>4</snu><ref>R7</ref><x-vendor>?</x-vendor><cre>62</cre></mrs>";
        let m = Mrs::parse(xml).unwrap();
        assert_eq!(m.reference, "R7");
        assert_eq!(m.snu, Snu::Hold);
        assert_eq!(m.hbi, Some(15));
        assert_eq!(m.cre, Some(Callback::CallTransferredNumber));
        let cases: &[(&str, MrsError)] = &[
            ("<mrq/>", MrsError::InvalidFormat("root <mrq>".into())),
            ("<mrs><snu>0</snu></mrs>", MrsError::Missing("ref")),
            ("<mrs><ref>a</ref></mrs>", MrsError::Missing("snu")),
            (
                "<mrs><ref>a</ref><snu>8</snu></mrs>",
                MrsError::WrongData("snu"),
            ),
            (
                "<mrs><ref>a</ref><snu>0</snu><mre>4</mre></mrs>",
                MrsError::WrongData("mre"),
            ),
            (
                "<mrs><ref>a</ref><snu>0</snu><cre>63</cre></mrs>",
                MrsError::WrongData("cre"),
            ),
            (
                "<mrs><ref>a</ref><snu>0</snu><hbi>0</hbi></mrs>",
                MrsError::WrongData("hbi"),
            ),
            (
                "<mrs><ref>a</ref><snu>x</snu></mrs>",
                MrsError::WrongData("snu"),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(Mrs::parse(xml).as_ref(), Err(want), "{xml}");
        }
        assert!(matches!(
            Mrs::parse("<mrs><ref>"),
            Err(MrsError::InvalidFormat(_))
        ));
    }

    #[test]
    fn snu_codes() {
        for c in 0..=255u8 {
            if let Some(s) = Snu::from_code(c) {
                assert_eq!(s.code(), c);
            }
        }
        assert!(Snu::Ok.ends_session() && Snu::Busy.ends_session() && !Snu::Hold.ends_session());
    }

    fn text() -> impl Strategy<Value = String> {
        // Printable text without surrounding whitespace (the reader trims).
        "[^\\p{Cc}\\u{FFFE}\\u{FFFF}]{0,30}".prop_map(|s| s.trim().to_owned())
    }

    fn snu() -> impl Strategy<Value = Snu> {
        let all: Vec<Snu> = (0u8..=99).filter_map(Snu::from_code).collect();
        proptest::sample::select(all)
    }

    prop_compose! {
        fn mrs()(
            reference in "[0-9A-Za-z]{1,16}", snu in snu(),
            ste in proptest::option::of(text()).prop_map(|o| o.filter(|s| !s.is_empty())),
            cve in proptest::option::of("[0-9]{2}\\.[0-9]{2}"),
            mre in proptest::option::of((0u8..4).prop_map(|c| MediaReply::from_code(c).unwrap())),
            cre in proptest::option::of((1u8..=62).prop_map(|c| Callback::from_code(c).unwrap())),
            tnu in proptest::option::of("(gsm|sip):\\+?[0-9]{3,15}"),
            hbi in proptest::option::of(1u16..=1440),
        ) -> Mrs {
            Mrs { reference, snu, ste, cve, mre, cre, tnu, hbi }
        }
    }

    proptest! {
        #[test]
        fn round_trip(m in mrs()) {
            prop_assert_eq!(Mrs::parse(&m.to_xml()), Ok(m));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,200}", xmlish in "(<|>|/|mrs|ref|snu|hbi|&|;|#|[0-9]| ){0,60}") {
            let _ = Mrs::parse(&s);
            let _ = Mrs::parse(&xmlish);
        }
    }
}
