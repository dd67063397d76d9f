//! The store's group commit against raw RocksDB doing the same synced WriteBatches, for group sizes
//! 1, 8, 64 and 512 events of 100 bytes. Also concurrent single-event producers, to show grouping.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::Lane;
use vaka_store::{Cf, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, WriteSet};

const GROUPS: [usize; 4] = [1, 8, 64, 512];
const VALUE: [u8; 100] = [0x5a; 100];

fn open_store(dir: &std::path::Path) -> Store {
    let backend = RocksBackend::open(&RocksConfig::new(dir)).expect("open rocksdb");
    let (store, _) = Store::open(
        Arc::new(backend),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1,
        },
    )
    .expect("open store");
    store
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_group_commit");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let key = AtomicU64::new(0);
    for &n in &GROUPS {
        g.throughput(Throughput::Elements(n as u64));

        let raw_dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, raw_dir.path(), ["events"]).unwrap();
        let cf = db.cf_handle("events").unwrap();
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        g.bench_function(BenchmarkId::new("raw_rocksdb", n), |b| {
            b.iter(|| {
                let mut batch = rocksdb::WriteBatch::default();
                for _ in 0..n {
                    let k = key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                    batch.put_cf(cf, k, VALUE);
                }
                db.write_opt(batch, &wo).unwrap();
            })
        });

        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        g.bench_function(BenchmarkId::new("vaka_store", n), |b| {
            b.iter(|| {
                let mut set = WriteSet::new();
                for _ in 0..n {
                    let k = key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                    set.put_raw(Cf::Events, k.to_vec(), VALUE.to_vec());
                }
                set.events = n as u32;
                block_on(store.commit(Lane::Telemetry, set)).unwrap();
            })
        });
        let st = store.stats();
        eprintln!(
            "vaka_store/{n}: {:.4} syncs/event over {} events",
            st.syncs as f64 / st.events.max(1) as f64,
            st.events
        );
        store.close().unwrap();
    }
    g.finish();
}

/// `n` producers each committing one-event sets at once: the committer must group them.
fn concurrent_producers(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_concurrent_producers");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let key = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for &n in &GROUPS[1..] {
        g.throughput(Throughput::Elements(n as u64));
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(async {
                    for _ in 0..iters {
                        let commits = (0..n).map(|_| {
                            let mut set = WriteSet::new();
                            let k = key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                            set.put_raw(Cf::Events, k.to_vec(), VALUE.to_vec());
                            set.events = 1;
                            store.commit(Lane::Telemetry, set)
                        });
                        for r in futures::future::join_all(commits).await {
                            r.unwrap();
                        }
                    }
                });
                start.elapsed()
            })
        });
        let st = store.stats();
        eprintln!(
            "concurrent/{n}: {:.4} syncs/event over {} events",
            st.syncs as f64 / st.events.max(1) as f64,
            st.events
        );
        store.close().unwrap();
    }
    g.finish();
}

criterion_group!(benches, group_commit, concurrent_producers);
criterion_main!(benches);
