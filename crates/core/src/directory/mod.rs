//! Who is who: tenants, their devices and the centres that serve them, resolved for the hot path.
//! The records they are resolved from ([`records`]) live in the store and change through the
//! admin API (or the bootstrap file at start); every change makes a new `Directory` that the
//! engine swaps in whole, so readers never lock.
use crate::admission::Limits;
use crate::alarm::{Alarm, AlarmKind};
use crate::alarm::{CentreDeadlines, Deadlines};
use crate::event::EventKind;
use crate::gps::{FilterConfig, GpsPlan};
use crate::ids::{CentreId, DeviceId, DeviceKey, TenantId, UnixMillis};
use crate::rules::Rule;
use crate::supervision::{Category, Silence};
use std::collections::{BTreeMap, HashMap};

mod apply;
pub mod records;

pub use apply::DirectoryError;
pub use records::{
    valid_device_type, valid_id, CanaryRecord, CentreRecord, Change, Dc09Credential,
    DeadlinePolicyRecord, DeviceRecord, FenceRecord, MemberRecord, Problems, ReceiverRecord,
    SipCredential, TenantRecord, CANARY_MIN_SECS,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub deadlines: Deadlines,
    /// Centres tried in order for this tenant's devices unless a device names its own chain.
    pub chain: Vec<CentreId>,
    /// Position history and telemetry older than this are deleted (GDPR), unless `retention`
    /// says otherwise per kind.
    pub retention_days: u32,
    /// Periods per kind, the platform's minimum for alarms applied.
    pub retention: crate::retention::RetentionRecord,
    /// Local time of its activity rules.
    pub time_zone: jiff::tz::TimeZone,
    /// On test until (unix ms): see `TenantRecord::test_until_ms`.
    pub test_until_ms: Option<UnixMillis>,
    /// The device the engine plays as this tenant's canary, and its period.
    pub canary: Option<CanaryRecord>,
    /// Events per second its devices may hand the engine (`crate::admission`).
    pub admission: Limits,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub key: DeviceKey,
    /// SCAIP device type (Annex A), e.g. "0003" personal trigger, "0051" tracker.
    pub device_type: String,
    /// Own escalation chain; empty means the tenant's.
    pub chain: Vec<CentreId>,
    pub deadlines: Option<Deadlines>,
    /// Expected heartbeat interval; `None` means the device is not supervised.
    pub heartbeat_secs: Option<u32>,
    /// For a gateway: the devices of the same tenant it may send for (besides itself).
    pub gateway_for: Vec<DeviceId>,
    /// A disabled device is refused at the fronts and its events are not taken; its open alarms
    /// still follow its chain until handled.
    pub enabled: bool,
    /// SIP digest credentials (HA1 only).
    pub sip: Option<SipCredential>,
    /// SIA DC-09 account and key.
    pub dc09: Option<Dc09Credential>,
    /// Supervised by this EN 50136-1 category (own, else the tenant's for the device type,
    /// unless the device sets `heartbeat_secs`): wins over `heartbeat_secs`.
    pub category: Option<Category>,
    /// Activity rules (own, else its type's in the tenant).
    pub rules: Vec<Rule>,
    /// Chains per kind of alarm, over `chain`.
    pub chains_by_kind: HashMap<String, Vec<CentreId>>,
    /// On test until (unix ms): see `DeviceRecord::test_until_ms`.
    pub test_until_ms: Option<UnixMillis>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Centre {
    pub id: CentreId,
    pub name: String,
    /// The tenants whose alarms this centre may see (invariant 7).
    pub tenants: Vec<TenantId>,
    /// Its own deadlines for the alarms offered to it.
    pub deadlines: CentreDeadlines,
}

/// Position history kept when nothing else is said (also the configuration's default).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Alarm records are kept at least this long unless the platform sets another minimum.
pub const DEFAULT_ALARM_RETENTION_MIN_DAYS: u32 = 365;

/// The time zone of activity rules when neither tenant nor platform names one.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Stockholm";

pub fn default_time_zone() -> jiff::tz::TimeZone {
    crate::rules::time::zone(DEFAULT_TIME_ZONE).unwrap_or(jiff::tz::TimeZone::UTC)
}

impl Tenant {
    /// A tenant named by its id, with default deadlines, `chain` and
    /// [`DEFAULT_RETENTION_DAYS`]; set other fields with struct update syntax.
    pub fn new(id: &str, chain: &[&str]) -> Tenant {
        Tenant {
            id: TenantId::new(id),
            name: id.to_owned(),
            deadlines: Deadlines::default(),
            chain: chain.iter().copied().map(CentreId::new).collect(),
            retention_days: DEFAULT_RETENTION_DAYS,
            retention: Default::default(),
            time_zone: default_time_zone(),
            test_until_ms: None,
            canary: None,
            admission: Limits::default(),
        }
    }
}

impl Device {
    /// An enabled device of `device_type` that follows its tenant's chain and deadlines, is not
    /// supervised, has no SIP credentials and sends for no other device.
    pub fn new(key: DeviceKey, device_type: &str) -> Device {
        Device {
            key,
            device_type: device_type.to_owned(),
            chain: Vec::new(),
            deadlines: None,
            heartbeat_secs: None,
            gateway_for: Vec::new(),
            enabled: true,
            sip: None,
            dc09: None,
            category: None,
            rules: Vec::new(),
            chains_by_kind: HashMap::new(),
            test_until_ms: None,
        }
    }
}

impl Centre {
    /// A centre named by its id that serves `tenants`.
    pub fn new(id: &str, tenants: &[&str]) -> Centre {
        Centre {
            id: CentreId::new(id),
            name: id.to_owned(),
            tenants: tenants.iter().copied().map(TenantId::new).collect(),
            deadlines: CentreDeadlines::default(),
        }
    }

    /// The centre a record describes.
    pub fn from_record(c: &CentreRecord) -> Centre {
        let ms =
            |s: Option<u64>| s.map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX));
        Centre {
            id: CentreId::new(&c.id),
            name: c.name.clone(),
            tenants: c.tenants.iter().map(TenantId::new).collect(),
            deadlines: CentreDeadlines {
                receipt_ms: ms(c.receipt_deadline_secs),
                accept_ms: ms(c.accept_deadline_secs),
            },
        }
    }
}

