//! What follows the header's `[`: `data` `]` then any `[xdata]` blocks then an optional
//! `_HH:MM:SS,MM-DD-YYYY` timestamp. In an encrypted message all of it, behind a pad and `|`,
//! is the AES plaintext and the frame carries its ciphertext as hex.
//!
//! Lenient on read: bytes 0x80..=0xFF in data and xdata are taken as Latin-1 (panels write
//! zone names such as `^Kök^` in 8 bit), lowercase hex ciphertext. The pad before `|` may hold
//! any byte but `[`, `]`, `|` (`dc09-spt` draws it from chr(20..=125), control characters
//! included).

use crate::crypto::{padded, Key};
use crate::error::DecodeError;
use crate::time::Timestamp;

/// One extended-data block `[Ivalue]`: an identifier letter and its value (DC-09 §5.5.1.x:
/// `X` longitude, `Y` latitude, `Z` altitude, `H` time of occurrence, `M` MAC, `V` verification
/// URL, `I` alarm text, `L` location, `C` supervision category, `K` key change).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XData {
    /// The identifier letter.
    pub id: char,
    /// The value after it.
    pub value: String,
}

/// The decoded content: data as text, extended data, timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Content {
    pub data: String,
    pub xdata: Vec<XData>,
    pub timestamp: Option<Timestamp>,
}

