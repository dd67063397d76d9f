//! SCAIP over SIP, sans I/O: bytes in, values out.
//!
//! This crate turns what a SCAIP device sends into values and builds what Vaka answers. It
//! opens no socket, reads no clock (callers pass `now_ms`) and draws no random numbers
//! (callers pass branches, tags and nonce entropy), so every function is deterministic and
//! can run inside a simulation.
//!
//! - [`sip`]: SIP (RFC 3261) messages: parse any request or response, including compact
//!   header names and folded lines; frame messages on TCP; build responses and MESSAGE
//!   requests.
//! - [`scaip`]: `<mrq>` parsed leniently with errors mapped to the `snu` that answers them;
//!   `<mrs>` built strictly; `geo`/`tim`/NMEA GGA values; `mty`/`stc` classification.
//! - [`auth`]: HTTP Digest (RFC 3261 §22, RFC 7616, RFC 2069 compatibility): challenges,
//!   stateless nonces with expiry and a keyed MAC, nonce-count replay tracking, and the
//!   client side.
//! - [`triage`]: a datagram's lane (alarms first, telemetry after) by one cheap scan, before
//!   it is parsed.
//! - [`transaction`]: the non-INVITE server transaction table (retransmissions get the
//!   stored response, never a second event) and the UDP retransmission schedule for our own
//!   MESSAGEs.
//!
//! # Why a hand-written SIP parser
//! The SIP crates on crates.io were checked and do not fit: `rsip` 0.4 (last release in
//! 2022) has no compact header forms and pulls older `md-5`/`sha2` majors, `uuid` and `nom`;
//! `sip-codec` 0.1 is built on `tokio-codec` 0.1 and `nom` 4; `rsipstack` is a full tokio
//! stack, not sans-I/O; `ezk-sip-types` belongs to a larger stack with its own string
//! types, `anyhow` and `nom`. SCAIP needs a small part of SIP (a few methods, a dozen
//! headers), and the part it needs must never panic on hostile input; a parser of about a
//! thousand lines that we own, fuzzed by property tests, is easier to audit than any of
//! those dependencies.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod scaip;
pub mod sip;
pub mod transaction;
pub mod triage;

#[cfg(test)]
mod testdata;

pub use auth::{AuthOutcome, Authorization, Challenge, DigestAlgorithm, NonceCounter, NonceIssuer};
pub use scaip::{EventClass, Mrq, MrqError, Mrs, Mty, Snu};
pub use sip::{find_message, Frame, FramingError, Method, NewRequest, SipError, SipMessage};
pub use transaction::{ClientRetransmit, ServerTransactions, TxKey, TxLookup};
