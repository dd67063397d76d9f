//! Invariant 1, acked means durable: a child process writes through the real router into RocksDB and
//! prints each id the moment it is acknowledged; we SIGKILL it at random moments, reopen the store
//! and check that every acknowledged event is there and that no write set was half applied.
#[path = "support/crash.rs"]
mod crash;

use crash::{run_and_kill, verify};
use rand::Rng;
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;

#[test]
fn sigkill_never_loses_an_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut total = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(150..700));
        let acks = run_and_kill(dir.path(), round, kill_after);
        let alarms = verify(dir.path(), &acks, round);
        total += acks.len();
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} acks checked, {alarms} alarms in store",
            acks.len()
        );
    }
    assert!(
        total > ROUNDS * 10,
        "the writer must have acknowledged work to check ({total})"
    );
    eprintln!(
        "{ROUNDS} rounds, {total} acknowledged events verified in {:?}",
        started.elapsed()
    );
}
