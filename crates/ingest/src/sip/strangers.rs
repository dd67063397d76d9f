//! The budget of peers that have not authenticated (invariant 13): a token bucket per source
//! address, in a table of fixed size. Sources are hashed (with a per-process random key, so
//! nobody can aim at a bucket) onto the table; sources that share a bucket share its budget.
//! A flood from any number of (forged) addresses therefore costs no memory beyond the table,
//! and one source gets at most `rate` responses a second after a burst of `burst`.
//! Authenticated requests never draw on it.
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f32,
    at_ms: u64,
}

pub(crate) struct Strangers {
    per_ms: f32,
    burst: f32,
    key: RandomState,
    buckets: Vec<Bucket>,
}

impl Strangers {
    /// `rate` responses a second per source after `burst`, over `sources` buckets (16 bytes each).
    pub fn new(rate: u32, burst: u32, sources: usize) -> Strangers {
        let burst = burst.max(1) as f32;
        Strangers {
            per_ms: rate as f32 / 1000.0,
            burst,
            key: RandomState::new(),
            buckets: vec![
                Bucket {
                    tokens: burst,
                    at_ms: 0,
                };
                sources.max(1)
            ],
        }
    }

    /// Takes one response from the budget of `ip`; false when it is spent.
    pub fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let i = self.index(ip);
        let (per_ms, burst) = (self.per_ms, self.burst);
        let b = &mut self.buckets[i];
        // A clock that steps back refills nothing (and does not move the mark back).
        let elapsed = now_ms.saturating_sub(b.at_ms);
        b.tokens = (b.tokens + elapsed as f32 * per_ms).min(burst);
        b.at_ms = b.at_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The table's memory, whatever the number of sources.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    fn index(&self, ip: IpAddr) -> usize {
        (self.key.hash_one(source(ip)) % self.buckets.len() as u64) as usize
    }
}

/// What counts as one source: an IPv4 address, or an IPv6 /64 (one subscriber's prefix: its
/// 2^64 addresses are one source, not 2^64).
fn source(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => (1 << 127) | u128::from(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => source(IpAddr::V4(v4)),
            None => u128::from(a) >> 64 << 64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_per_source() {
        let mut s = Strangers::new(10, 5, 1024);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let allowed = (0..20).filter(|_| s.allow(a, 1_000)).count();
        assert_eq!(allowed, 5, "the burst");
        // Another source has its own bucket (unless it hashes to a's: not with 1024 buckets
        // and this key, checked below).
        if s.index(a) != s.index(b) {
            assert!(s.allow(b, 1_000));
        }
        // 10 a second: 100 ms buys one more, 1 s refills to the burst and no further.
        assert!(!s.allow(a, 1_050));
        assert!(s.allow(a, 1_100));
        assert!(!s.allow(a, 1_100));
        assert_eq!((0..20).filter(|_| s.allow(a, 60_000)).count(), 5);
        // A clock stepping back refills nothing.
        assert!(!s.allow(a, 30_000));
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_memory_is_fixed() {
        let mut s = Strangers::new(1, 2, 64);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(s.allow(one, 0) && s.allow(two, 0));
        assert!(!s.allow(one, 0), "the same /64 shares the budget");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source(mapped), source("192.0.2.7".parse().unwrap()));
        let before = s.bytes();
        for i in 0..100_000u32 {
            s.allow(IpAddr::V4(i.into()), 1);
        }
        assert_eq!(s.bytes(), before, "a flood of addresses adds nothing");
        assert_eq!(before, 64 * 16);
    }
}
