//! `[sip]` in the configuration file. The listen addresses live in `[listen]` (`sip_udp`,
//! `sip_tcp`, `sip_tls`); this section says which transports run and bounds everything else.
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vaka_scaip::DigestAlgorithm;

use super::SipStartError;

/// The SCAIP front's configuration. Every size is a hard bound (invariant 6).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Run SIP over UDP on `listen.sip_udp`.
    pub udp: bool,
    /// Run SIP over TCP on `listen.sip_tcp`.
    pub tcp: bool,
    /// Run SIP over TLS on `listen.sip_tls` with `tls_cert`/`tls_key`.
    pub tls: bool,
    /// Digest realm offered in challenges.
    pub realm: String,
    /// `MD5` (what devices support) or `SHA-256`: the only algorithm accepted in answers (an
    /// answer in the other is refused: no downgrade).
    pub digest_algorithm: String,
    /// How long a nonce may be used; after that the device gets `stale=true` and retries.
    pub nonce_lifetime_secs: u64,
    /// Refuse credentials without `qop=auth`: RFC 2069 style has no nonce count, so a captured
    /// header could be replayed on other requests while its nonce lives. A device that cannot
    /// do qop needs `digest_single_use_nonce = true` on its `[[devices]]` entry (each nonce
    /// then serves one request); `false` accepts them reusable, for every device.
    pub require_qop: bool,
    /// Request-URI user parts accepted for MESSAGE and REGISTER; empty = any.
    pub accept_users: Vec<String>,
    /// Host (name or address) we put in our Via and From for the `<mrs>`; empty = the address
    /// of the socket the request arrived on.
    pub advertised_host: String,
    /// Server certificate chain, PEM.
    pub tls_cert: PathBuf,
    /// Server private key, PEM.
    pub tls_key: PathBuf,
    /// If the router has not answered within this, the device gets `<mrs>` snu 4 (HOLD) and
    /// resends; the resend is idempotent.
    pub hold_after_ms: u64,
    /// Largest SIP message (headers and body) accepted on any transport.
    pub max_message_bytes: usize,
    /// Concurrent TCP plus TLS connections; past it new ones are closed at once. An upper bound:
    /// the engine lowers it to what its descriptor budget leaves (`vaka serve` logs the cap it
    /// uses). At most half of them may be connections that have not authenticated a request.
    pub max_connections: usize,
    /// A TCP/TLS connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// A request on TCP/TLS must be complete this long after its first byte (a trickle that
    /// keeps the idle timer from firing still ends here; invariant 13). A connection that has not
    /// authenticated a request yet is also closed after twice this of silence.
    pub header_timeout_secs: u64,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Live server transactions (retransmission memory); past it requests get 503. Only
    /// authenticated requests make one, so strangers cannot fill it (invariant 13).
    pub max_transactions: usize,
    /// Nonces tracked for the nonce-count replay check (and single-use nonces already used).
    pub max_nonces: usize,
    /// Responses a second to one source address (IPv6: its /64) for requests that did not
    /// authenticate (challenges, OPTIONS, refusals); past it they are dropped and counted.
    /// Over UDP the same budget also admits such requests into their lane at the socket.
    /// Authenticated requests never draw on it (invariant 13).
    pub unauthenticated_rate: u32,
    /// How many such responses a source may have at once (its bucket's size).
    pub unauthenticated_burst: u32,
    /// Buckets in the fixed table of sources (16 bytes each; hashed: sources sharing a bucket
    /// share its budget), twice: the dialogue's, and the UDP reader's. A flood of forged
    /// addresses costs no memory beyond them.
    pub unauthenticated_sources: usize,
    /// SCAIP requests being answered (router answer pending or `<mrs>` in flight); past it the
    /// device gets snu 6 (busy) at once. Heartbeats and info may hold at most half of it: the
    /// other half is kept for alarms.
    pub max_pending: usize,
    /// UDP datagrams waiting to be handled, per lane (alarms and the rest first, then requests
    /// without credentials, heartbeats and info after); past it a datagram is answered 503 at
    /// the socket, unparsed.
    pub udp_queue: usize,
    /// Largest registration lifetime granted; longer requests are shortened to this.
    pub max_expires_secs: u32,
    /// On shutdown, how long answers already underway may take to go out.
    pub drain_timeout_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp: true,
            tcp: true,
            tls: true,
            realm: "vaka".into(),
            digest_algorithm: "MD5".into(),
            nonce_lifetime_secs: 300,
            require_qop: true,
            accept_users: Vec::new(),
            advertised_host: String::new(),
            tls_cert: PathBuf::from("certs/server.pem"),
            tls_key: PathBuf::from("certs/server-key.pem"),
            hold_after_ms: 3_000,
            max_message_bytes: 16 * 1024,
            max_connections: 20_000,
            idle_timeout_secs: 600,
            header_timeout_secs: 5,
            handshake_timeout_secs: 10,
            max_transactions: 200_000,
            max_nonces: 200_000,
            unauthenticated_rate: 100,
            unauthenticated_burst: 1_000,
            unauthenticated_sources: 65_536,
            max_pending: 50_000,
            udp_queue: 2_048,
            max_expires_secs: 3_600,
            drain_timeout_secs: 5,
        }
    }
}

