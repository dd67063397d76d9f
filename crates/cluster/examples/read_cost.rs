//! How long reading the whole input log takes (what every reconciliation pass cost before
//! passes checked only what was new and a slice): `cargo run --release -p vaka-cluster
//! --example read_cost -- nats://127.0.0.1:14222`, against a running cluster whose `VAKA_IN`
//! has the engine's default retention. Prints the stream's extent, the read's time, the events
//! the inputs carry and the bytes the stream stores per message.
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
    let events: usize = inputs
        .iter()
        .filter_map(|i| vaka_cluster::events::decode(&i.bytes).ok())
        .map(|e| e.len())
        .sum();
    // What the stream stores, headers and its own framing included: the disk a server needs.
    let state = log.stream().clone().info().await?.state.clone();
    println!(
        "VAKA_IN {}..={}: read {} inputs ({} events, {} bytes of payload) in {:.2} s \
         ({:.0} inputs/s); the stream stores {} bytes for {} messages ({:.0} a message)",
        extent.first,
        extent.last,
        inputs.len(),
        events,
        bytes,
        took.as_secs_f64(),
        inputs.len() as f64 / took.as_secs_f64(),
        state.bytes,
        state.messages,
        state.bytes as f64 / state.messages.max(1) as f64
    );
    Ok(())
}
