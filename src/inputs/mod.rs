//! A cluster node's part in the input log `VAKA_IN` (issue 23; ARCHITECTURE.md, "Cluster on
//! NATS JetStream", "Device events through the input log"): its shards append every batch's
//! device events before the batch is committed locally (`append`), a follower keeps the events
//! every other node appended in this node's store (`follow`), and reconciliation holds this
//! node's record against the stream at start and every so often (`reconcile`).
//!
//! The alarms a node holds are replicated too: its shards append each alarm's record with the
//! batch that changed it, and every other node's follower keeps it as a replica; when a node
//! is gone, the owners of its devices' partitions take its open alarms over (`adopt`).
//! Supervision and activity rules see every node's events, and only the owner of a device's
//! partition (`leases`) calls it silent or makes a rule's alarm.

pub mod adopt;
pub mod append;
pub mod follow;
pub mod leases;
pub mod reconcile;

use vaka_cluster::{ClusterConfig, InputLog};

/// Opens `VAKA_IN` (created R3 on file storage, or checked), retrying while a cluster that is
/// just starting elects the stream's leader; this node's appends name it.
pub async fn open(
    cluster: &ClusterConfig,
    js: async_nats::jetstream::Context,
) -> Result<InputLog, String> {
    let log = crate::settling::open_while_settling(
        "the cluster's input log",
        |e| matches!(e, vaka_cluster::LogError::Substrate(_)),
        || {
            InputLog::open(
                js.clone(),
                cluster.duplicate_window(),
                cluster.input_retention(),
            )
        },
    )
    .await?;
    Ok(log.with_node(&cluster.node_id))
}

/// The wall clock in ms since the epoch: what an input's age in the stream is read against.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sets gauge `name` to the time now (seconds since the epoch): when a loop last did its work,
/// for an alert on `time() - name`.
fn stamp(name: &'static str) {
    metrics::gauge!(name).set(now_ms() as f64 / 1000.0);
}
