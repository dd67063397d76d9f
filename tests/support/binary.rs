//! What the end-to-end tests of the binary share: free loopback ports, the binary under test,
//! its /metrics.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

// Also included by sipp.rs/binary.rs: a test that includes both compiles it twice, which
// is harmless (it keeps no state).
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A UDP port free on 127.0.0.1 right now (QUIC, SIP over UDP), below the ephemeral range.
pub fn free_udp_port() -> u16 {
    ports::port_below_ephemeral(udp_free, || {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// A port free on 127.0.0.1 for both UDP and TCP right now (SIP over both, sipp's Contact).
pub fn free_udp_tcp_port() -> u16 {
    ports::port_below_ephemeral(
        |p| udp_free(p) && tcp_free(p),
        || loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if tcp_free(port) {
                return port;
            }
        },
    )
}

/// A TCP port free on 127.0.0.1 right now (gRPC, metrics), below the ephemeral range.
pub fn free_tcp_port() -> u16 {
    ports::port_below_ephemeral(tcp_free, || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// The `vaka` binary under test; `VAKA_BIN` points the tests at another build of it.
pub fn vaka_bin() -> PathBuf {
    std::env::var_os("VAKA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_vaka").into())
}

/// The response (headers and Prometheus text) of `GET /metrics` on 127.0.0.1:`port`, if it answers.
pub fn get_metrics(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}
