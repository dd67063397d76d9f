//! The storage trait and the unit of atomic writing.
use serde::Serialize;

/// Column families (see the crate docs for their key layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    Events,
    Alarms,
    Open,
    Idem,
    Audit,
    Meta,
    Outbox,
    Seen,
    Gps,
    Positions,
    Hbi,
    Directory,
    Tokens,
    AdminAudit,
    Rules,
    Replicas,
}

impl Cf {
    pub const ALL: [Cf; 16] = [
        Cf::Events,
        Cf::Alarms,
        Cf::Open,
        Cf::Idem,
        Cf::Audit,
        Cf::Meta,
        Cf::Outbox,
        Cf::Seen,
        Cf::Gps,
        Cf::Positions,
        Cf::Hbi,
        Cf::Directory,
        Cf::Tokens,
        Cf::AdminAudit,
        Cf::Rules,
        Cf::Replicas,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Events => "events",
            Cf::Alarms => "alarms",
            Cf::Open => "open",
            Cf::Idem => "idem",
            Cf::Audit => "audit",
            Cf::Meta => "meta",
            Cf::Outbox => "outbox",
            Cf::Seen => "seen",
            Cf::Gps => "gps",
            Cf::Positions => "positions",
            Cf::Hbi => "hbi",
            Cf::Directory => "directory",
            Cf::Tokens => "tokens",
            Cf::AdminAudit => "admin_audit",
            Cf::Rules => "rules",
            Cf::Replicas => "replicas",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub cf: Cf,
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// Writes that must land together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    pub ops: Vec<Op>,
    /// How many device events this set carries (for stats and metrics only).
    pub events: u32,
    /// Notices for centres' outboxes. Their sequence numbers are given by the committer in commit
    /// order, so a centre reading its outbox up to the durable watermark never skips one.
    pub outbox: Vec<(String, Vec<u8>)>,
}

impl WriteSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put_raw(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op {
            cf,
            key,
            value: Some(value),
        });
    }

    pub fn put<T: Serialize>(&mut self, cf: Cf, key: Vec<u8>, value: &T) {
        let bytes = postcard::to_stdvec(value).expect("serialising to a Vec cannot fail");
        self.put_raw(cf, key, bytes);
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(Op {
            cf,
            key,
            value: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.outbox.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn extend(&mut self, other: WriteSet) {
        self.ops.extend(other.ops);
        self.events += other.events;
        self.outbox.extend(other.outbox);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt value in {cf} at key {key}: {reason}")]
    Corrupt {
        cf: &'static str,
        key: String,
        reason: String,
    },
    #[error("store is closed")]
    Closed,
    /// The store cannot show that it holds every acknowledged write (invariant 12): opening it
    /// was refused and nothing was changed. The text names the damaged file.
    #[error("store damaged: {0}")]
    Damaged(String),
    /// The store's format version (meta `format_version`) is not one this build reads: written by
    /// a newer Vaka, or older with no migration. Opening it was refused and nothing was changed.
    #[error(
        "store format version {found} cannot be read by this build, which reads format version \
         {known}: {why}"
    )]
    Format {
        found: u32,
        known: u32,
        why: &'static str,
    },
}

/// A storage engine. Implementations must make `write_synced` atomic across all the sets given and
/// return only once the writes would survive a crash of the process and of the machine.
pub trait Backend: Send + Sync + 'static {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError>;
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` for each key with this prefix in key order until it returns false.
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Like [`Backend::scan`] but starts at `from` (a key with this prefix), so a reader that has
    /// moved on never walks over what lies before it (e.g. pruned outbox entries' tombstones).
    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(cf, prefix, &mut |k, v| k < from || f(k, v))
    }
    /// The greatest key in the column family.
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError>;
    /// The greatest key below `bound`. Engines that seek backwards override this walk.
    fn last_key_below(&self, cf: Cf, bound: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut last = None;
        self.scan(cf, &[], &mut |k, _| {
            if k >= bound {
                return false;
            }
            last = Some(k.to_vec());
            true
        })?;
        Ok(last)
    }
    /// Deletes every key in `[from, to)`, synced. Not part of any group: for housekeeping
    /// (retention) of keys no shard reads back. Engines with range deletion override this.
    fn delete_range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        let mut set = WriteSet::new();
        self.scan(cf, &from[..common], &mut |k, _| {
            if k >= to {
                return false;
            }
            if k >= from {
                set.delete(cf, k.to_vec());
            }
            true
        })?;
        if set.is_empty() {
            return Ok(());
        }
        self.write_synced(std::slice::from_ref(&set))
    }
    /// Ids below this may have been handed out before (invariant 12: an id is never given twice).
    /// Engines without a lasting record return 0.
    fn reserved_ids(&self) -> u64 {
        0
    }
    /// Records, surviving a machine crash, that ids below `end` may be handed out. Lowered only
    /// at close, to the exact next id, so a clean restart leaves no gap.
    fn reserve_ids(&self, _end: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// After a failed write: brings the engine back so that writes may succeed again (RocksDB:
    /// reopen). An error means it is not back yet; the committer tries again later.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Flushes what is buffered, on clean shutdown.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Rewrites the stored data so that nothing deleted survives in any file (after an
    /// erasure): engines that keep deleted values until compaction override this.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
