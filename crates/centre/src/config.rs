//! The centre API's limits and timings (built from `[grpc]` by the server binary).
use std::time::Duration;

/// Limits and timings of the centre API (invariant 6: everything bounded).
#[derive(Clone, Debug)]
pub struct CentreApiConfig {
    /// A heartbeat goes out this often on every stream.
    pub heartbeat: Duration,
    /// A stream whose oldest sent notice stays unacknowledged this long is ended: the centre
    /// counts as unreachable and what it held unaccepted escalates.
    pub ack_timeout: Duration,
    /// The first message (hello) must arrive within this.
    pub hello_timeout: Duration,
    /// Notices sent but not yet acknowledged, per stream; beyond it the stream waits for acks.
    pub max_unacked: usize,
    /// Outbox entries read per store read.
    pub read_batch: usize,
    /// Centre inputs (receipt, accept, ...) awaiting durability per stream; beyond it the stream
    /// stops reading until some complete.
    pub max_inputs: usize,
    /// Largest message a centre may send.
    pub max_message_bytes: usize,
    /// HTTP/2 keepalive ping interval and timeout: finds dead connections that TCP would keep
    /// for many minutes. `None` turns it off.
    pub keepalive: Option<Duration>,
}

impl Default for CentreApiConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            max_unacked: 1024,
            read_batch: 256,
            max_inputs: 256,
            max_message_bytes: 64 * 1024,
            keepalive: Some(Duration::from_secs(20)),
        }
    }
}
