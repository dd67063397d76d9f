//! Shared test scaffolding: a directory, events, and a backend wrapper that can stall or fail.
#![allow(dead_code)]

use std::sync::Arc;

use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::{AlarmInfo, DeviceKey, Event, EventKind};
use vaka_store::Backend;

pub fn directory(devices: usize) -> Directory {
    let mut d = Directory::default();
    d.insert_tenant(Tenant::new("t", &["c1"]));
    d.insert_centre(Centre::new("c1", &["t"]));
    for i in 0..devices {
        d.insert_device(Device::new(DeviceKey::new("t", format!("d{i}")), "0003"));
    }
    d
}

pub fn alarm(device: &str, key: &str) -> Event {
    Event {
        device: DeviceKey::new("t", device),
        key: key.into(),
        received_ms: 1,
        kind: EventKind::Alarm(AlarmInfo {
            code: "0010".into(),
            priority: 2,
            text: None,
            callback: vec![],
        }),
        fix: None,
        raw: b"<mrq/>".to_vec(),
        occurred_ms: None,
    }
}

pub fn telemetry(device: &str, n: u64) -> Event {
    Event {
        device: DeviceKey::new("t", device),
        key: format!("tm{n}"),
        received_ms: 1,
        kind: EventKind::Telemetry {
            name: "temp".into(),
            value: n as f64,
        },
        fix: None,
        raw: vec![0; 100],
        occurred_ms: None,
    }
}

/// Wraps a backend: writes can be held at a gate, slowed, or made to fail (the store's test
/// backend).
#[allow(unused_imports)] // not every test file of this crate uses it
pub use vaka_store::testing::TestBackend as Faulty;

/// Opens a store on `backend` and starts a router on it, as a restart would.
pub fn start_router(
    backend: Arc<dyn Backend>,
    dir: Directory,
    rc: vaka_router::RouterConfig,
    clock: vaka_router::Clock,
) -> (vaka_store::Store, Arc<vaka_router::Router>) {
    let (store, rec) = vaka_store::Store::open(
        backend,
        vaka_store::GroupConfig::default(),
        vaka_store::RecoverOptions {
            now_ms: clock.now_ms(),
            idem_window_ms: 60_000,
        },
    )
    .unwrap();
    let router = vaka_router::Router::start(
        rc,
        store.clone(),
        rec,
        Arc::new(dir),
        vaka_router::Presence::new(),
        clock,
    );
    (store, router)
}

/// A router on a paused clock that moves only when the test advances it ([`hold_clock`]: its
/// task runs for the test's whole runtime).
pub struct Held {
    pub backend: Arc<vaka_store::MemBackend>,
    pub router: Arc<vaka_router::Router>,
}

/// Starts a router with `start` on a fresh backend and a held clock at `at_ms`, and connects
/// `centres`.
pub async fn held_at(
    at_ms: i64,
    start: impl FnOnce(
        Arc<vaka_store::MemBackend>,
        vaka_router::Clock,
    ) -> (vaka_store::Store, Arc<vaka_router::Router>),
    centres: &[&str],
) -> Held {
    hold_clock();
    let backend = Arc::new(vaka_store::MemBackend::new());
    let (_store, router) = start(backend.clone(), vaka_router::Clock::starting_at(at_ms));
    for c in centres {
        router.centre_up(&vaka_core::CentreId::new(*c)).await;
    }
    Held { backend, router }
}

/// Keeps a paused runtime busy so its clock moves only when the test advances it (the store's
/// committer is a thread the runtime cannot see; waiting for it would otherwise auto-advance).
pub fn hold_clock() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    })
}
