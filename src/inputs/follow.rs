//! The follower: reads `VAKA_IN` in stream order from this node's read mark and stores, in this
//! node's RocksDB, the events of every input the node does not hold yet, with its record of the
//! input, in one synced write. So every node holds every acknowledged event, and a node killed
//! loses none that it acknowledged: the others hold them, and it takes what it missed when it
//! starts again.
//!
//! This node's own appends are recorded by its shards with their batch. While one of them is
//! acknowledged but its batch not yet committed, the follower leaves it and keeps its read mark
//! below it; an own input still not held after [`OWN_GRACE`] (its batch failed and the device
//! gave up) is stored from the stream like any other. At start nothing is in flight, so
//! everything not held is stored.
//!
//! An event of a device whose history was erased or moved to another tenant after the input
//! was stamped (`vaka_store::gone`: this node was behind, or stopped) is dropped or stored under
//! the new tenant, never stored again as it was.
//!
//! An alarm-records input (the alarms a batch changed) is kept as replicas of the appending
//! node's alarms ([`Replicas`]), never as this node's own. An answers input (what a stored
//! batch answered devices' alarm-lane messages) goes to the router
//! ([`Router::answered_elsewhere`]), so a resend here is answered the same way; this node's
//! own answers inputs are only recorded (no batch records them).
//!
//! Once stored, the events go to the router ([`Router::followed`]): their devices count as
//! heard, and their activity rules step, so supervision and rules on this node see the
//! devices that talk to other nodes (only a partition's owner calls a device silent or makes a
//! rule's alarm: `vaka_router::Owners`). What the catch-up at start stored, before the router
//! ran, is handed to it the same way once it runs, read back from the store oldest first
//! ([`Follower::spawn`]): a node started again goes on from the state the others' events made
//! (rules, positions, fences), not from its own of before it stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_cluster::reconcile::Digest;
use vaka_cluster::{alarm_records, answers, events, InputLog};
use vaka_core::idempotency::GivenAnswer;
use vaka_core::{AlarmId, Event, EventId, Lane, UnixMillis};
use vaka_router::Router;
use vaka_store::{Replica, Store, WriteSet};

/// How long an own input may stay unheld before the follower stores it from the stream.
pub const OWN_GRACE: Duration = Duration::from_secs(30);
/// Inputs read per step.
const READ_MAX: usize = 1_000;
/// The pause between steps when the follower is caught up.
const POLL: Duration = Duration::from_millis(200);
/// Other nodes' answers the catch-up at start keeps for the router, the latest ones: a node
/// away for long reads far more than any shard's idempotency window holds, and the older ones
/// are past it.
const CATCH_UP_ANSWERS: usize = 100_000;

pub struct Follower {
    log: InputLog,
    store: Store,
    node: String,
    /// Own inputs seen not yet held, by sequence: when first seen.
    own_waiting: HashMap<u64, Instant>,
    /// Once running: where the events it stores go (supervision and rules).
    router: Option<Arc<Router>>,
    /// The ids of the events the catch-up stored before the router ran: the first and the
    /// last (ids grow as they are given).
    caught_up: Option<(EventId, EventId)>,
    /// The stream sequence up to which what this node holds has been handed to the router
    /// and taken by its shards (the lease loop waits for it before it takes a partition).
    handed: Arc<AtomicU64>,
    replicas: Replicas,
    /// Other nodes' answers read and not yet handed to the router, with when their inputs were
    /// stamped.
    answers: std::collections::VecDeque<(GivenAnswer, UnixMillis)>,
}

impl Follower {
    pub fn new(log: InputLog, store: Store, node: &str) -> Follower {
        Follower {
            log,
            store,
            node: node.to_owned(),
            own_waiting: HashMap::new(),
            router: None,
            caught_up: None,
            handed: Arc::new(AtomicU64::new(0)),
            replicas: Replicas::default(),
            answers: Default::default(),
        }
    }

    /// The stream sequence up to which the events this node holds have been handed to the
    /// router and taken by its shards, to read while the follower runs.
    pub fn handed(&self) -> Arc<AtomicU64> {
        self.handed.clone()
    }

    /// Before the router starts: everything this node does not hold, up to the stream's end.
    pub async fn catch_up(&mut self) -> Result<u64, String> {
        let mark = self.store.input_read().map_err(|e| e.to_string())?;
        self.aged_unread(mark).await?;
        let mut stored = 0;
        loop {
            let (n, read) = self.step(true).await?;
            stored += n;
            if read == 0 {
                return Ok(stored);
            }
        }
    }

