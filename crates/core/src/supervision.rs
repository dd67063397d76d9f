//! Supervision: a device silent for longer than its heartbeat interval plus a grace period raises
//! one "device silent" alarm; its next message raises the restoral.
use crate::ids::UnixMillis;

/// When a device last heard at `last_seen` is to be called silent.
pub fn silent_at(last_seen: UnixMillis, interval_ms: i64, grace_ms: i64) -> UnixMillis {
    last_seen + interval_ms + grace_ms
}

/// The silence deadline after a restart at `started`. A deadline still ahead is kept; one that passed
/// while the engine was down (when nobody could hear the device) gets the grace period from the
/// restart, so a restart neither makes every device look silent nor forgets a silent one. A device
/// never heard gets a full interval.
pub fn silent_at_after_restart(
    last_seen: Option<UnixMillis>,
    interval_ms: i64,
    grace_ms: i64,
    started: UnixMillis,
) -> UnixMillis {
    match last_seen {
        Some(seen) => silent_at(seen, interval_ms, grace_ms).max(started + grace_ms),
        None => silent_at(started, interval_ms, grace_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ahead_is_kept_across_restart() {
        // Heard at 0, interval 60 s, grace 30 s: silent at 90 s whether or not we restarted at 50 s.
        assert_eq!(silent_at(0, 60_000, 30_000), 90_000);
        assert_eq!(
            silent_at_after_restart(Some(0), 60_000, 30_000, 50_000),
            90_000
        );
    }

    #[test]
    fn deadline_passed_during_downtime_gets_grace_from_restart() {
        assert_eq!(
            silent_at_after_restart(Some(0), 60_000, 30_000, 600_000),
            630_000
        );
    }

    #[test]
    fn never_heard_gets_a_full_interval() {
        assert_eq!(silent_at_after_restart(None, 60_000, 30_000, 1_000), 91_000);
    }
}
