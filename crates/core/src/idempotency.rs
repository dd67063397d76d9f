//! Remembers what each (device, key) was answered, so a resend gets the same answer and never a
//! second alarm (invariant 2). Bounded in count and in time; the caller persists entries through the
//! store and reloads them at start-up.
use crate::ids::{AlarmId, DeviceKey, EventId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// What an accepted message produced; a resend is answered from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub event: EventId,
    pub alarm: Option<AlarmId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdemKey {
    pub device: DeviceKey,
    pub key: String,
}

/// An answer a node gave a device's message, as the other nodes of a cluster learn it: a resend
/// of the message to any of them (a device's second receiver) gets the same answer, never a
/// second alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GivenAnswer {
    pub key: IdemKey,
    pub answer: Answer,
}

#[derive(Debug)]
pub struct Idempotency {
    window_ms: i64,
    capacity: usize,
    map: HashMap<IdemKey, (Answer, UnixMillis)>,
    /// Insertion order, for expiry and eviction. Entries here may be stale after a re-record.
    order: VecDeque<(UnixMillis, IdemKey)>,
    evicted_early: u64,
}

impl Idempotency {
    pub fn new(window_ms: i64, capacity: usize) -> Self {
        Self {
            window_ms,
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            evicted_early: 0,
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// The earlier answer for this key, if it is still within the window.
    pub fn get(&self, key: &IdemKey, now: UnixMillis) -> Option<Answer> {
        self.map
            .get(key)
            .filter(|(_, at)| now - at < self.window_ms)
            .map(|(a, _)| *a)
    }

    /// Records an answer. Expires what is past the window first; if still full, evicts the oldest
    /// entry and counts it (a sign the capacity is configured too small for the load).
    pub fn record(&mut self, key: IdemKey, answer: Answer, at: UnixMillis) {
        self.expire(at);
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some((t, k)) => {
                    if self.map.get(&k).map(|(_, at)| *at) == Some(t) {
                        self.map.remove(&k);
                        self.evicted_early += 1;
                    }
                }
                None => break,
            }
        }
        self.order.push_back((at, key.clone()));
        self.map.insert(key, (answer, at));
    }

    /// Drops entries older than the window; returns the keys dropped so the caller can delete them
    /// from the store.
    pub fn expire(&mut self, now: UnixMillis) -> Vec<IdemKey> {
        let mut gone = Vec::new();
        while let Some((t, _)) = self.order.front() {
            if now - *t < self.window_ms {
                break;
            }
            let (t, k) = self.order.pop_front().expect("front exists");
            if self.map.get(&k).map(|(_, at)| *at) == Some(t) {
                self.map.remove(&k);
                gone.push(k);
            }
        }
        gone
    }

    /// Drops an entry whose write did not become durable.
    pub fn forget(&mut self, key: &IdemKey) {
        self.map.remove(key);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted before their window ended because the map was full.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> IdemKey {
        IdemKey {
            device: DeviceKey::new("t", "d"),
            key: s.into(),
        }
    }
    fn a(n: u64) -> Answer {
        Answer {
            event: EventId(n),
            alarm: Some(AlarmId(n)),
        }
    }

    #[test]
    fn resend_within_window_gets_same_answer() {
        let mut m = Idempotency::new(1_000, 10);
        m.record(k("r1"), a(1), 0);
        assert_eq!(m.get(&k("r1"), 999), Some(a(1)));
        assert_eq!(m.get(&k("r1"), 1_000), None);
        assert_eq!(m.get(&k("r2"), 10), None);
    }

    #[test]
    fn expiry_returns_dropped_keys_once() {
        let mut m = Idempotency::new(100, 10);
        m.record(k("a"), a(1), 0);
        m.record(k("b"), a(2), 50);
        assert_eq!(m.expire(120), vec![k("a")]);
        assert_eq!(m.expire(120), vec![]);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let mut m = Idempotency::new(1_000_000, 3);
        for i in 0..10 {
            m.record(k(&i.to_string()), a(i), i as i64);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.evicted_early(), 7);
        assert_eq!(m.get(&k("9"), 10), Some(a(9)));
        assert_eq!(m.get(&k("0"), 10), None);
    }
}
