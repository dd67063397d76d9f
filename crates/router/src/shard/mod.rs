//! One shard: owns the state of its devices and their open alarms, turns events, centre inputs and
//! deadlines into write sets, and answers callers once those are durable.
use crate::api::{CentreTx, ChangedAlarm, InputError, Reply, ReplyTx, RouterConfig, SubmitError};
use crate::clock::Clock;
use crate::live::LiveDirectory;
use crate::positions::{self, Positions};
use crate::presence::Presence;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use std::collections::HashSet;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::alarm::{
    self, AlarmInput, AlarmState, CentreDeadlines, Context, Effect, Notice, TransitionError,
};
use vaka_core::gps::{FilterReason, Fix, Observed, Verdict};
use vaka_core::idempotency::{Answer, GivenAnswer, IdemKey, Idempotency};
use vaka_core::intake::{intake, Outcome};
use vaka_core::{Alarm, AlarmId, CentreId, DeviceKey, Event, EventKind, Lane, UnixMillis};
use vaka_store::{CommitError, Recovered, Store, WriteSet};

mod handover;
mod rules;
mod stages;
mod supervision;

/// After a commit fails, deadlines and silence timers wait this long before they fire again
/// (the store retries its recovery after 1 s). Without the pause, a due deadline whose
/// transition failed is reloaded as due again and fires at once, failing again: the shard spins
/// on it for the whole outage, and the timer, polled before the alarm lane, starves the lane,
/// so alarms arriving meanwhile get no answer at all.
const TIMERS_PAUSE_AFTER_FAILED_COMMIT_MS: i64 = 1_000;

/// What the router sends a shard, over its alarm or telemetry lane.
pub(crate) enum Command {
    Event(Box<Event>, ReplyTx),
    /// A centre acts on an alarm this shard owns.
    Input {
        alarm: AlarmId,
        input: AlarmInput,
        reply: CentreTx,
    },
    /// A centre became reachable: offer it what waits for it.
    CentreUp(CentreId),
    /// A centre is gone: escalate what it held but had not accepted, once its reconnect grace
    /// has passed without it coming back.
    CentreDown(CentreId),
    /// The device announced its heartbeat interval (SCAIP hbi): supervise it with this one.
    Interval {
        device: DeviceKey,
        secs: u32,
        reply: CentreTx,
    },
    /// Retention: forget the device's stored positions with a fix time before `before`.
    ExpirePositions {
        device: DeviceKey,
        before: UnixMillis,
        reply: CentreTx,
    },
    /// The directory changed for these devices (the new one is already published).
    Directory(Arc<[DeviceKey]>),
    /// Events another cluster node took, as this node's follower stored them (under these
    /// ids): the devices were heard, their fixes and activity rules step (`Shard::followed`).
    /// Told once they are taken.
    Followed(Vec<(vaka_core::EventId, Event)>, oneshot::Sender<()>),
    /// Open alarms of cluster nodes that are gone: taken over where this node owns the
    /// device's partition (`handover`).
    Adopt(Vec<vaka_store::Replica>),
    /// Another node's records of alarms this node holds or held: the later record wins
    /// (`handover`).
    Replicated(Vec<vaka_store::Replica>),
    /// What other nodes answered devices' alarm-lane messages, and when their inputs were
    /// stamped (`Shard::answered_elsewhere`).
    AnsweredElsewhere(Vec<(GivenAnswer, UnixMillis)>),
    /// Finish what is queued and in flight, then end.
    Stop,
}

/// A cluster node's commit of one batch: its events appended to the input log first (the appends
/// of several batches in flight together), then the set queued for the store after the lane's
/// batch before it (`after`), whatever order the appends were acknowledged in, so a lane's sets
/// are committed in the order they were built, as on a single node. `queued` tells the next
/// batch whether this one was queued. A batch whose predecessor failed fails too: it was built
/// on that batch's changes (an alarm it opened, say), which will never be stored.
async fn commit_after_append(
    store: Store,
    lane: Lane,
    mut set: WriteSet,
    appended: Option<BoxFuture<'static, Result<WriteSet, CommitError>>>,
    after: Option<oneshot::Receiver<bool>>,
    queued: oneshot::Sender<bool>,
) -> Result<(), CommitError> {
    let record = match appended {
        Some(append) => append.await,
        None => Ok(WriteSet::new()),
    };
    let before_queued = match after {
        Some(after) => after.await.unwrap_or(false),
        None => true,
    };
    let durable = match (record, before_queued) {
        (Err(e), _) => Err(e),
        (Ok(_), false) => Err(CommitError::Write(
            "a batch built before this one was not stored".into(),
        )),
        (Ok(record), true) => {
            set.extend(record);
            store.enqueue(lane, set).await
        }
    };
    let _ = queued.send(durable.is_ok());
    durable?.await
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
    seen: HashMap<DeviceKey, UnixMillis>,
    rule_states: Vec<(DeviceKey, String, vaka_core::rules::RuleState)>,
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
    for (device, at) in rec.seen {
        parts[device.shard(shards)].seen.insert(device, at);
    }
    for (device, rule, state) in rec.rule_states {
        parts[device.shard(shards)]
            .rule_states
            .push((device, rule, state));
    }
    parts
}

struct OpenAlarm {
    alarm: Alarm,
    next_audit: u32,
}

/// Someone waiting for a batch to become durable.
enum Waiter {
    Device(ReplyTx, Reply),
    Centre(CentreTx),
}

