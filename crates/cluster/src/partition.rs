//! Device -> partition, and a partition's subject. The hash is the router's shard hash
//! (`DeviceKey::shard`), so a partition is a set of whole devices: all of a device's inputs are
//! in one subject, in one order.

use std::fmt;

use vaka_core::ids::DeviceKey;

/// The input stream's subjects: `vaka.in.<partition>`.
pub const INPUT_SUBJECT_PREFIX: &str = "vaka.in.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition(pub u32);

impl Partition {
    /// The partition of a device among `partitions` (fixed at cluster creation).
    pub fn of(device: &DeviceKey, partitions: u32) -> Partition {
        Partition(device.shard(partitions as usize) as u32)
    }

    pub fn input_subject(self) -> String {
        format!("{INPUT_SUBJECT_PREFIX}{}", self.0)
    }

    /// The partition a subject of the input stream names, if it is one.
    pub fn from_input_subject(subject: &str) -> Option<Partition> {
        let n = subject.strip_prefix(INPUT_SUBJECT_PREFIX)?;
        // "007" would parse as 7 but is not a subject we publish to.
        if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
            return None;
        }
        n.parse().ok().map(Partition)
    }

    /// The lease key of this partition in the lease bucket.
    pub fn lease_key(self) -> String {
        format!("p{}", self.0)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_has_the_partition_of_its_shard_hash() {
        for i in 0..200 {
            let d = DeviceKey::new("tenant-a", format!("dev-{i}"));
            let p = Partition::of(&d, 64);
            assert!(p.0 < 64);
            assert_eq!(p.0 as usize, d.shard(64));
        }
        // Pinned: a device's partition must never change between releases (its inputs would
        // move to another subject). FNV-1a of "t\0d", computed outside Rust.
        assert_eq!(Partition::of(&DeviceKey::new("t", "d"), 64), Partition(7));
        assert_eq!(
            Partition::of(&DeviceKey::new("t", "d"), 4096),
            Partition(2247)
        );
    }

    #[test]
    fn subjects_round_trip() {
        for p in [0, 7, 63, 4095] {
            let p = Partition(p);
            assert_eq!(Partition::from_input_subject(&p.input_subject()), Some(p));
        }
        assert_eq!(Partition(12).input_subject(), "vaka.in.12");
        for bad in [
            "vaka.in.",
            "vaka.in.x",
            "vaka.in.07",
            "vaka.out.1",
            "vaka.in.1.2",
        ] {
            assert_eq!(Partition::from_input_subject(bad), None, "{bad}");
        }
    }
}
