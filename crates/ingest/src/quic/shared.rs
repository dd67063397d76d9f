//! What every connection task shares (`Shared`: the router, the directory, limits, the open
//! connections by device) and the front's metric handles, apart from the code that starts the
//! tasks so that the connection code imports it without importing the server.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio_util::sync::CancellationToken;
use vaka_core::DeviceKey;
use vaka_router::{Clock, LiveDirectory, Router};

use super::alarm_flow::AlarmFlow;
use super::tls::TenantVerifier;

/// Open connections by device, each with since when (unix ms).
pub(crate) type Connected = std::collections::HashMap<DeviceKey, Vec<(quinn::Connection, i64)>>;

/// What every connection task shares.
pub(crate) struct Shared {
    pub router: Arc<Router>,
    pub directory: LiveDirectory,
    pub verifier: Arc<TenantVerifier>,
    pub clock: Clock,
    pub token: CancellationToken,
    pub max_frame_bytes: usize,
    pub max_events_per_frame: usize,
    pub max_inflight_events: usize,
    pub hello_timeout: Duration,
    pub drain_timeout: Duration,
    pub metrics: Metrics,
    /// Alarms first: telemetry waits its turn while alarms flow.
    pub flow: Arc<AlarmFlow>,
    /// Open connections by device, for the admin API's device status and for closing those of a
    /// device removed from the directory.
    pub connected: Mutex<Connected>,
}

impl Shared {
    pub(crate) fn connected(&self) -> std::sync::MutexGuard<'_, Connected> {
        self.connected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Metric handles, registered once (the recorder must be installed before [`QuicServer::start`]).
/// Names follow Vector's component spec with `stage="quic"`.
pub(crate) struct Metrics {
    pub events_received: Counter,
    pub bytes_received: Counter,
    /// Events handed to the router.
    pub events_sent: Counter,
    /// Alarm-lane events (what is offered to people) taken in: the dashboard's alarms/s.
    pub alarms_received: Counter,
    pub bytes_sent: Counter,
    /// Replies by status: ok, not_treated, busy, rejected, error.
    pub replies: [Counter; 5],
    /// Events not stored, by reason (the reply status): busy, rejected, error.
    pub discarded: [Counter; 3],
    pub frame_errors: Counter,
    pub protocol_errors: Counter,
    pub handshake_errors: Counter,
    pub connections_active: Gauge,
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let s = "stage";
        let q = "quic";
        let status =
            |st: &'static str| metrics::counter!("vaka_replies_total", s => q, "status" => st);
        let discarded = |r: &'static str| metrics::counter!("vaka_events_discarded_total", s => q, "reason" => r);
        let error = |k: &'static str| metrics::counter!("vaka_errors_total", s => q, "kind" => k);
        Self {
            events_received: metrics::counter!("vaka_events_received_total", s => q),
            bytes_received: metrics::counter!("vaka_bytes_received_total", s => q),
            events_sent: metrics::counter!("vaka_events_sent_total", s => q),
            alarms_received: metrics::counter!("vaka_alarms_received_total", "protocol" => q),
            bytes_sent: metrics::counter!("vaka_bytes_sent_total", s => q),
            replies: [
                status("ok"),
                status("not_treated"),
                status("busy"),
                status("rejected"),
                status("error"),
            ],
            discarded: [discarded("busy"), discarded("rejected"), discarded("error")],
            frame_errors: error("malformed_frame"),
            protocol_errors: error("protocol"),
            handshake_errors: error("handshake"),
            connections_active: metrics::gauge!("vaka_connections_active", s => q),
            connections_accepted: metrics::counter!("vaka_connections_total", s => q, "result" => "accepted"),
            connections_refused: metrics::counter!("vaka_connections_total", s => q, "result" => "refused"),
        }
    }
}
