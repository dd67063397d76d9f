//! The committer's view of a failed store (invariant 12: after a storage error the engine says
//! so, and resumes when the cause clears). One write that fails puts the store in `Failed`:
//! commits are refused at once without touching the engine, the backend is asked to recover
//! every 1 s, backing off to 5 s, and the state is published (watch, gauge) for health checks.
//! The failure is logged once, then one summary line per [`LOG_EVERY`], never per commit.
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the store can do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreState {
    /// Commits are written.
    Serving,
    /// A storage error: every commit is refused until the backend recovers.
    Failed,
}

const FIRST_TRY: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a failed store says it is still failed.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

struct Failing {
    since: Instant,
    next_try: Instant,
    backoff: Duration,
    last_log: Instant,
    /// Commits refused and recovery attempts since the last log line.
    refused: u64,
    attempts: u64,
    last_error: String,
}

pub(crate) struct Health {
    state: watch::Sender<StoreState>,
    failing: Option<Failing>,
}

impl Health {
    pub(crate) fn new() -> (Health, watch::Receiver<StoreState>) {
        let (tx, rx) = watch::channel(StoreState::Serving);
        metrics::gauge!("vaka_store_failed").set(0.0);
        (
            Health {
                state: tx,
                failing: None,
            },
            rx,
        )
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failing.is_some()
    }

    /// The error commits are refused with while failed.
    pub(crate) fn refusal(&self) -> String {
        match &self.failing {
            Some(f) => format!("store failed: {}", f.last_error),
            None => String::new(),
        }
    }

    /// A write failed: enter `Failed` (logged once) or count it.
    pub(crate) fn write_failed(&mut self, error: &str, now: Instant) {
        if let Some(f) = &mut self.failing {
            f.refused += 1;
            f.last_error = error.to_string();
            return;
        }
        tracing::error!(
            error,
            "store failed: commits are answered busy until it recovers (retrying every {}s up to {}s)",
            FIRST_TRY.as_secs(),
            MAX_BACKOFF.as_secs()
        );
        metrics::counter!("vaka_store_failures_total").increment(1);
        metrics::gauge!("vaka_store_failed").set(1.0);
        self.failing = Some(Failing {
            since: now,
            next_try: now + FIRST_TRY,
            backoff: FIRST_TRY,
            last_log: now,
            refused: 1,
            attempts: 0,
            last_error: error.to_string(),
        });
        self.state.send_replace(StoreState::Failed);
    }

    /// A group refused without trying the engine.
    pub(crate) fn refused(&mut self) {
        if let Some(f) = &mut self.failing {
            f.refused += 1;
        }
        metrics::counter!("vaka_store_refused_commits_total").increment(1);
    }

    /// When the committer must wake next while failed (a recovery attempt or a log line).
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        self.failing
            .as_ref()
            .map(|f| f.next_try.min(f.last_log + LOG_EVERY))
    }

    pub(crate) fn recovery_due(&self, now: Instant) -> bool {
        self.failing.as_ref().is_some_and(|f| now >= f.next_try)
    }

    /// The outcome of a recovery attempt.
    pub(crate) fn tried(&mut self, result: Result<(), String>, now: Instant) {
        let Some(f) = &mut self.failing else { return };
        f.attempts += 1;
        match result {
            Ok(()) => {
                tracing::warn!(
                    failed_for_ms = now.duration_since(f.since).as_millis() as u64,
                    refused_since_last_line = f.refused,
                    "store recovered: commits are written again"
                );
                metrics::gauge!("vaka_store_failed").set(0.0);
                metrics::counter!("vaka_store_recoveries_total").increment(1);
                self.failing = None;
                self.state.send_replace(StoreState::Serving);
            }
            Err(e) => {
                f.last_error = e;
                f.backoff = (f.backoff * 2).min(MAX_BACKOFF);
                f.next_try = now + f.backoff;
            }
        }
    }

    /// One summary line per [`LOG_EVERY`] while failed.
    pub(crate) fn log_if_due(&mut self, now: Instant) {
        let Some(f) = &mut self.failing else { return };
        if now.duration_since(f.last_log) < LOG_EVERY {
            return;
        }
        tracing::error!(
            failed_for_s = now.duration_since(f.since).as_secs(),
            refused = f.refused,
            recovery_attempts = f.attempts,
            error = %f.last_error,
            "store still failed"
        );
        f.last_log = now;
        f.refused = 0;
        f.attempts = 0;
    }
}
