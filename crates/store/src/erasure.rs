//! Erasure of one device's personal data, on a tenant admin's request (GDPR art. 17): every
//! event it sent (raw messages, texts, callback numbers, fixes), its position history, its
//! GPS record, last-heard time, announced interval, rule states and idempotency entries are
//! deleted; its alarms, their audit trails and the outbox notices that carry them keep only
//! non-personal facts (`Alarm::erased`, `AuditRecord::erased`), so a tenant's alarm counts and
//! answer-time statistics do not change.
//!
//! Deleting a key in RocksDB writes a tombstone; the old value stays in older table files and
//! logs until compaction. [`Store::erase_device`] therefore flushes and compacts every column
//! family afterwards, so no file of the database holds the erased values.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::keys::{decode, decode_event, device_prefix};
use crate::Store;
use vaka_core::alarm::{AuditRecord, Notice};
use vaka_core::{Alarm, DeviceKey};

/// Writes at most this many changes per synced write.
const CHUNK: usize = 10_000;

/// What an erasure removed or rewrote, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// Events the device sent (each with its raw message), deleted.
    pub events: u64,
    /// Position history rows, deleted.
    pub positions: u64,
    /// Other rows kept per device (GPS record, last heard, announced interval, rule states,
    /// idempotency entries), deleted.
    pub device_rows: u64,
    /// Alarms whose free text and callback numbers were removed (the records stay), replicas of
    /// other nodes' alarms included.
    pub alarms: u64,
    /// Audit records whose free text was removed.
    pub audit_texts: u64,
    /// Outbox notices rewritten with the erased alarm.
    pub notices: u64,
}

impl Erased {
    fn add(&mut self, o: Erased) {
        self.events += o.events;
        self.positions += o.positions;
        self.device_rows += o.device_rows;
        self.alarms += o.alarms;
        self.audit_texts += o.audit_texts;
        self.notices += o.notices;
    }

    fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

/// Collects changes and writes them in synced chunks.
struct Chunked<'a> {
    backend: &'a dyn Backend,
    set: WriteSet,
    n: usize,
}

impl Chunked<'_> {
    fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.set.put_raw(cf, key, value);
        self.count()
    }

    fn delete(&mut self, cf: Cf, key: Vec<u8>) -> Result<(), StoreError> {
        self.set.delete(cf, key);
        self.count()
    }

    fn count(&mut self) -> Result<(), StoreError> {
        self.n += 1;
        if self.n >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.n > 0 {
            let set = std::mem::take(&mut self.set);
            self.backend.write_synced(std::slice::from_ref(&set))?;
            self.n = 0;
        }
        Ok(())
    }
}

/// A key and the value to write there.
pub(crate) type Row = (Vec<u8>, Vec<u8>);
/// Given a stored key and value: the new value for that key, or `None` to leave it.
pub(crate) type Want<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

/// Collects the keys (and values) a scan finds, so the writes come after the scan.
pub(crate) fn collect(
    backend: &dyn Backend,
    cf: Cf,
    prefix: &[u8],
    want: Want,
) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    backend.scan(cf, prefix, &mut |k, v| match want(k, v) {
        Ok(Some(new)) => {
            out.push((k.to_vec(), new));
            true
        }
        Ok(None) => true,
        Err(e) => {
            err = Some(e);
            false
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Erases `device`'s personal data (one pass; see the module docs). The device must have no
/// open alarm (the caller checks): an open alarm is still a person waiting for help.
pub fn erase_device(backend: &dyn Backend, device: &DeviceKey) -> Result<Erased, StoreError> {
    let mut done = Erased::default();
    let mut w = Chunked {
        backend,
        set: WriteSet::new(),
        n: 0,
    };
    // Events are keyed by id: every one is read to find the device's.
    let events = collect(backend, Cf::Events, &[], &mut |k, v| {
        Ok((&decode_event(k, v)?.event.device == device).then(Vec::new))
    })?;
    for (k, _) in events {
        w.delete(Cf::Events, k)?;
        done.events += 1;
    }
    let prefix = device_prefix(device);
    for (k, _) in collect(backend, Cf::Positions, &prefix, &mut |_, _| {
        Ok(Some(Vec::new()))
    })? {
        w.delete(Cf::Positions, k)?;
        done.positions += 1;
    }
    for cf in [Cf::Gps, Cf::Seen, Cf::Hbi, Cf::Rules, Cf::Idem] {
        for (k, _) in collect(backend, cf, &prefix, &mut |_, _| Ok(Some(Vec::new())))? {
            w.delete(cf, k)?;
            done.device_rows += 1;
        }
    }
    let alarms = collect(backend, Cf::Alarms, &[], &mut |k, v| {
        let a: Alarm = decode(Cf::Alarms, k, v)?;
        if &a.device != device {
            return Ok(None);
        }
        // Empty: nothing to rewrite in the record itself (its trail may still hold text).
        let e = a.erased();
        Ok(Some(if e == a {
            Vec::new()
        } else {
            postcard::to_allocvec(&e).expect("an alarm encodes")
        }))
    })?;
    for (k, v) in alarms {
        // Audit keys are the alarm's key and a sequence number.
        let trail = collect(backend, Cf::Audit, &k, &mut |ak, av| {
            let r: AuditRecord = decode(Cf::Audit, ak, av)?;
            let e = r.erased();
            Ok((e != r).then(|| postcard::to_allocvec(&e).expect("an audit record encodes")))
        })?;
        for (ak, av) in trail {
            w.put(Cf::Audit, ak, av)?;
            done.audit_texts += 1;
        }
        if !v.is_empty() {
            w.put(Cf::Alarms, k, v)?;
            done.alarms += 1;
        }
    }
    // Replicas of other nodes' alarms (a cluster): erased here as their holder erases its own.
    for (k, v) in crate::replicas::rewrite_of(backend, device, &mut |r| {
        let alarm = r.alarm.erased();
        (alarm != r.alarm).then(|| crate::Replica { alarm, ..r.clone() })
    })? {
        w.put(Cf::Replicas, k, v)?;
        done.alarms += 1;
    }
    let notices = collect(backend, Cf::Outbox, &[], &mut |k, v| {
        let n: Notice = decode(Cf::Outbox, k, v)?;
        let e = n.erased();
        Ok((n.alarm().device == *device && e != n)
            .then(|| postcard::to_allocvec(&e).expect("a notice encodes")))
    })?;
    for (k, v) in notices {
        w.put(Cf::Outbox, k, v)?;
        done.notices += 1;
    }
    w.flush()?;
    Ok(done)
}

impl Store {
    /// Erases `device`'s personal data, then compacts the database so no file keeps the old
    /// values. A second pass after the compaction catches what a batch in flight when the
    /// device was removed from the directory wrote meanwhile (its counts are added).
    pub fn erase_device(&self, device: &DeviceKey) -> Result<Erased, StoreError> {
        let backend = self.backend();
        let backend = backend.as_ref();
        let mut done = erase_device(backend, device)?;
        backend.compact()?;
        let late = erase_device(backend, device)?;
        if !late.is_empty() {
            tracing::warn!(device = %device, ?late, "erasure found data written during it");
            done.add(late);
            backend.compact()?;
        }
        Ok(done)
    }
}
