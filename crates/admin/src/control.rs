//! The one writer of the directory: a change is checked, made durable (records, revision and its
//! audit entry in one synced write), published to every reader (a new snapshot swapped in whole),
//! and only then answered; the shards are told which devices changed so supervision follows.
//! Changes are serialised (one at a time), so revisions grow by one per accepted batch.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vaka_core::directory::{Change, Directory, DirectoryError};
use vaka_core::DeviceKey;
use vaka_router::{Clock, LiveDirectory, Router};
use vaka_store::directory::{put_audit, put_change, put_revision, AdminAuditEntry};
use vaka_store::{Store, StoreError, WriteSet};

use crate::data::{self, DataAction, DataDone};
use crate::token_table::Tokens;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// `If-Match` named another revision than the record has (optimistic concurrency).
    #[error("{resource} is at revision {current}, not {expected}")]
    Stale {
        resource: String,
        current: u64,
        expected: u64,
    },
    #[error("store: {0}")]
    Store(String),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        ControlError::Store(e.to_string())
    }
}

/// One change and, optionally, the revision its record must have now (`If-Match`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub change: Change,
    #[serde(default)]
    pub if_match: Option<u64>,
}

impl From<Change> for Request {
    fn from(change: Change) -> Self {
        Request {
            change,
            if_match: None,
        }
    }
}

/// What one change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Deleted,
    /// The record was already so: nothing written (a re-run import changes nothing).
    Unchanged,
}

/// What a batch did: the revision it was written at (the current one when nothing was written)
/// and each change's result, in order.
#[derive(Debug)]
pub struct Outcome {
    pub revision: u64,
    pub results: Vec<Result<Applied, ControlError>>,
    /// What the batch's actions on stored data did on this node ([`crate::data`]), in order;
    /// empty when it had none or a change in it was refused.
    pub done: Vec<crate::data::DataDone>,
}

pub struct Control {
    store: Store,
    live: LiveDirectory,
    router: Arc<Router>,
    clock: Clock,
    pub(crate) tokens: Arc<Tokens>,
    writer: tokio::sync::Mutex<()>,
    /// In a cluster: the directory log this node appends to and follows.
    replica: Option<crate::replicated::Replica>,
}

impl Control {
    /// Silence tolerated beyond a device's heartbeat interval (the router's setting).
    pub fn supervision_grace_ms(&self) -> i64 {
        self.router.supervision_grace_ms()
    }

    /// The control plane over a started engine; reads the stored API tokens.
    pub fn new(
        store: Store,
        live: LiveDirectory,
        router: Arc<Router>,
        clock: Clock,
    ) -> Result<Arc<Control>, StoreError> {
        let tokens = Arc::new(Tokens::load(&store)?);
        data::run_all(&store)?;
        Ok(Self::with(store, live, router, clock, tokens, None))
    }

    /// The control plane of a cluster node: `follower` (from [`crate::replicated::start`],
    /// caught up with the directory log) goes on applying the log into `live` and tells
    /// `router`; [`Control::apply`] appends to the log.
    pub fn new_replicated(
        store: Store,
        live: LiveDirectory,
        router: Arc<Router>,
        clock: Clock,
        follower: crate::replicated::Follower,
    ) -> Result<Arc<Control>, StoreError> {
        let tokens = Arc::new(Tokens::load(&store)?);
        // Pending actions ran at the end of `replicated::start`; waiting ones are retried.
        let replica = follower.run(store.clone(), live.clone(), router.clone(), tokens.clone());
        Ok(Self::with(
            store,
            live,
            router,
            clock,
            tokens,
            Some(replica),
        ))
    }

