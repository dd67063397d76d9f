//! Open-loop rate control: slot `i` is due at `start + i / rate`, fixed before the run starts.
//! The dispatcher hands due slots to a synchronous sink and never waits for a reply, so a slow
//! server cannot slow the load down; latencies are measured from the slot's scheduled time, so a
//! late send (a busy generator) shows up as latency instead of hiding it.
use std::time::Duration;
use tokio::time::Instant;

/// A fixed schedule: `count` slots at `rate` per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub rate: f64,
    pub count: u64,
}

impl Schedule {
    /// At `rate` per second for `duration`, at most `max_count` slots.
    pub fn new(rate: f64, duration: Duration, max_count: Option<u64>) -> Schedule {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        let by_time = (rate * duration.as_secs_f64()).floor() as u64;
        Schedule {
            rate,
            count: max_count.map_or(by_time, |m| m.min(by_time)),
        }
    }

    /// When slot `i` is due, from the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many slots are due `elapsed` after the start (slots `0..due`).
    pub fn due(&self, elapsed: Duration) -> u64 {
        let n = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        n.min(self.count)
    }

    /// The scheduled length of the run.
    pub fn span(&self) -> Duration {
        self.offset(self.count)
    }
}

/// Runs the schedule from `start`: calls `sink(slot, scheduled_at)` for every slot, in order, as
/// soon as it is due (slots that fell due while the dispatcher slept are handed over together).
/// Returns when every slot was handed over or `stop` resolved first; returns the slots dispatched.
pub async fn drive(
    schedule: Schedule,
    start: Instant,
    stop: impl std::future::Future<Output = ()>,
    mut sink: impl FnMut(u64, Instant),
) -> u64 {
    tokio::pin!(stop);
    let mut next = 0;
    while next < schedule.count {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tokio::time::sleep_until(start + schedule.offset(next)) => {}
        }
        let due = schedule.due(Instant::now().saturating_duration_since(start));
        for i in next..due.max(next + 1) {
            sink(i, start + schedule.offset(i));
        }
        next = due.max(next + 1);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn slots_are_evenly_spaced_and_bounded_by_time_and_count() {
        let s = Schedule::new(1000.0, Duration::from_secs(2), None);
        assert_eq!(s.count, 2000);
        assert_eq!(s.offset(500), Duration::from_millis(500));
        assert_eq!(s.due(Duration::ZERO), 1);
        assert_eq!(s.due(Duration::from_micros(999)), 1);
        assert_eq!(s.due(Duration::from_millis(1)), 2);
        assert_eq!(s.due(Duration::from_secs(60)), 2000);
        let capped = Schedule::new(1000.0, Duration::from_secs(2), Some(10));
        assert_eq!(capped.count, 10);
        assert_eq!(capped.span(), Duration::from_millis(10));
    }

    /// The open-loop property: with a "server" that takes 300 ms to answer each event, every
    /// event still goes out at its scheduled time, and all of the first second's events are out
    /// before the first reply has come back.
    #[tokio::test(start_paused = true)]
    async fn dispatch_follows_the_schedule_whatever_the_reply_latency() {
        let schedule = Schedule::new(200.0, Duration::from_secs(2), None);
        let start = Instant::now();
        let sent: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let replies = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (sent.clone(), replies.clone());
        let n = drive(schedule, start, std::future::pending(), move |_, at| {
            s.lock().unwrap().push((at, Instant::now()));
            let r = r.clone();
            // The slow reply: the dispatcher never waits for it.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                r.lock().unwrap().push(Instant::now());
            });
        })
        .await;
        assert_eq!(n, 400);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 400);
        for (i, (at, when)) in sent.iter().enumerate() {
            assert_eq!(*at, start + schedule.offset(i as u64));
            assert!(
                when.duration_since(*at) <= Duration::from_millis(2),
                "slot {i} went out {:?} late",
                when.duration_since(*at)
            );
        }
        let first_reply = *replies.lock().unwrap().iter().min().unwrap();
        let before = sent.iter().filter(|(_, w)| *w < first_reply).count();
        assert!(before >= 60, "only {before} sent before the first reply");
        assert!(first_reply >= start + Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_dispatch_early() {
        let schedule = Schedule::new(100.0, Duration::from_secs(10), None);
        let start = Instant::now();
        let mut n = 0;
        let stop = tokio::time::sleep(Duration::from_millis(500));
        let dispatched = drive(schedule, start, stop, |_, _| n += 1).await;
        assert_eq!(dispatched, n);
        assert!((49..=52).contains(&n), "{n}");
    }
}
