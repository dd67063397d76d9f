//! What the engine is built from a valid file: the router, store, centre API, directory and
//! retention settings.
use vaka_core::alarm::Deadlines;
use vaka_core::directory::{
    CentreRecord, Change, Dc09Credential, Defaults, DeviceRecord, Directory, Records, TenantRecord,
};
use vaka_core::CentreId;

use super::Config;

impl Config {
    /// The centre API would serve without TLS on an address other hosts can reach.
    pub fn centre_api_in_plaintext_off_loopback(&self) -> bool {
        self.grpc.tls_cert.is_none() && !self.listen.grpc.ip().is_loopback()
    }

    /// Timings and limits of the centre API.
    pub fn centre_api_config(&self) -> vaka_centre::CentreApiConfig {
        vaka_centre::CentreApiConfig {
            heartbeat: std::time::Duration::from_secs(self.grpc.heartbeat_secs),
            ack_timeout: std::time::Duration::from_secs(self.grpc.ack_timeout_secs),
            max_unacked: self.grpc.max_unacked,
            ..vaka_centre::CentreApiConfig::default()
        }
    }

    /// TLS files of the centre API, if it speaks TLS.
    pub fn centre_tls(&self) -> Option<vaka_centre::TlsFiles> {
        match (&self.grpc.tls_cert, &self.grpc.tls_key) {
            (Some(cert), Some(key)) => Some(vaka_centre::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.grpc.client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// Each centre with its bearer token.
    pub fn centre_credentials(&self) -> vaka_centre::Credentials {
        vaka_centre::Credentials::new(
            self.centres
                .iter()
                .map(|c| (CentreId::new(&c.id), c.token.clone())),
        )
    }

    pub fn router_config(&self) -> vaka_router::RouterConfig {
        let r = &self.router;
        let mut c = vaka_router::RouterConfig::default();
        if r.shards > 0 {
            c.shards = r.shards;
        }
        c.alarm_queue = r.alarm_queue;
        c.telemetry_queue = r.telemetry_queue;
        c.max_batch = r.max_batch;
        c.max_inflight = r.max_inflight;
        c.idempotency_window_ms = r.idempotency_window_secs as i64 * 1000;
        c.idempotency_capacity = r.idempotency_capacity;
        c.supervision_grace_ms = r.supervision_grace_secs as i64 * 1000;
        c.reconnect_grace_ms = r.reconnect_grace_secs as i64 * 1000;
        c
    }

    pub fn group_config(&self) -> vaka_store::GroupConfig {
        vaka_store::GroupConfig {
            max_group_ops: self.store.max_group_ops,
            queue_depth: self.store.queue_depth,
        }
    }

    /// What the directory's records are resolved against: `[defaults]` and `[gps.filter]`.
    pub fn directory_defaults(&self) -> Defaults {
        let secs = |s: u64| s as i64 * 1000;
        Defaults {
            deadlines: Deadlines {
                receipt_ms: secs(self.defaults.receipt_deadline_secs),
                accept_ms: secs(self.defaults.accept_deadline_secs),
            },
            retention_days: self.defaults.retention_days,
            alarm_retention_min_days: self.defaults.alarm_retention_min_days,
            gps_filter: self.gps.filter.clone(),
            // Checked by validation; the built-in default otherwise.
            time_zone: vaka_core::rules::time::zone(&self.defaults.time_zone)
                .unwrap_or_else(vaka_core::directory::default_time_zone),
            admission: vaka_core::admission::DEFAULT_LIMITS.with(Some(&self.defaults.admission)),
        }
    }

    /// The digest realm device credentials are made for (`sip.realm`, or the SIP default).
    pub fn sip_realm(&self) -> String {
        self.sip.as_ref().map_or_else(
            || vaka_ingest::sip::SipConfig::default().realm,
            |s| s.realm.clone(),
        )
    }

    /// The file's `[[centres]]`, `[[tenants]]` and `[[devices]]` as directory changes, in an
    /// order that applies (centres before the chains that name them). Passwords become HA1.
    pub fn bootstrap_changes(&self) -> Vec<Change> {
        let realm = self.sip_realm();
        let mut out = Vec::new();
        for c in &self.centres {
            out.push(Change::PutCentre(CentreRecord {
                id: c.id.clone(),
                name: c.name.clone(),
                tenants: c.tenants.clone(),
                receiver: c.receiver.clone(),
                receipt_deadline_secs: c.receipt_deadline_secs,
                accept_deadline_secs: c.accept_deadline_secs,
                revision: 0,
            }));
        }
        for t in &self.tenants {
            out.push(Change::PutTenant(TenantRecord {
                id: t.id.clone(),
                name: t.name.clone(),
                centres: t.centres.clone(),
                receipt_deadline_secs: t.receipt_deadline_secs,
                accept_deadline_secs: t.accept_deadline_secs,
                retention_days: t.retention_days,
                retention: t.retention,
                gps_filter: t.gps_filter.clone(),
                supervision_by_type: t.supervision_by_type.clone(),
                time_zone: t.time_zone.clone(),
                rules_by_type: t.rules_by_type.clone(),
                // Test mode is an operator's, for a while: set through the admin API.
                test_until_ms: None,
                canary: t.canary.clone(),
                admission: t.admission.map(Box::new),
                revision: 0,
            }));
        }
        for d in &self.devices {
            let sip = d.password.as_ref().map(|p| {
                vaka_ingest::sip::sip_credential(&d.id, &realm, p, d.digest_single_use_nonce)
            });
            let dc09 = d.dc09_account.as_ref().map(|a| Dc09Credential {
                account: a.clone(),
                key: d.dc09_key.clone(),
            });
            out.push(Change::PutDevice(Box::new(DeviceRecord {
                sip,
                dc09,
                heartbeat_secs: d.heartbeat_secs,
                supervision: d.supervision.clone(),
                centres: d.centres.clone(),
                receipt_deadline_secs: d.receipt_deadline_secs,
                accept_deadline_secs: d.accept_deadline_secs,
                gateway_for: d.gateway_for.clone(),
                gps_filter: d.gps_filter.clone(),
                fences: d.fences.clone(),
                rules: d.rules.clone(),
                chains_by_kind: d.chains_by_kind.clone(),
                ..DeviceRecord::new(&d.tenant, &d.id, &d.device_type)
            })));
        }
        out
    }

    /// The directory the file alone describes (what a new store starts with).
    pub fn directory(&self) -> Directory {
        let mut records = Records::default();
        for change in self.bootstrap_changes() {
            match change {
                Change::PutCentre(c) => {
                    records.centres.insert(c.id.clone(), c);
                }
                Change::PutTenant(t) => {
                    records.tenants.insert(t.id.clone(), t);
                }
                Change::PutDevice(d) => {
                    records.devices.insert((d.tenant.clone(), d.id.clone()), *d);
                }
                _ => {}
            }
        }
        Directory::from_records(self.directory_defaults(), records, 0)
    }

    /// When and how much position history the retention sweep deletes.
    pub fn retention_config(&self) -> vaka_router::RetentionConfig {
        vaka_router::RetentionConfig {
            every: std::time::Duration::from_secs(self.gps.retention_sweep_secs),
            default_days: self.defaults.retention_days,
        }
    }
}
