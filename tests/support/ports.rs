//! Loopback ports for a test's servers, chosen below the kernel's ephemeral range. A port that
//! `bind(0)` picks comes from that range, where any socket of any test (a client's connection,
//! another `bind(0)`) may take it between the probe and the server's own bind, and the server
//! then fails to start ("Address already in use"; seen in CI). Below the range only another
//! probe could, and probes pick at random among some 20,000 ports.
#![allow(dead_code)]
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{TcpListener, UdpSocket};

/// The lowest port of the range used for test servers.
const LOW: u32 = 10_000;

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A UDP port free on 127.0.0.1 right now (QUIC, SIP over UDP).
pub fn free_udp_port() -> u16 {
    below_ephemeral(udp_free)
}

/// A TCP port free on 127.0.0.1 right now (gRPC, HTTP, nats-server).
pub fn free_tcp_port() -> u16 {
    below_ephemeral(tcp_free)
}

/// A port free on 127.0.0.1 for both UDP and TCP right now (SIP over both, sipp's Contact).
pub fn free_udp_tcp_port() -> u16 {
    below_ephemeral(|p| udp_free(p) && tcp_free(p))
}

/// A port that `free` finds free right now, below the ephemeral range; when that range starts
/// too low to leave room below it, one `bind(0)` picks (as before).
fn below_ephemeral(free: impl Fn(u16) -> bool) -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(LOW);
    loop {
        let port = if span < 2_000 {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            let r = RandomState::new().hash_one(std::time::Instant::now());
            (LOW + (r % u64::from(span)) as u32) as u16
        };
        if free(port) {
            return port;
        }
    }
}
