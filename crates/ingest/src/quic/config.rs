//! `[quic]` in the configuration file.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::QuicError;

/// The QUIC front's configuration (`[quic]`). Every size is a hard bound (invariant 6).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP address to listen on. In the engine's configuration file this is `listen.quic`.
    #[serde(skip)]
    pub listen: SocketAddr,
    /// The telemetry port: a second endpoint for devices' telemetry connections, with its own
    /// UDP socket and its own thread at a lower OS priority (`telemetry_nice`), so that a
    /// telemetry flood neither fills the alarm socket's kernel queue nor takes the CPU from
    /// alarms. In the engine's configuration file this is `listen.quic_telemetry`; absent = no
    /// such port (devices send everything on `listen`).
    #[serde(skip)]
    pub telemetry_listen: Option<SocketAddr>,
    /// The telemetry port's thread's nice value (Linux: 0..=19, higher yields more). 10 gives it
    /// about a tenth of a core's share against the engine's other threads when the CPU is
    /// contested, and all of it when not.
    pub telemetry_nice: i32,
    /// Number of QUIC endpoints (UDP sockets). quinn runs all I/O of one endpoint on one task;
    /// more endpoints spread that work over cores. See `reuse_port`.
    pub endpoints: usize,
    /// With several endpoints: `true` binds them all to `listen` with SO_REUSEPORT (the kernel
    /// spreads clients by address; a client whose address changes mid-connection may land on
    /// another endpoint, lose its connection and reconnect); `false` binds endpoint i to port
    /// `listen.port + i` (migration keeps working; devices must be given the ports).
    pub reuse_port: bool,
    /// Server certificate chain, PEM.
    pub server_cert: PathBuf,
    /// Server private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub server_key: PathBuf,
    /// Tenant id -> PEM file of the CA certificate(s) that issue that tenant's device certificates.
    /// A device's tenant is the tenant whose CA verifies its certificate; its id is the
    /// certificate's subject CN.
    pub tenant_cas: BTreeMap<String, PathBuf>,
    /// Tenant id -> PEM file of certificate revocation lists issued by that tenant's CA: a device
    /// certificate listed there is refused at the handshake ("revoked"). Re-read at start.
    pub tenant_crls: BTreeMap<String, PathBuf>,
    /// Largest frame (bytes, without its length prefix) a device may send.
    pub max_frame_bytes: usize,
    /// Most events in one frame.
    pub max_events_per_frame: usize,
    /// Events of one connection submitted and not yet answered; at the bound the server stops
    /// reading that connection (QUIC flow control then slows the device).
    pub max_inflight_events: usize,
    /// Concurrent connections; past it new connections are refused (QUIC CONNECTION_REFUSED).
    pub max_connections: usize,
    /// Concurrent connections on the telemetry port, counted apart from `max_connections`, so
    /// that telemetry connections never take an alarm device's place.
    pub telemetry_max_connections: usize,
    /// A connection with no traffic for this long is closed (QUIC idle timeout; the smaller of
    /// the two peers' values applies).
    pub idle_timeout_secs: u64,
    /// Server-sent keep-alives; 0 = none (devices keep their connection alive themselves, which
    /// is what keeps their NAT binding open; pinging 300,000 devices would cost their batteries).
    pub keep_alive_secs: u64,
    /// Time from handshake to the device's Hello.
    pub hello_timeout_secs: u64,
    /// On shutdown, how long connections may take to answer the events they already submitted.
    pub drain_timeout_secs: u64,
    /// UDP socket send/receive buffer size; 0 = the OS default.
    pub socket_buffer_bytes: usize,
    /// Probe each connection's path for packets larger than QUIC's minimum 1,200 bytes. Off by
    /// default: device frames are small, and the probing state and larger send buffer cost
    /// about 1.6 KiB per connection, kept for the connection's life (BENCHMARKS.md). Gateways
    /// sending large batches over a known path may turn it on.
    pub mtu_discovery: bool,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
            telemetry_listen: None,
            telemetry_nice: 10,
            endpoints: 1,
            reuse_port: true,
            server_cert: PathBuf::from("certs/server.pem"),
            server_key: PathBuf::from("certs/server-key.pem"),
            tenant_cas: BTreeMap::new(),
            tenant_crls: BTreeMap::new(),
            max_frame_bytes: 256 * 1024,
            max_events_per_frame: 1024,
            max_inflight_events: 4096,
            max_connections: 20_000,
            telemetry_max_connections: 20_000,
            idle_timeout_secs: 120,
            keep_alive_secs: 0,
            hello_timeout_secs: 10,
            drain_timeout_secs: 5,
            socket_buffer_bytes: 4 * 1024 * 1024,
            mtu_discovery: false,
        }
    }
}

