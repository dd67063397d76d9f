//! A cluster node's partition leases (`vaka_cluster::lease`, bucket `VAKA_LEASES`, R3, entries
//! expiring after `cluster.lease_ttl_ms`): every half `cluster.lease_renew_ms` the node takes
//! each partition that nobody holds (asking for all of them together), and it renews what it
//! took every `cluster.lease_renew_ms` until a renewal is refused or the TTL runs out
//! unrenewed. The router is told which partitions it owns and until when (the last
//! acknowledged renewal plus the TTL, so a node paused past it speaks for none of them when it
//! wakes, before this loop has run: `vaka_router::Owners`): only the owner calls a device
//! silent or makes an activity rule's alarm. So a node that dies
//! or is cut off loses its partitions within the TTL and the others take them over within half
//! a renewal period more; one stopped gracefully releases them (`Keeper::release`) and the
//! others take them at once.
//!
//! Partitions are spread over the live nodes (each says it is alive in the bucket every round):
//! a node holding more than its share for a few rounds releases the surplus, which a node under
//! its share takes at its next round. What an owner does for its partitions is small today
//! (supervision and rule timers), but a node started after the others (a rolling restart, a
//! node added) then carries its part of it.

use futures::future::join_all;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use vaka_cluster::lease::{Acquired, LeaseBucket, LeaseState, Renewer};
use vaka_cluster::{ClusterConfig, InputLog, Partition};
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

/// Rounds a node stays above its share before it gives partitions up: a node that has just
/// died still counts as live until its key runs out, and a share that comes and goes would
/// move partitions back and forth.
const OVER_SHARE_ROUNDS: u32 = 4;

/// How long a node about to take partitions waits for its follower to reach the input log's
/// end (it polls every 200 ms): a follower further behind risks a second alarm, a longer wait
/// a later takeover.
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);

/// What the lease loop waits for: `ready` once the follower has handed the router what its
/// catch-up stored, then `handed`, the stream sequence up to which it has handed the router
/// what it holds (`follow::Follower::handed`), against `log`'s last sequence.
pub struct Following {
    pub ready: tokio::sync::oneshot::Receiver<()>,
    pub handed: Arc<AtomicU64>,
    pub log: InputLog,
    /// Takes over the open alarms of nodes that are gone, each round the bucket answers.
    pub adopter: super::adopt::Adopter,
}

