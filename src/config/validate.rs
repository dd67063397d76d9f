//! What makes a parsed file valid: every problem found, each naming its key.
use std::collections::HashSet;

use super::types::*;
use super::{err, Config, ConfigError};

impl Config {
    pub(super) fn validate(&self) -> Vec<ConfigError> {
        let mut p = Vec::new();
        let positive = |p: &mut Vec<ConfigError>, key: &str, v: usize| {
            if v == 0 {
                p.push(err(key, "must be greater than 0"));
            }
        };
        positive(&mut p, "router.alarm_queue", self.router.alarm_queue);
        positive(
            &mut p,
            "router.telemetry_queue",
            self.router.telemetry_queue,
        );
        positive(&mut p, "router.max_batch", self.router.max_batch);
        positive(&mut p, "router.max_inflight", self.router.max_inflight);
        positive(
            &mut p,
            "router.idempotency_capacity",
            self.router.idempotency_capacity,
        );
        positive(&mut p, "store.max_group_ops", self.store.max_group_ops);
        positive(&mut p, "store.queue_depth", self.store.queue_depth);
        positive(&mut p, "store.write_buffer_mb", self.store.write_buffer_mb);
        if !(64..=1_000_000).contains(&self.store.max_open_files) {
            p.push(err("store.max_open_files", "between 64 and 1000000"));
        }
        if self.router.shards > 1024 {
            p.push(err("router.shards", "at most 1024"));
        }
        if self.router.idempotency_window_secs < 60 {
            p.push(err(
                "router.idempotency_window_secs",
                "must cover at least a minute of device resends (SCAIP HOLD runs 3-30 min)",
            ));
        }
        if self.server.shutdown_timeout_secs == 0 {
            p.push(err(
                "server.shutdown_timeout_secs",
                "must be greater than 0",
            ));
        }
        if let Some(Err(vaka_ingest::sip::SipStartError::Config { key, reason })) =
            self.sip.as_ref().map(|s| s.validate())
        {
            p.push(err(key, reason));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.server.log_level).is_err() {
            p.push(err("server.log_level", "not a valid log filter"));
        }
        self.validate_grpc(&mut p);
        self.validate_admin(&mut p);
        if let Some(Err(e)) = self.cluster.as_ref().map(|c| c.validate()) {
            p.push(err(format!("cluster.{}", e.field), e.problem));
        }
        for (k, why) in self.receivers.validate() {
            p.push(err(k, why));
        }
        deadline(
            &mut p,
            "defaults.receipt_deadline_secs",
            Some(self.defaults.receipt_deadline_secs),
        );
        deadline(
            &mut p,
            "defaults.accept_deadline_secs",
            Some(self.defaults.accept_deadline_secs),
        );

        let mut tenants = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            ident(&mut p, &format!("{at}.id"), &t.id);
            if !tenants.insert(t.id.as_str()) {
                p.push(err(
                    format!("{at}.id"),
                    format!("duplicate tenant \"{}\"", t.id),
                ));
            }
            deadline(
                &mut p,
                &format!("{at}.receipt_deadline_secs"),
                t.receipt_deadline_secs,
            );
            deadline(
                &mut p,
                &format!("{at}.accept_deadline_secs"),
                t.accept_deadline_secs,
            );
        }
        let mut centres = HashSet::new();
        let mut tokens = HashSet::new();
        for (i, c) in self.centres.iter().enumerate() {
            let at = format!("centres[{i}]");
            ident(&mut p, &format!("{at}.id"), &c.id);
            if !centres.insert(c.id.as_str()) {
                p.push(err(
                    format!("{at}.id"),
                    format!("duplicate centre \"{}\"", c.id),
                ));
            }
            for (j, t) in c.tenants.iter().enumerate() {
                if !tenants.contains(t.as_str()) {
                    p.push(err(
                        format!("{at}.tenants[{j}]"),
                        format!("unknown tenant \"{t}\""),
                    ));
                }
            }
            if let Some(r) = &c.receiver {
                for (k, why) in r.problems(&format!("{at}.receiver")) {
                    p.push(err(k, why));
                }
                if c.token.is_some() {
                    p.push(err(
                        format!("{at}.token"),
                        "a receiver the engine runs does not connect: no token",
                    ));
                }
            }
            if let Some(tok) = &c.token {
                if tok.len() < 16 {
                    p.push(err(
                        format!("{at}.token"),
                        "too short: use at least 16 characters",
                    ));
                }
                if !tokens.insert(tok.as_str()) {
                    p.push(err(
                        format!("{at}.token"),
                        "the same token is given to another centre",
                    ));
                }
            }
        }
        let serves = |centre: &str, tenant: &str| {
            self.centres
                .iter()
                .any(|c| c.id == centre && c.tenants.iter().any(|t| t == tenant))
        };
        let chain_ok = |p: &mut Vec<ConfigError>, at: &str, chain: &[String], tenant: &str| {
            for (j, c) in chain.iter().enumerate() {
                if !centres.contains(c.as_str()) {
                    p.push(err(format!("{at}[{j}]"), format!("unknown centre \"{c}\"")));
                } else if !serves(c, tenant) {
                    p.push(err(
                        format!("{at}[{j}]"),
                        format!("centre \"{c}\" does not serve tenant \"{tenant}\""),
                    ));
                }
            }
        };
        for (i, t) in self.tenants.iter().enumerate() {
            chain_ok(&mut p, &format!("tenants[{i}].centres"), &t.centres, &t.id);
        }
        let mut devices = HashSet::new();
        let mut dc09_accounts = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let at = format!("devices[{i}]");
            ident(&mut p, &format!("{at}.id"), &d.id);
            if !tenants.contains(d.tenant.as_str()) {
                p.push(err(
                    format!("{at}.tenant"),
                    format!("unknown tenant \"{}\"", d.tenant),
                ));
            }
            if !devices.insert((d.tenant.as_str(), d.id.as_str())) {
                p.push(err(
                    format!("{at}.id"),
                    format!("duplicate device \"{}\" in tenant \"{}\"", d.id, d.tenant),
                ));
            }
            if d.device_type.len() != 4 || !d.device_type.bytes().all(|b| b.is_ascii_digit()) {
                p.push(err(
                    format!("{at}.type"),
                    "must be four digits (SCAIP Annex A), e.g. \"0003\"",
                ));
            }
            if d.heartbeat_secs == Some(0) {
                p.push(err(
                    format!("{at}.heartbeat_secs"),
                    "must be greater than 0 (omit it for no supervision)",
                ));
            }
            if d.password.as_deref() == Some("") {
                p.push(err(format!("{at}.password"), "must not be empty"));
            }
            if d.digest_single_use_nonce && d.password.is_none() {
                p.push(err(
                    format!("{at}.digest_single_use_nonce"),
                    "only for a device with a SIP digest `password`",
                ));
            }
            chain_ok(&mut p, &format!("{at}.centres"), &d.centres, &d.tenant);
            for (j, g) in d.gateway_for.iter().enumerate() {
                if !self
                    .devices
                    .iter()
                    .any(|o| o.tenant == d.tenant && &o.id == g)
                {
                    p.push(err(
                        format!("{at}.gateway_for[{j}]"),
                        format!("unknown device \"{g}\" in tenant \"{}\"", d.tenant),
                    ));
                }
            }
            deadline(
                &mut p,
                &format!("{at}.receipt_deadline_secs"),
                d.receipt_deadline_secs,
            );
            deadline(
                &mut p,
                &format!("{at}.accept_deadline_secs"),
                d.accept_deadline_secs,
            );
            fences(&mut p, &at, &d.fences);
            dc09_device(&mut p, &at, d, &mut dc09_accounts);
            for (field, reason) in vaka_core::rules::check_rules(&d.rules, &format!("{at}.rules")) {
                p.push(err(field, reason));
            }
            for (kind, chain) in &d.chains_by_kind {
                if !vaka_core::directory::records::CHAIN_KINDS.contains(&kind.as_str()) {
                    p.push(err(
                        format!("{at}.chains_by_kind.{kind}"),
                        "unknown kind of alarm",
                    ));
                }
                chain_ok(
                    &mut p,
                    &format!("{at}.chains_by_kind.{kind}"),
                    chain,
                    &d.tenant,
                );
            }
        }
        if vaka_core::rules::time::zone(&self.defaults.time_zone).is_none() {
            p.push(err(
                "defaults.time_zone",
                "unknown time zone (IANA names, e.g. Europe/Stockholm)",
            ));
        }
        for (field, reason) in
            vaka_core::admission::check_admission(&self.defaults.admission, "defaults.admission")
        {
            p.push(err(field, reason));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if let Some(a) = &t.admission {
                for (field, reason) in
                    vaka_core::admission::check_admission(a, &format!("tenants[{i}].admission"))
                {
                    p.push(err(field, reason));
                }
            }
            if let Some(z) = &t.time_zone {
                if vaka_core::rules::time::zone(z).is_none() {
                    p.push(err(
                        format!("tenants[{i}].time_zone"),
                        format!("unknown time zone \"{z}\""),
                    ));
                }
            }
            for (ty, rules) in &t.rules_by_type {
                for (field, reason) in vaka_core::rules::check_rules(
                    rules,
                    &format!("tenants[{i}].rules_by_type.{ty}"),
                ) {
                    p.push(err(field, reason));
                }
            }
            for (ty, c) in &t.supervision_by_type {
                let key = format!("tenants[{i}].supervision_by_type.{ty}");
                if ty.len() != 4 || !ty.bytes().all(|b| b.is_ascii_digit()) {
                    p.push(err(&key, "the device type must be four digits"));
                }
                if let Err(e) = c.parse::<vaka_core::supervision::Category>() {
                    p.push(err(key, e.to_string()));
                }
            }
        }
        if let Some(d) = &self.dc09 {
            if let Err((key, reason)) = d.validate() {
                p.push(err(key, reason));
            }
        }
        if let Some(q) = &self.quic {
            validate_quic(&mut p, q, &tenants);
        }
        if self.quic.is_none() && self.listen.quic_telemetry.is_some() {
            p.push(err(
                "listen.quic_telemetry",
                "a telemetry port needs the QUIC front ([quic])",
            ));
        }
        self.validate_gps(&mut p);
        p
    }

    fn validate_admin(&self, p: &mut Vec<ConfigError>) {
        let a = &self.admin;
        if a.tls_cert.is_some() != a.tls_key.is_some() {
            p.push(err("admin.tls_cert", "tls_cert and tls_key go together"));
        }
        if a.client_ca.is_some() && a.tls_cert.is_none() {
            p.push(err(
                "admin.client_ca",
                "client certificates need tls_cert and tls_key",
            ));
        }
        if a.bootstrap_token.as_deref().is_some_and(|t| t.len() < 16) {
            p.push(err(
                "admin.bootstrap_token",
                "must be at least 16 characters (it is a platform operator's password)",
            ));
        }
    }

    fn validate_grpc(&self, p: &mut Vec<ConfigError>) {
        let g = &self.grpc;
        if g.heartbeat_secs == 0 {
            p.push(err("grpc.heartbeat_secs", "must be greater than 0"));
        }
        if g.ack_timeout_secs == 0 {
            p.push(err("grpc.ack_timeout_secs", "must be greater than 0"));
        }
        if g.max_unacked == 0 {
            p.push(err("grpc.max_unacked", "must be greater than 0"));
        }
        if g.tls_cert.is_some() != g.tls_key.is_some() {
            p.push(err("grpc.tls_cert", "tls_cert and tls_key go together"));
        }
        if g.client_ca.is_some() && g.tls_cert.is_none() {
            p.push(err(
                "grpc.client_ca",
                "client certificates need tls_cert and tls_key",
            ));
        }
        if self.centre_api_in_plaintext_off_loopback() && !g.insecure {
            p.push(err(
                "grpc.tls_cert",
                format!(
                    "the centre API on {} would carry bearer tokens and alarms in plaintext: set \
                     grpc.tls_cert and grpc.tls_key (`vaka certs` writes a demo pair), listen on \
                     a loopback address, or set grpc.insecure = true",
                    self.listen.grpc
                ),
            ));
        }
    }

    fn validate_gps(&self, p: &mut Vec<ConfigError>) {
        if self.gps.retention_sweep_secs == 0 {
            p.push(err("gps.retention_sweep_secs", "must be greater than 0"));
        }
        if self.defaults.retention_days == 0 {
            p.push(err("defaults.retention_days", "must be at least 1"));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if t.retention_days == Some(0) {
                p.push(err(
                    format!("tenants[{i}].retention_days"),
                    "must be at least 1",
                ));
            }
            let at = format!("tenants[{i}].retention");
            for (key, why) in t
                .retention
                .problems(&at, self.defaults.alarm_retention_min_days)
            {
                p.push(err(key, why));
            }
        }
    }
}

