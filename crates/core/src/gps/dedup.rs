//! Recognising resent fixes that are not the device's last one.
//!
//! Devices on weak coverage resend whole batches (lost replies, reconnects), so a resent fix is
//! often some fix before the last. We remember a fingerprint of (fix time, lat, lon) for the last
//! `RECENT_FIXES` stored fixes per device: 8 bytes each, bounded, no allocation.

use super::Fix;

/// How many stored fixes per device the dedup ring remembers.
pub const RECENT_FIXES: usize = 16;

/// Bounded ring of fingerprints of recently stored fixes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecentFixes {
    keys: [u64; RECENT_FIXES],
    len: u8,
    next: u8,
}

impl RecentFixes {
    /// Whether a fix with this time and position was stored recently.
    pub fn contains(&self, fix: &Fix) -> bool {
        let k = fingerprint(fix);
        self.keys[..usize::from(self.len)].contains(&k)
    }

    /// Remember a stored fix, evicting the oldest remembered. A fix already remembered is a
    /// no-op, so remembering is idempotent.
    pub fn remember(&mut self, fix: &Fix) {
        let k = fingerprint(fix);
        if self.keys[..usize::from(self.len)].contains(&k) {
            return;
        }
        self.keys[usize::from(self.next)] = k;
        self.next = ((usize::from(self.next) + 1) % RECENT_FIXES) as u8;
        if usize::from(self.len) < RECENT_FIXES {
            self.len += 1;
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// 64-bit fingerprint of (time, lat, lon). A false match needs the same fix time to the
/// millisecond and a 2^-64 collision; its cost would be one dropped telemetry fix (alarm fixes
/// are never dropped as duplicates).
fn fingerprint(fix: &Fix) -> u64 {
    // `+ 0.0` turns -0.0 into 0.0 so the two compare equal, as they do as numbers.
    let lat = (fix.lat + 0.0).to_bits();
    let lon = (fix.lon + 0.0).to_bits();
    mix(fix.time_ms as u64 ^ mix(lat ^ mix(lon ^ 0x9E37_79B9_7F4A_7C15)))
}

/// splitmix64 finaliser: cheap, well mixed, and the same on every platform (invariant 10).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_window() {
        let mut r = RecentFixes::default();
        let f = |i: i64| Fix::at(1_000 * i, 57.0 + i as f64 * 1e-4, 12.0);
        for i in 0..20 {
            r.remember(&f(i));
        }
        assert_eq!(r.len(), RECENT_FIXES);
        assert!(!r.contains(&f(3)), "evicted");
        assert!(r.contains(&f(4)));
        assert!(r.contains(&f(19)));
        // Same time, other position: not a resend.
        assert!(!r.contains(&Fix::at(19_000, 57.5, 12.0)));
        // Same position, other time: not a resend either.
        assert!(!r.contains(&Fix::at(19_001, 57.0 + 19.0 * 1e-4, 12.0)));
    }

    #[test]
    fn remembering_twice_is_a_no_op() {
        let mut a = RecentFixes::default();
        a.remember(&Fix::at(1, 1.0, 2.0));
        let once = a.clone();
        a.remember(&Fix::at(1, 1.0, 2.0));
        assert_eq!(a, once);
        // Negative zero is the same position.
        assert!(a.contains(&Fix::at(1, 1.0, 2.0)));
        let mut z = RecentFixes::default();
        z.remember(&Fix::at(5, 0.0, -0.0));
        assert!(z.contains(&Fix::at(5, -0.0, 0.0)));
    }
}
