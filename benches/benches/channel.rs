//! The router's lanes are bounded flume channels: many front tasks `try_send` a shard message (a
//! boxed event plus a reply sender, 16 bytes on the channel), one shard task takes the first with
//! `recv_async` and drains the rest of a batch with `try_recv`. This measures that pattern with
//! flume and with tokio's bounded mpsc, the obvious alternative, at 1, 64 and 1,024 producer
//! tasks on a two-worker runtime (as on the 2-core target machine).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

/// What the router puts on a lane: an event on the heap and where its answer goes.
struct Msg {
    _event: Box<[u8; 192]>,
    _reply: futures::channel::oneshot::Sender<u64>,
}

const MESSAGES: usize = 100_000;
const CAPACITY: usize = 16_384;
const BATCH: usize = 256;

fn msg() -> Msg {
    Msg {
        _event: Box::new([7u8; 192]),
        _reply: futures::channel::oneshot::channel().0,
    }
}

async fn run_flume(producers: usize) -> Duration {
    let (tx, rx) = flume::bounded::<Msg>(CAPACITY);
    let start = Instant::now();
    let per = MESSAGES / producers;
    let consumer = tokio::spawn(async move {
        let mut got = 0;
        while got < per * producers {
            let Ok(_first) = rx.recv_async().await else {
                break;
            };
            got += 1;
            for _ in 1..BATCH {
                match rx.try_recv() {
                    Ok(_) => got += 1,
                    Err(_) => break,
                }
            }
        }
    });
    for _ in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                let mut m = msg();
                loop {
                    match tx.try_send(m) {
                        Ok(()) => break,
                        Err(flume::TrySendError::Full(back)) => {
                            m = back;
                            tokio::task::yield_now().await;
                        }
                        Err(flume::TrySendError::Disconnected(_)) => return,
                    }
                }
            }
        });
    }
    drop(tx);
    consumer.await.unwrap();
    start.elapsed()
}

async fn run_tokio(producers: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(CAPACITY);
    let start = Instant::now();
    let per = MESSAGES / producers;
    let consumer = tokio::spawn(async move {
        let mut got = 0;
        while got < per * producers {
            let Some(_first) = rx.recv().await else {
                break;
            };
            got += 1;
            for _ in 1..BATCH {
                match rx.try_recv() {
                    Ok(_) => got += 1,
                    Err(_) => break,
                }
            }
        }
    });
    for _ in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                let mut m = msg();
                loop {
                    match tx.try_send(m) {
                        Ok(()) => break,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                            m = back;
                            tokio::task::yield_now().await;
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
        });
    }
    drop(tx);
    consumer.await.unwrap();
    start.elapsed()
}

fn channels(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("channel");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(20);
    for producers in [1usize, 64, 1024] {
        g.bench_with_input(BenchmarkId::new("flume", producers), &producers, |b, &p| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(run_flume(p))).sum())
        });
        g.bench_with_input(
            BenchmarkId::new("tokio_mpsc", producers),
            &producers,
            |b, &p| b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(run_tokio(p))).sum()),
        );
    }
    g.finish();
}

criterion_group!(benches, channels);
criterion_main!(benches);
