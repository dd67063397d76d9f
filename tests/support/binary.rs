//! What the end-to-end tests of the binary share: free loopback ports and the binary under test.
#![allow(dead_code)]
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;

/// A UDP port free on 127.0.0.1 right now (QUIC, SIP over UDP).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP port free on 127.0.0.1 right now (gRPC, metrics).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `vaka` binary under test; `VAKA_BIN` points the tests at another build of it.
pub fn vaka_bin() -> PathBuf {
    std::env::var_os("VAKA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_vaka").into())
}
