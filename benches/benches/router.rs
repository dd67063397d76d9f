//! The router path from submit to durable completion on RocksDB: events/s with many submitters in
//! flight, and the latency distribution (HDR) of each event's submit -> durable reply.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaka_benches::{directory, telemetry};
use vaka_router::{Clock, Presence, Router, RouterConfig, SubmitError};
use vaka_store::{GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};

const DEVICES: usize = 10_000;
const PER_ITER: u64 = 20_000;
const IN_FLIGHT: usize = 4_096;

fn router_submit_to_durable(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, router) = rt.block_on(async {
        let backend = RocksBackend::open(&RocksConfig::new(dir.path())).unwrap();
        let (store, rec) = Store::open(
            Arc::new(backend),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: 0,
                idem_window_ms: 1,
            },
        )
        .unwrap();
        let router = Router::start(
            RouterConfig::default(),
            store.clone(),
            rec,
            directory(DEVICES),
            Presence::new(),
            Clock::new(),
        );
        (store, router)
    });
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let mut g = c.benchmark_group("router");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(PER_ITER));
    let mut n = 0u64;
    g.bench_function("submit_to_durable", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut h = Histogram::<u64>::new(3).unwrap();
            rt.block_on(async {
                for _ in 0..iters {
                    let mut waiting = FuturesUnordered::new();
                    let mut sent = 0;
                    while sent < PER_ITER || !waiting.is_empty() {
                        while sent < PER_ITER && waiting.len() < IN_FLIGHT {
                            n += 1;
                            sent += 1;
                            let t = Instant::now();
                            let f = router.submit(telemetry((n as usize) % DEVICES, n));
                            waiting.push(async move { (f.await, t) });
                        }
                        if let Some((r, t)) = waiting.next().await {
                            match r {
                                Ok(_) => h.record(t.elapsed().as_micros() as u64).unwrap(),
                                Err(SubmitError::Busy) => sent -= 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                }
            });
            let took = start.elapsed();
            hist.lock().unwrap().add(&h).unwrap();
            took
        })
    });
    g.finish();
    let h = hist.lock().unwrap();
    let st = store.stats();
    eprintln!(
        "router submit->durable latency µs: p50 {} p90 {} p99 {} p99.9 {} max {} over {} events; {:.4} syncs/event",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len(),
        st.syncs as f64 / st.events.max(1) as f64
    );
    eprintln!(
        "{}",
        steady_rate(&rt, &router, 100_000, Duration::from_secs(5))
    );
    rt.block_on(router.shutdown());
    store.close().unwrap();
}

/// Open loop: events go out on a fixed schedule whatever the replies do, so a slow server cannot
/// slow the load and hide its latency. Latency counts from each event's scheduled time.
fn steady_rate(
    rt: &tokio::runtime::Runtime,
    router: &Arc<Router>,
    per_sec: u64,
    run: Duration,
) -> String {
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut busy = 0u64;
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        let total = per_sec * run.as_secs();
        // Every 1 ms tick sends what the schedule says is due by now.
        let mut waiting = FuturesUnordered::new();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while sent < total {
            tokio::select! {
                _ = tick.tick() => {
                    let due = (start.elapsed().as_micros() as u64 * per_sec / 1_000_000).min(total);
                    while sent < due {
                        let scheduled = start + Duration::from_micros(sent * 1_000_000 / per_sec);
                        sent += 1;
                        let f = router.submit(telemetry((sent as usize) % DEVICES, 1_000_000_000 + sent));
                        waiting.push(async move { (f.await, scheduled) });
                    }
                }
                Some((r, scheduled)) = waiting.next(), if !waiting.is_empty() => {
                    match r {
                        Ok(_) => h.record(scheduled.elapsed().as_micros() as u64).unwrap(),
                        Err(SubmitError::Busy) => busy += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
        while let Some((r, scheduled)) = waiting.next().await {
            match r {
                Ok(_) => h.record(scheduled.elapsed().as_micros() as u64).unwrap(),
                Err(SubmitError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
    });
    format!(
        "router open loop at {per_sec}/s for {run:?}: latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; {} durable, {busy} busy",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

criterion_group!(benches, router_submit_to_durable);
criterion_main!(benches);