/// Platform-wide settings records are resolved against (config `[defaults]` and `[gps.filter]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    pub deadlines: Deadlines,
    pub retention_days: u32,
    /// Alarm records are kept at least this long, whatever a tenant says.
    pub alarm_retention_min_days: u32,
    pub gps_filter: FilterConfig,
    pub time_zone: jiff::tz::TimeZone,
    /// Admission limits of a tenant that sets none.
    pub admission: Limits,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            deadlines: Deadlines::default(),
            retention_days: DEFAULT_RETENTION_DAYS,
            alarm_retention_min_days: DEFAULT_ALARM_RETENTION_MIN_DAYS,
            gps_filter: FilterConfig::default(),
            time_zone: default_time_zone(),
            admission: Limits::default(),
        }
    }
}

/// The records as written, ordered for listing (devices by tenant, then id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub tenants: BTreeMap<String, TenantRecord>,
    pub centres: BTreeMap<String, CentreRecord>,
    pub devices: BTreeMap<(String, String), DeviceRecord>,
    pub policies: BTreeMap<(String, String), DeadlinePolicyRecord>,
}

#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Grows with every change; 0 before the first.
    pub revision: u64,
    pub defaults: Defaults,
    pub tenants: HashMap<TenantId, Tenant>,
    pub devices: HashMap<DeviceKey, Device>,
    pub centres: HashMap<CentreId, Centre>,
    /// GPS filters and geofences per tenant and device.
    pub gps: GpsPlan,
    /// SIP digest username (the device id, unique over tenants) -> device.
    sip_users: HashMap<String, DeviceKey>,
    /// DC-09 account number (unique over tenants) -> device.
    dc09_accounts: HashMap<String, DeviceKey>,
    /// What the resolved maps were built from (empty in tests that insert resolved values).
    pub records: Records,
}

impl Directory {
    /// Adds or replaces a tenant, by its id.
    pub fn insert_tenant(&mut self, tenant: Tenant) {
        self.tenants.insert(tenant.id.clone(), tenant);
    }

    /// Adds or replaces a device, by its key.
    pub fn insert_device(&mut self, device: Device) {
        if device.sip.is_some() {
            self.sip_users
                .insert(device.key.device.to_string(), device.key.clone());
        }
        if let Some(d) = &device.dc09 {
            self.dc09_accounts
                .insert(d.account.clone(), device.key.clone());
        }
        self.devices.insert(device.key.clone(), device);
    }

