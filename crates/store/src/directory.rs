//! The control plane's data: the directory's records, API tokens and the admin audit log. Written
//! only by the control plane, one synced write set per change (records, revision and audit entry
//! together: a change is whole or absent after a crash), read whole at start.
//!
//! Values are JSON, unlike the hot path's postcard: these records are written rarely, read once
//! at start, exchanged as JSON by the admin API, and evolve by adding optional fields, which JSON
//! reads without a migration.
//!
//! | CF            | key                                              | value              |
//! |---------------|--------------------------------------------------|--------------------|
//! | `directory`   | `t` 0x00 tenant                                  | `TenantRecord`     |
//! |               | `c` 0x00 centre                                  | `CentreRecord`     |
//! |               | `d` 0x00 tenant 0x00 device                      | `DeviceRecord`     |
//! |               | `p` 0x00 tenant 0x00 policy                      | `DeadlinePolicyRecord` |
//! | `tokens`      | token id                                         | `TokenRecord`      |
//! | `admin_audit` | tenant (or `_platform`) 0x00 time (u64 ms) seq (u32)  | [`AdminAuditEntry`] |
//!
//! `meta` `directory_revision`: u64, the revision of the last change. In a cluster,
//! `directory_log_sequence`: u64, the last `VAKA_DIR` batch this node applied, and
//! `directory_log_digest`: its SHA-256 (both written with that batch's records, revision and
//! audit entries).
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::group::Store;
use serde::{Deserialize, Serialize};
use vaka_core::access::TokenRecord;
use vaka_core::directory::{Change, Records};

pub const META_DIRECTORY_REVISION: &[u8] = b"directory_revision";
pub const META_DIRECTORY_LOG_SEQUENCE: &[u8] = b"directory_log_sequence";
pub const META_DIRECTORY_LOG_DIGEST: &[u8] = b"directory_log_digest";

/// The audit log's key for changes that belong to no tenant (centres, tokens of other roles).
pub const PLATFORM: &str = "_platform";

/// One admin change: who, when, what, before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminAuditEntry {
    pub revision: u64,
    pub at_ms: i64,
    /// The token id that made the change ("bootstrap" for the start-up file).
    pub actor: String,
    /// The tenant the change belongs to; `None`: platform-wide.
    #[serde(default)]
    pub tenant: Option<String>,
    /// e.g. "put device", "delete tenant", "create token".
    pub action: String,
    /// What was changed, e.g. "devices/demo/100001".
    pub resource: String,
    #[serde(default)]
    pub before: Option<serde_json::Value>,
    #[serde(default)]
    pub after: Option<serde_json::Value>,
}

fn key(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![kind];
    for p in parts {
        k.push(0);
        k.extend_from_slice(p.as_bytes());
    }
    k
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("directory records serialise")
}

fn parse<'a, T: Deserialize<'a>>(cf: Cf, k: &[u8], v: &'a [u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        cf: cf.name(),
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    })
}

/// Adds `change` (its record already stamped with its revision) to `set`.
pub fn put_change(set: &mut WriteSet, change: &Change) {
    let cf = Cf::Directory;
    match change {
        Change::PutTenant(t) => set.put_raw(cf, key(b't', &[&t.id]), json(t)),
        Change::DeleteTenant(t) => set.delete(cf, key(b't', &[t])),
        Change::PutCentre(c) => set.put_raw(cf, key(b'c', &[&c.id]), json(c)),
        Change::DeleteCentre(c) => set.delete(cf, key(b'c', &[c])),
        Change::PutDevice(d) => set.put_raw(cf, key(b'd', &[&d.tenant, &d.id]), json(d)),
        Change::DeleteDevice { tenant, id } => set.delete(cf, key(b'd', &[tenant, id])),
        Change::PutPolicy(p) => set.put_raw(cf, key(b'p', &[&p.tenant, &p.id]), json(p)),
        Change::DeletePolicy { tenant, id } => set.delete(cf, key(b'p', &[tenant, id])),
    }
}