    fn with(
        store: Store,
        live: LiveDirectory,
        router: Arc<Router>,
        clock: Clock,
        tokens: Arc<Tokens>,
        replica: Option<crate::replicated::Replica>,
    ) -> Arc<Control> {
        let control = Arc::new(Control {
            store,
            live,
            router,
            clock,
            tokens,
            writer: tokio::sync::Mutex::new(()),
            replica,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(retry_waiting(Arc::downgrade(&control)));
        }
        control
    }

    pub fn live(&self) -> &LiveDirectory {
        &self.live
    }

    /// The router, for alarm inputs made through the API (a receiver's accept or close).
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Applies each change on its own (a bad one costs only itself), writes the good ones in
    /// one synced write at one new revision, publishes the new directory and tells the shards.
    /// Answers once all of that is done; on a store error nothing is published.
    ///
    /// In a cluster the batch is appended to the directory log instead, and the answer is what
    /// this node's follower computed when it applied it ([`crate::replicated`]): the same
    /// checks, the same publication, on every node.
    pub async fn apply(
        &self,
        actor: &str,
        requests: Vec<Request>,
    ) -> Result<Outcome, ControlError> {
        self.act(actor, requests, Vec::new()).await
    }

    /// Like [`Control::apply`], with actions on stored data that go with the changes
    /// ([`crate::data`]): recorded with them, then run, only if every change was made (none
    /// is run when one is refused). In a cluster every node runs them when it applies the
    /// batch; the outcome's `done` is what they did on this node.
    pub async fn act(
        &self,
        actor: &str,
        requests: Vec<Request>,
        actions: Vec<DataAction>,
    ) -> Result<Outcome, ControlError> {
        let _one_at_a_time = self.writer.lock().await;
        if let Some(replica) = &self.replica {
            let now = self.clock.now_ms();
            return replica
                .apply(actor, requests, Vec::new(), actions, now)
                .await;
        }
        let (store, current) = (self.store.clone(), self.live.snapshot());
        let (actor, now) = (actor.to_owned(), self.clock.now_ms());
        let (checked, pending) = tokio::task::spawn_blocking(move || {
            let revision = current.revision + 1;
            let mut checked = check_batch(&current, requests, revision, &actor, now);
            let pending = (!actions.is_empty() && checked.results.iter().all(Result::is_ok))
                .then(|| data::put(&mut checked.set, checked.revision, &actor, now, actions));
            if !checked.set.is_empty() {
                store.write_control(std::mem::take(&mut checked.set))?;
            }
            Ok::<_, ControlError>((checked, pending))
        })
        .await
        .map_err(|e| ControlError::Store(format!("directory change task: {e}")))??;
        let mut outcome = publish(&self.live, &self.router, checked).await;
        if let Some(key) = pending {
            outcome.done = self.run_pending(key).await?;
        }
        Ok(outcome)
    }

    /// Runs the actions pending under `key` on a blocking thread: what they did.
    async fn run_pending(
        &self,
        key: vaka_store::pending::PendingKey,
    ) -> Result<Vec<DataDone>, ControlError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || data::run(&store, key))
            .await
            .map_err(|e| ControlError::Store(format!("data action task: {e}")))?
            .map_err(ControlError::from)
    }

    /// Stops this node's directory follower (cluster mode; nothing otherwise) and waits for
    /// it: called at shutdown before the router and the store close.
    pub async fn stop_following(&self) {
        if let Some(replica) = &self.replica {
            replica.stop().await;
        }
    }

    /// In a cluster, API token changes go through the directory log like directory changes
    /// (every node's admin API then knows them), answered with one result per change; `None`
    /// on a single node.
    pub(crate) async fn replicate_tokens(
        &self,
        actor: &str,
        tokens: Vec<crate::replicated::TokenChange>,
    ) -> Option<Result<Outcome, ControlError>> {
        let replica = self.replica.as_ref()?;
        let _one_at_a_time = self.writer.lock().await;
        let now = self.clock.now_ms();
        Some(
            replica
                .apply(actor, Vec::new(), tokens, Vec::new(), now)
                .await,
        )
    }

    /// Whether this node's directory follows a cluster's directory log.
    pub fn replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// One change: its error, or what it did and the revision it was written at.
    pub async fn apply_one(
        &self,
        actor: &str,
        request: Request,
    ) -> Result<(Applied, u64), ControlError> {
        let mut out = self.apply(actor, vec![request]).await?;
        let applied = out.results.pop().expect("one result per change")?;
        Ok((applied, out.revision))
    }
}

/// Tries the actions that wait (for a device's open alarms to close) again every
/// [`data::RETRY`], for as long as the control plane is there.
async fn retry_waiting(control: std::sync::Weak<Control>) {
    loop {
        tokio::time::sleep(data::RETRY).await;
        let Some(control) = control.upgrade() else {
            return;
        };
        if control.store.pending().is_ok_and(|p| p.is_empty()) {
            continue;
        }
        // Not between a writer's record of its actions and its own run of them: it would find
        // them done and could not answer what they did.
        let _one_at_a_time = control.writer.lock().await;
        let store = control.store.clone();
        match tokio::task::spawn_blocking(move || data::retry_all(&store)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "admin actions on stored data: trying again failed")
            }
            Err(e) => tracing::warn!(error = %e, "admin actions on stored data: retry task failed"),
        }
    }
}

/// A batch checked against a directory: the directory after it and what to write (`None`:
/// nothing changed, nothing to write), and what each change did. The one copy of the rules:
/// the single node's [`Control::apply`] and a cluster node's follower both come through here.
#[derive(Debug)]
pub(crate) struct Checked {
    pub dir: Option<Directory>,
    /// Records, revision and audit entries (empty when `dir` is `None`).
    pub set: WriteSet,
    /// The revision the batch was written at, or the current one when nothing was written.
    pub revision: u64,
    pub results: Vec<Result<Applied, ControlError>>,
    /// Devices whose records changed, for the shards.
    pub devices: Vec<DeviceKey>,
}

