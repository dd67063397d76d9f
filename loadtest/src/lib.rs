//! `vaka-load`: simulated device fleets (vaka/1 over QUIC, SCAIP over SIP UDP/TCP) and alarm
//! centres against a running Vaka, on an open-loop schedule, with HDR latency histograms, a JSON
//! report, a plot, and the same pattern against Mosquitto for comparison.
//!
//! - [`schedule`]: the fixed schedule and its dispatcher (never waits for replies).
//! - [`scenario`]: what each slot sends (gps-fleet, alarm-storm, heartbeat-fleet, mixed).
//! - [`fleet`]: the simulated devices, read from the server's configuration.
//! - [`quic`], [`sip`], [`mqtt`]: the fleets over vaka/1, over SCAIP (SIP MESSAGE, UDP or TCP)
//!   and over MQTT (the peer, with its broker).
//! - [`queues`]: what those fleets share: a queue and a task per device, connecting them a
//!   bounded number at a time, the bounded wait at the end.
//! - [`centre`]: the alarm-centre simulator (gRPC `vaka.centre.v1`).
//! - [`record`], [`report`], [`plot`], [`sysmon`]: measuring and reporting.
//! - [`run`]: the entry point, [`run::run`].
pub mod centre;
pub mod fleet;
pub mod mqtt;
pub mod plot;
pub mod queues;
pub mod quic;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod sip;
pub mod sysmon;

pub use run::{run, Options, Outcome, Peer, Transport};
pub use scenario::Scenario;
