//! `[dc09]` in the configuration file: where the SIA DC-09 front listens and its bounds.
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use vaka_dc09::Window;

/// The DC-09 front's configuration. Every size is a hard bound (invariant 6).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dc09Config {
    /// DC-09 over UDP on this address; absent: no UDP.
    pub udp: Option<SocketAddr>,
    /// DC-09 over TCP on this address; absent: no TCP.
    pub tcp: Option<SocketAddr>,
    /// Seconds an encrypted message's timestamp may lie in the past (NAK beyond).
    pub window_past_secs: u32,
    /// Seconds it may lie in the future.
    pub window_future_secs: u32,
    /// Largest frame taken, bytes (LF to CR); a longer one is NAKed (UDP) or closes the
    /// connection (TCP, where the stream cannot be resynchronised).
    pub max_frame_bytes: usize,
    /// Concurrent TCP connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Messages being stored at once (UDP datagrams and TCP connections together); past it a
    /// message is answered DUH so the panel tries again or its other path. Link tests (NULL)
    /// may hold at most half of it: the other half is kept for alarms.
    pub max_pending: usize,
    /// A TCP connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// A message not durable within this gets no answer: the panel resends after its own
    /// timeout (the resend is recognised and makes no second event).
    pub answer_within_ms: u64,
}

impl Default for Dc09Config {
    fn default() -> Self {
        let w = Window::default();
        Dc09Config {
            udp: None,
            tcp: None,
            window_past_secs: w.past_secs,
            window_future_secs: w.future_secs,
            max_frame_bytes: 2048,
            max_connections: 1024,
            max_pending: 4096,
            idle_timeout_secs: 300,
            answer_within_ms: 4_000,
        }
    }
}

impl Dc09Config {
    /// The first key found wrong, with why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, r: &str| Err((format!("dc09.{k}"), r.to_owned()));
        if self.udp.is_none() && self.tcp.is_none() {
            return bad("udp", "give udp or tcp (or both), or leave [dc09] out");
        }
        if !(64..=0xFFFF + 10).contains(&self.max_frame_bytes) {
            return bad("max_frame_bytes", "must be 64..=65545");
        }
        for (key, v) in [
            ("max_connections", self.max_connections),
            ("max_pending", self.max_pending),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.idle_timeout_secs == 0 {
            return bad("idle_timeout_secs", "must be at least 1");
        }
        if self.answer_within_ms == 0 {
            return bad("answer_within_ms", "must be at least 1");
        }
        Ok(())
    }

    pub fn window(&self) -> Window {
        Window {
            past_secs: self.window_past_secs,
            future_secs: self.window_future_secs,
        }
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_transport_and_sane_bounds() {
        let none = Dc09Config::default();
        assert_eq!(none.validate().unwrap_err().0, "dc09.udp");
        let ok = Dc09Config {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..Dc09Config::default()
        };
        assert!(ok.validate().is_ok());
        let tiny = Dc09Config {
            max_frame_bytes: 10,
            ..ok.clone()
        };
        assert_eq!(tiny.validate().unwrap_err().0, "dc09.max_frame_bytes");
        let zero = Dc09Config {
            max_pending: 0,
            ..ok
        };
        assert_eq!(zero.validate().unwrap_err().0, "dc09.max_pending");
    }
}
