//! The loop every receiver runs, as a gRPC centre client would: follow the receiver's outbox from
//! its cursor up to the durable watermark, turn each notice into the receiver's action, feed the
//! result (a receipt, a refusal) back through the router, and move the cursor only once the
//! notice is handled (invariant 3). The receiver counts as connected (`Presence`) while its far
//! side answers, so a device hears snu 5 only when no step of its chain can be reached
//! (invariant 5); an unreachable receiver is tried again every `probe_secs`.
use futures::future::BoxFuture;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use vaka_centre::cursors::Cursors;
use vaka_centre::scope::Scope;
use vaka_core::alarm::{AlarmInput, Notice};
use vaka_core::CentreId;
use vaka_router::{InputError, LiveDirectory, Router};
use vaka_store::Store;

use crate::config::ReceiversConfig;
use crate::payload::{self, NoticeJson};

/// Notices read from the outbox at a time.
const BATCH: usize = 64;

/// What every session shares.
pub(crate) struct Ctx {
    pub store: Store,
    pub router: Arc<Router>,
    pub dir: LiveDirectory,
    pub cursors: Cursors,
    pub cfg: Arc<ReceiversConfig>,
}

/// One notice to act on: as stored (refreshed to the alarm's state now) and as JSON.
pub(crate) struct Delivery {
    pub seq: u64,
    pub notice: Notice,
    pub json: NoticeJson,
}

/// How a notice was handled.
pub(crate) enum Handled {
    /// Done: these inputs go back to the router (a receipt), then the cursor moves.
    Done(Vec<AlarmInput>),
    /// The far side did not take it: an offer is refused (escalated at once), the receiver
    /// counts as unreachable until a probe answers.
    Unreachable(String),
    /// The far side answered but will not act on it (SCAIP snu 5/6): an offer is refused
    /// (escalated at once); the receiver stays reachable.
    Refused(String),
}

/// One kind of receiver's far side.
pub(crate) trait Far: Send + Sync + 'static {
    /// Acts on one notice (with the kind's own retries and timeouts).
    fn deliver<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, Handled>;
    /// Whether the far side answers now.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Notices it may act on at once (results are still applied in outbox order).
    fn concurrency(&self) -> usize {
        1
    }
}

/// Runs `centre`'s receiver until `stop` turns true.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    centre: CentreId,
    kind: &'static str,
    far: Box<dyn Far>,
    mut stop: watch::Receiver<bool>,
) {
    let scope = match Scope::new(ctx.dir.clone(), centre.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(receiver = %centre, error = %e.message(), "receiver not started");
            return;
        }
    };
    // Down until its far side answers: a receiver that never comes up shows as 0, not absent.
    metrics::gauge!("vaka_receiver_up", "receiver" => centre.to_string(), "kind" => kind).set(0.0);
    let mut s = Session {
        ctx,
        centre,
        kind,
        scope,
        up: false,
        cursor: 0,
        probe_error: None,
    };
    // Stopping cuts a delivery short (a webhook in its backoff, a slow relay): the notice is
    // not acknowledged, so it comes again (invariant 3), and the engine stops in its bound.
    let mut stopping = stop.clone();
    tokio::select! {
        _ = s.serve(&*far, &mut stop) => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
    if s.up {
        // The engine (or this receiver) is stopping: nothing to escalate for it.
        s.ctx.router.presence().disconnected(&s.centre);
    }
}

struct Session {
    ctx: Arc<Ctx>,
    centre: CentreId,
    kind: &'static str,
    scope: Scope,
    up: bool,
    cursor: u64,
    /// Why the last probe failed: logged when it changes, not at every probe.
    probe_error: Option<String>,
}

