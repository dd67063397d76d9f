//! Shared helpers for the criterion benches.
use std::sync::Arc;
use vaka_core::alarm::Deadlines;
use vaka_core::directory::{Device, Directory, Tenant};
use vaka_core::{DeviceKey, Event, EventKind, TenantId};

/// A tenant with `n` devices and no centres.
pub fn directory(n: usize) -> Arc<Directory> {
    let mut d = Directory::default();
    let t = TenantId::new("t");
    d.tenants.insert(
        t.clone(),
        Tenant {
            id: t,
            name: "bench".into(),
            deadlines: Deadlines::default(),
            chain: vec![],
            retention_days: 30,
        },
    );
    for i in 0..n {
        let key = DeviceKey::new("t", format!("d{i}"));
        d.devices.insert(
            key.clone(),
            Device {
                key,
                device_type: "0051".into(),
                chain: vec![],
                deadlines: None,
                heartbeat_secs: None,
                gateway_for: vec![],
            },
        );
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
    }
}
