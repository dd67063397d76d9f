//! The directory of a cluster node (ARCHITECTURE.md, "Cluster on NATS JetStream"): the
//! directory is a fold of the JetStream stream `VAKA_DIR`, whose messages are change batches.
//!
//! - A node's [`crate::Control::apply`] writes nothing locally: it appends its batch naming the
//!   last sequence this node applied (`Nats-Expected-Last-Sequence`), so a batch is never
//!   appended over another node's batch this node has not seen; when the stream has moved on it
//!   waits for its follower to catch up and appends again (a bounded number of times). Then it
//!   waits for its own follower to apply the batch and answers with what the follower found.
//! - Every node's follower reads the stream in order and applies each batch through the same
//!   checks as a single node ([`crate::control::check_batch`]), writing records, revision,
//!   admin audit and the batch's sequence in one synced write; revision = stream sequence and
//!   audit time = the batch's time, so every node's directory and audit are the same. A batch
//!   whose changes are all refused still advances the sequence: every node refuses it alike.
//! - API token changes ride the same batches, so a token made or revoked on one node is made
//!   or revoked on every node; a batch too large for one NATS message is appended in parts.
//! - A batch the stream no longer holds (a gap), a node that applied past the stream's end, or
//!   a stream whose batch at this node's sequence is not the one it applied (checked at start
//!   against the digest stored with the sequence) is a loss of the substrate: logged as an
//!   error, counted in `vaka_cluster_directory_lost_total{kind}`, and the follower stops there
//!   (the node keeps its last good directory and refuses directory changes); at start it
//!   refuses to start. Never absorbed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch, Notify};
use vaka_cluster::directory_log::{Batch, Bounds, DirectoryLog, DirectoryLogError};
use vaka_cluster::reconcile::Digest;
use vaka_core::access::TokenRecord;
use vaka_core::directory::{Change, Defaults, Directory, DirectoryError};
use vaka_router::{LiveDirectory, Router};
use vaka_store::directory::{delete_token, put_audit, put_log_sequence, put_token};
use vaka_store::Store;

use crate::control::{check_batch, publish, Applied, Checked, ControlError, Outcome, Request};
use crate::data::{self, DataAction};
use crate::token_table::Tokens;
use crate::tokens::token_audit;
use vaka_store::pending::PendingKey;

/// How many times a write is appended again after another node's batch got in first.
pub const MAX_APPENDS: usize = 8;

/// How long a writer waits for its own follower to apply its acknowledged batch.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// The follower's backstop poll, should a wake-up be missed (a reconnect).
const POLL: Duration = Duration::from_secs(1);

/// After a wake-up by a batch on its way: how often, and for how long, the stream is asked.
const SOON: Duration = Duration::from_millis(10);
const SOON_FOR: Duration = Duration::from_secs(2);

/// One directory-log message: a batch of changes, who made it and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    /// Random: tells the writer which applied batch is its own.
    pub id: String,
    pub actor: String,
    pub at_ms: i64,
    pub requests: Vec<Request>,
    /// API token changes (after the directory's; a token carries its secret's SHA-256 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenChange>,
    /// Actions on stored data (an erasure, a move, an export's audit entry), run by every node
    /// that applies the batch, if all its changes were made ([`crate::data`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataAction>,
}

/// An API token made or revoked through the log, so that every node's admin API knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenChange {
    Put(TokenRecord),
    Delete { id: String },
}

/// What a token change does to a node's table once it is written.
enum TokenEdit {
    Insert(TokenRecord),
    Remove(String),
}

/// A loss found in the directory log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Loss {
    /// The stream no longer holds a batch this node has not applied yet.
    #[error("directory log VAKA_DIR lacks batch {sequence} (stream holds {first}..={last}): a directory change acknowledged to a writer is gone")]
    Gap {
        sequence: u64,
        first: u64,
        last: u64,
    },
    /// This node applied batches the stream does not have.
    #[error("this node applied directory log VAKA_DIR up to batch {applied}, the stream ends at {last}: acknowledged directory changes are gone from the stream")]
    Ahead { applied: u64, last: u64 },
    /// The batch this node applied last is not the one the stream holds at its sequence (the
    /// stream was lost and written again), or is gone.
    #[error("the batch this node applied last, VAKA_DIR sequence {sequence}, is {what} in the stream: the stream is not the history this node applied")]
    Differs { sequence: u64, what: &'static str },
}

