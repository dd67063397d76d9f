//! Which devices this node speaks for when nobody asked: on a single node every device; on a
//! cluster node those of the partitions whose lease it holds (`vaka_cluster::lease`, kept by
//! the engine). Only the owner calls a device silent or lets its activity rules make alarms,
//! so a device is supervised by one node of the cluster, not by every node that never hears
//! it. Every node keeps every device's supervision and rule state, from the events it takes
//! and from those it follows from the other nodes ([`crate::Router::followed`]), so the node
//! that takes a partition over goes on from where its owner was.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use vaka_core::DeviceKey;

#[derive(Clone, Default)]
pub struct Owners(Option<Arc<Owned>>);

struct Owned {
    /// A device's partition: the shard hash modulo this (as `vaka_cluster::Partition::of`).
    partitions: usize,
    owned: Vec<AtomicBool>,
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
            owned: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            count: AtomicUsize::new(0),
            gained: watch::channel(0).0,
        })))
    }

    pub fn owns(&self, device: &DeviceKey) -> bool {
        match &self.0 {
            None => true,
            Some(o) => o.owned[device.shard(o.partitions)].load(Ordering::Acquire),
        }
    }

    /// This node now holds (or no longer holds) `partition`'s lease.
    pub fn set(&self, partition: u32, owned: bool) {
        let Some(o) = &self.0 else {
            return;
        };
        let Some(slot) = o.owned.get(partition as usize) else {
            return;
        };
        if slot.swap(owned, Ordering::AcqRel) == owned {
            return;
        }
        if owned {
            o.count.fetch_add(1, Ordering::AcqRel);
            o.gained.send_modify(|n| *n += 1);
        } else {
            o.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// How many partitions this node owns (`None` on a single node).
    pub fn owned(&self) -> Option<usize> {
        self.0.as_ref().map(|o| o.count.load(Ordering::Acquire))
    }

    /// Changes whenever a partition is gained (`None` on a single node: nothing is ever gained).
    pub(crate) fn gained(&self) -> Option<watch::Receiver<u64>> {
        self.0.as_ref().map(|o| o.gained.subscribe())
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
        o.set(99, true);
        assert_eq!(
            o.owned(),
            Some(0),
            "a partition past the count is no partition"
        );
    }
}
