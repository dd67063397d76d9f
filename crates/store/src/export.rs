//! One tenant's data read in pages, for its export: alarms with their audit trails, the events
//! its devices sent, their position history and the tenant's admin audit log. Each page is
//! at most `limit` records and says where the next one starts, so an export of any size holds
//! one page in memory at a time.
//!
//! Alarms and events are keyed by id across tenants: their pages walk the whole column family
//! and keep the tenant's (`limit` bounds what is kept, not what is walked). Positions and the
//! admin audit are keyed by tenant first: their pages walk only the tenant's keys.
use crate::backend::{Backend, Cf, StoreError};
use crate::directory::AdminAuditEntry;
use crate::keys::{decode, decode_device_prefix, decode_event, load_audit, StoredEvent};
use crate::positions::StoredPosition;
use crate::Store;
use vaka_core::alarm::AuditRecord;
use vaka_core::{Alarm, DeviceKey};

/// Records of one page and the key the next page starts after (`None`: this was the last).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Vec<u8>>,
}

/// The tenant's part of every key in `positions` (and the admin audit's key prefix).
fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut p = tenant.as_bytes().to_vec();
    p.push(0);
    p
}

/// The smallest key greater than `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Given a stored key and value: the record to keep, if it is one.
type Keep<'a, T> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<Option<T>, StoreError>;

/// Walks `cf` under `prefix` from after `from`, keeping what `keep` makes of each record, until
/// `limit` are kept. Decoding happens inside the scan; no store read does (the in-memory
/// backend holds its lock while scanning).
fn page<T>(
    backend: &dyn Backend,
    cf: Cf,
    prefix: &[u8],
    from: Option<&[u8]>,
    limit: usize,
    keep: Keep<T>,
) -> Result<Page<T>, StoreError> {
    let start = from.map_or_else(|| prefix.to_vec(), after);
    let (mut items, mut last, mut err, mut full) = (Vec::new(), None, None, false);
    backend.scan_from(cf, prefix, &start, &mut |k, v| {
        if items.len() >= limit.max(1) {
            full = true;
            return false;
        }
        match keep(k, v) {
            Ok(Some(t)) => items.push(t),
            Ok(None) => {}
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        last = Some(k.to_vec());
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(Page {
        items,
        next: if full { last } else { None },
    })
}

impl Store {
    /// A page of `tenant`'s alarms (every state), in id order, each with its audit trail.
    pub fn tenant_alarms(
        &self,
        tenant: &str,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<(Alarm, Vec<AuditRecord>)>, StoreError> {
        let backend = self.backend().as_ref();
        let alarms = page(backend, Cf::Alarms, &[], from, limit, &mut |k, v| {
            let a: Alarm = decode(Cf::Alarms, k, v)?;
            Ok((a.device.tenant.0 == tenant).then_some(a))
        })?;
        // The trails are read after the scan (no store read inside one).
        let mut items = Vec::with_capacity(alarms.items.len());
        for a in alarms.items {
            let trail = load_audit(backend, a.id)?;
            items.push((a, trail));
        }
        Ok(Page {
            items,
            next: alarms.next,
        })
    }

    /// A page of the events `tenant`'s devices sent, in id order, raw messages included.
    pub fn tenant_events(
        &self,
        tenant: &str,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<StoredEvent>, StoreError> {
        page(
            self.backend().as_ref(),
            Cf::Events,
            &[],
            from,
            limit,
            &mut |k, v| {
                let e = decode_event(k, v)?;
                Ok((e.event.device.tenant.0 == tenant).then_some(e))
            },
        )
    }

    /// A page of `tenant`'s position history, by device then fix time.
    pub fn tenant_positions(
        &self,
        tenant: &str,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<(DeviceKey, StoredPosition)>, StoreError> {
        page(
            self.backend().as_ref(),
            Cf::Positions,
            &tenant_prefix(tenant),
            from,
            limit,
            &mut |k, v| {
                let device = decode_device_prefix(k).ok_or_else(|| StoreError::Corrupt {
                    cf: Cf::Positions.name(),
                    key: String::from_utf8_lossy(k).into_owned(),
                    reason: "no device in the key".into(),
                })?;
                Ok(Some((device, decode(Cf::Positions, k, v)?)))
            },
        )
    }

    /// A page of `tenant`'s admin audit log, oldest first.
    pub fn tenant_admin_audit(
        &self,
        tenant: &str,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<AdminAuditEntry>, StoreError> {
        page(
            self.backend().as_ref(),
            Cf::AdminAudit,
            &tenant_prefix(tenant),
            from,
            limit,
            &mut |k, v| {
                serde_json::from_slice(v)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        cf: Cf::AdminAudit.name(),
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: e.to_string(),
                    })
            },
        )
    }
}
