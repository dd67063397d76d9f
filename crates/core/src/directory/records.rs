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
    /// Periods per kind of data (positions, telemetry, alarms, admin audit), in days; a kind
    /// left out: see `crate::retention::RetentionRecord`.
    #[serde(
        default,
        skip_serializing_if = "crate::retention::RetentionRecord::is_empty"
    )]
    pub retention: crate::retention::RetentionRecord,
    /// The tenant's GPS filters, laid over the platform's.
    #[serde(default)]
    pub gps_filter: FilterOverride,
    /// EN 50136-1 supervision category per device type ("0003" -> "DP4"), for devices that set
    /// neither their own category nor `heartbeat_secs`.
    #[serde(default)]
    pub supervision_by_type: std::collections::BTreeMap<String, String>,
    /// IANA time zone of the tenant's activity rules ("Europe/Stockholm"); absent: the
    /// platform's (`defaults.time_zone`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Activity rules per device type, for devices without rules of their own.
    #[serde(default)]
    pub rules_by_type: std::collections::BTreeMap<String, Vec<crate::rules::RuleRecord>>,
    /// On test until this time (unix ms; installation, maintenance): the tenant's alarms reach
    /// their centres marked as tests, ride below real alarms and are never escalated; the mode
    /// ends by itself. Absent or past: not on test.
    #[serde(default)]
    pub test_until_ms: Option<i64>,
    /// End-to-end canary: the engine itself sends a test alarm as this device through its own
    /// SCAIP front on a schedule and expects a centre's machine receipt (see `canary`).
    #[serde(default)]
    pub canary: Option<CanaryRecord>,
    /// Events per second the tenant's devices may hand the engine, alarms and telemetry apart;
    /// absent (or a class absent): the platform's (`defaults.admission`). Over it: busy
    /// (`crate::admission` says when a real alarm is still taken).
    #[serde(default)]
    pub admission: Option<Box<crate::admission::AdmissionRecord>>,
    /// The directory revision that last wrote this record (its ETag).
    #[serde(default)]
    pub revision: u64,
}

/// A tenant's canary: which of its devices the engine plays, and how often.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRecord {
    /// A device of the tenant with SIP credentials and a SCAIP controller id (digits) as its id;
    /// its alarms are always tests.
    pub device: String,
    /// Seconds between canary alarms (at least 10).
    #[serde(default = "canary_every")]
    pub every_secs: u32,
}

fn canary_every() -> u32 {
    300
}

/// The shortest canary period: a canary must not become a flood.
pub const CANARY_MIN_SECS: u32 = 10;

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
    /// A receiver the engine itself runs for this centre (webhook, e-mail, SMS, responder page,
    /// SCAIP forwarding); absent: a centre that connects over gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<ReceiverRecord>,
    /// Seconds this centre has to receipt an alarm offered to it, replacing the device's (a
    /// relative may need minutes where an alarm centre has seconds); absent: the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_deadline_secs: Option<u64>,
    /// Seconds it has to accept the alarm once receipted; absent: the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_deadline_secs: Option<u64>,
    #[serde(default)]
    pub revision: u64,
}

/// How the engine reaches a receiver that does not connect itself. Each runs as a centre:
/// the same outbox, deadlines, escalation and audit (crates/receivers).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiverRecord {
    /// HTTP(S) POST of each offer and update as JSON, signed with `secret` (HMAC-SHA256); a 2xx
    /// answer to an offer is the receipt.
    Webhook {
        url: String,
        /// At least 16 characters; the receiver verifies `X-Vaka-Signature` with it.
        secret: String,
    },
    /// People reached by e-mail with a link to the responder page (one member per address).
    Email { to: Vec<String> },
    /// People reached by SMS with a link to the responder page (one member per number).
    Sms { to: Vec<String> },
    /// A person or a team: each member gets a link by SMS and/or e-mail; opening it is the
    /// receipt, Accept the accept.
    Responder { members: Vec<MemberRecord> },
    /// Another alarm receiver over SCAIP (SIP MESSAGE with digest auth): its `<mrs>` snu 0 is
    /// the receipt.
    Scaip {
        /// `sip:user@host:port`.
        uri: String,
        username: String,
        password: String,
        /// The device id the far receiver knows us as (its `<cid>`); default `username`.
        #[serde(default)]
        cid: Option<String>,
        /// Send each alarm with its own device's id as `<cid>` (the far receiver lists them as
        /// devices behind this gateway), so alarms of different devices stay different alarms
        /// there; default false: every alarm as `cid`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_device_cid: bool,
        /// "udp" (the default), "tcp" or "tls" (the far receiver's certificate must name the
        /// URI's host and chain to a public root or `receivers.scaip_ca_file`).
        #[serde(default)]
        transport: Option<String>,
    },
}

