//! The report: the JSON for scripts (top-level keys exactly as issue 8 names them) and the terse
//! table for people.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::record::Measured;
use crate::sysmon::ServerUsage;

/// Latency percentiles in milliseconds; `null` when nothing was measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub ack: Percentiles,
    pub offer: Percentiles,
}

/// One side of a run (ours, or the peer's).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Side {
    pub sent: u64,
    pub acked: u64,
    /// Reached the end of their path: alarms offered to the centre, everything else acked.
    pub delivered: u64,
    /// Acked to the device and never delivered. Must be 0.
    pub lost: u64,
    pub errors: BTreeMap<String, u64>,
    /// Delivered per second, over the run (schedule start to the last delivery).
    pub throughput_per_s: f64,
    pub latency_ms: Latency,
}

impl Side {
    pub fn of(m: &Measured) -> Side {
        let secs = m.elapsed.as_secs_f64();
        Side {
            sent: m.counts.sent,
            acked: m.counts.acked,
            delivered: m.counts.delivered,
            lost: m.lost,
            errors: m.counts.errors.clone(),
            throughput_per_s: if secs > 0.0 {
                m.counts.delivered as f64 / secs
            } else {
                0.0
            },
            latency_ms: Latency {
                ack: Percentiles::of(&m.ack),
                offer: Percentiles::of(&m.offer),
            },
        }
    }
}

/// The `--json` document.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub ours: Side,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Side>,
    /// Our delivered throughput over the peer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Report {
    pub fn new(ours: Side, peer: Option<Side>) -> Report {
        let ratio = peer
            .as_ref()
            .filter(|p| p.throughput_per_s > 0.0)
            .map(|p| ours.throughput_per_s / p.throughput_per_s);
        Report { ours, peer, ratio }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// What the table shows beyond the JSON.
pub struct Extra<'a> {
    pub label: &'a str,
    pub not_treated: u64,
    pub elapsed_s: f64,
    pub server: Option<&'a ServerUsage>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// The terse end-of-run table, one block per side.
pub fn table(rows: &[(&Side, Extra<'_>)], ratio: Option<f64>) -> String {
    let mut out = String::new();
    for (s, x) in rows {
        let _ = writeln!(
            out,
            "{:<10} sent {:>9}  acked {:>9}  delivered {:>9}  lost {:>5}  {:>10.0}/s over {:.1}s",
            x.label, s.sent, s.acked, s.delivered, s.lost, s.throughput_per_s, x.elapsed_s
        );
        for (name, p) in [("ack", &s.latency_ms.ack), ("offer", &s.latency_ms.offer)] {
            let _ = writeln!(
                out,
                "{:<10} {:<5} ms  p50 {:>8}  p90 {:>8}  p99 {:>8}  p99.9 {:>8}  max {:>8}",
                "",
                name,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999),
                ms(p.max)
            );
        }
        let errors: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "{:<10} errors {}{}",
            "",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            },
            if x.not_treated > 0 {
                format!("  (not treated, no centre: {})", x.not_treated)
            } else {
                String::new()
            }
        );
        if let Some(u) = x.server {
            let _ = writeln!(
                out,
                "{:<10} server pid {}: RSS peak {:.1} MiB, last {:.1} MiB; CPU mean {:.0}%, peak {:.0}%",
                "",
                u.pid,
                u.rss_peak_kib as f64 / 1024.0,
                u.rss_last_kib as f64 / 1024.0,
                u.cpu_mean_pct,
                u.cpu_peak_pct
            );
        }
    }
    if let Some(r) = ratio {
        let _ = writeln!(out, "ratio      {r:.2} (our delivered throughput / peer's)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    fn side() -> Side {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        Side {
            sent: 10,
            acked: 9,
            delivered: 9,
            lost: 0,
            errors: BTreeMap::from([("busy".to_string(), 1)]),
            throughput_per_s: 4.5,
            latency_ms: Latency {
                ack: Percentiles::of(&h),
                offer: Percentiles::default(),
            },
        }
    }

    #[test]
    fn json_has_exactly_the_issue_keys() {
        let v: serde_json::Value =
            serde_json::from_str(&Report::new(side(), None).to_json()).unwrap();
        assert_eq!(
            keys(&v),
            [
                "acked",
                "delivered",
                "errors",
                "latency_ms",
                "lost",
                "sent",
                "throughput_per_s"
            ]
        );
        assert_eq!(keys(&v["latency_ms"]), ["ack", "offer"]);
        for l in ["ack", "offer"] {
            assert_eq!(
                keys(&v["latency_ms"][l]),
                ["max", "p50", "p90", "p99", "p999"]
            );
        }
        assert_eq!(v["latency_ms"]["ack"]["p50"], 0.5);
        assert_eq!(v["latency_ms"]["ack"]["max"], 1.0);
        assert!(v["latency_ms"]["offer"]["p99"].is_null());
        assert_eq!(v["errors"]["busy"], 1);
        assert_eq!(v["sent"], 10);
    }

    #[test]
    fn with_a_peer_the_json_adds_peer_of_the_same_shape_and_the_ratio() {
        let mut peer = side();
        peer.throughput_per_s = 1.5;
        let v: serde_json::Value =
            serde_json::from_str(&Report::new(side(), Some(peer)).to_json()).unwrap();
        assert_eq!(
            keys(&v),
            [
                "acked",
                "delivered",
                "errors",
                "latency_ms",
                "lost",
                "peer",
                "ratio",
                "sent",
                "throughput_per_s"
            ]
        );
        let mut ours = keys(&v);
        ours.retain(|k| k != "peer" && k != "ratio");
        assert_eq!(keys(&v["peer"]), ours);
        assert_eq!(v["ratio"], 3.0);
    }

    #[test]
    fn table_names_every_figure() {
        let s = side();
        let t = table(
            &[(
                &s,
                Extra {
                    label: "vaka",
                    not_treated: 2,
                    elapsed_s: 2.0,
                    server: None,
                },
            )],
            Some(1.25),
        );
        for needle in [
            "sent",
            "acked",
            "delivered",
            "lost",
            "p99.9",
            "busy 1",
            "not treated",
            "ratio      1.25",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }
}
