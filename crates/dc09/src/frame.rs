//! The outer frame: `LF` CRC(4 hex) length(4 hex) body `CR`, where the body runs from the
//! opening `"` of the ID token to just before `CR` and both CRC and length cover exactly it.
//!
//! Reading is lenient about what real senders get wrong around an intact body (each case has a
//! test in this module):
//! - **no `LF`** in front, and **`CR LF`/`LF CR`** or a missing `CR` at the end: the frame is
//!   found from its `"`; datagrams and TCP reads keep it whole either way.
//! - **whitespace and NUL** before or after the frame (zero-padded UDP datagrams, a stray
//!   newline between frames on TCP).
//! - **lowercase hex** in the CRC and length fields.
//! - **length counted differently**: besides the body length in hex (the standard), the body
//!   length written in decimal and the length counted with the final `CR` are accepted. The
//!   CRC still has to match, so this only forgives a writer's miscount, never corruption.
//!
//! Writing is strict: `LF`, uppercase hex, the standard length, `CR`.

use crate::crc::crc16;
use crate::error::DecodeError;

/// A frame whose CRC and length were checked: its body, from `"` to before `CR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked<'a> {
    /// The covered bytes.
    pub body: &'a [u8],
}

/// Longest body the 4 hex digits of the length field can state.
pub const MAX_BODY: usize = 0xFFFF;

fn is_filler(b: u8) -> bool {
    b == 0 || b.is_ascii_whitespace()
}

fn hex4(field: &[u8]) -> Option<u16> {
    if field.len() != 4 || !field.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| u16::from_str_radix(s, 16).ok())
}

/// Check the frame in `bytes` (one datagram, or one frame cut from a stream).
pub fn check(bytes: &[u8]) -> Result<Checked<'_>, DecodeError> {
    let start = bytes
        .iter()
        .position(|b| !is_filler(*b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_filler(*b))
        .map_or(start, |i| i + 1);
    let frame = &bytes[start..end];
    if frame.len() < 9 {
        return Err(DecodeError::BadFrame("too short for CRC, length and ID"));
    }
    let crc = hex4(&frame[..4]).ok_or(DecodeError::BadFrame("CRC field is not 4 hex digits"))?;
    let len_field = &frame[4..8];
    let declared =
        hex4(len_field).ok_or(DecodeError::BadFrame("length field is not 4 hex digits"))?;
    let body = &frame[8..];
    if body[0] != b'"' {
        return Err(DecodeError::BadFrame("no '\"' after the length field"));
    }
    let computed = crc16(body);
    if computed != crc {
        return Err(DecodeError::BadCrc {
            stated: crc,
            computed,
        });
    }
    let actual = body.len();
    if !length_accepted(len_field, declared, actual) {
        return Err(DecodeError::BadLength {
            stated: usize::from(declared),
            actual,
        });
    }
    Ok(Checked { body })
}

fn length_accepted(field: &[u8], hex: u16, actual: usize) -> bool {
    let hex = usize::from(hex);
    let decimal = field.iter().all(u8::is_ascii_digit).then(|| {
        field
            .iter()
            .fold(0usize, |acc, b| acc * 10 + usize::from(b - b'0'))
    });
    hex == actual || hex == actual + 1 || decimal == Some(actual)
}

/// Wrap `body` (from `"` to the last byte before `CR`) as a frame.
///
/// # Panics
/// When `body` is longer than [`MAX_BODY`]: callers build bodies from bounded fields.
pub fn write(body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= MAX_BODY, "DC-09 body longer than 0xFFFF");
    let mut out = Vec::with_capacity(body.len() + 10);
    out.push(b'\n');
    out.extend_from_slice(format!("{:04X}{:04X}", crc16(body), body.len()).as_bytes());
    out.extend_from_slice(body);
    out.push(b'\r');
    out
}