/// One person of a responder receiver.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    /// Shown to the team and written in the audit ("operator:<name>").
    pub name: String,
    /// E.164 ("+46701234567").
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl ReceiverRecord {
    /// "webhook", "email", "sms", "responder", "scaip".
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverRecord::Webhook { .. } => "webhook",
            ReceiverRecord::Email { .. } => "email",
            ReceiverRecord::Sms { .. } => "sms",
            ReceiverRecord::Responder { .. } => "responder",
            ReceiverRecord::Scaip { .. } => "scaip",
        }
    }

    /// The people a responder-page receiver reaches (e-mail and SMS receivers as members).
    pub fn members(&self) -> Vec<MemberRecord> {
        match self {
            ReceiverRecord::Email { to } => to
                .iter()
                .map(|a| MemberRecord {
                    name: a.clone(),
                    phone: None,
                    email: Some(a.clone()),
                })
                .collect(),
            ReceiverRecord::Sms { to } => to
                .iter()
                .map(|n| MemberRecord {
                    name: n.clone(),
                    phone: Some(n.clone()),
                    email: None,
                })
                .collect(),
            ReceiverRecord::Responder { members } => members.clone(),
            _ => Vec::new(),
        }
    }

    /// Why the receiver cannot be used, each problem named by its field under `at`.
    pub fn problems(&self, at: &str) -> Problems {
        let mut p = Problems::new();
        let mut bad = |f: &str, why: &str| p.push((format!("{at}.{f}"), why.to_owned()));
        match self {
            ReceiverRecord::Webhook { url, secret } => {
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.len() > 2000
                    || url.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    bad("url", "must be an http:// or https:// URL without spaces");
                }
                if secret.chars().count() < 16 {
                    bad("secret", "must be at least 16 characters");
                }
            }
            ReceiverRecord::Email { to } | ReceiverRecord::Sms { to } if to.is_empty() => {
                bad("to", "must name at least one recipient");
            }
            ReceiverRecord::Email { to } => {
                for (i, a) in to.iter().enumerate() {
                    if !valid_email(a) {
                        bad(&format!("to[{i}]"), "must be an e-mail address (name@host)");
                    }
                }
            }
            ReceiverRecord::Sms { to } => {
                for (i, n) in to.iter().enumerate() {
                    if !valid_phone(n) {
                        bad(
                            &format!("to[{i}]"),
                            "must be a phone number: + and 7-15 digits",
                        );
                    }
                }
            }
            ReceiverRecord::Responder { members } => {
                if members.is_empty() {
                    bad("members", "must name at least one member");
                }
                let mut names = std::collections::HashSet::new();
                for (i, m) in members.iter().enumerate() {
                    let name_ok = !m.name.trim().is_empty()
                        && m.name.chars().count() <= 64
                        && !m.name.chars().any(char::is_control);
                    if !name_ok {
                        bad(
                            &format!("members[{i}].name"),
                            "must be 1-64 printable characters",
                        );
                    } else if !names.insert(m.name.as_str()) {
                        bad(&format!("members[{i}].name"), "duplicate member name");
                    }
                    if m.phone.is_none() && m.email.is_none() {
                        bad(&format!("members[{i}]"), "needs a phone or an email");
                    }
                    if m.phone.as_deref().is_some_and(|n| !valid_phone(n)) {
                        bad(&format!("members[{i}].phone"), "must be + and 7-15 digits");
                    }
                    if m.email.as_deref().is_some_and(|a| !valid_email(a)) {
                        bad(&format!("members[{i}].email"), "must be an e-mail address");
                    }
                }
            }
            ReceiverRecord::Scaip {
                uri,
                username,
                password,
                cid,
                per_device_cid,
                transport,
            } => {
                if !uri.starts_with("sip:") || !uri.contains('@') || uri.contains(' ') {
                    bad("uri", "must be sip:user@host[:port]");
                }
                if username.is_empty() || username.contains([' ', '"', ':']) {
                    bad(
                        "username",
                        "must be non-empty without spaces, quotes or colons",
                    );
                }
                if password.is_empty() {
                    bad("password", "must not be empty");
                }
                if cid.as_deref().is_some_and(|c| !valid_id(c)) {
                    bad("cid", "must be 1-64 of A-Z a-z 0-9 - _ . : @");
                }
                if *per_device_cid && cid.is_some() {
                    bad(
                        "per_device_cid",
                        "names the device as <cid>: leave cid out, or set this false",
                    );
                }
                if transport
                    .as_deref()
                    .is_some_and(|t| !matches!(t, "udp" | "tcp" | "tls"))
                {
                    bad("transport", "must be \"udp\", \"tcp\" or \"tls\"");
                }
            }
        }
        p
    }
}

