//! Loopback ports for a test's servers, chosen below the kernel's ephemeral range. A port that
//! `bind(0)` picks comes from that range, where any socket of any test (a client's connection,
//! another `bind(0)`) may take it between the probe and the server's own bind, and the server
//! then fails to start ("Address already in use"; seen in CI). Below the range only another
//! probe could, and probes pick at random among some 20,000 ports.
#![allow(dead_code)]
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// The lowest port of the range used for test servers.
const LOW: u32 = 10_000;

/// A port on 127.0.0.1 that `free` finds free right now, below the ephemeral range (or from
/// `bind(0)` via `fallback` when that range starts too low to leave room below it).
pub fn port_below_ephemeral(free: impl Fn(u16) -> bool, fallback: impl Fn() -> u16) -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(LOW);
    if span < 2_000 {
        return fallback();
    }
    loop {
        let r = RandomState::new().hash_one(std::time::Instant::now());
        let port = (LOW + (r % u64::from(span)) as u32) as u16;
        if free(port) {
            return port;
        }
    }
}
