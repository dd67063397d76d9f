//! Why a message could not be taken, each reason mapped to the answer it gets.

use crate::answer::Reply;

/// Why decoding a message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a DC-09 frame: the CRC/length header or the ID/sequence/account header is
    /// malformed, or the body does not end as the grammar says.
    #[error("bad frame: {0}")]
    BadFrame(&'static str),
    /// The CRC field does not match the body.
    #[error("bad CRC: stated {stated:04X}, computed {computed:04X}")]
    BadCrc {
        /// CRC the frame carries.
        stated: u16,
        /// CRC of the body received.
        computed: u16,
    },
    /// The length field does not match the body, even read leniently.
    #[error("bad length: stated {stated}, body is {actual}")]
    BadLength {
        /// Length the frame carries.
        stated: usize,
        /// Length of the body received.
        actual: usize,
    },
    /// An intact frame with an ID token this receiver does not take (e.g. a message type
    /// outside SIA-DCS, ADM-CID and NULL).
    #[error("unknown token {0:?}")]
    UnknownToken(String),
    /// An intact frame whose data does not parse as its token says.
    #[error("bad {token} data: {reason}")]
    BadData {
        /// The token whose grammar the data broke.
        token: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// Encrypted, but no key is known for the account.
    #[error("encrypted message and no key for the account")]
    NoKey,
    /// The ciphertext is not hex of whole blocks, or the plaintext is not a DC-09 body:
    /// in practice, a wrong key.
    #[error("decryption failed: {0}")]
    DecryptFailed(&'static str),
    /// Encrypted, but without the required timestamp.
    #[error("encrypted message without timestamp")]
    MissingTimestamp,
    /// The timestamp of an encrypted message is outside the window.
    #[error("timestamp outside the window by {skew_secs} s")]
    StaleTimestamp {
        /// Timestamp minus receiver time, seconds (negative: in the past).
        skew_secs: i64,
    },
}

impl DecodeError {
    /// The answer this failure gets; see [`crate::answer::reply_for`].
    pub fn reply(&self) -> Reply {
        match self {
            // The frame was damaged on the way (or never was one): a NAK makes the sender
            // resend now instead of after its ACK timeout. `pysiaalarm` also NAKs a line it
            // cannot parse.
            DecodeError::BadFrame(_)
            | DecodeError::BadCrc { .. }
            | DecodeError::BadLength { .. } => Reply::Nak,
            // DC-09 §5.5.3.2: the NAK is the answer to a failed timestamp test; it carries our
            // time so the sender corrects its clock and resends.
            DecodeError::MissingTimestamp | DecodeError::StaleTimestamp { .. } => Reply::Nak,
            // DC-09 §5.5.3.3: DUH for an otherwise correctly received message we cannot
            // process. The CRC matched, so resending the same bytes cannot help.
            DecodeError::UnknownToken(_)
            | DecodeError::BadData { .. }
            | DecodeError::NoKey
            | DecodeError::DecryptFailed(_) => Reply::Duh,
        }
    }
}