    /// Adds or replaces a centre, by its id.
    pub fn insert_centre(&mut self, centre: Centre) {
        self.centres.insert(centre.id.clone(), centre);
    }

    /// An enabled device: one that may send (a disabled one is as if absent here).
    pub fn device(&self, key: &DeviceKey) -> Option<&Device> {
        self.devices.get(key).filter(|d| d.enabled)
    }

    /// The enabled device whose SIP digest username is `username`, with its credentials.
    pub fn sip_account(&self, username: &str) -> Option<(&Device, &SipCredential)> {
        let device = self.device(self.sip_users.get(username)?)?;
        Some((device, device.sip.as_ref()?))
    }

    /// The enabled device that reports as DC-09 account `account`, with its account record.
    pub fn dc09_account(&self, account: &str) -> Option<(&Device, &Dc09Credential)> {
        let device = self.device(self.dc09_accounts.get(account)?)?;
        Some((device, device.dc09.as_ref()?))
    }

    /// How an enabled device is supervised, given the heartbeat interval it announced itself
    /// (`announced_secs`, SCAIP hbi) and the platform's `grace_ms`: by its category, else by
    /// its interval (announced, else configured) plus the grace; `None`: not supervised.
    pub fn silence(
        &self,
        key: &DeviceKey,
        announced_secs: Option<u32>,
        grace_ms: i64,
    ) -> Option<Silence> {
        let d = self.device(key)?;
        if let Some(c) = d.category {
            return Some(Silence::category(c));
        }
        let secs = announced_secs.or(d.heartbeat_secs)?;
        Some(Silence::heartbeat(i64::from(secs) * 1000, grace_ms))
    }

    /// Whether the authenticated `sender` may send events as `device`: itself, or a device its
    /// gateway registration lists. Both must exist, be enabled and belong to the same tenant.
    pub fn may_send_as(&self, sender: &DeviceKey, device: &DeviceKey) -> bool {
        if sender.tenant != device.tenant || self.device(device).is_none() {
            return false;
        }
        sender == device
            || self
                .device(sender)
                .is_some_and(|g| g.gateway_for.contains(&device.device))
    }

    /// The device's escalation chain: its own, else its tenant's. A removed device's open alarms
    /// follow its tenant's chain.
    pub fn chain(&self, key: &DeviceKey) -> &[CentreId] {
        match self.devices.get(key) {
            Some(d) if !d.chain.is_empty() => &d.chain,
            _ => self
                .tenants
                .get(&key.tenant)
                .map(|t| t.chain.as_slice())
                .unwrap_or(&[]),
        }
    }

    /// The chain for an alarm of `family` (see [`records::CHAIN_KINDS`]): the device's own
    /// for that kind, else [`Directory::chain`].
    pub fn chain_for(&self, key: &DeviceKey, family: &str) -> &[CentreId] {
        match self
            .devices
            .get(key)
            .and_then(|d| d.chains_by_kind.get(family))
        {
            Some(c) if !c.is_empty() => c,
            _ => self.chain(key),
        }
    }

    /// The chain an alarm follows (its kind's, else its device's).
    pub fn alarm_chain(&self, alarm: &Alarm) -> &[CentreId] {
        self.chain_for(&alarm.device, alarm_family(alarm.kind, &alarm.code))
    }

    /// Whether `event` makes or touches test alarms: an alarm-lane event of a device on test (or
    /// its tenant's canary), or the device's own test call.
    pub fn is_test(&self, event: &crate::event::Event, now: UnixMillis) -> bool {
        event.lane() == crate::event::Lane::Alarm
            && (event.kind.is_test_call() || self.on_test(&event.device, now))
    }

    /// Whether the device (or its whole tenant) is on test at `now`, or is its tenant's canary:
    /// its alarms are test alarms.
    pub fn on_test(&self, key: &DeviceKey, now: UnixMillis) -> bool {
        let until = |t: Option<UnixMillis>| t.is_some_and(|t| now < t);
        let tenant = self.tenants.get(&key.tenant);
        until(self.devices.get(key).and_then(|d| d.test_until_ms))
            || until(tenant.and_then(|t| t.test_until_ms))
            || tenant
                .and_then(|t| t.canary.as_ref())
                .is_some_and(|c| c.device == key.device.0)
    }

