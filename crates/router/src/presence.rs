//! Which centres are connected and acking right now, and since when the others are away; written by
//! the delivery layer, read by shards to answer devices truthfully (invariant 5), to skip
//! unreachable centres, and to give an away centre its reconnect grace (invariant 11).
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::time::Instant;
use vaka_core::CentreId;

#[derive(Clone)]
pub struct Presence {
    inner: Arc<RwLock<State>>,
}

struct State {
    /// Connected stream count per centre (a centre may hold several connections).
    connected: HashMap<CentreId, u32>,
    /// When each centre's last stream closed; `None`: we cut it off (it stopped acknowledging),
    /// so it gets no reconnect grace.
    left: HashMap<CentreId, Option<Instant>>,
    /// A centre never seen since the start is away since the start (a restart is a disconnect).
    started: Instant,
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

impl Presence {
    /// No centre connected; every centre counts as away since now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RwLock::new(State {
                connected: HashMap::new(),
                left: HashMap::new(),
                started: Instant::now(),
            })),
        }
    }

    pub fn connected(&self, centre: &CentreId) {
        let mut s = self.inner.write().expect("presence lock");
        *s.connected.entry(centre.clone()).or_default() += 1;
        s.left.remove(centre);
    }

    /// A stream of `centre` closed (the centre went, or the engine is stopping).
    pub fn disconnected(&self, centre: &CentreId) {
        self.leave(centre, Some(Instant::now()));
    }

    /// We closed `centre`'s stream because it stopped acknowledging: unreachable, and not
    /// waited for, since the centre was there and did not act.
    pub fn cut_off(&self, centre: &CentreId) {
        self.leave(centre, None);
    }

    fn leave(&self, centre: &CentreId, at: Option<Instant>) {
        let mut s = self.inner.write().expect("presence lock");
        if let Some(n) = s.connected.get_mut(centre) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.connected.remove(centre);
                s.left.insert(centre.clone(), at);
            }
        }
    }

    pub fn is_reachable(&self, centre: &CentreId) -> bool {
        self.inner
            .read()
            .expect("presence lock")
            .connected
            .contains_key(centre)
    }

    /// Reachability of each centre of a chain, in chain order.
    pub fn reachable(&self, chain: &[CentreId]) -> Vec<bool> {
        let s = self.inner.read().expect("presence lock");
        chain.iter().map(|c| s.connected.contains_key(c)).collect()
    }

    /// Since when each centre of a chain is away and may be coming back, in chain order; `None`:
    /// connected, or cut off. A centre not seen since the start is away since the start.
    pub fn away_since(&self, chain: &[CentreId]) -> Vec<Option<Instant>> {
        let s = self.inner.read().expect("presence lock");
        chain
            .iter()
            .map(|c| match s.connected.contains_key(c) {
                true => None,
                false => s.left.get(c).copied().unwrap_or(Some(s.started)),
            })
            .collect()
    }
}