/// Whether the follower handed the router everything the stream held when asked, within
/// [`FOLLOW_WITHIN`].
async fn followed_to_end(log: &InputLog, handed: &AtomicU64) -> bool {
    let Ok(last) = log.stream_last().await else {
        return false;
    };
    let until = tokio::time::Instant::now() + FOLLOW_WITHIN;
    while handed.load(Ordering::Acquire) < last {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// A node's fair share of the partitions: as many as any other live node, give or take one.
fn share(partitions: u32, live: usize) -> usize {
    (partitions as usize).div_ceil(live.max(1))
}

/// Takes and keeps partitions until released (or aborted: the leases then run out), and
/// spreads them over the live nodes: each node says it is alive every round
/// ([`LeaseBucket::announce`]), and one that has held more than its share
/// ([`share`]) for [`OVER_SHARE_ROUNDS`] rounds releases the surplus for the others to take.
/// It does not take back what it released for a TTL, so the node under its share gets it; one
/// still free after that it takes again, so no partition is left without an owner.
///
/// A node taking a partition must know what the others' events made of it: nothing is taken
/// before the follower has handed the router what its catch-up stored, and none in a round
/// before it has handed over what the stream held when the round began ([`Following`]).
pub fn spawn(
    bucket: LeaseBucket,
    partitions: u32,
    owners: Owners,
    renew: Duration,
    following: Following,
) -> Keeper {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let Following {
            ready,
            handed,
            log,
            adopter,
        } = following;
        tokio::select! {
            _ = ready => {}
            _ = stopped.changed() => return,
        }
        // With the gauge of what each node owns: a partition nobody owns pages
        // (`VakaClusterPartitionsUnowned`).
        metrics::gauge!("vaka_cluster_partitions").set(f64::from(partitions));
        let mut held: HashMap<u32, Renewer> = HashMap::new();
        let mut released: HashMap<u32, tokio::time::Instant> = HashMap::new();
        let mut free_before: HashSet<u32> = HashSet::new();
        let (mut live, mut over_rounds) = (1, 0);
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
            let mut unanswered = bucket.announce().await.err();
            // Every round: a node stopped or dead leaves the count as its partitions come
            // free, so the others take them at once rather than a round later.
            let nodes = match bucket.live_nodes().await {
                Ok(nodes) => {
                    live = nodes.len().max(1);
                    Some(nodes)
                }
                Err(e) => {
                    unanswered = Some(e);
                    None
                }
            };
            metrics::gauge!("vaka_cluster_nodes_live").set(live as f64);
            let fair = share(partitions, live);
            over_rounds = if held.len() > fair {
                over_rounds + 1
            } else {
                0
            };
            if over_rounds >= OVER_SHARE_ROUNDS {
                let surplus = held.len() - fair;
                give_up(&mut held, surplus, &owners, &mut released).await;
                over_rounds = 0;
            }
            let ttl = bucket.ttl();
            released.retain(|_, at| at.elapsed() < ttl);
            // Asked together: a node taking over a dead one's partitions has them all within
            // one round trip, not one partition after the other.
            let unheld =
                (0..partitions).filter(|p| !held.contains_key(p) && !released.contains_key(p));
            let asked = join_all(unheld.map(|p| {
                let bucket = &bucket;
                async move { (p, bucket.holder(Partition(p)).await) }
            }))
            .await;
            let mut free = Vec::new();
            for (p, holder) in asked {
                match holder {
                    Ok(None) => free.push(p),
                    Ok(Some(_)) => {}
                    Err(e) => unanswered = Some(e),
                }
            }
            // Up to its share at once; beyond it only what was free a round ago too (nobody
            // else took it), so nodes starting together do not take everything in turns.
            let room = fair.saturating_sub(held.len());
            let wanted: Vec<u32> = free
                .iter()
                .enumerate()
                .filter(|(i, p)| *i < room || free_before.contains(*p))
                .map(|(_, p)| *p)
                .collect();
            free_before = free.into_iter().collect();
            // The last owner's calls of a device silent and its rules' alarms were appended
            // before its lease ended: followed here first, none is made a second time.
            if !wanted.is_empty() && !followed_to_end(&log, &handed).await {
                tracing::warn!(
                    "cluster: the follower did not reach the input log's end within {FOLLOW_WITHIN:?}; taking partitions all the same"
                );
                metrics::counter!("vaka_cluster_takes_unfollowed_total").increment(1);
            }
            let acquired = join_all(wanted.into_iter().map(|p| {
                let bucket = &bucket;
                async move { (p, take(bucket, Partition(p)).await) }
            }))
            .await;
            let mut taken = Vec::new();
            for (p, result) in acquired {
                match result {
                    Ok(Some(lease)) => {
                        // Owned until the lease's last renewal plus the TTL, not until this
                        // loop next looks: a node paused past it speaks for none of its
                        // partitions when it wakes.
                        let owner = owners.clone();
                        let tell = move |until: Option<tokio::time::Instant>| match until {
                            Some(until) => owner.hold_until(p, until.into_std()),
                            None => owner.set(p, false),
                        };
                        held.insert(p, bucket.keep_telling(lease, renew, tell));
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
            // Only on the bucket's answer: a node not listed because the bucket did not
            // answer is not gone.
            if let Some(nodes) = &nodes {
                let orphans = adopter.orphans(nodes);
                if !orphans.is_empty() {
                    // The gone holder's last records were appended before it went: read first.
                    followed_to_end(&log, &handed).await;
                    adopter.adopt(orphans).await;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(renew / 2) => {}
                _ = stopped.changed() => break,
            }
        }
        let n = held.len();
        give_up(&mut held, n, &owners, &mut released).await;
        if let Err(e) = bucket.withdraw().await {
            tracing::warn!(error = %e, "cluster: this node's key not withdrawn; it runs out by itself");
        }
        metrics::gauge!("vaka_cluster_partitions_owned").set(0.0);
        tracing::info!(partitions = n, "cluster: partition leases released");
    });
    Keeper { stop, task }
}

/// Releases `count` of the held partitions (the highest first), so the others take them at
/// their next round rather than after the TTL.
async fn give_up(
    held: &mut HashMap<u32, Renewer>,
    count: usize,
    owners: &Owners,
    released: &mut HashMap<u32, tokio::time::Instant>,
) {
    let mut ps: Vec<u32> = held.keys().copied().collect();
    ps.sort_unstable_by(|a, b| b.cmp(a));
    ps.truncate(count);
    let renewers: Vec<(u32, Renewer)> = ps
        .iter()
        .filter_map(|p| held.remove(p).map(|r| (*p, r)))
        .collect();
    for (p, _) in &renewers {
        // Stops speaking for it before the others may take it.
        owners.set(*p, false);
        released.insert(*p, tokio::time::Instant::now());
    }
    let results = join_all(
        renewers
            .into_iter()
            .map(|(p, r)| async move { (p, r.release().await) }),
    )
    .await;
    for (p, result) in results {
        if let Err(e) = result {
            tracing::warn!(partition = p, error = %e, "cluster: partition lease not released; it runs out by itself");
        }
    }
    if !ps.is_empty() {
        tracing::info!(partitions = ?ps, owned = held.len(), "cluster: partitions released");
        metrics::counter!("vaka_cluster_partitions_released_total").increment(ps.len() as u64);
    }
}

/// The partition's lease, seen free (someone may have taken it since).
async fn take(
    bucket: &LeaseBucket,
    partition: Partition,
) -> Result<Option<vaka_cluster::lease::Lease>, vaka_cluster::lease::LeaseError> {
    Ok(match bucket.acquire(partition).await? {
        Acquired::Won(lease) => Some(lease),
        Acquired::HeldBy { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn a_share_is_what_spreads_the_partitions_over_the_live_nodes() {
        assert_eq!(share(64, 1), 64);
        assert_eq!(share(64, 2), 32);
        assert_eq!(share(64, 3), 22, "22 + 22 + 20");
        assert_eq!(
            share(64, 0),
            64,
            "this node counts even before its key is listed"
        );
        assert_eq!(share(4, 8), 1);
    }
}
