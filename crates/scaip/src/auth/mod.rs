//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 2069 compatibility).
//!
//! Server flow: a request without credentials gets `401` with
//! [`NonceIssuer::challenge`]; a request with them is parsed with [`Authorization::parse`],
//! the user's [`Credential`] is looked up by `username`, and [`NonceIssuer::verify`] says
//! [`AuthOutcome::Ok`], [`AuthOutcome::Stale`] (answer 401 with a new challenge,
//! `stale=true`) or [`AuthOutcome::Invalid`] (answer 401/403). Basic is never accepted.

mod digest;
mod nonce;
mod params;
mod replay;

pub use digest::{
    authorize, check_response, expected_response, Authorization, Challenge, Credential,
    DigestAlgorithm,
};
pub use nonce::{NonceCheck, NonceIssuer};
pub use replay::{NcCheck, NonceCounter};

/// A digest header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Another scheme (e.g. Basic, which SCAIP forbids).
    #[error("not a Digest header")]
    NotDigest,
    /// Syntax error.
    #[error("malformed digest header")]
    Malformed,
    /// A required parameter is absent.
    #[error("missing digest parameter {0}")]
    Missing(&'static str),
    /// An algorithm other than MD5 or SHA-256.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// A qop other than `auth`.
    #[error("unsupported qop")]
    UnsupportedQop,
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Realm is not ours.
    WrongRealm,
    /// Nonce not issued by us.
    ForgedNonce,
    /// Opaque not echoed.
    Opaque,
    /// Credentials without qop while qop is required.
    QopRequired,
    /// qop other than `auth`.
    UnsupportedQop,
    /// qop=auth without nc/cnonce.
    Malformed,
    /// Wrong password (or tampered request line).
    BadResponse,
    /// Nonce count not above the last one seen.
    Replay,
}

/// Result of a server-side credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated.
    Ok,
    /// Right credentials, expired or forgotten nonce: challenge again with `stale=true`.
    Stale,
    /// Refused.
    Invalid(InvalidReason),
}
