//! Logs (tracing, human or JSON) and metrics (the `metrics` facade, Prometheus exporter).
//!
//! Metric names follow Vector's component spec: `vaka_events_received_total`,
//! `vaka_events_sent_total`, `vaka_events_discarded_total` and `vaka_errors_total`, each with a
//! `stage` label (router, store, and the fronts as they come), plus latency histograms in seconds.
use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the metrics recorder; the handle renders the Prometheus text that the engine's HTTP
/// server answers at `/metrics` (see `http`). Must be called inside the tokio runtime.
pub fn init_metrics() -> Result<PrometheusHandle, String> {
    // Latencies from 100 µs to 10 s: the interesting range is the fsync floor to a deadline.
    let buckets = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
    ];
    // An alarm's stages from its receipt: milliseconds (durable) to minutes (an operator's
    // accept; the TEC targets are 60 s and 180 s).
    let stage_buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0, 180.0, 300.0, 600.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("vaka_alarm_stage_seconds".into()),
            &stage_buckets,
        )
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), &sizes))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    // Histograms and summaries are kept in windows that need trimming now and then.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    describe();
    register_alerted_series();
    Ok(handle)
}

/// The series `config/alerts.yml` and the Grafana dashboard read exist from the start at zero,
/// so an alert expression has something to evaluate before the first unhandled alarm (an
/// absent series would read as "no data", not as "none happened").
fn register_alerted_series() {
    metrics::counter!("vaka_alarms_unhandled_total").increment(0);
    metrics::counter!("vaka_deadlines_missed_total").increment(0);
    metrics::counter!("vaka_devices_silent_total").increment(0);
    metrics::counter!("vaka_escalations_deferred_total", "reason" => "reconnect_grace")
        .increment(0);
    metrics::gauge!("vaka_centres_connected").set(0.0);
    for reason in vaka_core::gps::FilterReason::ALL {
        metrics::counter!("vaka_gps_fixes_filtered_total", "reason" => reason.as_str())
            .increment(0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "vaka_events_received_total",
        Unit::Count,
        "Events taken in, by stage"
    );
    describe_counter!(
        "vaka_events_sent_total",
        Unit::Count,
        "Events passed on (durable, for the store and router), by stage"
    );
    describe_counter!(
        "vaka_events_discarded_total",
        Unit::Count,
        "Events not passed on, by stage and reason (busy, duplicate, unknown_device)"
    );
    describe_counter!("vaka_errors_total", Unit::Count, "Errors, by stage");
    describe_counter!(
        "vaka_store_syncs_total",
        Unit::Count,
        "Synced WAL writes (group commits)"
    );
    describe_counter!(
        "vaka_alarms_unhandled_total",
        Unit::Count,
        "Alarms whose whole escalation chain failed"
    );
    describe_histogram!(
        "vaka_store_commit_seconds",
        Unit::Seconds,
        "Time of one synced group write"
    );
    describe_histogram!(
        "vaka_store_group_events",
        Unit::Count,
        "Events per group commit"
    );
    describe_histogram!(
        "vaka_alarm_stage_seconds",
        Unit::Seconds,
        "From an alarm's device message received to each stage (durable, offered, receipted, accepted, closed), by tenant"
    );
    describe_counter!(
        "vaka_escalations_total",
        Unit::Count,
        "Alarms escalated past a centre (deadline missed, refused, centre lost), by tenant"
    );
    describe_histogram!(
        "vaka_router_durable_seconds",
        Unit::Seconds,
        "Shard batch taken to durable"
    );
}