    /// Runs until aborted: hands `router` what the catch-up stored, says so on `ready` (the
    /// node takes no partition before: `leases::spawn`), then hands it what it stores, a step
    /// at a time, with a pause whenever it found nothing new. The fronts do not wait for it.
    /// `vaka_cluster_followed_timestamp_seconds` is when a step last read the stream (from the
    /// start on): `VakaClusterInputFollowStalled` fires when it falls behind.
    pub fn spawn(
        mut self,
        router: Arc<Router>,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            self.hand_over_caught_up(&router).await;
            router.replicated(self.replicas.take_held_here()).await;
            router
                .answered_elsewhere(self.answers.drain(..).collect())
                .await;
            self.router = Some(router);
            if let Ok(mark) = self.store.input_read() {
                self.handed.fetch_max(mark, Ordering::AcqRel);
            }
            let _ = ready.send(());
            crate::inputs::stamp("vaka_cluster_followed_timestamp_seconds");
            loop {
                let step = self.step(false).await;
                if step.is_ok() {
                    crate::inputs::stamp("vaka_cluster_followed_timestamp_seconds");
                }
                match step {
                    Ok((_, read)) if read < READ_MAX => tokio::time::sleep(POLL).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: following VAKA_IN failed; trying again");
                        metrics::counter!("vaka_cluster_follow_failures_total").increment(1);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    /// The stream starts past the mark: inputs this node never read aged out of the stream
    /// (it was away longer than `cluster.input_retention_ms`). Their events are on the other
    /// nodes and not here: loud, and counted as inputs this node lacks
    /// (`vaka_cluster_input_unapplied_total{partition="unknown"}`, `VakaClusterInputUnapplied`).
    /// Holes above the stream's first sequence are reconciliation's to report. The mark moves
    /// up to the stream's first sequence, so they are told once.
    async fn aged_unread(&self, mark: u64) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("following VAKA_IN: {e}");
        let first = self.log.extent().await.map_err(|e| err(&e))?.first;
        if first <= mark + 1 {
            return Ok(());
        }
        let held = self
            .store
            .input_records_between(mark + 1, first - 1, usize::MAX)
            .map_err(|e| err(&e))?
            .len() as u64;
        let unread = (first - mark - 1).saturating_sub(held);
        if unread > 0 {
            tracing::error!(
                from = mark + 1,
                to = first - 1,
                unread,
                "cluster: inputs aged out of VAKA_IN before this node read them (it was away \
                 longer than cluster.input_retention_ms); their events are on the other nodes, \
                 not on this one"
            );
            metrics::counter!("vaka_cluster_input_unapplied_total", "partition" => "unknown")
                .increment(unread);
        }
        let mut set = WriteSet::new();
        set.put_input_read(first - 1);
        self.store
            .commit(Lane::Telemetry, set)
            .await
            .map_err(|e| err(&e))?;
        Ok(())
    }

    /// An event stored: for the router once it runs, else kept for it by its id.
    fn heard(&mut self, id: EventId, ev: Event, followed: &mut Vec<(EventId, Event)>) {
        match self.router {
            Some(_) => followed.push((id, ev)),
            None => {
                let first = self.caught_up.map_or(id, |(first, _)| first);
                self.caught_up = Some((first, id));
            }
        }
    }

    /// What the catch-up stored, read back oldest first and handed to the router as if
    /// followed now: the devices count as heard when the other nodes took their events, a
    /// call of a device silent drops this node's deadline, the fixes move tracks and fences,
    /// and the activity rules step. Memory holds a read at a time, however long the node was
    /// away.
    async fn hand_over_caught_up(&mut self, router: &Router) {
        let Some((mut from, to)) = self.caught_up.take() else {
            return;
        };
        let mut handed = 0;
        while from <= to {
            let events = match self.store.events_between(from, to, READ_MAX) {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(error = %e, "cluster: reading back what the catch-up stored failed; supervision and rules start without the rest of it");
                    break;
                }
            };
            let Some(last) = events.last().map(|(id, _)| *id) else {
                break;
            };
            handed += events.len();
            router.followed(events).await;
            from = EventId(last.0 + 1);
        }
        tracing::info!(
            events = handed,
            "cluster: what the catch-up stored handed to the router"
        );
    }

    /// Reads from the mark on and stores what is not held: (inputs stored, inputs read).
    async fn step(&mut self, starting: bool) -> Result<(u64, usize), String> {
        let err = |e: &dyn std::fmt::Display| format!("following VAKA_IN: {e}");
        let mark = self.store.input_read().map_err(|e| err(&e))?;
        let inputs = self
            .log
            .read_all(mark + 1, READ_MAX)
            .await
            .map_err(|e| err(&e))?;
        let Some(last) = inputs.last().map(|i| i.sequence) else {
            return Ok((0, 0));
        };
        if inputs[0].sequence > mark + 1 {
            self.aged_unread(mark).await?;
        }
        let gone = self.store.gone().map_err(|e| err(&e))?;
        let mut set = WriteSet::new();
        self.replicas.start_step();
        let mut followed: Vec<(EventId, Event)> = Vec::new();
        let (mut stored, mut held_back) = (0, None);
        for input in &inputs {
            let (p, seq) = (input.partition.0, input.sequence);
            if self.store.has_input(p, seq).map_err(|e| err(&e))? {
                self.own_waiting.remove(&seq);
                continue;
            }
            let own = input.node.as_deref() == Some(self.node.as_str());
            if let Some(given) = answers::decode(&input.bytes) {
                match given {
                    Ok(given) if !own => self.keep_answers(given, input.published_ms, &gone),
                    Ok(_) => {}
                    Err(e) => unreadable(p, seq, &e),
                }
                set.put_input(p, seq, Digest::of(&input.bytes).0, input.published_ms);
                stored += 1;
                continue;
            }
            if own && !starting {
                let since = *self.own_waiting.entry(seq).or_insert_with(Instant::now);
                if since.elapsed() < OWN_GRACE {
                    held_back.get_or_insert(seq);
                    continue;
                }
                tracing::warn!(partition = p, sequence = seq, "cluster: an input this node appended was not stored with its batch; storing it from the stream");
            }
            self.own_waiting.remove(&seq);
            if let Some(records) = alarm_records::decode(&input.bytes) {
                match records {
                    Ok(records) => {
                        self.replicas
                            .keep(&self.store, input, records, &gone, &mut set)?
                    }
                    Err(e) => unreadable(p, seq, &e),
                }
                set.put_input(p, seq, Digest::of(&input.bytes).0, input.published_ms);
                stored += 1;
                continue;
            }
            match events::decode(&input.bytes) {
                Ok(evs) => {
                    for ev in evs {
                        let ev = match gone.get(&ev.device) {
                            Some(g) => match g.redirect(ev, input.published_ms as i64) {
                                Some(ev) => ev,
                                None => {
                                    metrics::counter!("vaka_cluster_input_events_erased_total")
                                        .increment(1);
                                    continue;
                                }
                            },
                            None => ev,
                        };
                        let id = self.store.allocate_id();
                        set.put_event(id, &ev);
                        self.heard(id, ev, &mut followed);
                    }
                }
                // Recorded all the same (reconciliation compares bytes, not meaning): a newer
                // node's format. Loud, and the events stay in the stream.
                Err(e) => unreadable(p, seq, &e),
            }
            set.put_input(p, seq, Digest::of(&input.bytes).0, input.published_ms);
            stored += 1;
        }
        let read_to = held_back.map_or(last, |s| s - 1).max(mark);
        set.put_input_read(read_to);
        self.store
            .commit(Lane::Telemetry, set)
            .await
            .map_err(|e| err(&e))?;
        if let Some(router) = &self.router {
            router.followed(followed).await;
            router.replicated(self.replicas.take_held_here()).await;
            router
                .answered_elsewhere(self.answers.drain(..).collect())
                .await;
            self.handed.fetch_max(read_to, Ordering::AcqRel);
        }
        metrics::counter!("vaka_cluster_inputs_followed_total").increment(stored);
        metrics::gauge!("vaka_cluster_input_read_sequence").set(read_to as f64);
        // Held back: read again from there after a pause, not at once.
        let read = if held_back.is_some() { 0 } else { inputs.len() };
        Ok((stored, read))
    }
}

impl Follower {
    /// Another node's answers, for the router: none of a device erased or moved after they
    /// were given (its history under that key is gone); while catching up, the latest
    /// [`CATCH_UP_ANSWERS`].
    fn keep_answers(
        &mut self,
        given: Vec<GivenAnswer>,
        at: u64,
        gone: &HashMap<vaka_core::DeviceKey, vaka_store::gone::Gone>,
    ) {
        for g in given {
            if gone
                .get(&g.key.device)
                .is_some_and(|change| change.covers(at as i64))
            {
                continue;
            }
            if self.router.is_none() && self.answers.len() == CATCH_UP_ANSWERS {
                self.answers.pop_front();
            }
            self.answers.push_back((g, at as UnixMillis));
        }
    }
}

/// Recorded all the same (reconciliation compares bytes, not meaning): a newer node's format.
/// Loud, and the input stays in the stream.
fn unreadable(partition: u32, sequence: u64, error: &str) {
    tracing::error!(
        partition,
        sequence,
        error,
        "cluster: an input this build cannot read"
    );
    metrics::counter!("vaka_cluster_inputs_unreadable_total").increment(1);
}

/// Keeps other nodes' alarm records as replicas (`vaka_store::Replica`): the latest record of
/// each alarm (by version: two batches of the holder in flight together may reach the stream
/// in either order), never a record this run of the node appended (by its id range: one whose
/// batch then failed describes nothing it holds). A node whose data dir was wiped appends
/// under a new range, so what it held before is kept as another holder's. The record of a
/// device erased or moved since is kept as the change left the device's history.
#[derive(Default)]
struct Replicas {
    /// What this step wrote (`None`: forgot), by alarm id: read before the store, which holds
    /// it only once the step commits.
    written: HashMap<AlarmId, Option<Replica>>,
    /// The latest kept replica of each alarm this node holds or held (taken over while it was
    /// away, or changed here and there at once), for the router to settle which node holds
    /// it (`Router::replicated`) once they are stored and it runs.
    held_here: HashMap<AlarmId, Replica>,
}

impl Replicas {
    fn start_step(&mut self) {
        self.written.clear();
    }

