//! Acknowledged appends to `VAKA_IN` through async-nats, the way BENCHMARKS.md's "Synced
//! JetStream publishes" measured the Python client: one at a time and many in flight, one
//! event per message and 64 per message. Against running servers (R3 with
//! `sync_interval: always`; scripts/jetstream-cluster.sh starts three on loopback):
//!
//!     cargo run -p vaka-cluster --example append_rate -- SECONDS nats://127.0.0.1:4222 ...

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use vaka_cluster::{InputLog, Partition};

const EVENT: usize = 200;
const BATCH: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().ok_or("usage: SECONDS URL...")?.parse()?;
    let urls: Vec<String> = args.collect();
    let client = async_nats::connect(urls).await?;
    let js = async_nats::jetstream::new(client);
    let log = InputLog::open(js, Duration::from_secs(120), Duration::ZERO).await?;
    let cases = [
        ("1 event per message, one at a time", 1, 1),
        ("1 event per message, 64 in flight", 1, 64),
        ("64 events per message, one at a time", BATCH, 1),
        ("64 events per message, 16 in flight", BATCH, 16),
    ];
    for (n, (what, events, in_flight)) in cases.into_iter().enumerate() {
        let body = Bytes::from(vec![b'e'; EVENT * events]);
        let (rate, mut lat) =
            run(&log, n, body, in_flight, Duration::from_secs_f64(seconds)).await?;
        lat.sort();
        let pct =
            |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
        println!(
            "R3 | {what} | {rate:.0} msg/s | {:.0} events/s | ack p50 {:.2} ms | p99 {:.2} ms | n={}",
            rate * events as f64,
            pct(0.5),
            pct(0.99),
            lat.len()
        );
    }
    Ok(())
}

/// Keeps `in_flight` appends outstanding for `time`; messages/s and each ack's latency.
async fn run(
    log: &InputLog,
    case: usize,
    body: Bytes,
    in_flight: usize,
    time: Duration,
) -> Result<(f64, Vec<Duration>), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut lat = Vec::new();
    let mut n = 0u64;
    loop {
        while pending.len() < in_flight && start.elapsed() < time {
            n += 1;
            let key = format!("bench-{case}-{n}");
            let p = Partition((n % 64) as u32);
            let sent = Instant::now();
            let ack = log.send_alarm(p, &key, body.clone()).await?;
            pending.push(async move { ack.acknowledged().await.map(|_| sent.elapsed()) });
        }
        match pending.next().await {
            Some(done) => lat.push(done?),
            None => break,
        }
    }
    Ok((lat.len() as f64 / start.elapsed().as_secs_f64(), lat))
}