fn text_byte(b: u8) -> bool {
    (0x20..=0x7E).contains(&b) && b != b'[' && b != b']' || b >= 0x80
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// `true` when every char of `s` can be written as one byte of data or xdata.
pub(crate) fn is_text(s: &str) -> bool {
    s.chars()
        .all(|c| u8::try_from(u32::from(c)).is_ok_and(text_byte))
}

fn write_text(out: &mut Vec<u8>, s: &str) {
    // Callers checked `is_text`: every char fits one byte.
    out.extend(
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
    );
}

/// Parse plaintext content (everything after `[`, or after the pad's `|`).
pub(crate) fn parse(bytes: &[u8]) -> Result<Content, DecodeError> {
    let bad = DecodeError::BadFrame;
    let close = bytes
        .iter()
        .position(|b| *b == b']')
        .ok_or(bad("data not closed by ']'"))?;
    let data = &bytes[..close];
    if !data.iter().all(|b| text_byte(*b)) {
        return Err(bad("data holds a control character or '['"));
    }
    let mut rest = &bytes[close + 1..];
    let mut xdata = Vec::new();
    while let Some(inner) = rest.strip_prefix(b"[") {
        let close = inner
            .iter()
            .position(|b| *b == b']')
            .ok_or(bad("xdata not closed by ']'"))?;
        let block = &inner[..close];
        let (&id, value) = block.split_first().ok_or(bad("empty xdata block"))?;
        if !id.is_ascii_alphabetic() || !value.iter().all(|b| text_byte(*b)) {
            return Err(bad("xdata is not a letter and text"));
        }
        xdata.push(XData {
            id: char::from(id),
            value: latin1(value),
        });
        rest = &inner[close + 1..];
    }
    let timestamp = match rest {
        [] => None,
        [b'_', ts @ ..] => Some(Timestamp::parse(ts).ok_or(bad("malformed timestamp"))?),
        _ => return Err(bad("unexpected bytes after data")),
    };
    Ok(Content {
        data: latin1(data),
        xdata,
        timestamp,
    })
}

/// Write plaintext content.
pub(crate) fn write(out: &mut Vec<u8>, c: &Content) {
    write_text(out, &c.data);
    out.push(b']');
    for x in &c.xdata {
        out.push(b'[');
        write_text(out, &x.id.to_string());
        write_text(out, &x.value);
        out.push(b']');
    }
    if let Some(ts) = c.timestamp {
        out.push(b'_');
        out.extend_from_slice(ts.to_string().as_bytes());
    }
}

/// Decrypt the hex ciphertext after `[` and parse the plaintext behind the pad.
pub(crate) fn open(hex_text: &[u8], key: &Key) -> Result<Content, DecodeError> {
    let fail = DecodeError::DecryptFailed;
    let cipher = hex::decode(hex_text).map_err(|_| fail("ciphertext is not hex"))?;
    let plain = key
        .decrypt(&cipher)
        .ok_or(fail("ciphertext is not whole 16-byte blocks"))?;
    let bar = plain
        .iter()
        .position(|b| *b == b'|')
        .ok_or(fail("no '|' after the pad"))?;
    if plain[..bar].iter().any(|b| *b == b'[' || *b == b']') {
        return Err(fail("pad holds '[' or ']'"));
    }
    // A wrong key yields noise, which fails here: the data must close, and the timestamp
    // (required below) must parse field by field.
    parse(&plain[bar + 1..]).map_err(|_| fail("plaintext is not a DC-09 body (wrong key?)"))
}

/// Encrypt content: pad (from `entropy`) + `|` + plaintext, as uppercase hex.
pub(crate) fn seal(c: &Content, key: &Key, entropy: &[u8; 16]) -> Vec<u8> {
    let mut plain = Vec::new();
    write(&mut plain, c);
    let cipher = key.encrypt(&padded(&plain, entropy));
    hex::encode_upper(cipher).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_content_with_xdata_and_timestamp() {
        let c = parse(b"#1234|NBA01][X018E13.4][Y059N17.2]_12:00:00,01-02-2026").unwrap();
        assert_eq!(c.data, "#1234|NBA01");
        assert_eq!(c.xdata.len(), 2);
        assert_eq!(
            c.xdata[0],
            XData {
                id: 'X',
                value: "018E13.4".into()
            }
        );
        assert_eq!(c.timestamp.unwrap().to_string(), "12:00:00,01-02-2026");
        let mut out = Vec::new();
        write(&mut out, &c);
        assert_eq!(
            out,
            b"#1234|NBA01][X018E13.4][Y059N17.2]_12:00:00,01-02-2026"
        );
    }

    #[test]
    fn empty_data() {
        let c = parse(b"]").unwrap();
        assert_eq!((c.data.as_str(), c.xdata.len(), c.timestamp), ("", 0, None));
    }

    #[test]
    fn lenient_latin1_names() {
        let c = parse(b"#1234|NBA01^K\xf6k^]").unwrap();
        assert_eq!(c.data, "#1234|NBA01^Kök^");
        assert!(is_text(&c.data));
        let mut out = Vec::new();
        write(&mut out, &c);
        assert_eq!(out, b"#1234|NBA01^K\xf6k^]");
    }

    #[test]
    fn refuses_broken_content() {
        for bad in [
            &b""[..],
            b"#1234|NBA01",
            b"#12[34|NBA01]",
            b"#1234|N\x07BA01]",
            b"#1234|NBA01][X1",
            b"#1234|NBA01][]",
            b"#1234|NBA01][1abc]",
            b"#1234|NBA01]x",
            b"#1234|NBA01]_12:00:00",
            b"#1234|NBA01]_12:00:00,01-02-2026 ",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn seal_and_open() {
        let key = Key::from_ascii("0123456789abcdef").unwrap();
        let c = parse(b"#1234|NRP]_23:59:59,12-31-2025").unwrap();
        let hex = seal(&c, &key, &[9; 16]);
        assert!(hex
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
        assert_eq!(open(&hex, &key).unwrap(), c);
        assert_eq!(
            open(&hex.to_ascii_lowercase(), &key).unwrap(),
            c,
            "lowercase hex"
        );
        let wrong = Key::from_ascii("0123456789abcdeF").unwrap();
        assert!(matches!(
            open(&hex, &wrong),
            Err(DecodeError::DecryptFailed(_))
        ));
        assert!(matches!(
            open(b"XYZ", &key),
            Err(DecodeError::DecryptFailed(_))
        ));
        assert!(matches!(
            open(b"00", &key),
            Err(DecodeError::DecryptFailed(_))
        ));
    }
}
