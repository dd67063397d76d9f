//! One centre's stream: hello, then follow the centre's outbox from its resume cursor up to the
//! store's durable watermark, send offers and updates, take acknowledgements and inputs.
//!
//! Only durable notices are read (the watermark moves after the synced write), so a notice is
//! never sent that a crash could take back; the cursor only moves on acknowledgement, so a notice
//! is never lost to a dropped connection (invariant 3).
use crate::convert;
use crate::inbound::{self, Inbound};
use crate::pb::{self, server_message::Msg as Out};
use crate::scope::Scope;
use crate::shared::Shared;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};
use vaka_core::alarm::{AlarmInput, Notice};
use vaka_core::gps::Fix;
use vaka_core::{AlarmId, CentreId};
use vaka_router::InputError;
use vaka_store::Store;

type Tx = mpsc::Sender<Result<pb::ServerMessage, Status>>;

/// Positions remembered per stream (an alarm's updates repeat its position).
const FIX_CACHE: usize = 1024;
/// Watermark observations kept for the latency measurement.
const SEEN_MAX: usize = 4096;

/// The position the alarm's opening event carried; none if it cannot be read (logged).
pub(crate) fn opening_fix(store: &Store, id: AlarmId) -> Option<Fix> {
    store.opening_fix(id).unwrap_or_else(|e| {
        tracing::warn!(alarm = %id, error = %e, "cannot read the alarm's opening event");
        None
    })
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    scope: Scope,
    mut inbound: Streaming<pb::CentreMessage>,
    out: Tx,
    peer: Option<SocketAddr>,
) {
    let centre = scope.centre().clone();
    let hello = match hello(&shared, &mut inbound).await {
        Ok(h) => h,
        Err(status) => {
            tracing::info!(centre = %centre, ?peer, error = %status.message(), "centre stream refused");
            let _ = out.send(Err(status)).await;
            return;
        }
    };
    let stored = match shared.cursors.load(&centre).await {
        Ok(c) => c,
        Err(e) => {
            let _ = out
                .send(Err(Status::unavailable(format!("reading cursor: {e}"))))
                .await;
            return;
        }
    };
    let durable = *shared.store.outbox_watermark().borrow();
    let resume = hello.resume_after.unwrap_or(stored);
    if resume > durable {
        let status = Status::out_of_range(format!(
            "cursor {resume} is ahead of this server's outbox ({durable}); reconnect without a cursor"
        ));
        let _ = out.send(Err(status)).await;
        return;
    }
    // Reachable before the previous stream (if any) is told to go, so a hand-over never looks like
    // a disconnect (presence counts streams).
    shared.router.centre_up(&centre).await;
    let reg = shared.sessions.open(&centre);
    metrics::gauge!("vaka_centres_connected").set(shared.sessions.connected() as f64);
    let welcome = pb::Welcome {
        centre_id: centre.to_string(),
        tenants: scope.tenants(),
        resume_after: resume,
        heartbeat_secs: shared.cfg.heartbeat.as_secs() as u32,
    };
    let ok = out
        .send(Ok(pb::ServerMessage {
            msg: Some(Out::Welcome(welcome)),
        }))
        .await
        .is_ok();
    tracing::info!(centre = %centre, ?peer, resume, client = %hello.client, "centre connected");

    let ending = if ok {
        let mut s = Session::new(shared.clone(), scope, out.clone(), resume, stored);
        s.serve(&mut inbound, reg.replaced).await
    } else {
        None
    };

    // Our ack timeout ended it: the centre was there and did not act, so no reconnect grace.
    let cut_off = matches!(&ending, Some(s) if s.code() == Code::DeadlineExceeded);
    match ending {
        Some(status) => {
            tracing::info!(centre = %centre, ?peer, reason = %status.message(), "centre stream ended");
            // The centre should learn why; a centre that reads nothing is not waited on for long.
            let _ = tokio::time::timeout(Duration::from_secs(1), out.send(Err(status))).await;
        }
        None => tracing::info!(centre = %centre, ?peer, "centre disconnected"),
    }
    shared.sessions.close(&centre, reg.id);
    metrics::gauge!("vaka_centres_connected").set(shared.sessions.connected() as f64);
    if *shared.stopping.borrow() {
        // The engine is stopping, the centre did nothing wrong: nothing to escalate for it.
        shared.router.presence().disconnected(&centre);
    } else if cut_off {
        shared.router.centre_cut_off(&centre).await;
    } else {
        shared.router.centre_down(&centre).await;
    }
}

