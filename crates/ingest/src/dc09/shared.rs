//! What the DC-09 listeners, their tasks and `receive` share: the front's settings and handles
//! (`Shared`) and its metric handles (`Metrics`). Apart from the code that starts the tasks so
//! that every part imports it and none imports the server.
use std::sync::Arc;

use metrics::{Counter, Gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vaka_router::{Clock, LiveDirectory, Router};

use super::Dc09Config;

/// What the listeners and their tasks share.
pub(crate) struct Shared {
    pub cfg: Dc09Config,
    pub router: Arc<Router>,
    /// Accounts and keys, read per message (changes apply at once).
    pub directory: LiveDirectory,
    pub clock: Clock,
    /// Messages being stored (invariant 6).
    pub pending: Arc<Semaphore>,
    /// Link tests being stored: at most half of `pending`, so a flood of supervision polls
    /// leaves room for alarms (invariant 9 at the socket).
    pub link_tests: Arc<Semaphore>,
    pub connections: Arc<Semaphore>,
    /// Cancelled first at shutdown: listeners stop reading.
    pub intake: CancellationToken,
    /// Cancelled last: every task ends.
    pub token: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Metrics,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }

    /// Room to store the message `frame`, or `None`: busy (the caller answers DUH). A link
    /// test (told by its token alone, before decoding) also needs one of the link tests'
    /// permits, so alarms always find half of `max_pending` free of them.
    pub fn admit(&self, frame: &[u8]) -> Option<Admitted> {
        let link_test = if vaka_dc09::frame::is_link_test(frame) {
            Some(self.link_tests.clone().try_acquire_owned().ok()?)
        } else {
            None
        };
        let pending = self.pending.clone().try_acquire_owned().ok()?;
        Some(Admitted {
            _pending: pending,
            _link_test: link_test,
        })
    }
}

/// A message's place among those being stored, given back when dropped.
pub(crate) struct Admitted {
    _pending: OwnedSemaphorePermit,
    _link_test: Option<OwnedSemaphorePermit>,
}

/// The front's metric handles (Vector's component spec names, `stage="dc09"`).
pub(crate) struct Metrics {
    events_received: Counter,
    bytes_received: Counter,
    events_sent: Counter,
    /// Alarm-lane events (what is offered to people) taken in: the dashboard's alarms/s.
    pub alarms_received: Counter,
    bytes_sent: Counter,
    pub connections_active: Gauge,
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let (s, q) = ("stage", "dc09");
        Metrics {
            events_received: metrics::counter!("vaka_events_received_total", s => q),
            bytes_received: metrics::counter!("vaka_bytes_received_total", s => q),
            events_sent: metrics::counter!("vaka_events_sent_total", s => q),
            alarms_received: metrics::counter!("vaka_alarms_received_total", "protocol" => q),
            bytes_sent: metrics::counter!("vaka_bytes_sent_total", s => q),
            connections_active: metrics::gauge!("vaka_connections_active", s => q),
            connections_accepted: metrics::counter!("vaka_connections_total", s => q, "result" => "accepted"),
            connections_refused: metrics::counter!("vaka_connections_total", s => q, "result" => "refused"),
        }
    }

    /// One frame of `n` bytes came in.
    pub fn frames(&self, n: usize) {
        self.events_received.increment(1);
        self.bytes_received.increment(n as u64);
    }

    /// `n` events handed to the router.
    pub fn events(&self, n: usize) {
        self.events_sent.increment(n as u64);
    }

    pub fn error(&self, kind: &'static str) {
        metrics::counter!("vaka_errors_total", "stage" => "dc09", "kind" => kind).increment(1);
    }

    /// One answer sent: `ACK`, `NAK` or `DUH`, and why.
    pub fn reply(&self, answer: &'static str, reason: &'static str) {
        metrics::counter!("vaka_replies_total", "stage" => "dc09", "answer" => answer, "reason" => reason)
            .increment(1);
    }

    pub fn sent(&self, n: usize) {
        self.bytes_sent.increment(n as u64);
    }
}
