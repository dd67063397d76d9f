//! The storage format version: which encoding of keys and values (postcard, positional) a store
//! holds. Kept in `meta` under [`META_FORMAT_VERSION`] as a big-endian u32 and checked at every
//! open, before anything else is decoded, so that a store is never misread.
//!
//! Bump [`FORMAT_VERSION`] whenever a persisted type's encoding changes (the golden-bytes tests in
//! `tests/format.rs` fail until you do) and add the migration from the previous version to
//! [`check_format`].
use crate::backend::{Backend, Cf, StoreError, WriteSet};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 3;

/// Meta key of the store's format version (u32, big-endian).
pub const META_FORMAT_VERSION: &[u8] = b"format_version";

/// Checks the store's format version at open and records it when absent.
///
/// - absent: a new store, or one written before versioning existed, which is version 1 (the
///   format this key was introduced with): the key is written, synced;
/// - equal to [`FORMAT_VERSION`]: nothing to do;
/// - newer: refused, nothing changed (a newer Vaka wrote it; this build would misread it);
/// - 1: migrated to 2 (alarms gained stage times and the test mark: `migrate_v1`), in one
///   synced write, then on to 3;
/// - 2: to 3 (events gained the device's time, `Event::occurred_ms`): only the version is
///   written; an event stored before reads with no device time (`keys::decode_event`), so
///   the events, the largest column family, are not rewritten;
/// - older than 1: versions start at 1, so such a value can only be damage: refused.
pub(crate) fn check_format(backend: &dyn Backend) -> Result<u32, StoreError> {
    let Some(bytes) = backend.get(Cf::Meta, META_FORMAT_VERSION)? else {
        // A new store, or one written before versioning existed (version 1): if it holds alarms,
        // it is the latter and is migrated; an empty one is simply marked.
        let mut holds_alarms = false;
        backend.scan(Cf::Alarms, &[], &mut |_, _| {
            holds_alarms = true;
            false
        })?;
        if holds_alarms {
            return migrate_from_v1(backend).and_then(|_| migrate_from_v2(backend));
        }
        backend.write_synced(std::slice::from_ref(&version_set(FORMAT_VERSION)))?;
        return Ok(FORMAT_VERSION);
    };
    let found = <[u8; 4]>::try_from(bytes.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            cf: Cf::Meta.name(),
            key: String::from_utf8_lossy(META_FORMAT_VERSION).into_owned(),
            reason: format!("format version is {} bytes, not 4", bytes.len()),
        })?;
    match found {
        FORMAT_VERSION => Ok(found),
        newer if newer > FORMAT_VERSION => Err(StoreError::Format {
            found,
            known: FORMAT_VERSION,
            why: "it was written by a newer Vaka: run that version (or a later one), \
                  or restore a backup taken before the upgrade",
        }),
        // Migrations from older versions, one step at a time, each writing the new version in
        // the same synced write set as the data it rewrote.
        1 => migrate_from_v1(backend).and_then(|_| migrate_from_v2(backend)),
        2 => migrate_from_v2(backend),
        _ => Err(StoreError::Format {
            found,
            known: FORMAT_VERSION,
            why: "no migration from that version exists (versions start at 1)",
        }),
    }
}

fn migrate_from_v1(backend: &dyn Backend) -> Result<u32, StoreError> {
    let started = std::time::Instant::now();
    let n = crate::migrate_v1::to_v2(backend, version_set(2))?;
    tracing::warn!(
        records = n,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store migrated from format 1 to 2 (alarms carry their stage times and test mark)"
    );
    Ok(2)
}

fn migrate_from_v2(backend: &dyn Backend) -> Result<u32, StoreError> {
    backend.write_synced(std::slice::from_ref(&version_set(3)))?;
    tracing::warn!("store migrated from format 2 to 3 (events may carry the device's time)");
    Ok(3)
}

/// A write set recording `version` as the store's format.
fn version_set(version: u32) -> WriteSet {
    let mut set = WriteSet::new();
    set.put_raw(
        Cf::Meta,
        META_FORMAT_VERSION.to_vec(),
        version.to_be_bytes().to_vec(),
    );
    set
}