/// Waits for the mandatory first message.
async fn hello(
    shared: &Shared,
    inbound: &mut Streaming<pb::CentreMessage>,
) -> Result<pb::Hello, Status> {
    let first = tokio::time::timeout(shared.cfg.hello_timeout, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no hello within the hello timeout"))?;
    match first? {
        Some(m) => inbound::hello(m),
        None => Err(Status::cancelled("stream closed before hello")),
    }
}

struct Outgoing {
    msg: pb::ServerMessage,
    /// The outbox cursor, for notices.
    cursor: Option<u64>,
    /// When the notice became durable (as this stream saw it), for live notices.
    since: Option<(Instant, bool)>,
}

struct Session {
    shared: Arc<Shared>,
    scope: Scope,
    out: Tx,
    /// The outbox has been looked at through this sequence.
    read_through: u64,
    /// The durable watermark as last seen, and when each new value was seen.
    durable: u64,
    seen_at: VecDeque<(u64, Instant)>,
    /// Notices above this became durable while this stream watched (their latency is measured).
    live_from: u64,
    /// The highest cursor sent (or resumed from): acknowledgements may not go beyond it.
    last_sent: u64,
    acked: u64,
    /// The cursor durable in the store (or being made so).
    persisted: u64,
    persisting: Option<BoxFuture<'static, (u64, Result<(), String>)>>,
    outq: VecDeque<Outgoing>,
    unacked: VecDeque<(u64, Instant)>,
    inputs: FuturesUnordered<BoxFuture<'static, pb::ServerMessage>>,
    fixes: HashMap<AlarmId, Option<Fix>>,
}

impl Session {
    fn new(shared: Arc<Shared>, scope: Scope, out: Tx, resume: u64, stored: u64) -> Self {
        let durable = *shared.store.outbox_watermark().borrow();
        Session {
            shared,
            scope,
            out,
            read_through: resume,
            durable,
            seen_at: VecDeque::new(),
            live_from: durable,
            last_sent: resume,
            // A resume cursor beyond the stored one acknowledges what lies between.
            acked: resume.max(stored),
            persisted: stored,
            persisting: None,
            outq: VecDeque::new(),
            unacked: VecDeque::new(),
            inputs: FuturesUnordered::new(),
            fixes: HashMap::new(),
        }
    }

    fn centre(&self) -> &CentreId {
        self.scope.centre()
    }

    /// Runs until the centre goes (None) or the stream must end with a status.
    async fn serve(
        &mut self,
        inbound: &mut Streaming<pb::CentreMessage>,
        mut replaced: tokio::sync::oneshot::Receiver<()>,
    ) -> Option<Status> {
        let mut watermark = self.shared.store.outbox_watermark();
        let mut stopping = self.shared.stopping.subscribe();
        let cfg = self.shared.cfg.clone();
        // Sends borrow this handle, not `self`, so the branches may use `self` freely.
        let out = self.out.clone();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + cfg.heartbeat, cfg.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(status) = self.refill() {
                return Some(status);
            }
            self.start_persist();
            let ack_due = self.unacked.front().map(|(_, t)| *t + cfg.ack_timeout);
            tokio::select! {
                biased;
                _ = &mut replaced => {
                    return Some(Status::aborted(format!(
                        "replaced by a newer connection of centre {}", self.centre()
                    )));
                }
                _ = stopping.wait_for(|s| *s) => {
                    return Some(Status::unavailable("server is shutting down"));
                }
                (cursor, r) = poll_some(&mut self.persisting), if self.persisting.is_some() => {
                    self.persisting = None;
                    match r {
                        Ok(()) => self.persisted = self.persisted.max(cursor),
                        Err(e) => {
                            // The cursor stays where it was: notices are sent again, not lost.
                            tracing::warn!(centre = %self.centre(), error = %e, "cursor not persisted");
                            metrics::counter!("vaka_errors_total", "stage" => "centre").increment(1);
                        }
                    }
                }
                Some(result) = self.inputs.next(), if !self.inputs.is_empty() => {
                    self.outq.push_back(Outgoing { msg: result, cursor: None, since: None });
                }
                permit = out.reserve(), if !self.outq.is_empty() => {
                    let Ok(permit) = permit else { return None };
                    let o = self.outq.pop_front().expect("guarded");
                    self.sent(&o);
                    permit.send(Ok(o.msg));
                }
                // Inputs awaiting durability and answers not yet sent are bounded: past
                // them the centre waits (HTTP/2 flow control) until it reads its answers.
                m = inbound.message(), if self.inputs.len() < cfg.max_inputs
                    && self.outq.len() < cfg.read_batch + cfg.max_inputs => match m {
                    Ok(Some(m)) => {
                        if let Err(status) = self.take(m) {
                            return Some(status);
                        }
                    }
                    Ok(None) | Err(_) => return None,
                },
                changed = watermark.changed() => {
                    if changed.is_err() {
                        return Some(Status::unavailable("store closed"));
                    }
                    self.durable = *watermark.borrow_and_update();
                    self.seen_at.push_back((self.durable, Instant::now()));
                    if self.seen_at.len() > SEEN_MAX {
                        self.seen_at.pop_front();
                    }
                }
                _ = sleep_until(ack_due), if ack_due.is_some() => {
                    metrics::counter!("vaka_centre_ack_timeouts_total").increment(1);
                    return Some(Status::deadline_exceeded(format!(
                        "cursor {} not acknowledged within {}s",
                        self.unacked.front().map_or(0, |u| u.0),
                        cfg.ack_timeout.as_secs()
                    )));
                }
                _ = heartbeat.tick() => {
                    let hb = pb::Heartbeat { server_time_ms: self.shared.clock.now_ms() };
                    // A full channel means the centre is busy receiving anyway.
                    let _ = out.try_send(Ok(pb::ServerMessage { msg: Some(Out::Heartbeat(hb)) }));
                }
            }
        }
    }

    /// Reads the next durable notices when everything read so far is sent and the centre's
    /// window of unacknowledged notices has room.
    fn refill(&mut self) -> Result<(), Status> {
        let cfg = &self.shared.cfg;
        if !self.outq.is_empty()
            || self.read_through >= self.durable
            || self.unacked.len() >= cfg.max_unacked
        {
            return Ok(());
        }
        let limit = cfg
            .read_batch
            .min(cfg.max_unacked - self.unacked.len())
            .max(1);
        let got = self
            .shared
            .store
            .outbox(self.centre(), self.read_through, limit)
            .map_err(|e| Status::unavailable(format!("reading outbox: {e}")))?;
        let full = got.len() == limit;
        let mut last = self.read_through;
        for (seq, notice) in got {
            if seq > self.durable {
                break;
            }
            last = seq;
            if !self.scope.may_see(notice.alarm()) {
                // Config changed since the notice was made: the centre no longer serves it.
                metrics::counter!("vaka_events_discarded_total", "stage" => "centre", "reason" => "out_of_scope")
                    .increment(1);
                continue;
            }
            // A notice from before this stream began is sent again after a restart or a
            // reconnect: the alarm may have moved on since (closed, escalated), so it goes out
            // as the alarm is now, never as an offer of an alarm that is closed.
            let notice = match seq <= self.live_from {
                true => self.refreshed(notice)?,
                false => notice,
            };
            let since = (seq > self.live_from)
                .then(|| self.durable_at(seq))
                .flatten()
                .map(|t| (t, matches!(notice, Notice::Offer { .. })));
            let fix = self.fix(notice.alarm().id);
            let msg = convert::notice(seq, &notice, &self.scope.directory(), fix.as_ref());
            self.outq.push_back(Outgoing {
                msg,
                cursor: Some(seq),
                since,
            });
        }
        self.read_through = if full { last } else { self.durable };
        Ok(())
    }

    /// `notice` with its alarm as stored now.
    fn refreshed(&self, notice: Notice) -> Result<Notice, Status> {
        let id = notice.alarm().id;
        match self.shared.store.alarm(id) {
            Ok(Some(current)) => Ok(notice.refreshed(&current, self.centre())),
            Ok(None) => Ok(notice),
            Err(e) => Err(Status::unavailable(format!("reading alarm {id}: {e}"))),
        }
    }

    /// When this stream first saw a watermark covering `seq`.
    fn durable_at(&mut self, seq: u64) -> Option<Instant> {
        while self.seen_at.front().is_some_and(|(wm, _)| *wm < seq) {
            self.seen_at.pop_front();
        }
        self.seen_at.front().map(|(_, t)| *t)
    }

    fn fix(&mut self, id: AlarmId) -> Option<Fix> {
        if let Some(f) = self.fixes.get(&id) {
            return *f;
        }
        if self.fixes.len() >= FIX_CACHE {
            self.fixes.clear();
        }
        let f = opening_fix(&self.shared.store, id);
        self.fixes.insert(id, f);
        f
    }

    fn sent(&mut self, o: &Outgoing) {
        let Some(cursor) = o.cursor else { return };
        self.unacked.push_back((cursor, Instant::now()));
        self.last_sent = self.last_sent.max(cursor);
        match &o.msg.msg {
            Some(Out::Offer(offer)) => {
                metrics::counter!("vaka_centre_offers_sent_total").increment(1);
                if offer.unhandled {
                    metrics::counter!("vaka_centre_unhandled_offers_sent_total").increment(1);
                }
            }
            Some(Out::Update(_)) => {
                metrics::counter!("vaka_centre_updates_sent_total").increment(1)
            }
            _ => {}
        }
        if let Some((at, true)) = o.since {
            metrics::histogram!("vaka_centre_offer_latency_seconds")
                .record(at.elapsed().as_secs_f64());
        }
    }

    /// Starts making the latest acknowledgement durable, one write at a time.
    fn start_persist(&mut self) {
        if self.persisting.is_some() || self.acked <= self.persisted {
            return;
        }
        let cursors = self.shared.cursors.clone();
        let centre = self.centre().clone();
        let cursor = self.acked;
        self.persisting = Some(
            async move {
                let r = cursors.persist(&centre, cursor).await;
                (cursor, r)
            }
            .boxed(),
        );
    }

    /// One message from the centre. An error ends the stream (a protocol violation).
    fn take(&mut self, m: pb::CentreMessage) -> Result<(), Status> {
        match inbound::read(m, self.centre())? {
            Inbound::Ack(cursor) => self.ack(cursor),
            Inbound::Act {
                request_id,
                alarm_id,
                what,
                input,
            } => {
                self.act(request_id, alarm_id, what, input);
                Ok(())
            }
        }
    }

    fn ack(&mut self, cursor: u64) -> Result<(), Status> {
        if cursor > self.last_sent {
            // Acknowledging what was never sent would prune notices the centre has not seen.
            return Err(Status::invalid_argument(format!(
                "ack of cursor {cursor}, but only up to {} was sent",
                self.last_sent
            )));
        }
        while self.unacked.front().is_some_and(|(c, _)| *c <= cursor) {
            self.unacked.pop_front();
        }
        self.acked = self.acked.max(cursor);
        Ok(())
    }

    /// Checks scope, hands the input to the router (in arrival order) and answers once durable.
    fn act(
        &mut self,
        request_id: u64,
        alarm_id: u64,
        what: &'static str,
        input: Result<AlarmInput, Status>,
    ) {
        let alarm = input.and_then(|input| {
            self.scope
                .load_for_action(&self.shared.store, AlarmId(alarm_id))
                .map(|a| (a, input))
        });
        let (alarm, input) = match alarm {
            Ok(x) => x,
            Err(status) => {
                let msg = result(request_id, alarm_id, what, Err(status));
                self.outq.push_back(Outgoing {
                    msg,
                    cursor: None,
                    since: None,
                });
                return;
            }
        };
        // The router takes the input now, so a centre's inputs apply in the order it sent them.
        let fut = self
            .shared
            .router
            .centre_input(&alarm.device, alarm.id, input);
        self.inputs.push(
            async move {
                let r = fut.await.map_err(input_status);
                result(request_id, alarm_id, what, r)
            }
            .boxed(),
        );
    }
}