impl QuicConfig {
    /// Checks the numbers (files are read by [`QuicServer::start`](super::QuicServer::start)).
    /// Errors name the key, e.g. `quic.max_frame_bytes: must be at least 1024`.
    pub fn validate(&self) -> Result<(), QuicError> {
        let bad = |key: &str, reason: &str| {
            Err(QuicError::Config {
                key: format!("quic.{key}"),
                reason: reason.into(),
            })
        };
        if self.endpoints == 0 || self.endpoints > 64 {
            return bad("endpoints", "must be 1..=64");
        }
        if !self.reuse_port && usize::from(self.listen.port()) + self.endpoints > 65536 {
            return bad("endpoints", "listen port + endpoints exceeds 65535");
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > 64 * 1024 * 1024 {
            return bad("max_frame_bytes", "must be 1024..=67108864");
        }
        if self.max_events_per_frame == 0 || self.max_events_per_frame > 1_000_000 {
            return bad("max_events_per_frame", "must be 1..=1000000");
        }
        if self.max_inflight_events < self.max_events_per_frame {
            return bad(
                "max_inflight_events",
                "must be at least max_events_per_frame",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.telemetry_max_connections == 0 {
            return bad("telemetry_max_connections", "must be at least 1");
        }
        if self.idle_timeout_secs == 0 || self.idle_timeout_secs > 24 * 3600 {
            return bad("idle_timeout_secs", "must be 1..=86400");
        }
        if self.keep_alive_secs != 0 && self.keep_alive_secs >= self.idle_timeout_secs {
            return bad(
                "keep_alive_secs",
                "must be 0 (off) or less than idle_timeout_secs",
            );
        }
        if !(0..=19).contains(&self.telemetry_nice) {
            return bad("telemetry_nice", "must be 0..=19");
        }
        if self.telemetry_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(QuicError::Config {
                key: "listen.quic_telemetry".into(),
                reason: "must differ from listen.quic".into(),
            });
        }
        if self.hello_timeout_secs == 0 {
            return bad("hello_timeout_secs", "must be at least 1");
        }
        if self.tenant_cas.is_empty() {
            return bad(
                "tenant_cas",
                "no tenant CA configured: no device could connect",
            );
        }
        for t in self.tenant_cas.keys() {
            if t.is_empty() || t.contains('\0') {
                return bad(
                    "tenant_cas",
                    "tenant ids must be non-empty and contain no NUL",
                );
            }
        }
        if let Some(t) = self
            .tenant_crls
            .keys()
            .find(|t| !self.tenant_cas.contains_key(*t))
        {
            return Err(QuicError::Config {
                key: format!("quic.tenant_crls.{t}"),
                reason: "a revocation list for a tenant without a CA in quic.tenant_cas".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub(crate) fn hello_timeout(&self) -> Duration {
        Duration::from_secs(self.hello_timeout_secs)
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_toml() {
        let c: QuicConfig = toml::from_str(
            r#"
            max_events_per_frame = 10
            [tenant_cas]
            t1 = "certs/t1/ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.max_events_per_frame, 10);
        assert_eq!(c.max_frame_bytes, QuicConfig::default().max_frame_bytes);
        c.validate().unwrap();
        assert!(toml::from_str::<QuicConfig>("nope = 1").is_err());
        // The address is the engine's `listen.quic`, not a second key here.
        assert!(toml::from_str::<QuicConfig>("listen = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = QuicConfig::default();
        c.tenant_cas.insert("t".into(), "x".into());
        c.tenant_crls.insert("u".into(), "crl.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("quic.tenant_crls.u:"), "{e}");
        c.tenant_crls.clear();
        c.max_inflight_events = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("quic.max_inflight_events:"), "{e}");
        let e = QuicConfig::default().validate().unwrap_err().to_string();
        assert!(e.starts_with("quic.tenant_cas:"), "{e}");
    }
}
