//! What a run measures: counters, errors by kind, HDR histograms of ack and offer latency (from
//! the scheduled send time), and a per-second timeline for the plot. One `Recorder` is shared by
//! every device task and the centre simulator.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Latencies are recorded in microseconds, up to this (longer ones are clamped to it).
const MAX_LATENCY_US: u64 = 10 * 60 * 1_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// One second of the run, by completion time.
pub struct Bucket {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub ack: Histogram<u64>,
    pub offer: Histogram<u64>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            sent: 0,
            acked: 0,
            delivered: 0,
            ack: histogram(2),
            offer: histogram(2),
        }
    }
}

/// An alarm sent and waiting for its offer to reach the centre simulator.
struct Expected {
    key: String,
    sent_at: Instant,
    acked: bool,
}

#[derive(Default)]
pub struct Counts {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    /// Acked durable, but the server said no centre could act (invariant 5): counted in `acked`.
    pub not_treated: u64,
    pub errors: BTreeMap<String, u64>,
}

struct Inner {
    /// The schedule's start: second 0 of the timeline.
    start: Instant,
    counts: Counts,
    ack: Histogram<u64>,
    offer: Histogram<u64>,
    timeline: Vec<Bucket>,
    /// device -> alarms sent, oldest first, not yet offered.
    expected: HashMap<String, VecDeque<Expected>>,
    last_completion: Option<Instant>,
}

/// How an acknowledged event reaches the end of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Delivered when acknowledged (telemetry, or no centre is watching).
    EndsAtAck,
    /// Delivered when the centre simulator is offered it (an alarm with a centre attached).
    EndsAtOffer,
}

pub struct Recorder {
    inner: Mutex<Inner>,
}

impl Recorder {
    /// `start` is the schedule's start: the timeline's second 0 (see [`begin`](Self::begin)).
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            inner: Mutex::new(Inner {
                start,
                counts: Counts::default(),
                ack: histogram(3),
                offer: histogram(3),
                timeline: Vec::new(),
                expected: HashMap::new(),
                last_completion: None,
            }),
        }
    }

    /// Moves the start (the recorder exists while devices connect, before the schedule is set).
    pub fn begin(&self, start: Instant) {
        self.lock().start = start;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bucket(inner: &mut Inner, at: Instant) -> &mut Bucket {
        let i = at.saturating_duration_since(inner.start).as_secs() as usize;
        if inner.timeline.len() <= i {
            inner.timeline.resize_with(i + 1, Bucket::new);
        }
        &mut inner.timeline[i]
    }

    /// An event handed to the transport. With [`Path::EndsAtOffer`] the (device, key) pair is
    /// remembered so that the offer can be matched, even if it overtakes the device's ack.
    pub fn sent(&self, device: &str, key: &str, at: Instant, path: Path) {
        let mut g = self.lock();
        g.counts.sent += 1;
        Self::bucket(&mut g, at).sent += 1;
        if path == Path::EndsAtOffer {
            g.expected
                .entry(device.to_string())
                .or_default()
                .push_back(Expected {
                    key: key.to_string(),
                    sent_at: at,
                    acked: false,
                });
        }
    }

    /// A positive (durable) reply to an event scheduled at `sent_at`.
    pub fn acked(&self, device: &str, key: &str, sent_at: Instant, path: Path, not_treated: bool) {
        let now = Instant::now();
        let mut g = self.lock();
        g.counts.acked += 1;
        g.counts.not_treated += u64::from(not_treated);
        let us = micros(now.saturating_duration_since(sent_at));
        g.ack.saturating_record(us);
        g.last_completion = Some(now);
        let b = Self::bucket(&mut g, now);
        b.acked += 1;
        b.ack.saturating_record(us);
        match path {
            Path::EndsAtAck => {
                g.counts.delivered += 1;
                Self::bucket(&mut g, now).delivered += 1;
            }
            Path::EndsAtOffer => {
                if let Some(e) = g
                    .expected
                    .get_mut(device)
                    .and_then(|q| q.iter_mut().find(|e| e.key == key))
                {
                    e.acked = true;
                }
            }
        }
    }

    /// A failed event: not stored (busy, rejected, ...) or no answer. It is no longer expected
    /// at the centre.
    pub fn error(&self, device: &str, key: &str, kind: &str) {
        let mut g = self.lock();
        *g.counts.errors.entry(kind.to_string()).or_default() += 1;
        if let Some(q) = g.expected.get_mut(device) {
            q.retain(|e| e.key != key);
        }
    }

    /// An error not tied to one event (a failed connection, a centre stream error).
    pub fn error_kind(&self, kind: &str, n: u64) {
        *self
            .lock()
            .counts
            .errors
            .entry(kind.to_string())
            .or_default() += n;
    }

    /// The centre was offered the alarm `reference` of `device`; false if it is not one of ours
    /// (an alarm from before the run, or a second offer of the same alarm).
    pub fn offered(&self, device: &str, reference: &str) -> bool {
        self.deliver(device, |q| q.iter().position(|e| e.key == reference))
    }

    /// The device alarmed again while its alarm was open: the centre got a "repeated" update
    /// instead of an offer. It delivers the device's oldest alarm still waiting.
    pub fn repeated(&self, device: &str) -> bool {
        self.deliver(device, |q| (!q.is_empty()).then_some(0))
    }

    fn deliver(
        &self,
        device: &str,
        find: impl FnOnce(&VecDeque<Expected>) -> Option<usize>,
    ) -> bool {
        let now = Instant::now();
        let mut g = self.lock();
        let Some(q) = g.expected.get_mut(device) else {
            return false;
        };
        let Some(e) = find(q).and_then(|i| q.remove(i)) else {
            return false;
        };
        if q.is_empty() {
            g.expected.remove(device);
        }
        let us = micros(now.saturating_duration_since(e.sent_at));
        g.counts.delivered += 1;
        g.offer.saturating_record(us);
        g.last_completion = Some(now);
        let b = Self::bucket(&mut g, now);
        b.delivered += 1;
        b.offer.saturating_record(us);
        true
    }

    /// Alarms acknowledged to the device and not yet offered to the centre.
    pub fn undelivered_acked(&self) -> u64 {
        let g = self.lock();
        g.expected.values().flatten().filter(|e| e.acked).count() as u64
    }

    /// Alarms sent whose offer has not come (acked or not yet answered).
    pub fn awaiting_offer(&self) -> u64 {
        self.lock().expected.values().map(|q| q.len() as u64).sum()
    }

    /// A snapshot for the progress bar: sent, acked, errors, ack p99 in ms.
    pub fn progress(&self) -> (u64, u64, u64, f64) {
        let g = self.lock();
        let errors = g.counts.errors.values().sum();
        let p99 = g.ack.value_at_quantile(0.99) as f64 / 1000.0;
        (g.counts.sent, g.counts.acked, errors, p99)
    }

    /// Ends the run: what was measured.
    pub fn finish(&self) -> Measured {
        let mut g = self.lock();
        let lost = g.expected.values().flatten().filter(|e| e.acked).count() as u64;
        let inner = &mut *g;
        Measured {
            counts: std::mem::take(&mut inner.counts),
            lost,
            ack: inner.ack.clone(),
            offer: inner.offer.clone(),
            timeline: std::mem::take(&mut inner.timeline),
            elapsed: inner
                .last_completion
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(inner.start)),
        }
    }
}

