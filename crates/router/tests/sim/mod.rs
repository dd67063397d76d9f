//! The deterministic simulation's parts: the seeded choice ([`rng`]), the world driven through
//! the real router and store ([`world`]) and the invariants checked after every step
//! ([`check`]).
pub mod check;
pub mod rng;
pub mod world;

use std::panic::AssertUnwindSafe;

pub use world::Stats;

/// Wall time when every world begins (traces and messages count from it).
pub fn world_start() -> i64 {
    world::T0
}

/// How one seed failed: the step, what broke, and the steps before it.
pub struct Failure {
    pub seed: u64,
    pub message: String,
    pub trace: Vec<String>,
}

/// Plays the world of `seed` to its end, checking every invariant after every step.
pub fn run(seed: u64) -> Result<Stats, Failure> {
    play(seed).0
}

/// Plays the world of `seed`: how it ended, and the trace of its steps and answers.
pub fn play(seed: u64) -> (Result<Stats, Failure>, Vec<String>) {
    let mut trace = Vec::new();
    let played = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut w = world::World::new(seed);
        let mut result = Ok(());
        for n in 0..w.params.steps {
            if let Err(e) = w.step(n) {
                result = Err(format!("step {n}: {e}"));
                break;
            }
        }
        trace = std::mem::take(&mut w.trace);
        result.map(|()| w.end())
    }));
    let result = match played {
        Ok(Ok(stats)) => Ok(stats),
        Ok(Err(message)) => Err(Failure {
            seed,
            message,
            trace: trace.clone(),
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(Failure {
                seed,
                message: format!("panicked: {message}"),
                trace: trace.clone(),
            })
        }
    };
    (result, trace)
}
