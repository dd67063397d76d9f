//! Alarm centres over gRPC (vaka.centre.v1).
//!
//! A centre connects with one bidirectional stream ([`service`]): it is authenticated once
//! ([`auth`]), every call and every notice goes through its [`scope::Scope`] (invariant 7), and the
//! stream ([`stream`]) follows the centre's outbox in the store from its resume cursor up to the
//! durable watermark, so delivery is at-least-once and resumable (invariant 3). Acknowledged
//! cursors are persisted and what they cover is pruned ([`cursors`]). [`server`] runs it with the
//! gRPC health and reflection services; [`console`] is the `vaka-centre` client's logic.
pub mod auth;
pub mod console;
pub mod convert;
pub mod cursors;
pub mod scope;
pub mod server;
pub mod service;
pub mod sessions;
mod stream;

pub mod pb {
    tonic::include_proto!("vaka.centre.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("centre_descriptor");
}

pub use auth::Credentials;
pub use server::{CentreServer, TlsFiles};
pub use service::{CentreConfig, CentreService};
