//! One simulated world: devices, centres and faults driven through the real `Router`, `Store`
//! and core on an in-memory disk, with tokio's clock paused so that time moves only when the
//! world says so.
//!
//! Determinism: the world runs on one thread (a current-thread runtime per engine life) except
//! for the store's committer, a thread of its own. Every step waits for every answer it caused
//! (and a barrier makes sure what the step set going, deadlines included, is durable) before the
//! next step is chosen, and choices depend only on the seed and on those answers, so a seed
//! plays the same world whatever the threads' timing. What timing can still change, and no
//! choice or check depends on: which write sets share one sync (so whether a set written while
//! the disk fails failed there or was refused by the failed store: the trace says only "store
//! error"), and where ids start after a crash (the store reserves ids in blocks from its live
//! counter when the committer takes a group; their order is kept). A crash drops the runtime
//! (every task with it) and the store; the committer finishes what it was handed, so a crash
//! either happens at rest or while the disk holds writes at its gate, which then fail: both
//! reproducible. After a failed write the store refuses commits until its recovery, retried
//! after 1 s of real time: the world then waits outside the runtime, its clock still.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use vaka_core::alarm::{AlarmInput, Notice};
use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::gps::Fix;
use vaka_core::{AlarmId, AlarmInfo, CentreId, DeviceKey, Event, EventId, EventKind, Lane};
use vaka_router::{Clock, InputError, Presence, Reply, Router, RouterConfig, SubmitError};
use vaka_store::testing::TestBackend;
use vaka_store::{Backend, GroupConfig, MemBackend, RecoverOptions, Store, StoreState};

use super::rng::Rng;

/// Wall time when the world begins.
pub const T0: i64 = 1_700_000_000_000;
/// Longer than any world lasts: every resend is recognised (the SCAIP HOLD window is 30 min).
const IDEM_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// A step whose answers take longer than this in real time has hung.
const HUNG: Duration = Duration::from_secs(10);
/// The supervised device's heartbeat interval.
const HEARTBEAT_SECS: u32 = 60;
const SUPERVISION_GRACE_MS: i64 = 10_000;
pub const CENTRES: [&str; 2] = ["c1", "c2"];

/// What a seed decides about the world before it starts.
#[derive(Clone, Debug)]
pub struct Params {
    pub devices: usize,
    pub steps: usize,
    pub shards: usize,
    pub alarm_queue: usize,
    pub telemetry_queue: usize,
    pub max_inflight: usize,
    pub reconnect_grace_ms: i64,
}

impl Params {
    pub fn from(rng: &mut Rng) -> Params {
        Params {
            devices: rng.range(2, 4) as usize,
            steps: rng.range(20, 50) as usize,
            shards: rng.range(1, 3) as usize,
            alarm_queue: rng.range(4, 16) as usize,
            telemetry_queue: rng.range(2, 8) as usize,
            max_inflight: rng.range(1, 3) as usize,
            reconnect_grace_ms: *rng.pick(&[0, 0, 2_000, 5_000]).expect("not empty"),
        }
    }
}

/// One engine run: its runtime (paused clock), store and router. Dropped whole at a crash.
struct Life {
    store: Store,
    router: Arc<Router>,
    clock: Clock,
    rt: tokio::runtime::Runtime,
}

/// What the world knows of a centre: what a real one would (its stream, its outbox cursor, the
/// alarms it was offered) and how it behaves.
pub struct CentreSim {
    pub id: CentreId,
    pub connected: bool,
    /// Since when it is away (wall ms): its disconnect, or the engine's start.
    pub away_since: i64,
    /// Whether it went away during this engine life (the router then escalates what it holds
    /// once its grace is over).
    pub left_this_life: bool,
    /// How often it acts on what it is offered, per cent (0: never answers).
    pub diligence: u64,
    cursor: u64,
    pub known: BTreeMap<AlarmId, DeviceKey>,
}

