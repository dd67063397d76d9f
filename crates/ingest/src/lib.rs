//! Vaka's device-facing fronts. Each front authenticates its devices, decodes what they send into
//! [`vaka_core::Event`]s, hands them to the router and answers each one once it is durable.
//!
//! - [`quic`]: vaka/1 over QUIC with mutual TLS (protocol in `proto/device.proto`).
//! - [`sip`]: SCAIP (`<mrq>`/`<mrs>` XML) in SIP MESSAGE over UDP, TCP and TLS, digest auth.
//! - [`dc09`]: SIA DC-09 over TCP and UDP (panels and transceivers), ACK once durable.
//! - [`certs`]: demo certificates (tenant CA, server, devices) for `vaka certs`.
mod alarms_first;
pub mod certs;
pub mod dc09;
mod low_priority;
pub mod quic;
pub mod sip;
