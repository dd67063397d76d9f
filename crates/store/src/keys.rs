//! Key encodings and typed writes for the domain's records (layout in the crate docs).
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use serde::{Deserialize, Serialize};
use vaka_core::alarm::{AuditRecord, Notice};
use vaka_core::idempotency::{Answer, IdemKey};
use vaka_core::rules::RuleState;
use vaka_core::{Alarm, AlarmId, CentreId, DeviceKey, Event, EventId, UnixMillis};

/// An event as stored: its id next to it so a scan needs no key decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: EventId,
    pub event: Event,
}

/// An event stored before format 3: the same fields up to `raw`, no device time. Postcard is
/// positional, so such a record ends where the device time would begin; it is read through
/// this shape when the current one runs out of bytes ([`decode_event`]). Events are never
/// rewritten, so format 3 needs no migration of them.
#[derive(Deserialize)]
struct StoredEventV2 {
    id: EventId,
    event: EventV2,
}

#[derive(Deserialize)]
struct EventV2 {
    device: DeviceKey,
    key: String,
    received_ms: UnixMillis,
    kind: vaka_core::EventKind,
    fix: Option<vaka_core::gps::Fix>,
    raw: Vec<u8>,
}

/// Reads a stored event of format 3, or of format 2 and before (no device time).
pub(crate) fn decode_event(key: &[u8], v: &[u8]) -> Result<StoredEvent, StoreError> {
    decode::<StoredEvent>(Cf::Events, key, v).or_else(|current| {
        let old: StoredEventV2 = postcard::from_bytes(v).map_err(|_| current)?;
        let e = old.event;
        Ok(StoredEvent {
            id: old.id,
            event: Event {
                device: e.device,
                key: e.key,
                received_ms: e.received_ms,
                kind: e.kind,
                fix: e.fix,
                raw: e.raw,
                occurred_ms: None,
            },
        })
    })
}

/// An idempotency entry as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    pub answer: Answer,
    pub at_ms: UnixMillis,
}

/// Meta key of the last outbox sequence given out.
pub const META_OUTBOX_SEQ: &[u8] = b"outbox_seq";

/// Meta key of the first event id the retention sweep has not settled yet (u64).
pub const META_EVENTS_SWEPT: &[u8] = b"retention/events_from";
/// The first alarm-lane event id the retention sweep has not settled.
pub const META_ALARM_EVENTS_SWEPT: &[u8] = b"retention/alarm_events_from";