fn audit_key(tenant: Option<&str>, at_ms: i64, seq: u32) -> Vec<u8> {
    let mut k = tenant.unwrap_or(PLATFORM).as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Tells entries of the same millisecond apart (and orders them); restarts move time on.
static AUDIT_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Adds audit entries to `set`, keyed by tenant and time.
pub fn put_audit(set: &mut WriteSet, entries: &[AdminAuditEntry]) {
    for e in entries {
        let seq = AUDIT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        set.put_raw(
            Cf::AdminAudit,
            audit_key(e.tenant.as_deref(), e.at_ms, seq),
            json(e),
        );
    }
}

/// Records `revision` as the directory's current one, in `set`.
pub fn put_revision(set: &mut WriteSet, revision: u64) {
    set.put_raw(
        Cf::Meta,
        META_DIRECTORY_REVISION.to_vec(),
        revision.to_be_bytes().to_vec(),
    );
}

/// Records `sequence` as the last directory-log batch this node applied, and the SHA-256 of
/// its bytes, in `set`.
pub fn put_log_sequence(set: &mut WriteSet, sequence: u64, digest: [u8; 32]) {
    set.put_raw(
        Cf::Meta,
        META_DIRECTORY_LOG_SEQUENCE.to_vec(),
        sequence.to_be_bytes().to_vec(),
    );
    set.put_raw(
        Cf::Meta,
        META_DIRECTORY_LOG_DIGEST.to_vec(),
        digest.to_vec(),
    );
}

/// The SHA-256 of the last directory-log batch this node applied (`None`: none).
pub fn load_log_digest(backend: &dyn Backend) -> Result<Option<[u8; 32]>, StoreError> {
    match backend.get(Cf::Meta, META_DIRECTORY_LOG_DIGEST)? {
        None => Ok(None),
        Some(b) => <[u8; 32]>::try_from(b.as_slice())
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                cf: Cf::Meta.name(),
                key: "directory_log_digest".into(),
                reason: format!("{} bytes, not 32", b.len()),
            }),
    }
}

fn meta_u64(backend: &dyn Backend, key: &'static [u8]) -> Result<u64, StoreError> {
    match backend.get(Cf::Meta, key)? {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                cf: Cf::Meta.name(),
                key: String::from_utf8_lossy(key).into_owned(),
                reason: format!("{} bytes, not 8", b.len()),
            }),
    }
}

/// The last directory-log batch this node applied (0: none).
pub fn load_log_sequence(backend: &dyn Backend) -> Result<u64, StoreError> {
    meta_u64(backend, META_DIRECTORY_LOG_SEQUENCE)
}

pub fn put_token(set: &mut WriteSet, token: &TokenRecord) {
    set.put_raw(Cf::Tokens, token.id.as_bytes().to_vec(), json(token));
}

pub fn delete_token(set: &mut WriteSet, id: &str) {
    set.delete(Cf::Tokens, id.as_bytes().to_vec());
}

/// Every directory record, and the revision of the last change (0 for a new store).
pub fn load_directory(backend: &dyn Backend) -> Result<(Records, u64), StoreError> {
    let mut r = Records::default();
    let mut err = None;
    backend.scan(Cf::Directory, &[], &mut |k, v| {
        let done = match k.first() {
            Some(b't') => {
                parse(Cf::Directory, k, v).map(|t: vaka_core::directory::TenantRecord| {
                    r.tenants.insert(t.id.clone(), t);
                })
            }
            Some(b'c') => {
                parse(Cf::Directory, k, v).map(|c: vaka_core::directory::CentreRecord| {
                    r.centres.insert(c.id.clone(), c);
                })
            }
            Some(b'd') => {
                parse(Cf::Directory, k, v).map(|d: vaka_core::directory::DeviceRecord| {
                    r.devices.insert((d.tenant.clone(), d.id.clone()), d);
                })
            }
            Some(b'p') => {
                parse(Cf::Directory, k, v).map(|p: vaka_core::directory::DeadlinePolicyRecord| {
                    r.policies.insert((p.tenant.clone(), p.id.clone()), p);
                })
            }
            _ => Err(StoreError::Corrupt {
                cf: Cf::Directory.name(),
                key: String::from_utf8_lossy(k).into_owned(),
                reason: "unknown record kind".into(),
            }),
        };
        match done {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let revision = meta_u64(backend, META_DIRECTORY_REVISION)?;
    Ok((r, revision))
}

pub fn load_tokens(backend: &dyn Backend) -> Result<Vec<TokenRecord>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    backend.scan(Cf::Tokens, &[], &mut |k, v| match parse(Cf::Tokens, k, v) {
        Ok(t) => {
            out.push(t);
            true
        }
        Err(e) => {
            err = Some(e);
            false
        }
    })?;
    err.map_or(Ok(out), Err)
}

/// A tenant's admin audit log (or the platform's, with `None`), oldest first, from time
/// `from_ms` on, at most `limit` entries.
pub fn read_admin_audit(
    backend: &dyn Backend,
    tenant: Option<&str>,
    from_ms: i64,
    limit: usize,
) -> Result<Vec<AdminAuditEntry>, StoreError> {
    let mut prefix = tenant.unwrap_or(PLATFORM).as_bytes().to_vec();
    prefix.push(0);
    let from = audit_key(tenant, from_ms, 0);
    let mut out = Vec::new();
    let mut err = None;
    backend.scan_from(Cf::AdminAudit, &prefix, &from, &mut |k, v| {
        if out.len() >= limit {
            return false;
        }
        match parse(Cf::AdminAudit, k, v) {
            Ok(e) => {
                out.push(e);
                true
            }
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    err.map_or(Ok(out), Err)
}

impl Store {
    /// Writes `set` (directory changes, tokens, audit entries) synced, outside the group
    /// committer: the control plane answers only once it is durable.
    pub fn write_control(&self, set: WriteSet) -> Result<(), StoreError> {
        self.backend().write_synced(std::slice::from_ref(&set))
    }
}
