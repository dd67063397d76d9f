//! Admin actions on stored data (an erasure, a device's history moving) that a directory change
//! asked for and this node has not finished: `meta` `pending/<revision><id>` holds them (opaque
//! bytes, the admin crate's JSON) from the synced write of the directory change on, and is
//! deleted in the write that records what they did. A crash between the two leaves the entry,
//! and the actions (each safe to run again) run at the next start. So a node that applied the
//! change does what it asked, once it can, even if nobody asks it again.
use crate::backend::{Cf, StoreError, WriteSet};
use crate::Store;

const PREFIX: &[u8] = b"pending/";

/// Names one set of pending actions: the revision of the change that asked for them, and an id
/// telling apart several at one revision (actions that changed no directory record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingKey {
    pub revision: u64,
    pub id: u64,
}

fn key(k: PendingKey) -> Vec<u8> {
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(&k.revision.to_be_bytes());
    out.extend_from_slice(&k.id.to_be_bytes());
    out
}

/// Records in `set` that the actions `bytes` are to run (or, written again, what is left of them).
pub fn put_pending(set: &mut WriteSet, k: PendingKey, bytes: Vec<u8>) {
    set.put_raw(Cf::Meta, key(k), bytes);
}

/// Records in `set` that the actions under `k` all ran.
pub fn clear_pending(set: &mut WriteSet, k: PendingKey) {
    set.delete(Cf::Meta, key(k));
}

impl Store {
    /// The actions still to run, oldest change first.
    pub fn pending(&self) -> Result<Vec<(PendingKey, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut bad = None;
        self.backend().scan(Cf::Meta, PREFIX, &mut |k, v| {
            let tail = &k[PREFIX.len()..];
            match (tail.get(..8), tail.get(8..)) {
                (Some(r), Some(id)) if id.len() == 8 => out.push((
                    PendingKey {
                        revision: u64::from_be_bytes(r.try_into().expect("8 bytes")),
                        id: u64::from_be_bytes(id.try_into().expect("8 bytes")),
                    },
                    v.to_vec(),
                )),
                _ => bad = Some(String::from_utf8_lossy(k).into_owned()),
            }
            bad.is_none()
        })?;
        match bad {
            Some(key) => Err(StoreError::Corrupt {
                cf: Cf::Meta.name(),
                key,
                reason: "a pending action's key is not a revision and an id".into(),
            }),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{GroupConfig, MemBackend, RecoverOptions};

    pub(crate) fn mem_store() -> Store {
        let recover = RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1,
        };
        let backend = std::sync::Arc::new(MemBackend::default());
        Store::open(backend, GroupConfig::default(), recover)
            .unwrap()
            .0
    }

    #[test]
    fn pending_actions_are_listed_in_revision_order_until_cleared() {
        let store = mem_store();
        let k = |revision, id| PendingKey { revision, id };
        let mut set = WriteSet::new();
        put_pending(&mut set, k(300, 1), b"c".to_vec());
        put_pending(&mut set, k(2, 9), b"b".to_vec());
        put_pending(&mut set, k(2, 7), b"a".to_vec());
        put_pending(&mut set, k(256, 0), b"x".to_vec());
        store.write_control(set).unwrap();
        let keys: Vec<PendingKey> = store.pending().unwrap().iter().map(|p| p.0).collect();
        assert_eq!(keys, vec![k(2, 7), k(2, 9), k(256, 0), k(300, 1)]);
        let mut set = WriteSet::new();
        clear_pending(&mut set, k(256, 0));
        clear_pending(&mut set, k(2, 7));
        store.write_control(set).unwrap();
        assert_eq!(
            store.pending().unwrap(),
            vec![(k(2, 9), b"b".to_vec()), (k(300, 1), b"c".to_vec())]
        );
    }
}