impl Loss {
    /// Every [`Loss::kind`], so a cluster node's counters exist at zero before any loss.
    const KINDS: [&'static str; 3] = ["gap", "ahead", "differs"];

    fn kind(&self) -> &'static str {
        match self {
            Loss::Gap { .. } => "gap",
            Loss::Ahead { .. } => "ahead",
            Loss::Differs { .. } => "differs",
        }
    }

    /// Logged as an error and counted: a loss is never absorbed.
    fn report(&self) {
        tracing::error!(loss = %self, "directory log: LOSS");
        metrics::counter!("vaka_cluster_directory_lost_total", "kind" => self.kind()).increment(1);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Lost(#[from] Loss),
    #[error(transparent)]
    Log(#[from] DirectoryLogError),
    #[error("store: {0}")]
    Store(String),
}

/// Where this node's follower is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last batch applied (0: none).
    pub sequence: u64,
    /// Set when the follower stopped at a loss.
    pub lost: Option<Loss>,
}

/// A node's reader of the directory log, caught up by [`start`], run by
/// [`crate::Control::new_replicated`].
pub struct Follower {
    log: DirectoryLog,
    applied: u64,
    /// The stream's last sequence when last asked.
    known_last: u64,
    /// A plain subscription to the log's subject, made before catching up so that no batch
    /// stored after the catch-up goes by without a wake-up (`None`: polling only).
    stored: Option<async_nats::Subscriber>,
}

impl Follower {
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The stream's bounds; a stream whose last batch is before this node's is a loss.
    async fn bounds_not_behind(&self) -> Result<Bounds, FollowError> {
        let bounds = self.log.bounds().await?;
        if bounds.last < self.applied {
            return Err(Loss::Ahead {
                applied: self.applied,
                last: bounds.last,
            }
            .into());
        }
        Ok(bounds)
    }

    /// The next batch to apply, `None` when caught up with the stream as its leader has it.
    async fn next(&mut self) -> Result<Option<Batch>, FollowError> {
        if self.applied >= self.known_last {
            let bounds = self.bounds_not_behind().await?;
            self.known_last = bounds.last;
            if bounds.last == self.applied {
                return Ok(None);
            }
        }
        let sequence = self.applied + 1;
        match self.log.get(sequence).await? {
            Some(b) => Ok(Some(b)),
            None => {
                let bounds = self.log.bounds().await?;
                Err(Loss::Gap {
                    sequence,
                    first: bounds.first,
                    last: bounds.last,
                }
                .into())
            }
        }
    }

    /// Checks that the stream holds, at this node's sequence, the batch this node applied
    /// there (`digest`: its SHA-256 as stored with it). A stream lost and written again past
    /// this node's sequence would otherwise go on from a history this node never had.
    async fn verify_last(&self, digest: Option<[u8; 32]>) -> Result<(), FollowError> {
        let Some(digest) = digest.filter(|_| self.applied > 0) else {
            return Ok(());
        };
        self.bounds_not_behind().await?;
        let what = match self.log.get(self.applied).await? {
            None => "missing",
            Some(b) if Digest::of(&b.bytes).0 != digest => "different",
            Some(_) => return Ok(()),
        };
        Err(Loss::Differs {
            sequence: self.applied,
            what,
        }
        .into())
    }

    /// Applies `batch` (the next one) to `current` durably: what it did, its id, and the key
    /// of its actions on stored data, recorded as pending, for the caller to run once the
    /// directory is published.
    async fn apply(
        &mut self,
        store: &Store,
        current: Arc<Directory>,
        tokens: &Tokens,
        batch: Batch,
    ) -> Result<(Checked, Option<String>, Option<PendingKey>), FollowError> {
        let store = store.clone();
        let sequence = batch.sequence;
        let table = tokens.by_hash.load_full();
        let (checked, id, edits, pending) = tokio::task::spawn_blocking(move || {
            let logged = check_logged(&current, &table, sequence, &batch.bytes);
            let Logged {
                mut checked,
                id,
                edits,
                actor,
                at_ms,
                actions,
            } = logged;
            let mut set = std::mem::take(&mut checked.set);
            let pending = (!actions.is_empty() && checked.results.iter().all(Result::is_ok))
                .then(|| data::put(&mut set, sequence, &actor, at_ms, actions));
            put_log_sequence(&mut set, sequence, Digest::of(&batch.bytes).0);
            store
                .write_control(set)
                .map(|()| (checked, id, edits, pending))
        })
        .await
        .map_err(|e| FollowError::Store(format!("directory log apply task: {e}")))?
        .map_err(|e| FollowError::Store(e.to_string()))?;
        self.applied = sequence;
        if !edits.is_empty() {
            tokens.replace(|m| {
                for e in edits {
                    match e {
                        TokenEdit::Insert(t) => {
                            m.insert(t.hash.clone(), t);
                        }
                        TokenEdit::Remove(hash) => {
                            m.remove(&hash);
                        }
                    }
                }
            });
        }
        Ok((checked, id, pending))
    }

    /// Runs the follower on its own task; the handle is what [`crate::Control`] appends with.
    pub(crate) fn run(
        self,
        store: Store,
        live: LiveDirectory,
        router: Arc<Router>,
        tokens: Arc<Tokens>,
    ) -> Replica {
        let log = self.log.clone();
        let (progress, _) = watch::channel(Progress {
            sequence: self.applied,
            lost: None,
        });
        let shared = Arc::new(Shared {
            progress,
            waiter: Mutex::new(None),
            wake: Notify::new(),
        });
        let (stop, stopped) = watch::channel(false);
        let parts = (store, live, router, tokens);
        let task = tokio::spawn(follow(self, parts, shared.clone(), stopped));
        Replica {
            log,
            shared,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }
}

/// The most bytes of changes one batch may carry: half the servers' `max_payload`, leaving room
/// for the headers and the envelope (1 MiB when the server did not say).
fn part_limit(log: &DirectoryLog) -> usize {
    let max_payload = log.client().server_info().max_payload;
    if max_payload == 0 {
        1 << 20
    } else {
        max_payload
    }
    .saturating_div(2)
}

/// Splits a batch so that each part's changes take at most `limit` bytes as JSON (a change
/// larger than that goes alone); always at least one part, in order.
fn split(
    requests: Vec<Request>,
    tokens: Vec<TokenChange>,
    limit: usize,
) -> Vec<(Vec<Request>, Vec<TokenChange>)> {
    type Part = (Vec<Request>, Vec<TokenChange>);
    fn json_len<T: Serialize>(v: &T) -> usize {
        serde_json::to_vec(v).map_or(0, |b| b.len() + 1)
    }
    /// Starts a new part when `len` more bytes would overflow a part that has something.
    fn room(parts: &mut Vec<Part>, used: &mut usize, len: usize, limit: usize) {
        let last = parts.last().expect("one part");
        if *used + len > limit && !(last.0.is_empty() && last.1.is_empty()) {
            parts.push(Part::default());
            *used = 0;
        }
        *used += len;
    }
    let mut parts = vec![Part::default()];
    let mut used = 0;
    for r in requests {
        room(&mut parts, &mut used, json_len(&r), limit);
        parts.last_mut().expect("one part").0.push(r);
    }
    for t in tokens {
        room(&mut parts, &mut used, json_len(&t), limit);
        parts.last_mut().expect("one part").1.push(t);
    }
    parts
}

/// A logged batch checked: what its changes did, its id, the token edits to make once written,
/// and its actions on stored data, with who asked and when.
struct Logged {
    checked: Checked,
    id: Option<String>,
    edits: Vec<TokenEdit>,
    actor: String,
    at_ms: i64,
    actions: Vec<DataAction>,
}

/// A logged batch checked against `current` at revision = its sequence. A batch that does not
/// decode is refused whole, the same way on every node.
fn check_logged(
    current: &Directory,
    tokens: &HashMap<String, TokenRecord>,
    sequence: u64,
    bytes: &[u8],
) -> Logged {
    let b = match serde_json::from_slice::<LogBatch>(bytes) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(sequence, error = %e,
                "directory log: batch does not decode; skipped (by every node alike)");
            return Logged {
                checked: check_batch(current, Vec::new(), sequence, "", 0),
                id: None,
                edits: Vec::new(),
                actor: String::new(),
                at_ms: 0,
                actions: Vec::new(),
            };
        }
    };
    let mut checked = check_batch(current, b.requests, sequence, &b.actor, b.at_ms);
    let mut edits = Vec::new();
    for t in b.tokens {
        let (record, action, edit) =
            match t {
                TokenChange::Put(record) => {
                    put_token(&mut checked.set, &record);
                    let edit = TokenEdit::Insert(record.clone());
                    (record, "create token", edit)
                }
                TokenChange::Delete { id } => {
                    let Some(record) = tokens.values().find(|t| t.id == id).cloned() else {
                        checked.results.push(Err(ControlError::Directory(
                            DirectoryError::NotFound(format!("token \"{id}\"")),
                        )));
                        continue;
                    };
                    delete_token(&mut checked.set, &id);
                    let edit = TokenEdit::Remove(record.hash.clone());
                    (record, "delete token", edit)
                }
            };
        let entry = token_audit(&b.actor, &record, action, b.at_ms);
        put_audit(&mut checked.set, std::slice::from_ref(&entry));
        checked.results.push(Ok(match edit {
            TokenEdit::Insert(_) => Applied::Created,
            TokenEdit::Remove(_) => Applied::Deleted,
        }));
        edits.push(edit);
    }
    Logged {
        checked,
        id: Some(b.id),
        edits,
        actor: b.actor,
        at_ms: b.at_ms,
        actions: b.data,
    }
}

/// A batch's actions on stored data, to run once its directory is published; the writer, if
/// it is this node's, is answered when they have run.
struct ActionRun {
    key: PendingKey,
    outcome: Outcome,
    waiter: Option<oneshot::Sender<Outcome>>,
}

/// How many applied batches' actions may wait for the runner before the follower waits too.
const ACTIONS_QUEUED: usize = 64;

/// Runs the batches' actions in the order they were applied, off the follower: an erasure (a
/// scan and a compaction, seconds on a large store) does not hold up the directory changes
/// after it. The runner ends when the follower does; what it had not run stays pending and
/// runs at the next start.
fn spawn_action_runner(store: Store) -> tokio::sync::mpsc::Sender<ActionRun> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ActionRun>(ACTIONS_QUEUED);
    tokio::spawn(async move {
        while let Some(mut run) = rx.recv().await {
            run.outcome.done = run_pending(&store, run.key).await;
            if let Some(tx) = run.waiter {
                let _ = tx.send(run.outcome);
            }
        }
    });
    tx
}