    /// The time zone of a tenant's rules.
    /// The tenant's admission limits (the platform's for a tenant not in the directory).
    pub fn admission(&self, tenant: &TenantId) -> Limits {
        self.tenants
            .get(tenant)
            .map_or(self.defaults.admission, |t| t.admission)
    }

    pub fn time_zone(&self, tenant: &TenantId) -> &jiff::tz::TimeZone {
        self.tenants
            .get(tenant)
            .map_or(&self.defaults.time_zone, |t| &t.time_zone)
    }

    /// Per-device override, else the tenant's deadlines, else the defaults.
    /// The deadlines that apply to `alarm` while its holder has it: the holder's own where it
    /// sets them, else the device's.
    pub fn deadlines_held(&self, alarm: &Alarm) -> Deadlines {
        let own = alarm
            .holder()
            .and_then(|c| self.centres.get(c))
            .map(|c| c.deadlines)
            .unwrap_or_default();
        own.over(self.deadlines(&alarm.device))
    }

    /// The own deadlines of each centre of `chain` (`Context::centre_deadlines`).
    pub fn centre_deadlines(&self, chain: &[CentreId]) -> Vec<CentreDeadlines> {
        chain
            .iter()
            .map(|c| self.centres.get(c).map(|c| c.deadlines).unwrap_or_default())
            .collect()
    }

    pub fn deadlines(&self, key: &DeviceKey) -> Deadlines {
        self.devices
            .get(key)
            .and_then(|d| d.deadlines)
            .or_else(|| self.tenants.get(&key.tenant).map(|t| t.deadlines))
            .unwrap_or(self.defaults.deadlines)
    }
}

/// Which of a device's `chains_by_kind` an alarm of `kind` and `code` follows.
pub fn alarm_family(kind: AlarmKind, code: &str) -> &str {
    if let Some(rule) = code.strip_prefix("rule:") {
        return rule.split(':').next().unwrap_or("technical");
    }
    match kind {
        AlarmKind::Help => "alarm",
        AlarmKind::Technical => "technical",
        AlarmKind::Silent => "silent",
        AlarmKind::GeofenceExit => "geofence",
    }
}

/// The family of the alarm an event would open or change.
pub fn event_family(kind: &EventKind) -> &str {
    match kind {
        EventKind::Alarm(_) => "alarm",
        EventKind::Silent => "silent",
        EventKind::Geofence { .. } => "geofence",
        EventKind::Rule { code, .. } => alarm_family(AlarmKind::Technical, code),
        _ => "technical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let mut d = Directory::default();
        d.insert_tenant(Tenant {
            deadlines: Deadlines {
                receipt_ms: 5_000,
                accept_ms: 30_000,
            },
            ..Tenant::new("t", &["a", "b"])
        });
        d.insert_device(Device {
            chain: vec![CentreId::new("c")],
            deadlines: Some(Deadlines {
                receipt_ms: 1,
                accept_ms: 2,
            }),
            gateway_for: vec![DeviceId::new("kid")],
            ..Device::new(DeviceKey::new("t", "own"), "0003")
        });
        d
    }

    #[test]
    fn only_self_or_registered_gateway_may_send() {
        let mut d = dir();
        let kid = DeviceKey::new("t", "kid");
        d.insert_device(Device::new(kid.clone(), "0003"));
        let own = DeviceKey::new("t", "own");
        assert!(d.may_send_as(&own, &own));
        assert!(d.may_send_as(&own, &kid));
        assert!(!d.may_send_as(&kid, &own));
        assert!(!d.may_send_as(&own, &DeviceKey::new("t", "ghost")));
        assert!(!d.may_send_as(&DeviceKey::new("x", "own"), &kid));
    }

    #[test]
    fn device_overrides_tenant() {
        let d = dir();
        let own = DeviceKey::new("t", "own");
        assert_eq!(d.chain(&own), &[CentreId::new("c")]);
        assert_eq!(d.deadlines(&own).receipt_ms, 1);
        let other = DeviceKey::new("t", "other");
        assert_eq!(d.chain(&other).len(), 2);
        assert_eq!(d.deadlines(&other).accept_ms, 30_000);
        assert_eq!(d.deadlines(&DeviceKey::new("x", "y")), Deadlines::default());
        assert!(d.chain(&DeviceKey::new("x", "y")).is_empty());
    }
}
