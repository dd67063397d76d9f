//! A backend wrapper for other crates' tests (feature `test-util`): writes can be held at a gate,
//! slowed or made to fail, and every call, writes included, otherwise goes to the wrapped backend
//! unchanged, so a test sees what production would (id reservation, recovery, flush included).
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub struct TestBackend {
    inner: Arc<dyn Backend>,
    open: Mutex<bool>,
    cv: Condvar,
    /// Writes waiting at the closed gate.
    blocked: AtomicUsize,
    /// Writes fail (after the gate and the delay) while set.
    pub fail: AtomicBool,
    /// Each write takes this long first (a slow disk).
    pub delay_us: AtomicU64,
    /// Writes attempted.
    pub writes: AtomicU64,
}

impl TestBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Arc<TestBackend> {
        Arc::new(TestBackend {
            inner,
            open: Mutex::new(true),
            cv: Condvar::new(),
            blocked: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            delay_us: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// Writes wait until [`release`](Self::release).
    pub fn hold(&self) {
        *self.open.lock().expect("gate lock") = false;
    }

    pub fn release(&self) {
        *self.open.lock().expect("gate lock") = true;
        self.cv.notify_all();
    }

    /// How many writes wait at the gate now.
    pub fn blocked(&self) -> usize {
        self.blocked.load(Ordering::SeqCst)
    }
}

impl Backend for TestBackend {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let mut open = self.open.lock().expect("gate lock");
        if !*open {
            self.blocked.fetch_add(1, Ordering::SeqCst);
            while !*open {
                open = self.cv.wait(open).expect("gate lock");
            }
            self.blocked.fetch_sub(1, Ordering::SeqCst);
        }
        drop(open);
        let delay = self.delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError::Engine("injected failure".into()));
        }
        self.inner.write_synced(sets)
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan(cf, prefix, f)
    }
    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan_from(cf, prefix, from, f)
    }
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(cf)
    }
    fn last_key_below(&self, cf: Cf, bound: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key_below(cf, bound)
    }
    fn delete_range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        self.inner.delete_range(cf, from, to)
    }
    fn reserved_ids(&self) -> u64 {
        self.inner.reserved_ids()
    }
    fn reserve_ids(&self, end: u64) -> Result<(), StoreError> {
        self.inner.reserve_ids(end)
    }
    fn recover(&self) -> Result<(), StoreError> {
        self.inner.recover()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn compact(&self) -> Result<(), StoreError> {
        self.inner.compact()
    }
}

/// Opens the gate when dropped, so a failing test with a held gate ends instead of hanging.
pub struct ReleaseOnDrop(pub Arc<TestBackend>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Corrupts 8 bytes of `file` at `at` in place (each XORed with `mask`): what a bad disk or a
/// stray write leaves behind, for the integrity tests of the store and of the binary.
pub fn flip(file: &std::path::Path, at: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    for x in &mut b {
        *x ^= mask;
    }
    f.write_all_at(&b, at).unwrap();
}