/// Runs a batch's actions on stored data on a blocking thread. A failure leaves them pending
/// (the retry runs them); the writer is told nothing was done.
async fn run_pending(store: &Store, key: PendingKey) -> Vec<data::DataDone> {
    let store = store.clone();
    let ran = tokio::task::spawn_blocking(move || data::run(&store, key))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    ran.unwrap_or_else(|e| {
        tracing::error!(error = %e, "directory log: a batch's actions on stored data failed; they stay pending");
        Vec::new()
    })
}

struct Shared {
    progress: watch::Sender<Progress>,
    /// The one batch this node is waiting for (writes are one at a time per node): its id and
    /// where its outcome goes.
    waiter: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    /// A writer's append was acknowledged: read now rather than at the next poll.
    wake: Notify,
}

/// A cluster node's side of [`crate::Control`]: appends batches and waits for its follower.
pub(crate) struct Replica {
    log: DirectoryLog,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Replica {
    /// Appends `requests` and `tokens` as one batch or, when they would not fit in one NATS
    /// message, as several in order (each applied whole, at its own revision; a large import
    /// then lands in steps, each durable). The outcome: every change's result in order, and
    /// the revision of the last batch.
    pub(crate) async fn apply(
        &self,
        actor: &str,
        requests: Vec<Request>,
        tokens: Vec<TokenChange>,
        data: Vec<DataAction>,
        now_ms: i64,
    ) -> Result<Outcome, ControlError> {
        let parts = split(requests, tokens, part_limit(&self.log));
        let mut all = Outcome {
            revision: 0,
            results: Vec::new(),
            done: Vec::new(),
        };
        let (last, mut data) = (parts.len() - 1, Some(data));
        for (i, (requests, tokens)) in parts.into_iter().enumerate() {
            // Actions are few and small: they ride with the last part, after every change.
            let data = if i == last { data.take() } else { None };
            let out = self
                .apply_batch(actor, requests, tokens, data.unwrap_or_default(), now_ms)
                .await?;
            all.revision = out.revision;
            all.results.extend(out.results);
            all.done = out.done;
        }
        Ok(all)
    }

    async fn apply_batch(
        &self,
        actor: &str,
        requests: Vec<Request>,
        tokens: Vec<TokenChange>,
        data: Vec<DataAction>,
        now_ms: i64,
    ) -> Result<Outcome, ControlError> {
        let batch = LogBatch {
            id: format!("dir_{}", hex::encode(rand::random::<[u8; 16]>())),
            actor: actor.to_owned(),
            at_ms: now_ms,
            requests,
            tokens,
            data,
        };
        let bytes = bytes::Bytes::from(serde_json::to_vec(&batch).expect("batches serialise"));
        let mut progress = self.shared.progress.subscribe();
        for _ in 0..MAX_APPENDS {
            let seen = progress.borrow_and_update().clone();
            if let Some(loss) = seen.lost {
                return Err(ControlError::Store(format!(
                    "{loss}; directory changes are refused on this node until it is repaired"
                )));
            }
            let (tx, rx) = oneshot::channel();
            *self.shared.waiter.lock().expect("waiter") = Some((batch.id.clone(), tx));
            match self
                .log
                .append(seen.sequence, &batch.id, bytes.clone())
                .await
            {
                Ok(_) => {
                    self.shared.wake.notify_one();
                    return self.outcome(rx, APPLY_WAIT).await;
                }
                Err(DirectoryLogError::Behind { .. }) => {
                    // Another node's batch is in: catch up, then append on the new view.
                    self.shared.wake.notify_one();
                    let moved = tokio::time::timeout(
                        APPLY_WAIT,
                        progress.wait_for(|p| p.sequence > seen.sequence || p.lost.is_some()),
                    )
                    .await;
                    if !matches!(moved, Ok(Ok(_))) {
                        return Err(ControlError::Store(
                            "directory log: this node's follower is not catching up".into(),
                        ));
                    }
                }
                Err(e @ DirectoryLogError::Unacknowledged(_)) => {
                    // It may be stored: if it is, the follower applies it within a moment.
                    self.shared.wake.notify_one();
                    return self
                        .outcome(rx, Duration::from_secs(5))
                        .await
                        .map_err(|_| ControlError::Store(e.to_string()));
                }
                Err(e) => return Err(ControlError::Store(e.to_string())),
            }
        }
        Err(ControlError::Store(format!(
            "directory log: {MAX_APPENDS} appends in a row found other nodes' changes first; try again"
        )))
    }

    async fn outcome(
        &self,
        rx: oneshot::Receiver<Outcome>,
        wait: Duration,
    ) -> Result<Outcome, ControlError> {
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.shared.waiter.lock().expect("waiter").take();
                let p = self.shared.progress.borrow().clone();
                Err(ControlError::Store(match p.lost {
                    Some(loss) => loss.to_string(),
                    None => format!(
                        "directory change appended but not applied by this node within {wait:?} \
                         (applied up to batch {})",
                        p.sequence
                    ),
                }))
            }
        }
    }

    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The follower's loop: apply what the stream has, then wait for a wake-up (a batch stored, a
