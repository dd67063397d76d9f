//! Admin actions on stored data beside the directory: an export's audit entry, a device's move
//! offered and accepted (its history moving with both tenants' consent), a device's erasure.
//!
//! They ride with a directory change ([`crate::Control::act`]): on a single node in its synced
//! write, in a cluster in its `VAKA_DIR` batch, so every node does them, not only the one that
//! was asked. Each node records them as pending (`vaka_store::pending`) in the write that
//! applies the change, and only if every change in it was made; then it runs them on its own
//! store and records what they did (admin audit entries, and where a device's history went,
//! `vaka_store::gone`) in the write that clears them. A crash between leaves them pending, to run
//! at the next start: each is safe to run again.
//!
//! A node that holds an open alarm of the device does not erase or move its history (a person
//! may be waiting): the action waits, pending (`vaka_admin_actions_waiting`), and is tried again
//! every [`RETRY`] until the alarm is closed.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vaka_core::DeviceKey;
use vaka_store::directory::{put_audit, AdminAuditEntry};
use vaka_store::gone::{put_gone, Gone};
use vaka_store::moves::{delete_move_offer, put_move_offer, MoveOffer, Moved};
use vaka_store::pending::{clear_pending, put_pending, PendingKey};
use vaka_store::{Erased, Store, StoreError, WriteSet};

/// How often a node tries its waiting actions again.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// One node's actions run one set at a time: the writer's own, the follower's and the retry's
/// would otherwise run a set twice (two audit entries).
static RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds this process's actions on stored data until the guard is dropped, as a long erasure
/// would: for tests of what goes on meanwhile.
#[doc(hidden)]
pub fn hold_actions() -> std::sync::MutexGuard<'static, ()> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// One action on stored data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataAction {
    /// An admin audit entry written as it is (an export: who read what).
    Audit(AdminAuditEntry),
    /// A device offered to another tenant: the offer kept until that tenant accepts it.
    OfferMove(MoveOffer),
    /// The offer accepted (the batch's directory changes moved the device): the offer goes and,
    /// if both tenants consented (`history`, decided where it was accepted), the device's
    /// history moves with it.
    AcceptMove {
        from: String,
        to: String,
        device: String,
        history: bool,
    },
    /// The device's personal data erased (it left the directory in the same batch, or had left).
    Erase {
        tenant: String,
        device: String,
        removed_from_directory: bool,
    },
}

/// What an action did on this node.
#[derive(Clone, Debug, PartialEq)]
pub enum DataDone {
    Recorded,
    Moved(MoveDone),
    Erased(Erasure),
    /// Not run: this node holds open alarms of the device (their ids). Kept pending.
    Waiting(Vec<u64>),
}

/// A device's move, as answered and audited.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MoveDone {
    pub device: String,
    pub from: String,
    pub to: String,
    /// Whether the history moved (both consented).
    pub history_moved: bool,
    pub events: u64,
    pub alarms: u64,
    pub positions: u64,
    pub device_rows: u64,
    pub revision: u64,
}

/// What was erased, per kind, and the tombstone's when and by whom.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Erasure {
    pub tenant: String,
    pub device: String,
    pub at_ms: i64,
    /// The token that asked for it.
    pub by: String,
    /// Whether the device was still in the directory (it is removed first).
    pub removed_from_directory: bool,
    /// Events the device sent (each with its raw message), deleted.
    pub events: u64,
    /// Position history rows, deleted.
    pub positions: u64,
    /// GPS record, last heard, announced interval, rule states, idempotency entries, deleted.
    pub device_rows: u64,
    /// Alarms kept with their free text, callback numbers and closing note removed.
    pub alarms: u64,
    /// Audit records whose free text (closing notes, refusal reasons) was removed.
    pub audit_texts: u64,
    /// Outbox notices rewritten with the erased alarm.
    pub notices: u64,
}

