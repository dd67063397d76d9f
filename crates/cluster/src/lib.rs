//! Vaka's cluster substrate on NATS JetStream (issue 23; ARCHITECTURE.md, "Cluster on NATS
//! JetStream"): the partitioned input log, partition leases, the check that the servers sync
//! every write, the id ranges that keep each node's ids apart (`id_range`), reconciliation of
//! a node's record against the stream, and the directory log (`VAKA_DIR`) every node follows.
//! The single-node engine uses none of it.

pub mod alarm_records;
pub mod answers;
pub mod config;
pub mod directory_log;
pub mod events;
pub mod id_range;
pub mod input_log;
pub mod lease;
pub mod partition;
pub mod reconcile;
pub mod substrate;
pub mod testing;

pub use config::ClusterConfig;
pub use directory_log::{DirectoryLog, DirectoryLogError};
pub use input_log::{Appended, Input, InputLog, LogError, PendingAppend};
pub use lease::{Acquired, Lease, LeaseBucket, LeaseError, LeaseState, Renewer};
pub use partition::Partition;
pub use reconcile::{Digest, Finding, Gap, Reconciliation};

/// Connects to the cluster's servers and returns a JetStream context. The servers' sync setting
/// is checked first ([`substrate::check_servers_async`]): a node never starts on servers that
/// could lose an acknowledged write in a power cut.
pub async fn connect(
    config: &ClusterConfig,
) -> Result<async_nats::jetstream::Context, ConnectError> {
    config.validate()?;
    substrate::check_servers_async(config.monitoring.clone()).await?;
    let client = async_nats::ConnectOptions::new()
        .name(format!("vaka-{}", config.node_id))
        .connect(config.servers.clone())
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    Ok(async_nats::jetstream::new(client))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Substrate(#[from] substrate::SubstrateError),
    #[error("connecting to the NATS servers: {0}")]
    Connect(String),
}
