//! An alarm's stage times (`Alarm::stages`) as the shard learns them, and their histograms:
//! `vaka_alarm_stage_seconds{stage, tenant}`, the time from the device's message being received to
//! each stage (durable, offered, receipted, accepted, attended, closed). Tenants are a bounded set (the
//! directory's), so the label stays bounded.
use vaka_core::alarm::Stages;
use vaka_core::{Alarm, UnixMillis};

/// The alarm's first write is durable at `now`. Its offer (made in that same write) is released
/// to the centre's outbox only now, so an offer decided earlier counts from here.
pub(super) fn durable(alarm: &mut Alarm, now: UnixMillis) {
    // Offered in the write that opened it: counted as offered now.
    let before = Stages {
        offered_ms: None,
        ..alarm.stages
    };
    alarm.stages.durable_ms.get_or_insert(now);
    if let Some(offered) = &mut alarm.stages.offered_ms {
        *offered = (*offered).max(now);
    }
    record_reached(&before, alarm);
}

/// Records the stages `alarm` reached since `before`.
pub(super) fn record_reached(before: &Stages, alarm: &Alarm) {
    let now = &alarm.stages;
    for (stage, was, is) in [
        ("durable", before.durable_ms, now.durable_ms),
        ("offered", before.offered_ms, now.offered_ms),
        ("receipted", before.receipted_ms, now.receipted_ms),
        ("accepted", before.accepted_ms, now.accepted_ms),
        ("attended", before.attended_ms, now.attended_ms),
        ("closed", before.closed_ms, now.closed_ms),
    ] {
        if let (None, Some(at)) = (was, is) {
            let secs = (at - alarm.created_ms).max(0) as f64 / 1000.0;
            metrics::histogram!(
                "vaka_alarm_stage_seconds",
                "stage" => stage,
                "tenant" => alarm.device.tenant.0.clone()
            )
            .record(secs);
        }
    }
}
