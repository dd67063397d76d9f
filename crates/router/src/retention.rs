//! Retention (GDPR): a periodic sweep removes what is older than its tenant's period for its kind
//! (`vaka_core::retention`; devices of tenants no longer configured: the default for positions
//! and telemetry, the rest kept): the position history, the telemetry-lane events with their raw
//! messages, the positions a device's GPS record still holds (latest position, filter state)
//! once the device has been quiet that long, closed alarms with their audit trails and
//! alarm-lane events (only for tenants that set an alarm period, never below the platform's
//! minimum), and the tenant's admin audit entries (when it sets a period). Metrics:
//! `vaka_retention_deleted_total{kind}`, `vaka_retention_sweeps_total`,
//! `vaka_retention_sweep_seconds`, `vaka_retention_last_sweep_timestamp_seconds`.
//!
//! History rows and telemetry events are written by the shards but never read back by them, so the
//! sweep deletes them straight through the backend. The GPS record is the shards' live state:
//! the sweep asks the device's shard to forget what is too old, through the telemetry lane.
use crate::clock::Clock;
use crate::router::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::directory::Directory;
use vaka_core::retention::{self, Kind, RetentionRecord};
use vaka_core::{DeviceKey, UnixMillis};
use vaka_store::Store;

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
    /// Position history rows deleted.
    pub positions: u64,
    /// GPS records whose too-old positions were forgotten.
    pub records: usize,
    /// Telemetry-lane events deleted.
    pub events: u64,
    /// Alarms deleted (each with its audit trail and opening event).
    pub alarms: u64,
    pub alarm_audit_records: u64,
    /// Alarm-lane events deleted (opening events of deleted alarms included).
    pub alarm_events: u64,
    /// Admin audit entries deleted.
    pub admin_audit: u64,
}

impl Swept {
    /// What was deleted, by the kind named in `vaka_retention_deleted_total{kind}`.
    pub fn deleted(&self) -> [(&'static str, u64); 6] {
        [
            ("positions", self.positions),
            ("telemetry_events", self.events),
            ("alarms", self.alarms),
            ("alarm_audit_records", self.alarm_audit_records),
            ("alarm_events", self.alarm_events),
            ("admin_audit", self.admin_audit),
        ]
    }
}

/// Deletes, now, what is older than each device's tenant's period for its kind. Runs the
/// store work on the blocking pool.
pub async fn sweep(
    store: &Store,
    router: &Router,
    dir: &Arc<Directory>,
    default_days: u32,
    now: UnixMillis,
) -> Result<Swept, String> {
    let (st, d) = (store.clone(), dir.clone());
    let (history, swept) = tokio::task::spawn_blocking(move || {
        let mut swept = Swept::default();
        let history =
            st.prune_positions(&mut |dev| cutoff(&d, default_days, now, dev, Kind::Positions))?;
        swept.devices = history.devices;
        swept.positions = history.rows;
        // No event received after now minus the shortest period of its kind goes.
        let keep_after = |kind: Kind| -> Option<UnixMillis> {
            let defaults = (kind != Kind::Alarms).then_some(default_days);
            d.tenants
                .values()
                .filter_map(|t| t.retention.days(kind, t.retention_days))
                .chain(defaults)
                .min()
                .map(|days| retention::cutoff(now, days))
        };
        if let Some(after) = keep_after(Kind::Telemetry) {
            let events = st.prune_telemetry_events(after, &mut |dev| {
                cutoff(&d, default_days, now, dev, Kind::Telemetry)
            })?;
            swept.events = events.deleted;
        }
        if let Some(after) = keep_after(Kind::Alarms) {
            let mut by_alarm = |dev: &DeviceKey| cutoff(&d, default_days, now, dev, Kind::Alarms);
            let alarms = st.prune_alarms(&mut by_alarm)?;
            swept.alarms = alarms.alarms;
            swept.alarm_audit_records = alarms.audit_records;
            swept.alarm_events = alarms.events;
            swept.alarm_events += st.prune_alarm_events(after, &mut by_alarm)?.deleted;
        }
        for t in d.tenants.values() {
            if let Some(days) = t.retention.days(Kind::AdminAudit, t.retention_days) {
                swept.admin_audit += st.prune_admin_audit(&t.id.0, retention::cutoff(now, days))?;
            }
        }
        Ok::<_, vaka_store::StoreError>((history, swept))
    })
    .await
    .map_err(|e| format!("retention sweep panicked: {e}"))?
    .map_err(|e| e.to_string())?;
    let mut swept = swept;
    for (device, before) in history.stale_records {
        router
            .expire_positions(&device, before)
            .await
            .map_err(|e| format!("forgetting old positions of {device}: {e}"))?;
        swept.records += 1;
    }
    Ok(swept)
}

/// The time before which `device`'s data of `kind` goes (`None`: kept). Devices of a tenant no
/// longer in the directory: positions and telemetry by `default_days`, the rest kept.
fn cutoff(
    dir: &Directory,
    default_days: u32,
    now: UnixMillis,
    device: &DeviceKey,
    kind: Kind,
) -> Option<UnixMillis> {
    let days = match dir.tenants.get(&device.tenant) {
        Some(t) => t.retention.days(kind, t.retention_days),
        None => RetentionRecord::default().days(kind, default_days),
    };
    days.map(|d| retention::cutoff(now, d))
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
                    // The older names stay for existing dashboards.
                    metrics::counter!("vaka_gps_retention_sweeps_total").increment(1);
                    metrics::counter!("vaka_retention_events_deleted_total").increment(s.events);
                    metrics::gauge!("vaka_gps_retention_sweep_seconds")
                        .set(started.elapsed().as_secs_f64());
                    metrics::counter!("vaka_retention_sweeps_total").increment(1);
                    metrics::gauge!("vaka_retention_sweep_seconds")
                        .set(started.elapsed().as_secs_f64());
                    metrics::gauge!("vaka_retention_last_sweep_timestamp_seconds")
                        .set(clock.now_ms() as f64 / 1000.0);
                    for (kind, n) in s.deleted() {
                        metrics::counter!("vaka_retention_deleted_total", "kind" => kind)
                            .increment(n);
                    }
                    tracing::debug!(?s, "retention sweep done");
                }
                Err(e) => {
                    metrics::counter!("vaka_errors_total", "stage" => "retention").increment(1);
                    tracing::error!(error = %e, "retention sweep failed; next period retries");
                }
            }
        }
    })
}