    /// This node's own records (taken over, or changed here last): a replica of the same alarm
    /// that they are later than is forgotten. The follower is the replicas' one writer, in
    /// stream order, so no later replica is lost to it.
    fn forget_outdated(
        &mut self,
        store: &Store,
        records: &alarm_records::AlarmRecords,
        set: &mut WriteSet,
    ) -> Result<(), String> {
        for r in &records.records {
            let id = r.alarm.id;
            let held = match self.written.get(&id) {
                Some(h) => h.clone(),
                None => store
                    .replica(id)
                    .map_err(|e| format!("forgetting outdated replicas: {e}"))?,
            };
            if held.is_some_and(|h| !h.later_than(r.version, records.holder_range)) {
                set.delete_replica(id);
                self.written.insert(id, None);
            }
        }
        Ok(())
    }

    fn take_held_here(&mut self) -> Vec<Replica> {
        self.held_here.drain().map(|(_, r)| r).collect()
    }

    fn keep(
        &mut self,
        store: &Store,
        input: &vaka_cluster::Input,
        records: alarm_records::AlarmRecords,
        gone: &HashMap<vaka_core::DeviceKey, vaka_store::gone::Gone>,
        set: &mut WriteSet,
    ) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("keeping alarm replicas: {e}");
        let own = store.id_range().map_err(|e| err(&e))?;
        let holder = input.node.clone().unwrap_or_else(|| "unknown".into());
        if records.holder_range == own {
            return self.forget_outdated(store, &records, set);
        }
        for r in records.records {
            // Its device erased or moved since (this node was behind): as the change left it.
            let alarm = match gone.get(&r.alarm.device) {
                Some(g) => g.redirect_alarm(r.alarm),
                None => r.alarm,
            };
            let replica = Replica {
                holder: holder.clone(),
                holder_range: records.holder_range,
                version: r.version,
                alarm,
            };
            let id = replica.alarm.id;
            let held = match self.written.get(&id) {
                Some(h) => h.clone(),
                None => store.replica(id).map_err(|e| err(&e))?,
            };
            if held.as_ref().is_some_and(|h| !replica.supersedes(h)) {
                metrics::counter!("vaka_cluster_replicas_stale_total").increment(1);
                continue;
            }
            set.put_replica(&replica);
            metrics::counter!("vaka_cluster_replicas_kept_total").increment(1);
            if store.alarm(id).map_err(|e| err(&e))?.is_some() {
                self.held_here.insert(id, replica.clone());
            }
            self.written.insert(id, Some(replica));
        }
        Ok(())
    }
}
