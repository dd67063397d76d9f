//! A cluster node's own record of the cluster's input log (`VAKA_IN`): which inputs it holds,
//! by stream sequence, with each input's partition, SHA-256 and the time it was stamped,
//! written in the same synced write as the events the input carried. Reconciliation compares it
//! with the stream, so that a loss in the stream is found rather than absorbed (DESIGN.md §8);
//! the stamp tells an input the stream aged out (`cluster.input_retention_ms`) from one it lost.
//!
//! Keyed by sequence (unique across the stream's partitions), so reconciliation reads only the
//! range it checks and retention forgets a prefix.
//!
//! | CF     | key                          | value |
//! |--------|------------------------------|-------|
//! | `meta` | `input/` sequence (u64 BE)   | partition (u32 BE), SHA-256 (32 bytes), stamped at (u64 BE, ms since the epoch) |
//! | `meta` | `input_read`                 | u64 BE: the stream sequence the node's follower has read up to |
//! | `meta` | `input_checked`              | u64 BE: the stream sequence reconciliation has checked up to |
//! | `meta` | `id_range`                   | u64 BE: the cluster id range this store gives ids from (`vaka_cluster::id_range`; absent: none) |
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::group::Store;
use std::collections::BTreeMap;

const PREFIX: &[u8] = b"input/";
const META_INPUT_READ: &[u8] = b"input_read";
const META_INPUT_CHECKED: &[u8] = b"input_checked";
const META_ID_RANGE: &[u8] = b"id_range";
const VALUE_LEN: usize = 4 + 32 + 8;

/// One input this node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputRecord {
    pub sequence: u64,
    pub partition: u32,
    /// SHA-256 of the input's bytes as the stream holds them.
    pub digest: [u8; 32],
    /// When the stream stored it (the node's clock at the acknowledgement for its own appends,
    /// the stream's publish time for what it followed): what its age in the stream runs from.
    pub stamped_ms: u64,
}

/// Per partition: stream sequence -> the input's SHA-256.
pub type InputRecords = BTreeMap<u32, BTreeMap<u64, [u8; 32]>>;

fn key(sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 8);
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

impl WriteSet {
    /// Records that this node holds the input at `sequence` of `partition`.
    pub fn put_input(&mut self, partition: u32, sequence: u64, digest: [u8; 32], stamped_ms: u64) {
        let mut v = Vec::with_capacity(VALUE_LEN);
        v.extend_from_slice(&partition.to_be_bytes());
        v.extend_from_slice(&digest);
        v.extend_from_slice(&stamped_ms.to_be_bytes());
        self.put_raw(Cf::Meta, key(sequence), v);
    }

    /// Records how far the follower has read the whole stream.
    pub fn put_input_read(&mut self, sequence: u64) {
        self.put_raw(
            Cf::Meta,
            META_INPUT_READ.to_vec(),
            sequence.to_be_bytes().to_vec(),
        );
    }

    /// Records the cluster id range this store gives its ids from.
    pub fn put_id_range(&mut self, range: u64) {
        self.put_raw(
            Cf::Meta,
            META_ID_RANGE.to_vec(),
            range.to_be_bytes().to_vec(),
        );
    }

    /// Records how far reconciliation has checked the record against the stream.
    pub fn put_input_checked(&mut self, sequence: u64) {
        self.put_raw(
            Cf::Meta,
            META_INPUT_CHECKED.to_vec(),
            sequence.to_be_bytes().to_vec(),
        );
    }
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        cf: Cf::Meta.name(),
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

fn decode(k: &[u8], v: &[u8]) -> Result<InputRecord, StoreError> {
    let bad = || corrupt(k, "not an input record".into());
    let sequence = <[u8; 8]>::try_from(&k[PREFIX.len()..]).map_err(|_| bad())?;
    if v.len() != VALUE_LEN {
        return Err(bad());
    }
    Ok(InputRecord {
        sequence: u64::from_be_bytes(sequence),
        partition: u32::from_be_bytes(v[..4].try_into().expect("4 bytes")),
        digest: v[4..36].try_into().expect("32 bytes"),
        stamped_ms: u64::from_be_bytes(v[36..].try_into().expect("8 bytes")),
    })
}

fn meta_u64(backend: &dyn Backend, name: &[u8]) -> Result<u64, StoreError> {
    match backend.get(Cf::Meta, name)? {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt(name, format!("{} bytes, not 8", b.len()))),
    }
}

/// The cluster id range the store gives its ids from (0: none; see [`Store::id_range`]).
pub(crate) fn id_range_of(backend: &dyn Backend) -> Result<u64, StoreError> {
    meta_u64(backend, META_ID_RANGE)
}

