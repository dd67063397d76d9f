//! The SCAIP fleet: devices that send `<mrq>` in SIP MESSAGE over UDP or TCP, as real social-alarm
//! devices do, written with the `vaka-scaip` codec.
//!
//! Per event a device sends a MESSAGE (`application/scaip+xml`, Call-ID `<ref>-<device>@vaka-load`).
//! The first one of a device carries no credentials and gets 401 with a digest challenge, which the
//! device keeps (nonce count increasing) for every later request; 401 `stale=true` makes it take the
//! new nonce and resend, 403 counts as `forbidden` (`forbidden_after_auth` once the device's
//! credentials were accepted: then it is not the password). After the 200 OK the server's `<mrs>` comes as a
//! MESSAGE of its own (same Call-ID), answered 200 every time it arrives; its `snu` decides: 0 acked,
//! 5 acked but `not_treated`, 4 HOLD (resend the same request, same ref, new branch, after
//! `hold_retry`), 6 `busy`, the others their error kind. Latency counts from the event's scheduled
//! time to the `<mrs>`.
//!
//! Over UDP the devices share a few sockets: a reader per socket hands every message to the device
//! the Call-ID names, and a device retransmits its MESSAGE on `vaka_scaip`'s client transaction
//! timers (RFC 3261 §17.1.2.2: T1 doubling to T2) until a final response, counting a `timeout` at
//! Timer F or after `SipOptions::timeout` if that is shorter. Over TCP each device has its own
//! connection (framing by Content-Length, a reader task per connection) and reconnects when it
//! breaks. Like the QUIC fleet, the dispatcher queues events to device tasks and never waits.
//!
//! - `mapping`: planned event -> `<mrq>`, Call-IDs, `<mrs>`/response -> verdict (pure).
//! - `retransmit`: when to resend a MESSAGE and when to give up (pure).
//! - `wire`: sockets, connections, their readers, the OPTIONS probe.
//! - `inbox`: what a device task is handed.
//! - `device`: one device's transactions: auth, HOLD, retransmissions, the `<mrs>`.
//! - `fleet`: [`SipFleet`], setting up the devices and their tasks.
use std::net::SocketAddr;
use std::time::Duration;

mod device;
mod fleet;
mod inbox;
mod mapping;
mod retransmit;
#[cfg(test)]
mod tests;
mod wire;

pub use fleet::SipFleet;
pub use mapping::{
    call_id, check_devices, parse_call_id, technical_stc, to_mrq, verdict, Verdict,
    STC_BATTERY_LOW, STC_RESTORAL, TELEMETRY_ICO,
};

#[derive(Clone, Debug)]
pub struct SipOptions {
    pub server: SocketAddr,
    /// TCP (one connection per device) instead of UDP (shared sockets).
    pub tcp: bool,
    /// UDP sockets the devices share.
    pub sockets: usize,
    /// TCP connections being set up at once.
    pub connect_parallel: usize,
    /// Wait after `<mrs>` snu 4 (HOLD) before resending the same request.
    pub hold_retry: Duration,
    /// No final response to a MESSAGE within this is a `timeout`, Timer F (32 s) still applying
    /// if this is longer: load runs may give up sooner than RFC 3261, never later. No `<mrs>`
    /// this long after the 200 OK is `no_mrs`.
    pub timeout: Duration,
    /// The Request-URI's user part (the server's `sip.accept_users`).
    pub request_user: String,
}
