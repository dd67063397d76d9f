//! Shared helpers for the criterion benches.
use std::sync::Arc;
use vaka_core::directory::{Device, Directory, Tenant};
use vaka_core::{DeviceKey, Event, EventKind};

/// A tenant with `n` devices and no centres.
pub fn directory(n: usize) -> Arc<Directory> {
    let mut d = Directory::default();
    d.insert_tenant(Tenant::new("t", &[]));
    for i in 0..n {
        d.insert_device(Device::new(DeviceKey::new("t", format!("d{i}")), "0051"));
    }
    Arc::new(d)
}

/// A telemetry event with a 100-byte raw payload, the size the store targets are stated for.
pub fn telemetry(device: usize, n: u64) -> Event {
    Event {
        device: DeviceKey::new("t", format!("d{device}")),
        key: format!("k{n}"),
        received_ms: 0,
        kind: EventKind::Telemetry {
            name: "t".into(),
            value: n as f64,
        },
        fix: None,
        raw: vec![0x5a; 100],
        occurred_ms: None,
    }
}
