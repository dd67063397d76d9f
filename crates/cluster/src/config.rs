//! What a node needs to join the cluster. Checked once at start: a bad value is named by its
//! field, because a cluster that starts half-configured fails later and far from the cause.

use std::time::Duration;

use serde::Deserialize;

/// Replicas of every stream and bucket: R3 is what survives one server lost (DESIGN.md §8).
pub const REPLICAS: usize = 3;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id: the value a lease holds, so it must differ between nodes.
    pub node_id: String,
    /// The NATS servers of the cluster, `nats://host:port`.
    pub servers: Vec<String>,
    /// Each server's monitoring endpoint, `http://127.0.0.1:8222`, read for the substrate check.
    pub monitoring: Vec<String>,
    /// Partitions of the device space. Fixed when the cluster is created: a device's partition
    /// is its hash modulo this, so changing it moves devices between input logs.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How long a lease lives without a renewal.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// How often the owner renews; well under the TTL so that one slow renewal is not a loss.
    #[serde(default = "default_lease_renew_ms")]
    pub lease_renew_ms: u64,
    /// The input stream's duplicate window: a resend within it is stored once.
    #[serde(default = "default_duplicate_window_ms")]
    pub duplicate_window_ms: u64,
    /// How often this node's record of the inputs it holds is reconciled with the input log
    /// (also once at start).
    #[serde(default = "default_reconcile_every_ms")]
    pub reconcile_every_ms: u64,
    /// How long the input log keeps an input (the stream's `max_age`), and so the longest a
    /// node may be away and still take what it missed from the stream. Each node's RocksDB
    /// keeps the events themselves under its own retention.
    #[serde(default = "default_input_retention_ms")]
    pub input_retention_ms: u64,
    /// The least time between two telemetry batches of a shard, so that a telemetry input (one
    /// per partition per batch) groups what arrived meanwhile: the input log then takes at most
    /// one telemetry message per partition per shard per linger, whatever the rate (`partitions`
    /// when the shard count divides them). Telemetry waits up to this long more; alarms never
    /// wait for it. 0: no linger.
    #[serde(default = "default_telemetry_linger_ms")]
    pub telemetry_linger_ms: u64,
}

fn default_partitions() -> u32 {
    64
}
fn default_lease_ttl_ms() -> u64 {
    3_000
}
fn default_lease_renew_ms() -> u64 {
    1_000
}
fn default_duplicate_window_ms() -> u64 {
    120_000
}
fn default_reconcile_every_ms() -> u64 {
    60_000
}
fn default_input_retention_ms() -> u64 {
    7 * 24 * 3_600_000
}
fn default_telemetry_linger_ms() -> u64 {
    20
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cluster.{field}: {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        problem: problem.into(),
    }
}

impl ClusterConfig {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    pub fn lease_renew(&self) -> Duration {
        Duration::from_millis(self.lease_renew_ms)
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_millis(self.duplicate_window_ms)
    }

    pub fn reconcile_every(&self) -> Duration {
        Duration::from_millis(self.reconcile_every_ms)
    }

    pub fn input_retention(&self) -> Duration {
        Duration::from_millis(self.input_retention_ms)
    }

    pub fn telemetry_linger(&self) -> Duration {
        Duration::from_millis(self.telemetry_linger_ms)
    }

