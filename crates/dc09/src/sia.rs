//! SIA-DCS data (SIA DC-03 events as DC-07/DC-09 carry them):
//! `#acct|N` then events and modifiers, then an optional `|A` text. For example
//! `#1234|Nri1/BA01/BA02` (burglary in zones 1 and 2 of area 1) or `#1234|NRR|Atest`.
//!
//! - An event is two uppercase letters (the code) and an address (zone, user or area number,
//!   digits, leading zeros kept), optionally followed by a `^name^`.
//! - A modifier is two lowercase letters and a value: `ri` area, `id` user, `ti` time
//!   (`hh:mm` or `hh:mm:ss`). A modifier holds for every event after it in the message.
//! - `/` separates fields; `dc09-spt` writes modifiers and the event without it
//!   (`Nri1id5ti12:00BA01`), which is read the same.
//!
//! Lenient on read: a missing `N`, names (`^..^`) after modifiers (skipped), unknown
//! lowercase modifiers with a numeric value (skipped): none of these should cost an alarm.

use crate::error::DecodeError;

const TOKEN: &str = "SIA-DCS";

/// The data of a SIA-DCS message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiaData {
    /// Account inside the data (`#acct|`), which may differ from the header's (a panel
    /// reporting for another through a cloud receiver).
    pub account: Option<String>,
    /// The events, in order.
    pub events: Vec<SiaEvent>,
    /// Free text after `|A`.
    pub text: Option<String>,
}

/// One SIA event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiaEvent {
    /// Two uppercase letters, e.g. `BA` burglary alarm, `FA` fire alarm, `RP` automatic test.
    pub code: String,
    /// Zone, user or area number the code refers to (digits), if any.
    pub address: Option<String>,
    /// `^name^` after the address, if any.
    pub name: Option<String>,
    /// Area (`ri`) in force for this event.
    pub area: Option<String>,
    /// User (`id`) in force for this event.
    pub user: Option<String>,
    /// Time (`ti`, `hh:mm` or `hh:mm:ss`) in force for this event.
    pub time: Option<String>,
}

fn bad(reason: &'static str) -> DecodeError {
    DecodeError::BadData {
        token: TOKEN,
        reason,
    }
}

fn take_while(s: &str, f: impl Fn(char) -> bool) -> (&str, &str) {
    let n = s.find(|c| !f(c)).unwrap_or(s.len());
    s.split_at(n)
}

/// `hh:mm` or `hh:mm:ss` at the start of `s`.
fn take_time(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let digits = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if !(digits(0) && digits(1) && b.get(2) == Some(&b':') && digits(3) && digits(4)) {
        return None;
    }
    let n = if b.get(5) == Some(&b':') && digits(6) && digits(7) {
        8
    } else {
        5
    };
    Some(s.split_at(n))
}

/// `^name^` at the start of `s`.
fn take_name(s: &str) -> Result<Option<(&str, &str)>, DecodeError> {
    let Some(inner) = s.strip_prefix('^') else {
        return Ok(None);
    };
    let end = inner.find('^').ok_or(bad("name not closed by '^'"))?;
    Ok(Some((&inner[..end], &inner[end + 1..])))
}

impl SiaData {
    /// Parse SIA-DCS data (between `[` and `]`).
    pub fn parse(data: &str) -> Result<SiaData, DecodeError> {
        let (account, rest) = match data.strip_prefix('#') {
            Some(after) => {
                let (acct, rest) = take_while(after, |c| c.is_ascii_alphanumeric());
                let rest = rest
                    .strip_prefix('|')
                    .ok_or(bad("account not followed by '|'"))?;
                if acct.is_empty() {
                    return Err(bad("empty account"));
                }
                (Some(acct.to_owned()), rest)
            }
            None => (None, data),
        };
        // Text only: `A<text>`.
        if let Some(text) = rest.strip_prefix('A') {
            return Ok(SiaData {
                account,
                events: Vec::new(),
                text: Some(text.to_owned()),
            });
        }
        let (body, text) = match rest.split_once("|A") {
            Some((body, text)) => (body, Some(text.to_owned())),
            None => (rest, None),
        };
        let events = match body.strip_prefix('N') {
            // `N` is the new-event marker, unless it is the first letter of a code whose
            // marker the sender left out (`NL01` read as `N` + `L01` fails, then as `NL01`).
            Some(after) => parse_events(after).or_else(|e| parse_events(body).map_err(|_| e))?,
            None => parse_events(body)?,
        };
        Ok(SiaData {
            account,
            events,
            text,
        })
    }

    /// Write the data in the canonical form: `#acct|N`, then per event the modifiers that
    /// changed (`ri`, `id`, `ti`, each followed by `/`), code, address, `^name^`, events
    /// separated by `/`; then `|A` text. A modifier holds until changed, so one that goes
    /// from set to unset within a message cannot be written and stays set.
    pub fn to_data(&self) -> String {
        let mut out = String::new();
        if let Some(a) = &self.account {
            out.push('#');
            out.push_str(a);
            out.push('|');
        }
        if self.events.is_empty() {
            if let Some(t) = &self.text {
                out.push('A');
                out.push_str(t);
                return out;
            }
        }
        out.push('N');
        let (mut area, mut user, mut time) = (None, None, None);
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for (prefix, now, then) in [
                ("ri", &e.area, &mut area),
                ("id", &e.user, &mut user),
                ("ti", &e.time, &mut time),
            ] {
                if let Some(v) = now {
                    if then.as_ref() != Some(v) {
                        out.push_str(prefix);
                        out.push_str(v);
                        out.push('/');
                        *then = Some(v.clone());
                    }
                }
            }
            out.push_str(&e.code);
            if let Some(a) = &e.address {
                out.push_str(a);
            }
            if let Some(n) = &e.name {
                out.push('^');
                out.push_str(n);
                out.push('^');
            }
        }
        if let Some(t) = &self.text {
            out.push_str("|A");
            out.push_str(t);
        }
        out
    }
}

