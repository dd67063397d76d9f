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
