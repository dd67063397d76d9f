//! The file's sections as serde types, with their defaults.
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use vaka_core::directory::FenceRecord;
use vaka_core::gps::{FilterConfig, FilterOverride};

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
    /// The SIA DC-09 front (TCP and UDP on its own ports); absent = not started.
    pub dc09: Option<vaka_ingest::dc09::Dc09Config>,
    #[serde(default)]
    pub gps: GpsSection,
    #[serde(default)]
    pub admin: AdminSection,
    /// Receivers the engine runs (webhooks, e-mail, SMS, responder page, SCAIP forwarding).
    #[serde(default)]
    pub receivers: vaka_receivers::ReceiversConfig,
    /// A node of a cluster on NATS JetStream (ARCHITECTURE.md, "Cluster on NATS JetStream"):
    /// the directory is the cluster's directory log. Absent: a single node.
    pub cluster: Option<vaka_cluster::ClusterConfig>,
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
    /// CA (PEM) for clients' certificates: with it (and TLS) every HTTPS client must present a
    /// certificate from this CA as well as its token (mTLS).
    pub client_ca: Option<PathBuf>,
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
    /// The QUIC telemetry port (`quic.telemetry_nice`): devices' telemetry connections, on
    /// their own socket and thread so that a flood of them cannot delay alarms. Absent: none.
    pub quic_telemetry: Option<SocketAddr>,
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
            quic_telemetry: None,
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
    /// Alarm records are kept at least this long: a tenant's `retention.alarms_days` below it
    /// is refused (and one stored before it was raised is read as it).
    pub alarm_retention_min_days: u32,
    /// IANA time zone of activity rules for tenants that name none.
    pub time_zone: String,
    /// Admission limits of tenants that set none (`{ alarms = { per_sec, burst }, telemetry =
    /// ... }`); a class left out: the built-in default (`vaka_core::admission::DEFAULT_LIMITS`).
    pub admission: vaka_core::admission::AdmissionRecord,
}

impl Default for DefaultsSection {
    fn default() -> Self {
        Self {
            receipt_deadline_secs: 10,
            accept_deadline_secs: 60,
            retention_days: vaka_core::directory::DEFAULT_RETENTION_DAYS,
            alarm_retention_min_days: vaka_core::directory::DEFAULT_ALARM_RETENTION_MIN_DAYS,
            time_zone: vaka_core::directory::DEFAULT_TIME_ZONE.into(),
            admission: Default::default(),
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
    /// Periods per kind of data (`retention = { positions_days = 30, alarms_days = 730 }`).
    #[serde(default)]
    pub retention: vaka_core::retention::RetentionRecord,
    /// The tenant's GPS filters: laid over `[gps.filter]`.
    #[serde(default)]
    pub gps_filter: FilterOverride,
    /// EN 50136-1 supervision category per device type, e.g. `{ "0003" = "DP4" }`.
    #[serde(default)]
    pub supervision_by_type: std::collections::BTreeMap<String, String>,
    /// IANA time zone of the tenant's activity rules; default `defaults.time_zone`.
    pub time_zone: Option<String>,
    /// Activity rules per device type (`[[tenants.rules_by_type."0010"]]`).
    #[serde(default)]
    pub rules_by_type: std::collections::BTreeMap<String, Vec<vaka_core::rules::RuleRecord>>,
    /// End-to-end canary: `canary = { device = "900001", every_secs = 300 }`, a device of this
    /// tenant with a SIP password that the engine plays through its own SCAIP front.
    pub canary: Option<vaka_core::directory::CanaryRecord>,
    /// Events per second the tenant's devices may hand the engine (`[tenants.admission]`);
    /// default `defaults.admission`.
    pub admission: Option<vaka_core::admission::AdmissionRecord>,
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
    /// A receiver the engine runs for this centre (`{ kind = "webhook", url, secret }`, ...);
    /// such a centre has no token.
    #[serde(default)]
    pub receiver: Option<vaka_core::directory::ReceiverRecord>,
    /// Seconds this centre has to receipt and to accept an alarm offered to it, replacing the
    /// device's (e.g. 300 for a relative); absent: the device's.
    pub receipt_deadline_secs: Option<u64>,
    pub accept_deadline_secs: Option<u64>,
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
    /// EN 50136-1 supervision category ("SP1".."SP6", "DP1".."DP4"); wins over heartbeat_secs.
    pub supervision: Option<String>,
    /// SIA DC-09 account number the device reports as (3-16 hex digits).
    pub dc09_account: Option<String>,
    /// Its AES key (32/48/64 hex digits or 16/24/32 ASCII characters); absent: plain only.
    pub dc09_key: Option<String>,
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
    /// Activity rules (`[[devices.rules]]`: id, kind and the kind's fields).
    #[serde(default)]
    pub rules: Vec<vaka_core::rules::RuleRecord>,
    /// Own chains per kind of alarm, e.g. `{ missed_dose = ["nurses"] }`.
    #[serde(default)]
    pub chains_by_kind: std::collections::BTreeMap<String, Vec<String>>,
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
