//! One shard: owns the state of its devices, turns events into write sets and replies.
use crate::clock::Clock;
use crate::presence::Presence;
use crate::router::{Reply, ReplyTx, RouterConfig, SubmitError};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use vaka_core::alarm::{Context, Effect};
use vaka_core::directory::Directory;
use vaka_core::idempotency::{Answer, IdemKey, Idempotency};
use vaka_core::intake::{intake, Outcome};
use vaka_core::{Alarm, AlarmId, DeviceKey, Event, Lane};
use vaka_store::{CommitError, Recovered, Store, WriteSet};

pub(crate) enum ShardMsg {
    Event(Box<Event>, ReplyTx),
    /// Finish what is queued and in flight, then end.
    Stop,
}

pub(crate) fn lane_label(lane: Lane) -> &'static str {
    match lane {
        Lane::Alarm => "alarm",
        Lane::Telemetry => "telemetry",
    }
}

/// The part of the recovered state one shard owns.
#[derive(Default)]
pub(crate) struct ShardState {
    alarms: Vec<(Alarm, u32)>,
    idem: Vec<(IdemKey, Answer, i64)>,
}

pub(crate) fn split_recovered(rec: Recovered, shards: usize) -> Vec<ShardState> {
    let mut parts: Vec<ShardState> = (0..shards).map(|_| ShardState::default()).collect();
    for (alarm, seq) in rec.open_alarms {
        parts[alarm.device.shard(shards)].alarms.push((alarm, seq));
    }
    for (key, r) in rec.idem {
        parts[key.device.shard(shards)]
            .idem
            .push((key, r.answer, r.at_ms));
    }
    parts
}

struct OpenAlarm {
    alarm: Alarm,
    next_audit: u32,
}

/// A write set on its way to durability and the replies waiting for it.
struct InFlight {
    seq: u64,
    replies: Vec<(ReplyTx, Reply)>,
    keys: Vec<IdemKey>,
    /// Alarms this batch changed, to reload from the store if the commit fails.
    alarms: Vec<AlarmId>,
    events: u64,
    started: Instant,
}

struct LaneState {
    lane: Lane,
    inflight: VecDeque<InFlight>,
    commits: FuturesOrdered<BoxFuture<'static, Result<(), CommitError>>>,
}

