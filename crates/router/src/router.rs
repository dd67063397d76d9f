//! The router's public face: submit an event, get a future that resolves once it is durable.
use crate::admission::Admission;
use crate::api::{InputError, Reply, ReplyTx, RouterConfig, SubmitError};
use crate::clock::Clock;
use crate::live::LiveDirectory;
use crate::presence::Presence;
use crate::shard::{self, Command};
use futures::channel::oneshot;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use vaka_core::admission::Verdict;
use vaka_core::alarm::AlarmInput;
use vaka_core::idempotency::GivenAnswer;
use vaka_core::{AlarmId, CentreId, DeviceKey, Event, Lane, UnixMillis};
use vaka_store::{Recovered, Store};

struct Lanes {
    alarm: flume::Sender<Command>,
    telemetry: flume::Sender<Command>,
}

pub struct Router {
    lanes: Vec<Lanes>,
    closed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    presence: Presence,
    supervision_grace_ms: i64,
    /// To tell test alarms (device or tenant on test, test calls), which ride the lane below
    /// real alarms, and each tenant's admission limits.
    directory: LiveDirectory,
    clock: Clock,
    admission: Admission,
    alarm_queue: usize,
    telemetry_queue: usize,
}

impl Router {
    /// Starts the shards on the current tokio runtime, handing each the recovered state it owns.
    pub fn start(
        cfg: RouterConfig,
        store: Store,
        recovered: Recovered,
        directory: impl Into<LiveDirectory>,
        presence: Presence,
        clock: Clock,
    ) -> Arc<Router> {
        let directory = directory.into();
        let n = cfg.shards.max(1);
        let mut parts = shard::split_recovered(recovered, n);
        let mut lanes = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for (i, part) in parts.drain(..).enumerate() {
            let (atx, arx) = flume::bounded(cfg.alarm_queue.max(1));
            let (ttx, trx) = flume::bounded(cfg.telemetry_queue.max(1));
            let shard = shard::Shard::new(
                i,
                n,
                cfg.clone(),
                store.clone(),
                directory.clone(),
                presence.clone(),
                clock,
                part,
            );
            tasks.push(tokio::spawn(shard.run(arx, trx)));
            lanes.push(Lanes {
                alarm: atx,
                telemetry: ttx,
            });
        }
        Arc::new(Router {
            lanes,
            closed: AtomicBool::new(false),
            tasks: Mutex::new(tasks),
            presence,
            supervision_grace_ms: cfg.supervision_grace_ms,
            directory,
            clock,
            admission: Admission::default(),
            alarm_queue: cfg.alarm_queue.max(1),
            telemetry_queue: cfg.telemetry_queue.max(1),
        })
    }

    pub fn shards(&self) -> usize {
        self.lanes.len()
    }

