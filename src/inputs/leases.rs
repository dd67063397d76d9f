//! A cluster node's partition leases (`vaka_cluster::lease`, bucket `VAKA_LEASES`, R3, entries
//! expiring after `cluster.lease_ttl_ms`): every half `cluster.lease_renew_ms` the node takes
//! each partition that nobody holds (asking for all of them together), and it renews what it
//! took every `cluster.lease_renew_ms` until a renewal is refused or the TTL runs out
//! unrenewed. The router is told which partitions it owns (`vaka_router::Owners`):
//! only the owner calls a device silent or makes an activity rule's alarm. So a node that dies
//! or is cut off loses its partitions within the TTL and the others take them over within half
//! a renewal period more; one stopped gracefully releases them (`Keeper::release`) and the
//! others take them at once.
//!
//! No balancing: the first node to find a partition free takes it (nodes started together
//! split them by who asks first). What an owner does for its partitions is small today
//! (supervision and rule timers); spreading them matters once the owner offers alarms.

use futures::future::join_all;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
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

/// The running lease loop: [`Keeper::release`] at a graceful stop hands the partitions over at
/// once; a node killed leaves them to run out.
pub struct Keeper {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// How long a graceful stop waits for its leases to be released.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);

impl Keeper {
    /// Stops taking partitions and releases those held, so the other nodes take them at their
    /// next round rather than after the TTL (a rolling restart then leaves no gap).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(RELEASE_WITHIN, self.task)
            .await
            .is_err()
        {
            tracing::warn!(
                "cluster: releasing the partition leases took too long; they run out by themselves"
            );
        }
    }
}

/// Takes and keeps partitions until released (or aborted: the leases then run out).
pub fn spawn(bucket: LeaseBucket, partitions: u32, owners: Owners, renew: Duration) -> Keeper {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        // With the gauge of what each node owns: a partition nobody owns pages
        // (`VakaClusterPartitionsUnowned`).
        metrics::gauge!("vaka_cluster_partitions").set(f64::from(partitions));
        let mut held: HashMap<u32, Renewer> = HashMap::new();
        // Said once when the bucket stops answering, and once when it answers again.
        let mut unanswered_before = false;
        loop {
            held.retain(|p, renewer| {
                let lost = matches!(*renewer.state().borrow(), LeaseState::Lost { .. });
                if lost {
                    owners.set(*p, false);
                }
                !lost
            });
            // Asked together: a node taking over a dead one's partitions has them all within
            // one round trip, not one partition after the other.
            let free = (0..partitions).filter(|p| !held.contains_key(p));
            let asked = join_all(free.map(|p| {
                let bucket = &bucket;
                async move { (p, take(bucket, Partition(p)).await) }
            }))
            .await;
            let (mut taken, mut unanswered) = (Vec::new(), None);
            for (p, result) in asked {
                match result {
                    Ok(Some(lease)) => {
                        held.insert(p, bucket.keep(lease, renew));
                        owners.set(p, true);
                        taken.push(p);
                    }
                    Ok(None) => {}
                    Err(e) => unanswered = Some(e),
                }
            }
            if !taken.is_empty() {
                tracing::info!(partitions = ?taken, owned = held.len(), "cluster: partitions taken");
                metrics::counter!("vaka_cluster_partitions_taken_total")
                    .increment(taken.len() as u64);
            }
            match (unanswered, unanswered_before) {
                (Some(e), false) => {
                    tracing::warn!(error = %e, "cluster: the lease bucket did not answer; trying again every round");
                    unanswered_before = true;
                }
                (None, true) => {
                    tracing::info!("cluster: the lease bucket answers again");
                    unanswered_before = false;
                }
                _ => {}
            }
            metrics::gauge!("vaka_cluster_partitions_owned").set(held.len() as f64);
            tokio::select! {
                _ = tokio::time::sleep(renew / 2) => {}
                _ = stopped.changed() => break,
            }
        }
        let n = held.len();
        for (p, renewer) in held.drain() {
            owners.set(p, false);
            if let Err(e) = renewer.release().await {
                tracing::warn!(partition = p, error = %e, "cluster: partition lease not released; it runs out by itself");
            }
        }
        metrics::gauge!("vaka_cluster_partitions_owned").set(0.0);
        tracing::info!(partitions = n, "cluster: partition leases released");
    });
    Keeper { stop, task }
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