pub(crate) struct Shard {
    id: usize,
    cfg: RouterConfig,
    store: Store,
    dir: Arc<Directory>,
    presence: Presence,
    clock: Clock,
    idem: Idempotency,
    /// Keys whose original is not yet durable: a resend must wait for that batch.
    pending: HashMap<IdemKey, u64>,
    alarms: HashMap<AlarmId, OpenAlarm>,
    by_device: HashMap<DeviceKey, Vec<AlarmId>>,
    next_seq: u64,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        cfg: RouterConfig,
        store: Store,
        dir: Arc<Directory>,
        presence: Presence,
        clock: Clock,
        state: ShardState,
    ) -> Self {
        let mut idem = Idempotency::new(cfg.idempotency_window_ms, cfg.idempotency_capacity);
        for (k, a, at) in state.idem {
            idem.record(k, a, at);
        }
        let mut shard = Shard {
            id,
            cfg,
            store,
            dir,
            presence,
            clock,
            idem,
            pending: HashMap::new(),
            alarms: HashMap::new(),
            by_device: HashMap::new(),
            next_seq: 0,
        };
        for (alarm, next_audit) in state.alarms {
            shard.keep_alarm(alarm, next_audit);
        }
        shard
    }

    fn keep_alarm(&mut self, alarm: Alarm, next_audit: u32) {
        let id = alarm.id;
        if alarm.is_open() {
            let ids = self.by_device.entry(alarm.device.clone()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
            self.alarms.insert(id, OpenAlarm { alarm, next_audit });
        } else {
            self.alarms.remove(&id);
            if let Some(ids) = self.by_device.get_mut(&alarm.device) {
                ids.retain(|a| *a != id);
                if ids.is_empty() {
                    self.by_device.remove(&alarm.device);
                }
            }
        }
    }

    pub(crate) async fn run(
        mut self,
        alarm_rx: flume::Receiver<ShardMsg>,
        bulk_rx: flume::Receiver<ShardMsg>,
    ) {
        let mut alarm = LaneState {
            lane: Lane::Alarm,
            inflight: VecDeque::new(),
            commits: FuturesOrdered::new(),
        };
        let mut bulk = LaneState {
            lane: Lane::Telemetry,
            inflight: VecDeque::new(),
            commits: FuturesOrdered::new(),
        };
        let max = self.cfg.max_inflight.max(1);
        let mut stopping = false;
        tracing::debug!(shard = self.id, alarms = self.alarms.len(), "shard started");
        loop {
            tokio::select! {
                biased;
                Some(r) = alarm.commits.next(), if !alarm.commits.is_empty() => {
                    self.complete(&mut alarm, r);
                }
                Some(r) = bulk.commits.next(), if !bulk.commits.is_empty() => {
                    self.complete(&mut bulk, r);
                }
                m = alarm_rx.recv_async(), if alarm.inflight.len() < max => {
                    if let Ok(m) = m {
                        stopping |= self.take_batch(&mut alarm, m, &alarm_rx);
                    }
                }
                m = bulk_rx.recv_async(), if !stopping && bulk.inflight.len() < max => {
                    match m {
                        Ok(m) => stopping |= self.take_batch(&mut bulk, m, &bulk_rx),
                        Err(_) => stopping = true,
                    }
                }
                else => break,
            }
            if stopping && alarm_rx.is_empty() && bulk_rx.is_empty() {
                break;
            }
        }
        // Drain: whatever is still queued is processed, then every commit is awaited and answered.
        while let Ok(m) = alarm_rx.try_recv() {
            self.take_batch(&mut alarm, m, &alarm_rx);
        }
        while let Ok(m) = bulk_rx.try_recv() {
            self.take_batch(&mut bulk, m, &bulk_rx);
        }
        for lane in [&mut alarm, &mut bulk] {
            while let Some(r) = lane.commits.next().await {
                self.complete(lane, r);
            }
        }
        tracing::debug!(shard = self.id, "shard stopped");
    }

    /// Takes `first` and whatever else waits in the lane (up to the batch size) into one write set.
    /// Returns true if a stop was seen.
    fn take_batch(
        &mut self,
        lane: &mut LaneState,
        first: ShardMsg,
        rx: &flume::Receiver<ShardMsg>,
    ) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let now = self.clock.now_ms();
        let mut set = WriteSet::new();
        let mut batch = InFlight {
            seq,
            replies: Vec::new(),
            keys: Vec::new(),
            alarms: Vec::new(),
            events: 0,
            started: Instant::now(),
        };
        let mut stop = false;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(msg) = next.take() {
            match msg {
                ShardMsg::Event(ev, tx) => {
                    self.handle(lane, *ev, tx, now, &mut set, &mut batch);
                    taken += 1;
                }
                ShardMsg::Stop => stop = true,
            }
            if taken < self.cfg.max_batch {
                next = rx.try_recv().ok();
            }
        }
        for gone in self.idem.expire(now) {
            set.delete_idem(&gone);
        }
        if set.is_empty() && batch.replies.is_empty() {
            return stop;
        }
        batch.events = u64::from(set.events);
        let commit = self.store.commit(lane.lane, set);
        lane.commits.push_back(Box::pin(commit));
        lane.inflight.push_back(batch);
        stop
    }

    fn handle(
        &mut self,
        lane: &mut LaneState,
        ev: Event,
        tx: ReplyTx,
        now: i64,
        set: &mut WriteSet,
        batch: &mut InFlight,
    ) {
        if self.dir.device(&ev.device).is_none() {
            let _ = tx.send(Ok(Reply::Rejected {
                reason: format!("unknown device {}", ev.device),
            }));
            metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "unknown_device")
                .increment(1);
            return;
        }
        let chain = self.dir.chain(&ev.device).to_vec();
        let reachable = self.presence.reachable(&chain);
        let centre_available = reachable.iter().any(|r| *r);
        let idem_key = (ev.lane() == Lane::Alarm).then(|| IdemKey {
            device: ev.device.clone(),
            key: ev.key.clone(),
        });
        if let Some(key) = &idem_key {
            if let Some(answer) = self.idem.get(key, now) {
                let reply = Reply::Accepted {
                    event: answer.event,
                    alarm: answer.alarm,
                    duplicate: true,
                    centre_available,
                };
                metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "duplicate")
                    .increment(1);
                self.reply_after_original(lane, key, tx, reply, batch);
                return;
            }
        }
        let id = self.store.allocate_id();
        let ctx = Context {
            chain: &chain,
            reachable: &reachable,
            deadlines: self.dir.deadlines(&ev.device),
            now,
        };
        let open: Vec<&Alarm> = self
            .by_device
            .get(&ev.device)
            .into_iter()
            .flatten()
            .filter_map(|id| self.alarms.get(id).map(|o| &o.alarm))
            .collect();
        let outcome = intake(&ev, id, open, &ctx);
        set.put_event(id, &ev);
        let alarm_id = match outcome {
            Ok(Outcome::Opened { alarm, effects }) | Ok(Outcome::Changed { alarm, effects }) => {
                let id = alarm.id;
                self.apply(alarm, &effects, set);
                batch.alarms.push(id);
                Some(id)
            }
            Ok(Outcome::Stored) | Ok(Outcome::NothingToCancel) => None,
            Err(e) => {
                // The event is still stored; the alarm it touched was already final.
                tracing::warn!(device = %ev.device, error = %e, "event did not change its alarm");
                None
            }
        };
        let answer = Answer {
            event: id,
            alarm: alarm_id,
        };
        if let Some(key) = idem_key {
            set.put_idem(&key, answer, now);
            self.idem.record(key.clone(), answer, now);
            self.pending.insert(key.clone(), batch.seq);
            batch.keys.push(key);
        }
        batch.replies.push((
            tx,
            Reply::Accepted {
                event: id,
                alarm: alarm_id,
                duplicate: false,
                centre_available,
            },
        ));
    }

    fn reload_alarm(&mut self, id: AlarmId) {
        let next_audit = self.alarms.get(&id).map_or(0, |o| o.next_audit);
        match vaka_store::load_alarm(self.store.backend().as_ref(), id) {
            Ok(Some(alarm)) => self.keep_alarm(alarm, next_audit),
            Ok(None) => {
                if let Some(o) = self.alarms.remove(&id) {
                    if let Some(ids) = self.by_device.get_mut(&o.alarm.device) {
                        ids.retain(|a| *a != id);
                    }
                }
            }
            Err(e) => {
                tracing::error!(alarm = %id, error = %e, "cannot reload alarm after failed commit")
            }
        }
    }

    /// Writes the alarm and its audit records, and keeps the shard's view of it.
    fn apply(&mut self, alarm: Alarm, effects: &[Effect], set: &mut WriteSet) {
        let mut next_audit = self.alarms.get(&alarm.id).map_or(0, |o| o.next_audit);
        for fx in effects {
            match fx {
                Effect::Audit(rec) => {
                    set.put_audit(next_audit, rec);
                    next_audit += 1;
                }
                Effect::Unhandled => {
                    tracing::error!(alarm = %alarm.id, device = %alarm.device, "alarm unhandled: whole chain failed");
                    metrics::counter!("vaka_alarms_unhandled_total").increment(1);
                }
                // Offers, updates and deadline timers are carried out by the delivery layer from
                // the durable alarm record.
                Effect::Offer { .. }
                | Effect::Update { .. }
                | Effect::ArmDeadline(_)
                | Effect::ClearDeadline => {}
            }
        }
        set.put_alarm(&alarm);
        self.keep_alarm(alarm, next_audit);
    }

    /// A resend is answered only once its original is durable. Only alarm-lane events are keyed,
    /// so the original is in this lane: in the batch being built or one in flight.
    fn reply_after_original(
        &mut self,
        lane: &mut LaneState,
        key: &IdemKey,
        tx: ReplyTx,
        reply: Reply,
        batch: &mut InFlight,
    ) {
        match self.pending.get(key) {
            Some(seq) if *seq != batch.seq => {
                match lane.inflight.iter_mut().find(|b| b.seq == *seq) {
                    Some(b) => b.replies.push((tx, reply)),
                    None => batch.replies.push((tx, reply)),
                }
            }
            Some(_) => batch.replies.push((tx, reply)),
            None => {
                let _ = tx.send(Ok(reply));
            }
        }
    }

    fn complete(&mut self, lane: &mut LaneState, result: Result<(), CommitError>) {
        let batch = lane
            .inflight
            .pop_front()
            .expect("a commit completes only for a batch in flight");
        for key in &batch.keys {
            if self.pending.get(key) == Some(&batch.seq) {
                self.pending.remove(key);
            }
        }
        let label = lane_label(lane.lane);
        match result {
            Ok(()) => {
                metrics::counter!("vaka_events_sent_total", "stage" => "router", "lane" => label)
                    .increment(batch.events);
                metrics::histogram!("vaka_router_durable_seconds", "lane" => label)
                    .record(batch.started.elapsed().as_secs_f64());
                for (tx, reply) in batch.replies {
                    let _ = tx.send(Ok(reply));
                }
            }
            Err(e) => {
                metrics::counter!("vaka_errors_total", "stage" => "router", "lane" => label)
                    .increment(1);
                // Nothing of this batch is durable: forget what memory already believes, so a
                // resend is taken afresh and alarms match the store again.
                for key in &batch.keys {
                    self.idem.forget(key);
                }
                for id in &batch.alarms {
                    self.reload_alarm(*id);
                }
                for (tx, _) in batch.replies {
                    let _ = tx.send(Err(SubmitError::Store(e.to_string())));
                }
            }
        }
    }
}
