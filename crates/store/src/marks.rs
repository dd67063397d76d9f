//! The store's high-water marks, kept in two small files beside RocksDB's own (invariant 12).
//!
//! - `vaka-ids` holds the id reservation: every event/alarm id ever handed out is below
//!   `reserved_ids`. It is written whole (temp file, fsync, rename, fsync of the directory) once per
//!   block of ids, at close and by salvage, so it survives a crash of the machine.
//! - `vaka-durable` is rewritten in place after every synced write with RocksDB's sequence number
//!   and the highest event id that write made durable. It is not fsynced (that would double the
//!   syncs per commit), so it survives a killed process but may be older after a power cut; it is
//!   checksummed, and a torn or missing copy only makes the check weaker, never wrong.
//!
//! At open, a store whose recovered sequence is below the durable mark has lost synced writes:
//! a deleted or cut write-ahead log, which RocksDB's recovery cannot see by itself.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const IDS_FILE: &str = "vaka-ids";
pub(crate) const DURABLE_FILE: &str = "vaka-durable";
const MAGIC: [u8; 8] = *b"VAKAMRK1";
const LEN: usize = 8 + 3 * 8 + 8;

/// What the marks say about a store. Zero everywhere for a store that never had marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// Every id handed out is below this.
    pub reserved_ids: u64,
    /// RocksDB's sequence number after the last synced write.
    pub durable_seq: u64,
    /// The highest event id in a synced write (0: none yet).
    pub durable_event: u64,
}

impl Marks {
    /// The field-wise maximum: each field only ever grows between two readings of the files.
    pub fn max(self, o: Marks) -> Marks {
        Marks {
            reserved_ids: self.reserved_ids.max(o.reserved_ids),
            durable_seq: self.durable_seq.max(o.durable_seq),
            durable_event: self.durable_event.max(o.durable_event),
        }
    }

    fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..16].copy_from_slice(&self.reserved_ids.to_be_bytes());
        b[16..24].copy_from_slice(&self.durable_seq.to_be_bytes());
        b[24..32].copy_from_slice(&self.durable_event.to_be_bytes());
        let check = fnv1a(&b[..32]);
        b[32..].copy_from_slice(&check.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Marks> {
        if b.len() < LEN || b[..8] != MAGIC {
            return None;
        }
        let u = |r: std::ops::Range<usize>| u64::from_be_bytes(b[r].try_into().expect("8 bytes"));
        if u(32..40) != fnv1a(&b[..32]) {
            return None;
        }
        Some(Marks {
            reserved_ids: u(8..16),
            durable_seq: u(16..24),
            durable_event: u(24..32),
        })
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads both files; a missing or unreadable copy counts as zero marks.
pub fn read_marks(dir: &Path) -> Marks {
    let read = |name| {
        std::fs::read(dir.join(name))
            .ok()
            .and_then(|b| Marks::decode(&b))
            .unwrap_or_default()
    };
    read(IDS_FILE).max(read(DURABLE_FILE))
}

/// Writes `vaka-ids` so that it survives a machine crash: temp file, fsync, rename, fsync dir.
pub(crate) fn write_ids_file(dir: &Path, marks: &Marks) -> std::io::Result<()> {
    let tmp = dir.join(format!("{IDS_FILE}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&marks.encode())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(IDS_FILE))?;
    File::open(dir)?.sync_all()
}

/// The open `vaka-durable` file and the marks last written, shared by every writer of a backend.
pub(crate) struct MarkFiles {
    dir: PathBuf,
    durable: File,
    current: Marks,
}

impl MarkFiles {
    pub(crate) fn open(dir: &Path, current: Marks) -> std::io::Result<MarkFiles> {
        let durable = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(DURABLE_FILE))?;
        Ok(MarkFiles {
            dir: dir.to_path_buf(),
            durable,
            current,
        })
    }

    pub(crate) fn current(&self) -> Marks {
        self.current
    }

    /// After a synced write: one `pwrite` of 40 bytes, no fsync.
    pub(crate) fn durable(&mut self, seq: u64, event: Option<u64>) -> std::io::Result<()> {
        self.current.durable_seq = self.current.durable_seq.max(seq);
        if let Some(e) = event {
            self.current.durable_event = self.current.durable_event.max(e);
        }
        self.durable.write_all_at(&self.current.encode(), 0)
    }

    /// Sets the id reservation (lowered only at close, when no id can be in flight) and writes
    /// both files, `vaka-ids` synced.
    pub(crate) fn reserve(&mut self, reserved_ids: u64) -> std::io::Result<()> {
        let next = Marks {
            reserved_ids,
            ..self.current
        };
        write_ids_file(&self.dir, &next)?;
        self.current = next;
        self.durable.write_all_at(&self.current.encode(), 0)
    }

    /// Replaces every mark (salvage: the store now legitimately ends lower), synced.
    pub(crate) fn reset(&mut self, marks: Marks) -> std::io::Result<()> {
        write_ids_file(&self.dir, &marks)?;
        self.current = marks;
        self.durable.write_all_at(&marks.encode(), 0)?;
        self.durable.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_damage_reads_as_none() {
        let m = Marks {
            reserved_ids: 100_007,
            durable_seq: 42,
            durable_event: 6,
        };
        let b = m.encode();
        assert_eq!(Marks::decode(&b), Some(m));
        for i in 0..LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert_eq!(Marks::decode(&d), None, "byte {i}");
        }
        assert_eq!(Marks::decode(&b[..LEN - 1]), None);
    }

    #[test]
    fn both_files_are_read_and_the_greater_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_marks(dir.path()), Marks::default());
        let mut f = MarkFiles::open(dir.path(), Marks::default()).unwrap();
        f.reserve(100).unwrap();
        f.durable(7, Some(3)).unwrap();
        let m = read_marks(dir.path());
        assert_eq!(
            (m.reserved_ids, m.durable_seq, m.durable_event),
            (100, 7, 3)
        );
        // A torn `vaka-durable` falls back to the synced `vaka-ids` copy.
        std::fs::write(dir.path().join(DURABLE_FILE), b"garbage").unwrap();
        assert_eq!(read_marks(dir.path()).reserved_ids, 100);
    }
}
