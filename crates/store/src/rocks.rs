//! The RocksDB backend: one database, one column family per [`Cf`], every write synced.
//!
//! Damage is loud (invariant 12): the write-ahead log is replayed in
//! `TolerateCorruptedTailRecords` mode, so any record with a bad checksum refuses the open, and
//! the open compares what was recovered with the durable mark (`marks`), so a cut or deleted log
//! refuses it too. A torn last record, the one a killed process may leave mid-write, is dropped:
//! its write was never synced, so nobody was told about it.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::damage;
use crate::keys;
use crate::marks::{self, MarkFiles, Marks};
use rocksdb::{
    ColumnFamilyDescriptor, DBRecoveryMode, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

#[derive(Clone, Debug)]
pub struct RocksConfig {
    pub path: PathBuf,
    /// Background compaction/flush threads.
    pub parallelism: i32,
    /// Memtable size per column family, bytes.
    pub write_buffer_size: usize,
    /// Table files RocksDB may keep open (invariant 13: a bounded share of the descriptors).
    pub max_open_files: i32,
}

impl RocksConfig {
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            parallelism: 2,
            write_buffer_size: 64 << 20,
            max_open_files: 1024,
        }
    }
}

pub struct RocksBackend {
    cfg: RocksConfig,
    /// `None` while the database is being reopened after a storage error ([`Backend::recover`]):
    /// reads and writes then fail cleanly instead of waiting for the open.
    db: RwLock<Option<DB>>,
    marks: Mutex<MarkFiles>,
    /// RocksDB's sequence after the open and after each write that succeeded: what a reopen
    /// must find, no less (lost writes) and no more (refused writes come back).
    settled: AtomicU64,
}

/// The database, held for one operation.
struct Held<'a>(RwLockReadGuard<'a, Option<DB>>);

impl Held<'_> {
    fn db(&self) -> &DB {
        self.0.as_ref().expect("checked when taken")
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db()
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

/// How the write-ahead log is replayed at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Production: refuse any damage except a torn last record; check the durable mark.
    Strict,
    /// Salvage: keep the consistent prefix before the first damaged record; no mark check.
    PointInTime,
    /// Salvage when the prefix is inconsistent (a column family was flushed past the damage):
    /// skip damaged records.
    SkipDamaged,
}

impl RocksBackend {
    /// Opens (or creates) the store; a damaged store is refused with [`StoreError::Damaged`].
    pub fn open(cfg: &RocksConfig) -> Result<Self, StoreError> {
        Self::open_with(cfg, Replay::Strict)
    }

