//! Retention of what devices sent, per kind (the router's sweep decides the cutoffs):
//! - telemetry-lane events (positions, heartbeats, sensor telemetry) with their raw messages,
//!   which hold the device's position and activity;
//! - closed alarms with their audit trails and their opening events, and the other alarm-lane
//!   events (resets, restorals, technical alarms) once no stored alarm is opened by them;
//! - a tenant's admin audit log.
//!
//! Event ids grow with arrival, so each lane's walk starts where its last one settled (`meta`
//! `retention/events_from` for telemetry, `retention/alarm_events_from` for the alarm lane) and
//! stops at the first event too young for any tenant: each sweep reads what expired since the
//! last one, not the whole column family.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::keys::{
    decode, decode_event, decode_id, id_key, StoredEvent, META_ALARM_EVENTS_SWEPT,
    META_EVENTS_SWEPT,
};
use vaka_core::{Alarm, DeviceKey, Lane, UnixMillis};

/// Deletes at most this many events per synced write.
const CHUNK: usize = 10_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventsPruned {
    /// Events deleted.
    pub deleted: u64,
    /// Where the next sweep starts (the first event id not settled).
    pub next_from: u64,
}

/// Deletes every telemetry-lane event whose time (its fix time if older than its arrival, else its
/// arrival) is before `cutoff(device)` (`None`: keep). `keep_after`: no tenant deletes anything
/// received at or after it (now minus the shortest retention), so the walk stops there.
pub fn prune_telemetry_events(
    backend: &dyn Backend,
    keep_after: UnixMillis,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
) -> Result<EventsPruned, StoreError> {
    prune_lane(backend, Lane::Telemetry, keep_after, cutoff)
}

/// The same for alarm-lane events, by their alarms' tenants' alarm period; an event that opened
/// an alarm still stored is kept with it (it goes when [`prune_alarms`] deletes the alarm).
pub fn prune_alarm_events(
    backend: &dyn Backend,
    keep_after: UnixMillis,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
) -> Result<EventsPruned, StoreError> {
    prune_lane(backend, Lane::Alarm, keep_after, cutoff)
}