impl Erasure {
    /// Nothing of the device was here to erase.
    pub fn is_nothing(&self) -> bool {
        !self.removed_from_directory
            && [
                self.events,
                self.positions,
                self.device_rows,
                self.alarms,
                self.audit_texts,
                self.notices,
            ]
            .iter()
            .all(|n| *n == 0)
    }
}

/// Pending actions as stored: who asked, when, and what is left to do.
#[derive(Serialize, Deserialize)]
struct Pending {
    actor: String,
    at_ms: i64,
    actions: Vec<DataAction>,
}

/// Records `actions` in `set` as pending for the change at `revision`; their key.
pub(crate) fn put(
    set: &mut WriteSet,
    revision: u64,
    actor: &str,
    at_ms: i64,
    actions: Vec<DataAction>,
) -> PendingKey {
    let key = PendingKey {
        revision,
        id: rand::random(),
    };
    let pending = Pending {
        actor: actor.to_owned(),
        at_ms,
        actions,
    };
    put_pending(
        set,
        key,
        serde_json::to_vec(&pending).expect("actions serialise"),
    );
    key
}

/// Runs the actions pending under `key` (blocking: erasures scan and compact the store) and
/// records what they did; those that wait stay pending. What each did, in order.
pub(crate) fn run(store: &Store, key: PendingKey) -> Result<Vec<DataDone>, StoreError> {
    let _one = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let Some((_, bytes)) = store.pending()?.into_iter().find(|(k, _)| *k == key) else {
        return Ok(Vec::new());
    };
    run_one(store, key, &bytes)
}

/// Runs every pending action of this node, oldest first (at start, and to try waiting ones
/// again). How many still wait.
pub(crate) fn run_all(store: &Store) -> Result<usize, StoreError> {
    let _one = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    run_all_held(store)
}

/// [`run_all`], unless actions are running now (`None`): the retry of waiting actions does not
/// queue behind a long erasure while it holds the control plane's writer lock.
pub(crate) fn retry_all(store: &Store) -> Result<Option<usize>, StoreError> {
    let _one = match RUNNING.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
    };
    run_all_held(store).map(Some)
}

fn run_all_held(store: &Store) -> Result<usize, StoreError> {
    let mut waiting = 0;
    for (key, bytes) in store.pending()? {
        let done = run_one(store, key, &bytes)?;
        waiting += done
            .iter()
            .filter(|d| matches!(d, DataDone::Waiting(_)))
            .count();
    }
    metrics::gauge!("vaka_admin_actions_waiting").set(waiting as f64);
    Ok(waiting)
}

fn run_one(store: &Store, key: PendingKey, bytes: &[u8]) -> Result<Vec<DataDone>, StoreError> {
    let p: Pending = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        cf: "meta",
        key: format!("pending/{}/{}", key.revision, key.id),
        reason: e.to_string(),
    })?;
    let mut set = WriteSet::new();
    let mut left = Vec::new();
    let mut done = Vec::with_capacity(p.actions.len());
    for action in p.actions {
        let d = run_action(store, &mut set, key.revision, &p.actor, p.at_ms, &action)?;
        if let DataDone::Waiting(open) = &d {
            tracing::info!(?action, open_alarms = ?open,
                "admin action on stored data waits: this node holds open alarms of the device");
            left.push(action);
        }
        done.push(d);
    }
    if left.is_empty() {
        clear_pending(&mut set, key);
    } else {
        let pending = Pending { actions: left, ..p };
        put_pending(
            &mut set,
            key,
            serde_json::to_vec(&pending).expect("actions serialise"),
        );
    }
    store.write_control(set)?;
    Ok(done)
}

fn audit(
    tenant: &str,
    actor: &str,
    at_ms: i64,
    revision: u64,
    action: &str,
    resource: String,
    after: serde_json::Value,
) -> AdminAuditEntry {
    AdminAuditEntry {
        revision,
        at_ms,
        actor: actor.to_owned(),
        tenant: Some(tenant.to_owned()),
        action: action.into(),
        resource,
        before: None,
        after: Some(after),
    }
}

