//! A cluster node's partition leases (`vaka_cluster::lease`, bucket `VAKA_LEASES`, R3, entries
//! expiring after `cluster.lease_ttl_ms`): every `cluster.lease_renew_ms` the node takes each
//! partition that nobody holds, and it renews what it took until a renewal is refused or the
//! TTL runs out unrenewed. The router is told which partitions it owns (`vaka_router::Owners`):
//! only the owner calls a device silent or makes an activity rule's alarm. So a node that dies
//! or is cut off loses its partitions within the TTL and the others take them over within one
//! more round.
//!
//! No balancing: the first node to find a partition free takes it (nodes started together
//! split them by who asks first). What an owner does for its partitions is small today
//! (supervision and rule timers); spreading them matters once the owner offers alarms.

use std::collections::HashMap;
use std::time::Duration;
use vaka_cluster::lease::{Acquired, LeaseBucket, LeaseState, Renewer};
use vaka_cluster::{ClusterConfig, Partition};
use vaka_router::Owners;

/// Opens (or creates) the lease bucket, retrying while a cluster that is just starting elects
/// its leader.
pub async fn open(
    cluster: &ClusterConfig,
    js: async_nats::jetstream::Context,
) -> Result<LeaseBucket, String> {
    crate::settling::open_while_settling(
        "the cluster's lease bucket",
        |e| matches!(e, vaka_cluster::lease::LeaseError::Substrate(_)),
        || LeaseBucket::open(&js, cluster.node_id.clone(), cluster.lease_ttl()),
    )
    .await
}

/// Takes and keeps partitions until aborted (dropping the renewals: the leases then expire).
pub fn spawn(
    bucket: LeaseBucket,
    partitions: u32,
    owners: Owners,
    renew: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // With the gauge of what each node owns: a partition nobody owns pages
        // (`VakaClusterPartitionsUnowned`).
        metrics::gauge!("vaka_cluster_partitions").set(f64::from(partitions));
        let mut held: HashMap<u32, Renewer> = HashMap::new();
        loop {
            held.retain(|p, renewer| {
                let lost = matches!(*renewer.state().borrow(), LeaseState::Lost { .. });
                if lost {
                    owners.set(*p, false);
                }
                !lost
            });
            let free: Vec<u32> = (0..partitions).filter(|p| !held.contains_key(p)).collect();
            for p in free {
                match take(&bucket, Partition(p)).await {
                    Ok(Some(lease)) => {
                        tracing::info!(partition = p, "cluster: partition taken");
                        metrics::counter!("vaka_cluster_partitions_taken_total").increment(1);
                        held.insert(p, bucket.keep(lease, renew));
                        owners.set(p, true);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "cluster: the lease bucket did not answer; trying again");
                        break;
                    }
                }
            }
            metrics::gauge!("vaka_cluster_partitions_owned").set(held.len() as f64);
            tokio::time::sleep(renew).await;
        }
    })
}

/// The partition's lease if nobody holds it.
async fn take(
    bucket: &LeaseBucket,
    partition: Partition,
) -> Result<Option<vaka_cluster::lease::Lease>, vaka_cluster::lease::LeaseError> {
    if bucket.holder(partition).await?.is_some() {
        return Ok(None);
    }
    Ok(match bucket.acquire(partition).await? {
        Acquired::Won(lease) => Some(lease),
        Acquired::HeldBy { .. } => None,
    })
}
