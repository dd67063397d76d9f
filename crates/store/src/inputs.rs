//! A cluster node's own record of the cluster's input log (`VAKA_IN`): which inputs it holds,
//! by partition and stream sequence, with each input's SHA-256, written in the same synced
//! write as the events the input carried. Reconciliation compares it with the stream, so that a
//! loss in the stream is found rather than absorbed (DESIGN.md §8).
//!
//! | CF     | key                                              | value            |
//! |--------|--------------------------------------------------|------------------|
//! | `meta` | `input/` partition (u32 BE) sequence (u64 BE)    | SHA-256 (32 bytes) |
//! | `meta` | `input_read`                                     | u64 BE: the stream sequence the node's follower has read up to |
use crate::backend::{Cf, StoreError, WriteSet};
use crate::group::Store;
use std::collections::BTreeMap;

const PREFIX: &[u8] = b"input/";
const META_INPUT_READ: &[u8] = b"input_read";

/// Per partition: stream sequence -> the input's SHA-256.
pub type InputRecords = BTreeMap<u32, BTreeMap<u64, [u8; 32]>>;

fn key(partition: u32, sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 12);
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

impl WriteSet {
    /// Records that this node holds the input at `sequence` of `partition`.
    pub fn put_input(&mut self, partition: u32, sequence: u64, digest: [u8; 32]) {
        self.put_raw(Cf::Meta, key(partition, sequence), digest.to_vec());
    }

    /// Records how far the follower has read the whole stream.
    pub fn put_input_read(&mut self, sequence: u64) {
        self.put_raw(
            Cf::Meta,
            META_INPUT_READ.to_vec(),
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

impl Store {
    /// Every input this node recorded.
    pub fn input_records(&self) -> Result<InputRecords, StoreError> {
        let mut out = InputRecords::new();
        let mut bad = None;
        self.backend().scan(Cf::Meta, PREFIX, &mut |k, v| {
            let rest = &k[PREFIX.len()..];
            let (Ok(p), Ok(s), Ok(d)) = (
                <[u8; 4]>::try_from(rest.get(..4).unwrap_or_default()),
                <[u8; 8]>::try_from(rest.get(4..).unwrap_or_default()),
                <[u8; 32]>::try_from(v),
            ) else {
                bad = Some(corrupt(k, "not an input record".into()));
                return false;
            };
            out.entry(u32::from_be_bytes(p))
                .or_default()
                .insert(u64::from_be_bytes(s), d);
            true
        })?;
        bad.map_or(Ok(out), Err)
    }

    /// Whether this node recorded the input at `sequence` of `partition`.
    pub fn has_input(&self, partition: u32, sequence: u64) -> Result<bool, StoreError> {
        Ok(self
            .backend()
            .get(Cf::Meta, &key(partition, sequence))?
            .is_some())
    }

    /// The stream sequence the follower has read up to (0: nothing yet).
    pub fn input_read(&self) -> Result<u64, StoreError> {
        match self.backend().get(Cf::Meta, META_INPUT_READ)? {
            None => Ok(0),
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt(META_INPUT_READ, format!("{} bytes, not 8", b.len()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Backend, GroupConfig, MemBackend, RecoverOptions, Store, WriteSet};
    use std::sync::Arc;

    #[test]
    fn records_and_the_read_mark_come_back_as_written() {
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
        let mut set = WriteSet::new();
        set.put_input(3, 7, [1; 32]);
        set.put_input(3, 300, [2; 32]);
        set.put_input(0, 9, [3; 32]);
        set.put_input_read(300);
        backend.write_synced(&[set]).unwrap();
        let r = store.input_records().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[&3].iter().collect::<Vec<_>>(),
            [(&7, &[1; 32]), (&300, &[2; 32])]
        );
        assert_eq!(r[&0][&9], [3; 32]);
        assert_eq!(store.input_read().unwrap(), 300);
        assert!(store.has_input(3, 300).unwrap());
        assert!(!store.has_input(3, 9).unwrap());
    }
}