/// centre 0x00 seq: one centre's notices in sequence order.
pub fn outbox_key(centre: &str, seq: u64) -> Vec<u8> {
    let mut k = outbox_prefix(centre);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn outbox_prefix(centre: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(centre.len() + 9);
    k.extend_from_slice(centre.as_bytes());
    k.push(0);
    k
}

fn cursor_key(centre: &str) -> Vec<u8> {
    format!("cursor/{centre}").into_bytes()
}

/// The notices for `centre` with sequence above `after`, in order, at most `limit`.
pub fn read_outbox(
    backend: &dyn Backend,
    centre: &CentreId,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Notice)>, StoreError> {
    let prefix = outbox_prefix(centre.as_str());
    let mut out = Vec::new();
    let mut err = None;
    let from = outbox_key(centre.as_str(), after.saturating_add(1));
    backend.scan_from(Cf::Outbox, &prefix, &from, &mut |k, v| {
        let Some(seq) = decode_id(&k[prefix.len()..]) else {
            return true;
        };
        match decode(Cf::Outbox, k, v) {
            Ok(n) => out.push((seq, n)),
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        out.len() < limit
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The last outbox sequence `centre` acknowledged (0 if never).
pub fn load_cursor(backend: &dyn Backend, centre: &CentreId) -> Result<u64, StoreError> {
    Ok(backend
        .get(Cf::Meta, &cursor_key(centre.as_str()))?
        .and_then(|v| decode_id(&v))
        .unwrap_or(0))
}

pub fn id_key(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn decode_id(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// tenant 0x00 device 0x00 key. Tenant and device ids never contain NUL (config validates it).
pub fn idem_key(k: &IdemKey) -> Vec<u8> {
    let mut out = device_prefix(&k.device);
    out.extend_from_slice(k.key.as_bytes());
    out
}

pub fn decode_idem_key(key: &[u8]) -> Option<IdemKey> {
    let mut parts = key.splitn(3, |b| *b == 0);
    let tenant = std::str::from_utf8(parts.next()?).ok()?;
    let device = std::str::from_utf8(parts.next()?).ok()?;
    let k = std::str::from_utf8(parts.next()?).ok()?;
    Some(IdemKey {
        device: DeviceKey::new(tenant, device),
        key: k.to_string(),
    })
}

pub fn decode_device_prefix(key: &[u8]) -> Option<DeviceKey> {
    let mut parts = key.split(|b| *b == 0);
    let tenant = std::str::from_utf8(parts.next()?).ok()?;
    let device = std::str::from_utf8(parts.next()?).ok()?;
    Some(DeviceKey::new(tenant, device))
}

pub fn device_prefix(d: &DeviceKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.tenant.0.len() + d.device.0.len() + 2);
    out.extend_from_slice(d.tenant.0.as_bytes());
    out.push(0);
    out.extend_from_slice(d.device.0.as_bytes());
    out.push(0);
    out
}

/// `rules` key: the device's prefix, then the rule id.
pub fn rule_key(d: &DeviceKey, rule: &str) -> Vec<u8> {
    let mut k = device_prefix(d);
    k.extend_from_slice(rule.as_bytes());
    k
}

/// The device and rule id of a `rules` key.
pub fn decode_rule_key(key: &[u8]) -> Option<(DeviceKey, String)> {
    let device = decode_device_prefix(key)?;
    let rest = &key[device_prefix(&device).len()..];
    Some((device, String::from_utf8(rest.to_vec()).ok()?))
}

pub fn audit_key(alarm: AlarmId, seq: u32) -> Vec<u8> {
    let mut k = id_key(alarm.0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    cf: Cf,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(value).map_err(|e| StoreError::Corrupt {
        cf: cf.name(),
        key: hex_of(key),
        reason: e.to_string(),
    })
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The audit trail of one alarm, in order.
/// The audit sequence number alarm `id`'s next record takes: past its last one (an alarm
/// taken over from another cluster node has its trail here from the holder's count on).
pub fn next_audit_seq(backend: &dyn Backend, id: AlarmId) -> Result<u32, StoreError> {
    let mut next = 0u32;
    backend.scan(Cf::Audit, &id_key(id.0), &mut |k, _| {
        if let Some(seq) = k.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            next = next.max(u32::from_be_bytes(seq) + 1);
        }
        true
    })?;
    Ok(next)
}

pub fn load_audit(backend: &dyn Backend, id: AlarmId) -> Result<Vec<AuditRecord>, StoreError> {
    let prefix = id_key(id.0);
    let mut out = Vec::new();
    let mut err = None;
    backend.scan(
        Cf::Audit,
        &prefix,
        &mut |k, v| match decode(Cf::Audit, k, v) {
            Ok(r) => {
                out.push(r);
                true
            }
            Err(e) => {
                err = Some(e);
                false
            }
        },
    )?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Reads one stored event (an alarm's opening event has the alarm's id).
pub fn load_event(backend: &dyn Backend, id: EventId) -> Result<Option<Event>, StoreError> {
    let key = id_key(id.0);
    match backend.get(Cf::Events, &key)? {
        Some(v) => Ok(Some(decode_event(&key, &v)?.event)),
        None => Ok(None),
    }
}

/// The outbox keys of `centre` with sequence in `after+1 ..= through`, at most `limit` of them:
/// what an acknowledgement up to `through` lets go (`after`: where the last pruning stopped).
pub fn outbox_keys_through(
    backend: &dyn Backend,
    centre: &CentreId,
    after: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = outbox_prefix(centre.as_str());
    let from = outbox_key(centre.as_str(), after.saturating_add(1));
    let mut out = Vec::new();
    backend.scan_from(Cf::Outbox, &prefix, &from, &mut |k, _| {
        match decode_id(&k[prefix.len()..]) {
            Some(seq) if seq <= through => out.push(k.to_vec()),
            _ => return false,
        }
        out.len() < limit
    })?;
    Ok(out)
}

/// Reads one alarm record.
pub fn load_alarm(backend: &dyn Backend, id: AlarmId) -> Result<Option<Alarm>, StoreError> {
    let key = id_key(id.0);
    match backend.get(Cf::Alarms, &key)? {
        Some(v) => Ok(Some(decode(Cf::Alarms, &key, &v)?)),
        None => Ok(None),
    }
}

/// Typed writes, so callers never build keys by hand.
impl WriteSet {
    pub fn put_event(&mut self, id: EventId, event: &Event) {
        self.put(
            Cf::Events,
            id_key(id.0),
            &StoredEvent {
                id,
                event: event.clone(),
            },
        );
        self.events += 1;
    }

    /// Writes the alarm and keeps the open-alarm index in step with its state.
    pub fn put_alarm(&mut self, alarm: &Alarm) {
        self.put(Cf::Alarms, id_key(alarm.id.0), alarm);
        if alarm.is_open() {
            self.put_raw(Cf::Open, id_key(alarm.id.0), Vec::new());
        } else {
            self.delete(Cf::Open, id_key(alarm.id.0));
        }
    }

    /// Forgets alarm `id` (its audit trail stays): a cluster node whose alarm another node
    /// took over while this one was away, which keeps it as a replica from then on.
    pub fn drop_alarm(&mut self, id: AlarmId) {
        self.delete(Cf::Alarms, id_key(id.0));
        self.delete(Cf::Open, id_key(id.0));
    }

    pub fn put_idem(&mut self, key: &IdemKey, answer: Answer, at_ms: UnixMillis) {
        self.put(Cf::Idem, idem_key(key), &IdemRecord { answer, at_ms });
    }

    pub fn delete_idem(&mut self, key: &IdemKey) {
        self.delete(Cf::Idem, idem_key(key));
    }

    pub fn put_audit(&mut self, seq: u32, rec: &AuditRecord) {
        self.put(Cf::Audit, audit_key(rec.alarm, seq), rec);
    }

    /// Queues a notice for `centre`'s outbox; the committer numbers it.
    pub fn push_notice(&mut self, centre: &CentreId, notice: &Notice) {
        let bytes = postcard::to_stdvec(notice).expect("serialising to a Vec cannot fail");
        self.outbox.push((centre.as_str().to_string(), bytes));
    }

    /// When a supervised device was last heard.
    pub fn put_seen(&mut self, device: &DeviceKey, at_ms: UnixMillis) {
        self.put_raw(
            Cf::Seen,
            device_prefix(device),
            (at_ms as u64).to_be_bytes().to_vec(),
        );
    }

    /// An activity rule's state on a device (JSON: rule states gain fields as rules do).
    pub fn put_rule_state(&mut self, device: &DeviceKey, rule: &str, state: &RuleState) {
        let bytes = serde_json::to_vec(state).expect("a rule state serialises");
        self.put_raw(Cf::Rules, rule_key(device, rule), bytes);
    }

    pub fn delete_rule_state(&mut self, device: &DeviceKey, rule: &str) {
        self.delete(Cf::Rules, rule_key(device, rule));
    }

    pub fn put_cursor(&mut self, centre: &CentreId, seq: u64) {
        self.put_raw(
            Cf::Meta,
            cursor_key(centre.as_str()),
            seq.to_be_bytes().to_vec(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idem_key_round_trips_and_keeps_device_prefix() {
        let k = IdemKey {
            device: DeviceKey::new("göteborg", "100001"),
            key: "ref42".into(),
        };
        let enc = idem_key(&k);
        assert!(enc.starts_with(&device_prefix(&k.device)));
        assert_eq!(decode_idem_key(&enc), Some(k));
    }

    #[test]
    fn id_keys_sort_numerically() {
        assert!(id_key(255) < id_key(256));
        assert_eq!(decode_id(&id_key(1 << 40)), Some(1 << 40));
        assert!(audit_key(AlarmId(1), u32::MAX) < audit_key(AlarmId(2), 0));
    }
}