/// Whether `bytes` (one frame, as received) is a link test (`"NULL"`, or `"*NULL"` when
/// encrypted): read from the ID token alone, before the CRC, the length or any decryption, so
/// a front can put supervision polls behind alarms at the cost of one short scan. Anything
/// else, unreadable frames included, is not (it goes first and is refused on decoding).
pub fn is_link_test(bytes: &[u8]) -> bool {
    // The token is the first quoted field; CRC and length (8 characters) and filler precede it.
    let Some(open) = bytes.iter().take(64).position(|&b| b == b'"') else {
        return false;
    };
    let token = &bytes[open + 1..];
    let token = token.strip_prefix(b"*").unwrap_or(token);
    token.starts_with(b"NULL\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_test_is_told_from_its_token_alone() {
        assert!(is_link_test(b"\n9A2C0014\"NULL\"0000R0L0#1234[]\r"));
        assert!(is_link_test(
            b"\0 \nABCD0030\"*NULL\"0001L0#1234[0123456789abcdef]\r"
        ));
        assert!(!is_link_test(
            b"\nABCD0030\"SIA-DCS\"0001L0#1234[#1234|NFA2]\r"
        ));
        assert!(!is_link_test(b"\nABCD0030\"*SIA-DCS\"0001L0#1234[0123]\r"));
        assert!(!is_link_test(b"\nABCD0030\"NULLX\"0001L0#1234[]\r"));
        assert!(!is_link_test(b"no quote at all"));
        assert!(!is_link_test(b""));
    }

    const V1: &[u8] = b"\nF4D20029\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
    const V2: &[u8] = b"\n96ED0016\"SIA-DCS\"0001L0#1234[]\r";
    const V3: &[u8] = b"\nE4410025\"NAK\"0000R0L0A0[]_16:20:01,09-24-2025\r";

    fn body_of(v: &[u8]) -> &[u8] {
        &v[9..v.len() - 1]
    }

    #[test]
    fn reference_vectors_check_and_rewrite_identically() {
        for v in [V1, V2, V3] {
            let c = check(v).unwrap();
            assert_eq!(c.body, body_of(v));
            assert_eq!(write(c.body), v);
        }
    }

    #[test]
    fn corrupt_crc_and_length_are_refused() {
        let mut bad = V2.to_vec();
        bad[1] = b'0';
        assert_eq!(
            check(&bad),
            Err(DecodeError::BadCrc {
                stated: 0x06ED,
                computed: 0x96ED
            })
        );
        let mut flipped = V2.to_vec();
        flipped[20] = b'2'; // seq 0001 -> 0201
        assert!(matches!(check(&flipped), Err(DecodeError::BadCrc { .. })));
        let mut len = V2.to_vec();
        len[8] = b'8';
        assert_eq!(
            check(&len),
            Err(DecodeError::BadLength {
                stated: 0x18,
                actual: 0x16
            })
        );
    }

    #[test]
    fn malformed_headers_are_bad_frames() {
        for bad in [
            &b""[..],
            b"\n\r",
            b"\nF4D2",
            b"\nG4D20029\"SIA-DCS\"0001L0#1234[]\r",
            b"\n96ED00x6\"SIA-DCS\"0001L0#1234[]\r",
            b"\n96ED0016SIA-DCS\"0001L0#1234[]\r",
        ] {
            assert!(
                matches!(check(bad), Err(DecodeError::BadFrame(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lenient_missing_lf_and_cr_and_crlf() {
        assert!(check(&V2[1..]).is_ok(), "no LF");
        assert!(check(&V2[..V2.len() - 1]).is_ok(), "no CR");
        let mut crlf = V2.to_vec();
        crlf.push(b'\n');
        assert!(check(&crlf).is_ok(), "CR LF");
    }

    #[test]
    fn lenient_filler_around_the_frame() {
        let mut padded = b"  \r\n\0".to_vec();
        padded.extend_from_slice(V1);
        padded.extend_from_slice(&[0, 0, 0, b' ', b'\t']);
        assert_eq!(check(&padded).unwrap().body, body_of(V1));
    }

    #[test]
    fn lenient_lowercase_hex() {
        let lower = b"\nf4d20029\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
        assert_eq!(check(lower).unwrap().body, body_of(V1));
    }

    #[test]
    fn lenient_length_in_decimal_or_counting_cr() {
        // 0x29 = 41 bytes: "0041" is the decimal miscount, "002A" counts the CR.
        let decimal = b"\nF4D20041\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
        let with_cr = b"\nF4D2002A\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
        assert!(check(decimal).is_ok());
        assert!(check(with_cr).is_ok());
        let off_by_two = b"\nF4D2002B\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
        assert!(matches!(
            check(off_by_two),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
