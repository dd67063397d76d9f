//! Device -> centre offer latency at a steady 1,000 alarms/s, durable (RocksDB, synced WAL), through
//! a real gRPC stream on 127.0.0.1. A measurement for the closing note rather than a gate, so it
//! is ignored by default (it takes 5 s and wants a quiet machine):
//!   cargo test --workspace --test latency -- --ignored --nocapture
mod support;

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use vaka_centre::pb::server_message::Msg as Out;
use vaka_router::Clock;
use vaka_store::{Backend, RocksBackend, RocksConfig};

const RATE: u64 = 1_000;
const SECONDS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn offer_latency_at_1000_alarms_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let n = (RATE * SECONDS) as usize;
    let w = World::start_sized(backend, Clock::new(), test_config(), None, n).await;
    let mut cc = Centre::connect(&w, "cc", None).await;
    eventually("cc reachable", || w.is_reachable("cc")).await;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let router = w.router.clone();
    let submitter = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut replies = Vec::with_capacity(n);
            for i in 0..n {
                // Open loop: alarm i is due at i ms, whatever happened to the ones before.
                let due = start + Duration::from_micros(i as u64 * 1_000_000 / RATE);
                tokio::time::sleep_until(due.into()).await;
                let key = format!("k{i}");
                sent.lock().unwrap().insert(key.clone(), due);
                replies.push(router.submit(alarm("c", &format!("d{i}"), &key)));
            }
            for r in replies {
                r.await.unwrap();
            }
        })
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut last = 0;
    while (hist.len() as usize) < n {
        match cc.next().await.unwrap() {
            // Deadlines run meanwhile (nobody receipts here): late unhandled offers are not new.
            Out::Offer(o) if o.unhandled => last = o.cursor,
            Out::Update(u) => last = u.cursor,
            Out::Offer(o) => {
                let now = Instant::now();
                let key = o.alarm.unwrap().reference;
                let due = sent.lock().unwrap()[&key];
                hist.record(now.duration_since(due).as_micros() as u64)
                    .unwrap();
                last = o.cursor;
                if hist.len().is_multiple_of(64) {
                    cc.ack(last).await;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    cc.ack(last).await;
    submitter.await.unwrap();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "device -> centre offer, {RATE}/s for {SECONDS}s, {} alarms: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; syncs {}",
        hist.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1000.0,
        w.store.stats().syncs,
    );
    assert!(ms(0.99) < 100.0, "p99 {} ms", ms(0.99));
    w.shutdown().await;
}
