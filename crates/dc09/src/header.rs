//! The header inside the body: `"` \[`*`\] ID token `"` sequence \[`R`receiver\] \[`L`line\]
//! `#`account `[`. Everything an answer echoes lives here, so it is parsed before (and
//! independently of) the data, and a DUH can echo it even when the data is unreadable.
//!
//! Lenient on read: hex digits in the sequence (the `dc09-spt` dialler writes it with
//! `{:04X}`, so its 10th message is `000A`), lowercase hex in receiver and line.

use crate::error::DecodeError;
use std::fmt;

/// The ID token: what the message is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    /// `SIA-DCS`: SIA DC-03 event data.
    SiaDcs,
    /// `ADM-CID`: Ademco Contact ID event data.
    AdmCid,
    /// `NULL`: link test (supervision poll).
    Null,
    /// Any other token (answers, vendor tokens): decoded as far as the header, then refused.
    Other(String),
}

impl Token {
    fn from_wire(s: &str) -> Token {
        match s {
            "SIA-DCS" => Token::SiaDcs,
            "ADM-CID" => Token::AdmCid,
            "NULL" => Token::Null,
            other => Token::Other(other.to_owned()),
        }
    }

    /// The token as written on the wire (without `*` and quotes).
    pub fn as_str(&self) -> &str {
        match self {
            Token::SiaDcs => "SIA-DCS",
            Token::AdmCid => "ADM-CID",
            Token::Null => "NULL",
            Token::Other(s) => s,
        }
    }
}

/// Longest token accepted; the known ones are at most 7 characters.
const MAX_TOKEN: usize = 16;

/// A sequence number: four characters, echoed in the ACK exactly as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seq([u8; 4]);

impl Seq {
    /// `0000`, the sequence of NAKs and of some link tests.
    pub const ZERO: Seq = Seq(*b"0000");

    /// The standard form: `n` in four decimal digits. `None` above 9999.
    pub fn new(n: u16) -> Option<Seq> {
        (n <= 9999).then(|| {
            let s = format!("{n:04}");
            let b = s.as_bytes();
            Seq([b[0], b[1], b[2], b[3]])
        })
    }

