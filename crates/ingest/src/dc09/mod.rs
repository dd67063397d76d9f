//! SIA DC-09 (ANSI/SIA DC-09) over TCP and UDP: the front for alarm panels and transceivers
//! (special housing units' fire and intruder panels, door and fall sensors wired to panels,
//! social alarms of some suppliers). The codec is `vaka_dc09`; this module does the I/O.
//!
//! ```text
//! UDP socket ──datagram──┐
//! TCP conn ──next_frame──┤ (max_frame_bytes; too long closes the connection; idle timeout)
//!                        v
//! receive: Frame::parse (damaged -> NAK) -> directory account (unknown -> DUH)
//!   -> key: an account with a key takes encrypted messages only (plain -> DUH)
//!   -> Frame::open: decrypt, timestamp window (stale -> NAK with our time), data (bad -> DUH)
//!   -> convert::to_events (codes -> kinds; one event per SIA code) -> Router::submit each
//!   -> all durable within answer_within_ms ? ACK (*ACK encrypted to an encrypted message)
//!        : stored but no receiver can act, busy, refused -> DUH (the panel's other path)
//!        : not answered in time -> nothing (the panel resends; the resend is the same key)
//! ```
//!
//! Over UDP an error answer (NAK, DUH) is sent only when no larger than the datagram it
//! answers, so the front cannot amplify a spoofed flood (invariant 13); an ACK goes only to
//! a known account's valid message. Messages being stored are bounded (`max_pending`):
//! past it, DUH at once (invariant 6).
//!
//! Identity: the header's account number is the device (`Directory::dc09_account`); an
//! account with a key is authenticated by it (AES-CBC, with the timestamp window against
//! replay); a plain account is not authenticated at all, as in DC-09 itself: give every
//! account that can encrypt a key.
mod config;
pub mod convert;
mod receive;
mod server;
mod shared;

pub use config::Dc09Config;
pub use server::Dc09Server;

/// Starting the DC-09 front failed.
#[derive(Debug, thiserror::Error)]
pub enum Dc09StartError {
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("{key}: cannot bind {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}
