//! SCAIP over SIP: the device front for social-alarm devices (SS 91100 / CLC/TS 50134-9).
//!
//! ```text
//! UDP socket ──datagram── udp_lanes: a reader only reads and triages (no `Authorization`
//!   -> strangers' lane, within its source's budget, else dropped; `<mty>` PI/IN ->
//!   telemetry lane; the rest -> first lane;
//!   `sip.udp_queue` each; a full lane -> 503 busy from the headers alone, as a stranger's
//!   response) -> the first lane's handler in the engine's runtime (strangers' when the
//!   first is empty); telemetry's (while no alarm decides) on a thread at nice 10 ──┐
//! TCP/TLS conn ──frame───┤ (find_message: Content-Length framing, max_message_bytes;
//!                        │  a framing error closes the connection)
//!   over max_message_bytes (a datagram, or a Content-Length past it): headers only ->
//!     dialogue::too_large: a request -> 513 as a stranger's response; a stream then closes
//!                        v
//! dialogue::handle: parse (unparseable -> dropped, counted)
//!   no credentials: the source's unauthenticated budget (strangers: token bucket per address
//!     in a fixed table; spent -> dropped, counted) -> answered statelessly, no table entry
//!   credentials: server transaction table lookup (retransmission -> the stored response
//!     again, never a second event) -> digest check (only the configured algorithm, `uri` =
//!     Request-URI, qop required unless the device has single-use nonces)
//!   OPTIONS -> 200 | other methods -> 405
//!   MESSAGE/REGISTER: accept_users (404) -> digest: none -> 401 challenge, stale or replayed
//!     -> 401 stale=true, wrong -> 403 (uri mismatch 400)
//!   every response to a request that did not authenticate: no larger than the request
//!     (optional headers left out, else nothing sent), within the source's budget
//!   authenticated -> a server transaction (table full -> 503) -> REGISTER: bind contact
//!     (memory) | MESSAGE: not scaip+xml -> 415, else 200 OK and answer::start
//! answer (own task, bounded by max_pending, else snu 6):
//!   <mrq> parse (snu 2/3/7/10 on errors; a malformed lge value is dropped, the message kept)
//!   -> may_send_as(account, cid) (else snu 3) -> convert::to_event -> Router::submit
//!   -> durable within hold_after_ms ? snu 0 / 5 (no centre, alarm lane) / 6 (busy)
//!                                  : snu 4 HOLD (the device resends; idempotent)
//!   -> <mrs> as a new MESSAGE (same Call-ID, new From tag, own CSeq) to the registered
//!      contact's address, else the request's source (never to a Contact a request names);
//!      over TCP/TLS on the request's connection; over UDP retransmitted (Timer E/F) until a
//!      final response.
//! ```
//!
//! Identity: the digest username is the device id (unique across tenants among devices with a
//! password); the `<mrq>` `cid` must be that device or one its gateway registration lists.
//! Registrations and the per-device `hbi` memory are in memory only.
//!
//! **Shutdown.** [`SipServer::shutdown`]: stop reading, wait (bounded) until every answer
//! underway has sent its `<mrs>` once, then stop all tasks. Call it before `Router::shutdown`.
mod answer;
mod config;
pub mod convert;
mod dialogue;
mod link;
mod registrar;
mod server;
mod shared;
mod strangers;
mod transport;
mod udp_lanes;

pub use config::{SipConfig, SipListen};
pub use server::{sip_credential, SipAddrs, SipServer};
pub use shared::Account;

/// Starting the SCAIP front failed. Errors name the configuration key at fault.
#[derive(Debug, thiserror::Error)]
pub enum SipStartError {
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("{key}: cannot bind {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}
