//! Typed reads for delivering alarms to centres (the centre API): a centre's outbox and
//! acknowledged cursor, the open alarms in id order, and the position an alarm opened with, so
//! that the centre crate touches no column family.
use vaka_core::alarm::Notice;
use vaka_core::gps::Fix;
use vaka_core::{AlarmId, CentreId, EventId};

use crate::keys::{decode_id, id_key, load_cursor, load_event, outbox_keys_through, read_outbox};
use crate::{Cf, StoreError, WriteSet};

/// `meta` key of the secret responder links are signed with (32 random bytes).
const META_LINK_KEY: &[u8] = b"receiver_link_key";

impl crate::Store {
    /// The notices for `centre` with sequence above `after`, in order, at most `limit`.
    pub fn outbox(
        &self,
        centre: &CentreId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Notice)>, StoreError> {
        read_outbox(self.backend().as_ref(), centre, after, limit)
    }

    /// The outbox keys of `centre` above `after` up to `through`, at most `limit` (to prune).
    pub fn outbox_keys_through(
        &self,
        centre: &CentreId,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        outbox_keys_through(self.backend().as_ref(), centre, after, through, limit)
    }

    /// The last outbox sequence `centre` acknowledged (0 if never).
    pub fn cursor(&self, centre: &CentreId) -> Result<u64, StoreError> {
        load_cursor(self.backend().as_ref(), centre)
    }

    /// Ids of open alarms from `from` on, in id order, looking at no more than `scan_max`
    /// entries; when the scan stopped at `scan_max`, also the last id it looked at (where the
    /// next page starts; 0 if none).
    pub fn open_alarm_ids(
        &self,
        from: u64,
        scan_max: usize,
    ) -> Result<(Vec<AlarmId>, Option<u64>), StoreError> {
        let mut ids = Vec::new();
        let mut scanned = 0usize;
        let mut last_seen = None;
        self.backend()
            .scan_from(Cf::Open, &[], &id_key(from), &mut |k, _| {
                if let Some(id) = decode_id(k) {
                    ids.push(AlarmId(id));
                    last_seen = Some(id);
                }
                scanned += 1;
                scanned < scan_max
            })?;
        let cut_at = (scanned >= scan_max).then_some(last_seen.unwrap_or(0));
        Ok((ids, cut_at))
    }

    /// The position the alarm's opening event carried (an alarm's id is its opening event's id).
    pub fn opening_fix(&self, id: AlarmId) -> Result<Option<Fix>, StoreError> {
        Ok(load_event(self.backend().as_ref(), EventId(id.0))?.and_then(|e| e.fix))
    }

    /// The secret the engine signs responder links with, if one was made.
    pub fn receiver_link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend().get(Cf::Meta, META_LINK_KEY)
    }
}

/// Writes the responder links' secret (made once; links signed with it survive restarts).
pub fn put_receiver_link_key(set: &mut WriteSet, key: &[u8]) {
    set.put_raw(Cf::Meta, META_LINK_KEY.to_vec(), key.to_vec());
}
