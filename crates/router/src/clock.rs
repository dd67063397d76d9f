//! The router's only clock. Reads tokio's clock, so tests with paused time drive deadlines exactly.
use std::time::{SystemTime, UNIX_EPOCH};
use vaka_core::UnixMillis;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_at_start: UnixMillis,
    start: tokio::time::Instant,
}

impl Clock {
    /// Wall time now, advancing with tokio's clock (which tests may pause and advance).
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            wall_at_start: wall,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> UnixMillis {
        self.wall_at_start + self.start.elapsed().as_millis() as i64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// The tokio instant at which the wall clock reads `at_ms` (now, if that is past).
    pub fn instant_at(&self, at_ms: UnixMillis) -> tokio::time::Instant {
        let offset = (at_ms - self.wall_at_start).max(0) as u64;
        self.start + std::time::Duration::from_millis(offset)
    }
}

impl Clock {
    /// What the wall clock read at tokio instant `at`.
    pub fn ms_at(&self, at: tokio::time::Instant) -> UnixMillis {
        match at.checked_duration_since(self.start) {
            Some(after) => self.wall_at_start + after.as_millis() as i64,
            None => self.wall_at_start - (self.start - at).as_millis() as i64,
        }
    }
}

impl Clock {
    /// A clock that reads `wall_ms` now (tests, and restarts that must agree with a previous run).
    pub fn starting_at(wall_ms: UnixMillis) -> Self {
        Self {
            wall_at_start: wall_ms,
            start: tokio::time::Instant::now(),
        }
    }
}