    pub(crate) fn open_with(cfg: &RocksConfig, replay: Replay) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&cfg.path)
            .map_err(|e| StoreError::Engine(format!("{}: {e}", cfg.path.display())))?;
        let found = marks::read_marks(&cfg.path);
        let wal = damage::wal_snapshot(&cfg.path);
        if replay == Replay::Strict {
            // Opening replays and then deletes the log: keep it until the open is accepted.
            damage::keep_wal(&cfg.path);
        }
        let db =
            Self::open_db(cfg, replay).map_err(|e| damage::opening_failed(&cfg.path, &wal, e))?;
        let backend = RocksBackend {
            cfg: cfg.clone(),
            marks: Mutex::new(
                MarkFiles::open(&cfg.path, found)
                    .map_err(|e| StoreError::Engine(format!("{}: {e}", cfg.path.display())))?,
            ),
            settled: AtomicU64::new(db.latest_sequence_number()),
            db: RwLock::new(Some(db)),
        };
        if replay == Replay::Strict {
            backend.check_durable_mark(&cfg.path, &wal, &found)?;
            damage::forget_kept_wal(&cfg.path);
        }
        Ok(backend)
    }

    /// A store that recovered less than was synced before has lost acknowledged writes.
    fn check_durable_mark(
        &self,
        path: &Path,
        wal: &damage::WalSnapshot,
        mark: &Marks,
    ) -> Result<(), StoreError> {
        let seq = self.sequence();
        if seq >= mark.durable_seq {
            return Ok(());
        }
        let last = self.last_event()?;
        Err(StoreError::Damaged(format!(
            "acknowledged writes are missing: writes up to sequence {} (event id {}) were synced, \
             but the store recovered only up to sequence {seq} (event id {last}); {}",
            mark.durable_seq,
            mark.durable_event,
            damage::describe_wal(path, wal, "was cut short or replaced"),
        )))
    }

    /// The highest event id in `events` (0 if none).
    pub(crate) fn last_event(&self) -> Result<u64, StoreError> {
        Ok(self
            .last_key(Cf::Events)?
            .and_then(|k| keys::decode_id(&k))
            .unwrap_or(0))
    }

    pub(crate) fn sequence(&self) -> u64 {
        self.held()
            .map(|h| h.db().latest_sequence_number())
            .unwrap_or(0)
    }

    /// The database for one operation, or a clean error while it is being reopened.
    fn held(&self) -> Result<Held<'_>, StoreError> {
        let guard = self.db.read().expect("db lock");
        if guard.is_none() {
            return Err(StoreError::Engine(
                "the store is being reopened after a storage error".into(),
            ));
        }
        Ok(Held(guard))
    }

    /// Closes the database and opens it again through the strict open's checks. A failed write
    /// leaves RocksDB refusing every later one until it is reopened (the crate has no `Resume`).
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().expect("db lock");
        // Closing releases RocksDB's lock file; readers meanwhile get a clean error.
        drop(slot.take());
        let path = &self.cfg.path;
        let wal = damage::wal_snapshot(path);
        damage::keep_wal(path);
        let db = Self::open_db(&self.cfg, Replay::Strict)
            .map_err(|e| damage::opening_failed(path, &wal, e))?;
        let seq = db.latest_sequence_number();
        let settled = self.settled.load(Ordering::SeqCst);
        let mark = self.marks();
        if seq < mark.durable_seq.max(settled) {
            return Err(StoreError::Damaged(format!(
                "acknowledged writes are missing after reopening: sequence {seq}, synced {}; {}",
                mark.durable_seq.max(settled),
                damage::describe_wal(path, &wal, "lost records while the store was failing"),
            )));
        }
        if seq > settled {
            // A write answered as failed came back from the log: the router's memory no longer
            // matches the store, which only a restart (recovery from the store) puts right.
            return Err(StoreError::Engine(format!(
                "the log holds writes that were answered as failed (sequence {seq} > {}): \
                 restart vaka so that it recovers from the store",
                settled
            )));
        }
        damage::forget_kept_wal(path);
        *slot = Some(db);
        Ok(())
    }

    pub(crate) fn marks(&self) -> Marks {
        self.marks.lock().expect("marks lock").current()
    }

    /// Salvage: the store now legitimately ends where it ends; ids stay reserved above `reserved`.
    pub(crate) fn reset_marks(&self, reserved_ids: u64) -> Result<(), StoreError> {
        let m = Marks {
            reserved_ids,
            durable_seq: self.sequence(),
            durable_event: self.last_event()?,
        };
        self.marks
            .lock()
            .expect("marks lock")
            .reset(m)
            .map_err(|e| StoreError::Engine(format!("writing the store's marks: {e}")))
    }

    /// Records the sequence a synced write reached (and its highest event id).
    fn mark_durable(&self, db: &DB, event: Option<u64>) {
        let seq = db.latest_sequence_number();
        self.settled.store(seq, Ordering::SeqCst);
        let res = self.marks.lock().expect("marks lock").durable(seq, event);
        if let Err(e) = res {
            // The write itself is durable; only the check of a later open gets weaker.
            tracing::warn!(error = %e, "cannot update the store's durable mark");
        }
    }

    fn open_db(cfg: &RocksConfig, replay: Replay) -> Result<DB, rocksdb::Error> {
        let mut opts = Options::default();
        opts.set_paranoid_checks(true);
        opts.set_wal_recovery_mode(match replay {
            Replay::Strict => DBRecoveryMode::TolerateCorruptedTailRecords,
            Replay::PointInTime => DBRecoveryMode::PointInTime,
            Replay::SkipDamaged => DBRecoveryMode::SkipAnyCorruptedRecord,
        });
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(cfg.parallelism);
        opts.set_write_buffer_size(cfg.write_buffer_size);
        opts.set_max_open_files(cfg.max_open_files);
        // Writes are synced per group; concurrent memtable writes do not help a single writer thread.
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_write_buffer_size(cfg.write_buffer_size);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        DB::open_cf_descriptors(&opts, &cfg.path, cfs)
    }
}