/// One batch as it is built: the time it was taken at, its write set, and what will be in flight
/// once the set goes to the store. Every handler adds to it; `send_batch` sends it.
pub(super) struct Batch {
    now: UnixMillis,
    set: WriteSet,
    inflight: InFlight,
    /// A cluster node's new device events, for its input log (empty on a single node).
    fresh: Vec<Event>,
    /// A cluster node's alarms this batch changed, as it leaves them, for its input log (so
    /// every other node keeps a replica; empty on a single node).
    changed: Vec<ChangedAlarm>,
}

/// A write set on its way to durability and who waits for it.
struct InFlight {
    seq: u64,
    waiters: Vec<Waiter>,
    keys: Vec<IdemKey>,
    /// Alarms this batch changed, to reload from the store if the commit fails.
    alarms: Vec<AlarmId>,
    /// Alarms this batch opened: durable (and their offers released) when it commits.
    opened: Vec<AlarmId>,
    /// Devices whose GPS record this batch wrote, to forget if the commit fails.
    gps: Vec<DeviceKey>,
    /// Devices whose rule states this batch wrote, to read back if the commit fails.
    rules: Vec<DeviceKey>,
    /// A cluster node's answers to devices' alarm-lane messages, told to the other nodes once
    /// the batch is stored (empty on a single node).
    answers: Vec<GivenAnswer>,
    events: u64,
    started: Instant,
}

struct LaneState {
    lane: Lane,
    inflight: VecDeque<InFlight>,
    commits: FuturesOrdered<BoxFuture<'static, Result<(), CommitError>>>,
    /// A cluster node's last batch: tells whether it was queued for the store, so the next batch
    /// queues after it, or fails with it (see [`commit_after_append`]).
    queued: Option<oneshot::Receiver<bool>>,
}

impl LaneState {
    fn new(lane: Lane) -> Self {
        Self {
            lane,
            inflight: VecDeque::new(),
            commits: FuturesOrdered::new(),
            queued: None,
        }
    }
}