    /// Stops at the first problem: naming its field is what an operator needs to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.node_id;
        if id.is_empty() || id.len() > 64 {
            return Err(bad("node_id", "must be 1 to 64 characters"));
        }
        // The id is stored as a lease value and logged; keep it to what reads back unambiguous.
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "node_id",
                format!("{id:?}: only ASCII letters, digits, '-' and '_'"),
            ));
        }
        if self.servers.len() < REPLICAS {
            return Err(bad(
                "servers",
                format!(
                    "{} given; R{REPLICAS} streams need at least {REPLICAS} servers",
                    self.servers.len()
                ),
            ));
        }
        for s in &self.servers {
            if !(s.starts_with("nats://") || s.starts_with("tls://")) || s.len() <= 7 {
                return Err(bad(
                    "servers",
                    format!("{s:?} is not a nats:// or tls:// URL"),
                ));
            }
        }
        if self.monitoring.len() != self.servers.len() {
            return Err(bad(
                "monitoring",
                format!(
                    "{} given for {} servers: one monitoring URL per server, so each server's \
                     sync setting is checked",
                    self.monitoring.len(),
                    self.servers.len()
                ),
            ));
        }
        for m in &self.monitoring {
            if !m.starts_with("http://") || m.len() <= 7 {
                return Err(bad("monitoring", format!("{m:?} is not an http:// URL")));
            }
        }
        if self.partitions == 0 || self.partitions > 4096 {
            return Err(bad("partitions", "must be 1 to 4096"));
        }
        if self.lease_ttl_ms < 500 {
            return Err(bad("lease_ttl_ms", "must be at least 500"));
        }
        if self.lease_renew_ms == 0 || self.lease_renew_ms * 2 > self.lease_ttl_ms {
            return Err(bad(
                "lease_renew_ms",
                format!(
                    "{} must be above 0 and at most half of lease_ttl_ms ({}), so a lease \
                     survives one late renewal",
                    self.lease_renew_ms, self.lease_ttl_ms
                ),
            ));
        }
        if self.duplicate_window_ms < 1_000 {
            return Err(bad("duplicate_window_ms", "must be at least 1000"));
        }
        if self.reconcile_every_ms < 1_000 {
            return Err(bad("reconcile_every_ms", "must be at least 1000"));
        }
        // JetStream refuses a duplicate window longer than the stream's max_age.
        if self.input_retention_ms < self.duplicate_window_ms.max(1_000) {
            return Err(bad(
                "input_retention_ms",
                format!(
                    "{} must be at least 1000 and at least duplicate_window_ms ({})",
                    self.input_retention_ms, self.duplicate_window_ms
                ),
            ));
        }
        if self.telemetry_linger_ms > 1_000 {
            return Err(bad(
                "telemetry_linger_ms",
                "must be at most 1000 (a device waits this much longer for an answer)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ClusterConfig {
        serde_json::from_str(
            r#"{"node_id": "n1",
                "servers": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"],
                "monitoring": ["http://127.0.0.1:8222", "http://127.0.0.1:8223", "http://127.0.0.1:8224"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_are_the_designed_ones_and_valid() {
        let c = good();
        assert_eq!(c.partitions, 64);
        assert_eq!(c.lease_ttl(), Duration::from_secs(3));
        assert_eq!(c.lease_renew(), Duration::from_secs(1));
        assert_eq!(c.duplicate_window(), Duration::from_secs(120));
        assert_eq!(c.reconcile_every(), Duration::from_secs(60));
        assert_eq!(c.input_retention(), Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.telemetry_linger(), Duration::from_millis(20));
        c.validate().unwrap();
    }

    #[test]
    fn each_bad_value_is_named_by_its_field() {
        type Change = Box<dyn Fn(&mut ClusterConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("node_id", Box::new(|c| c.node_id = String::new())),
            ("node_id", Box::new(|c| c.node_id = "a b".into())),
            ("servers", Box::new(|c| c.servers.truncate(2))),
            (
                "servers",
                Box::new(|c| c.servers[1] = "127.0.0.1:4223".into()),
            ),
            ("monitoring", Box::new(|c| c.monitoring.truncate(2))),
            (
                "monitoring",
                Box::new(|c| c.monitoring[0] = "127.0.0.1:8222".into()),
            ),
            ("partitions", Box::new(|c| c.partitions = 0)),
            ("lease_ttl_ms", Box::new(|c| c.lease_ttl_ms = 100)),
            ("lease_renew_ms", Box::new(|c| c.lease_renew_ms = 2_000)),
            ("lease_renew_ms", Box::new(|c| c.lease_renew_ms = 0)),
            (
                "duplicate_window_ms",
                Box::new(|c| c.duplicate_window_ms = 10),
            ),
            (
                "reconcile_every_ms",
                Box::new(|c| c.reconcile_every_ms = 10),
            ),
            (
                "input_retention_ms",
                Box::new(|c| c.input_retention_ms = 60_000),
            ),
            (
                "telemetry_linger_ms",
                Box::new(|c| c.telemetry_linger_ms = 5_000),
            ),
        ];
        for (field, change) in cases {
            let mut c = good();
            change(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(
                e.to_string().starts_with(&format!("cluster.{field}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<ClusterConfig>(
            r#"{"node_id": "n1", "servers": [], "monitoring": [], "partition": 8}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("partition"), "{e}");
    }
}
