//! The configuration file: TOML, deserialised with serde, then validated. Every error names the key
//! at fault and the reason, e.g. `devices[1].tenant: unknown tenant "x"`.
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vaka_core::alarm::Deadlines;
use vaka_core::directory::{
    CentreRecord, Change, Defaults, DeviceRecord, Directory, FenceRecord, Records, TenantRecord,
};
use vaka_core::gps::{FilterConfig, FilterOverride};
use vaka_core::CentreId;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub router: RouterSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub defaults: DefaultsSection,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub centres: Vec<CentreEntry>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// The vaka/1 device front over QUIC; absent = off. Its address is `listen.quic`.
    pub quic: Option<vaka_ingest::quic::QuicConfig>,
    #[serde(default)]
    pub grpc: GrpcSection,
    /// The SCAIP front (SIP over UDP/TCP/TLS on `listen.sip_*`); absent = not started.
    pub sip: Option<vaka_ingest::sip::SipConfig>,
    #[serde(default)]
    pub gps: GpsSection,
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[admin]`: the admin REST API on `listen.http` (beside `/metrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// A platform-operator API token kept (hashed) as token id "bootstrap", to create the others
    /// with (`vaka admin tokens create`). Absent: the tokens already stored are all there is.
    pub bootstrap_token: Option<String>,
    /// Server certificate and key (PEM): with them `listen.http` speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// tracing-subscriber filter syntax, e.g. "info" or "vaka_router=debug,info".
    pub log_level: String,
    /// Bound on a graceful shutdown: drain, flush, exit.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            shutdown_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    pub sip_udp: SocketAddr,
    pub sip_tcp: SocketAddr,
    pub sip_tls: SocketAddr,
    pub quic: SocketAddr,
    pub grpc: SocketAddr,
    /// Prometheus metrics at /metrics (later also the dashboard).
    pub http: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        let a = |s: &str| s.parse().expect("valid default address");
        Self {
            sip_udp: a("0.0.0.0:5060"),
            sip_tcp: a("0.0.0.0:5060"),
            sip_tls: a("0.0.0.0:5061"),
            quic: a("0.0.0.0:4433"),
            // Loopback unless configured: plaintext is allowed only there (grpc.insecure).
            grpc: a("127.0.0.1:50051"),
            http: a("127.0.0.1:9100"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSection {
    /// 0 = one shard per core.
    pub shards: usize,
    pub alarm_queue: usize,
    pub telemetry_queue: usize,
    pub max_batch: usize,
    pub max_inflight: usize,
    pub idempotency_window_secs: u64,
    pub idempotency_capacity: usize,
    /// Silence tolerated beyond a device's heartbeat interval before "device silent" is raised.
    pub supervision_grace_secs: u64,
    /// How long an away centre (after a start, or a dropped stream) is waited for before
    /// escalation passes it.
    pub reconnect_grace_secs: u64,
}

impl Default for RouterSection {
    fn default() -> Self {
        let d = vaka_router::RouterConfig::default();
        Self {
            shards: 0,
            alarm_queue: d.alarm_queue,
            telemetry_queue: d.telemetry_queue,
            max_batch: d.max_batch,
            max_inflight: d.max_inflight,
            idempotency_window_secs: (d.idempotency_window_ms / 1000) as u64,
            idempotency_capacity: d.idempotency_capacity,
            supervision_grace_secs: (d.supervision_grace_ms / 1000) as u64,
            reconnect_grace_secs: (d.reconnect_grace_ms / 1000) as u64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub max_group_ops: usize,
    pub queue_depth: usize,
    pub write_buffer_mb: usize,
    /// Table files RocksDB keeps open: its share of the descriptor budget (invariant 13).
    pub max_open_files: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = vaka_store::GroupConfig::default();
        Self {
            max_group_ops: d.max_group_ops,
            queue_depth: d.queue_depth,
            write_buffer_mb: 64,
            max_open_files: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultsSection {
    pub receipt_deadline_secs: u64,
    pub accept_deadline_secs: u64,
    pub retention_days: u32,
}

impl Default for DefaultsSection {
    fn default() -> Self {
        Self {
            receipt_deadline_secs: 10,
            accept_deadline_secs: 60,
            retention_days: vaka_core::directory::DEFAULT_RETENTION_DAYS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Escalation chain for the tenant's devices, first centre first.
    #[serde(default)]
    pub centres: Vec<String>,
    pub receipt_deadline_secs: Option<u64>,
    pub accept_deadline_secs: Option<u64>,
    pub retention_days: Option<u32>,
    /// The tenant's GPS filters: laid over `[gps.filter]`.
    #[serde(default)]
    pub gps_filter: FilterOverride,
}

/// One `[[centres]]` entry of the file (the centre API's own settings are `[grpc]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Tenants whose alarms this centre may see.
    pub tenants: Vec<String>,
    /// Bearer token for the centre API.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub tenant: String,
    pub id: String,
    /// SCAIP device type (Annex A), four digits.
    #[serde(rename = "type")]
    pub device_type: String,
    /// SIP digest password.
    pub password: Option<String>,
    /// The device cannot do digest `qop=auth`: its credentials without qop are accepted once
    /// per nonce (a replay is refused; each request costs it a fresh challenge).
    #[serde(default)]
    pub digest_single_use_nonce: bool,
    pub heartbeat_secs: Option<u32>,
    /// Own escalation chain; default is the tenant's.
    #[serde(default)]
    pub centres: Vec<String>,
    pub receipt_deadline_secs: Option<u64>,
    pub accept_deadline_secs: Option<u64>,
    /// For a gateway: ids of devices of the same tenant it may send for.
    #[serde(default)]
    pub gateway_for: Vec<String>,
    /// The device's GPS filters: laid over its tenant's.
    pub gps_filter: Option<FilterOverride>,
    /// Geofences: leaving one (confirmed) raises an alarm, coming back its restoral.
    #[serde(default)]
    pub fences: Vec<FenceConfig>,
}

/// `[gps]`: the filters every tenant starts from, and the retention sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpsSection {
    /// How often position history older than its tenant's `retention_days` is deleted.
    pub retention_sweep_secs: u64,
    pub filter: FilterConfig,
}

impl Default for GpsSection {
    fn default() -> Self {
        Self {
            retention_sweep_secs: 3600,
            filter: FilterConfig::default(),
        }
    }
}

/// One geofence of a device, e.g.
/// `{ id = "home", kind = "circle", lat = 57.7, lon = 11.97, radius_m = 500, margin_m = 50 }`:
/// the directory's fence record.
pub type FenceConfig = FenceRecord;

/// The alarm-centre gRPC API (`listen.grpc`): stream timings and limits, optional TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSection {
    pub heartbeat_secs: u64,
    /// A centre that leaves a notice unacknowledged this long is cut off and counts as unreachable.
    pub ack_timeout_secs: u64,
    /// Notices sent to a centre but not yet acknowledged.
    pub max_unacked: usize,
    /// Server certificate and key (PEM): with them the API speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) for centres' client certificates (mTLS; the certificate's CN is the centre id).
    pub client_ca: Option<PathBuf>,
    /// Allow the API without TLS on a non-loopback address (bearer tokens and alarm data in the
    /// clear); logged as a warning at start. Without it such a configuration is refused.
    pub insecure: bool,
}

impl Default for GrpcSection {
    fn default() -> Self {
        let d = vaka_centre::CentreApiConfig::default();
        Self {
            heartbeat_secs: d.heartbeat.as_secs(),
            ack_timeout_secs: d.ack_timeout.as_secs(),
            max_unacked: d.max_unacked,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            insecure: false,
        }
    }
}

/// A configuration error: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![err("", format!("cannot read {}: {e}", path.display()))])?;
        Self::parse(&text)
    }

    /// Parses and validates; returns every problem found, not just the first.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![syntax_error(text, &e)])?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let reason = toml_reason(e.inner());
            vec![err(if key == "." { String::new() } else { key }, reason)]
        })?;
        if let Some(q) = &mut cfg.quic {
            q.listen = cfg.listen.quic;
        }
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }

    fn validate(&self) -> Vec<ConfigError> {
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
        }
        if let Some(q) = &self.quic {
            validate_quic(&mut p, q, &tenants);
        }
        self.validate_gps(&mut p);
        p
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
        }
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
            gps_filter: self.gps.filter.clone(),
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
                gps_filter: t.gps_filter.clone(),
                revision: 0,
            }));
        }
        for d in &self.devices {
            let sip = d.password.as_ref().map(|p| {
                vaka_ingest::sip::sip_credential(&d.id, &realm, p, d.digest_single_use_nonce)
            });
            out.push(Change::PutDevice(Box::new(DeviceRecord {
                sip,
                heartbeat_secs: d.heartbeat_secs,
                centres: d.centres.clone(),
                receipt_deadline_secs: d.receipt_deadline_secs,
                accept_deadline_secs: d.accept_deadline_secs,
                gateway_for: d.gateway_for.clone(),
                gps_filter: d.gps_filter.clone(),
                fences: d.fences.clone(),
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

/// The reason alone: toml's Display adds a source snippet over several lines.
fn toml_reason(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// Syntax errors have no key yet: name the line instead.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(l) => err(format!("line {l}"), toml_reason(e)),
        None => err("", toml_reason(e)),
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