fn valid_email(a: &str) -> bool {
    let Some((local, host)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && host.contains('.')
        && a.len() <= 254
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && !host.contains('@')
}

fn valid_phone(n: &str) -> bool {
    n.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
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

/// A SIA DC-09 account: the panel or transceiver reporting as `account` is this device.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dc09Credential {
    /// The account number the panel sends (`#acct`): 3-16 hex digits, unique over the engine.
    pub account: String,
    /// AES key: 32, 48 or 64 hex digits, or 16, 24 or 32 ASCII characters (as panels' set-up
    /// screens show it). With a key every message must be encrypted; without one, plain only.
    #[serde(default)]
    pub key: Option<String>,
}

impl Dc09Credential {
    /// Why the account or key cannot be used, as `(field, reason)`.
    pub fn problems(&self) -> Problems {
        let mut p = Problems::new();
        let a = &self.account;
        if !(3..=16).contains(&a.len()) || !a.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.push(("dc09.account".into(), "must be 3-16 hex digits".into()));
        }
        if let Some(k) = &self.key {
            let hex = matches!(k.len(), 32 | 48 | 64) && k.bytes().all(|b| b.is_ascii_hexdigit());
            let ascii = matches!(k.len(), 16 | 24 | 32) && k.bytes().all(|b| b.is_ascii_graphic());
            if !hex && !ascii {
                p.push((
                    "dc09.key".into(),
                    "must be 32, 48 or 64 hex digits, or 16, 24 or 32 printable ASCII characters"
                        .into(),
                ));
            }
        }
        p
    }
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
    /// SIA DC-09 account (and key) this device reports as.
    #[serde(default)]
    pub dc09: Option<Dc09Credential>,
    /// Expected heartbeat interval; absent: not supervised (unless by a category).
    #[serde(default)]
    pub heartbeat_secs: Option<u32>,
    /// EN 50136-1 supervision category ("SP1".."SP6", "DP1".."DP4"): silent after its reporting
    /// time. Wins over `heartbeat_secs`; absent: `heartbeat_secs`, else the tenant's category for
    /// the device type.
    #[serde(default)]
    pub supervision: Option<String>,
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
    /// Activity rules (night checks, missed doses, thresholds); empty: its type's, if any.
    #[serde(default)]
    pub rules: Vec<crate::rules::RuleRecord>,
    /// Own chains per kind of alarm ("missed_dose" -> the nurses), over `centres`: kinds are
    /// alarm, technical, silent, geofence and the rule kinds.
    #[serde(default)]
    pub chains_by_kind: std::collections::BTreeMap<String, Vec<String>>,
    /// On test until this time (unix ms), as a tenant's `test_until_ms`, for this device alone.
    #[serde(default)]
    pub test_until_ms: Option<i64>,
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
            dc09: None,
            heartbeat_secs: None,
            supervision: None,
            centres: Vec::new(),
            deadline_policy: None,
            receipt_deadline_secs: None,
            accept_deadline_secs: None,
            gateway_for: Vec::new(),
            gps_filter: None,
            fences: Vec::new(),
            rules: Vec::new(),
            chains_by_kind: std::collections::BTreeMap::new(),
            test_until_ms: None,
            revision: 0,
        }
    }
}