fn input_status(e: InputError) -> Status {
    let m = e.to_string();
    match e {
        InputError::NotFound(id) => {
            Status::failed_precondition(format!("alarm {id} is not open (closed or cancelled)"))
        }
        InputError::NotHolder(_) => Status::permission_denied(m),
        InputError::Invalid(_) => Status::failed_precondition(m),
        InputError::Busy => Status::resource_exhausted("busy: try again"),
        InputError::ShuttingDown | InputError::Store(_) => Status::unavailable(m),
    }
}

fn result(
    request_id: u64,
    alarm_id: u64,
    what: &'static str,
    r: Result<(), Status>,
) -> pb::ServerMessage {
    let (code, message) = match r {
        Ok(()) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    };
    metrics::counter!("vaka_centre_inputs_total", "input" => what, "code" => code_label(code))
        .increment(1);
    pb::ServerMessage {
        msg: Some(Out::Result(pb::InputResult {
            request_id,
            alarm_id,
            code: code as i32,
            message,
        })),
    }
}

fn code_label(c: Code) -> &'static str {
    match c {
        Code::Ok => "ok",
        Code::InvalidArgument => "invalid_argument",
        Code::NotFound => "not_found",
        Code::PermissionDenied => "permission_denied",
        Code::FailedPrecondition => "failed_precondition",
        Code::ResourceExhausted => "resource_exhausted",
        Code::Unavailable => "unavailable",
        _ => "other",
    }
}

/// Awaits the future in `slot` (the caller guards that there is one).
async fn poll_some<T>(slot: &mut Option<BoxFuture<'static, T>>) -> T {
    match slot.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
