//! Positions: each device's GPS record (latest position plus the filter and fence state that must
//! survive a restart) and its history of accepted fixes in fix-time order, with retention.
//!
//! Every event, a position event included, is also kept in `events` with its raw message (audit);
//! a history row points to it by event id. Filtered fixes have no row.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::keys::{decode, decode_device_prefix, device_prefix};
use serde::{Deserialize, Serialize};
use vaka_core::gps::{DeviceTrack, Fix};
use vaka_core::{DeviceKey, EventId, UnixMillis};

/// An accepted fix and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPosition {
    /// The event that carried it.
    pub event: EventId,
    /// When the engine received it (the fix time is in `fix`).
    pub received_ms: UnixMillis,
    pub fix: Fix,
}

/// What the router keeps per device about positions, written whenever it changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpsRecord {
    /// The newest accepted fix (a late fix goes to the history only).
    pub latest: Option<StoredPosition>,
    pub track: DeviceTrack,
}

impl GpsRecord {
    /// Whether the record holds a position with a fix time before `before` (retention).
    pub fn holds_fix_before(&self, before: UnixMillis) -> bool {
        self.latest.as_ref().is_some_and(|p| p.fix.time_ms < before)
            || self
                .track
                .filter
                .newest_fix_ms()
                .is_some_and(|t| t < before)
    }
}

