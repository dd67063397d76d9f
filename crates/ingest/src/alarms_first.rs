//! The one rule every front applies between alarms (invariant 9): while alarms flow, only a
//! little telemetry may be on its way at once. The SIP/UDP front (`sip::udp_lanes`) and the
//! QUIC front (`quic::alarm_flow`) each enforce it in their own terms; the numbers are here.
use std::time::Duration;

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
