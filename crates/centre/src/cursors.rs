//! Acknowledged cursors: persisted through the store's group commit together with the deletion of
//! the outbox entries they cover, so storage stays bounded by what centres have not yet handled.
//! Writes per centre are serialised and only ever move the cursor forward, even when a replaced
//! stream's late acknowledgement races its successor's.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vaka_core::{CentreId, Lane};
use vaka_store::{Cf, Store, StoreError, WriteSet};

/// Outbox keys deleted per write set (bounds one commit's size).
const PRUNE_BATCH: usize = 4096;

#[derive(Default)]
struct Persisted {
    loaded: bool,
    /// The durable cursor.
    cursor: u64,
    /// Outbox entries up to here are deleted.
    pruned: u64,
}

#[derive(Clone)]
pub struct Cursors {
    store: Store,
    map: Arc<Mutex<HashMap<CentreId, Arc<tokio::sync::Mutex<Persisted>>>>>,
}

impl Cursors {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            map: Arc::default(),
        }
    }

    fn entry(&self, centre: &CentreId) -> Arc<tokio::sync::Mutex<Persisted>> {
        self.map
            .lock()
            .expect("cursors lock")
            .entry(centre.clone())
            .or_default()
            .clone()
    }

    /// The last cursor `centre` acknowledged durably (0 if never).
    pub async fn load(&self, centre: &CentreId) -> Result<u64, StoreError> {
        let entry = self.entry(centre);
        let mut p = entry.lock().await;
        self.ensure_loaded(centre, &mut p)?;
        Ok(p.cursor)
    }

    fn ensure_loaded(&self, centre: &CentreId, p: &mut Persisted) -> Result<(), StoreError> {
        if !p.loaded {
            p.cursor = self.store.cursor(centre)?;
            p.loaded = true;
        }
        Ok(())
    }

    /// Makes `cursor` durable for `centre` and deletes the outbox entries up to it. A cursor at or
    /// below the durable one is a no-op. Commits on the telemetry lane: acknowledgements never
    /// hold up an alarm (invariant 9), and losing one only means a notice is sent again.
    pub async fn persist(&self, centre: &CentreId, cursor: u64) -> Result<(), String> {
        let entry = self.entry(centre);
        let mut p = entry.lock().await;
        self.ensure_loaded(centre, &mut p)
            .map_err(|e| e.to_string())?;
        if cursor <= p.cursor {
            return Ok(());
        }
        loop {
            let keys = self
                .store
                .outbox_keys_through(centre, p.pruned, cursor, PRUNE_BATCH)
                .map_err(|e| e.to_string())?;
            let last_batch = keys.len() < PRUNE_BATCH;
            let reached = keys
                .last()
                .and_then(|k| vaka_store::keys::decode_id(&k[k.len() - 8..]));
            let pruned = keys.len() as u64;
            let mut set = WriteSet::new();
            for k in keys {
                set.delete(Cf::Outbox, k);
            }
            if last_batch {
                set.put_cursor(centre, cursor);
            }
            self.store
                .commit(Lane::Telemetry, set)
                .await
                .map_err(|e| e.to_string())?;
            metrics::counter!("vaka_centre_outbox_pruned_total").increment(pruned);
            if last_batch {
                p.pruned = cursor;
                p.cursor = cursor;
                return Ok(());
            }
            p.pruned = reached.unwrap_or(cursor);
        }
    }
}
