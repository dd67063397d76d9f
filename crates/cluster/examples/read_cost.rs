//! How long reading the whole input log takes (what every reconciliation pass cost before
//! passes checked only what was new and a slice): `cargo run --release -p vaka-cluster
//! --example read_cost -- nats://127.0.0.1:14222`, against a running cluster whose `VAKA_IN`
//! has the engine's default retention. Prints the stream's extent and the read's time.
use std::time::{Duration, Instant};
use vaka_cluster::InputLog;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:14222".into());
    let client = async_nats::connect(&url).await?;
    let js = async_nats::jetstream::new(client);
    let week = Duration::from_secs(7 * 24 * 3600);
    let log = InputLog::open(js, Duration::from_secs(120), week).await?;
    let extent = log.extent().await?;
    let started = Instant::now();
    let inputs = log.read_range(None, 1, extent.last, 10_000).await?;
    let took = started.elapsed();
    let bytes: usize = inputs.iter().map(|i| i.bytes.len()).sum();
    println!(
        "VAKA_IN {}..={}: read {} inputs ({} bytes) in {:.2} s ({:.0} inputs/s)",
        extent.first,
        extent.last,
        inputs.len(),
        bytes,
        took.as_secs_f64(),
        inputs.len() as f64 / took.as_secs_f64()
    );
    Ok(())
}
