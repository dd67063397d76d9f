//! A backend wrapper shared by the QUIC and SIP test support: writes can be held at a gate, so
//! tests see what a front does while an event is not yet durable.
#![allow(dead_code)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use vaka_store::{Backend, Cf, StoreError, WriteSet};

/// Wraps a backend so that writes can be held at a gate (answers then wait for durability).
pub struct Gate {
    inner: Arc<dyn Backend>,
    open: Mutex<bool>,
    cv: Condvar,
    blocked: AtomicUsize,
}

impl Gate {
    pub fn new(inner: Arc<dyn Backend>) -> Arc<Gate> {
        Arc::new(Gate {
            inner,
            open: Mutex::new(true),
            cv: Condvar::new(),
            blocked: AtomicUsize::new(0),
        })
    }
    pub fn blocked(&self) -> usize {
        self.blocked.load(Ordering::SeqCst)
    }
    pub fn hold(&self) {
        *self.open.lock().unwrap() = false;
    }
    pub fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Backend for Gate {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let mut open = self.open.lock().unwrap();
        if !*open {
            self.blocked.fetch_add(1, Ordering::SeqCst);
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            self.blocked.fetch_sub(1, Ordering::SeqCst);
        }
        drop(open);
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
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(cf)
    }
}

/// Opens the gate when dropped, so a failing test with a held gate ends instead of hanging.
pub struct ReleaseOnDrop(pub Arc<Gate>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}
