//! The receiver's answers and which one a message gets (DC-09 §5.5.3):
//! - `ACK`: received without errors. Echoes sequence, receiver, line and account. To an
//!   encrypted message the ACK is encrypted (`*ACK`), its plaintext the pad, `|`, an empty data
//!   `]` and our timestamp.
//! - `NAK`: the timestamp test failed (and, here, the frame was damaged). Fixed form
//!   `"NAK"0000R0L0A0[]_time`, never encrypted: the timestamp lets the sender correct its
//!   clock before it resends.
//! - `DUH`: an otherwise correctly received message we cannot process. Never encrypted (the
//!   key may be what failed); echoes the header when there is one.
//!
//! Plain ACK and DUH carry no timestamp, as in the standard's examples and `pysiaalarm`.

use crate::content::{self, Content};
use crate::crypto::Key;
use crate::error::DecodeError;
use crate::frame;
use crate::header::{Account, Header, HexId, Seq, Token};
use crate::message::{EncodeError, Message};
use crate::time::Timestamp;

/// Which answer a message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Positive acknowledgement.
    Ack,
    /// Negative acknowledgement (timestamp test failed, or damaged frame).
    Nak,
    /// Unable to process.
    Duh,
}

/// The answer for a decode result. An `Ok` message is ACKed here; the front answers DUH
/// itself for what only it can know (unknown account) and ACKs only once the event is durable.
pub fn reply_for(result: &Result<Message, DecodeError>) -> Reply {
    match result {
        Ok(_) => Reply::Ack,
        Err(e) => e.reply(),
    }
}

/// `"ACK"` (or `"*ACK"`) to `header`. Encrypted when the message was, which needs the
/// account's `key` and a pad from `entropy`; `now` is our time, carried in the encrypted form.
pub fn ack(
    header: &Header,
    key: Option<&Key>,
    now: Timestamp,
    entropy: &[u8; 16],
) -> Result<Vec<u8>, EncodeError> {
    let reply = Header {
        token: Token::Other("ACK".to_owned()),
        ..header.clone()
    };
    let mut body = Vec::new();
    reply.write(&mut body);
    let c = Content {
        data: String::new(),
        xdata: Vec::new(),
        timestamp: reply.encrypted.then_some(now),
    };
    if reply.encrypted {
        let key = key.ok_or(EncodeError::KeyRequired)?;
        body.extend_from_slice(&content::seal(&c, key, entropy));
    } else {
        content::write(&mut body, &c);
    }
    Ok(frame::write(&body))
}

/// `"NAK"0000R0L0A0[]_time` with our time `now`.
pub fn nak(now: Timestamp) -> Vec<u8> {
    frame::write(format!("\"NAK\"0000R0L0A0[]_{now}").as_bytes())
}

/// `"DUH"` echoing `header` (unencrypted, whatever the message was). Without a header (the
/// frame could not be read that far) sequence `0000`, `R0L0` and account `0`, like the NAK.
pub fn duh(header: Option<&Header>) -> Vec<u8> {
    let reply = match header {
        Some(h) => Header {
            token: Token::Other("DUH".to_owned()),
            encrypted: false,
            ..h.clone()
        },
        None => Header {
            token: Token::Other("DUH".to_owned()),
            encrypted: false,
            seq: Seq::ZERO,
            receiver: Some(HexId::zero()),
            line: Some(HexId::zero()),
            account: Account::zero(),
        },
    };
    let mut body = Vec::new();
    reply.write(&mut body);
    body.push(b']');
    frame::write(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;

    fn header(encrypted: bool) -> Header {
        Header::parse(if encrypted {
            b"\"*SIA-DCS\"0042R1L2#1234[00"
        } else {
            b"\"SIA-DCS\"0042R1L2#1234[]"
        })
        .unwrap()
        .0
    }

    fn now() -> Timestamp {
        Timestamp::parse(b"16:20:01,09-24-2025").unwrap()
    }

    #[test]
    fn nak_is_the_reference_vector() {
        assert_eq!(
            nak(now()),
            b"\nE4410025\"NAK\"0000R0L0A0[]_16:20:01,09-24-2025\r"
        );
    }

    #[test]
    fn plain_ack_echoes_the_header() {
        let a = ack(&header(false), None, now(), &[0; 16]).unwrap();
        let body = frame::check(&a).unwrap().body;
        assert_eq!(body, b"\"ACK\"0042R1L2#1234[]");
        assert_eq!(a[0], b'\n');
        assert_eq!(a.last(), Some(&b'\r'));
    }

    #[test]
    fn encrypted_ack_carries_pad_and_timestamp() {
        let key = Key::from_ascii("0123456789abcdef").unwrap();
        let a = ack(&header(true), Some(&key), now(), &[5; 16]).unwrap();
        let body = frame::check(&a).unwrap().body;
        let (h, rest) = Header::parse(body).unwrap();
        assert!(h.encrypted);
        assert_eq!(h.token, Token::Other("ACK".into()));
        assert_eq!(h.seq.as_str(), "0042");
        let c = content::open(rest, &key).unwrap();
        assert_eq!((c.data.as_str(), c.timestamp), ("", Some(now())));
        // Different entropy, different ciphertext for the same answer.
        let b = ack(&header(true), Some(&key), now(), &[6; 16]).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            ack(&header(true), None, now(), &[5; 16]),
            Err(EncodeError::KeyRequired)
        );
    }

    #[test]
    fn duh_is_never_encrypted() {
        let d = duh(Some(&header(true)));
        assert_eq!(frame::check(&d).unwrap().body, b"\"DUH\"0042R1L2#1234[]");
        let d = duh(None);
        assert_eq!(frame::check(&d).unwrap().body, b"\"DUH\"0000R0L0#0[]");
    }

    #[test]
    fn each_failure_gets_its_answer() {
        use DecodeError as E;
        let cases = [
            (E::BadFrame("x"), Reply::Nak),
            (
                E::BadCrc {
                    stated: 1,
                    computed: 2,
                },
                Reply::Nak,
            ),
            (
                E::BadLength {
                    stated: 1,
                    actual: 2,
                },
                Reply::Nak,
            ),
            (E::MissingTimestamp, Reply::Nak),
            (E::StaleTimestamp { skew_secs: -100 }, Reply::Nak),
            (E::UnknownToken("XYZ".into()), Reply::Duh),
            (
                E::BadData {
                    token: "ADM-CID",
                    reason: "x",
                },
                Reply::Duh,
            ),
            (E::NoKey, Reply::Duh),
            (E::DecryptFailed("x"), Reply::Duh),
        ];
        for (e, reply) in cases {
            assert_eq!(reply_for(&Err(e.clone())), reply, "{e}");
        }
    }
}
