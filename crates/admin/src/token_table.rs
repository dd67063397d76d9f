//! The table of API tokens by the hash of their secret: a snapshot swapped whole on change (like
//! the directory), so authenticating a call takes no lock.
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use vaka_core::access::TokenRecord;
use vaka_store::{Store, StoreError};

pub(crate) struct Tokens {
    pub(crate) by_hash: ArcSwap<HashMap<String, TokenRecord>>,
    /// Changes are made one at a time (the API's handlers and, in a cluster, the directory
    /// log's follower): two at once would each swap in a copy without the other's change.
    writer: std::sync::Mutex<()>,
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Tokens {
    pub(crate) fn load(store: &Store) -> Result<Tokens, StoreError> {
        let all = store.tokens()?;
        Ok(Tokens {
            by_hash: ArcSwap::from_pointee(all.into_iter().map(|t| (t.hash.clone(), t)).collect()),
            writer: std::sync::Mutex::new(()),
        })
    }

    pub(crate) fn replace(&self, f: impl FnOnce(&mut HashMap<String, TokenRecord>)) {
        let _one_at_a_time = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::clone(&self.by_hash.load());
        f(&mut next);
        self.by_hash.store(Arc::new(next));
    }
}
