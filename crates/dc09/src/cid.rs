//! ADM-CID data (Ademco Contact ID as DC-09 carries it): `#acct|Q EEE GG ZZZ`, written
//! without the first space: `#1234|1130 01 015` is a new burglary (130) in group 01, zone 015.

use crate::error::DecodeError;
use std::fmt;

const TOKEN: &str = "ADM-CID";

/// The Contact ID event qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// 1: new event (or opening).
    New,
    /// 3: restoral (or closing).
    Restoral,
    /// 6: previously reported condition still present (status report).
    Repeat,
}

impl Qualifier {
    fn digit(self) -> char {
        match self {
            Qualifier::New => '1',
            Qualifier::Restoral => '3',
            Qualifier::Repeat => '6',
        }
    }
}

/// The data of an ADM-CID message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CidData {
    /// Account inside the data (`#acct|`), if present.
    pub account: Option<String>,
    /// New, restoral or repeat.
    pub qualifier: Qualifier,
    /// Event code, 0..=999 (e.g. 130 burglary, 101 personal emergency, 602 periodic test).
    pub code: u16,
    /// Group (partition), 0..=99.
    pub group: u8,
    /// Zone or user number, 0..=999.
    pub zone: u16,
}

fn bad(reason: &'static str) -> DecodeError {
    DecodeError::BadData {
        token: TOKEN,
        reason,
    }
}

fn digits(s: &[u8]) -> Option<u16> {
    s.iter().try_fold(0u16, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u16::from(b - b'0'))
    })
}

impl CidData {
    /// Parse ADM-CID data (between `[` and `]`).
    pub fn parse(data: &str) -> Result<CidData, DecodeError> {
        let (account, rest) = match data.strip_prefix('#') {
            Some(after) => {
                let (acct, rest) = after
                    .split_once('|')
                    .ok_or(bad("account not followed by '|'"))?;
                if acct.is_empty() || !acct.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad("account is not letters or digits"));
                }
                (Some(acct.to_owned()), rest)
            }
            None => (None, data),
        };
        let b = rest.as_bytes();
        if b.len() != 11 || b[4] != b' ' || b[7] != b' ' {
            return Err(bad("not 'QEEE GG ZZZ'"));
        }
        let qualifier = match b[0] {
            b'1' => Qualifier::New,
            b'3' => Qualifier::Restoral,
            b'6' => Qualifier::Repeat,
            _ => return Err(bad("qualifier is not 1, 3 or 6")),
        };
        let code = digits(&b[1..4]).ok_or(bad("event code is not 3 digits"))?;
        let group = digits(&b[5..7]).ok_or(bad("group is not 2 digits"))?;
        let zone = digits(&b[8..11]).ok_or(bad("zone is not 3 digits"))?;
        Ok(CidData {
            account,
            qualifier,
            code,
            group: u8::try_from(group).map_err(|_| bad("group"))?,
            zone,
        })
    }

    /// Write the data: `#acct|QEEE GG ZZZ`. Values above the field widths are clamped
    /// (999, 99, 999); the fields of a parsed message never are.
    pub fn to_data(&self) -> String {
        let mut out = String::new();
        if let Some(a) = &self.account {
            out.push('#');
            out.push_str(a);
            out.push('|');
        }
        out.push_str(&self.to_string());
        out
    }
}

impl fmt::Display for CidData {
    /// `QEEE GG ZZZ`, without account.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:03} {:02} {:03}",
            self.qualifier.digit(),
            self.code.min(999),
            self.group.min(99),
            self.zone.min(999)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes() {
        let d = CidData::parse("#1234|1130 01 015").unwrap();
        assert_eq!(
            d,
            CidData {
                account: Some("1234".into()),
                qualifier: Qualifier::New,
                code: 130,
                group: 1,
                zone: 15
            }
        );
        assert_eq!(d.to_data(), "#1234|1130 01 015");
        let r = CidData::parse("3602 00 000").unwrap();
        assert_eq!(
            (r.account, r.qualifier, r.code),
            (None, Qualifier::Restoral, 602)
        );
        assert_eq!(
            CidData::parse("#9|6101 99 999").unwrap().qualifier,
            Qualifier::Repeat
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "#1234|2130 01 015",
            "#1234|1130 01 01",
            "#1234|113001015",
            "#1234|1130 0A 015",
            "#1234|1130  01 015",
            "#1234 1130 01 015",
            "#|1130 01 015",
            "#1234|1130 01 015 ",
        ] {
            assert!(
                matches!(CidData::parse(bad), Err(DecodeError::BadData { .. })),
                "{bad}"
            );
        }
    }
}