/// Checks and applies `requests` on a copy of `current`, each on its own, at `revision`, audited
/// as `actor` at `at_ms`.
pub(crate) fn check_batch(
    current: &Directory,
    requests: Vec<Request>,
    revision: u64,
    actor: &str,
    at_ms: i64,
) -> Checked {
    let mut dir = Directory::clone(current);
    let mut set = WriteSet::new();
    let mut audit = Vec::new();
    let mut devices = Vec::new();
    let mut results = Vec::with_capacity(requests.len());
    for r in requests {
        let result = apply_one(&mut dir, r, revision, actor, at_ms, &mut set, &mut audit);
        if let Ok((_, Some(device))) = &result {
            devices.push(device.clone());
        }
        results.push(result.map(|(applied, _)| applied));
    }
    if audit.is_empty() {
        return Checked {
            dir: None,
            set: WriteSet::new(),
            revision: current.revision,
            results,
            devices: Vec::new(),
        };
    }
    put_revision(&mut set, revision);
    put_audit(&mut set, &audit);
    Checked {
        dir: Some(dir),
        set,
        revision,
        results,
        devices,
    }
}

/// After a checked batch is durable: the new directory published to every reader, then the
/// shards told which devices changed. Returns the caller's answer.
pub(crate) async fn publish(live: &LiveDirectory, router: &Router, checked: Checked) -> Outcome {
    if let Some(dir) = checked.dir {
        live.publish(dir);
        metrics::gauge!("vaka_directory_revision").set(checked.revision as f64);
        router.directory_changed(checked.devices).await;
    }
    Outcome {
        revision: checked.revision,
        results: checked.results,
        done: Vec::new(),
    }
}

/// Applies one request to `dir`, adding its writes and audit entry; the device it changed, if any.
fn apply_one(
    dir: &mut Directory,
    r: Request,
    revision: u64,
    actor: &str,
    now: i64,
    set: &mut WriteSet,
    audit: &mut Vec<AdminAuditEntry>,
) -> Result<(Applied, Option<DeviceKey>), ControlError> {
    let (resource, device) = name(&r.change);
    let before = record_json(dir, &r.change);
    if let Some(expected) = r.if_match {
        let current = before
            .as_ref()
            .and_then(|b| b.get("revision"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if current != expected {
            return Err(ControlError::Stale {
                resource,
                current,
                expected,
            });
        }
    }
    if unchanged(dir, &r.change) {
        return Ok((Applied::Unchanged, None));
    }
    let applied = match (&r.change, &before) {
        (Change::DeleteTenant(_), _)
        | (Change::DeleteCentre(_), _)
        | (Change::DeleteDevice { .. }, _)
        | (Change::DeletePolicy { .. }, _) => Applied::Deleted,
        (_, None) => Applied::Created,
        (_, Some(_)) => Applied::Updated,
    };
    let (action, tenant) = (verb(&r.change), r.change.tenant().map(str::to_owned));
    dir.apply(r.change.clone(), revision)?;
    let after = record_json(dir, &r.change);
    put_change(set, &stamped(dir, r.change));
    audit.push(AdminAuditEntry {
        revision,
        at_ms: now,
        actor: actor.to_owned(),
        tenant,
        action: action.to_owned(),
        resource,
        before: before.map(redact),
        after: after.map(redact),
    });
    Ok((applied, device))
}

/// The change with its record as now stored (stamped with the revision).
fn stamped(dir: &Directory, change: Change) -> Change {
    let r = &dir.records;
    match change {
        Change::PutTenant(t) => Change::PutTenant(r.tenants[&t.id].clone()),
        Change::PutCentre(c) => Change::PutCentre(r.centres[&c.id].clone()),
        Change::PutDevice(d) => Change::PutDevice(Box::new(r.devices[&(d.tenant, d.id)].clone())),
        Change::PutPolicy(p) => Change::PutPolicy(r.policies[&(p.tenant, p.id)].clone()),
        delete => delete,
    }
}

fn verb(c: &Change) -> &'static str {
    match c {
        Change::PutTenant(_) => "put tenant",
        Change::DeleteTenant(_) => "delete tenant",
        Change::PutCentre(_) => "put centre",
        Change::DeleteCentre(_) => "delete centre",
        Change::PutDevice(_) => "put device",
        Change::DeleteDevice { .. } => "delete device",
        Change::PutPolicy(_) => "put deadline policy",
        Change::DeletePolicy { .. } => "delete deadline policy",
    }
}

/// The resource path a change names, and the device it changes.
fn name(c: &Change) -> (String, Option<DeviceKey>) {
    match c {
        Change::PutTenant(t) => (format!("tenants/{}", t.id), None),
        Change::DeleteTenant(t) => (format!("tenants/{t}"), None),
        Change::PutCentre(x) => (format!("centres/{}", x.id), None),
        Change::DeleteCentre(x) => (format!("centres/{x}"), None),
        Change::PutDevice(d) => (
            format!("tenants/{}/devices/{}", d.tenant, d.id),
            Some(DeviceKey::new(&d.tenant, &d.id)),
        ),
        Change::DeleteDevice { tenant, id } => (
            format!("tenants/{tenant}/devices/{id}"),
            Some(DeviceKey::new(tenant, id)),
        ),
        Change::PutPolicy(p) => (
            format!("tenants/{}/deadline-policies/{}", p.tenant, p.id),
            None,
        ),
        Change::DeletePolicy { tenant, id } => {
            (format!("tenants/{tenant}/deadline-policies/{id}"), None)
        }
    }
}

/// The record a change touches, as JSON, as it is in `dir` now.
fn record_json(dir: &Directory, c: &Change) -> Option<Value> {
    let r = &dir.records;
    let v = match c {
        Change::PutTenant(t) => serde_json::to_value(r.tenants.get(&t.id)?),
        Change::DeleteTenant(t) => serde_json::to_value(r.tenants.get(t)?),
        Change::PutCentre(x) => serde_json::to_value(r.centres.get(&x.id)?),
        Change::DeleteCentre(x) => serde_json::to_value(r.centres.get(x)?),
        Change::PutDevice(d) => {
            serde_json::to_value(r.devices.get(&(d.tenant.clone(), d.id.clone()))?)
        }
        Change::DeleteDevice { tenant, id } => {
            serde_json::to_value(r.devices.get(&(tenant.clone(), id.clone()))?)
        }
        Change::PutPolicy(p) => {
            serde_json::to_value(r.policies.get(&(p.tenant.clone(), p.id.clone()))?)
        }
        Change::DeletePolicy { tenant, id } => {
            serde_json::to_value(r.policies.get(&(tenant.clone(), id.clone()))?)
        }
    };
    v.ok()
}

/// HA1 values are as good as a password for their realm: the audit log says they changed,
/// not what they are.
pub(crate) fn redact(mut v: Value) -> Value {
    if let Some(sip) = v.get_mut("sip").and_then(Value::as_object_mut) {
        for k in ["ha1_md5", "ha1_sha256"] {
            if let Some(h) = sip.get_mut(k) {
                let digest = h.as_str().map(|s| {
                    use sha2::Digest;
                    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..4])
                });
                *h = Value::String(format!("redacted:{}", digest.unwrap_or_default()));
            }
        }
    }
    v
}

