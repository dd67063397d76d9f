//! One tenant's data written back from an export: alarms with their audit trails, events,
//! positions and admin audit entries, under the keys they had (ids kept, so an alarm's trail,
//! its opening event and its positions still point at each other).
//!
//! Before anything is written, each record is checked against what is stored
//! ([`Store::import_found`]): absent (to write), the same (already imported: skipped, so an
//! import can be repeated), or something else under its key (another tenant's alarm with the
//! same id: the import is refused before it writes, see `vaka_admin`).
use crate::backend::{Cf, StoreError, WriteSet};
use crate::directory::{put_audit, AdminAuditEntry};
use crate::keys::{
    decode, decode_event, decode_id, id_key, load_audit, StoredEvent, META_ALARM_EVENTS_SWEPT,
    META_EVENTS_SWEPT,
};
use crate::positions::{position_key, StoredPosition};
use crate::Store;
use std::collections::HashSet;
use vaka_core::alarm::AuditRecord;
use vaka_core::{Alarm, DeviceKey};

/// One record of an import.
#[derive(Clone, Debug, PartialEq)]
pub enum Imported {
    Alarm(Alarm, Vec<AuditRecord>),
    Event(StoredEvent),
    Position(DeviceKey, StoredPosition),
    AdminAudit(AdminAuditEntry),
}

/// What the store holds where an imported record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// The same record: nothing to write.
    Same,
    /// Another record under its key.
    Other,
}

impl Imported {
    /// The id the record's key is made of (alarms and events share the id space).
    pub fn id(&self) -> Option<u64> {
        match self {
            Imported::Alarm(a, _) => Some(a.id.0),
            Imported::Event(e) => Some(e.id.0),
            Imported::Position(_, p) => Some(p.event.0),
            Imported::AdminAudit(_) => None,
        }
    }
}

/// The tenant's admin audit entries as stored (JSON bytes): an audit entry has no key of its
/// own to look up (time and a sequence number), so an imported one is looked for here.
pub struct Existing {
    audit: HashSet<Vec<u8>>,
}

impl Store {
    /// What [`Store::import_found`] compares imported admin audit entries with.
    pub fn import_existing(&self, tenant: &str) -> Result<Existing, StoreError> {
        let mut prefix = tenant.as_bytes().to_vec();
        prefix.push(0);
        let mut audit = HashSet::new();
        self.backend().scan(Cf::AdminAudit, &prefix, &mut |_, v| {
            audit.insert(v.to_vec());
            true
        })?;
        Ok(Existing { audit })
    }

    /// Whether `r` is stored already, or its key holds something else.
    pub fn import_found(&self, existing: &Existing, r: &Imported) -> Result<Found, StoreError> {
        let b = self.backend().as_ref();
        let same = |yes: bool| if yes { Found::Same } else { Found::Other };
        Ok(match r {
            Imported::Alarm(a, trail) => {
                let key = id_key(a.id.0);
                match b.get(Cf::Alarms, &key)? {
                    None => Found::Absent,
                    Some(v) => {
                        let stored: Alarm = decode(Cf::Alarms, &key, &v)?;
                        same(&stored == a && &load_audit(b, a.id)? == trail)
                    }
                }
            }
            Imported::Event(e) => {
                let key = id_key(e.id.0);
                match b.get(Cf::Events, &key)? {
                    None => Found::Absent,
                    Some(v) => same(&decode_event(&key, &v)? == e),
                }
            }
            Imported::Position(device, p) => {
                let key = position_key(device, p.fix.time_ms);
                match b.get(Cf::Positions, &key)? {
                    None => Found::Absent,
                    Some(v) => same(&decode::<StoredPosition>(Cf::Positions, &key, &v)? == p),
                }
            }
            Imported::AdminAudit(e) => {
                let bytes = serde_json::to_vec(e).expect("an audit entry serialises");
                if existing.audit.contains(&bytes) {
                    Found::Same
                } else {
                    Found::Absent
                }
            }
        })
    }

    /// Imported events below where the retention sweeps have settled would never be swept:
    /// their watermarks go back to `first_id` (the next sweeps walk from there once).
    pub fn rewind_retention(&self, first_id: u64) -> Result<(), StoreError> {
        let b = self.backend().as_ref();
        let mut set = WriteSet::new();
        for mark in [META_EVENTS_SWEPT, META_ALARM_EVENTS_SWEPT] {
            let at = b.get(Cf::Meta, mark)?.and_then(|v| decode_id(&v));
            if at.is_some_and(|at| at > first_id) {
                set.put_raw(Cf::Meta, mark.to_vec(), first_id.to_be_bytes().to_vec());
            }
        }
        if set.is_empty() {
            return Ok(());
        }
        b.write_synced(std::slice::from_ref(&set))
    }

    /// Writes `records` in one synced write. An alarm must be closed (its shard would not
    /// know an open one) and the ids must have been raised past the records' ([`Store::ids_past`]).
    pub fn import_write(&self, records: &[Imported]) -> Result<(), StoreError> {
        let mut set = WriteSet::new();
        for r in records {
            match r {
                Imported::Alarm(a, trail) => {
                    if a.is_open() {
                        return Err(StoreError::Engine(format!(
                            "alarm {} is open: an open alarm is not imported",
                            a.id.0
                        )));
                    }
                    set.put_alarm(a);
                    for (seq, rec) in trail.iter().enumerate() {
                        set.put_audit(seq as u32, rec);
                    }
                }
                Imported::Event(e) => set.put_event(e.id, &e.event),
                Imported::Position(device, p) => set.put_position(device, p),
                Imported::AdminAudit(e) => put_audit(&mut set, std::slice::from_ref(e)),
            }
        }
        if set.is_empty() {
            return Ok(());
        }
        self.backend().write_synced(std::slice::from_ref(&set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, GroupConfig, MemBackend, RecoverOptions};
    use std::sync::Arc;

    #[test]
    fn imported_events_below_the_sweeps_watermarks_rewind_them() {
        let b = Arc::new(MemBackend::default());
        let mut set = WriteSet::new();
        set.put_raw(
            Cf::Meta,
            META_EVENTS_SWEPT.to_vec(),
            100u64.to_be_bytes().to_vec(),
        );
        b.write_synced(&[set]).unwrap();
        let opts = RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1,
        };
        let (store, _) = Store::open(b.clone(), GroupConfig::default(), opts).unwrap();
        let mark = |m: &[u8]| b.get(Cf::Meta, m).unwrap().and_then(|v| decode_id(&v));
        store.rewind_retention(5).unwrap();
        assert_eq!(mark(META_EVENTS_SWEPT), Some(5));
        // Never forward, and an unset mark (nothing swept yet) stays unset.
        store.rewind_retention(50).unwrap();
        assert_eq!(mark(META_EVENTS_SWEPT), Some(5));
        assert_eq!(mark(META_ALARM_EVENTS_SWEPT), None);
        store.close().unwrap();
    }
}
