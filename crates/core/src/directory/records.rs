//! The directory as it is written: the records stored in the store's `directory` column family,
//! exchanged by the admin API and read from the bootstrap file. Plain data with serde (JSON);
//! [`super::Directory`] is what the hot path reads, resolved from these.
//!
//! Every field that may be absent has a serde default, so a record written by an older build
//! still reads (fields are only ever added, as options).
use crate::gps::{
    DeviceFence, Fence, FenceError, FenceKind, FenceSpec, FilterOverride, HysteresisConfig,
};
use serde::{Deserialize, Serialize};

/// A municipality or region: owns devices and their data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Escalation chain for the tenant's devices, first centre first.
    #[serde(default)]
    pub centres: Vec<String>,
    /// Deadlines; absent: the platform's defaults.
    #[serde(default)]
    pub receipt_deadline_secs: Option<u64>,
    #[serde(default)]
    pub accept_deadline_secs: Option<u64>,
    /// Position history kept; absent: the platform's default.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// The tenant's GPS filters, laid over the platform's.
    #[serde(default)]
    pub gps_filter: FilterOverride,
    /// The directory revision that last wrote this record (its ETag).
    #[serde(default)]
    pub revision: u64,
}

/// An alarm centre (or any receiver that takes alarms over the centre API).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Tenants whose alarms this centre may see (invariant 7).
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub revision: u64,
}

/// SIP digest credentials, kept as HA1 values only (never the password): HA1 =
/// H(username ":" realm ":" password), for both algorithms a front may be configured with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipCredential {
    /// The realm the HA1 values were computed for (`sip.realm`).
    pub realm: String,
    /// MD5 HA1, lowercase hex.
    pub ha1_md5: String,
    /// SHA-256 HA1, lowercase hex.
    pub ha1_sha256: String,
    /// The device cannot do `qop=auth`: its credentials without qop are accepted once per nonce.
    #[serde(default)]
    pub single_use_nonce: bool,
}

/// One geofence of a device (the bootstrap file's `fences` entries have the same fields).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceRecord {
    /// Names the fence in its alarm (code "geofence-exit:<id>").
    pub id: String,
    pub kind: FenceKind,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// Polygon vertices as [lat, lon].
    #[serde(default)]
    pub points: Vec<[f64; 2]>,
    #[serde(default)]
    pub margin_m: f64,
    /// Consecutive fixes beyond fence + margin that confirm an exit (and inside, a re-entry).
    #[serde(default)]
    pub confirm_fixes: Option<u32>,
    /// Or: fixes on the other side spanning this long confirm it; 0 turns this off.
    #[serde(default)]
    pub confirm_secs: Option<u32>,
}

impl FenceRecord {
    /// The fence ready for decisions, with its hysteresis (defaults where absent).
    pub fn build(&self) -> Result<DeviceFence, FenceError> {
        let fence = Fence::new(&self.spec())?;
        let d = HysteresisConfig::default();
        let hysteresis = HysteresisConfig {
            confirm_fixes: self.confirm_fixes.unwrap_or(d.confirm_fixes),
            confirm_secs: match self.confirm_secs {
                Some(0) => None,
                Some(s) => Some(s),
                None => d.confirm_secs,
            },
        };
        Ok(DeviceFence::new(&self.id, fence, hysteresis))
    }

    pub fn spec(&self) -> FenceSpec {
        FenceSpec {
            kind: self.kind,
            lat: self.lat,
            lon: self.lon,
            radius_m: self.radius_m,
            points: self.points.clone(),
            margin_m: self.margin_m,
        }
    }
}

