//! Where a device's history went: erased, or moved to another tenant with its history. In a
//! cluster, a node that reads device events from `VAKA_IN` after such a change (it was behind,
//! or stopped) would otherwise store again what the change erased, or under the tenant it left.
//! `meta` `gone/<tenant> 0x00 <device>` (JSON [`Gone`]) is written with the change's record of
//! what it did; an event in an input stamped at or before `at_ms` is then dropped or stored
//! under the new tenant ([`Gone::redirect`]).
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use vaka_core::{Alarm, DeviceKey, Event, TenantId};

use crate::backend::{Cf, StoreError, WriteSet};
use crate::keys::device_prefix;
use crate::Store;

const PREFIX: &[u8] = b"gone/";

/// A device's history erased (`to: None`) or moved to tenant `to`, at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gone {
    pub at_ms: i64,
    pub to: Option<String>,
}

impl Gone {
    /// Whether what happened at `ms` is of the history the change erased or moved (at or
    /// before it), not of the device added again after it.
    pub fn covers(&self, ms: i64) -> bool {
        ms <= self.at_ms
    }

    /// What becomes of `ev` (of the device gone), in an input stamped at `stamped_ms`: from
    /// before the change, dropped or moved; from after it (the device added again), kept.
    pub fn redirect(&self, mut ev: Event, stamped_ms: i64) -> Option<Event> {
        if !self.covers(stamped_ms) {
            return Some(ev);
        }
        let to = self.to.as_ref()?;
        ev.device.tenant = TenantId::new(to);
        Some(ev)
    }
}

impl Gone {
    /// What becomes of another node's record of `alarm` (of the device gone), kept as a
    /// replica here: opened before the change, erased (as the holder erases its own) or
    /// moved; opened after it (the device added again), kept.
    pub fn redirect_alarm(&self, mut alarm: Alarm) -> Alarm {
        if !self.covers(alarm.created_ms) {
            return alarm;
        }
        match &self.to {
            None => alarm.erased(),
            Some(to) => {
                alarm.device.tenant = TenantId::new(to);
                alarm
            }
        }
    }
}

fn key(device: &DeviceKey) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&device_prefix(device));
    k
}

/// Records in `set` where `device`'s history went.
pub fn put_gone(set: &mut WriteSet, device: &DeviceKey, gone: &Gone) {
    let v = serde_json::to_vec(gone).expect("a record of a device gone serialises");
    set.put_raw(Cf::Meta, key(device), v);
}

impl Store {
    /// Every device whose history was erased or moved, as this node recorded it.
    pub fn gone(&self) -> Result<HashMap<DeviceKey, Gone>, StoreError> {
        let mut out = HashMap::new();
        let mut bad = None;
        self.backend().scan(Cf::Meta, PREFIX, &mut |k, v| {
            let parts: Vec<&[u8]> = k[PREFIX.len()..].split(|b| *b == 0).collect();
            let gone = serde_json::from_slice::<Gone>(v);
            match (parts.as_slice(), gone) {
                ([tenant, device, []], Ok(g)) => {
                    let (t, d) = (
                        String::from_utf8_lossy(tenant),
                        String::from_utf8_lossy(device),
                    );
                    out.insert(DeviceKey::new(t.as_ref(), d.as_ref()), g);
                }
                (_, g) => {
                    let reason = g.err().map_or("a bad key".into(), |e| e.to_string());
                    bad = Some((String::from_utf8_lossy(k).into_owned(), reason));
                }
            }
            bad.is_none()
        })?;
        match bad {
            Some((key, reason)) => Err(StoreError::Corrupt {
                cf: Cf::Meta.name(),
                key,
                reason,
            }),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::tests::mem_store;

    fn event(tenant: &str) -> Event {
        Event {
            device: DeviceKey::new(tenant, "d1"),
            key: "k1".into(),
            received_ms: 900,
            kind: vaka_core::EventKind::Heartbeat,
            fix: None,
            raw: Vec::new(),
            occurred_ms: None,
        }
    }

    #[test]
    fn events_from_before_the_change_are_dropped_or_moved_and_later_ones_kept() {
        let erased = Gone {
            at_ms: 1_000,
            to: None,
        };
        assert_eq!(erased.redirect(event("a"), 1_000), None);
        assert_eq!(erased.redirect(event("a"), 1_001), Some(event("a")));
        let moved = Gone {
            at_ms: 1_000,
            to: Some("b".into()),
        };
        assert_eq!(moved.redirect(event("a"), 999), Some(event("b")));
        assert_eq!(moved.redirect(event("a"), 1_001), Some(event("a")));
    }

    #[test]
    fn records_of_devices_gone_come_back_as_written() {
        let store = mem_store();
        let (a, b) = (DeviceKey::new("t1", "d1"), DeviceKey::new("t1", "d10"));
        let moved = Gone {
            at_ms: 5,
            to: Some("t2".into()),
        };
        let erased = Gone { at_ms: 6, to: None };
        let mut set = WriteSet::new();
        put_gone(&mut set, &a, &moved);
        put_gone(&mut set, &b, &erased);
        store.write_control(set).unwrap();
        let gone = store.gone().unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[&a], moved);
        assert_eq!(gone[&b], erased);
    }
}
