//! SIP transaction timing without I/O (RFC 3261 §17): the server side keeps final responses
//! so retransmitted requests are answered identically and reach the application once; the
//! client side tells when to retransmit our own MESSAGE over UDP and when to give up.

mod client;
mod server;

pub use client::{ClientRetransmit, RetransmitAction};
pub use server::{ServerTransactions, TxKey, TxLookup};

/// RTT estimate (T1), 500 ms.
pub const T1_MS: u64 = 500;
/// Maximum retransmit interval for non-INVITE requests (T2), 4 s.
pub const T2_MS: u64 = 4_000;
/// Non-INVITE client transaction timeout (Timer F = 64*T1).
pub const TIMER_F_MS: u64 = 64 * T1_MS;
/// How long a completed non-INVITE server transaction absorbs retransmissions over an
/// unreliable transport (Timer J = 64*T1); 0 over TCP/TLS.
pub const TIMER_J_MS: u64 = 64 * T1_MS;