fn parse_events(mut s: &str) -> Result<Vec<SiaEvent>, DecodeError> {
    let mut events = Vec::new();
    let (mut area, mut user, mut time) = (None, None, None);
    while let Some(c) = s.chars().next() {
        let two = s.get(..2).unwrap_or("");
        if c == '/' {
            s = &s[1..];
        } else if two.len() == 2 && two.chars().all(|c| c.is_ascii_lowercase()) {
            let after = &s[2..];
            let (value, rest) = if two == "ti" {
                take_time(after).ok_or(bad("ti not followed by hh:mm[:ss]"))?
            } else {
                take_while(after, |c| c.is_ascii_digit())
            };
            match two {
                "ri" => area = Some(value.to_owned()),
                "id" => user = Some(value.to_owned()),
                "ti" => time = Some(value.to_owned()),
                _ => {} // unknown modifier: skipped, see the module comment
            }
            // A modifier's `^name^` (area or user name) is skipped.
            s = take_name(rest)?.map_or(rest, |(_, r)| r);
        } else if two.len() == 2 && two.chars().all(|c| c.is_ascii_uppercase()) {
            let (address, rest) = take_while(&s[2..], |c| c.is_ascii_digit());
            let (name, rest) = match take_name(rest)? {
                Some((n, r)) => (Some(n.to_owned()), r),
                None => (None, rest),
            };
            events.push(SiaEvent {
                code: two.to_owned(),
                address: (!address.is_empty()).then(|| address.to_owned()),
                name,
                area: area.clone(),
                user: user.clone(),
                time: time.clone(),
            });
            s = rest;
        } else {
            return Err(bad("expected an event code, a modifier or '/'"));
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str, address: Option<&str>, area: Option<&str>) -> SiaEvent {
        SiaEvent {
            code: code.into(),
            address: address.map(Into::into),
            area: area.map(Into::into),
            ..SiaEvent::default()
        }
    }

    #[test]
    fn reference_vector_data() {
        let d = SiaData::parse("#1234|NRR|Atest").unwrap();
        assert_eq!(d.account.as_deref(), Some("1234"));
        assert_eq!(d.events, vec![ev("RR", None, None)]);
        assert_eq!(d.text.as_deref(), Some("test"));
        assert_eq!(d.to_data(), "#1234|NRR|Atest");
    }

    #[test]
    fn area_holds_for_following_events() {
        let d = SiaData::parse("#1234|Nri1/BA01/BA02/ri2/FA003").unwrap();
        assert_eq!(
            d.events,
            vec![
                ev("BA", Some("01"), Some("1")),
                ev("BA", Some("02"), Some("1")),
                ev("FA", Some("003"), Some("2")),
            ]
        );
        assert_eq!(d.to_data(), "#1234|Nri1/BA01/BA02/ri2/FA003");
    }

    #[test]
    fn dc09_spt_style_without_slashes() {
        // As dc09-spt's dc03event writes area, user, time, code, zone and names.
        let d = SiaData::parse("#1234|Nri2^Hall^id5^Eva^ti12:34:56FA07^Kitchen^|Asmoke").unwrap();
        let e = &d.events[0];
        assert_eq!(e.code, "FA");
        assert_eq!(e.address.as_deref(), Some("07"));
        assert_eq!(e.name.as_deref(), Some("Kitchen"));
        assert_eq!(e.area.as_deref(), Some("2"));
        assert_eq!(e.user.as_deref(), Some("5"));
        assert_eq!(e.time.as_deref(), Some("12:34:56"));
        assert_eq!(d.text.as_deref(), Some("smoke"));
    }

    #[test]
    fn text_only_and_empty() {
        let d = SiaData::parse("#1234|Ahello world").unwrap();
        assert!(d.events.is_empty());
        assert_eq!(d.text.as_deref(), Some("hello world"));
        assert_eq!(d.to_data(), "#1234|Ahello world");
        assert_eq!(SiaData::parse("").unwrap(), SiaData::default());
        assert_eq!(
            SiaData::parse("NRP0000").unwrap().events,
            vec![ev("RP", Some("0000"), None)]
        );
    }

    #[test]
    fn lenient_missing_n_and_unknown_modifier() {
        assert_eq!(
            SiaData::parse("#1234|BA01").unwrap().events,
            vec![ev("BA", Some("01"), None)]
        );
        // No marker, and the code starts with N.
        assert_eq!(
            SiaData::parse("#1234|NL01").unwrap().events,
            vec![ev("NL", Some("01"), None)]
        );
        assert_eq!(
            SiaData::parse("#1234|Npi3/BA01").unwrap().events,
            vec![ev("BA", Some("01"), None)]
        );
    }

    #[test]
    fn refuses_what_is_not_sia() {
        for bad in [
            "#|NBA01",
            "#1234NBA01",
            "#1234|N1BA",
            "#1234|NBA01^x",
            "#1234|Nti1:2/BA",
            "#1234|N b",
        ] {
            assert!(
                matches!(SiaData::parse(bad), Err(DecodeError::BadData { .. })),
                "{bad}"
            );
        }
    }
}
