//! The one rule every front applies between alarms (invariant 9): while alarms flow, only a
//! little telemetry may be on its way at once. The SIP/UDP front (`sip::udp_lanes`) and the
//! QUIC front (`quic::alarm_flow`) each enforce it in their own terms; the numbers are here.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Alarms are "flowing" for this long after the last one came (or, at the QUIC front, was
/// answered): in a storm the next one is at most a few milliseconds away, and telemetry should
/// not rush in between.
pub(crate) const ALARMS_FLOWING_FOR: Duration = Duration::from_millis(50);

/// Telemetry events (SCAIP messages, vaka/1 events) that may be on their way at once while
/// alarms flow: the telemetry taken between two alarms is what the next alarm waits behind.
/// Not 0: alarms arrive every few hundred milliseconds on a national platform's ordinary day,
/// and heartbeats must still flow between them; few enough that a shard batch or a store
/// commit is never mostly telemetry then (BENCHMARKS.md, "Overload ... issue 22, 2026-12-06"
/// has 0, 16 and 256 side by side).
pub(crate) const TELEMETRY_WHILE_ALARMS_FLOW: usize = 16;

/// When alarms last came (or were answered), read by telemetry on any thread: one atomic.
pub(crate) struct LastAlarm {
    base: Instant,
    /// Milliseconds since `base`, plus one (0: never).
    ms: AtomicU64,
}

impl LastAlarm {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    /// An alarm came or was answered now.
    pub(crate) fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64 + 1;
        self.ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Until when alarms flow ([`ALARMS_FLOWING_FOR`] after the last one), `None` if quiet.
    pub(crate) fn flowing_until(&self) -> Option<Instant> {
        match self.ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.base + Duration::from_millis(ms - 1) + ALARMS_FLOWING_FOR)
                .filter(|until| *until > Instant::now()),
        }
    }
}
