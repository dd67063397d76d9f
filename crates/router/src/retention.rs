//! Retention (GDPR): a periodic sweep removes, per device, every stored position and telemetry
//! event older than its tenant's `retention_days` (devices of tenants no longer configured: the
//! default): the position history, the telemetry-lane events with their raw messages, and the
//! positions a device's GPS record still holds (latest position, filter state) once the device
//! has been quiet that long. Alarm-lane events and alarms stay: they are the care record.
//!
//! History rows and telemetry events are written by the shards but never read back by them, so the
//! sweep deletes them straight through the backend. The GPS record is the shards' live state:
//! the sweep asks the device's shard to forget what is too old, through the telemetry lane.
use crate::clock::Clock;
use crate::router::Router;
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

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Devices whose position history was pruned.
    pub devices: usize,
    /// GPS records whose too-old positions were forgotten.
    pub records: usize,
    /// Telemetry-lane events deleted.
    pub events: u64,
}

/// Deletes, now, what is older than each device's tenant's limit. Runs the store work on the
/// blocking pool.
pub async fn sweep(
    store: &Store,
    router: &Router,
    dir: &Arc<Directory>,
    default_days: u32,
    now: UnixMillis,
) -> Result<Swept, String> {
    let (st, d) = (store.clone(), dir.clone());
    let (history, events) = tokio::task::spawn_blocking(move || {
        let history = st.prune_positions(&mut |dev| cutoff(&d, default_days, now, dev))?;
        let shortest = d
            .tenants
            .values()
            .map(|t| t.retention_days)
            .chain(std::iter::once(default_days))
            .min()
            .unwrap_or(default_days);
        let keep_after = days_before(now, shortest);
        let events =
            st.prune_telemetry_events(keep_after, &mut |dev| cutoff(&d, default_days, now, dev))?;
        Ok::<_, vaka_store::StoreError>((history, events))
    })
    .await
    .map_err(|e| format!("retention sweep panicked: {e}"))?
    .map_err(|e| e.to_string())?;
    let mut swept = Swept {
        devices: history.devices,
        records: 0,
        events: events.deleted,
    };
    for (device, before) in history.stale_records {
        router
            .expire_positions(&device, before)
            .await
            .map_err(|e| format!("forgetting old positions of {device}: {e}"))?;
        swept.records += 1;
    }
    Ok(swept)
}

fn days_before(now: UnixMillis, days: u32) -> UnixMillis {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

fn cutoff(
    dir: &Directory,
    default_days: u32,
    now: UnixMillis,
    device: &DeviceKey,
) -> Option<UnixMillis> {
    let days = dir
        .tenants
        .get(&device.tenant)
        .map_or(default_days, |t| t.retention_days);
    Some(days_before(now, days))
}

/// Runs `sweep` every `cfg.every` until the task is aborted.
pub fn spawn(
    cfg: RetentionConfig,
    store: Store,
    router: Arc<Router>,
    dir: impl Into<crate::LiveDirectory>,
    clock: Clock,
) -> tokio::task::JoinHandle<()> {
    let dir = dir.into();
    tokio::spawn(async move {
        let every = cfg.every.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = Instant::now();
            let now_dir = dir.snapshot();
            match sweep(&store, &router, &now_dir, cfg.default_days, clock.now_ms()).await {
                Ok(s) => {
                    metrics::counter!("vaka_gps_retention_sweeps_total").increment(1);
                    metrics::counter!("vaka_retention_events_deleted_total").increment(s.events);
                    metrics::gauge!("vaka_gps_retention_sweep_seconds")
                        .set(started.elapsed().as_secs_f64());
                    tracing::debug!(
                        devices = s.devices,
                        records = s.records,
                        events = s.events,
                        "retention sweep done"
                    );
                }
                Err(e) => {
                    metrics::counter!("vaka_errors_total", "stage" => "retention").increment(1);
                    tracing::error!(error = %e, "retention sweep failed; next period retries");
                }
            }
        }
    })
}