/// Applies the bootstrap file's records before the engine starts: each record that is absent
/// or differs from the stored one (revision aside) is written, as actor "bootstrap", in one
/// synced write; records added through the admin API are kept. Returns how many changed.
pub fn bootstrap(
    store: &Store,
    dir: &mut Directory,
    changes: Vec<Change>,
    now_ms: i64,
) -> Result<usize, ControlError> {
    let revision = dir.revision + 1;
    let mut set = WriteSet::new();
    let mut audit = Vec::new();
    for change in changes {
        let r = Request::from(change);
        apply_one(dir, r, revision, "bootstrap", now_ms, &mut set, &mut audit)?;
    }
    if audit.is_empty() {
        return Ok(0);
    }
    put_revision(&mut set, revision);
    put_audit(&mut set, &audit);
    store.write_control(set)?;
    Ok(audit.len())
}

/// Whether a put would write what is already stored.
fn unchanged(dir: &Directory, c: &Change) -> bool {
    let r = &dir.records;
    match c {
        Change::PutTenant(t) => r.tenants.get(&t.id).is_some_and(|x| {
            x.clone()
                == vaka_core::directory::TenantRecord {
                    revision: x.revision,
                    ..t.clone()
                }
        }),
        Change::PutCentre(t) => r.centres.get(&t.id).is_some_and(|x| {
            x.clone()
                == vaka_core::directory::CentreRecord {
                    revision: x.revision,
                    ..t.clone()
                }
        }),
        Change::PutDevice(d) => r
            .devices
            .get(&(d.tenant.clone(), d.id.clone()))
            .is_some_and(|x| {
                let mut d = (**d).clone();
                d.revision = x.revision;
                *x == d
            }),
        Change::PutPolicy(p) => r
            .policies
            .get(&(p.tenant.clone(), p.id.clone()))
            .is_some_and(|x| {
                x.clone()
                    == vaka_core::directory::DeadlinePolicyRecord {
                        revision: x.revision,
                        ..p.clone()
                    }
            }),
        _ => false,
    }
}