    /// The four characters as received (decimal digits, or hex digits from some senders).
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("0000")
    }

    /// The number, when written in decimal digits as the standard says.
    pub fn number(&self) -> Option<u16> {
        self.as_str().parse().ok()
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A receiver (`R`) or line (`L`) number: 1 to 6 hex digits, kept as text so the answer
/// echoes it as sent (uppercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HexId(String);

impl HexId {
    /// `0`, as the NAK writes receiver and line.
    pub(crate) fn zero() -> HexId {
        HexId("0".to_owned())
    }

    /// From 1 to 6 hex digits, either case; stored uppercase.
    pub fn new(text: &str) -> Option<HexId> {
        ((1..=6).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| HexId(text.to_ascii_uppercase()))
    }

    /// The digits, uppercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value.
    pub fn value(&self) -> u32 {
        u32::from_str_radix(&self.0, 16).unwrap_or(0)
    }
}

/// An account: 1 to 16 letters or digits (DC-09 says 3..16 hex; panels use decimal digits
/// and some letters). Kept as sent: it is the key to the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account(String);

impl Account {
    /// `0`, the account of an answer to a message whose own could not be read.
    pub(crate) fn zero() -> Account {
        Account("0".to_owned())
    }

    /// From 1 to 16 ASCII letters or digits.
    pub fn new(text: &str) -> Option<Account> {
        ((1..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Account(text.to_owned()))
    }

    /// The account as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything before the data: what the message is and whom an answer goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The ID token.
    pub token: Token,
    /// `*` before the token: the data is AES-encrypted.
    pub encrypted: bool,
    /// Sequence number (`0000` for some link tests).
    pub seq: Seq,
    /// Receiver number, `R`.
    pub receiver: Option<HexId>,
    /// Line (account prefix) number, `L`.
    pub line: Option<HexId>,
    /// Account, `#`.
    pub account: Account,
}

impl Header {
    /// Parse the header at the start of `body`; returns it and the bytes after its `[`.
    pub fn parse(body: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
        let bad = DecodeError::BadFrame;
        let rest = body
            .strip_prefix(b"\"")
            .ok_or(bad("no '\"' before the ID token"))?;
        let (encrypted, rest) = match rest.strip_prefix(b"*") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let close = rest
            .iter()
            .take(MAX_TOKEN + 1)
            .position(|b| *b == b'"')
            .ok_or(bad("ID token not closed by '\"'"))?;
        let token = &rest[..close];
        if token.is_empty() || !token.iter().all(|b| b.is_ascii_graphic()) {
            return Err(bad("ID token empty or not printable"));
        }
        let token = Token::from_wire(std::str::from_utf8(token).map_err(|_| bad("ID token"))?);
        let rest = &rest[close + 1..];
        if rest.len() < 4 || !rest[..4].iter().all(u8::is_ascii_hexdigit) {
            return Err(bad("sequence is not 4 digits"));
        }
        let seq = Seq([rest[0], rest[1], rest[2], rest[3]].map(|b| b.to_ascii_uppercase()));
        let mut rest = &rest[4..];
        let receiver = take_hex_id(&mut rest, b'R')?;
        let line = take_hex_id(&mut rest, b'L')?;
        rest = rest.strip_prefix(b"#").ok_or(bad("no '#' account"))?;
        let open = rest
            .iter()
            .take(17)
            .position(|b| *b == b'[')
            .ok_or(bad("account not followed by '['"))?;
        let account = std::str::from_utf8(&rest[..open])
            .ok()
            .and_then(Account::new)
            .ok_or(bad("account is not 1-16 letters or digits"))?;
        Ok((
            Header {
                token,
                encrypted,
                seq,
                receiver,
                line,
                account,
            },
            &rest[open + 1..],
        ))
    }

    /// Write the header up to and including `[`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        if self.encrypted {
            out.push(b'*');
        }
        out.extend_from_slice(self.token.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(self.seq.as_str().as_bytes());
        if let Some(r) = &self.receiver {
            out.push(b'R');
            out.extend_from_slice(r.as_str().as_bytes());
        }
        if let Some(l) = &self.line {
            out.push(b'L');
            out.extend_from_slice(l.as_str().as_bytes());
        }
        out.push(b'#');
        out.extend_from_slice(self.account.as_str().as_bytes());
        out.push(b'[');
    }
}

fn take_hex_id(rest: &mut &[u8], prefix: u8) -> Result<Option<HexId>, DecodeError> {
    let Some(after) = rest.strip_prefix(&[prefix]) else {
        return Ok(None);
    };
    let n = after.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let id = std::str::from_utf8(&after[..n])
        .ok()
        .and_then(HexId::new)
        .ok_or(DecodeError::BadFrame(
            "receiver or line is not 1-6 hex digits",
        ))?;
    *rest = &after[n..];
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_header() {
        let (h, rest) = Header::parse(b"\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]").unwrap();
        assert_eq!(h.token, Token::SiaDcs);
        assert!(!h.encrypted);
        assert_eq!(h.seq.number(), Some(1));
        assert_eq!(h.receiver.as_ref().unwrap().value(), 0xF3);
        assert_eq!(h.line.as_ref().unwrap().as_str(), "77");
        assert_eq!(h.account.as_str(), "1234");
        assert_eq!(rest, b"#1234|NRR|Atest]");
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out, b"\"SIA-DCS\"0001RF3L77#1234[");
    }

    #[test]
    fn encrypted_and_optional_fields() {
        let (h, rest) = Header::parse(b"\"*ADM-CID\"9999#A1b2[ABCD").unwrap();
        assert_eq!(h.token, Token::AdmCid);
        assert!(h.encrypted);
        assert_eq!((h.receiver, h.line), (None, None));
        assert_eq!(h.account.as_str(), "A1b2");
        assert_eq!(rest, b"ABCD");
        let (h, _) = Header::parse(b"\"ACK\"0001L0#1[]").unwrap();
        assert_eq!(h.token, Token::Other("ACK".into()));
    }

    #[test]
    fn lenient_hex_sequence_and_lowercase_ids() {
        // dc09-spt writes the sequence with {:04X}.
        let (h, _) = Header::parse(b"\"NULL\"000aRabL0c#1234[]").unwrap();
        assert_eq!(h.seq.as_str(), "000A");
        assert_eq!(h.seq.number(), None);
        assert_eq!(h.receiver.unwrap().as_str(), "AB");
        assert_eq!(h.line.unwrap().as_str(), "0C");
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            &b"SIA-DCS\"0001#1[]"[..],
            b"\"SIA-DCS0001#1[]",
            b"\"\"0001#1[]",
            b"\"SIA-DCS\"001#1[]",
            b"\"SIA-DCS\"00g1#1[]",
            b"\"SIA-DCS\"0001R#1[]",
            b"\"SIA-DCS\"0001R1234567#1[]",
            b"\"SIA-DCS\"0001L1",
            b"\"SIA-DCS\"00011234[]",
            b"\"SIA-DCS\"0001#[]",
            b"\"SIA-DCS\"0001#12-4[]",
            b"\"SIA-DCS\"0001#12345678901234567[]",
            b"\"SIA-DCS\"0001#1234",
            b"\"A VERY LONG TOKEN NAME\"0001#1[]",
        ] {
            assert!(
                matches!(Header::parse(bad), Err(DecodeError::BadFrame(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn seq_constructor_is_decimal() {
        assert_eq!(Seq::new(42).unwrap().as_str(), "0042");
        assert_eq!(Seq::new(9999).unwrap().number(), Some(9999));
        assert_eq!(Seq::new(10000), None);
    }
}