/// A device of a tenant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    pub tenant: String,
    pub id: String,
    /// SCAIP device type (Annex A), four digits, e.g. "0003" personal trigger.
    #[serde(rename = "type")]
    pub device_type: String,
    /// A disabled device is refused (SIP 403, QUIC connection closed); its open alarms stay.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// SIP digest credentials (username = the device id).
    #[serde(default)]
    pub sip: Option<SipCredential>,
    /// Expected heartbeat interval; absent: not supervised.
    #[serde(default)]
    pub heartbeat_secs: Option<u32>,
    /// Own escalation chain; empty: the tenant's.
    #[serde(default)]
    pub centres: Vec<String>,
    /// A named deadline policy of the tenant; the two fields below override it.
    #[serde(default)]
    pub deadline_policy: Option<String>,
    #[serde(default)]
    pub receipt_deadline_secs: Option<u64>,
    #[serde(default)]
    pub accept_deadline_secs: Option<u64>,
    /// For a gateway: ids of devices of the same tenant it may send for.
    #[serde(default)]
    pub gateway_for: Vec<String>,
    /// The device's GPS filters, laid over its tenant's.
    #[serde(default)]
    pub gps_filter: Option<FilterOverride>,
    #[serde(default)]
    pub fences: Vec<FenceRecord>,
    #[serde(default)]
    pub revision: u64,
}

fn enabled() -> bool {
    true
}

impl DeviceRecord {
    /// A device of `device_type` with nothing else set.
    pub fn new(tenant: &str, id: &str, device_type: &str) -> DeviceRecord {
        DeviceRecord {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            device_type: device_type.to_owned(),
            enabled: true,
            sip: None,
            heartbeat_secs: None,
            centres: Vec::new(),
            deadline_policy: None,
            receipt_deadline_secs: None,
            accept_deadline_secs: None,
            gateway_for: Vec::new(),
            gps_filter: None,
            fences: Vec::new(),
            revision: 0,
        }
    }
}

/// Named deadlines a tenant's devices can refer to (`deadline_policy`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinePolicyRecord {
    pub tenant: String,
    pub id: String,
    pub receipt_deadline_secs: u64,
    pub accept_deadline_secs: u64,
    #[serde(default)]
    pub revision: u64,
}

/// One change to the directory. Puts replace the whole record (an upsert by id).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    PutTenant(TenantRecord),
    DeleteTenant(String),
    PutCentre(CentreRecord),
    DeleteCentre(String),
    PutDevice(Box<DeviceRecord>),
    DeleteDevice { tenant: String, id: String },
    PutPolicy(DeadlinePolicyRecord),
    DeletePolicy { tenant: String, id: String },
}

impl Change {
    /// The tenant the change belongs to; `None` for centres (platform-wide).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Change::PutTenant(t) => Some(&t.id),
            Change::DeleteTenant(t) => Some(t),
            Change::PutCentre(_) | Change::DeleteCentre(_) => None,
            Change::PutDevice(d) => Some(&d.tenant),
            Change::DeleteDevice { tenant, .. } | Change::DeletePolicy { tenant, .. } => {
                Some(tenant)
            }
            Change::PutPolicy(p) => Some(&p.tenant),
        }
    }
}

/// Ids: what a device, tenant or centre may be called. Printable ASCII without '/', so that they
/// fit keys, URLs and SIP usernames unescaped.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

/// A SCAIP device type: four decimal digits.
pub fn valid_device_type(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
}

fn hex_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl SipCredential {
    /// Whether both HA1 values are lowercase hex of the right length (MD5 32, SHA-256 64).
    pub fn well_formed(&self) -> bool {
        hex_of_len(&self.ha1_md5, 32) && hex_of_len(&self.ha1_sha256, 64)
    }
}

/// Keeps the first-failing fields of a record, each with why: `(field, reason)`.
pub type Problems = Vec<(String, String)>;

pub(crate) fn check_fences(p: &mut Problems, fences: &[FenceRecord]) {
    let mut seen = std::collections::HashSet::new();
    for (i, f) in fences.iter().enumerate() {
        let at = format!("fences[{i}]");
        if !valid_id(&f.id) {
            p.push((
                format!("{at}.id"),
                "must be 1-64 of A-Z a-z 0-9 - _ . : @".into(),
            ));
        }
        if !seen.insert(f.id.as_str()) {
            p.push((
                format!("{at}.id"),
                format!("duplicate fence \"{}\" on this device", f.id),
            ));
        }
        if let Err(e) = f.build() {
            p.push((at, e.to_string()));
        }
    }
}
