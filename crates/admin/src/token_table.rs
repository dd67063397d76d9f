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
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Tokens {
    pub(crate) fn load(store: &Store) -> Result<Tokens, StoreError> {
        let all = store.tokens()?;
        Ok(Tokens {
            by_hash: ArcSwap::from_pointee(all.into_iter().map(|t| (t.hash.clone(), t)).collect()),
        })
    }

    pub(crate) fn replace(&self, f: impl FnOnce(&mut HashMap<String, TokenRecord>)) {
        let mut next = HashMap::clone(&self.by_hash.load());
        f(&mut next);
        self.by_hash.store(Arc::new(next));
    }
}
