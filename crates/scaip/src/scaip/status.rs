//! Message types (`mty`) and status codes (`stc`): what kind of event a request is.

use std::fmt;

/// `mty`: the message type of an `<mrq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mty {
    /// `ME`: a message (alarm or status); the default when `mty` is absent.
    #[default]
    Message,
    /// `RE`: reset/abort of the request with the same `ref`.
    Reset,
    /// `IN`: information update.
    Info,
    /// `PI`: heartbeat.
    Heartbeat,
}

impl Mty {
    /// Parse the two-letter code (case-insensitive, for lenient devices).
    pub fn parse(s: &str) -> Option<Mty> {
        match s.to_ascii_uppercase().as_str() {
            "ME" => Some(Mty::Message),
            "RE" => Some(Mty::Reset),
            "IN" => Some(Mty::Info),
            "PI" => Some(Mty::Heartbeat),
            _ => None,
        }
    }

    /// The two-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Mty::Message => "ME",
            Mty::Reset => "RE",
            Mty::Info => "IN",
            Mty::Heartbeat => "PI",
        }
    }
}

impl fmt::Display for Mty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What the engine does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Someone needs help: route to a centre with a deadline.
    Alarm,
    /// The equipment needs attention (battery, power, unknown status).
    Technical,
    /// A condition has cleared.
    Restoral,
    /// Informational (presence marking and the like).
    Info,
    /// `mty=PI`: supervision only.
    Heartbeat,
    /// `mty=RE`: cancels the open request with the same `ref`.
    Reset,
}

/// The status codes we name, with their class. Codes not listed are treated as technical:
/// safer to show an operator something unknown than to drop it, and not worth waking a
/// centre with an alarm deadline.
const STATUS_TABLE: &[(&str, &str, EventClass)] = &[
    ("0009", "alarm, automatic", EventClass::Alarm),
    ("0010", "alarm, manual", EventClass::Alarm),
    ("0016", "battery low", EventClass::Technical),
    ("0094", "restoral", EventClass::Restoral),
    ("0110", "assistance call", EventClass::Alarm),
    ("0111", "staff check-out", EventClass::Info),
];

/// A short English name for a known `stc` code (4 digits).
pub fn stc_name(stc: &str) -> Option<&'static str> {
    STATUS_TABLE
        .iter()
        .find(|(c, _, _)| *c == stc)
        .map(|(_, n, _)| *n)
}

/// Classify a request by `mty` and (normalised, 4-digit) `stc`.
///
/// Heartbeats and resets are what their `mty` says. Otherwise a listed code gives its class;
/// no code means an alarm for `ME` (the standard's default) and info for `IN`; an unknown
/// code is technical.
pub fn classify(mty: Mty, stc: Option<&str>) -> EventClass {
    match (mty, stc) {
        (Mty::Heartbeat, _) => EventClass::Heartbeat,
        (Mty::Reset, _) => EventClass::Reset,
        (Mty::Message, None) => EventClass::Alarm,
        (Mty::Info, None) => EventClass::Info,
        (_, Some(code)) => STATUS_TABLE
            .iter()
            .find(|(c, _, _)| *c == code)
            .map_or(EventClass::Technical, |(_, _, class)| *class),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mty_codes() {
        for m in [Mty::Message, Mty::Reset, Mty::Info, Mty::Heartbeat] {
            assert_eq!(Mty::parse(m.code()), Some(m));
        }
        assert_eq!(Mty::parse("pi"), Some(Mty::Heartbeat));
        assert_eq!(Mty::parse("XX"), None);
        assert_eq!(Mty::default(), Mty::Message);
    }

    #[test]
    fn classification_table() {
        use EventClass::*;
        let cases: &[(Mty, Option<&str>, EventClass)] = &[
            (Mty::Message, None, Alarm),
            (Mty::Message, Some("0010"), Alarm),
            (Mty::Message, Some("0009"), Alarm),
            (Mty::Message, Some("0110"), Alarm),
            (Mty::Message, Some("0016"), Technical),
            (Mty::Message, Some("0094"), Restoral),
            (Mty::Message, Some("0111"), Info),
            (Mty::Message, Some("0777"), Technical),
            (Mty::Info, None, Info),
            (Mty::Info, Some("0016"), Technical),
            (Mty::Heartbeat, Some("0010"), Heartbeat),
            (Mty::Reset, None, Reset),
        ];
        for (mty, stc, want) in cases {
            assert_eq!(classify(*mty, *stc), *want, "{mty} {stc:?}");
        }
        assert_eq!(stc_name("0016"), Some("battery low"));
        assert_eq!(stc_name("9999"), None);
    }
}