/// What a device was told for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub event: EventId,
    pub alarm: Option<AlarmId>,
}

pub struct World {
    rng: Rng,
    pub params: Params,
    pub disk: Arc<TestBackend>,
    dir: Directory,
    life: Option<Life>,
    /// Wall time the next life starts from (the last one's end).
    wall_ms: i64,
    pub devices: Vec<DeviceKey>,
    /// One device per shard whose messages serve as barriers.
    probes: Vec<DeviceKey>,
    pub centres: Vec<CentreSim>,
    /// Alarm-lane messages answered OK, by (device, key): the first answer.
    pub acked: HashMap<(DeviceKey, String), Acked>,
    /// Every event answered OK (telemetry included): must be durable.
    pub durable: BTreeSet<EventId>,
    /// Messages devices sent, for resends.
    sent: Vec<Event>,
    /// Keys of the alarms devices raised, for resets.
    alarm_keys: Vec<(DeviceKey, String)>,
    next_key: u64,
    pub trace: Vec<String>,
    pub stats: Stats,
    /// After a failed commit the shards hold their timers this long (wall ms): deadlines may be
    /// that late.
    pub timers_paused_until: i64,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub steps: u64,
    pub events: u64,
    pub acked: u64,
    pub busy: u64,
    pub store_errors: u64,
    pub crashes: u64,
    pub held_crashes: u64,
    pub failed_commits: u64,
    pub recoveries_waited: u64,
    pub centre_inputs: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.events += o.events;
        self.acked += o.acked;
        self.busy += o.busy;
        self.store_errors += o.store_errors;
        self.crashes += o.crashes;
        self.held_crashes += o.held_crashes;
        self.failed_commits += o.failed_commits;
        self.recoveries_waited += o.recoveries_waited;
        self.centre_inputs += o.centre_inputs;
    }
}

pub type Checked = Result<(), String>;

/// Polls `f` to completion on this runtime, yielding in between so the shards run and the
/// paused clock never advances by itself (an idle runtime would move it to the next timer);
/// gives up after [`HUNG`] of real time.
async fn settle<F: Future>(f: F) -> Result<F::Output, String> {
    let hung = std::time::Instant::now() + HUNG;
    let mut f = std::pin::pin!(f);
    for turn in 0u64.. {
        if let Poll::Ready(v) = futures::poll!(f.as_mut()) {
            return Ok(v);
        }
        if turn % 8 == 7 {
            // Waiting for the committer thread: let it have the core.
            std::thread::yield_now();
            if std::time::Instant::now() > hung {
                return Err(format!("no answer within {HUNG:?} of real time"));
            }
        }
        tokio::task::yield_now().await;
    }
    unreachable!("the loop ends by returning")
}

