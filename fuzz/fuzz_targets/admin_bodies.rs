//! The admin API's request bodies as the control plane takes them: JSON decoded into the
//! directory's records (tenants with canaries, admission and rules by type; centres; devices
//! with credentials, chains by kind, fences, GPS filters and activity rules; deadline
//! policies), then checked and applied to a directory holding one centre, tenant and device,
//! as `PUT` does. The first byte picks the record, the rest is the body.
//! Asserted: nothing panics; a body that decodes prints as JSON that decodes to the same
//! record; a change the check accepts applies again on top of itself (a repeated PUT).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use vaka_core::directory::{
    CentreRecord, Change, DeadlinePolicyRecord, DeviceRecord, Directory, TenantRecord,
};

fn seeded() -> Directory {
    let mut d = Directory::default();
    let centre = CentreRecord {
        id: "c1".into(),
        tenants: vec!["t".into()],
        ..Default::default()
    };
    let tenant = TenantRecord {
        id: "t".into(),
        centres: vec!["c1".into()],
        ..Default::default()
    };
    d.apply(Change::PutCentre(centre), 1).expect("seed centre");
    d.apply(Change::PutTenant(tenant), 2).expect("seed tenant");
    let device = DeviceRecord::new("t", "d1", "0003");
    d.apply(Change::PutDevice(Box::new(device)), 3)
        .expect("seed device");
    d
}

/// Decodes `body`; a record that decodes survives a JSON round trip unchanged.
fn record<T: DeserializeOwned + Serialize + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let r: T = serde_json::from_slice(body).ok()?;
    let text = serde_json::to_vec(&r).expect("a decoded record encodes");
    let back: T = serde_json::from_slice(&text).expect("its own JSON decodes");
    assert_eq!(back, r, "round trip of {}", String::from_utf8_lossy(&text));
    Some(r)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let change = match which % 4 {
        0 => record::<TenantRecord>(body).map(Change::PutTenant),
        1 => record::<CentreRecord>(body).map(Change::PutCentre),
        2 => record::<DeviceRecord>(body).map(|d| Change::PutDevice(Box::new(d))),
        _ => record::<DeadlinePolicyRecord>(body).map(Change::PutPolicy),
    };
    let Some(change) = change else {
        return;
    };
    let mut dir = seeded();
    if dir.apply(change.clone(), 4).is_ok() {
        dir.apply(change, 5)
            .expect("a change that applied once applies again");
    }
});