fn prune_lane(
    backend: &dyn Backend,
    lane: Lane,
    keep_after: UnixMillis,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
) -> Result<EventsPruned, StoreError> {
    let watermark = match lane {
        Lane::Telemetry => META_EVENTS_SWEPT,
        Lane::Alarm => META_ALARM_EVENTS_SWEPT,
    };
    let start = backend
        .get(Cf::Meta, watermark)?
        .and_then(|v| decode_id(&v))
        .unwrap_or(0);
    let mut out = EventsPruned {
        deleted: 0,
        next_from: start,
    };
    // The first event kept only because its tenant keeps longer: the next sweep starts there.
    let mut first_kept: Option<u64> = None;
    let mut from = id_key(start);
    loop {
        let mut expired: Vec<u64> = Vec::new();
        let mut err = None;
        let mut done = true;
        let mut last_seen = None;
        backend.scan_from(Cf::Events, &[], &from, &mut |k, v| {
            let Some(id) = decode_id(k) else {
                return true;
            };
            let stored: StoredEvent = match decode_event(k, v) {
                Ok(e) => e,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            let ev = &stored.event;
            if ev.received_ms >= keep_after {
                return false;
            }
            last_seen = Some(id);
            if ev.lane() == lane {
                let at = ev
                    .fix
                    .map_or(ev.received_ms, |f| f.time_ms.min(ev.received_ms));
                match cutoff(&ev.device) {
                    Some(before) if at < before => expired.push(id),
                    _ => {
                        first_kept.get_or_insert(id);
                    }
                }
            }
            if expired.len() >= CHUNK {
                done = false;
                return false;
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let mut set = WriteSet::new();
        for id in expired {
            // Read after the scan (no store read inside one): an alarm still stored keeps the
            // event that opened it.
            if lane == Lane::Alarm && backend.get(Cf::Alarms, &id_key(id))?.is_some() {
                first_kept = Some(first_kept.map_or(id, |k| k.min(id)));
                continue;
            }
            set.delete(Cf::Events, id_key(id));
        }
        let settled = match (first_kept, last_seen) {
            (Some(kept), _) => kept,
            (None, Some(id)) => id + 1,
            (None, None) => out.next_from,
        };
        out.deleted += set.len() as u64;
        out.next_from = settled.max(out.next_from);
        if out.next_from != start || !set.is_empty() {
            set.put_raw(
                Cf::Meta,
                watermark.to_vec(),
                out.next_from.to_be_bytes().to_vec(),
            );
            backend.write_synced(std::slice::from_ref(&set))?;
        }
        match (done, last_seen) {
            (false, Some(id)) => from = id_key(id + 1),
            _ => return Ok(out),
        }
    }
}

/// What [`prune_alarms`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlarmsPruned {
    pub alarms: u64,
    pub audit_records: u64,
    /// Opening events deleted with their alarms.
    pub events: u64,
    /// Replicas of other nodes' alarms that ended as long ago (in a cluster).
    pub replicas: u64,
}

/// Deletes every alarm that ended (closed, cancelled, expired: not open) before
/// `cutoff(device)` (`None`: keep), with its audit trail and the event that opened it, and
/// the replicas of other nodes' alarms that ended as long ago.
pub fn prune_alarms(
    backend: &dyn Backend,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
) -> Result<AlarmsPruned, StoreError> {
    let mut ended = Vec::new();
    let mut err = None;
    backend.scan(Cf::Alarms, &[], &mut |k, v| {
        let a: Alarm = match decode(Cf::Alarms, k, v) {
            Ok(a) => a,
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        let end = a.stages.closed_ms.unwrap_or(a.updated_ms);
        if !a.is_open() && cutoff(&a.device).is_some_and(|before| end < before) {
            ended.push(a.id.0);
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let mut out = AlarmsPruned::default();
    for ids in ended.chunks(1_000) {
        let mut set = WriteSet::new();
        for &id in ids {
            let key = id_key(id);
            let mut trail = Vec::new();
            backend.scan(Cf::Audit, &key, &mut |k, _| {
                trail.push(k.to_vec());
                true
            })?;
            out.audit_records += trail.len() as u64;
            for k in trail {
                set.delete(Cf::Audit, k);
            }
            if backend.get(Cf::Events, &key)?.is_some() {
                out.events += 1;
                set.delete(Cf::Events, key.clone());
            }
            set.delete(Cf::Alarms, key);
            out.alarms += 1;
        }
        backend.write_synced(std::slice::from_ref(&set))?;
    }
    for keys in crate::replicas::ended_before(backend, cutoff)?.chunks(1_000) {
        let mut set = WriteSet::new();
        for k in keys {
            set.delete(Cf::Replicas, k.clone());
        }
        out.replicas += keys.len() as u64;
        backend.write_synced(std::slice::from_ref(&set))?;
    }
    Ok(out)
}

/// Deletes `tenant`'s admin audit entries made before `before_ms`; how many.
pub fn prune_admin_audit(
    backend: &dyn Backend,
    tenant: &str,
    before_ms: UnixMillis,
) -> Result<u64, StoreError> {
    let mut from = tenant.as_bytes().to_vec();
    from.push(0);
    let mut to = from.clone();
    to.extend_from_slice(&(before_ms.max(0) as u64).to_be_bytes());
    let mut n = 0u64;
    backend.scan(Cf::AdminAudit, &from, &mut |k, _| {
        if k >= to.as_slice() {
            return false;
        }
        n += 1;
        true
    })?;
    if n > 0 {
        backend.delete_range(Cf::AdminAudit, &from, &to)?;
    }
    Ok(n)
}

impl crate::Store {
    /// Deletes telemetry-lane events older than their device's `cutoff` (see
    /// [`prune_telemetry_events`]).
    pub fn prune_telemetry_events(
        &self,
        keep_after: UnixMillis,
        cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
    ) -> Result<EventsPruned, StoreError> {
        prune_telemetry_events(self.backend().as_ref(), keep_after, cutoff)
    }

    /// See [`prune_alarm_events`].
    pub fn prune_alarm_events(
        &self,
        keep_after: UnixMillis,
        cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
    ) -> Result<EventsPruned, StoreError> {
        prune_alarm_events(self.backend().as_ref(), keep_after, cutoff)
    }

    /// See [`prune_alarms`].
    pub fn prune_alarms(
        &self,
        cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
    ) -> Result<AlarmsPruned, StoreError> {
        prune_alarms(self.backend().as_ref(), cutoff)
    }

    /// See [`prune_admin_audit`].
    pub fn prune_admin_audit(
        &self,
        tenant: &str,
        before_ms: UnixMillis,
    ) -> Result<u64, StoreError> {
        prune_admin_audit(self.backend().as_ref(), tenant, before_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemBackend;
    use vaka_core::event::AlarmInfo;
    use vaka_core::gps::Fix;
    use vaka_core::{Event, EventId, EventKind};

    fn event(device: &str, kind: EventKind, received_ms: i64, fix_ms: Option<i64>) -> Event {
        Event {
            device: DeviceKey::new("t", device),
            key: format!("k{received_ms}"),
            received_ms,
            kind,
            fix: fix_ms.map(|t| Fix::at(t, 57.7, 11.9)),
            raw: b"raw".to_vec(),
            occurred_ms: None,
        }
    }

    fn ids(b: &MemBackend) -> Vec<u64> {
        let mut out = Vec::new();
        b.scan(Cf::Events, &[], &mut |k, _| {
            out.extend(decode_id(k));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn deletes_expired_telemetry_keeps_alarms_and_young_events_and_resumes() {
        let b = MemBackend::default();
        let mut set = WriteSet::new();
        let rows = [
            (1, event("a", EventKind::Position, 100, Some(90))),
            (
                2,
                event(
                    "a",
                    EventKind::Alarm(AlarmInfo {
                        code: "0010".into(),
                        priority: 1,
                        text: None,
                        callback: Vec::new(),
                    }),
                    110,
                    Some(105),
                ),
            ),
            (3, event("a", EventKind::Heartbeat, 120, None)),
            // received late, but its fix is old: judged by the fix time
            (4, event("a", EventKind::Position, 900, Some(130))),
            (5, event("long", EventKind::Position, 140, Some(140))),
            (6, event("a", EventKind::Position, 1_000, Some(1_000))),
        ];
        for (id, e) in &rows {
            set.put_event(EventId(*id), e);
        }
        b.write_synced(&[set]).unwrap();
        // device "long" keeps everything; others drop what is before 500; nothing received at or
        // after 950 may be deleted by anyone.
        let mut cutoff = |d: &DeviceKey| (d.device.0 != "long").then_some(500);
        let r = prune_telemetry_events(&b, 950, &mut cutoff).unwrap();
        assert_eq!(r.deleted, 3);
        assert_eq!(ids(&b), vec![2, 5, 6]);
        // The long-retention event holds the watermark back so a later sweep still sees it.
        assert_eq!(r.next_from, 5);
        let mut all = |_: &DeviceKey| Some(2_000);
        let r = prune_telemetry_events(&b, 5_000, &mut all).unwrap();
        assert_eq!(r.deleted, 2);
        assert_eq!(ids(&b), vec![2]);
        assert_eq!(r.next_from, 7);
        // Recovery never hands out an id the sweep already passed.
        let rec = crate::recovery::recover(
            &b,
            &crate::RecoverOptions {
                now_ms: 0,
                idem_window_ms: 1,
            },
        )
        .unwrap();
        assert!(rec.next_event_id >= 7, "{}", rec.next_event_id);
    }

    #[test]
    fn sweeps_more_than_one_chunk() {
        let b = MemBackend::default();
        let n = CHUNK as u64 * 2 + 7;
        let mut set = WriteSet::new();
        for id in 1..=n {
            set.put_event(
                EventId(id),
                &event("a", EventKind::Heartbeat, id as i64, None),
            );
        }
        b.write_synced(&[set]).unwrap();
        let r = prune_telemetry_events(&b, i64::MAX, &mut |_| Some(i64::MAX)).unwrap();
        assert_eq!(r.deleted, n);
        assert!(ids(&b).is_empty());
        assert_eq!(r.next_from, n + 1);
    }
}
