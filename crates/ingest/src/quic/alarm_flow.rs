//! Alarms first at the QUIC front (invariant 9 from the socket on), as at the SIP/UDP front.
//! While an alarm-lane event is deciding (submitted, not yet answered), no frame of telemetry
//! alone is submitted at all; for [`ALARMS_FLOWING_FOR`] after the last alarm came or was
//! answered, only within a small budget of telemetry events in flight
//! ([`TELEMETRY_WHILE_ALARMS_FLOW`]). Frames that must wait wait in their connection, which
//! reads at most [`HELD_PER_CONNECTION`] telemetry events past its turn, so QUIC flow control
//! holds the rest at the device: the router's lanes and the store see alarms with little
//! telemetry ahead of them. When alarms are quiet, telemetry is not limited here at all. A
//! frame with an alarm in it is never held.
//!
//! [`ALARMS_FLOWING_FOR`]: crate::alarms_first::ALARMS_FLOWING_FOR
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

// The rule's numbers, shared with the SIP/UDP front. A frame larger than the telemetry budget
// waits for the whole of it and is then alone in flight.
use crate::alarms_first::{LastAlarm, TELEMETRY_WHILE_ALARMS_FLOW};

/// Telemetry events a connection reads past what it may submit: beyond, it is not read until
/// they go (QUIC flow control then stops the device), so a flood costs little decryption and
/// parsing while alarms flow. Below, a frame with an alarm behind held telemetry is still read
/// and goes at once.
pub(crate) const HELD_PER_CONNECTION: usize = 64;

pub(crate) struct AlarmFlow {
    /// Alarm-lane events submitted and not yet answered.
    deciding: AtomicUsize,
    /// When the last alarm came or was answered.
    last: LastAlarm,
    /// Woken when the last deciding alarm is answered, so waiting telemetry looks again.
    answered: Notify,
    budget: Arc<Semaphore>,
}

/// Held while one alarm-lane event decides.
pub(crate) struct Deciding(Arc<AlarmFlow>);

impl Drop for Deciding {
    fn drop(&mut self) {
        self.0.last.touch();
        if self.0.deciding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.answered.notify_waiters();
        }
    }
}

/// Whether alarms flow now: not at all, with no end known (one is deciding), or until then.
enum Flow {
    Quiet,
    Deciding,
    Until(Instant),
}

impl AlarmFlow {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            deciding: AtomicUsize::new(0),
            last: LastAlarm::new(),
            answered: Notify::new(),
            budget: Arc::new(Semaphore::new(TELEMETRY_WHILE_ALARMS_FLOW)),
        })
    }

    /// An alarm-lane event is submitted; it decides until the guard is dropped.
    pub(crate) fn alarm(self: &Arc<Self>) -> Deciding {
        self.deciding.fetch_add(1, Ordering::AcqRel);
        self.last.touch();
        Deciding(self.clone())
    }

    fn flow(&self) -> Flow {
        if self.deciding.load(Ordering::Acquire) > 0 {
            return Flow::Deciding;
        }
        match self.last.flowing_until() {
            Some(until) => Flow::Until(until),
            None => Flow::Quiet,
        }
    }

    pub(crate) fn flowing(&self) -> bool {
        !matches!(self.flow(), Flow::Quiet)
    }

    /// Waits until `events` telemetry events may be submitted: at once when alarms are quiet
    /// (no permit); while one decides, not before it is answered; after, when the budget has
    /// room (the permit, held until they are answered) or alarms go quiet, whichever is first.
    pub(crate) async fn telemetry_turn(
        self: Arc<Self>,
        events: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let n = events.clamp(1, TELEMETRY_WHILE_ALARMS_FLOW) as u32;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let until = match self.flow() {
                Flow::Quiet => return None,
                Flow::Deciding => {
                    answered.await;
                    continue;
                }
                Flow::Until(t) => t,
            };
            tokio::select! {
                biased;
                p = self.budget.clone().acquire_many_owned(n) => return p.ok(),
                () = &mut answered => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms_first::ALARMS_FLOWING_FOR;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn no_telemetry_while_an_alarm_decides_a_budget_after_and_none_needed_when_quiet() {
        let flow = AlarmFlow::new();
        assert!(
            flow.clone().telemetry_turn(10).await.is_none(),
            "quiet: no permit"
        );
        let alarm = flow.alarm();
        let f = flow.clone();
        let first = tokio::spawn(async move { f.telemetry_turn(1000).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!first.is_finished(), "taken while an alarm decides");
        drop(alarm);
        // Answered: within the window, the whole budget for a frame larger than it.
        let first = first.await.unwrap().expect("a permit within the window");
        assert_eq!(first.num_permits(), TELEMETRY_WHILE_ALARMS_FLOW);
        let f = flow.clone();
        let second = tokio::spawn(async move { f.telemetry_turn(1).await.is_none() });
        tokio::time::sleep(ALARMS_FLOWING_FOR / 2).await;
        assert!(!second.is_finished(), "past the budget within the window");
        assert!(
            second.await.unwrap(),
            "quiet after the window: no permit needed"
        );
        drop(first);
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_budget_lets_waiting_telemetry_go_while_alarms_still_flow() {
        let flow = AlarmFlow::new();
        drop(flow.alarm());
        let all = flow.clone().telemetry_turn(1000).await.expect("a permit");
        let f = flow.clone();
        let next = tokio::spawn(async move { f.telemetry_turn(1).await.is_some() });
        tokio::task::yield_now().await;
        assert!(!next.is_finished());
        drop(all);
        assert!(next.await.unwrap(), "took the freed budget");
    }
}
