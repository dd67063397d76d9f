//! The shard's GPS part: every fix a device sends (in a position event or with an alarm) goes
//! through that device's filters and fences (`vaka_core::gps::DeviceTrack`); what changed is
//! written into the shard's current write set, so the position, the state that decided it and any
//! geofence alarm it raised become durable together.
//!
//! State per device is the store's `GpsRecord`, loaded on the device's first fix after a start
//! (a point read) and kept in memory; the map is bounded by the devices in the directory, since
//! the shard refuses unknown devices first. It is persisted whenever it changes, so a restart
//! resumes with the same filter and fence state: no exit is raised twice, none pending is lost.
//! If a commit fails, the devices it touched are forgotten and reloaded from the store.
use std::collections::HashMap;
use vaka_core::gps::{Fix, GpsPlan, Observed, Verdict};
use vaka_core::{DeviceKey, Event, EventId, EventKind, UnixMillis};
use vaka_store::{GpsRecord, Store, StoreError, StoredPosition, WriteSet};

#[derive(Default)]
pub(crate) struct Positions {
    records: HashMap<DeviceKey, GpsRecord>,
}

impl Positions {
    /// Runs `fix` (carried by `ev`, stored as event `id`) through the device's filters and fences
    /// and writes the new history row and GPS record into `set`. `Err` only if the device's stored
    /// record cannot be read; then nothing was changed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        store: &Store,
        plan: &GpsPlan,
        ev: &Event,
        id: EventId,
        fix: &Fix,
        now: UnixMillis,
        set: &mut WriteSet,
    ) -> Result<Observed, StoreError> {
        if !self.records.contains_key(&ev.device) {
            let loaded = store.gps_record(&ev.device)?;
            self.records
                .insert(ev.device.clone(), loaded.unwrap_or_default());
        }
        let rec = self.records.get_mut(&ev.device).expect("loaded just above");
        let filter_before = rec.track.filter.clone();
        let fences_before: Vec<_> = rec.track.fences.iter().map(|m| m.tracker.clone()).collect();
        let is_alarm = ev.lane() == vaka_core::Lane::Alarm;
        let observed = rec.track.observe(
            plan.filter(&ev.device),
            plan.fences(&ev.device),
            fix,
            is_alarm,
            now,
        );
        count(observed.verdict);
        let position = StoredPosition {
            event: id,
            received_ms: ev.received_ms,
            fix: *fix,
        };
        if observed.to_history() {
            set.put_position(&ev.device, &position);
        }
        let mut changed = rec.track.filter != filter_before
            || rec.track.fences.len() != fences_before.len()
            || rec
                .track
                .fences
                .iter()
                .zip(&fences_before)
                .any(|(m, t)| m.tracker != *t);
        if observed.is_latest() {
            rec.latest = Some(position);
            changed = true;
        }
        if changed {
            set.put_gps(&ev.device, rec);
        }
        for e in &observed.fences {
            let kind = if e.exit { "exit" } else { "restoral" };
            metrics::counter!("vaka_geofence_transitions_total", "kind" => kind).increment(1);
        }
        Ok(observed)
    }

    /// Retention (GDPR): removes from `device`'s GPS record every position with a fix time before
    /// `before` (its latest position, the filter's last fix) and writes the record into `set`.
    /// Fence states hold no coordinates and stay. Returns whether anything was removed.
    pub(crate) fn expire(
        &mut self,
        store: &Store,
        device: &DeviceKey,
        before: UnixMillis,
        set: &mut WriteSet,
    ) -> Result<bool, StoreError> {
        if !self.records.contains_key(device) {
            match store.gps_record(device)? {
                Some(r) => self.records.insert(device.clone(), r),
                None => return Ok(false),
            };
        }
        let rec = self.records.get_mut(device).expect("loaded just above");
        let mut changed = rec.track.filter.forget_before(before);
        if rec.latest.as_ref().is_some_and(|p| p.fix.time_ms < before) {
            rec.latest = None;
            changed = true;
        }
        if changed {
            set.put_gps(device, rec);
        }
        Ok(changed)
    }

    /// Drops what memory holds for `device` (its last commit failed): the next fix reloads it.
    pub(crate) fn forget(&mut self, device: &DeviceKey) {
        self.records.remove(device);
    }
}

/// The engine-made event that opens (exit) or restores (re-entry) a geofence alarm. Its key is
/// unique per fence, direction and fix time, so it is never taken for a resend of another.
pub(crate) fn fence_event(
    device: &DeviceKey,
    fence: &str,
    exit: bool,
    fix: &Fix,
    now: UnixMillis,
) -> Event {
    let dir = if exit { "exit" } else { "back" };
    Event {
        device: device.clone(),
        key: format!("geofence-{dir}-{fence}-{}", fix.time_ms),
        received_ms: now,
        kind: EventKind::Geofence {
            fence: fence.to_string(),
            exit,
        },
        fix: Some(*fix),
        raw: b"geofence".to_vec(),
        occurred_ms: None,
    }
}

fn count(v: Verdict) {
    let verdict = match v {
        Verdict::Accept => "accept",
        Verdict::AcceptLate => "late",
        Verdict::AlarmOnly(_) => "alarm_only",
        Verdict::Reject(_) => "reject",
    };
    metrics::counter!("vaka_gps_fixes_total", "verdict" => verdict).increment(1);
    if let Some(r) = v.reason() {
        metrics::counter!("vaka_gps_fixes_filtered_total", "reason" => r.as_str()).increment(1);
    }
}
