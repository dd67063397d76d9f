//! What the handlers share, apart from the router that wires them (so no handler imports it).
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use vaka_core::DeviceKey;

use crate::control::Control;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    pub control: Arc<Control>,
    /// The SCAIP front's digest realm: passwords given to the API become HA1 values for it.
    pub realm: String,
    /// How a device is connected now (asked of the fronts).
    pub links: Links,
    /// Renders the engine's metrics as Prometheus text (what /metrics answers), for the
    /// dashboard; `None` where no recorder is installed (some tests).
    pub metrics: Option<MetricsText>,
}

/// Renders the engine's metrics as Prometheus text.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

/// Asks the fronts how a device is connected now.
pub type Links = Arc<dyn Fn(&DeviceKey) -> Vec<Link> + Send + Sync>;

/// How a device is connected now, as the fronts know it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Link {
    /// "quic", "sip-udp", "sip-tcp", "sip-tls".
    pub transport: String,
    pub remote: String,
    /// Connected since (QUIC) or registered until (SIP), unix ms.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}
