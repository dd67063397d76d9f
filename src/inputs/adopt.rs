//! Taking over the open alarms of cluster nodes that are gone (issue 23; ARCHITECTURE.md,
//! "Alarm handover"): every round of the lease loop, the open replicas (`vaka_store::Replica`)
//! whose holder's run (its id range) has no live key in the lease bucket are handed to the
//! router, whose shards take over those of the devices whose partitions this node owns
//! (`vaka_router::Router::adopt`). So an alarm held by a node that dies is held again within
//! the lease TTL and a round: its deadline fires here, and a centre connected here is offered
//! it under its id.

use std::collections::HashSet;
use std::sync::Arc;
use vaka_cluster::lease::LiveNode;
use vaka_core::Lane;
use vaka_router::Router;
use vaka_store::query::{AlarmFilter, StateFilter};
use vaka_store::{Recovered, Replica, Store, WriteSet};

pub struct Adopter {
    store: Store,
    router: Arc<Router>,
    /// This node's id range: never its own (it keeps none as replicas).
    range: u64,
}

impl Adopter {
    pub fn new(store: Store, router: Arc<Router>, range: u64) -> Adopter {
        Adopter {
            store,
            router,
            range,
        }
    }

    /// The open alarms whose holders are not among `live` (the bucket's answer this round),
    /// counted in `vaka_cluster_alarms_orphaned` (held by nobody until a node takes them
    /// over: `VakaClusterAlarmsOrphaned` fires when one stays so).
    pub fn orphans(&self, live: &[LiveNode]) -> Vec<Replica> {
        let live: HashSet<u64> = live.iter().map(|n| n.range).collect();
        let open = AlarmFilter {
            state: StateFilter::Open,
            ..AlarmFilter::default()
        };
        let replicas = match self.store.replicas_page(&open, None, usize::MAX) {
            Ok((replicas, _)) => replicas,
            Err(e) => {
                tracing::error!(error = %e, "cluster: reading the open replicas failed; no alarm taken over this round");
                return Vec::new();
            }
        };
        let orphans: Vec<Replica> = replicas
            .into_iter()
            .filter(|r| r.holder_range != self.range && !live.contains(&r.holder_range))
            // Held or ended here already: a replica the follower has not forgotten yet.
            .filter(|r| matches!(self.store.alarm(r.alarm.id), Ok(None)))
            .collect();
        metrics::gauge!("vaka_cluster_alarms_orphaned").set(orphans.len() as f64);
        orphans
    }

    /// Hands `orphans` to the router: its shards take over those of this node's partitions.
    pub async fn adopt(&self, orphans: Vec<Replica>) {
        self.router.adopt(orphans).await;
    }
}

/// At start, once the follower has caught up: this node's recovered open alarms that another
/// node took over while this one was away (a later record of theirs, kept as a replica) are
/// let go (their records dropped, the replica kept) before the shards run, so they are neither
/// offered nor escalated here again; where this node's record is the later one, the replica
/// goes. The later record is decided as the shards decide it (`vaka_router`'s `handover`).
pub async fn settle_recovered(
    store: &Store,
    recovered: &mut Recovered,
    range: u64,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("settling the alarms taken over: {e}");
    let mut set = WriteSet::new();
    let mut let_go = Vec::new();
    for (alarm, next_audit) in &recovered.open_alarms {
        let Some(r) = store.replica(alarm.id).map_err(|e| err(&e))? else {
            continue;
        };
        if r.later_than(*next_audit, range) {
            tracing::warn!(alarm = %alarm.id, holder = %r.holder,
                "cluster: an alarm this node held was taken over while it was away; letting it go");
            set.drop_alarm(alarm.id);
            let_go.push(alarm.id);
        } else {
            set.delete_replica(alarm.id);
        }
    }
    if set.is_empty() {
        return Ok(());
    }
    store.commit(Lane::Alarm, set).await.map_err(|e| err(&e))?;
    metrics::counter!("vaka_cluster_alarms_let_go_total").increment(let_go.len() as u64);
    recovered
        .open_alarms
        .retain(|(alarm, _)| !let_go.contains(&alarm.id));
    Ok(())
}