impl Backend for RocksBackend {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let held = self.held()?;
        let mut batch = WriteBatch::default();
        // Resolve each column family once per group, not once per operation.
        let handles = Cf::ALL.map(|cf| held.cf(cf));
        for op in sets.iter().flat_map(|s| &s.ops) {
            let cf = handles[op.cf.index()];
            match &op.value {
                Some(v) => batch.put_cf(cf, &op.key, v),
                None => batch.delete_cf(cf, &op.key),
            }
        }
        let mut wo = WriteOptions::default();
        // The whole point: the WAL is fsynced before this returns (invariant 1).
        wo.set_sync(true);
        held.db().write_opt(batch, &wo).map_err(engine)?;
        let event = sets
            .iter()
            .flat_map(|s| &s.ops)
            .filter(|op| op.cf == Cf::Events && op.value.is_some())
            .filter_map(|op| keys::decode_id(&op.key))
            .max();
        self.mark_durable(held.db(), event);
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let held = self.held()?;
        held.db().get_cf(held.cf(cf), key).map_err(engine)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let held = self.held()?;
        let it = held
            .db()
            .iterator_cf(held.cf(cf), IteratorMode::From(prefix, Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let start = from.max(prefix);
        let held = self.held()?;
        let it = held
            .db()
            .iterator_cf(held.cf(cf), IteratorMode::From(start, Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        let held = self.held()?;
        let last = held.db().iterator_cf(held.cf(cf), IteratorMode::End).next();
        match last {
            Some(item) => Ok(Some(item.map_err(engine)?.0.to_vec())),
            None => Ok(None),
        }
    }

    fn last_key_below(&self, cf: Cf, bound: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let held = self.held()?;
        let mode = IteratorMode::From(bound, rocksdb::Direction::Reverse);
        for item in held.db().iterator_cf(held.cf(cf), mode) {
            let key = item.map_err(engine)?.0;
            if &*key < bound {
                return Ok(Some(key.to_vec()));
            }
        }
        Ok(None)
    }

    fn delete_range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        // One range tombstone instead of a tombstone per key.
        let held = self.held()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(held.cf(cf), from, to);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        held.db().write_opt(batch, &wo).map_err(engine)?;
        self.mark_durable(held.db(), None);
        Ok(())
    }

    fn reserved_ids(&self) -> u64 {
        self.marks().reserved_ids
    }

    fn reserve_ids(&self, end: u64) -> Result<(), StoreError> {
        self.marks
            .lock()
            .expect("marks lock")
            .reserve(end)
            .map_err(|e| {
                StoreError::Engine(format!("reserving ids (file {}): {e}", marks::IDS_FILE))
            })
    }

    fn flush(&self) -> Result<(), StoreError> {
        let held = self.held()?;
        held.db().flush_wal(true).map_err(engine)?;
        for cf in Cf::ALL {
            held.db().flush_cf(held.cf(cf)).map_err(engine)?;
        }
        Ok(())
    }

    fn recover(&self) -> Result<(), StoreError> {
        self.reopen()
    }

    /// Memtables to table files (so the logs holding the deleted values are no longer needed
    /// and RocksDB deletes them), then every column family compacted to the bottom level
    /// (tombstones and the values they cover dropped, old table files deleted).
    fn compact(&self) -> Result<(), StoreError> {
        let held = self.held()?;
        let db = held.db();
        db.flush_wal(true).map_err(engine)?;
        for cf in Cf::ALL {
            db.flush_cf(held.cf(cf)).map_err(engine)?;
        }
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::ForceOptimized);
        for cf in Cf::ALL {
            db.compact_range_cf_opt(held.cf(cf), None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }
}