impl Store {
    /// The first `limit` inputs this node recorded with a sequence in `from..=to`, in sequence
    /// order.
    pub fn input_records_between(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<InputRecord>, StoreError> {
        let mut out = Vec::new();
        let mut bad = None;
        self.backend().scan_from(
            Cf::Meta,
            PREFIX,
            &key(from),
            &mut |k, v| match decode(k, v) {
                Ok(r) if r.sequence > to => false,
                Ok(r) => {
                    out.push(r);
                    out.len() < limit
                }
                Err(e) => {
                    bad = Some(e);
                    false
                }
            },
        )?;
        bad.map_or(Ok(out), Err)
    }

    /// Every input this node recorded, by partition.
    pub fn input_records(&self) -> Result<InputRecords, StoreError> {
        let mut out = InputRecords::new();
        for r in self.input_records_between(0, u64::MAX, usize::MAX)? {
            out.entry(r.partition)
                .or_default()
                .insert(r.sequence, r.digest);
        }
        Ok(out)
    }

    /// The record of the input at `sequence`, if this node holds it.
    pub fn input_record(&self, sequence: u64) -> Result<Option<InputRecord>, StoreError> {
        let k = key(sequence);
        self.backend()
            .get(Cf::Meta, &k)?
            .map(|v| decode(&k, &v))
            .transpose()
    }

    /// Whether this node recorded the input at `sequence` of `partition`.
    pub fn has_input(&self, partition: u32, sequence: u64) -> Result<bool, StoreError> {
        Ok(self
            .input_record(sequence)?
            .is_some_and(|r| r.partition == partition))
    }

    /// Forgets the records at `sequences` (inputs the stream has aged out), synced.
    /// Housekeeping: no shard reads these keys back, so it is not part of a group.
    pub fn forget_inputs(&self, sequences: &[u64]) -> Result<(), StoreError> {
        for chunk in sequences.chunks(10_000) {
            let mut set = WriteSet::new();
            for &s in chunk {
                set.delete(Cf::Meta, key(s));
            }
            self.backend().write_synced(std::slice::from_ref(&set))?;
        }
        Ok(())
    }

    fn meta_u64(&self, name: &[u8]) -> Result<u64, StoreError> {
        meta_u64(self.backend().as_ref(), name)
    }

    /// The stream sequence the follower has read up to (0: nothing yet).
    pub fn input_read(&self) -> Result<u64, StoreError> {
        self.meta_u64(META_INPUT_READ)
    }

    /// The cluster id range this store gives its ids from (0: none claimed; range 0 is the
    /// single node's).
    pub fn id_range(&self) -> Result<u64, StoreError> {
        self.meta_u64(META_ID_RANGE)
    }

    /// The stream sequence reconciliation has checked up to (0: nothing yet).
    pub fn input_checked(&self) -> Result<u64, StoreError> {
        self.meta_u64(META_INPUT_CHECKED)
    }
}

#[cfg(test)]
mod tests {
    use super::InputRecord;
    use crate::{Backend, GroupConfig, MemBackend, RecoverOptions, Store, WriteSet};
    use std::sync::Arc;

    #[test]
    fn records_marks_and_ranges_come_back_as_written_and_forgotten_ones_go() {
        let backend = Arc::new(MemBackend::default());
        let (store, _) = Store::open(
            backend.clone(),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: 0,
                idem_window_ms: 1,
            },
        )
        .unwrap();
        assert!(store.input_records().unwrap().is_empty());
        assert_eq!(store.input_read().unwrap(), 0);
        assert_eq!(store.input_checked().unwrap(), 0);
        let mut set = WriteSet::new();
        set.put_input(3, 7, [1; 32], 1_000);
        set.put_input(3, 300, [2; 32], 3_000);
        set.put_input(0, 9, [3; 32], 2_000);
        // Past a byte boundary of the key: order is numeric.
        set.put_input(0, 256, [4; 32], 2_500);
        set.put_input_read(300);
        set.put_input_checked(9);
        backend.write_synced(&[set]).unwrap();
        let r = store.input_records().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[&3].iter().collect::<Vec<_>>(),
            [(&7, &[1; 32]), (&300, &[2; 32])]
        );
        assert_eq!(r[&0][&9], [3; 32]);
        assert_eq!(store.input_read().unwrap(), 300);
        assert_eq!(store.input_checked().unwrap(), 9);
        assert!(store.has_input(3, 300).unwrap());
        assert!(!store.has_input(3, 9).unwrap(), "9 is partition 0's");
        assert!(!store.has_input(3, 8).unwrap());
        let between = store.input_records_between(8, 300, 2).unwrap();
        assert_eq!(
            between,
            [
                InputRecord {
                    sequence: 9,
                    partition: 0,
                    digest: [3; 32],
                    stamped_ms: 2_000
                },
                InputRecord {
                    sequence: 256,
                    partition: 0,
                    digest: [4; 32],
                    stamped_ms: 2_500
                }
            ]
        );
        store.forget_inputs(&[7, 9]).unwrap();
        let left: Vec<u64> = store
            .input_records_between(0, u64::MAX, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect();
        assert_eq!(left, [256, 300]);
        assert_eq!(store.input_record(300).unwrap().unwrap().stamped_ms, 3_000);
    }
}
