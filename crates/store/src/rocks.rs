//! The RocksDB backend: one database, one column family per [`Cf`], every write synced.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct RocksConfig {
    pub path: PathBuf,
    /// Background compaction/flush threads.
    pub parallelism: i32,
    /// Memtable size per column family, bytes.
    pub write_buffer_size: usize,
}

impl RocksConfig {
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            parallelism: 2,
            write_buffer_size: 64 << 20,
        }
    }
}

pub struct RocksBackend {
    db: DB,
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

impl RocksBackend {
    pub fn open(cfg: &RocksConfig) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(cfg.parallelism);
        opts.set_write_buffer_size(cfg.write_buffer_size);
        // Writes are synced per group; concurrent memtable writes do not help a single writer thread.
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_write_buffer_size(cfg.write_buffer_size);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, &cfg.path, cfs).map_err(engine)?;
        Ok(Self { db })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }
}

impl Backend for RocksBackend {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        // Resolve each column family once per group, not once per operation.
        let handles = Cf::ALL.map(|cf| self.cf(cf));
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
        self.db.write_opt(batch, &wo).map_err(engine)
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf), key).map_err(engine)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let it = self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward));
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
        let it = self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(start, Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db.iterator_cf(self.cf(cf), IteratorMode::End).next() {
            Some(item) => Ok(Some(item.map_err(engine)?.0.to_vec())),
            None => Ok(None),
        }
    }

    fn delete_range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        // One range tombstone instead of a tombstone per key.
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(cf), from, to);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(engine)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(engine)?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)).map_err(engine)?;
        }
        Ok(())
    }
}
