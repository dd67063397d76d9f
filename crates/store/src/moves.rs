//! A device moving to another tenant (a summer house in a neighbouring municipality): the
//! owner's offer waits in `meta` (`move/<from> 0x00 <device>`, JSON) until the receiving
//! tenant accepts it; with both tenants' consent its history moves with it
//! ([`Store::move_history`]): its events and alarms name the new tenant, its positions and
//! per-device rows are keyed under it. Without, the history stays with the first owner.
use serde::{Deserialize, Serialize};

use crate::backend::{Cf, StoreError, WriteSet};
use crate::erasure::collect;
use crate::keys::{decode, decode_event, device_prefix};
use crate::Store;
use vaka_core::{Alarm, DeviceKey, TenantId};

/// An owner's offer of one of its devices to another tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveOffer {
    pub from: String,
    pub device: String,
    pub to: String,
    /// The owner consents to its history moving too (the receiver must consent as well).
    pub history: bool,
    /// Who offered it, when.
    pub by: String,
    pub at_ms: i64,
}

fn key(from: &str, device: &str) -> Vec<u8> {
    let mut k = b"move/".to_vec();
    k.extend_from_slice(from.as_bytes());
    k.push(0);
    k.extend_from_slice(device.as_bytes());
    k
}

/// Adds (or replaces) `offer` in `set`.
pub fn put_move_offer(set: &mut WriteSet, offer: &MoveOffer) {
    let v = serde_json::to_vec(offer).expect("an offer serialises");
    set.put_raw(Cf::Meta, key(&offer.from, &offer.device), v);
}

pub fn delete_move_offer(set: &mut WriteSet, from: &str, device: &str) {
    set.delete(Cf::Meta, key(from, device));
}

/// What moved with a device's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub events: u64,
    pub alarms: u64,
    pub positions: u64,
    /// GPS record, last heard, announced interval, rule states, idempotency entries.
    pub device_rows: u64,
}

impl Store {
    pub fn move_offer(&self, from: &str, device: &str) -> Result<Option<MoveOffer>, StoreError> {
        let Some(v) = self.backend().get(Cf::Meta, &key(from, device))? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                cf: Cf::Meta.name(),
                key: format!("move/{from}/{device}"),
                reason: e.to_string(),
            })
    }

    /// Moves `from`'s history to `to` (same device id, another tenant). Rows already under
    /// `to` (written since the device moved) are kept, not overwritten. The device must have
    /// no open alarm (the caller checks) and be out of `from`'s directory already.
    pub fn move_history(&self, from: &DeviceKey, to: &DeviceKey) -> Result<Moved, StoreError> {
        let b = self.backend().as_ref();
        let mut done = Moved::default();
        let mut set = WriteSet::new();
        let tenant = TenantId::new(&to.tenant.0);
        let events = collect(b, Cf::Events, &[], &mut |k, v| {
            let mut e = decode_event(k, v)?;
            if &e.event.device != from {
                return Ok(None);
            }
            e.event.device.tenant = tenant.clone();
            Ok(Some(postcard::to_allocvec(&e).expect("an event encodes")))
        })?;
        done.events = events.len() as u64;
        let alarms = collect(b, Cf::Alarms, &[], &mut |k, v| {
            let mut a: Alarm = decode(Cf::Alarms, k, v)?;
            if &a.device != from {
                return Ok(None);
            }
            a.device.tenant = tenant.clone();
            Ok(Some(postcard::to_allocvec(&a).expect("an alarm encodes")))
        })?;
        let replicas = crate::replicas::rewrite_of(b, from, &mut |r| {
            let mut moved = r.clone();
            moved.alarm.device.tenant = tenant.clone();
            Some(moved)
        })?;
        done.alarms = (alarms.len() + replicas.len()) as u64;
        for (k, v) in replicas {
            set.put_raw(Cf::Replicas, k, v);
        }
        for (k, v) in events {
            set.put_raw(Cf::Events, k, v);
        }
        for (k, v) in alarms {
            set.put_raw(Cf::Alarms, k, v);
        }
        let (old, new) = (device_prefix(from), device_prefix(to));
        for cf in [
            Cf::Positions,
            Cf::Gps,
            Cf::Seen,
            Cf::Hbi,
            Cf::Rules,
            Cf::Idem,
        ] {
            for (k, v) in collect(b, cf, &old, &mut |_, v| Ok(Some(v.to_vec())))? {
                let mut moved = new.clone();
                moved.extend_from_slice(&k[old.len()..]);
                if b.get(cf, &moved)?.is_none() {
                    set.put_raw(cf, moved, v);
                }
                set.delete(cf, k);
                match cf {
                    Cf::Positions => done.positions += 1,
                    _ => done.device_rows += 1,
                }
            }
        }
        if !set.is_empty() {
            b.write_synced(std::slice::from_ref(&set))?;
        }
        Ok(done)
    }
}
