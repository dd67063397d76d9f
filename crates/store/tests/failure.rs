//! Invariant 12, running part: a storage error puts the store in `Failed` (commits refused at
//! once, state published) and the committer brings it back when the cause clears, with no restart.
use futures::executor::block_on;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::Lane;
use vaka_store::*;

/// A backend whose writes fail while `broken` is set, and which recovers only once it is cleared.
#[derive(Default)]
struct Injected {
    inner: MemBackend,
    broken: AtomicBool,
    writes: AtomicU64,
    recoveries: AtomicU64,
}

impl Backend for Injected {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Engine(
                "IO error: No space left on device".into(),
            ));
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
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(cf)
    }
    fn recover(&self) -> Result<(), StoreError> {
        self.recoveries.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("still no space".into()));
        }
        Ok(())
    }
}

fn event_set(id: u64) -> WriteSet {
    let mut s = WriteSet::new();
    s.put_raw(Cf::Events, id.to_be_bytes().to_vec(), vec![7; 10]);
    s.events = 1;
    s
}

fn wait_for(store: &Store, want: StoreState, within: Duration) -> Duration {
    let start = Instant::now();
    while *store.state().borrow() != want {
        assert!(
            start.elapsed() < within,
            "store not {want:?} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn a_storage_error_fails_the_store_until_the_backend_recovers_without_a_restart() {
    let backend = Arc::new(Injected::default());
    let (store, _) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1_000,
        },
    )
    .unwrap();
    block_on(store.commit(Lane::Alarm, event_set(1))).unwrap();
    assert_eq!(*store.state().borrow(), StoreState::Serving);

    backend.broken.store(true, Ordering::SeqCst);
    let err = block_on(store.commit(Lane::Alarm, event_set(2))).unwrap_err();
    assert!(err.to_string().contains("No space"), "{err}");
    assert_eq!(*store.state().borrow(), StoreState::Failed);

    // While failed, commits are refused at once without touching the engine.
    let writes = backend.writes.load(Ordering::SeqCst);
    for id in 3..50 {
        let err = block_on(store.commit(Lane::Telemetry, event_set(id))).unwrap_err();
        assert!(err.to_string().contains("store failed"), "{err}");
    }
    assert_eq!(backend.writes.load(Ordering::SeqCst), writes);

    // Recovery is retried on the committer's own clock, with no traffic, and backs off.
    std::thread::sleep(Duration::from_millis(3_500));
    let tries = backend.recoveries.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&tries),
        "recovery attempts in 3.5 s: {tries}"
    );
    assert_eq!(*store.state().borrow(), StoreState::Failed);

    backend.broken.store(false, Ordering::SeqCst);
    let took = wait_for(&store, StoreState::Serving, Duration::from_secs(6));
    eprintln!("serving again {took:?} after the cause cleared");
    block_on(store.commit(Lane::Alarm, event_set(100))).unwrap();
    assert!(store
        .backend()
        .get(Cf::Events, &100u64.to_be_bytes())
        .unwrap()
        .is_some());
    assert!(store
        .backend()
        .get(Cf::Events, &2u64.to_be_bytes())
        .unwrap()
        .is_none());
    store.close().unwrap();
}

#[test]
fn a_failed_store_still_closes() {
    let backend = Arc::new(Injected::default());
    let (store, _) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1_000,
        },
    )
    .unwrap();
    backend.broken.store(true, Ordering::SeqCst);
    assert!(block_on(store.commit(Lane::Alarm, event_set(1))).is_err());
    let started = Instant::now();
    store.close().unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(block_on(store.commit(Lane::Alarm, event_set(2))).is_err());
}