/// Everything one run measured.
pub struct Measured {
    pub counts: Counts,
    /// Alarms acked to the device but never offered to the centre (must be 0).
    pub lost: u64,
    pub ack: Histogram<u64>,
    pub offer: Histogram<u64>,
    pub timeline: Vec<Bucket>,
    /// From the schedule's start to the last ack or offer.
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn offers_match_by_reference_and_repeats_take_the_oldest() {
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        r.sent("d1", "a", t0, Path::EndsAtOffer);
        r.sent("d1", "b", t0, Path::EndsAtOffer);
        r.sent("d2", "c", t0, Path::EndsAtOffer);
        r.sent("d2", "hb", t0, Path::EndsAtAck);
        tokio::time::advance(Duration::from_millis(4)).await;
        r.acked("d2", "hb", t0, Path::EndsAtAck, false);
        // The offer overtakes the ack.
        assert!(r.offered("d1", "b"));
        r.acked("d1", "b", t0, Path::EndsAtOffer, false);
        r.acked("d1", "a", t0, Path::EndsAtOffer, true);
        r.acked("d2", "c", t0, Path::EndsAtOffer, false);
        assert!(
            !r.offered("d1", "b"),
            "a second offer is not delivered twice"
        );
        assert!(!r.offered("d9", "x"));
        assert_eq!(r.undelivered_acked(), 2);
        assert!(r.repeated("d1"));
        let m = r.finish();
        assert_eq!(m.counts.sent, 4);
        assert_eq!(m.counts.acked, 4);
        assert_eq!(m.counts.not_treated, 1);
        assert_eq!(m.counts.delivered, 3);
        assert_eq!(m.lost, 1, "d2/c acked and never offered");
        assert_eq!(m.offer.len(), 2);
        // 3 significant figures: 4 ms is recorded within 0.1%.
        assert!((4000..=4004).contains(&m.ack.value_at_quantile(0.5)));
        assert_eq!(m.elapsed, Duration::from_millis(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_alarm_is_not_expected_at_the_centre() {
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        r.sent("d1", "a", t0, Path::EndsAtOffer);
        r.error("d1", "a", "busy");
        assert_eq!(r.awaiting_offer(), 0);
        let m = r.finish();
        assert_eq!(m.counts.errors.get("busy"), Some(&1));
        assert_eq!(m.lost, 0);
    }
}