/// Fix times sort as signed numbers: flip the sign bit, big-endian.
fn time_bytes(time_ms: i64) -> [u8; 8] {
    ((time_ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(b: &[u8]) -> Option<i64> {
    let raw = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    Some((raw ^ (1 << 63)) as i64)
}

/// device prefix + fix time. Two different fixes of one device stamped the same millisecond keep
/// only the later written: a resend overwrites itself, which keeps replays idempotent.
pub fn position_key(device: &DeviceKey, time_ms: i64) -> Vec<u8> {
    let mut k = device_prefix(device);
    k.extend_from_slice(&time_bytes(time_ms));
    k
}

impl WriteSet {
    /// The device's GPS record (latest position, filter and fence state).
    pub fn put_gps(&mut self, device: &DeviceKey, record: &GpsRecord) {
        self.put(Cf::Gps, device_prefix(device), record);
    }

    /// One history row, keyed by the fix time.
    pub fn put_position(&mut self, device: &DeviceKey, position: &StoredPosition) {
        self.put(
            Cf::Positions,
            position_key(device, position.fix.time_ms),
            position,
        );
    }
}

impl WriteSet {
    /// A heartbeat interval the device announced (SCAIP hbi), overriding the configured one.
    pub fn put_heartbeat_interval(&mut self, device: &DeviceKey, secs: u32) {
        self.put_raw(Cf::Hbi, device_prefix(device), secs.to_be_bytes().to_vec());
    }
}

/// Every announced heartbeat interval (read at start-up; one small entry per device).
pub fn load_heartbeat_intervals(
    backend: &dyn Backend,
) -> Result<Vec<(DeviceKey, u32)>, StoreError> {
    let mut out = Vec::new();
    backend.scan(Cf::Hbi, &[], &mut |k, v| {
        let secs = v
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        if let (Some(device), Some(secs)) = (decode_device_prefix(k), secs) {
            out.push((device, secs));
        }
        true
    })?;
    Ok(out)
}

/// The device's GPS record, if it ever had an accepted fix.
pub fn load_gps(
    backend: &dyn Backend,
    device: &DeviceKey,
) -> Result<Option<GpsRecord>, StoreError> {
    let key = device_prefix(device);
    match backend.get(Cf::Gps, &key)? {
        Some(v) => Ok(Some(decode(Cf::Gps, &key, &v)?)),
        None => Ok(None),
    }
}

/// The device's latest durable position (what a centre offer shows), if any.
pub fn latest_position(
    backend: &dyn Backend,
    device: &DeviceKey,
) -> Result<Option<StoredPosition>, StoreError> {
    Ok(load_gps(backend, device)?.and_then(|r| r.latest))
}

/// History rows of a device with fix time in `[from_ms, to_ms)`, oldest first, at most `limit`.
pub fn position_history(
    backend: &dyn Backend,
    device: &DeviceKey,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<Vec<StoredPosition>, StoreError> {
    let prefix = device_prefix(device);
    let from = position_key(device, from_ms);
    let mut out = Vec::new();
    let mut err = None;
    if limit == 0 {
        return Ok(out);
    }
    backend.scan(Cf::Positions, &prefix, &mut |k, v| {
        if k < from.as_slice() {
            return true;
        }
        match time_of(&k[prefix.len()..]) {
            Some(t) if t >= to_ms => return false,
            Some(_) => {}
            None => return true,
        }
        match decode(Cf::Positions, k, v) {
            Ok(row) => out.push(row),
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

/// What one history sweep did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PositionsPruned {
    /// Devices whose history was pruned.
    pub devices: usize,
    /// History rows deleted.
    pub rows: u64,
    /// Devices whose GPS record still holds a position older than their cutoff (the cutoff given):
    /// the router owns those records, so the caller asks the device's shard to forget it.
    pub stale_records: Vec<(DeviceKey, UnixMillis)>,
}

/// Deletes, for every device with a GPS record, the history rows whose fix time is before
/// `cutoff(device)` (`None`: keep everything), and lists the records that hold such a position.
pub fn prune_positions(
    backend: &dyn Backend,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
) -> Result<PositionsPruned, StoreError> {
    let mut out = PositionsPruned::default();
    let mut devices = Vec::new();
    let mut err = None;
    backend.scan(Cf::Gps, &[], &mut |k, v| {
        let Some(device) = decode_device_prefix(k) else {
            return true;
        };
        let Some(before) = cutoff(&device) else {
            return true;
        };
        match decode::<GpsRecord>(Cf::Gps, k, v) {
            Ok(rec) if rec.holds_fix_before(before) => {
                out.stale_records.push((device.clone(), before))
            }
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        devices.push((device, before));
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    for (device, before) in devices {
        let (from, to) = (
            position_key(&device, i64::MIN),
            position_key(&device, before),
        );
        // Counted for the sweep's metrics: the rows are read once more before they go.
        let mut rows = 0u64;
        backend.scan(Cf::Positions, &device_prefix(&device), &mut |k, _| {
            if k >= to.as_slice() {
                return false;
            }
            rows += 1;
            true
        })?;
        if rows > 0 {
            backend.delete_range(Cf::Positions, &from, &to)?;
        }
        out.rows += rows;
        out.devices += 1;
    }
    Ok(out)
}

impl crate::Store {
    /// A device's GPS record (latest position, filter and fence state), if it has one.
    pub fn gps_record(&self, device: &DeviceKey) -> Result<Option<GpsRecord>, StoreError> {
        load_gps(self.backend().as_ref(), device)
    }

    /// The heartbeat intervals devices announced, in seconds.
    pub fn heartbeat_intervals(&self) -> Result<Vec<(DeviceKey, u32)>, StoreError> {
        load_heartbeat_intervals(self.backend().as_ref())
    }

    /// Deletes position history older than each device's `cutoff` (see [`prune_positions`]).
    pub fn prune_positions(
        &self,
        cutoff: &mut dyn FnMut(&DeviceKey) -> Option<UnixMillis>,
    ) -> Result<PositionsPruned, StoreError> {
        prune_positions(self.backend().as_ref(), cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_times_sort_as_numbers() {
        let d = DeviceKey::new("t", "d");
        let ts = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in ts.windows(2) {
            assert!(position_key(&d, w[0]) < position_key(&d, w[1]), "{w:?}");
        }
        for t in ts {
            assert_eq!(time_of(&time_bytes(t)), Some(t));
        }
        // A device's keys never run into the next device's ("d" vs "d2").
        let d2 = DeviceKey::new("t", "d2");
        assert!(position_key(&d, i64::MAX) < position_key(&d2, i64::MIN));
    }
}
