//! Position retention (GDPR): a periodic sweep deletes every device's position history older than
//! its tenant's `retention_days` (devices of tenants no longer configured: the default).
//!
//! History rows are written by the shards but never read back by them, so the sweep deletes them
//! straight through the backend (a range deletion per device) without going through a shard.
use crate::clock::Clock;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::directory::Directory;
use vaka_core::{DeviceKey, UnixMillis};
use vaka_store::Store;

const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Time between sweeps (the first runs one period after start).
    pub every: Duration,
    /// Retention for devices whose tenant is not in the directory.
    pub default_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(3600),
            default_days: 90,
        }
    }
}

/// Deletes, now, position history older than each device's tenant's limit. Returns the number of
/// devices swept. Blocking (reads and range-deletes through the backend): run it off the runtime.
pub fn sweep(
    store: &Store,
    dir: &Directory,
    default_days: u32,
    now: UnixMillis,
) -> Result<usize, vaka_store::StoreError> {
    vaka_store::prune_positions(store.backend().as_ref(), &mut |device: &DeviceKey| {
        let days = dir
            .tenants
            .get(&device.tenant)
            .map_or(default_days, |t| t.retention_days);
        Some(now.saturating_sub(i64::from(days).saturating_mul(DAY_MS)))
    })
}

/// Runs `sweep` every `cfg.every` until the task is aborted.
pub fn spawn(
    cfg: RetentionConfig,
    store: Store,
    dir: Arc<Directory>,
    clock: Clock,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = cfg.every.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store, dir) = (store.clone(), dir.clone());
            let now = clock.now_ms();
            let days = cfg.default_days;
            let started = Instant::now();
            let r = tokio::task::spawn_blocking(move || sweep(&store, &dir, days, now)).await;
            match r {
                Ok(Ok(devices)) => {
                    metrics::counter!("vaka_gps_retention_sweeps_total").increment(1);
                    metrics::gauge!("vaka_gps_retention_sweep_seconds")
                        .set(started.elapsed().as_secs_f64());
                    tracing::debug!(devices, "position retention sweep done");
                }
                Ok(Err(e)) => {
                    metrics::counter!("vaka_errors_total", "stage" => "retention").increment(1);
                    tracing::error!(error = %e, "position retention sweep failed; next period retries");
                }
                Err(e) => tracing::error!(error = %e, "position retention sweep panicked"),
            }
        }
    })
}
