//! Who gets which filters and fences: per-tenant filter configs, per-device overrides and fences,
//! resolved once (at config load) so the per-fix path only looks them up.

use super::fence::{Fence, FenceSpec};
use super::filter::{FilterConfig, FilterOverride};
use super::hysteresis::HysteresisConfig;
use crate::ids::{DeviceKey, TenantId};
use std::collections::HashMap;

/// One of a device's fences: its id (named in the alarm code), the shape, and when an exit or a
/// re-entry counts as confirmed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceFence {
    pub id: String,
    pub fence: Fence,
    pub hysteresis: HysteresisConfig,
    /// Computed once: hashing a big polygon per fix would cost more than deciding it.
    fingerprint: u64,
}

impl DeviceFence {
    pub fn new(id: impl Into<String>, fence: Fence, hysteresis: HysteresisConfig) -> Self {
        let id = id.into();
        let fingerprint = fingerprint(&id, &fence, &hysteresis);
        DeviceFence {
            id,
            fence,
            hysteresis,
            fingerprint,
        }
    }

    /// A stable fingerprint of what decides this fence's transitions (id, shape, margin,
    /// hysteresis). A persisted tracker whose fingerprint differs was made for another fence.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

fn fingerprint(id: &str, fence: &Fence, hysteresis: &HysteresisConfig) -> u64 {
    let spec: FenceSpec = fence.spec();
    let mut h = Fnv::new();
    h.bytes(id.as_bytes());
    h.u64(match spec.kind {
        super::fence::FenceKind::Circle => 1,
        super::fence::FenceKind::Polygon => 2,
    });
    for v in [spec.lat, spec.lon, spec.radius_m] {
        h.u64(v.map_or(u64::MAX, f64::to_bits));
    }
    for [lat, lon] in &spec.points {
        h.u64(lat.to_bits());
        h.u64(lon.to_bits());
    }
    h.u64(spec.margin_m.to_bits());
    h.u64(u64::from(hysteresis.confirm_fixes));
    h.u64(hysteresis.confirm_secs.map_or(u64::MAX, u64::from));
    h.0
}

/// A device's resolved GPS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceGps {
    /// The tenant's filters with the device's override laid on top.
    pub filter: FilterConfig,
    pub fences: Vec<DeviceFence>,
}

/// GPS settings for every tenant and device; part of the directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpsPlan {
    /// Filters for devices that have no entry of their own and whose tenant has none.
    pub default_filter: FilterConfig,
    pub tenants: HashMap<TenantId, FilterConfig>,
    pub devices: HashMap<DeviceKey, DeviceGps>,
}

const NO_FENCES: &[DeviceFence] = &[];

impl GpsPlan {
    /// The filters in force for a device: its own, else its tenant's, else the default.
    pub fn filter(&self, device: &DeviceKey) -> &FilterConfig {
        match self.devices.get(device) {
            Some(d) => &d.filter,
            None => self
                .tenants
                .get(&device.tenant)
                .unwrap_or(&self.default_filter),
        }
    }

    /// The device's fences (none if it has no entry).
    pub fn fences(&self, device: &DeviceKey) -> &[DeviceFence] {
        self.devices.get(device).map_or(NO_FENCES, |d| &d.fences)
    }

    /// Sets a device's override and fences, resolved against its tenant's filters as they are now.
    pub fn set_device(
        &mut self,
        device: DeviceKey,
        filter: &FilterOverride,
        fences: Vec<DeviceFence>,
    ) {
        let filter = self.filter(&device).with_override(filter);
        self.devices.insert(device, DeviceGps { filter, fences });
    }
}

/// FNV-1a over 64 bits: stable across platforms and releases (it is persisted).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
}
