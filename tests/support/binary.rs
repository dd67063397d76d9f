//! What the end-to-end tests of the binary share: free loopback ports, the binary under test,
//! its /metrics.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

// Also included by sipp.rs and the cluster tests' support: a test that includes two of them
// compiles it twice, which is harmless (it keeps no state).
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;

// Not every test uses each of them.
#[allow(unused_imports)]
pub use ports::{free_tcp_port, free_udp_port, free_udp_tcp_port};

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
