//! Deterministic simulation of router, core and store in one process (DESIGN.md §3, invariant
//! 10): each seed builds a small world of devices (alarms, resends, resets, technical alarms,
//! heartbeats, GPS fixes out of order, telemetry floods, a supervised device falling silent), centres (connecting,
//! leaving, receipting, accepting, closing, refusing, or never answering) and faults (the disk
//! holding writes when the process dies, the store failing writes, restarts, the clock
//! jumping), drives it through the real `Router` and `Store` on an in-memory disk with tokio's
//! clock paused, and checks the invariants after every step (see `sim/check.rs`).
//!
//!     cargo test --workspace --test simulation                        10,000 seeds (CI)
//!     VAKA_SIM_SEEDS=1000000 cargo test --workspace --test simulation  more
//!     VAKA_SIM_SEED=1234 cargo test --workspace --test simulation     one seed, with its trace
//!
//! `VAKA_SIM_FIRST` moves the first seed of a run, `VAKA_SIM_THREADS` sets how many worlds run
//! at once (each world is single-threaded and independent, so this changes no outcome).
mod sim;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    )
}

#[test]
fn simulated_worlds_keep_the_invariants() {
    let single = env_u64("VAKA_SIM_SEED");
    let (first, count) = match single {
        Some(seed) => (seed, 1),
        None => (
            env_u64("VAKA_SIM_FIRST").unwrap_or(0),
            env_u64("VAKA_SIM_SEEDS").unwrap_or(10_000),
        ),
    };
    let threads = env_u64("VAKA_SIM_THREADS").unwrap_or_else(|| {
        // Worlds sleep a little when they wait for the store's recovery: more than the cores.
        std::thread::available_parallelism().map_or(2, |n| n.get() as u64) * 2
    });
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(sim::Stats::default());
    std::thread::scope(|s| {
        for _ in 0..threads.min(count).max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    break;
                }
                match sim::run(seed) {
                    Ok(stats) => totals.lock().unwrap().add(&stats),
                    Err(f) => failures.lock().unwrap().push(f),
                }
            });
        }
    });
    let took = started.elapsed();
    let t = totals.into_inner().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    eprintln!(
        "simulation: {count} seeds from {first} in {:.1} s on {threads} threads: {} steps, {} device messages ({} acknowledged, {} busy, {} store errors), {} centre inputs, {} crashes ({} with writes held), {} store failures ({} recoveries waited for), {} seeds failed",
        took.as_secs_f64(),
        t.steps,
        t.events,
        t.acked,
        t.busy,
        t.store_errors,
        t.centre_inputs,
        t.crashes,
        t.held_crashes,
        t.failed_commits,
        t.recoveries_waited,
        failures.len()
    );
    if failures.is_empty() {
        return;
    }
    let show = if single.is_some() { usize::MAX } else { 30 };
    for f in failures.iter().take(10) {
        eprintln!("\nseed {} failed: {}", f.seed, f.message);
        let from = f.trace.len().saturating_sub(show);
        for line in &f.trace[from..] {
            eprintln!("    {line}");
        }
        eprintln!(
            "  rerun it alone: VAKA_SIM_SEED={} cargo test --workspace --test simulation",
            f.seed
        );
    }
    let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
    panic!(
        "{} of {count} seeds broke an invariant; first: seed {} ({}); failing seeds: {:?}",
        failures.len(),
        failures[0].seed,
        failures[0].message,
        &seeds[..seeds.len().min(50)]
    );
}

/// Event and alarm ids in a trace, renamed by order of first appearance. The store reserves ids
/// in blocks from its live counter when the committer takes a group, so how many the shards had
/// taken by then (thread timing) moves where ids start after a crash; and which write sets share
/// one sync (thread timing too) decides which ids a failed commit loses. Never their order,
/// never which message got which. An id is a number of six digits or more (after a crash), or
/// one named as an id (`event 22`, `on 22`, `AlarmId(22)`).
fn ids_by_appearance(trace: &[String]) -> Vec<String> {
    const NAMED: [&str; 5] = ["event", "alarm", "on", "AlarmId", "EventId"];
    let mut names: std::collections::HashMap<String, usize> = Default::default();
    trace
        .iter()
        .map(|line| {
            let mut prev = "";
            line.split(|c: char| !c.is_ascii_alphanumeric() && c != '+')
                .filter(|w| !w.is_empty())
                .map(|w| {
                    let digits = w.bytes().all(|b| b.is_ascii_digit());
                    let out = if digits && (w.len() >= 6 || NAMED.contains(&prev)) {
                        let n = names.len();
                        format!("#{}", names.entry(w.to_string()).or_insert(n))
                    } else {
                        w.to_string()
                    };
                    prev = w;
                    out
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// A seed plays the same world every time (what makes a failing seed worth rerunning): the
/// same steps and the same answers, whatever the committer thread's timing (ids up to where
/// they start after a crash, see [`ids_by_appearance`]).
#[test]
fn a_seed_replays_the_same_world() {
    for seed in 0..env_u64("VAKA_SIM_REPLAYS").unwrap_or(40) {
        let (first, a) = sim::play(seed);
        let (second, b) = sim::play(seed);
        let (a, b) = (ids_by_appearance(&a), ids_by_appearance(&b));
        if let Some(i) = (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i)) {
            panic!(
                "seed {seed} played two different worlds; from line {i}:\n  {:?}\n  {:?}",
                &a[i.saturating_sub(2)..(i + 1).min(a.len())],
                &b[i.saturating_sub(2)..(i + 1).min(b.len())]
            );
        }
        assert_eq!(first.is_ok(), second.is_ok(), "seed {seed}");
        assert!(a.len() > 20, "seed {seed}: a world of {} lines", a.len());
    }
}
