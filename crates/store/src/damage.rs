//! Naming damage: which files an operator must look at, and keeping the write-ahead log that an
//! open would otherwise replay and delete, so that a refused open leaves the evidence in place.
use crate::backend::StoreError;
use std::path::{Path, PathBuf};

/// Where the log files seen at the last open are kept (hard links) until the open is accepted.
pub(crate) const KEPT_WAL_DIR: &str = "vaka-wal-at-open";

/// An open that RocksDB refused: damage (corruption) becomes [`StoreError::Damaged`], naming the
/// write-ahead log when RocksDB's text names no file of its own.
pub(crate) fn opening_failed(path: &Path, wal: &WalSnapshot, e: rocksdb::Error) -> StoreError {
    let damaged = e.kind() == rocksdb::ErrorKind::Corruption;
    let text = e.into_string();
    if !damaged {
        return StoreError::Engine(text);
    }
    let names_a_file = [".sst", "MANIFEST", "CURRENT", "OPTIONS"]
        .iter()
        .any(|f| text.contains(f));
    if names_a_file {
        StoreError::Damaged(text)
    } else {
        StoreError::Damaged(format!("{text}; {}", describe_wal(path, wal, "is damaged")))
    }
}

/// The log files and their sizes, taken before an open replays (and replaces) them.
pub(crate) type WalSnapshot = Vec<(PathBuf, u64)>;

pub(crate) fn wal_snapshot(path: &Path) -> WalSnapshot {
    wal_files(path)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            (f, len)
        })
        .collect()
}

/// "the write-ahead log /x/000012.log (4096 bytes) <what>", or that there was none.
pub(crate) fn describe_wal(path: &Path, wal: &WalSnapshot, what: &str) -> String {
    if wal.is_empty() {
        return format!(
            "no write-ahead log file (*.log) was left in {}",
            path.display()
        );
    }
    let list: Vec<String> = wal
        .iter()
        .map(|(f, len)| format!("{} ({len} bytes)", f.display()))
        .collect();
    format!("the write-ahead log {} {what}", list.join(", "))
}

/// RocksDB's write-ahead log files in the database directory, oldest first.
pub(crate) fn wal_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// Hard-links every log file into [`KEPT_WAL_DIR`]: free (RocksDB never rewrites a log file, it
/// only deletes it after replay) and it outlives the deletion. What an earlier refused open kept
/// stays: a second attempt must not replace the evidence with the fresh log the first one made.
pub(crate) fn keep_wal(path: &Path) {
    let kept = path.join(KEPT_WAL_DIR);
    let files = wal_files(path);
    if files.is_empty() || std::fs::create_dir_all(&kept).is_err() {
        return;
    }
    for f in files {
        if let Some(name) = f.file_name() {
            let link = kept.join(name);
            if link.exists() {
                continue;
            }
            if let Err(e) = std::fs::hard_link(&f, link) {
                tracing::warn!(file = %f.display(), error = %e, "cannot keep the log file while opening");
            }
        }
    }
}

pub(crate) fn forget_kept_wal(path: &Path) {
    let _ = std::fs::remove_dir_all(path.join(KEPT_WAL_DIR));
}
