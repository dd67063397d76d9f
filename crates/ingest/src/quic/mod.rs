//! vaka/1: the device front over QUIC.
//!
//! ```text
//! UDP socket(s) --quinn endpoint(s)--> accept: connection semaphore (else CONNECTION_REFUSED)
//!   TLS 1.3 handshake, ALPN "vaka/1", client certificate -> TenantVerifier:
//!       tenant = the tenant whose CA verifies the chain, device = subject CN, must be in the
//!       directory; otherwise the handshake fails (TLS alert)
//!   one bidirectional stream: Hello -> Welcome, then per frame:
//!       split_frame (length prefix over max_frame_bytes -> close FRAME_TOO_LARGE)
//!       parse_client_frame (> max_events_per_frame -> close TOO_MANY_EVENTS;
//!                           undecodable -> ServerFrame.error, connection goes on)
//!       per event: key, device (may_send_as, else REJECTED), fields (else ERROR)
//!                  -> Router::submit -> future of the durable reply
//!   replies: all frames' reply futures are polled together (pipelining: the next frame is read
//!   while earlier ones wait for durability); whatever is ready goes out in one ReplyFrame.
//!   At max_inflight_events unanswered events the connection is not read until replies drain.
//! ```
//!
//! **Identity.** Device certificates are issued by their tenant's CA (`quic.tenant_cas`); the
//! device id is the subject CN (exactly one CN; SANs are not used, so a device id need not be a DNS
//! name). A certificate that no tenant CA verifies, or whose CN is not a device of the tenant whose
//! CA verified it (e.g. a certificate from another tenant's CA), fails the handshake. The identity
//! is checked again after the handshake (resumed TLS sessions skip the verifier), and a device
//! removed since is closed with [`codes::IDENTITY`].
//!
//! **Replies** (`Status`): OK = durable (and a centre can act, or it is not an alarm-lane event);
//! NOT_TREATED = durable but no centre of the chain is reachable (invariant 5); BUSY = not stored
//! (router lane full, shutting down, store failure): retry with the same key; REJECTED = not
//! allowed (sending as a device the directory does not allow, unknown device); ERROR = malformed
//! event. Application error codes of closes: [`vaka_proto::codes`].
//!
//! **Endpoints.** quinn drives all I/O of one endpoint on one task. `quic.endpoints = N` opens N
//! endpoints: with `reuse_port = true` (default) all on `quic.listen` with SO_REUSEPORT, the kernel
//! spreading clients over them by address hash; a device whose address changes mid-connection
//! (NAT rebinding, network change) may then hash to another endpoint, which does not know the
//! connection: it reconnects and resends (harmless, idempotent). With `reuse_port = false` endpoint
//! i listens on port + i, migration keeps working, and devices are given the list of ports
//! (`vaka_device::DeviceConfig::servers`). One endpoint is the default: on 2 cores the router and
//! store need the other core.
//!
//! **Alarms first** (invariant 9 from the socket on). `listen.quic_telemetry` opens a telemetry
//! port: one more endpoint with its own UDP socket, run with its connections on a thread of its
//! own at a lower OS priority (`crate::low_priority`) and with its own connection limit, so a
//! telemetry flood fills neither the alarm socket's kernel queue, nor its connection places,
//! nor the runtime the alarm connections run on, and yields the CPU to them. Devices send
//! alarms to `listen.quic` and telemetry to the telemetry port (a second connection with the
//! same certificate); what each port accepts is the same, so a device that knows one port only
//! loses nothing. On either port, a frame of telemetry alone waits while an alarm decides,
//! and for 50 ms after the last one only 16 telemetry events may be in flight (`alarm_flow`,
//! the SIP/UDP front's rule); a frame with an alarm in it is never held.
//!
//! **Shutdown.** [`QuicServer::shutdown`]: stop accepting, stop reading frames, let every
//! connection write the replies of what it already submitted (bounded by `drain_timeout_secs`),
//! close with [`codes::SHUTDOWN`], wait for the endpoints to send
//! their closes. Call it before `Router::shutdown`.
mod alarm_flow;
mod config;
mod conn;
mod convert;
mod server;
mod shared;
mod tls;

pub use config::QuicConfig;
pub use server::QuicServer;
pub use vaka_proto::codes;

/// Starting the QUIC front failed. Errors name the configuration key at fault.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("quic.listen: cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}
