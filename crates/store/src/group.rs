//! Group commit: producers hand in [`WriteSet`]s; one committer thread takes everything waiting (alarm
//! lane first), writes it as one synced batch, and only then completes each producer.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::failure::{Health, StoreState};
use crate::keys;
use crate::recovery::{self, RecoverOptions, Recovered};
use futures::channel::oneshot;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::watch;
use vaka_core::{EventId, Lane};

/// Ids reserved per write of the id mark: one fsynced file write per this many events, so the
/// reservation stays off the commit path; a crash skips at most this many ids.
pub const ID_BLOCK: u64 = 100_000;

#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// A group stops growing at this many operations (bounds batch memory and commit latency).
    pub max_group_ops: usize,
    /// Write sets that may wait for the committer, per lane (invariant 6: bounded).
    pub queue_depth: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_group_ops: 8192,
            queue_depth: 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("store is closed")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
}

/// Counters since open; `syncs / events` is the syncs-per-event the benches report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub syncs: u64,
    pub sets: u64,
    pub events: u64,
    pub ops: u64,
}

struct Request {
    set: WriteSet,
    done: oneshot::Sender<Result<(), CommitError>>,
}

enum Msg {
    Commit(Request),
    /// Commit everything queued before this, then stop.
    Stop,
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    sets: AtomicU64,
    events: AtomicU64,
    ops: AtomicU64,
}

struct Inner {
    backend: Arc<dyn Backend>,
    alarm_tx: flume::Sender<Msg>,
    bulk_tx: flume::Sender<Msg>,
    next_id: Arc<AtomicU64>,
    counters: Arc<Counters>,
    outbox_durable: watch::Receiver<u64>,
    state: watch::Receiver<StoreState>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

/// The last handle gone without `close`: still stop the committer and wait for it, so that no
/// thread is left writing to the engine while the process exits (RocksDB aborts when its
/// background state is torn down under a running writer).
impl Drop for Inner {
    fn drop(&mut self) {
        let handle = self.committer.get_mut().ok().and_then(Option::take);
        if let Some(handle) = handle {
            let _ = self.bulk_tx.send(Msg::Stop);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// The store: any backend plus group commit and id allocation. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens the store on a backend, recovers what is there and starts the committer.
    pub fn open(
        backend: Arc<dyn Backend>,
        cfg: GroupConfig,
        recover: RecoverOptions,
    ) -> Result<(Store, Recovered), StoreError> {
        let recovered = recovery::recover(backend.as_ref(), &recover)?;
        let (alarm_tx, alarm_rx) = flume::bounded(cfg.queue_depth.max(1));
        let (bulk_tx, bulk_rx) = flume::bounded(cfg.queue_depth.max(1));
        let counters = Arc::new(Counters::default());
        let (durable_tx, durable_rx) = watch::channel(recovered.outbox_seq);
        let next_id = Arc::new(AtomicU64::new(recovered.next_event_id));
        let (health, state_rx) = Health::new();
        let committer = {
            let backend = backend.clone();
            let counters = counters.clone();
            let state = CommitterState {
                outbox: OutboxSeq {
                    seq: recovered.outbox_seq,
                    durable: durable_tx,
                },
                ids: IdReservation {
                    next: next_id.clone(),
                    reserved: backend.reserved_ids(),
                },
                health,
            };
            std::thread::Builder::new()
                .name("vaka-commit".into())
                .spawn(move || run_committer(backend, alarm_rx, bulk_rx, cfg, counters, state))
                .map_err(|e| StoreError::Engine(format!("cannot start committer: {e}")))?
        };
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                alarm_tx,
                bulk_tx,
                next_id,
                counters,
                outbox_durable: durable_rx,
                state: state_rx,
                committer: Mutex::new(Some(committer)),
            }),
        };
        Ok((store, recovered))
    }

    /// A fresh event id, never given before, also not across crashes and salvage: the committer
    /// reserves ids in blocks ([`ID_BLOCK`]) in the backend's lasting mark before it commits a
    /// group that uses them, and recovery starts above the reservation.
    pub fn allocate_id(&self) -> EventId {
        EventId(self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The id [`Store::allocate_id`] gives next.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.load(Ordering::SeqCst)
    }

    /// Raises the next id past `id` (an import wrote records under their exported ids): no id
    /// at or below it is handed out from now on. The committer's reservation covers the new
    /// next id before it writes a group that uses it, and recovery starts above the stored keys.
    pub fn ids_past(&self, id: u64) {
        self.inner
            .next_id
            .fetch_max(id.saturating_add(1), Ordering::SeqCst);
    }

    /// Queues `set` for the next group and resolves once it is durable (or failed). Sets of one
    /// lane are committed in the order they were queued.
    pub fn commit(
        &self,
        lane: Lane,
        set: WriteSet,
    ) -> impl Future<Output = Result<(), CommitError>> + Send + 'static {
        let queued = self.enqueue(lane, set);
        async move { queued.await?.await }
    }