/// A device's fences: valid shapes, ids unique within the device.
fn fences(p: &mut Vec<ConfigError>, device_at: &str, fences: &[FenceConfig]) {
    let mut ids = HashSet::new();
    for (j, f) in fences.iter().enumerate() {
        let at = format!("{device_at}.fences[{j}]");
        ident(p, &format!("{at}.id"), &f.id);
        if !ids.insert(f.id.as_str()) {
            p.push(err(
                format!("{at}.id"),
                format!("duplicate fence \"{}\" on this device", f.id),
            ));
        }
        if f.confirm_fixes == Some(0) {
            p.push(err(format!("{at}.confirm_fixes"), "must be at least 1"));
        }
        if let Err(e) = f.build() {
            p.push(err(at, e.to_string()));
        }
    }
}

fn deadline(p: &mut Vec<ConfigError>, key: &str, v: Option<u64>) {
    match v {
        Some(0) => p.push(err(key, "must be greater than 0")),
        Some(s) if s > 24 * 3600 => p.push(err(key, "longer than a day: surely a mistake")),
        _ => {}
    }
}

/// Ids end up in storage keys and protocol fields: printable, no separators.
fn ident(p: &mut Vec<ConfigError>, key: &str, v: &str) {
    if v.is_empty() || v.len() > 64 {
        p.push(err(key, "must be 1 to 64 characters"));
    } else if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
    {
        p.push(err(key, "may only contain letters, digits and - _ . : @"));
    }
}

