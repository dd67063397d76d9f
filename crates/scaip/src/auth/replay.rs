//! Nonce-count replay tracking with bounded memory.
//!
//! For each nonce used with `qop=auth` we remember the highest `nc` seen; a request with the
//! same or a lower count is a replay. Memory is capped: expired nonces are dropped first
//! (the issuer rejects them anyway), and if live ones must go, the oldest is dropped and a
//! floor remembers its issue time, so that every nonce at or below the floor that we no
//! longer track is answered "stale" (forcing a fresh nonce) instead of being trusted.

use std::collections::{BTreeSet, HashMap};

/// Result of a nonce-count check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcCheck {
    /// Higher than any count seen with this nonce: accepted and recorded.
    Fresh,
    /// Same or lower than a count already seen: a replay.
    Replay,
    /// The nonce's history was evicted for space: make the client take a new nonce.
    Forgotten,
}

/// Highest nonce count per nonce, with an explicit capacity.
#[derive(Debug, Clone)]
pub struct NonceCounter {
    capacity: usize,
    highest: HashMap<String, (u32, u64)>,
    by_issue: BTreeSet<(u64, String)>,
    floor_ms: Option<u64>,
}

impl NonceCounter {
    /// Track at most `capacity` nonces (at least one).
    pub fn new(capacity: usize) -> NonceCounter {
        NonceCounter {
            capacity: capacity.max(1),
            highest: HashMap::new(),
            by_issue: BTreeSet::new(),
            floor_ms: None,
        }
    }

    /// Nonces currently tracked.
    pub fn len(&self) -> usize {
        self.highest.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.highest.is_empty()
    }

    /// Drop nonces whose lifetime has ended; returns how many.
    pub fn purge_expired(&mut self, now_ms: u64, lifetime_ms: u64) -> usize {
        let mut n = 0;
        while let Some((issued, _)) = self.by_issue.first() {
            if issued.saturating_add(lifetime_ms) >= now_ms {
                break;
            }
            if let Some((_, nonce)) = self.by_issue.pop_first() {
                self.highest.remove(&nonce);
                n += 1;
            }
        }
        n
    }

    /// Check `nc` for a (verified, unexpired) nonce issued at `issued_ms`, and record it.
    pub fn check(
        &mut self,
        nonce: &str,
        issued_ms: u64,
        nc: u32,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> NcCheck {
        if let Some((high, _)) = self.highest.get_mut(nonce) {
            if nc <= *high {
                return NcCheck::Replay;
            }
            *high = nc;
            return NcCheck::Fresh;
        }
        if nc == 0 {
            return NcCheck::Replay; // counts start at 1
        }
        if self.floor_ms.is_some_and(|f| issued_ms <= f) {
            return NcCheck::Forgotten;
        }
        if self.highest.len() >= self.capacity {
            self.purge_expired(now_ms, lifetime_ms);
        }
        while self.highest.len() >= self.capacity {
            let Some((issued, old)) = self.by_issue.pop_first() else {
                break;
            };
            self.highest.remove(&old);
            self.floor_ms = Some(self.floor_ms.map_or(issued, |f| f.max(issued)));
        }
        if self.floor_ms.is_some_and(|f| issued_ms <= f) {
            return NcCheck::Forgotten; // older than what we just had to forget
        }
        self.highest.insert(nonce.to_owned(), (nc, issued_ms));
        self.by_issue.insert((issued_ms, nonce.to_owned()));
        NcCheck::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_and_order() {
        let mut c = NonceCounter::new(8);
        let cases: &[(&str, u32, NcCheck)] = &[
            ("a", 1, NcCheck::Fresh),
            ("a", 1, NcCheck::Replay),
            ("a", 2, NcCheck::Fresh),
            ("a", 10, NcCheck::Fresh),
            ("a", 9, NcCheck::Replay),
            ("b", 0, NcCheck::Replay),
            ("b", 5, NcCheck::Fresh),
        ];
        for (nonce, nc, want) in cases {
            assert_eq!(c.check(nonce, 100, *nc, 200, 1000), *want, "{nonce} {nc}");
        }
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn bounded_with_expiry_then_floor() {
        let lifetime = 1_000;
        let mut c = NonceCounter::new(2);
        assert_eq!(c.check("old", 0, 1, 0, lifetime), NcCheck::Fresh);
        assert_eq!(c.check("mid", 500, 1, 500, lifetime), NcCheck::Fresh);
        // Full; at t=1001 "old" has expired and makes room without a floor.
        assert_eq!(c.check("new", 1_000, 1, 1_001, lifetime), NcCheck::Fresh);
        assert_eq!(c.len(), 2);
        // Full of live nonces: the oldest live one ("mid") is evicted and becomes the floor.
        assert_eq!(c.check("newer", 1_200, 1, 1_300, lifetime), NcCheck::Fresh);
        assert_eq!(c.len(), 2);
        assert_eq!(c.check("mid", 500, 2, 1_300, lifetime), NcCheck::Forgotten);
        // A nonce issued before the floor that we never saw is not trusted either.
        assert_eq!(
            c.check("unseen", 400, 1, 1_300, lifetime),
            NcCheck::Forgotten
        );
        // Tracked ones still work.
        assert_eq!(c.check("new", 1_000, 2, 1_300, lifetime), NcCheck::Fresh);
        assert_eq!(c.check("newer", 1_200, 1, 1_300, lifetime), NcCheck::Replay);
        assert_eq!(c.purge_expired(10_000, lifetime), 2);
        assert!(c.is_empty());
    }
}
