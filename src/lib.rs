//! The `vaka` server: configuration, wiring of store, router and fronts, observability, shutdown.
pub mod admin_cli;
pub mod canary;
#[cfg(feature = "rocksdb")]
pub mod cluster_ids;
pub mod config;
pub mod fds;
pub mod http;
#[cfg(feature = "rocksdb")]
pub mod inputs;
pub mod observe;
#[cfg(feature = "rocksdb")]
pub mod salvage;
#[cfg(feature = "rocksdb")]
pub mod serve;
pub mod service_gauges;
#[cfg(feature = "rocksdb")]
mod settling;
pub mod udp_drops;