impl Session {
    async fn serve(&mut self, far: &dyn Far, stop: &mut watch::Receiver<bool>) {
        self.cursor = loop {
            match self.ctx.cursors.load(&self.centre).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(receiver = %self.centre, error = %e, "reading cursor");
                    if sleep_or_stop(Duration::from_secs(1), stop).await {
                        return;
                    }
                }
            }
        };
        let mut watermark = self.ctx.store.outbox_watermark();
        let probe_every = Duration::from_secs(self.ctx.cfg.probe_secs);
        loop {
            if *stop.borrow() {
                return;
            }
            if !self.up {
                match far.probe().await {
                    Ok(()) => {
                        self.probe_error = None;
                        self.set_up(true).await
                    }
                    Err(e) => {
                        metrics::counter!("vaka_receiver_probe_failures_total", "receiver" => self.centre.to_string(), "kind" => self.kind)
                            .increment(1);
                        if self.probe_error.as_deref() != Some(e.as_str()) {
                            tracing::warn!(receiver = %self.centre, error = %e, "receiver does not answer");
                            self.probe_error = Some(e);
                        }
                        if sleep_or_stop(probe_every, stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let durable = *watermark.borrow_and_update();
            if self.cursor >= durable {
                tokio::select! {
                    changed = watermark.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            if let Err(e) = self.step(far, durable).await {
                tracing::warn!(receiver = %self.centre, error = %e, "receiver outbox");
                if sleep_or_stop(Duration::from_secs(1), stop).await {
                    return;
                }
            }
        }
    }

    /// Handles the next batch of durable notices and persists the cursor past them. The kind
    /// acts on up to `concurrency` notices at once; their results are applied in outbox order,
    /// and the cursor moves past a notice only once it and all before it are handled.
    async fn step(&mut self, far: &dyn Far, durable: u64) -> Result<(), String> {
        let got = self
            .ctx
            .store
            .outbox(&self.centre, self.cursor, BATCH)
            .map_err(|e| e.to_string())?;
        let before = self.cursor;
        // Every notice read, in order: in scope (an index into `batch`) or not (skipped).
        let mut order: Vec<(u64, Option<usize>)> = Vec::new();
        let mut batch = Vec::new();
        for (seq, notice) in got {
            if seq > durable {
                break;
            }
            if self.scope.may_see(notice.alarm()) {
                order.push((seq, Some(batch.len())));
                batch.push(self.delivery(seq, notice)?);
            } else {
                metrics::counter!("vaka_events_discarded_total", "stage" => "receiver", "reason" => "out_of_scope")
                    .increment(1);
                order.push((seq, None));
            }
        }
        // Boxed first: a closure in the stream's type trips the spawned future's Send check.
        let mut futures: Vec<BoxFuture<'_, Handled>> = Vec::with_capacity(batch.len());
        for d in &batch {
            futures.push(far.deliver(d));
        }
        let mut results = futures::stream::iter(futures).buffered(far.concurrency().max(1));
        for (seq, at) in order {
            if let Some(i) = at {
                let outcome = results.next().await.expect("one result per delivery");
                self.apply(&batch[i], outcome).await;
            }
            self.cursor = seq;
            if !self.up {
                break;
            }
        }
        drop(results);
        if self.cursor == before {
            // Nothing left below the watermark (pruned or never written for us).
            self.cursor = durable;
        }
        self.ctx.cursors.persist(&self.centre, self.cursor).await
    }

    /// The notice with its alarm as it is now (a receiver may have been away: an offer of an
    /// alarm closed meanwhile goes out as its update), with its JSON form.
    fn delivery(&self, seq: u64, notice: Notice) -> Result<Delivery, String> {
        let id = notice.alarm().id;
        let notice = match self.ctx.store.alarm(id).map_err(|e| e.to_string())? {
            Some(current) => notice.refreshed(&current, &self.centre),
            None => notice,
        };
        let fix = self.ctx.store.opening_fix(id).unwrap_or_else(|e| {
            tracing::warn!(alarm = %id, error = %e, "cannot read the alarm's opening event");
            None
        });
        let json = payload::notice(seq, &notice, &self.ctx.dir.load(), fix.as_ref());
        Ok(Delivery { seq, notice, json })
    }

    /// Applies how a notice was handled: inputs back to the router, failures counted.
    async fn apply(&mut self, d: &Delivery, outcome: Handled) {
        let alarm = d.notice.alarm();
        let (receiver, kind) = (self.centre.to_string(), self.kind);
        match &outcome {
            Handled::Done(inputs) => {
                metrics::counter!("vaka_receiver_deliveries_total", "receiver" => receiver, "kind" => kind)
                    .increment(1);
                for input in inputs {
                    self.input(alarm, input.clone()).await;
                }
            }
            Handled::Unreachable(why) | Handled::Refused(why) => {
                let unreachable = matches!(outcome, Handled::Unreachable(_));
                metrics::counter!("vaka_receiver_failures_total", "receiver" => receiver, "kind" => kind)
                    .increment(1);
                tracing::warn!(receiver = %self.centre, alarm = %alarm.id, error = %why, "receiver did not take the notice");
                if matches!(d.notice, Notice::Offer { .. }) {
                    let reason = format!("{kind} receiver unreachable: {why}");
                    let refuse = AlarmInput::Refuse {
                        centre: self.centre.clone(),
                        reason: reason.chars().take(500).collect(),
                    };
                    self.input(alarm, refuse).await;
                }
                if unreachable {
                    self.set_up(false).await;
                }
            }
        }
    }

    /// Hands the router an input for `alarm` and waits until it is durable. An alarm that has
    /// moved on (closed, taken elsewhere) makes the input moot, not an error.
    async fn input(&self, alarm: &vaka_core::Alarm, input: AlarmInput) {
        let what = format!("{input:?}");
        let r = self
            .ctx
            .router
            .centre_input(&alarm.device, alarm.id, input)
            .await;
        match r {
            Ok(()) | Err(InputError::NotFound(_)) | Err(InputError::NotHolder(_)) => {}
            Err(e) => {
                tracing::warn!(receiver = %self.centre, alarm = %alarm.id, input = %what, error = %e, "receiver input not applied")
            }
        }
    }

    async fn set_up(&mut self, up: bool) {
        if self.up == up {
            return;
        }
        self.up = up;
        metrics::gauge!("vaka_receiver_up", "receiver" => self.centre.to_string(), "kind" => self.kind)
            .set(if up { 1.0 } else { 0.0 });
        if up {
            tracing::info!(receiver = %self.centre, kind = self.kind, "receiver reachable");
            self.ctx.router.centre_up(&self.centre).await;
        } else {
            tracing::warn!(receiver = %self.centre, kind = self.kind, "receiver unreachable");
            self.ctx.router.centre_down(&self.centre).await;
        }
    }
}

/// Sleeps `d`; true if `stop` turned true meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}