pub(crate) struct Shard {
    id: usize,
    /// How many shards there are (which devices are this one's).
    shards: usize,
    cfg: RouterConfig,
    store: Store,
    dir: LiveDirectory,
    presence: Presence,
    clock: Clock,
    idem: Idempotency,
    /// Keys whose original is not yet durable: a resend must wait for that batch.
    pending: HashMap<IdemKey, u64>,
    /// Another node's answer (and its input's time) to a message whose own answer here is not
    /// yet durable: kept if this node's batch fails, else two alarms for one message, counted.
    answered_elsewhere_in_flight: HashMap<IdemKey, (Answer, i64)>,
    /// Other nodes' answers kept when this node's batch failed (in memory at once), written
    /// with the next batch so a restart keeps them too.
    followed_unstored: Vec<(IdemKey, Answer, i64)>,
    /// Resends waiting for an original in flight in the other lane (a device's test mode ended
    /// between the two), answered when that batch completes, whichever lane it is in.
    waiting_on: HashMap<u64, Vec<Waiter>>,
    alarms: HashMap<AlarmId, OpenAlarm>,
    by_device: HashMap<DeviceKey, Vec<AlarmId>>,
    /// Deadline timers of open alarms: (due, alarm). Rebuilt from the alarms at start-up; a
    /// deadline waiting for a centre's reconnect grace has a second entry at the grace's end.
    timers: BTreeSet<(UnixMillis, AlarmId)>,
    /// Centres that went away: (grace end, centre), when to escalate what they still hold.
    lost: BTreeSet<(UnixMillis, CentreId)>,
    /// Supervision: when each supervised device is to be called silent, both ways round.
    silence: BTreeSet<(UnixMillis, DeviceKey)>,
    silent_at: HashMap<DeviceKey, UnixMillis>,
    /// Silence deadlines that came due for devices another node owns (see `crate::Owners`).
    parked_silence: HashMap<DeviceKey, UnixMillis>,
    /// Silent alarms whose device was heard again (restoral sent once).
    restored: HashSet<AlarmId>,
    /// GPS filter and fence state of the devices that sent fixes.
    positions: Positions,
    /// Heartbeat intervals devices announced, in seconds (over the configured ones).
    intervals: HashMap<DeviceKey, u32>,
    /// Activity rule states and timers.
    rules: rules::Rules,
    next_seq: u64,
    /// No timer fires before this (a commit failed: see [`TIMERS_PAUSE_AFTER_FAILED_COMMIT_MS`]).
    timers_paused_until: UnixMillis,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        shards: usize,
        cfg: RouterConfig,
        store: Store,
        dir: LiveDirectory,
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
            shards,
            cfg,
            store,
            dir,
            presence,
            clock,
            idem,
            pending: HashMap::new(),
            answered_elsewhere_in_flight: HashMap::new(),
            followed_unstored: Vec::new(),
            waiting_on: HashMap::new(),
            alarms: HashMap::new(),
            by_device: HashMap::new(),
            timers: BTreeSet::new(),
            lost: BTreeSet::new(),
            silence: BTreeSet::new(),
            silent_at: HashMap::new(),
            parked_silence: HashMap::new(),
            restored: HashSet::new(),
            positions: Positions::default(),
            intervals: HashMap::new(),
            rules: rules::Rules::default(),
            next_seq: 0,
            timers_paused_until: UnixMillis::MIN,
        };
        match shard.store.heartbeat_intervals() {
            Ok(all) => shard
                .intervals
                .extend(all.into_iter().filter(|(d, _)| {
                    d.shard(shards) == id && shard.dir.load().device(d).is_some()
                })),
            Err(e) => tracing::error!(error = %e, "cannot read announced heartbeat intervals"),
        }
        for (alarm, next_audit) in state.alarms {
            shard.keep_alarm(alarm, next_audit);
        }
        shard.supervise_from_start(&state.seen);
        shard.rules_from_start(state.rule_states);
        shard
    }

    fn expire_positions(
        &mut self,
        device: DeviceKey,
        before: UnixMillis,
        reply: CentreTx,
        b: &mut Batch,
    ) {
        match self
            .positions
            .expire(&self.store, &device, before, &mut b.set)
        {
            Ok(true) => {
                b.inflight.gps.push(device);
                b.inflight.waiters.push(Waiter::Centre(reply));
            }
            Ok(false) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(InputError::Store(e.to_string())));
            }
        }
    }

    /// Keeps the shard's view of an alarm (and its deadline timer) in step with its new state.
    fn keep_alarm(&mut self, alarm: Alarm, next_audit: u32) {
        let id = alarm.id;
        if !alarm.is_open() {
            self.let_go(id);
            return;
        }
        if let Some(old) = self.alarms.get(&id).and_then(|o| o.alarm.deadline) {
            self.timers.remove(&(old.at_ms, id));
        }
        if let Some(d) = alarm.deadline {
            self.timers.insert((d.at_ms, id));
        }
        let ids = self.by_device.entry(alarm.device.clone()).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        self.alarms.insert(id, OpenAlarm { alarm, next_audit });
    }

    /// Forgets open alarm `id` and its deadline (it ended, or another node holds it now).
    fn let_go(&mut self, id: AlarmId) {
        let Some(open) = self.alarms.remove(&id) else {
            return;
        };
        if let Some(d) = open.alarm.deadline {
            self.timers.remove(&(d.at_ms, id));
        }
        if let Some(ids) = self.by_device.get_mut(&open.alarm.device) {
            ids.retain(|a| *a != id);
            if ids.is_empty() {
                self.by_device.remove(&open.alarm.device);
            }
        }
    }

    /// How often a lingering shard looks whether a whole telemetry batch waits.
    const LINGER_LOOK: Duration = Duration::from_millis(5);

    pub(crate) async fn run(
        mut self,
        alarm_rx: flume::Receiver<Command>,
        telemetry_rx: flume::Receiver<Command>,
    ) {
        let mut alarm = LaneState::new(Lane::Alarm);
        let mut telemetry = LaneState::new(Lane::Telemetry);
        let max = self.cfg.max_inflight.max(1);
        let mut stopping = false;
        // A cluster node takes a telemetry batch no sooner than the linger after the last one,
        // so its inputs (one per partition per batch) group what came meanwhile.
        let linger = self.cfg.telemetry_linger;
        let mut telemetry_from = tokio::time::Instant::now();
        // A cluster node that gains partitions fires what it held back for their devices.
        let mut gained = self.cfg.owners.gained();
        tracing::debug!(shard = self.id, alarms = self.alarms.len(), "shard started");
        loop {
            let next_due = [
                self.timers.first().map(|t| t.0),
                self.silence.first().map(|t| t.0),
                self.lost.first().map(|t| t.0),
                self.rules.next_due(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(self.timers_paused_until));
            let next_timer = next_due.map(|at| self.clock.instant_at(at));
            tokio::select! {
                biased;
                Some(r) = alarm.commits.next(), if !alarm.commits.is_empty() => {
                    self.complete(&mut alarm, r);
                }
                Some(r) = telemetry.commits.next(), if !telemetry.commits.is_empty() => {
                    self.complete(&mut telemetry, r);
                }
                _ = sleep_until(next_timer), if next_timer.is_some() && alarm.inflight.len() < max => {
                    self.fire_deadlines(&mut alarm);
                }
                Ok(()) = async { gained.as_mut().expect("guarded").changed().await }, if gained.is_some() => {
                    self.unpark_silence();
                    self.unpark_rules();
                }
                m = alarm_rx.recv_async(), if alarm.inflight.len() < max => {
                    match m {
                        Ok(m) => stopping |= self.take_batch(&mut alarm, m, &alarm_rx),
                        // The router is gone (a test that panicked): end rather than spin.
                        Err(_) => stopping = true,
                    }
                }
                // Lingering: woken at its end, and now and then to see whether a whole batch
                // waits already (then the linger would only cap the rate).
                _ = tokio::time::sleep_until(telemetry_from.min(tokio::time::Instant::now() + Self::LINGER_LOOK)),
                    if telemetry_from > tokio::time::Instant::now() => {}
                m = telemetry_rx.recv_async(), if !stopping && telemetry.inflight.len() < max
                    && (telemetry_from <= tokio::time::Instant::now()
                        || telemetry_rx.len() >= self.cfg.max_batch) => {
                    match m {
                        Ok(m) => {
                            stopping |= self.take_batch(&mut telemetry, m, &telemetry_rx);
                            telemetry_from = tokio::time::Instant::now() + linger;
                        }
                        Err(_) => stopping = true,
                    }
                }
                else => break,
            }
            if stopping && alarm_rx.is_empty() && telemetry_rx.is_empty() {
                break;
            }
        }
        // Drain: whatever is still queued is processed, then every commit is awaited and answered.
        while let Ok(m) = alarm_rx.try_recv() {
            self.take_batch(&mut alarm, m, &alarm_rx);
        }
        while let Ok(m) = telemetry_rx.try_recv() {
            self.take_batch(&mut telemetry, m, &telemetry_rx);
        }
        for lane in [&mut alarm, &mut telemetry] {
            while let Some(r) = lane.commits.next().await {
                self.complete(lane, r);
            }
        }
        tracing::debug!(shard = self.id, "shard stopped");
    }

    /// A new batch taken at `now`: empty write set, nobody waiting yet.
    fn new_batch(&mut self, now: UnixMillis) -> Batch {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut set = WriteSet::new();
        for (key, answer, at) in self.followed_unstored.drain(..) {
            set.put_idem(&key, answer, at);
        }
        Batch {
            now,
            set,
            fresh: Vec::new(),
            changed: Vec::new(),
            inflight: InFlight {
                seq,
                waiters: Vec::new(),
                keys: Vec::new(),
                alarms: Vec::new(),
                opened: Vec::new(),
                gps: Vec::new(),
                rules: Vec::new(),
                answers: Vec::new(),
                events: 0,
                started: Instant::now(),
            },
        }
    }

    /// Hands a batch's writes to the store; its waiters are answered in `complete`.
    fn send_batch(&mut self, lane: &mut LaneState, b: Batch) {
        let Batch {
            set,
            mut inflight,
            fresh,
            changed,
            ..
        } = b;
        if set.is_empty() {
            // Nothing to make durable (e.g. only rejections, or resends of durable originals).
            for w in inflight.waiters.drain(..) {
                answer(w, Ok(()));
            }
            return;
        }
        inflight.events = u64::from(set.events);
        let commit: BoxFuture<'static, _> = match &self.cfg.intake {
            None => Box::pin(self.store.commit(lane.lane, set)),
            Some(intake) => {
                let appended = (!fresh.is_empty() || !changed.is_empty())
                    .then(|| intake.0.append(lane.lane, fresh, changed));
                let (queued, next_waits_on) = oneshot::channel();
                let after = lane.queued.replace(next_waits_on);
                let store = self.store.clone();
                Box::pin(commit_after_append(
                    store, lane.lane, set, appended, after, queued,
                ))
            }
        };
        lane.commits.push_back(commit);
        lane.inflight.push_back(inflight);
    }

    /// Takes `first` and whatever else waits in the lane (up to the batch size) into one write set.
    /// Returns true if a stop was seen.
    fn take_batch(
        &mut self,
        lane: &mut LaneState,
        first: Command,
        rx: &flume::Receiver<Command>,
    ) -> bool {
        let now = self.clock.now_ms();
        let mut b = self.new_batch(now);
        let mut stop = false;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(msg) = next.take() {
            match msg {
                Command::Event(ev, tx) => self.handle(lane, *ev, Some(tx), &mut b),
                Command::Input {
                    alarm,
                    input,
                    reply,
                } => self.handle_input(alarm, input, reply, &mut b),
                Command::CentreUp(c) => self.centre_up(&c, &mut b),
                Command::CentreDown(c) => self.centre_down(&c, &mut b),
                Command::Interval {
                    device,
                    secs,
                    reply,
                } => self.set_interval(device, secs, reply, &mut b),
                Command::ExpirePositions {
                    device,
                    before,
                    reply,
                } => self.expire_positions(device, before, reply, &mut b),
                Command::Directory(devices) => {
                    self.directory_changed(&devices, now);
                    self.rules_changed(&devices, &mut b);
                    // A removed device's GPS record leaves memory: its stored data may be
                    // erased next, and a device added again under its id starts afresh.
                    let dir = self.dir.load();
                    for gone in devices.iter().filter(|d| dir.device(d).is_none()) {
                        self.positions.forget(gone);
                    }
                }
                Command::Followed(events, taken) => {
                    for (id, ev) in events {
                        self.followed(lane, id, ev, &mut b);
                    }
                    let _ = taken.send(());
                }
                Command::Adopt(replicas) => {
                    for r in replicas {
                        self.adopt(r, &mut b);
                    }
                }
                Command::Replicated(replicas) => {
                    for r in replicas {
                        self.replicated(r, &mut b);
                    }
                }
                Command::AnsweredElsewhere(answers) => {
                    for (given, at) in answers {
                        self.answered_elsewhere(given, at, &mut b);
                    }
                }
                Command::Stop => stop = true,
            }
            taken += 1;
            if taken < self.cfg.max_batch {
                next = rx.try_recv().ok();
            }
        }
        for gone in self.idem.expire(now) {
            b.set.delete_idem(&gone);
        }
        self.send_batch(lane, b);
        stop
    }

    fn context<'a>(
        &self,
        chain: &'a [CentreId],
        reachable: &'a [bool],
        centre_deadlines: &'a [CentreDeadlines],
        device: &DeviceKey,
        now: UnixMillis,
    ) -> Context<'a> {
        Context {
            chain,
            reachable,
            deadlines: self.dir.load().deadlines(device),
            centre_deadlines,
            now,
        }
    }

    /// `decide` run with the `Context` of `chain` now: which of its centres are reachable and
    /// their own deadlines, beside the device's.
    fn with_context<T>(
        &self,
        chain: &[CentreId],
        device: &DeviceKey,
        now: UnixMillis,
        decide: impl FnOnce(&Context<'_>) -> T,
    ) -> T {
        let reachable = self.presence.reachable(chain);
        let own = self.dir.load().centre_deadlines(chain);
        decide(&self.context(chain, &reachable, &own, device, now))
    }

    /// One event into the write set. `reply` is the device waiting for the answer; `None` for
    /// an engine-made event (silence, geofence), whose outcome is the alarm itself.
    fn handle(&mut self, lane: &mut LaneState, ev: Event, reply: Option<ReplyTx>, b: &mut Batch) {
        if self.dir.load().device(&ev.device).is_none() {
            if let Some(tx) = reply {
                let _ = tx.send(Ok(Reply::Rejected {
                    reason: format!("unknown device {}", ev.device),
                }));
            }
            metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "unknown_device")
                .increment(1);
            return;
        }
        if !ev.kind.is_engine_made() {
            self.heard(&ev.device, b);
        }
        let family = vaka_core::directory::event_family(&ev.kind);
        let chain = self.dir.load().chain_for(&ev.device, family).to_vec();
        let reachable = self.presence.reachable(&chain);
        let centre_available = reachable.iter().any(|r| *r);
        let idem_key = (ev.lane() == Lane::Alarm).then(|| IdemKey {
            device: ev.device.clone(),
            key: ev.key.clone(),
        });
        if let Some(key) = &idem_key {
            if let Some(answer) = self.idem.get(key, b.now) {
                let duplicate = Reply::Accepted {
                    event: answer.event,
                    alarm: answer.alarm,
                    duplicate: true,
                    centre_available,
                };
                metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "duplicate")
                    .increment(1);
                if let Some(tx) = reply {
                    self.reply_after_original(lane, key, tx, duplicate, &mut b.inflight);
                }
                return;
            }
        }
        let id = self.store.allocate_id();
        let gps = match self.observe_fix(&ev, id, b) {
            Ok(gps) => gps,
            Err(reason) => {
                // Telemetry only (an alarm is never refused for its fix): the device resends.
                if let Some(tx) = reply {
                    let _ = tx.send(Err(SubmitError::Store(reason)));
                }
                return;
            }
        };
        let own = self.dir.load().centre_deadlines(&chain);
        let ctx = self.context(&chain, &reachable, &own, &ev.device, b.now);
        // A test alarm (device or tenant on test) never repeats, cancels or restores a real one,
        // nor a real alarm a test: each only meets open alarms of its own sort.
        let test = self.dir.load().is_test(&ev, b.now);
        let open = self.open_alarms(&ev.device, test);
        let outcome = intake(&ev, id, open, &ctx).map(|mut o| {
            if let Outcome::Opened { alarm, .. } = &mut o {
                alarm.test = test;
            }
            o
        });
        b.set.put_event(id, &ev);
        // A cluster node appends what devices sent, its calls of a device silent and the
        // alarms its rules fired: the other nodes then hold back no deadline or timer of their
        // own for them (no second alarm when one of them takes the partition over).
        let told = matches!(
            ev.kind,
            EventKind::Silent | EventKind::Rule { fired: true, .. }
        );
        if self.cfg.intake.is_some() && (!ev.kind.is_engine_made() || told) {
            b.fresh.push(ev.clone());
        }
        if !ev.kind.is_engine_made() {
            self.rules_on_event(lane, &ev, id, true, b);
        }
        let alarm_id = match outcome {
            Ok(Outcome::Opened { alarm, effects }) | Ok(Outcome::Changed { alarm, effects }) => {
                let id = alarm.id;
                self.apply(alarm, &effects, b);
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
            b.set.put_idem(&key, answer, b.now);
            self.idem.record(key.clone(), answer, b.now);
            self.pending.insert(key.clone(), b.inflight.seq);
            if self.cfg.intake.is_some() {
                b.inflight.answers.push(GivenAnswer {
                    key: key.clone(),
                    answer,
                });
            }
            b.inflight.keys.push(key);
        }
        let duplicate_fix = ev.kind == EventKind::Position
            && gps
                .as_ref()
                .is_some_and(|(o, _)| o.verdict == Verdict::Reject(FilterReason::Duplicate));
        if let Some(tx) = reply {
            b.inflight.waiters.push(Waiter::Device(
                tx,
                Reply::Accepted {
                    event: id,
                    alarm: alarm_id,
                    duplicate: duplicate_fix,
                    centre_available,
                },
            ));
        }
        // Confirmed geofence exits and re-entries become engine-made alarm events, handled like
        // any other in this same write b.set (so they are durable with the fix that decided them).
        if let Some((observed, fix)) = gps {
            for fe in observed.fences {
                let event = positions::fence_event(&ev.device, &fe.fence, fe.exit, &fix, b.now);
                tracing::info!(device = %ev.device, fence = %fe.fence, exit = fe.exit, "geofence transition");
                self.handle(lane, event, None, b);
            }
        }
    }

    /// An event another node took: the device was heard when that node stamped it, its fix
    /// goes through the device's filters and fences (its position history, latest position
    /// and fence state are every node's), and its activity rules step. An alarm the event
    /// makes (a fence crossed, a rule fired) is that node's to make, as the alarms of its own
    /// events are.
    fn followed(&mut self, lane: &mut LaneState, id: vaka_core::EventId, ev: Event, b: &mut Batch) {
        if self.dir.load().device(&ev.device).is_none() {
            return;
        }
        match &ev.kind {
            EventKind::Silent => return self.silent_elsewhere(&ev.device),
            EventKind::Rule {
                code, fired: true, ..
            } => return self.rule_fired_elsewhere(&ev.device, code, b),
            k if k.is_engine_made() => return,
            _ => {}
        }
        self.heard_elsewhere(&ev.device, ev.received_ms, b);
        // A GPS state that cannot be read is logged there; the event is stored all the same.
        let _fences_crossed_elsewhere = self.observe_fix(&ev, id, b);
        self.rules_on_event(lane, &ev, id, false, b);
        self.ended_elsewhere(&ev, id, b);
    }

    /// The device's open alarms this node holds, of the event's sort (a test alarm only meets
    /// test alarms, a real one real ones).
    fn open_alarms(&self, device: &DeviceKey, test: bool) -> Vec<&Alarm> {
        self.by_device
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|id| self.alarms.get(id).map(|o| &o.alarm))
            .filter(|a| a.test == test)
            .collect()
    }

    /// A device's reset or restoral that another node took (the device fell back to its
    /// second receiver) cancels or restores the alarm this node holds, where its centre is
    /// told: the other node holds no such alarm, so it stored the message and could do
    /// nothing with it. Neither opens an alarm, so no node makes one of it. Not when this node
    /// took the same message itself (its own answer is in the window).
    fn ended_elsewhere(&mut self, ev: &Event, id: vaka_core::EventId, b: &mut Batch) {
        if !matches!(
            ev.kind,
            EventKind::Reset { .. } | EventKind::Technical { restoral: true, .. }
        ) {
            return;
        }
        let key = IdemKey {
            device: ev.device.clone(),
            key: ev.key.clone(),
        };
        let own_range = |a: Answer| a.event.0 >> vaka_core::ids::ID_RANGE_BITS == self.cfg.id_range;
        if self.idem.get(&key, b.now).is_some_and(own_range) {
            return;
        }
        let test = self.dir.load().is_test(ev, b.now);
        let open = self.open_alarms(&ev.device, test);
        if open.is_empty() {
            return;
        }
        let family = vaka_core::directory::event_family(&ev.kind);
        let chain = self.dir.load().chain_for(&ev.device, family).to_vec();
        let outcome = self.with_context(&chain, &ev.device, b.now, |ctx| intake(ev, id, open, ctx));
        match outcome {
            Ok(Outcome::Changed { alarm, effects }) => {
                tracing::info!(alarm = %alarm.id, device = %ev.device, "cluster: a device's reset or restoral taken by another node applied to the alarm held here");
                metrics::counter!("vaka_cluster_alarms_ended_elsewhere_total").increment(1);
                self.apply(alarm, &effects, b);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(device = %ev.device, error = %e, "another node's event did not change the alarm held here")
            }
        }
    }

    /// The event's fix through the device's filters and fences (device-sent events only).
    /// `Err` (with the reason) only for a telemetry event whose GPS state cannot be read: an
    /// alarm goes on without its fix being judged, never refused for it.
    fn observe_fix(
        &mut self,
        ev: &Event,
        id: vaka_core::EventId,
        b: &mut Batch,
    ) -> Result<Option<(Observed, Fix)>, String> {
        let Some(fix) = ev.fix.filter(|_| !ev.kind.is_engine_made()) else {
            return Ok(None);
        };
        match self.positions.observe(
            &self.store,
            &self.dir.load().gps,
            ev,
            id,
            &fix,
            b.now,
            &mut b.set,
        ) {
            Ok(o) => {
                b.inflight.gps.push(ev.device.clone());
                Ok(Some((o, fix)))
            }
            Err(e) => {
                tracing::error!(device = %ev.device, error = %e, "cannot read the device's GPS state");
                metrics::counter!("vaka_errors_total", "stage" => "gps").increment(1);
                if ev.lane() == Lane::Alarm {
                    Ok(None)
                } else {
                    Err(format!("GPS state unreadable: {e}"))
                }
            }
        }
    }

    /// Runs one input through the alarm's state machine and keeps the result.
    fn transition(
        &mut self,
        id: AlarmId,
        input: &AlarmInput,
        b: &mut Batch,
    ) -> Result<(), InputError> {
        let open = self.alarms.get(&id).ok_or(InputError::NotFound(id))?;
        let chain = self.dir.load().alarm_chain(&open.alarm).to_vec();
        let stepped = self.with_context(&chain, &open.alarm.device, b.now, |ctx| {
            alarm::step(&open.alarm, input, ctx)
        });
        let (alarm, effects) = stepped.map_err(|e| match e {
            TransitionError::NotHolder { .. } => InputError::NotHolder(id),
            other => InputError::Invalid(other.to_string()),
        })?;
        if alarm != open.alarm || !effects.is_empty() {
            self.apply(alarm, &effects, b);
        }
        Ok(())
    }

    fn handle_input(&mut self, id: AlarmId, input: AlarmInput, reply: CentreTx, b: &mut Batch) {
        match self.transition(id, &input, b) {
            Ok(()) => b.inflight.waiters.push(Waiter::Centre(reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Offers a newly reachable centre the pending and unhandled alarms whose chain names it.
    fn centre_up(&mut self, centre: &CentreId, b: &mut Batch) {
        let dir = self.dir.load();
        let waiting: Vec<AlarmId> = self
            .alarms
            .values()
            .filter(|o| matches!(o.alarm.state, AlarmState::Pending | AlarmState::Unhandled))
            .filter(|o| dir.alarm_chain(&o.alarm).contains(centre))
            .map(|o| o.alarm.id)
            .collect();
        for id in waiting {
            if let Err(e) = self.transition(id, &AlarmInput::Dispatch, b) {
                tracing::warn!(alarm = %id, error = %e, "dispatch on centre connect failed");
            }
        }
    }

    /// A centre went away: what it held but no operator had accepted is escalated when its
    /// reconnect grace ends without it coming back (at once with no grace).
    fn centre_down(&mut self, centre: &CentreId, b: &mut Batch) {
        // Checked b.now: back already, still within its grace (counted from when it left, not
        // from when this shard heard of it), or gone.
        self.lost.insert((b.now, centre.clone()));
        self.check_lost(b);
    }

    /// Escalates what the centres whose grace has ended still hold; a centre back by then keeps
    /// its alarms, one away again keeps waiting for its newer grace.
    fn check_lost(&mut self, b: &mut Batch) {
        while let Some((at, centre)) = self.lost.first().cloned() {
            if at > b.now {
                break;
            }
            self.lost.remove(&(at, centre.clone()));
            if self.presence.is_reachable(&centre) {
                continue; // back within its grace
            }
            if let Some(back_by) = self.back_by(std::slice::from_ref(&centre))[0] {
                if back_by > b.now {
                    // Still within its grace (or it came back and went again: a newer one).
                    self.lost.insert((back_by, centre));
                    continue;
                }
            }
            let held: Vec<AlarmId> = self
                .alarms
                .values()
                .filter(|o| {
                    matches!(&o.alarm.state, AlarmState::Offered { centre: c } | AlarmState::Receipted { centre: c } if *c == centre)
                })
                .map(|o| o.alarm.id)
                .collect();
            let input = AlarmInput::CentreLost {
                centre: centre.clone(),
            };
            for id in held {
                if let Some(until) = self.escalation_waits(id, b.now) {
                    self.lost.insert((until, centre.clone()));
                    continue;
                }
                if let Err(e) = self.transition(id, &input, b) {
                    tracing::warn!(alarm = %id, error = %e, "escalation on centre loss failed");
                }
            }
        }
    }

    /// When each centre of `chain` may still come back by (its reconnect grace), if it is away.
    fn back_by(&self, chain: &[CentreId]) -> Vec<Option<UnixMillis>> {
        self.presence
            .away_since(chain)
            .into_iter()
            .map(|away| away.map(|at| self.clock.ms_at(at) + self.cfg.reconnect_grace_ms))
            .collect()
    }

    /// Whether escalating alarm `id` now would pass a centre still within its reconnect grace,
    /// and until when to wait for it (invariant 11).
    fn escalation_waits(&self, id: AlarmId, now: UnixMillis) -> Option<UnixMillis> {
        let open = self.alarms.get(&id)?;
        let dir = self.dir.load();
        let chain = dir.alarm_chain(&open.alarm);
        let until = self.with_context(chain, &open.alarm.device, now, |ctx| {
            alarm::escalation_waits_until(&open.alarm, ctx, &self.back_by(chain))
        })?;
        metrics::counter!("vaka_escalations_deferred_total", "reason" => "reconnect_grace")
            .increment(1);
        tracing::debug!(alarm = %id, until, "escalation waits for a centre's reconnect grace");
        Some(until)
    }

    /// Every deadline that is due fires, in one batch on the alarm lane.
    fn fire_deadlines(&mut self, lane: &mut LaneState) {
        let now = self.clock.now_ms();
        let mut b = self.new_batch(now);
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            let Some(deadline) = self.alarms.get(&id).and_then(|o| o.alarm.deadline) else {
                continue;
            };
            if deadline.at_ms > now {
                continue; // a grace wait outlived by a newer deadline, which has its own timer
            }
            let kind = deadline.kind;
            if let Some(until) = self.escalation_waits(id, now) {
                self.timers.insert((until, id));
                continue;
            }
            // Test alarms (canaries, devices on test) expire instead: not a real alarm's miss.
            if self.alarms.get(&id).is_some_and(|o| o.alarm.test) {
                metrics::counter!("vaka_test_alarms_expired_total").increment(1);
            } else {
                metrics::counter!("vaka_deadlines_missed_total").increment(1);
            }
            if let Err(e) = self.transition(id, &AlarmInput::DeadlineExpired { kind }, &mut b) {
                tracing::warn!(alarm = %id, error = %e, "deadline could not be applied");
            }
        }
        self.check_lost(&mut b);
        self.fire_silence(&mut b, lane);
        self.fire_rules(&mut b, lane);
        self.send_batch(lane, b);
    }

    fn reload_alarm(&mut self, id: AlarmId) {
        let next_audit = self.alarms.get(&id).map_or(0, |o| o.next_audit);
        match self.store.alarm(id) {
            Ok(Some(alarm)) => self.keep_alarm(alarm, next_audit),
            Ok(None) => {
                if let Some(o) = self.alarms.get(&id) {
                    let mut gone = o.alarm.clone();
                    gone.state = AlarmState::Cancelled;
                    self.keep_alarm(gone, next_audit);
                }
            }
            Err(e) => {
                tracing::error!(alarm = %id, error = %e, "cannot reload alarm after failed commit")
            }
        }
    }

    /// Writes the alarm, its audit records and its centres' notices, and keeps the shard's view.
    fn apply(&mut self, alarm: Alarm, effects: &[Effect], b: &mut Batch) {
        let before = self.alarms.get(&alarm.id).map(|o| o.alarm.stages);
        match before {
            Some(before) => stages::record_reached(&before, &alarm),
            // Opened here: its durable and offered stages are known when the batch commits.
            None if !b.inflight.opened.contains(&alarm.id) => b.inflight.opened.push(alarm.id),
            None => {}
        }
        let mut next_audit = self.alarms.get(&alarm.id).map_or(0, |o| o.next_audit);
        for fx in effects {
            match fx {
                Effect::Audit(rec) => {
                    if rec.action == "escalated" {
                        metrics::counter!("vaka_escalations_total", "tenant" => alarm.device.tenant.0.clone())
                            .increment(1);
                    }
                    b.set.put_audit(next_audit, rec);
                    next_audit += 1;
                }
                Effect::Offer { centre, unhandled } => b.set.push_notice(
                    centre,
                    &Notice::Offer {
                        alarm: alarm.clone(),
                        unhandled: *unhandled,
                    },
                ),
                Effect::Update { centre, update } => b.set.push_notice(
                    centre,
                    &Notice::Update {
                        alarm: alarm.clone(),
                        update: update.clone(),
                    },
                ),
                Effect::Unhandled => {
                    tracing::error!(alarm = %alarm.id, device = %alarm.device, "alarm unhandled: whole chain failed");
                    metrics::counter!("vaka_alarms_unhandled_total").increment(1);
                }
                // The timer follows `alarm.deadline` in keep_alarm.
                Effect::ArmDeadline(_) | Effect::ClearDeadline => {}
            }
        }
        b.set.put_alarm(&alarm);
        if !b.inflight.alarms.contains(&alarm.id) {
            b.inflight.alarms.push(alarm.id);
        }
        if self.cfg.intake.is_some() {
            let record = ChangedAlarm {
                version: next_audit,
                alarm: alarm.clone(),
            };
            match b.changed.iter_mut().find(|c| c.alarm.id == alarm.id) {
                Some(earlier) => *earlier = record,
                None => b.changed.push(record),
            }
        }
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
        let waiter = Waiter::Device(tx, reply);
        match self.pending.get(key) {
            Some(seq) if *seq != batch.seq => {
                match lane.inflight.iter_mut().find(|b| b.seq == *seq) {
                    Some(b) => b.waiters.push(waiter),
                    // In flight in the other lane: answered when that batch completes.
                    None => self.waiting_on.entry(*seq).or_default().push(waiter),
                }
            }
            Some(_) => batch.waiters.push(waiter),
            None => answer(waiter, Ok(())),
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
        match &result {
            Ok(()) => {
                let now = self.clock.now_ms();
                for id in &batch.opened {
                    if let Some(o) = self.alarms.get_mut(id) {
                        stages::durable(&mut o.alarm, now);
                    }
                }
                metrics::counter!("vaka_events_sent_total", "stage" => "router", "lane" => label)
                    .increment(batch.events);
                metrics::histogram!("vaka_router_durable_seconds", "lane" => label)
                    .record(batch.started.elapsed().as_secs_f64());
                if let (Some(intake), false) = (&self.cfg.intake, batch.answers.is_empty()) {
                    intake.0.answered(batch.answers);
                }
                for key in &batch.keys {
                    if let Some((elsewhere, _)) = self.answered_elsewhere_in_flight.remove(key) {
                        self.answered_twice(key, elsewhere, now);
                    }
                }
            }
            Err(_) => {
                metrics::counter!("vaka_errors_total", "stage" => "router", "lane" => label)
                    .increment(1);
                // Batches built from now on start a new chain: they are built on the state
                // this failure leaves, not on the failed batch's (cluster node only).
                lane.queued = None;
                self.timers_paused_until =
                    self.clock.now_ms() + TIMERS_PAUSE_AFTER_FAILED_COMMIT_MS;
                // Nothing of this batch is durable: forget what memory already believes, so a
                // resend is taken afresh and alarms match the store again.
                for key in &batch.keys {
                    self.idem.forget(key);
                    if let Some((elsewhere, at)) = self.answered_elsewhere_in_flight.remove(key) {
                        self.follow_answer(key.clone(), elsewhere, at);
                        self.followed_unstored.push((key.clone(), elsewhere, at));
                    }
                }
                for id in &batch.alarms {
                    self.reload_alarm(*id);
                }
                for device in &batch.gps {
                    self.positions.forget(device);
                }
                for device in &batch.rules {
                    self.reload_rules(device);
                }
            }
        }
        let result = result.map_err(|e| e.to_string());
        let other_lane = self.waiting_on.remove(&batch.seq).unwrap_or_default();
        for w in batch.waiters.into_iter().chain(other_lane) {
            answer(w, result.clone());
        }
    }
}

fn answer(w: Waiter, result: Result<(), String>) {
    match (w, result) {
        (Waiter::Device(tx, reply), Ok(())) => {
            let _ = tx.send(Ok(reply));
        }
        (Waiter::Device(tx, _), Err(e)) => {
            let _ = tx.send(Err(SubmitError::Store(e)));
        }
        (Waiter::Centre(tx), r) => {
            let _ = tx.send(r.map_err(InputError::Store));
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