/// The ids of `device`'s open alarms on this node.
fn open_alarms(store: &Store, device: &DeviceKey) -> Result<Vec<u64>, StoreError> {
    Ok(store
        .open_alarms_of(device)?
        .iter()
        .map(|a| a.id.0)
        .collect())
}

fn run_action(
    store: &Store,
    set: &mut WriteSet,
    revision: u64,
    actor: &str,
    at_ms: i64,
    action: &DataAction,
) -> Result<DataDone, StoreError> {
    match action {
        DataAction::Audit(entry) => {
            put_audit(set, std::slice::from_ref(entry));
            Ok(DataDone::Recorded)
        }
        DataAction::OfferMove(offer) => {
            put_move_offer(set, offer);
            let after = serde_json::to_value(offer).expect("an offer serialises");
            let resource = format!("devices/{}/{}", offer.from, offer.device);
            let entry = audit(
                &offer.from,
                actor,
                at_ms,
                revision,
                "offer device move",
                resource,
                after,
            );
            put_audit(set, &[entry]);
            Ok(DataDone::Recorded)
        }
        DataAction::AcceptMove {
            from,
            to,
            device,
            history,
        } => {
            let (from_key, to_key) = (DeviceKey::new(from, device), DeviceKey::new(to, device));
            let open = open_alarms(store, &from_key)?;
            if !open.is_empty() {
                return Ok(DataDone::Waiting(open));
            }
            let history = *history;
            let moved = if history {
                let moved = store.move_history(&from_key, &to_key)?;
                let gone = Gone {
                    at_ms,
                    to: Some(to.clone()),
                };
                put_gone(set, &from_key, &gone);
                moved
            } else {
                Moved::default()
            };
            let out = MoveDone {
                device: device.clone(),
                from: from.clone(),
                to: to.clone(),
                history_moved: history,
                events: moved.events,
                alarms: moved.alarms,
                positions: moved.positions,
                device_rows: moved.device_rows,
                revision,
            };
            delete_move_offer(set, from, device);
            let after = serde_json::to_value(&out).expect("a move serialises");
            put_audit(
                set,
                &[
                    audit(
                        from,
                        actor,
                        at_ms,
                        revision,
                        "device moved out",
                        format!("devices/{from}/{device}"),
                        after.clone(),
                    ),
                    audit(
                        to,
                        actor,
                        at_ms,
                        revision,
                        "device moved in",
                        format!("devices/{to}/{device}"),
                        after,
                    ),
                ],
            );
            Ok(DataDone::Moved(out))
        }
        DataAction::Erase {
            tenant,
            device,
            removed_from_directory,
        } => {
            let key = DeviceKey::new(tenant, device);
            let open = open_alarms(store, &key)?;
            if !open.is_empty() {
                return Ok(DataDone::Waiting(open));
            }
            let erased: Erased = store.erase_device(&key)?;
            put_gone(set, &key, &Gone { at_ms, to: None });
            let out = Erasure {
                tenant: tenant.clone(),
                device: device.clone(),
                at_ms,
                by: actor.to_owned(),
                removed_from_directory: *removed_from_directory,
                events: erased.events,
                positions: erased.positions,
                device_rows: erased.device_rows,
                alarms: erased.alarms,
                audit_texts: erased.audit_texts,
                notices: erased.notices,
            };
            if *removed_from_directory || erased != Erased::default() {
                let after = serde_json::to_value(&out).expect("an erasure serialises");
                let resource = format!("devices/{tenant}/{device}");
                put_audit(
                    set,
                    &[audit(
                        tenant,
                        actor,
                        at_ms,
                        revision,
                        "erase device",
                        resource,
                        after,
                    )],
                );
                metrics::counter!("vaka_erasures_total", "tenant" => tenant.clone()).increment(1);
                tracing::warn!(device = %key, by = actor, events = out.events,
                    positions = out.positions, alarms = out.alarms, "device's personal data erased");
            }
            Ok(DataDone::Erased(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vaka_core::{Alarm, AlarmId, AlarmKind, AlarmState, CentreId, Event, EventId, EventKind};
    use vaka_store::{GroupConfig, MemBackend, RecoverOptions};

    fn store() -> Store {
        let recover = RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1,
        };
        let backend = Arc::new(MemBackend::default());
        Store::open(backend, GroupConfig::default(), recover)
            .unwrap()
            .0
    }

    fn alarm(device: &DeviceKey, state: AlarmState) -> Alarm {
        Alarm {
            id: AlarmId(7),
            device: device.clone(),
            reference: "k7".into(),
            kind: AlarmKind::Help,
            code: "0010".into(),
            priority: 9,
            text: Some("fell in the hall".into()),
            callback: Vec::new(),
            state,
            step: 0,
            deadline: None,
            repeats: 0,
            created_ms: 1,
            updated_ms: 1,
            stages: Default::default(),
            test: false,
        }
    }

    fn write(store: &Store, f: impl FnOnce(&mut WriteSet)) {
        let mut set = WriteSet::new();
        f(&mut set);
        store.write_control(set).unwrap();
    }

    fn actions(store: &Store) -> Vec<String> {
        let audit =
            vaka_store::directory::read_admin_audit(store.backend().as_ref(), Some("t"), 0, 100)
                .unwrap();
        audit.into_iter().map(|e| e.action).collect()
    }

    /// An erasure recorded as pending runs when asked (as at a start after a crash), but not
    /// while this node holds an open alarm of the device: it waits, pending, with the events
    /// kept, and runs once the alarm is closed, leaving one audit entry and a record of the
    /// device gone.
    #[test]
    fn an_erasure_waits_for_the_devices_open_alarm_and_runs_once_it_is_closed() {
        let store = store();
        let device = DeviceKey::new("t", "d1");
        write(&store, |set| {
            let ev = Event {
                device: device.clone(),
                key: "k7".into(),
                received_ms: 1,
                kind: EventKind::Heartbeat,
                fix: None,
                raw: b"raw".to_vec(),
                occurred_ms: None,
            };
            set.put_event(EventId(7), &ev);
            set.put_alarm(&alarm(&device, AlarmState::Pending));
        });
        let erase = DataAction::Erase {
            tenant: "t".into(),
            device: "d1".into(),
            removed_from_directory: true,
        };
        let mut set = WriteSet::new();
        let key = put(&mut set, 3, "tok_a", 1_000, vec![erase]);
        store.write_control(set).unwrap();

        assert_eq!(run(&store, key).unwrap(), vec![DataDone::Waiting(vec![7])]);
        assert_eq!(run_all(&store).unwrap(), 1);
        assert_eq!(store.pending().unwrap().len(), 1);
        assert!(store.gone().unwrap().is_empty());
        assert!(actions(&store).is_empty());

        let closed = AlarmState::Closed {
            centre: CentreId::new("c1"),
            outcome: "helped up".into(),
        };
        write(&store, |set| set.put_alarm(&alarm(&device, closed)));
        assert_eq!(run_all(&store).unwrap(), 0);
        assert!(store.pending().unwrap().is_empty());
        assert_eq!(
            store.gone().unwrap()[&device],
            Gone {
                at_ms: 1_000,
                to: None
            }
        );
        assert_eq!(actions(&store), vec!["erase device"]);
        // Done: asking again does nothing, and writes no second entry.
        assert_eq!(run(&store, key).unwrap(), Vec::new());
        assert_eq!(run_all(&store).unwrap(), 0);
        assert_eq!(actions(&store), vec!["erase device"]);
    }
}
