//! What the live dashboard shows, once a second: figures read from the engine's own metrics (the
//! same text /metrics answers) and its open alarms from the store. Rates and latency percentiles
//! are over a sliding window of the last readings; a tenant's view has only what is its own
//! (engine-wide figures such as UDP drops or store syncs are left out).
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use vaka_core::alarm::AlarmState;
use vaka_core::stats::kind_name;
use vaka_core::{Alarm, AlarmKind};
use vaka_store::query::{AlarmFilter, StateFilter};

use super::exposition::{quantile, Metrics};

/// Rates and percentiles look this far back (or to the oldest reading kept).
pub const WINDOW_MS: i64 = 60_000;
/// The newest open alarms listed.
const RECENT: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub at_ms: i64,
    /// "platform" or "tenant".
    pub scope: &'static str,
    pub tenants: Vec<String>,
    /// Alarms opened per second (`opened`, the tenants in view) and, in the platform view,
    /// alarm-lane events taken in per second by front (`sip`, `quic`, `dc09`).
    pub alarms_per_second: BTreeMap<String, Option<f64>>,
    /// Device messages taken in per second, by front (platform view only).
    pub events_per_second: BTreeMap<String, f64>,
    pub connections: BTreeMap<String, f64>,
    /// Percentiles (ms) of the time from receipt to each stage, over the window.
    pub stage_latency_ms: BTreeMap<String, StageLatency>,
    pub alarms: OpenCounts,
    pub deadline_misses: Option<f64>,
    pub escalations: f64,
    /// Devices with an open silence alarm.
    pub silent_devices: u64,
    pub gps_filtered: BTreeMap<String, f64>,
    pub store: Option<StoreFigures>,
    pub udp_drops: Option<BTreeMap<String, f64>>,
    /// End-to-end canary alarms of the tenants in view that have one (see the engine's `canary`).
    pub canaries: Vec<Canary>,
    pub recent_alarms: Vec<RecentAlarm>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StageLatency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub count: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OpenCounts {
    pub open: u64,
    pub pending: u64,
    pub unhandled: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoreFigures {
    pub sync_p99_ms: Option<f64>,
    pub group_size_mean: Option<f64>,
    pub healthy: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Canary {
    pub tenant: String,
    /// The last run came back (a centre receipted it in time).
    pub ok: bool,
    /// Sent to receipted, last run that came back.
    pub latency_ms: Option<f64>,
    /// Runs that did not come back, since the engine started.
    pub failures: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecentAlarm {
    pub id: String,
    pub tenant: String,
    pub device: String,
    pub kind: &'static str,
    pub code: String,
    pub state: &'static str,
    pub unhandled: bool,
    pub created_ms: i64,
}

/// One viewer's readings over the window, to compute rates and windowed percentiles from.
#[derive(Default)]
pub struct Window {
    readings: VecDeque<(i64, Metrics)>,
}

impl Window {
    /// Keeps `now`'s reading and returns the oldest one still inside the window.
    fn push(&mut self, now: i64, m: Metrics) -> (&Metrics, &Metrics, f64) {
        self.readings.push_back((now, m));
        while self.readings.len() > 2 && now - self.readings[1].0 >= WINDOW_MS {
            self.readings.pop_front();
        }
        let (t0, first) = self.readings.front().expect("just pushed");
        let (t1, last) = self.readings.back().expect("just pushed");
        (first, last, ((t1 - t0) as f64 / 1000.0).max(0.0))
    }
}

/// Builds the snapshot for `tenants` (`platform`: every figure) at `now`.
pub fn build(
    window: &mut Window,
    now: i64,
    metrics_text: &str,
    open: &[Alarm],
    tenants: &[String],
    platform: bool,
) -> Snapshot {
    let (first, last, secs) = window.push(now, Metrics::parse(metrics_text));
    let rate = |name: &str, with: &[(&str, &str)]| -> Option<f64> {
        (secs > 0.0).then(|| {
            let d = last.sum(name, with).unwrap_or(0.0) - first.sum(name, with).unwrap_or(0.0);
            d.max(0.0) / secs
        })
    };
    // The window's share of a histogram: the latest buckets minus the oldest (the whole
    // history while only one reading is kept).
    let windowed = |name: &str, with: &[(&str, &str)], ts: Option<&[String]>| {
        let newest = last.buckets(name, with, ts);
        if secs == 0.0 {
            return newest;
        }
        let oldest = first.buckets(name, with, ts);
        newest
            .iter()
            .map(|&(le, n)| {
                let before = oldest.iter().find(|(l, _)| *l == le).map_or(0.0, |b| b.1);
                (le, (n - before).max(0.0))
            })
            .collect()
    };
    let scope_tenants = (!platform).then_some(tenants);

    let mut stage_latency_ms = BTreeMap::new();
    for stage in [
        "durable",
        "offered",
        "receipted",
        "accepted",
        "attended",
        "closed",
    ] {
        let b = windowed(
            "vaka_alarm_stage_seconds",
            &[("stage", stage)],
            scope_tenants,
        );
        stage_latency_ms.insert(
            stage.to_string(),
            StageLatency {
                p50: quantile(0.5, &b).map(|s| s * 1000.0),
                p99: quantile(0.99, &b).map(|s| s * 1000.0),
                count: b.last().map_or(0.0, |x| x.1),
            },
        );
    }
    // Every alarm opened in the window reached its durable stage once: that count, per second.
    let opened: Option<f64> =
        (secs > 0.0).then(|| stage_latency_ms.get("durable").map_or(0.0, |d| d.count) / secs);
    let visible = |a: &&Alarm| tenants.contains(&a.device.tenant.0);
    let mine: Vec<&Alarm> = open.iter().filter(visible).collect();
    let mut counts = OpenCounts::default();
    let mut silent = std::collections::BTreeSet::new();
    for a in &mine {
        counts.open += 1;
        match a.state {
            AlarmState::Pending => counts.pending += 1,
            AlarmState::Unhandled => counts.unhandled += 1,
            _ => {}
        }
        if a.kind == AlarmKind::Silent {
            silent.insert(&a.device);
        }
    }
    let mut recent: Vec<&Alarm> = mine.clone();
    recent.sort_by_key(|a| std::cmp::Reverse(a.id));
    let recent_alarms = recent
        .into_iter()
        .take(RECENT)
        .map(|a| RecentAlarm {
            id: a.id.0.to_string(),
            tenant: a.device.tenant.to_string(),
            device: a.device.device.to_string(),
            kind: kind_name(a),
            code: a.code.clone(),
            state: a.state.name(),
            unhandled: a.state == AlarmState::Unhandled,
            created_ms: a.created_ms,
        })
        .collect();

    let escalations = match scope_tenants {
        None => last.sum("vaka_escalations_total", &[]).unwrap_or(0.0),
        Some(ts) => ts
            .iter()
            .filter_map(|t| last.sum("vaka_escalations_total", &[("tenant", t)]))
            .sum(),
    };
    let mut connections = BTreeMap::new();
    let mut events_per_second = BTreeMap::new();
    let mut alarms_per_second = BTreeMap::from([("opened".to_string(), opened)]);
    let mut gps_filtered = BTreeMap::new();
    let (store, udp_drops, deadline_misses);
    if platform {
        for (key, name, with) in [
            (
                "devices_quic",
                "vaka_connections_active",
                &[("stage", "quic")][..],
            ),
            (
                "devices_dc09",
                "vaka_connections_active",
                &[("stage", "dc09")][..],
            ),
            ("devices_sip", "vaka_sip_registrations", &[][..]),
            ("centres", "vaka_centres_connected", &[][..]),
        ] {
            connections.insert(key.to_string(), last.sum(name, with).unwrap_or(0.0));
        }
        for front in ["sip", "quic", "dc09"] {
            if let Some(r) = rate("vaka_events_received_total", &[("stage", front)]) {
                events_per_second.insert(front.to_string(), r);
            }
            if let Some(r) = rate("vaka_alarms_received_total", &[("protocol", front)]) {
                alarms_per_second.insert(front.to_string(), Some(r));
            }
        }
        gps_filtered = last.by_label("vaka_gps_fixes_filtered_total", "reason");
        let sync = windowed("vaka_store_commit_seconds", &[], None);
        let (sum, n) = (
            rate("vaka_store_group_events_sum", &[]),
            rate("vaka_store_group_events_count", &[]),
        );
        store = Some(StoreFigures {
            sync_p99_ms: quantile(0.99, &sync).map(|s| s * 1000.0),
            group_size_mean: match (sum, n) {
                (Some(s), Some(n)) if n > 0.0 => Some(s / n),
                _ => None,
            },
            healthy: last.sum("vaka_store_failed", &[]).unwrap_or(0.0) == 0.0,
        });
        udp_drops = Some(last.by_label("vaka_udp_drops_total", "socket"));
        deadline_misses = last.sum("vaka_deadlines_missed_total", &[]);
    } else {
        let centres: f64 = tenants
            .iter()
            .filter_map(|t| last.sum("vaka_tenant_centres_connected", &[("tenant", t)]))
            .sum();
        connections.insert("centres".to_string(), centres);
        store = None;
        udp_drops = None;
        deadline_misses = None;
    }
    Snapshot {
        at_ms: now,
        scope: if platform { "platform" } else { "tenant" },
        tenants: tenants.to_vec(),
        alarms_per_second,
        events_per_second,
        connections,
        stage_latency_ms,
        alarms: counts,
        deadline_misses,
        escalations,
        silent_devices: silent.len() as u64,
        gps_filtered,
        store,
        udp_drops,
        canaries: tenants
            .iter()
            .filter_map(|t| {
                let with = [("tenant", t.as_str())];
                let ok = last.sum("vaka_canary_ok", &with)?;
                Some(Canary {
                    tenant: t.clone(),
                    ok: ok == 1.0,
                    latency_ms: last.sum("vaka_canary_seconds", &with).map(|s| s * 1000.0),
                    failures: last
                        .sum(
                            "vaka_canary_runs_total",
                            &[("tenant", t.as_str()), ("result", "failed")],
                        )
                        .unwrap_or(0.0),
                })
            })
            .collect(),
        recent_alarms,
    }
}

/// The open alarms (the open index: a few thousand at most).
pub fn open_filter() -> AlarmFilter {
    AlarmFilter {
        state: StateFilter::Open,
        ..AlarmFilter::default()
    }
}