/// Where the transports listen (from `[listen]`); `None` = that transport is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipListen {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

impl SipConfig {
    /// The listen addresses of the transports this config turns on.
    pub fn listen(&self, udp: SocketAddr, tcp: SocketAddr, tls: SocketAddr) -> SipListen {
        SipListen {
            udp: self.udp.then_some(udp),
            tcp: self.tcp.then_some(tcp),
            tls: self.tls.then_some(tls),
        }
    }

    /// Checks values (files are read by `SipServer::start`). Errors name the key.
    pub fn validate(&self) -> Result<(), SipStartError> {
        let bad = |key: &str, reason: &str| {
            Err(SipStartError::Config {
                key: format!("sip.{key}"),
                reason: reason.into(),
            })
        };
        if self.realm.is_empty() || self.realm.contains(['"', '\\', '\r', '\n']) {
            return bad("realm", "must be non-empty, without quotes or line breaks");
        }
        if self.algorithm().is_none() {
            return bad("digest_algorithm", "must be \"MD5\" or \"SHA-256\"");
        }
        if self.nonce_lifetime_secs == 0 {
            return bad("nonce_lifetime_secs", "must be at least 1");
        }
        if self
            .advertised_host
            .contains(|c: char| c.is_whitespace() || "<>;,\"".contains(c))
        {
            return bad("advertised_host", "must be a host name or address");
        }
        if self.hold_after_ms == 0 {
            return bad("hold_after_ms", "must be at least 1");
        }
        if !(1024..=65_535).contains(&self.max_message_bytes) {
            return bad("max_message_bytes", "must be 1024..=65535");
        }
        for (key, v) in [
            ("max_connections", self.max_connections),
            ("max_transactions", self.max_transactions),
            ("max_nonces", self.max_nonces),
            ("max_pending", self.max_pending),
            ("udp_queue", self.udp_queue),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.unauthenticated_rate == 0 {
            return bad(
                "unauthenticated_rate",
                "must be at least 1 (responses a second)",
            );
        }
        if self.unauthenticated_burst == 0 {
            return bad("unauthenticated_burst", "must be at least 1");
        }
        if !(1..=(1 << 24)).contains(&self.unauthenticated_sources) {
            return bad("unauthenticated_sources", "must be 1..=16777216");
        }
        if self.idle_timeout_secs == 0 || self.handshake_timeout_secs == 0 {
            return bad(
                "idle_timeout_secs",
                "idle_timeout_secs and handshake_timeout_secs must be at least 1",
            );
        }
        if self.header_timeout_secs == 0 || self.header_timeout_secs > self.idle_timeout_secs {
            return bad(
                "header_timeout_secs",
                "must be at least 1 and at most idle_timeout_secs",
            );
        }
        if self.max_expires_secs == 0 {
            return bad("max_expires_secs", "must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn algorithm(&self) -> Option<DigestAlgorithm> {
        DigestAlgorithm::parse(&self.digest_algorithm)
    }

    pub(crate) fn hold_after(&self) -> Duration {
        Duration::from_millis(self.hold_after_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_toml_and_validation() {
        let c: SipConfig = toml::from_str("realm = \"alarm.example\"\ntls = false").unwrap();
        assert_eq!(c.realm, "alarm.example");
        assert!(!c.tls && c.udp && c.tcp);
        c.validate().unwrap();
        assert!(toml::from_str::<SipConfig>("nope = 1").is_err());
        let bad = SipConfig {
            digest_algorithm: "MD5-sess".into(),
            ..SipConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.starts_with("sip.digest_algorithm:"), "{e}");
        let bad = SipConfig {
            max_message_bytes: 100,
            ..SipConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.starts_with("sip.max_message_bytes:"), "{e}");
        assert!(c.require_qop, "replay-proof digests by default");
        for (bad, key) in [
            (
                SipConfig {
                    unauthenticated_rate: 0,
                    ..SipConfig::default()
                },
                "sip.unauthenticated_rate:",
            ),
            (
                SipConfig {
                    unauthenticated_burst: 0,
                    ..SipConfig::default()
                },
                "sip.unauthenticated_burst:",
            ),
            (
                SipConfig {
                    unauthenticated_sources: 0,
                    ..SipConfig::default()
                },
                "sip.unauthenticated_sources:",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.starts_with(key), "{e}");
        }
        let l = c.listen(
            "0.0.0.0:1".parse().unwrap(),
            "0.0.0.0:2".parse().unwrap(),
            "0.0.0.0:3".parse().unwrap(),
        );
        assert_eq!(l.tls, None);
        assert_eq!(l.tcp, Some("0.0.0.0:2".parse().unwrap()));
    }
}