/// writer's poke, the poll), until stopped or a loss.
async fn follow(
    mut follower: Follower,
    (store, live, router, tokens): (Store, LiveDirectory, Arc<Router>, Arc<Tokens>),
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut stored = follower.stored.take();
    let actions = spawn_action_runner(store.clone());
    // A batch reaches the subscribers as the stream receives it, a moment before the stream's
    // leader has it stored (and a writer told "behind" may be behind a batch still being
    // stored): after such a wake-up, ask again soon until it is there.
    let mut soon_until = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        // A read may hang on a cluster electing a leader; a stop does not wait for it (reading
        // changes nothing, applying below is never cut short).
        let next = tokio::select! {
            next = follower.next() => next,
            _ = stopped.changed() => return,
        };
        match next {
            Ok(Some(batch)) => {
                soon_until = None;
                let sequence = batch.sequence;
                match follower
                    .apply(&store, live.snapshot(), &tokens, batch)
                    .await
                {
                    Ok((checked, id, pending)) => {
                        let outcome = publish(&live, &router, checked).await;
                        shared.progress.send_modify(|p| p.sequence = sequence);
                        let waiter = {
                            let mut waiter = shared.waiter.lock().expect("waiter");
                            match waiter.as_ref().is_some_and(|(w, _)| Some(w) == id.as_ref()) {
                                true => waiter.take().map(|(_, tx)| tx),
                                false => None,
                            }
                        };
                        match pending {
                            Some(key) => {
                                let run = ActionRun {
                                    key,
                                    outcome,
                                    waiter,
                                };
                                if actions.send(run).await.is_err() {
                                    tracing::error!("directory log: the action runner is gone; the batch's actions stay pending");
                                }
                            }
                            None => {
                                if let Some(tx) = waiter {
                                    let _ = tx.send(outcome);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(sequence, error = %e, "directory log: applying failed; retrying");
                        tokio::time::sleep(POLL).await;
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(FollowError::Lost(loss)) => {
                loss.report();
                shared.progress.send_modify(|p| p.lost = Some(loss));
                // The waiting writer, if any, is told by its timeout reading `lost`; wake it now.
                shared.waiter.lock().expect("waiter").take();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "directory log: reading failed; retrying"),
        }
        let now = tokio::time::Instant::now();
        let poll = match soon_until {
            Some(until) if now < until => SOON,
            _ => POLL,
        };
        tokio::select! {
            _ = stopped.changed() => {}
            _ = shared.wake.notified() => soon_until = Some(now + SOON_FOR),
            _ = async {
                match stored.as_mut() {
                    Some(s) => { s.next().await; }
                    None => std::future::pending::<()>().await,
                }
            } => soon_until = Some(now + SOON_FOR),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Every batch stored is also delivered to plain subscribers of the log's subject: a wake-up
/// for the follower. Flushed, so the server has the subscription before catch-up begins.
async fn subscribe(log: &DirectoryLog) -> Option<async_nats::Subscriber> {
    let client = log.client();
    let subscribed = client
        .subscribe(vaka_cluster::directory_log::DIRECTORY_SUBJECT)
        .await;
    match subscribed {
        Ok(s) => {
            if let Err(e) = client.flush().await {
                tracing::warn!(error = %e, "directory log: wake-up subscription not flushed");
            }
            Some(s)
        }
        Err(e) => {
            tracing::warn!(error = %e, "directory log: no wake-up subscription; polling only");
            None
        }
    }
}

fn bootstrap_batch(requests: Vec<Request>, now_ms: i64) -> LogBatch {
    LogBatch {
        id: format!("dir_{}", hex::encode(rand::random::<[u8; 16]>())),
        actor: "bootstrap".into(),
        at_ms: now_ms,
        requests,
        tokens: Vec::new(),
        data: Vec::new(),
    }
}

/// Appends `batch` after sequence `after` (a later part of a bootstrap); if another batch got
/// in between, after the stream's last. Its sequence.
async fn append_next(
    log: &DirectoryLog,
    after: u64,
    batch: LogBatch,
    retry: &impl Fn(&dyn std::fmt::Display) -> Result<(), String>,
) -> Result<u64, String> {
    let bytes = bytes::Bytes::from(serde_json::to_vec(&batch).expect("batches serialise"));
    let mut expected = after;
    loop {
        match log.append(expected, &batch.id, bytes.clone()).await {
            Ok(sequence) => return Ok(sequence),
            Err(e) => {
                retry(&e)?;
                if let (DirectoryLogError::Behind { .. }, Ok(b)) = (&e, log.bounds().await) {
                    expected = b.last;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The node's directory at start, caught up with the cluster's directory log, and the
/// follower to go on with. If the log is empty, `bootstrap` (the configuration file's entries)
/// is appended as its first batch by actor "bootstrap" (expected last sequence 0: of nodes
/// starting together, one bootstraps); otherwise the stream wins and the file's entries are
/// ignored with a notice. Retries the stream while the cluster settles, for up to `settle`.
pub async fn start(
    log: DirectoryLog,
    store: &Store,
    defaults: Defaults,
    bootstrap: Vec<Change>,
    now_ms: i64,
    settle: Duration,
) -> Result<(Directory, Follower), String> {
    // Alerted on (`config/alerts.yml`, group `vaka-cluster`): at zero, not absent, until a loss.
    for kind in Loss::KINDS {
        metrics::counter!("vaka_cluster_directory_lost_total", "kind" => kind).increment(0);
    }
    let (records, revision) = store
        .load_directory()
        .map_err(|e| format!("reading the directory: {e}"))?;
    let applied = store
        .directory_log_sequence()
        .map_err(|e| format!("reading the directory log sequence: {e}"))?;
    let digest = store
        .directory_log_digest()
        .map_err(|e| format!("reading the directory log digest: {e}"))?;
    if applied == 0 && revision > 0 {
        return Err(format!(
            "this node's store holds a directory (revision {revision}) written outside the \
             cluster's directory log: start a cluster node on an empty data dir, or run it \
             single-node (no [cluster] section)"
        ));
    }
    let mut dir = Arc::new(Directory::from_records(defaults, records, revision));
    let stored = subscribe(&log).await;
    let mut follower = Follower {
        log,
        applied,
        known_last: applied,
        stored,
    };
    let deadline = tokio::time::Instant::now() + settle;
    // A sequence known to be in the stream (or on its way into it): caught up means past it.
    let mut at_least = 0;
    let retry = |e: &dyn std::fmt::Display| {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("directory log: {e}"));
        }
        tracing::debug!(error = %e, "directory log: retrying while the cluster settles");
        Ok(())
    };
    loop {
        let bounds = match follower.log.bounds().await {
            Ok(b) => b,
            Err(e) => {
                retry(&e)?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A node that applied batches never bootstraps: an empty stream under it is a loss,
        // found below.
        if bounds.last > 0 || applied > 0 {
            if !bootstrap.is_empty() {
                tracing::info!(
                    batches = bounds.last,
                    "directory: the cluster's directory log has changes; the configuration \
                     file's directory entries are ignored (the log wins)"
                );
            }
            break;
        }
        if bootstrap.is_empty() {
            break;
        }
        // A large file (thousands of devices) goes as several batches, like a large change
        // through the API: the first decides which starting node bootstraps.
        let requests = bootstrap.iter().cloned().map(Request::from).collect();
        let mut parts = split(requests, Vec::new(), part_limit(&follower.log)).into_iter();
        let (first, _) = parts.next().expect("at least one part");
        let batch = bootstrap_batch(first, now_ms);
        let bytes = bytes::Bytes::from(serde_json::to_vec(&batch).expect("batches serialise"));
        match follower.log.append(0, &batch.id, bytes).await {
            Ok(sequence) => {
                let mut last = sequence;
                let mut changes = batch.requests.len();
                for (requests, _) in parts {
                    changes += requests.len();
                    last = append_next(
                        &follower.log,
                        last,
                        bootstrap_batch(requests, now_ms),
                        &retry,
                    )
                    .await?;
                }
                tracing::info!(
                    sequence = last,
                    changes,
                    "directory: configuration entries appended to the empty directory log"
                );
                at_least = last;
                break;
            }
            Err(DirectoryLogError::Behind { .. }) => {
                // The stream's leader may still be storing that batch: wait for it below.
                tracing::info!("directory: another node bootstrapped the directory log first");
                at_least = 1;
                break;
            }
            Err(e) => {
                retry(&e)?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    loop {
        match follower.verify_last(digest).await {
            Ok(()) => break,
            Err(FollowError::Lost(loss)) => {
                loss.report();
                return Err(format!("{loss}; refusing to start on it"));
            }
            Err(e) => {
                retry(&e)?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let tokens = Tokens::load(store).map_err(|e| format!("reading API tokens: {e}"))?;
    let mut applied_now = 0;
    loop {
        match follower.next().await {
            Ok(Some(batch)) => {
                // Actions on stored data stay pending: all are run once caught up (below).
                let (checked, _, _) = follower
                    .apply(store, dir.clone(), &tokens, batch)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(d) = checked.dir {
                    dir = Arc::new(d);
                }
                applied_now += 1;
            }
            Ok(None) if follower.applied >= at_least => break,
            Ok(None) => {
                retry(&format!("batch {at_least} not stored yet"))?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(FollowError::Lost(loss)) => {
                loss.report();
                return Err(format!(
                    "{loss}; refusing to start on a directory that lacks it"
                ));
            }
            Err(e) => {
                retry(&e)?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!(
        applied_now,
        sequence = follower.applied,
        revision = dir.revision,
        "directory: caught up with the cluster's directory log"
    );
    // The batches' actions on stored data (an erasure, a move) are done before this node takes
    // device events from the input log, so what they erased or moved is not stored again as it
    // was; one that waits for an open alarm is tried again once the node runs.
    let s = store.clone();
    let waiting = tokio::task::spawn_blocking(move || data::run_all(&s))
        .await
        .map_err(|e| format!("running the directory's actions on stored data: {e}"))?
        .map_err(|e| format!("running the directory's actions on stored data: {e}"))?;
    if waiting > 0 {
        tracing::warn!(
            waiting,
            "directory: actions on stored data wait for open alarms to close"
        );
    }
    Ok((Arc::unwrap_or_clone(dir), follower))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::directory::TenantRecord;

    #[test]
    fn a_batch_too_large_for_one_message_is_split_in_order() {
        let reqs: Vec<Request> = (0..10)
            .map(|i| {
                Change::DeleteDevice {
                    tenant: "t".into(),
                    id: format!("d{i}"),
                }
                .into()
            })
            .collect();
        let one = serde_json::to_vec(&reqs[0]).unwrap().len() + 1;
        let del = |id: &str| TokenChange::Delete { id: id.into() };
        let parts = split(reqs.clone(), vec![del("a")], one * 3);
        assert_eq!(parts.len(), 4, "{parts:?}");
        let flat: Vec<Request> = parts.iter().flat_map(|p| p.0.clone()).collect();
        assert_eq!(flat, reqs);
        assert!(parts.iter().all(|p| p.0.len() <= 3));
        assert_eq!(parts.last().unwrap().1, vec![del("a")]);
        // Everything fits: one part; nothing at all: one empty part; a change above the limit
        // goes alone.
        assert_eq!(split(reqs.clone(), Vec::new(), 1 << 20).len(), 1);
        assert_eq!(split(Vec::new(), Vec::new(), 10), vec![Default::default()]);
        assert_eq!(split(reqs[..2].to_vec(), Vec::new(), 1).len(), 2);
    }

    #[test]
    fn a_batch_reads_back_as_written_and_a_bad_one_is_refused_whole() {
        let batch = LogBatch {
            id: "dir_1".into(),
            actor: "tok_a".into(),
            at_ms: 42,
            requests: vec![Request {
                change: Change::PutTenant(TenantRecord {
                    id: "t".into(),
                    ..Default::default()
                }),
                if_match: Some(0),
            }],
            tokens: Vec::new(),
            data: vec![DataAction::Erase {
                tenant: "t".into(),
                device: "d1".into(),
                removed_from_directory: true,
            }],
        };
        let bytes = serde_json::to_vec(&batch).unwrap();
        assert_eq!(serde_json::from_slice::<LogBatch>(&bytes).unwrap(), batch);

        let dir = Directory::default();
        let none = HashMap::new();
        let logged = check_logged(&dir, &none, 7, &bytes);
        assert_eq!(logged.id.as_deref(), Some("dir_1"));
        assert_eq!(logged.checked.revision, 7);
        assert!(logged.checked.dir.is_some());
        assert_eq!(logged.actions, batch.data);
        assert_eq!((logged.actor.as_str(), logged.at_ms), ("tok_a", 42));
        let logged = check_logged(&dir, &none, 8, b"not json");
        assert!(logged.id.is_none() && logged.checked.dir.is_none());
        assert!(logged.checked.results.is_empty() && logged.actions.is_empty());
    }
}
