//! vaka/1 device client: what a device (or a gateway, or the load tool) needs to talk to Vaka over
//! QUIC.
//!
//! - [`Client::connect`]: mutual TLS with the device's certificate, ALPN `vaka/1`, one long-lived
//!   bidirectional stream, Hello -> Welcome (the server's limits).
//! - [`Client::send`] / [`Client::send_batch`]: events in frames (split to the server's limits),
//!   answered per event by key once durable. [`Client::submit`] enqueues without waiting, so one
//!   task can keep many frames in flight (pipelining).
//! - Reconnect: when the connection fails, the client reconnects (exponential backoff, rotating
//!   over [`DeviceConfig::servers`]) and resends every event not yet answered, with the same keys:
//!   the engine's idempotency makes resends harmless (an alarm resend is answered `duplicate`
//!   with the original's ids).
//! - Bounded: at most [`DeviceConfig::max_pending`] events wait for replies; past it `submit`
//!   waits for room.
//! - Alarms first: where the engine has a telemetry port (`listen.quic_telemetry`), a device
//!   that sends telemetry in volume (positions, readings) makes a second `Client` with the same
//!   certificate and `servers` set to the telemetry port(s), and sends alarms on the first one.
//!   Under a telemetry flood the engine serves the alarm port first. Either port takes every
//!   kind of event, so a device that knows only one loses nothing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vaka_device::ClientError> {
//! use vaka_device::{events, Client, DeviceConfig};
//! let cfg = DeviceConfig::from_pem_files(
//!     "127.0.0.1:4433".parse().unwrap(), "certs/server-ca.pem",
//!     "certs/demo/d1.pem", "certs/demo/d1-key.pem",
//! ).map_err(|e| vaka_device::ClientError::Config(e.to_string()))?;
//! let client = Client::connect(cfg).await?;
//! let reply = client.send(events::alarm("ref-1", "0010", 5)).await?;
//! println!("{:?}", reply.status());
//! # Ok(()) }
//! ```
pub mod events;

mod client;
mod tls;

pub use client::{Client, ReplyFuture};
pub use tls::{client_endpoint, quic_client_config};
pub use vaka_proto::{codes, pb};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How a device connects. Certificates are PEM.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Servers to try, in order; after a failure the next one is tried.
    pub servers: Vec<SocketAddr>,
    /// The name the server certificate must carry ("localhost" for the demo certificates).
    pub server_name: String,
    /// CA certificate(s) the server certificate must chain to.
    pub server_ca_pem: Vec<u8>,
    /// The device's certificate chain (issued by its tenant's CA; CN = device id).
    pub cert_pem: Vec<u8>,
    /// The device's private key.
    pub key_pem: Vec<u8>,
    /// Sent in Hello, for the server's logs.
    pub software: String,
    pub version: String,
    /// Sent in Hello: this certificate sends for other devices.
    pub gateway: bool,
    /// QUIC idle timeout (the smaller of the client's and the server's applies).
    pub idle_timeout: Duration,
    /// Keep-alive pings, so NAT bindings stay open; `None` for none.
    pub keep_alive: Option<Duration>,
    /// Bound on one connection attempt: handshake, Hello, Welcome.
    pub connect_timeout: Duration,
    /// Reconnect backoff: first delay, doubled per failure up to the maximum.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Consecutive failed reconnects before giving up (then every waiting event fails with
    /// [`ClientError::Disconnected`]); `None` = never give up (a device keeps trying).
    pub max_reconnect_attempts: Option<u32>,
    /// Events waiting for their replies, at most.
    pub max_pending: usize,
    /// Largest server frame accepted.
    pub max_server_frame_bytes: usize,
}

impl DeviceConfig {
    /// A configuration with defaults for everything but the server and the certificates.
    pub fn new(
        server: SocketAddr,
        server_ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Self {
        Self {
            servers: vec![server],
            server_name: "localhost".into(),
            server_ca_pem,
            cert_pem,
            key_pem,
            software: "vaka-device".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            gateway: false,
            idle_timeout: Duration::from_secs(120),
            keep_alive: Some(Duration::from_secs(25)),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            max_reconnect_attempts: None,
            max_pending: 65_536,
            max_server_frame_bytes: 16 * 1024 * 1024,
        }
    }

    /// [`new`](Self::new) reading the PEM files.
    pub fn from_pem_files(
        server: SocketAddr,
        server_ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> std::io::Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(Self::new(
            server,
            read(server_ca.as_ref())?,
            read(cert.as_ref())?,
            read(key.as_ref())?,
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("configuration: {0}")]
    Config(String),
    /// The server refused the device: certificate not accepted (a TLS alert during the
    /// handshake) or identity no longer valid ([`codes::IDENTITY`]).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The server closed the connection with an application error code ([`codes`]).
    #[error("closed by the server: {name} (0x{code:x}): {reason}")]
    ClosedByServer {
        code: u64,
        name: &'static str,
        reason: String,
    },
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The event cannot be sent as it is (empty key, the same key already waiting, too large).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The client was closed (or dropped) before the reply came.
    #[error("client closed")]
    Closed,
    /// Reconnecting failed `max_reconnect_attempts` times in a row.
    #[error("gave up reconnecting: {0}")]
    Disconnected(String),
}

impl ClientError {
    pub(crate) fn from_connection(e: &quinn::ConnectionError) -> Self {
        use quinn::ConnectionError as C;
        // TLS alerts travel as QUIC crypto errors, 0x100 + alert.
        let crypto = |code: u64| code & !0xff == 0x100;
        match e {
            C::TransportError(t) if crypto(u64::from(t.code)) => Self::Refused(e.to_string()),
            C::ConnectionClosed(c) if crypto(u64::from(c.error_code)) => {
                Self::Refused(e.to_string())
            }
            C::ApplicationClosed(c) if c.error_code.into_inner() == u64::from(codes::IDENTITY) => {
                Self::Refused(e.to_string())
            }
            C::ApplicationClosed(c) => {
                let code = c.error_code.into_inner();
                Self::ClosedByServer {
                    code,
                    name: codes::name(code),
                    reason: String::from_utf8_lossy(&c.reason).into_owned(),
                }
            }
            _ => Self::Connection(e.to_string()),
        }
    }

    /// Whether retrying (reconnecting) cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Refused(_) | Self::InvalidEvent(_) | Self::Closed
        )
    }
}
