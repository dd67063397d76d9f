//! A whole message: header, data (raw and typed), extended data, timestamp. Decoding runs in
//! two steps so the front can look the account up in between: [`Frame::parse`] checks the
//! frame and reads the header, [`Frame::open`] decrypts (with the account's key), parses the
//! data and applies the timestamp window.

use crate::cid::CidData;
use crate::content::{self, Content, XData};
use crate::crypto::Key;
use crate::error::DecodeError;
use crate::frame;
use crate::header::{Header, Token};
use crate::sia::SiaData;
use crate::time::{Timestamp, Window};

/// The typed data of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// SIA-DCS events.
    Sia(SiaData),
    /// An ADM-CID event.
    Cid(CidData),
    /// A link test; any data it carries is kept in [`Message::data`] only.
    Null,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Token, encryption flag, sequence, receiver, line, account.
    pub header: Header,
    /// The data between `[` and `]` as received (decrypted), for the audit record.
    pub data: String,
    /// The data, typed by token.
    pub payload: Payload,
    /// Extended data blocks.
    pub xdata: Vec<XData>,
    /// The sender's timestamp, if any (always present on an encrypted message).
    pub timestamp: Option<Timestamp>,
}

/// A frame whose CRC and length were checked and whose header was read; the data is still
/// as on the wire (ciphertext when encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header: enough to find the account's key, and to answer.
    pub header: Header,
    rest: &'a [u8],
}

/// Why a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The header says encrypted and no key was given.
    #[error("encrypted message needs a key")]
    KeyRequired,
    /// Encrypted messages carry a timestamp (DC-09 §5.5.1.8).
    #[error("encrypted message needs a timestamp")]
    TimestampRequired,
    /// Data or xdata with a character DC-09 cannot carry (`[`, `]`, control, above U+00FF).
    #[error("data or xdata not writable")]
    BadText,
    /// Longer than the 4 hex digits of the length field can state.
    #[error("message longer than 0xFFFF bytes")]
    TooLong,
}

impl<'a> Frame<'a> {
    /// Check CRC and length and read the header. Lenient as [`crate::frame`] and
    /// [`crate::header`] describe.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let checked = frame::check(bytes)?;
        let (header, rest) = Header::parse(checked.body)?;
        Ok(Frame { header, rest })
    }

    /// Decrypt (when encrypted, with `key`), parse the data and, for an encrypted message,
    /// check its timestamp against `now_ms` (Unix ms) with `window`. Unencrypted messages'
    /// timestamps are kept but not checked: DC-09 applies the test to encrypted ones, and a
    /// plain panel with a drifting clock must still get its alarm through.
    pub fn open(
        &self,
        key: Option<&Key>,
        now_ms: u64,
        window: &Window,
    ) -> Result<Message, DecodeError> {
        if let Token::Other(t) = &self.header.token {
            return Err(DecodeError::UnknownToken(t.clone()));
        }
        let content = if self.header.encrypted {
            let key = key.ok_or(DecodeError::NoKey)?;
            let c = content::open(self.rest, key)?;
            let ts = c.timestamp.ok_or(DecodeError::MissingTimestamp)?;
            window
                .check(ts, now_ms)
                .map_err(|skew_secs| DecodeError::StaleTimestamp { skew_secs })?;
            c
        } else {
            content::parse(self.rest)?
        };
        Message::from_parts(self.header.clone(), content)
    }
}

/// Decode a frame in one call; `key_for` gives the key of an account (or `None`).
pub fn decode<'k>(
    bytes: &[u8],
    key_for: impl FnOnce(&crate::header::Account) -> Option<&'k Key>,
    now_ms: u64,
    window: &Window,
) -> Result<Message, DecodeError> {
    let frame = Frame::parse(bytes)?;
    let key = if frame.header.encrypted {
        key_for(&frame.header.account)
    } else {
        None
    };
    frame.open(key, now_ms, window)
}

impl Message {
    /// Build a message from its data, typing it as the header's token says (the same check
    /// as decoding, so what can be built can be decoded).
    pub fn new(
        header: Header,
        data: String,
        xdata: Vec<XData>,
        timestamp: Option<Timestamp>,
    ) -> Result<Message, DecodeError> {
        if let Token::Other(t) = &header.token {
            return Err(DecodeError::UnknownToken(t.clone()));
        }
        Message::from_parts(
            header,
            Content {
                data,
                xdata,
                timestamp,
            },
        )
    }

    fn from_parts(header: Header, c: Content) -> Result<Message, DecodeError> {
        let payload = match header.token {
            Token::SiaDcs => Payload::Sia(SiaData::parse(&c.data)?),
            Token::AdmCid => Payload::Cid(CidData::parse(&c.data)?),
            Token::Null | Token::Other(_) => Payload::Null,
        };
        Ok(Message {
            header,
            data: c.data,
            payload,
            xdata: c.xdata,
            timestamp: c.timestamp,
        })
    }

    /// Write the message as a frame (strict form). Encrypted when the header says so, with
    /// `key` and a pad drawn from `entropy` (pass fresh random bytes: with the fixed IV, the
    /// pad is what makes equal messages encrypt differently).
    pub fn encode(&self, key: Option<&Key>, entropy: &[u8; 16]) -> Result<Vec<u8>, EncodeError> {
        if !content::is_text(&self.data)
            || self
                .xdata
                .iter()
                .any(|x| !x.id.is_ascii_alphabetic() || !content::is_text(&x.value))
        {
            return Err(EncodeError::BadText);
        }
        let c = Content {
            data: self.data.clone(),
            xdata: self.xdata.clone(),
            timestamp: self.timestamp,
        };
        let mut body = Vec::new();
        self.header.write(&mut body);
        if self.header.encrypted {
            let key = key.ok_or(EncodeError::KeyRequired)?;
            if self.timestamp.is_none() {
                return Err(EncodeError::TimestampRequired);
            }
            body.extend_from_slice(&content::seal(&c, key, entropy));
        } else {
            content::write(&mut body, &c);
        }
        if body.len() > frame::MAX_BODY {
            return Err(EncodeError::TooLong);
        }
        Ok(frame::write(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_without_timestamp_fails_the_timestamp_test() {
        // Our encoder refuses to write this, so seal the content by hand.
        let key = Key::from_ascii("0123456789abcdef").unwrap();
        let c = Content {
            data: String::new(),
            xdata: Vec::new(),
            timestamp: None,
        };
        let mut body = b"\"*NULL\"0001L0#1234[".to_vec();
        body.extend_from_slice(&content::seal(&c, &key, &[0; 16]));
        let r = decode(&frame::write(&body), |_| Some(&key), 0, &Window::default());
        assert_eq!(r, Err(DecodeError::MissingTimestamp));
        assert_eq!(crate::reply_for(&r), crate::Reply::Nak);
    }

    #[test]
    fn key_is_only_asked_for_encrypted_messages() {
        let plain = frame::write(b"\"NULL\"0001L0#1234[]");
        let mut asked = false;
        let r = decode(
            &plain,
            |_| {
                asked = true;
                None
            },
            0,
            &Window::default(),
        );
        assert!(r.is_ok());
        assert!(!asked);
    }
}
