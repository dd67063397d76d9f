//! Which centres are connected and acking right now; written by the delivery layer, read by shards
//! to answer devices truthfully (invariant 5) and to skip unreachable centres at once.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use vaka_core::CentreId;

#[derive(Clone, Default)]
pub struct Presence {
    /// Connected stream count per centre (a centre may hold several connections).
    inner: Arc<RwLock<HashMap<CentreId, u32>>>,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn connected(&self, centre: &CentreId) {
        *self
            .inner
            .write()
            .expect("presence lock")
            .entry(centre.clone())
            .or_default() += 1;
    }

    pub fn disconnected(&self, centre: &CentreId) {
        let mut map = self.inner.write().expect("presence lock");
        if let Some(n) = map.get_mut(centre) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(centre);
            }
        }
    }

    pub fn is_reachable(&self, centre: &CentreId) -> bool {
        self.inner
            .read()
            .expect("presence lock")
            .contains_key(centre)
    }

    /// Reachability of each centre of a chain, in chain order.
    pub fn reachable(&self, chain: &[CentreId]) -> Vec<bool> {
        let map = self.inner.read().expect("presence lock");
        chain.iter().map(|c| map.contains_key(c)).collect()
    }
}