/// Lets the shards run for `n` turns of the runtime without waiting for anything.
async fn turns(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

fn device_shard(d: &DeviceKey, shards: usize) -> usize {
    d.shard(shards)
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let params = Params::from(&mut rng);
        let mut dir = Directory::default();
        dir.insert_tenant(Tenant::new("t", &CENTRES));
        for c in CENTRES {
            dir.insert_centre(Centre::new(c, &["t"]));
        }
        let mut devices = Vec::new();
        for i in 0..params.devices {
            let key = DeviceKey::new("t", format!("d{i}"));
            let mut d = Device::new(key.clone(), "0003");
            if i == 0 {
                // One supervised device: its silence raises an alarm of its own.
                d.heartbeat_secs = Some(HEARTBEAT_SECS);
            }
            dir.insert_device(d);
            devices.push(key);
        }
        let mut probes: Vec<Option<DeviceKey>> = vec![None; params.shards];
        for i in 0.. {
            if probes.iter().all(Option::is_some) {
                break;
            }
            let key = DeviceKey::new("t", format!("probe{i}"));
            let s = device_shard(&key, params.shards);
            if probes[s].is_none() {
                dir.insert_device(Device::new(key.clone(), "0003"));
                probes[s] = Some(key);
            }
        }
        let centres = CENTRES
            .iter()
            .map(|c| CentreSim {
                id: CentreId::new(*c),
                connected: false,
                away_since: T0,
                left_this_life: false,
                diligence: *rng.pick(&[0, 30, 70, 100]).expect("not empty"),
                cursor: 0,
                known: BTreeMap::new(),
            })
            .collect();
        let disk = TestBackend::new(Arc::new(MemBackend::new()));
        let mut w = World {
            rng,
            params,
            disk,
            dir,
            life: None,
            wall_ms: T0,
            devices,
            probes: probes
                .into_iter()
                .map(|p| p.expect("every shard"))
                .collect(),
            centres,
            acked: HashMap::new(),
            durable: BTreeSet::new(),
            sent: Vec::new(),
            alarm_keys: Vec::new(),
            next_key: 0,
            trace: Vec::new(),
            stats: Stats::default(),
            timers_paused_until: i64::MIN,
        };
        w.start();
        w
    }

    fn note(&mut self, s: String) {
        self.trace.push(s);
    }

    pub fn now_ms(&self) -> i64 {
        match &self.life {
            Some(l) => {
                let _g = l.rt.enter();
                l.clock.now_ms()
            }
            None => self.wall_ms,
        }
    }

    fn life(&self) -> &Life {
        self.life.as_ref().expect("the engine runs")
    }

    /// Starts an engine on what the disk holds, as a restart does.
    fn start(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let wall = self.wall_ms;
        let rc = RouterConfig {
            shards: self.params.shards,
            alarm_queue: self.params.alarm_queue,
            telemetry_queue: self.params.telemetry_queue,
            max_batch: 64,
            max_inflight: self.params.max_inflight,
            idempotency_window_ms: IDEM_WINDOW_MS,
            idempotency_capacity: 100_000,
            supervision_grace_ms: SUPERVISION_GRACE_MS,
            reconnect_grace_ms: self.params.reconnect_grace_ms,
            intake: None,
            telemetry_linger: std::time::Duration::ZERO,
            owners: vaka_router::Owners::all(),
            id_range: 0,
        };
        let backend: Arc<dyn Backend> = self.disk.clone();
        let dir = Arc::new(self.dir.clone());
        let (store, router, clock) = rt.block_on(async move {
            let clock = Clock::starting_at(wall);
            let (store, rec) = Store::open(
                backend,
                GroupConfig::default(),
                RecoverOptions {
                    now_ms: clock.now_ms(),
                    idem_window_ms: IDEM_WINDOW_MS,
                },
            )
            .expect("the store opens on what was synced");
            let router = Router::start(rc, store.clone(), rec, dir, Presence::new(), clock);
            (store, router, clock)
        });
        for c in &mut self.centres {
            c.connected = false;
            c.away_since = wall;
            c.left_this_life = false;
        }
        self.life = Some(Life {
            store,
            router,
            clock,
            rt,
        });
    }

    /// The process dies: every task and the store go; the committer finishes what it was handed
    /// (writes held at the disk's gate fail first when `lose_held`).
    fn crash(&mut self, lose_held: bool) {
        let Some(life) = self.life.take() else { return };
        self.wall_ms = {
            let _g = life.rt.enter();
            life.clock.now_ms()
        };
        if lose_held {
            self.disk.fail.store(true, Ordering::SeqCst);
        }
        self.disk.release();
        let Life {
            store, router, rt, ..
        } = life;
        drop(router);
        drop(rt);
        // The last handle: stops and joins the committer.
        drop(store);
        self.disk.fail.store(false, Ordering::SeqCst);
        self.stats.crashes += 1;
    }

    fn restart(&mut self, downtime_ms: i64) -> Checked {
        self.crash(false);
        self.wall_ms += downtime_ms;
        self.start();
        self.check_acked_durable()
    }

    fn new_key(&mut self) -> String {
        self.next_key += 1;
        format!("k{}", self.next_key)
    }

    fn event(&mut self, device: &DeviceKey, kind: EventKind) -> Event {
        Event {
            device: device.clone(),
            key: self.new_key(),
            received_ms: self.now_ms(),
            kind,
            fix: None,
            raw: b"<mrq/>".to_vec(),
            occurred_ms: None,
        }
    }

    fn alarm_event(&mut self, device: &DeviceKey) -> Event {
        let priority = self.rng.range(1, 5) as u8;
        let mut ev = self.event(
            device,
            EventKind::Alarm(AlarmInfo {
                code: "0010".into(),
                priority,
                text: None,
                callback: vec![],
            }),
        );
        if self.rng.percent(30) {
            ev.fix = Some(self.fix());
        }
        self.alarm_keys.push((device.clone(), ev.key.clone()));
        ev
    }

    /// A GPS fix near one place, up to two minutes old (fixes arrive out of order), sometimes
    /// one the filters drop (invalid, or at 0,0).
    fn fix(&mut self) -> Fix {
        let age = self.rng.below(120_000) as i64;
        let jitter = |r: &mut Rng| (r.below(2_000) as f64 - 1_000.0) / 100_000.0;
        let (lat, lon) = (57.7 + jitter(&mut self.rng), 11.97 + jitter(&mut self.rng));
        let mut fix = Fix::at(self.now_ms() - age, lat, lon);
        match self.rng.below(10) {
            0 => fix.valid = false,
            1 => (fix.lat, fix.lon) = (0.0, 0.0),
            _ => {}
        }
        fix
    }

    fn random_device(&mut self) -> DeviceKey {
        self.rng.pick(&self.devices).expect("devices").clone()
    }

    /// A message a device would send now.
    fn device_message(&mut self) -> Event {
        let d = self.random_device();
        match self.rng.weighted(&[40, 15, 10, 10, 15, 10, 10]) {
            0 => self.alarm_event(&d),
            1 => match self.rng.pick(&self.sent).cloned() {
                // A resend of the same message (a lost answer, a HOLD).
                Some(ev) => ev,
                None => self.alarm_event(&d),
            },
            2 => match self.rng.pick(&self.alarm_keys).cloned() {
                Some((device, reference)) => self.event(&device, EventKind::Reset { reference }),
                None => self.alarm_event(&d),
            },
            3 => {
                let restoral = self.rng.percent(50);
                self.event(
                    &d,
                    EventKind::Technical {
                        code: "0301".into(),
                        restoral,
                    },
                )
            }
            4 => self.event(&d, EventKind::Heartbeat),
            5 => {
                let mut ev = self.event(&d, EventKind::Position);
                ev.fix = Some(self.fix());
                ev
            }
            _ => {
                let value = self.rng.below(100) as f64;
                self.event(
                    &d,
                    EventKind::Telemetry {
                        name: "temp".into(),
                        value,
                    },
                )
            }
        }
    }

    /// Whether any centre of the (one) chain is connected now.
    fn centre_available(&self) -> bool {
        self.centres.iter().any(|c| c.connected)
    }

    /// Submits `events` together (one burst), then waits for every answer.
    fn send(&mut self, events: Vec<Event>) -> Checked {
        let life = self.life();
        let router = life.router.clone();
        let futures: Vec<_> = events.iter().map(|e| router.submit(e.clone())).collect();
        let replies = life
            .rt
            .block_on(settle(futures::future::join_all(futures)))?;
        for (ev, r) in events.into_iter().zip(replies) {
            self.answered(ev, r)?;
        }
        Ok(())
    }

    /// What a device was told: checked against what the world knows, and remembered.
    fn answered(&mut self, ev: Event, r: Result<Reply, SubmitError>) -> Checked {
        self.stats.events += 1;
        let who = format!("{} {} {:?}", ev.device, ev.key, ev.kind);
        match r {
            Ok(Reply::Accepted {
                event,
                alarm,
                centre_available,
                ..
            }) => {
                self.stats.acked += 1;
                // Invariant 5: OK only when someone can act; otherwise "not treated" (snu 5).
                if centre_available != self.centre_available() {
                    return Err(format!(
                        "{who}: told centre_available={centre_available}, but a centre is {}",
                        if self.centre_available() {
                            "connected"
                        } else {
                            "not connected"
                        }
                    ));
                }
                self.durable.insert(event);
                if ev.lane() == Lane::Alarm {
                    // Invariant 2: a resend gets the original's event and alarm, across restarts.
                    let now = Acked { event, alarm };
                    let key = (ev.device.clone(), ev.key.clone());
                    match self.acked.get(&key) {
                        Some(first) if *first != now => {
                            return Err(format!(
                                "{who}: answered {now:?}, but the same message was answered {first:?} before"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.acked.insert(key, now);
                        }
                    }
                }
                self.note(format!("  {who} -> ok event {} alarm {alarm:?}", event.0));
            }
            Ok(Reply::Rejected { reason }) => {
                return Err(format!(
                    "{who}: rejected ({reason}) though the device is known"
                ));
            }
            Err(SubmitError::Busy) => {
                self.stats.busy += 1;
                self.note(format!("  {who} -> busy"));
            }
            Err(SubmitError::Store(_)) => {
                // Not the error's text: whether a set failed at the disk or was refused by the
                // failed store depends on which sets shared a group (thread timing).
                self.stats.store_errors += 1;
                self.note(format!("  {who} -> store error"));
            }
            Err(SubmitError::ShuttingDown) => {
                return Err(format!("{who}: shutting down, though nothing stops"));
            }
        }
        if !self.sent.contains(&ev) {
            self.sent.push(ev);
        }
        Ok(())
    }

    /// Waits until everything the last step set going is durable: on each shard's alarm lane a
    /// message from its probe device (taken after any due deadline, answered once its commit,
    /// and so every earlier one of that lane, is durable), and one on its telemetry lane.
    fn barrier(&mut self) -> Checked {
        self.barrier_through(false)
    }

    /// The barrier; with `failing`, while writes fail: it then only makes sure that every
    /// write the step caused has come back (failed), answered or not.
    fn barrier_through(&mut self, failing: bool) -> Checked {
        for i in 0..self.probes.len() {
            let probe = self.probes[i].clone();
            for kind in [
                EventKind::Reset {
                    reference: "none".into(),
                },
                EventKind::Heartbeat,
            ] {
                let ev = Event {
                    device: probe.clone(),
                    key: self.new_key(),
                    received_ms: self.now_ms(),
                    kind,
                    fix: None,
                    raw: vec![],
                    occurred_ms: None,
                };
                let life = self.life();
                let router = life.router.clone();
                let r = life.rt.block_on(settle(async move {
                    loop {
                        match router.submit(ev.clone()).await {
                            Err(SubmitError::Busy) => tokio::task::yield_now().await,
                            other => return other,
                        }
                    }
                }))
                .map_err(|e| {
                    format!(
                        "barrier on shard {i}: {e} ({} queued, {} writes at the disk's gate, {} writes tried, store {:?})",
                        life.router.queued(),
                        self.disk.blocked(),
                        self.disk.writes.load(Ordering::SeqCst),
                        *life.store.state().borrow()
                    )
                })?;
                match r {
                    Ok(Reply::Accepted { .. }) => {}
                    Err(SubmitError::Store(_)) if failing => {}
                    other => return Err(format!("barrier on shard {i}: {other:?}")),
                }
            }
        }
        Ok(())
    }

    fn store_serving(&self) -> bool {
        *self.life().store.state().borrow() == StoreState::Serving
    }

    /// One step chosen by the seed, then the barrier and every check.
    pub fn step(&mut self, n: usize) -> Checked {
        self.stats.steps += 1;
        let action = self.rng.weighted(&[
            25, // 0 one device message
            8,  // 1 a burst, resends among it
            3,  // 2 telemetry flood, then an alarm
            8,  // 3 a centre connects
            5,  // 4 a centre disconnects
            18, // 5 centres act on their offers
            15, // 6 time passes
            2,  // 7 the clock jumps
            3,  // 8 crash at rest, restart
            3,  // 9 crash with writes not yet synced, restart
            2,  // 10 the store fails writes
        ]);
        let now = self.now_ms();
        self.note(format!("step {n} at +{} ms: action {action}", now - T0));
        match action {
            0 => {
                let ev = self.device_message();
                self.send(vec![ev])?;
            }
            1 => {
                let k = self.rng.range(2, 6);
                let mut burst: Vec<Event> = (0..k).map(|_| self.device_message()).collect();
                if self.rng.percent(50) {
                    // The same message twice in one burst: the copy waits for the original.
                    let copy = burst[0].clone();
                    burst.push(copy);
                }
                self.send(burst)?;
            }
            2 => self.flood()?,
            3 => self.centre_connects()?,
            4 => self.centre_disconnects()?,
            5 => self.centres_act()?,
            6 => {
                let ms = self.rng.range(100, 15_000);
                self.advance(ms)?;
            }
            7 => {
                let ms = self.rng.range(60_000, 600_000);
                self.advance(ms)?;
            }
            8 => {
                let down = self.rng.range(0, 20_000) as i64;
                self.note(format!("  crash at rest, down {down} ms"));
                self.restart(down)?;
            }
            9 => self.crash_with_writes_held()?,
            _ => self.store_fails()?,
        }
        self.barrier()?;
        super::check::all(self)
    }

    fn advance(&mut self, ms: u64) -> Checked {
        self.note(format!("  time +{ms} ms"));
        self.life()
            .rt
            .block_on(tokio::time::advance(Duration::from_millis(ms)));
        Ok(())
    }

    /// A telemetry flood past the lane's capacity, then an alarm: the flood is refused busy
    /// beyond the bound, the alarm is not (invariants 6 and 9).
    fn flood(&mut self) -> Checked {
        let d = self.random_device();
        let n = self.params.telemetry_queue + 3;
        let events: Vec<Event> = (0..n)
            .map(|i| {
                self.event(
                    &d,
                    EventKind::Telemetry {
                        name: "flood".into(),
                        value: i as f64,
                    },
                )
            })
            .collect();
        let alarm = self.alarm_event(&d);
        self.note(format!("  flood of {n} from {d}, then alarm {}", alarm.key));
        let life = self.life();
        let router = life.router.clone();
        // Submitted without the shard running in between: the lane fills exactly.
        let flood: Vec<_> = events.iter().map(|e| router.submit(e.clone())).collect();
        let a = router.submit(alarm.clone());
        let queued = router.queued();
        let replies = life.rt.block_on(settle(futures::future::join_all(flood)))?;
        let alarm_reply = life.rt.block_on(settle(a))?;
        let bound = self.params.shards * (self.params.alarm_queue + self.params.telemetry_queue);
        if queued > bound {
            return Err(format!("{queued} events queued, over the bound {bound}"));
        }
        let busy = replies
            .iter()
            .filter(|r| matches!(r, Err(SubmitError::Busy)))
            .count();
        if busy != n - self.params.telemetry_queue {
            return Err(format!(
                "a flood of {n} into a lane of {} got {busy} busy answers",
                self.params.telemetry_queue
            ));
        }
        if matches!(alarm_reply, Err(SubmitError::Busy)) {
            return Err("an alarm was refused busy behind a telemetry flood".into());
        }
        for (ev, r) in events.into_iter().zip(replies) {
            self.answered(ev, r)?;
        }
        self.answered(alarm, alarm_reply)
    }

    fn centre_connects(&mut self) -> Checked {
        let away: Vec<usize> = (0..self.centres.len())
            .filter(|i| !self.centres[*i].connected)
            .collect();
        let Some(&i) = self.rng.pick(&away) else {
            return Ok(());
        };
        let id = self.centres[i].id.clone();
        self.note(format!("  {id} connects"));
        self.centres[i].connected = true;
        let router = self.life().router.clone();
        self.life().rt.block_on(settle(router.centre_up(&id)))
    }

    fn centre_disconnects(&mut self) -> Checked {
        let here: Vec<usize> = (0..self.centres.len())
            .filter(|i| self.centres[*i].connected)
            .collect();
        let Some(&i) = self.rng.pick(&here) else {
            return Ok(());
        };
        let id = self.centres[i].id.clone();
        self.note(format!("  {id} disconnects"));
        let now = self.now_ms();
        let c = &mut self.centres[i];
        c.connected = false;
        c.away_since = now;
        c.left_this_life = true;
        let router = self.life().router.clone();
        self.life().rt.block_on(settle(router.centre_down(&id)))
    }

    /// Each connected centre reads its outbox and, as diligent as it is, acts on one alarm it
    /// holds: receipt, accept, close or refuse.
    fn centres_act(&mut self) -> Checked {
        for i in 0..self.centres.len() {
            if !self.centres[i].connected {
                continue;
            }
            let notices = vaka_store::read_outbox(
                self.disk.as_ref(),
                &self.centres[i].id,
                self.centres[i].cursor,
                10_000,
            )
            .map_err(|e| format!("outbox unreadable: {e}"))?;
            let c = &mut self.centres[i];
            for (seq, notice) in notices {
                c.cursor = seq;
                match notice {
                    Notice::Offer { alarm, .. } => {
                        c.known.insert(alarm.id, alarm.device.clone());
                    }
                    Notice::Update { alarm, .. } if alarm.state.is_final() => {
                        c.known.remove(&alarm.id);
                    }
                    Notice::Update { .. } => {}
                }
            }
            let diligence = c.diligence;
            if !self.rng.percent(diligence) {
                continue;
            }
            let known: Vec<(AlarmId, DeviceKey)> = self.centres[i]
                .known
                .iter()
                .map(|(a, d)| (*a, d.clone()))
                .collect();
            let Some((alarm, device)) = self.rng.pick(&known).cloned() else {
                continue;
            };
            let centre = self.centres[i].id.clone();
            let input = match self.rng.weighted(&[35, 30, 20, 15]) {
                0 => AlarmInput::Receipt {
                    centre: centre.clone(),
                },
                1 => AlarmInput::Accept {
                    centre: centre.clone(),
                    operator: "op".into(),
                },
                2 => AlarmInput::Close {
                    centre: centre.clone(),
                    outcome: "visited".into(),
                },
                _ => AlarmInput::Refuse {
                    centre: centre.clone(),
                    reason: "busy".into(),
                },
            };
            self.stats.centre_inputs += 1;
            let router = self.life().router.clone();
            let r = self.life().rt.block_on(settle(router.centre_input(
                &device,
                alarm,
                input.clone(),
            )))?;
            self.note(format!("  {centre} {input:?} on {} -> {r:?}", alarm.0));
            match r {
                Ok(()) => super::check::input_durable(self, alarm, &input)?,
                Err(
                    InputError::NotFound(_) | InputError::NotHolder(_) | InputError::Invalid(_),
                ) => {}
                Err(e) => return Err(format!("{centre} {input:?} on alarm {}: {e}", alarm.0)),
            }
        }
        Ok(())
    }

    /// The disk stops syncing (held at its gate); devices send; whatever they are told before
    /// the process dies must still be there after the restart (invariant 1).
    fn crash_with_writes_held(&mut self) -> Checked {
        self.disk.hold();
        let k = self.rng.range(1, 4);
        let events: Vec<Event> = (0..k).map(|_| self.device_message()).collect();
        let turns_before_crash = self.rng.range(0, 200) as usize;
        self.note(format!(
            "  disk held; {k} messages; crash after {turns_before_crash} turns"
        ));
        let life = self.life();
        let router = life.router.clone();
        let answers = life.rt.block_on(async {
            let mut pending: Vec<_> = events
                .iter()
                .map(|e| Some(Box::pin(router.submit(e.clone()))))
                .collect();
            let mut answers: Vec<Option<Result<Reply, SubmitError>>> = vec![None; events.len()];
            for _ in 0..turns_before_crash.max(1) {
                for (i, p) in pending.iter_mut().enumerate() {
                    if let Some(f) = p {
                        if let Poll::Ready(r) = futures::poll!(f.as_mut()) {
                            answers[i] = Some(r);
                            *p = None;
                        }
                    }
                }
                turns(1).await;
            }
            answers
        });
        for (ev, a) in events.into_iter().zip(answers) {
            if let Some(r) = a {
                self.answered(ev, r)?;
            }
        }
        self.stats.held_crashes += 1;
        self.crash(true);
        let down = self.rng.range(0, 5_000) as i64;
        self.wall_ms += down;
        self.start();
        self.check_acked_durable()
    }

    /// Writes fail for one burst (a full disk, an I/O error). The store then refuses commits
    /// until it recovers by itself (retried after 1 s of real time: waited for in a few worlds,
    /// the world's clock still) or the process is restarted.
    fn store_fails(&mut self) -> Checked {
        self.stats.failed_commits += 1;
        self.disk.fail.store(true, Ordering::SeqCst);
        let k = self.rng.range(1, 3);
        let events: Vec<Event> = (0..k).map(|_| self.device_message()).collect();
        self.note(format!("  store fails; {k} messages"));
        let sent = self.send(events);
        // Writes not waited for by any answer (a resend answered from its durable original
        // still records when its device was heard) must fail now too, not after the check.
        let drained = self.barrier_through(true);
        self.disk.fail.store(false, Ordering::SeqCst);
        sent?;
        drained?;
        if self.store_serving() {
            return Ok(()); // nothing needed a write (resends of durable messages)
        }
        // Waiting costs a second of real time: only where the seed says so, rarely.
        if self.rng.percent(2) {
            // The router's pause of its timers after a failed commit.
            self.timers_paused_until = self.now_ms() + 1_000;
            self.stats.recoveries_waited += 1;
            self.note("  waiting for the store to recover".into());
            let until = std::time::Instant::now() + HUNG;
            while !self.store_serving() {
                if std::time::Instant::now() > until {
                    return Err("the store did not recover from a failed write".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        } else {
            self.note("  restart after the store failure".into());
            self.restart(1_000)
        }
    }

    /// Invariant 1 after a restart: every event a device was told about is in the store.
    fn check_acked_durable(&self) -> Checked {
        super::check::acked_durable(self).map_err(|e| format!("after the restart: {e}"))
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.life().router
    }

    /// Whether a due deadline may still be waiting for a centre's reconnect grace (invariant
    /// 11): the router defers it to the end of the grace of a centre away when it came due, and
    /// keeps it deferred until then even if the centre is back sooner.
    pub fn chain_within_grace(&self, now: i64) -> bool {
        self.centres
            .iter()
            .any(|c| now <= c.away_since + self.params.reconnect_grace_ms + 1)
    }

    /// Whether a due deadline may be late now: held for a centre's reconnect grace, or by the
    /// router's pause after a failed commit.
    pub fn deadline_may_wait(&self, now: i64) -> bool {
        self.chain_within_grace(now) || now <= self.timers_paused_until + 1
    }

    /// Ends the world: a clean crash, so that the committer thread is joined.
    pub fn end(mut self) -> Stats {
        self.crash(false);
        self.stats
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A world that failed mid-step may have the gate held: never leave the committer stuck.
        self.disk.release();
    }
}
