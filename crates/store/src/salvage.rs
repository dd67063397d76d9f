//! The explicit way past damage (invariant 12): keep a copy of the store as it is, open it with a
//! tolerant replay of the write-ahead log, report what was lost, and leave a store that opens
//! normally with its id reservation kept, so no id is ever given twice.
use crate::backend::{Backend, Cf, StoreError};
use crate::damage::KEPT_WAL_DIR;
use crate::marks::{self, Marks};
use crate::rocks::{Replay, RocksBackend, RocksConfig};
use std::path::{Path, PathBuf};

/// What a salvage found and did.
#[derive(Clone, Debug)]
pub struct SalvageReport {
    /// The copy of the store as it was, damaged files included.
    pub copy: PathBuf,
    /// Why a normal open refused the store (`None`: it had nothing to refuse).
    pub damage: Option<String>,
    /// The marks before salvage: what had been made durable and which ids were reserved.
    pub before: Marks,
    /// The last event id and write sequence the salvaged store holds.
    pub recovered_event: u64,
    pub recovered_seq: u64,
    /// How the log was replayed: "point-in-time" or "skip-damaged-records".
    pub replay: &'static str,
    /// Alarms open in the salvaged store.
    pub open_alarms: usize,
    /// Ids given from now on start here (above every id given before).
    pub next_id: u64,
}

impl SalvageReport {
    /// Acknowledged events may be lost when the store ends below what was durable.
    pub fn lost_events(&self) -> bool {
        self.recovered_event < self.before.durable_event
            || self.recovered_seq < self.before.durable_seq
    }
}

/// Salvages the store at `cfg.path`, first copying it to `copy` (which must not exist).
/// The store must not be open elsewhere.
pub fn salvage(cfg: &RocksConfig, copy: &Path) -> Result<SalvageReport, StoreError> {
    let io = |what: &str, e: std::io::Error| StoreError::Engine(format!("{what}: {e}"));
    let before = marks::read_marks(&cfg.path);
    copy_store(&cfg.path, copy)
        .map_err(|e| io(&format!("copying the store to {}", copy.display()), e))?;

    let damage = match RocksBackend::open(cfg) {
        Ok(_) => None,
        Err(StoreError::Damaged(text)) => Some(text),
        Err(e) => return Err(e),
    };
    let (backend, replay) = match RocksBackend::open_with(cfg, Replay::PointInTime) {
        Ok(b) => (b, "point-in-time"),
        Err(StoreError::Damaged(_)) => (
            RocksBackend::open_with(cfg, Replay::SkipDamaged)?,
            "skip-damaged-records",
        ),
        Err(e) => return Err(e),
    };
    let recovered_event = backend.last_event()?;
    let recovered_seq = backend.sequence();
    let mut open_alarms = 0;
    backend.scan(Cf::Open, &[], &mut |_, _| {
        open_alarms += 1;
        true
    })?;
    // Above everything ever reserved, made durable or found, whatever the marks or log lost.
    let next_id = before
        .reserved_ids
        .max(before.durable_event + 1)
        .max(recovered_event + 1)
        .max(backend.reserved_ids());
    backend.reset_marks(next_id)?;
    backend.flush()?;
    drop(backend);
    let _ = std::fs::remove_dir_all(cfg.path.join(KEPT_WAL_DIR));
    Ok(SalvageReport {
        copy: copy.to_path_buf(),
        damage,
        before,
        recovered_event,
        recovered_seq,
        replay,
        open_alarms,
        next_id,
    })
}

/// Copies a RocksDB directory: table files (`.sst`, never rewritten) as hard links, the rest
/// (logs, MANIFEST, CURRENT, OPTIONS, our marks) as copies.
fn copy_store(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_store(&src, &dst)?;
        } else if src.extension().is_some_and(|x| x == "sst") {
            std::fs::hard_link(&src, &dst).or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}