/// The kinds of alarm a device's `chains_by_kind` may route.
pub const CHAIN_KINDS: [&str; 10] = [
    "alarm",
    "technical",
    "silent",
    "geofence",
    "out_of_bed",
    "not_in_bed_by",
    "door_at_night",
    "no_motion",
    "missed_dose",
    "threshold",
];

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
// A tenant record is the largest; changes are rare control-plane writes, never on the hot path,
// so the size of one in memory does not matter.
/// Serialised (JSON) as a cluster's directory log entry (vaka-admin's `replicated`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

pub use crate::checks::{valid_id, Problems};

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

#[cfg(test)]
mod receiver_tests {
    use super::*;

    fn fields(r: &ReceiverRecord) -> Vec<String> {
        r.problems("receiver").into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn each_receiver_problem_is_named_by_its_field() {
        let hook = ReceiverRecord::Webhook {
            url: "ftp://x".into(),
            secret: "short".into(),
        };
        assert_eq!(fields(&hook), ["receiver.url", "receiver.secret"]);
        let team = ReceiverRecord::Responder {
            members: vec![
                MemberRecord {
                    name: "Anna".into(),
                    phone: Some("0701".into()),
                    email: None,
                },
                MemberRecord {
                    name: "Anna".into(),
                    phone: None,
                    email: Some("not-an-address".into()),
                },
                MemberRecord {
                    name: "Bo".into(),
                    phone: None,
                    email: None,
                },
            ],
        };
        assert_eq!(
            fields(&team),
            [
                "receiver.members[0].phone",
                "receiver.members[1].name",
                "receiver.members[1].email",
                "receiver.members[2]",
            ]
        );
        let sip = ReceiverRecord::Scaip {
            uri: "http://x".into(),
            username: "".into(),
            password: "".into(),
            cid: Some("gw".into()),
            per_device_cid: true,
            transport: Some("sctp".into()),
        };
        assert_eq!(
            fields(&sip),
            [
                "receiver.uri",
                "receiver.username",
                "receiver.password",
                "receiver.per_device_cid",
                "receiver.transport"
            ]
        );
        assert_eq!(fields(&ReceiverRecord::Sms { to: vec![] }), ["receiver.to"]);
        let ok = ReceiverRecord::Email {
            to: vec!["a@b.se".into()],
        };
        assert!(fields(&ok).is_empty());
        assert_eq!(ok.members()[0].email.as_deref(), Some("a@b.se"));
    }

    #[test]
    fn a_centre_without_a_receiver_reads_and_writes_as_before() {
        // A record written before receivers existed still reads, and writes the same keys.
        let old = r#"{"id":"c1","name":"","tenants":["t"],"revision":3}"#;
        let c: CentreRecord = serde_json::from_str(old).unwrap();
        assert_eq!(c.receiver, None);
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
        let with: CentreRecord = serde_json::from_str(
            r#"{"id":"h","tenants":["t"],"receiver":{"kind":"webhook","url":"https://x.se/h","secret":"0123456789abcdef"}}"#,
        )
        .unwrap();
        assert_eq!(with.receiver.as_ref().map(|r| r.kind()), Some("webhook"));
        // Unknown fields in a receiver are refused, as everywhere in the directory.
        assert!(serde_json::from_str::<CentreRecord>(
            r#"{"id":"h","receiver":{"kind":"email","to":[],"cc":[]}}"#
        )
        .is_err());
    }
}
