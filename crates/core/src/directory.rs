//! Who is who: tenants, their devices and the centres that serve them. Built from config (and later
//! the admin API); read by the router for each decision.
use crate::alarm::Deadlines;
use crate::ids::{CentreId, DeviceId, DeviceKey, TenantId};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub deadlines: Deadlines,
    /// Centres tried in order for this tenant's devices unless a device names its own chain.
    pub chain: Vec<CentreId>,
    /// Position history older than this is deleted (GDPR).
    pub retention_days: u32,
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
}

#[derive(Clone, Debug, PartialEq)]
pub struct Centre {
    pub id: CentreId,
    pub name: String,
    /// The tenants whose alarms this centre may see (invariant 7).
    pub tenants: Vec<TenantId>,
}

#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub tenants: HashMap<TenantId, Tenant>,
    pub devices: HashMap<DeviceKey, Device>,
    pub centres: HashMap<CentreId, Centre>,
    /// GPS filters and geofences per tenant and device.
    pub gps: crate::gps::GpsPlan,
}

impl Directory {
    pub fn device(&self, key: &DeviceKey) -> Option<&Device> {
        self.devices.get(key)
    }

    /// Whether the authenticated `sender` may send events as `device`: itself, or a device its
    /// gateway registration lists. Both must exist and belong to the same tenant.
    pub fn may_send_as(&self, sender: &DeviceKey, device: &DeviceKey) -> bool {
        if sender.tenant != device.tenant || !self.devices.contains_key(device) {
            return false;
        }
        sender == device
            || self
                .devices
                .get(sender)
                .is_some_and(|g| g.gateway_for.contains(&device.device))
    }

    /// The device's escalation chain: its own, else its tenant's.
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

    /// Per-device override, else the tenant's deadlines, else the defaults.
    pub fn deadlines(&self, key: &DeviceKey) -> Deadlines {
        self.devices
            .get(key)
            .and_then(|d| d.deadlines)
            .or_else(|| self.tenants.get(&key.tenant).map(|t| t.deadlines))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let mut d = Directory::default();
        let t = TenantId::new("t");
        d.tenants.insert(
            t.clone(),
            Tenant {
                id: t,
                name: "T".into(),
                deadlines: Deadlines {
                    receipt_ms: 5_000,
                    accept_ms: 30_000,
                },
                chain: vec![CentreId::new("a"), CentreId::new("b")],
                retention_days: 30,
            },
        );
        let own = DeviceKey::new("t", "own");
        d.devices.insert(
            own.clone(),
            Device {
                key: own,
                device_type: "0003".into(),
                chain: vec![CentreId::new("c")],
                deadlines: Some(Deadlines {
                    receipt_ms: 1,
                    accept_ms: 2,
                }),
                heartbeat_secs: None,
                gateway_for: vec![DeviceId::new("kid")],
            },
        );
        d
    }

    #[test]
    fn only_self_or_registered_gateway_may_send() {
        let mut d = dir();
        let kid = DeviceKey::new("t", "kid");
        d.devices.insert(
            kid.clone(),
            Device {
                key: kid.clone(),
                device_type: "0003".into(),
                chain: vec![],
                deadlines: None,
                heartbeat_secs: None,
                gateway_for: vec![],
            },
        );
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