    /// [`Self::commit`] in two steps: resolves once `set` is in the committer's queue (its
    /// place in the lane's order is taken), to a future that resolves once it is durable. For a
    /// caller that must do something between the two, such as letting the next set queue.
    pub fn enqueue(
        &self,
        lane: Lane,
        set: WriteSet,
    ) -> impl Future<
        Output = Result<
            impl Future<Output = Result<(), CommitError>> + Send + 'static,
            CommitError,
        >,
    > + Send
           + 'static {
        let tx = match lane {
            Lane::Alarm => self.inner.alarm_tx.clone(),
            Lane::Telemetry => self.inner.bulk_tx.clone(),
        };
        async move {
            let (done, rx) = oneshot::channel();
            tx.send_async(Msg::Commit(Request { set, done }))
                .await
                .map_err(|_| CommitError::Closed)?;
            Ok(async move { rx.await.map_err(|_| CommitError::Closed)? })
        }
    }

    /// The highest outbox sequence that is durable; changes whenever a group with notices commits.
    pub fn outbox_watermark(&self) -> watch::Receiver<u64> {
        self.inner.outbox_durable.clone()
    }

    /// Serving, or failed after a storage error (commits refused until the backend recovers).
    pub fn state(&self) -> watch::Receiver<StoreState> {
        self.inner.state.clone()
    }

    /// Reads go straight to the backend. Other crates read through the typed methods
    /// (`query`, `delivery`, ...); only tests (feature `test-util`) reach the backend itself.
    #[cfg(any(test, feature = "test-util"))]
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    #[cfg(not(any(test, feature = "test-util")))]
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            syncs: c.syncs.load(Ordering::Relaxed),
            sets: c.sets.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
        }
    }

    /// Commits everything already queued, stops the committer and flushes the backend.
    /// Later commits fail with [`CommitError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let handle = self.inner.committer.lock().expect("committer lock").take();
        if let Some(handle) = handle {
            // The alarm lane is drained ahead of the stop marker by the committer's priority rule.
            let _ = self.inner.bulk_tx.send(Msg::Stop);
            let _ = handle.join();
            // Nothing is in flight now: the exact next id, so a clean restart leaves no gap.
            let next = self.inner.next_id.load(Ordering::SeqCst);
            self.inner.backend.reserve_ids(next)?;
            self.inner.backend.flush()?;
        }
        Ok(())
    }
}

fn run_committer(
    backend: Arc<dyn Backend>,
    alarm_rx: flume::Receiver<Msg>,
    bulk_rx: flume::Receiver<Msg>,
    cfg: GroupConfig,
    counters: Arc<Counters>,
    mut state: CommitterState,
) {
    let mut sets: Vec<WriteSet> = Vec::new();
    let mut dones: Vec<Done> = Vec::new();
    let mut stopping = false;
    loop {
        // Wait for the first request, alarms first.
        let first = match alarm_rx.try_recv().or_else(|_| bulk_rx.try_recv()) {
            Ok(m) => Some(m),
            Err(_) => {
                let select = flume::Selector::new()
                    .recv(&alarm_rx, |r| r.ok())
                    .recv(&bulk_rx, |r| r.ok());
                match state.health.wake_at() {
                    None => select.wait(),
                    // Failed: wake for the next recovery attempt or log line without traffic.
                    Some(at) => match select.wait_deadline(at) {
                        Ok(m) => m,
                        Err(_) => {
                            state.tend(backend.as_ref());
                            continue;
                        }
                    },
                }
            }
        };
        let mut ops = 0usize;
        match first {
            Some(m) => stopping |= take(m, &mut sets, &mut dones, &mut ops),
            None => break, // every sender is gone
        }
        // Grow the group with whatever is already waiting, alarms first.
        while !stopping && ops < cfg.max_group_ops {
            match alarm_rx.try_recv().or_else(|_| bulk_rx.try_recv()) {
                Ok(m) => stopping |= take(m, &mut sets, &mut dones, &mut ops),
                Err(_) => break,
            }
        }
        if stopping {
            // Everything queued before the stop marker belongs to this last group.
            while let Ok(m) = alarm_rx.try_recv() {
                take(m, &mut sets, &mut dones, &mut ops);
            }
        }
        state.tend(backend.as_ref());
        if !sets.is_empty() && state.health.is_failed() {
            refuse_group(&mut sets, &mut dones, &mut state.health);
        } else if !sets.is_empty() {
            commit_group(
                backend.as_ref(),
                &mut sets,
                &mut dones,
                &counters,
                &mut state,
            );
        }
        if stopping {
            break;
        }
    }
}

type Done = oneshot::Sender<Result<(), CommitError>>;

