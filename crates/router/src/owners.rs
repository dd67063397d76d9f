//! Which devices this node speaks for when nobody asked: on a single node every device; on a
//! cluster node those of the partitions whose lease it holds (`vaka_cluster::lease`, kept by
//! the engine). Only the owner calls a device silent or lets its activity rules make alarms,
//! so a device is supervised by one node of the cluster, not by every node that never hears
//! it. Every node keeps every device's supervision and rule state, from the events it takes
//! and from those it follows from the other nodes ([`crate::Router::followed`]), so the node
//! that takes a partition over goes on from where its owner was.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use vaka_core::DeviceKey;

#[derive(Clone, Default)]
pub struct Owners(Option<Arc<Owned>>);

struct Owned {
    /// A device's partition: the shard hash modulo this (as `vaka_cluster::Partition::of`).
    partitions: usize,
    /// Per partition, until when this node owns it, in ns since `base`: 0 not at all,
    /// `u64::MAX` until told otherwise. A lease is held until its last acknowledged renewal
    /// plus the TTL, so a node that was paused past that speaks for none of its partitions
    /// when it wakes, before its lease loop has seen the renewals refused.
    until: Vec<AtomicU64>,
    base: Instant,
    /// Partitions whose lease this node holds, as last told (expired or not).
    count: AtomicUsize,
    /// Bumped whenever a partition is gained: shards then fire what they held back.
    gained: watch::Sender<u64>,
}

impl Owners {
    /// Every device (a single node).
    pub fn all() -> Owners {
        Owners(None)
    }

    /// A cluster node with `partitions` partitions, owning none until [`Owners::set`].
    pub fn cluster(partitions: u32) -> Owners {
        let partitions = partitions.max(1) as usize;
        Owners(Some(Arc::new(Owned {
            partitions,
            until: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            base: Instant::now(),
            count: AtomicUsize::new(0),
            gained: watch::channel(0).0,
        })))
    }

    pub fn owns(&self, device: &DeviceKey) -> bool {
        match &self.0 {
            None => true,
            Some(o) => o.until[device.shard(o.partitions)].load(Ordering::Acquire) > o.now(),
        }
    }

    /// This node now holds (or no longer holds) `partition`'s lease, until told otherwise.
    pub fn set(&self, partition: u32, owned: bool) {
        self.hold(partition, if owned { u64::MAX } else { 0 });
    }

    /// This node holds `partition`'s lease until `until` (its last acknowledged renewal plus
    /// the TTL), unless told again before.
    pub fn hold_until(&self, partition: u32, until: Instant) {
        if let Some(o) = &self.0 {
            let ns = until.saturating_duration_since(o.base).as_nanos();
            self.hold(partition, u64::try_from(ns).unwrap_or(u64::MAX).max(1));
        }
    }

    fn hold(&self, partition: u32, until: u64) {
        let Some(o) = &self.0 else {
            return;
        };
        let Some(slot) = o.until.get(partition as usize) else {
            return;
        };
        let before = slot.swap(until, Ordering::AcqRel);
        match (before != 0, until != 0) {
            (false, true) => _ = o.count.fetch_add(1, Ordering::AcqRel),
            (true, false) => _ = o.count.fetch_sub(1, Ordering::AcqRel),
            _ => {}
        }
        // Owned again (taken, or renewed after it ran out): what was held back fires.
        let now = o.now();
        if until > now && before <= now {
            o.gained.send_modify(|n| *n += 1);
        }
    }

    /// How many partitions this node holds a lease for, as last told (`None` on a single node).
    pub fn owned(&self) -> Option<usize> {
        self.0.as_ref().map(|o| o.count.load(Ordering::Acquire))
    }

    /// Changes whenever a partition is gained (`None` on a single node: nothing is ever gained).
    pub(crate) fn gained(&self) -> Option<watch::Receiver<u64>> {
        self.0.as_ref().map(|o| o.gained.subscribe())
    }
}

impl Owned {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.owned() {
            None => f.write_str("Owners(all)"),
            Some(n) => write!(f, "Owners({n} partitions)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_owns_every_device_and_a_cluster_node_those_of_its_partitions() {
        let d = DeviceKey::new("t", "d1");
        assert!(Owners::all().owns(&d));
        let o = Owners::cluster(8);
        let mut gained = o.gained().unwrap();
        assert!(!o.owns(&d));
        o.set(d.shard(8) as u32, true);
        assert!(o.owns(&d));
        assert!(gained.has_changed().unwrap());
        gained.mark_unchanged();
        o.set(d.shard(8) as u32, true);
        assert!(!gained.has_changed().unwrap(), "held again is no gain");
        assert_eq!(o.owned(), Some(1));
        o.set(d.shard(8) as u32, false);
        assert!(!o.owns(&d));
        assert_eq!(o.owned(), Some(0));
        let p = d.shard(8) as u32;
        o.hold_until(p, Instant::now() + std::time::Duration::from_secs(60));
        assert!(o.owns(&d));
        assert!(gained.has_changed().unwrap(), "taken again");
        gained.mark_unchanged();
        o.hold_until(p, Instant::now() - std::time::Duration::from_millis(1));
        assert!(
            !o.owns(&d),
            "a lease run out is not owned, whatever the loop says"
        );
        assert_eq!(
            o.owned(),
            Some(1),
            "still held as far as the lease loop knows"
        );
        o.hold_until(p, Instant::now() + std::time::Duration::from_secs(60));
        assert!(
            gained.has_changed().unwrap(),
            "renewed after it ran out: a gain"
        );
        o.set(p, false);
        o.set(99, true);
        assert_eq!(
            o.owned(),
            Some(0),
            "a partition past the count is no partition"
        );
    }
}