    /// Silence tolerated beyond a device's heartbeat interval (not for category supervision).
    pub fn supervision_grace_ms(&self) -> i64 {
        self.supervision_grace_ms
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Hands an event to its device's shard. Never waits for queue space: a full lane resolves at
    /// once to [`SubmitError::Busy`]. The future resolves once the event is durable.
    pub fn submit(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<Reply, SubmitError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let early = self.enqueue(event, tx);
        async move {
            early?;
            rx.await.unwrap_or(Err(SubmitError::ShuttingDown))
        }
    }

    fn enqueue(&self, event: Event, tx: ReplyTx) -> Result<(), SubmitError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        let dir = self.directory.load();
        let now = self.clock.now_ms();
        // A test alarm (its device or tenant on test, a test call) rides the telemetry lane,
        // below every real alarm (invariant 9), and is shed as busy first.
        let lane = if dir.is_test(&event, now) {
            Lane::Telemetry
        } else {
            event.lane()
        };
        let shard = &self.lanes[event.device.shard(self.lanes.len())];
        let sender = match lane {
            Lane::Alarm => &shard.alarm,
            Lane::Telemetry => &shard.telemetry,
        };
        let lane_label = shard::lane_label(lane);
        metrics::counter!("vaka_events_received_total", "stage" => "router", "lane" => lane_label)
            .increment(1);
        let capacity = match lane {
            Lane::Alarm => self.alarm_queue,
            Lane::Telemetry => self.telemetry_queue,
        };
        let tenant = &event.device.tenant;
        let limits = dir.admission(tenant);
        let verdict = self.admission.check(
            tenant,
            &limits,
            lane,
            &event.kind,
            sender.len(),
            capacity,
            now,
        );
        match verdict {
            Verdict::Admit => {}
            Verdict::Borrow => {
                metrics::counter!("vaka_admission_borrowed_total", "tenant" => tenant.to_string())
                    .increment(1);
            }
            Verdict::Busy => {
                metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "tenant_limit", "lane" => lane_label, "tenant" => tenant.to_string())
                    .increment(1);
                return Err(SubmitError::Busy);
            }
        }
        sender
            .try_send(Command::Event(Box::new(event), tx))
            .map_err(|e| match e {
                flume::TrySendError::Full(_) => {
                    metrics::counter!("vaka_events_discarded_total", "stage" => "router", "reason" => "busy", "lane" => lane_label)
                        .increment(1);
                    SubmitError::Busy
                }
                flume::TrySendError::Disconnected(_) => SubmitError::ShuttingDown,
            })
    }

    /// A centre acts on an alarm (receipt, accept, close, refuse). Resolves once the resulting
    /// state is durable. `device` is the alarm's device, as carried in the offer.
    pub fn centre_input(
        &self,
        device: &DeviceKey,
        alarm: AlarmId,
        input: AlarmInput,
    ) -> impl Future<Output = Result<(), InputError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let msg = Command::Input {
            alarm,
            input,
            reply,
        };
        self.ask_alarm_lane(device, msg, answer)
    }

    /// Hands the device's shard `msg` on its alarm lane (busy when that lane is full) and
    /// resolves with the shard's answer on `answer`, once durable.
    fn ask_alarm_lane(
        &self,
        device: &DeviceKey,
        msg: Command,
        answer: oneshot::Receiver<Result<(), InputError>>,
    ) -> impl Future<Output = Result<(), InputError>> + Send + 'static + use<> {
        let early = if self.closed.load(Ordering::Acquire) {
            Err(InputError::ShuttingDown)
        } else {
            self.lanes[device.shard(self.lanes.len())]
                .alarm
                .try_send(msg)
                .map_err(|e| match e {
                    flume::TrySendError::Full(_) => InputError::Busy,
                    flume::TrySendError::Disconnected(_) => InputError::ShuttingDown,
                })
        };
        async move {
            early?;
            answer.await.unwrap_or(Err(InputError::ShuttingDown))
        }
    }

    /// Retention (GDPR): the device's shard forgets its stored positions with a fix time before
    /// `before` (latest position, filter state). Goes by the telemetry lane and waits for room
    /// there, so a sweep never takes a place an alarm needs. Resolves once that is durable.
    pub async fn expire_positions(
        &self,
        device: &DeviceKey,
        before: UnixMillis,
    ) -> Result<(), InputError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(InputError::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        self.lanes[device.shard(self.lanes.len())]
            .telemetry
            .send_async(Command::ExpirePositions {
                device: device.clone(),
                before,
                reply: tx,
            })
            .await
            .map_err(|_| InputError::ShuttingDown)?;
        rx.await.unwrap_or(Err(InputError::ShuttingDown))
    }

    /// The device announced its heartbeat interval (SCAIP `hbi`): from now on (and across
    /// restarts) it is supervised with `secs` instead of its configured interval. Resolves once
    /// that is durable.
    pub fn heartbeat_interval(
        &self,
        device: &DeviceKey,
        secs: u32,
    ) -> impl Future<Output = Result<(), InputError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let msg = Command::Interval {
            device: device.clone(),
            secs,
            reply,
        };
        self.ask_alarm_lane(device, msg, answer)
    }

    /// A connection of `centre` opened: it is reachable, and every shard offers it the pending
    /// and unhandled alarms whose chain names it.
    pub async fn centre_up(&self, centre: &CentreId) {
        self.presence.connected(centre);
        self.broadcast(|| Command::CentreUp(centre.clone())).await;
    }

    /// A connection of `centre` closed. When it was the last, the centre is unreachable, and what
    /// it held unaccepted is escalated once its reconnect grace has passed without it coming
    /// back (invariants 4 and 11).
    pub async fn centre_down(&self, centre: &CentreId) {
        self.presence.disconnected(centre);
        if !self.presence.is_reachable(centre) {
            self.broadcast(|| Command::CentreDown(centre.clone())).await;
        }
    }

    /// We cut `centre` off (it stopped acknowledging): what it held goes elsewhere at once, with
    /// no reconnect grace.
    pub async fn centre_cut_off(&self, centre: &CentreId) {
        self.presence.cut_off(centre);
        if !self.presence.is_reachable(centre) {
            self.broadcast(|| Command::CentreDown(centre.clone())).await;
        }
    }

    /// The directory changed for `devices` (the new one is published already): shards start or
    /// stop supervising them. Waits for room in the alarm lanes, like other control messages.
    pub async fn directory_changed(&self, devices: Vec<DeviceKey>) {
        if devices.is_empty() {
            return;
        }
        let devices: Arc<[DeviceKey]> = devices.into();
        self.broadcast(|| Command::Directory(devices.clone())).await;
    }

    /// Events other cluster nodes took, stored by this node's follower under these ids: each
    /// device's shard counts it heard, runs its fix through the filters and fences and steps
    /// its activity rules, so supervision, positions and rules see every device's events on
    /// every node (`crate::Owners`); a call of a device silent drops this node's deadline for
    /// it. Each shard gets its devices' part over its telemetry lane, waiting for room (what
    /// other nodes took is history, never ahead of an alarm), and this returns once every
    /// shard has taken its part: a node about to take partitions over knows, when it has
    /// followed the stream to its end, that no deadline it holds was met elsewhere.
    pub async fn followed(&self, events: Vec<(vaka_core::EventId, Event)>) {
        if events.is_empty() || self.closed.load(Ordering::Acquire) {
            return;
        }
        let n = self.lanes.len();
        let mut per_shard: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        for item in events {
            per_shard[item.1.device.shard(n)].push(item);
        }
        let mut taken = Vec::new();
        for (lane, part) in self.lanes.iter().zip(per_shard) {
            if part.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if lane
                .telemetry
                .send_async(Command::Followed(part, tx))
                .await
                .is_ok()
            {
                taken.push(rx);
            }
        }
        for rx in taken {
            let _ = rx.await;
        }
    }

    /// Open alarms of cluster nodes that are gone (their replicas): each shard takes over
    /// those of its devices whose partitions this node owns (`Owners`), and leaves the rest.
    pub async fn adopt(&self, replicas: Vec<vaka_store::Replica>) {
        self.to_shards(replicas, |r| &r.alarm.device, Command::Adopt)
            .await;
    }

    /// Another node's latest records of alarms this node holds or held (its follower kept
    /// them as replicas): the later record wins, so one node holds each alarm.
    pub async fn replicated(&self, replicas: Vec<vaka_store::Replica>) {
        self.to_shards(replicas, |r| &r.alarm.device, Command::Replicated)
            .await;
    }

    /// What other nodes answered devices' alarm-lane messages (with when each input was
    /// stamped): a resend of one of them here is answered the same way.
    pub async fn answered_elsewhere(&self, answers: Vec<(GivenAnswer, UnixMillis)>) {
        self.to_shards(answers, |(g, _)| &g.key.device, Command::AnsweredElsewhere)
            .await;
    }

    /// Sends each shard its part of `items` (by device) on its alarm lane.
    async fn to_shards<T>(
        &self,
        items: Vec<T>,
        device: impl Fn(&T) -> &DeviceKey,
        command: fn(Vec<T>) -> Command,
    ) {
        if items.is_empty() || self.closed.load(Ordering::Acquire) {
            return;
        }
        let n = self.lanes.len();
        let mut per_shard: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
        for item in items {
            per_shard[device(&item).shard(n)].push(item);
        }
        for (lane, part) in self.lanes.iter().zip(per_shard) {
            if !part.is_empty() {
                let _ = lane.alarm.send_async(command(part)).await;
            }
        }
    }

    /// Control messages must not be lost: they wait for room in the alarm lane.
    async fn broadcast(&self, msg: impl Fn() -> Command) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        for lane in &self.lanes {
            let _ = lane.alarm.send_async(msg()).await;
        }
    }

    /// Events queued in every lane now (for metrics and the backpressure test).
    pub fn queued(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| l.alarm.len() + l.telemetry.len())
            .sum()
    }

    /// Stops taking events, lets every shard finish what it holds (all of it made durable and
    /// answered), and waits for the shards to end.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for lane in &self.lanes {
            let _ = lane.telemetry.send_async(Command::Stop).await;
        }
        let tasks: Vec<_> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}
