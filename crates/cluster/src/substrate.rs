//! The substrate check: a node refuses to run on NATS servers that would lose acknowledged
//! writes by design. JetStream fsyncs every two minutes by default, so an acknowledged alarm
//! can vanish in a power cut; only `sync_interval: always` makes an acknowledgement mean
//! "on disk" (DESIGN.md §8). The servers' monitoring `/varz` says what each one runs with.

use std::time::Duration;

use async_nats::jetstream::stream::{
    Config as StreamConfig, PersistenceMode, RetentionPolicy, StorageType,
};

use crate::config::REPLICAS;

#[derive(Debug, thiserror::Error)]
pub enum SubstrateError {
    #[error("NATS server {server} ({url}) does not run with `sync_interval: always` (its /varz has no \"sync_always\": true): acknowledged writes could be lost in a power cut; set it in the server's jetstream block and restart it")]
    NotSyncAlways { server: String, url: String },
    #[error("NATS server {server} ({url}) has JetStream disabled")]
    NoJetStream { server: String, url: String },
    #[error("NATS server monitoring {url}: {problem}")]
    Unreachable { url: String, problem: String },
    #[error("{what} has {replicas} replicas; the cluster needs R{REPLICAS}")]
    Replicas { what: String, replicas: usize },
    #[error("{what} uses {storage:?} storage; the cluster needs file storage")]
    Storage { what: String, storage: StorageType },
    #[error("{what}: {problem}")]
    Config { what: String, problem: String },
}

/// What one server's `/varz` says about durability.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerSync {
    pub server: String,
    pub jetstream: bool,
    pub sync_always: bool,
}

/// Reads the fields that matter out of a `/varz` document. `sync_always` is left out of the
/// document when false (checked on nats-server 2.15.1), so absent means false.
pub fn parse_varz(body: &serde_json::Value) -> ServerSync {
    let server = body
        .get("server_name")
        .and_then(|v| v.as_str())
        .or_else(|| body.get("server_id").and_then(|v| v.as_str()))
        .unwrap_or("?")
        .to_owned();
    let js = body.get("jetstream").and_then(|j| j.get("config"));
    ServerSync {
        server,
        jetstream: js.is_some(),
        sync_always: js
            .and_then(|c| c.get("sync_always"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    }
}

/// Checks every server's `/varz` (blocking HTTP; call at start or through
/// [`check_servers_async`]). The first server that fails is named.
pub fn check_servers(monitoring: &[String]) -> Result<Vec<ServerSync>, SubstrateError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let mut found = Vec::with_capacity(monitoring.len());
    for base in monitoring {
        let url = format!("{}/varz", base.trim_end_matches('/'));
        let unreachable = |e: ureq::Error| SubstrateError::Unreachable {
            url: url.clone(),
            problem: e.to_string(),
        };
        let body: serde_json::Value = agent
            .get(&url)
            .call()
            .map_err(unreachable)?
            .body_mut()
            .read_json()
            .map_err(unreachable)?;
        let s = parse_varz(&body);
        if !s.jetstream {
            return Err(SubstrateError::NoJetStream {
                server: s.server,
                url,
            });
        }
        if !s.sync_always {
            return Err(SubstrateError::NotSyncAlways {
                server: s.server,
                url,
            });
        }
        found.push(s);
    }
    Ok(found)
}

/// [`check_servers`] off the async runtime's threads.
pub async fn check_servers_async(
    monitoring: Vec<String>,
) -> Result<Vec<ServerSync>, SubstrateError> {
    tokio::task::spawn_blocking(move || check_servers(&monitoring))
        .await
        .map_err(|e| SubstrateError::Unreachable {
            url: "(check task)".into(),
            problem: e.to_string(),
        })?
}

/// A stream or bucket must be replicated three times on disk: an R1 or memory stream would
/// turn one lost server into lost alarms, silently.
pub fn check_stream_config(what: &str, config: &StreamConfig) -> Result<(), SubstrateError> {
    if config.num_replicas != REPLICAS {
        return Err(SubstrateError::Replicas {
            what: what.to_owned(),
            replicas: config.num_replicas,
        });
    }
    if config.storage != StorageType::File {
        return Err(SubstrateError::Storage {
            what: what.to_owned(),
            storage: config.storage,
        });
    }
    Ok(())
}

/// What makes a log stream (`VAKA_IN`, `VAKA_DIR`) lose or pretend to have stored what it was
/// given, if anything: asynchronous persistence (acknowledged before stored), a retention
/// other than limits, or any limit that drops old messages. `drops` names what would be lost.
pub fn keeps_everything_problem(config: &StreamConfig, drops: &str) -> Option<String> {
    if config.persist_mode == Some(PersistenceMode::Async) {
        // Async persistence acknowledges before the write is stored: sync_always is moot.
        Some("persist mode async acknowledges before storing; wanted the default".into())
    } else if config.retention != RetentionPolicy::Limits {
        Some(format!("retention {:?}, wanted Limits", config.retention))
    } else if !config.max_age.is_zero()
        || config.max_messages > 0
        || config.max_bytes > 0
        || config.max_messages_per_subject > 0
    {
        Some(format!(
            "has a limit that would drop {drops} (max_age, max_msgs, max_bytes or max_msgs_per_subject)"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varz_fields_are_read_and_absent_sync_means_false() {
        let on = serde_json::json!({"server_name": "s1",
            "jetstream": {"config": {"sync_interval": 120000000000u64, "sync_always": true}}});
        assert_eq!(
            parse_varz(&on),
            ServerSync {
                server: "s1".into(),
                jetstream: true,
                sync_always: true
            }
        );
        let off = serde_json::json!({"server_name": "s2",
            "jetstream": {"config": {"sync_interval": 120000000000u64}}});
        assert!(!parse_varz(&off).sync_always);
        let none = serde_json::json!({"server_id": "NABC"});
        let s = parse_varz(&none);
        assert_eq!(s.server, "NABC");
        assert!(!s.jetstream && !s.sync_always);
    }

    #[test]
    fn only_r3_file_streams_pass() {
        let mut c = StreamConfig {
            name: "X".into(),
            num_replicas: 3,
            storage: StorageType::File,
            ..Default::default()
        };
        check_stream_config("stream X", &c).unwrap();
        c.num_replicas = 1;
        let e = check_stream_config("stream X", &c).unwrap_err();
        assert!(e.to_string().contains("stream X has 1 replicas"), "{e}");
        c.num_replicas = 3;
        c.storage = StorageType::Memory;
        let e = check_stream_config("stream X", &c).unwrap_err();
        assert!(e.to_string().contains("file storage"), "{e}");
    }
}