/// Adds a message to the group being built; true if it was the stop marker.
fn take(m: Msg, sets: &mut Vec<WriteSet>, dones: &mut Vec<Done>, ops: &mut usize) -> bool {
    match m {
        Msg::Commit(r) => {
            *ops += r.set.len();
            sets.push(r.set);
            dones.push(r.done);
            false
        }
        Msg::Stop => true,
    }
}

/// What the committer keeps between groups.
struct CommitterState {
    outbox: OutboxSeq,
    ids: IdReservation,
    health: Health,
}

impl CommitterState {
    /// While failed: try to bring the backend back when due, and say how it goes.
    fn tend(&mut self, backend: &dyn Backend) {
        let now = Instant::now();
        if self.health.recovery_due(now) {
            let result = backend.recover().map_err(|e| e.to_string());
            self.health.tried(result, Instant::now());
        }
        self.health.log_if_due(Instant::now());
    }
}

/// A failed store answers at once, without touching the engine (and without a log line each).
fn refuse_group(sets: &mut Vec<WriteSet>, dones: &mut Vec<Done>, health: &mut Health) {
    let error = CommitError::Write(health.refusal());
    health.refused();
    for done in dones.drain(..) {
        let _ = done.send(Err(error.clone()));
    }
    sets.clear();
}

/// The committer's outbox numbering: the last sequence given and the durable watermark.
struct OutboxSeq {
    seq: u64,
    durable: watch::Sender<u64>,
}

/// The id counter and how far the backend's lasting mark covers it.
struct IdReservation {
    next: Arc<AtomicU64>,
    reserved: u64,
}

impl IdReservation {
    /// Every id in a group was allocated before the group was queued, so it is below `next`:
    /// if the mark does not cover `next` yet, reserve the next block before writing.
    fn cover(&mut self, backend: &dyn Backend) -> Result<(), StoreError> {
        let next = self.next.load(Ordering::SeqCst);
        if next > self.reserved {
            let end = next.saturating_add(ID_BLOCK);
            backend.reserve_ids(end)?;
            self.reserved = end;
        }
        Ok(())
    }
}

/// Turns the sets' outbox notices into keyed writes, numbered in commit order.
fn number_outbox(sets: &mut [WriteSet], seq: &mut u64) {
    let start = *seq;
    for set in sets.iter_mut() {
        for (centre, value) in std::mem::take(&mut set.outbox) {
            *seq += 1;
            set.put_raw(Cf::Outbox, keys::outbox_key(&centre, *seq), value);
        }
    }
    if *seq != start {
        if let Some(last) = sets.last_mut() {
            last.put_raw(
                Cf::Meta,
                keys::META_OUTBOX_SEQ.to_vec(),
                seq.to_be_bytes().to_vec(),
            );
        }
    }
}

fn commit_group(
    backend: &dyn Backend,
    sets: &mut Vec<WriteSet>,
    dones: &mut Vec<Done>,
    counters: &Counters,
    state: &mut CommitterState,
) {
    let outbox = &mut state.outbox;
    let events: u64 = sets.iter().map(|s| u64::from(s.events)).sum();
    let ops: u64 = sets.iter().map(|s| s.len() as u64).sum();
    let outbox_before = outbox.seq;
    number_outbox(sets, &mut outbox.seq);
    let started = Instant::now();
    let result = state
        .ids
        .cover(backend)
        .and_then(|()| backend.write_synced(sets))
        .map_err(|e| CommitError::Write(e.to_string()));
    match &result {
        // Only now may centres read up to the new sequence.
        Ok(()) if outbox.seq != outbox_before => {
            outbox.durable.send_replace(outbox.seq);
        }
        Ok(()) => {}
        // Nothing was written: the numbers are free again.
        Err(_) => outbox.seq = outbox_before,
    }
    let took = started.elapsed();
    counters.syncs.fetch_add(1, Ordering::Relaxed);
    counters
        .sets
        .fetch_add(sets.len() as u64, Ordering::Relaxed);
    counters.events.fetch_add(events, Ordering::Relaxed);
    counters.ops.fetch_add(ops, Ordering::Relaxed);
    metrics::histogram!("vaka_store_commit_seconds").record(took.as_secs_f64());
    metrics::histogram!("vaka_store_group_events").record(events as f64);
    metrics::counter!("vaka_store_syncs_total").increment(1);
    match &result {
        Ok(()) => metrics::counter!("vaka_events_sent_total", "stage" => "store").increment(events),
        Err(e) => {
            // Logged once by the failure state, then at a bounded rate.
            state.health.write_failed(&e.to_string(), Instant::now());
            metrics::counter!("vaka_errors_total", "stage" => "store").increment(1);
        }
    }
    for done in dones.drain(..) {
        // A producer that gave up waiting is no reason to stop.
        let _ = done.send(result.clone());
    }
    // Freeing the written sets is not the producers' wait.
    sets.clear();
}
