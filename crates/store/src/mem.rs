//! An in-memory backend for tests: same semantics as RocksDB for what the trait promises.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemBackend {
    cfs: Mutex<[BTreeMap<Vec<u8>, Vec<u8>>; Cf::ALL.len()]>,
    reserved: Mutex<u64>,
}

impl MemBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemBackend {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let mut cfs = self.cfs.lock().expect("mem backend lock");
        for op in sets.iter().flat_map(|s| &s.ops) {
            let map = &mut cfs[op.cf.index()];
            match &op.value {
                Some(v) => {
                    map.insert(op.key.clone(), v.clone());
                }
                None => {
                    map.remove(&op.key);
                }
            }
        }
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.cfs.lock().expect("mem backend lock")[cf.index()]
            .get(key)
            .cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let cfs = self.cfs.lock().expect("mem backend lock");
        for (k, v) in cfs[cf.index()].range(prefix.to_vec()..) {
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let cfs = self.cfs.lock().expect("mem backend lock");
        let start = from.max(prefix).to_vec();
        for (k, v) in cfs[cf.index()].range(start..) {
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn reserved_ids(&self) -> u64 {
        *self.reserved.lock().expect("mem backend lock")
    }

    fn reserve_ids(&self, end: u64) -> Result<(), StoreError> {
        *self.reserved.lock().expect("mem backend lock") = end;
        Ok(())
    }

    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.cfs.lock().expect("mem backend lock")[cf.index()]
            .keys()
            .next_back()
            .cloned())
    }

    fn last_key_below(&self, cf: Cf, bound: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.cfs.lock().expect("mem backend lock")[cf.index()]
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(bound)))
            .next_back()
            .map(|(k, _)| k.clone()))
    }
}
