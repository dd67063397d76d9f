//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 2069 compatibility).
//!
//! Server flow: a request without credentials gets `401` with
//! [`NonceIssuer::challenge`]; a request with them is parsed with [`Authorization::parse`],
//! the user's [`Credential`] is looked up by `username`, and [`NonceIssuer::verify`] checks it
//! against what the request must carry ([`Expected`]: method, Request-URI, realm, the one
//! configured algorithm, what to do without qop) and says [`AuthOutcome::Ok`],
//! [`AuthOutcome::Stale`] (answer 401 with a new challenge, `stale=true`) or
//! [`AuthOutcome::Invalid`] (answer 400/401/403). Basic is never accepted.

mod digest;
mod nonce;
mod params;
mod replay;
mod uri;

pub use digest::{
    authorize, check_response, expected_response, Authorization, Challenge, Credential,
    DigestAlgorithm,
};
pub use nonce::{Expected, NonceCheck, NonceIssuer, WithoutQop};
pub use replay::{NcCheck, NonceCounter};
pub use uri::same_request_uri;

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
    /// Nonce count not above the last one seen, or a single-use nonce used again.
    Replay,
    /// Another algorithm than the configured one (a downgrade, e.g. MD5 under SHA-256).
    Algorithm,
    /// The digest `uri` does not name the Request-URI (credentials made for another request).
    UriMismatch,
}

impl InvalidReason {
    /// A short name for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            InvalidReason::WrongRealm => "realm",
            InvalidReason::ForgedNonce => "forged_nonce",
            InvalidReason::Opaque => "opaque",
            InvalidReason::QopRequired => "qop_required",
            InvalidReason::UnsupportedQop => "unsupported_qop",
            InvalidReason::Malformed => "malformed",
            InvalidReason::BadResponse => "bad_response",
            InvalidReason::Replay => "replay",
            InvalidReason::Algorithm => "algorithm",
            InvalidReason::UriMismatch => "uri_mismatch",
        }
    }
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