/// `[quic]`: the front's own checks, and every tenant CA must belong to a configured tenant.
fn validate_quic(
    p: &mut Vec<ConfigError>,
    q: &vaka_ingest::quic::QuicConfig,
    tenants: &HashSet<&str>,
) {
    if let Err(e) = q.validate() {
        match e {
            vaka_ingest::quic::QuicError::Config { key, reason } => p.push(err(key, reason)),
            other => p.push(err("quic", other.to_string())),
        }
    }
    for t in q.tenant_cas.keys() {
        if !tenants.contains(t.as_str()) {
            p.push(err(
                format!("quic.tenant_cas.{t}"),
                format!("unknown tenant \"{t}\""),
            ));
        }
    }
}

/// A device's DC-09 account and key, and its supervision category.
fn dc09_device<'a>(
    p: &mut Vec<ConfigError>,
    at: &str,
    d: &'a DeviceConfig,
    accounts: &mut HashSet<&'a str>,
) {
    if let Some(c) = &d.supervision {
        if let Err(e) = c.parse::<vaka_core::supervision::Category>() {
            p.push(err(format!("{at}.supervision"), e.to_string()));
        }
    }
    let Some(account) = &d.dc09_account else {
        if d.dc09_key.is_some() {
            p.push(err(format!("{at}.dc09_key"), "only with a dc09_account"));
        }
        return;
    };
    let cred = vaka_core::directory::Dc09Credential {
        account: account.clone(),
        key: d.dc09_key.clone(),
    };
    for (field, reason) in cred.problems() {
        p.push(err(format!("{at}.{}", field.replace('.', "_")), reason));
    }
    if !accounts.insert(account.as_str()) {
        p.push(err(
            format!("{at}.dc09_account"),
            format!("DC-09 account \"{account}\" is given to another device"),
        ));
    }
}
