//! Figures for BENCHMARKS.md (ignored by default; minutes of work): export and import of a
//! tenant with 10,000 devices (SIP credentials, through the device import), 1,000,000
//! positions (100 per device) and 1,000 closed alarms with five-record trails (written
//! straight into the engine's RocksDB while it is stopped), through `vaka admin export` and
//! `vaka admin import` against `vaka serve`. Prints the time of each and the engine's peak
//! RSS (VmHWM) before and after, the CLI's peak RSS (`/usr/bin/time -v`), and checks that the
//! new engine's export of the positions equals the original's.
//!
//!     cargo test --workspace --test tenant_export_scale -- --ignored --nocapture
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use admin::{Engine, OPERATOR};
use binary::vaka_bin;
use vaka_core::alarm::{AlarmState, AuditRecord, Stages};
use vaka_core::gps::Fix;
use vaka_core::{Alarm, AlarmId, AlarmKind, CentreId, DeviceKey, Event, EventKind};
use vaka_store::{
    GpsRecord, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, StoredPosition,
    WriteSet,
};

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n";
const TARGET: &str =
    "[[centres]]\nid = \"c1\"\ntenants = []\ntoken = \"token-of-the-alarm-centre\"\n";
const DEVICES: usize = 10_000;
const PER_DEVICE: usize = 100;
const ALARMS: usize = 1_000;

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Runs `vaka admin ...` under `/usr/bin/time -v`: (seconds, the CLI's peak RSS in KiB).
fn timed_cli(engine: &Engine, args: &[&str]) -> (f64, u64) {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(vaka_bin())
        .args(["admin", "--server", &engine.url(""), "--token", OPERATOR])
        .args(args)
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (took, rss)
}

fn fill(data: &std::path::Path) {
    let backend = std::sync::Arc::new(RocksBackend::open(&RocksConfig::new(data)).unwrap());
    let (store, _) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1,
        },
    )
    .unwrap();
    let b = store.backend().clone();
    let t0 = 1_780_000_000_000i64;
    let mut set = WriteSet::new();
    for d in 0..DEVICES {
        let device = DeviceKey::new("t", format!("{}", 100_000 + d));
        set.put_gps(&device, &GpsRecord::default());
        for i in 0..PER_DEVICE {
            let time_ms = t0 + (i as i64) * 60_000;
            set.put_position(
                &device,
                &StoredPosition {
                    event: store.allocate_id(),
                    received_ms: time_ms + 700,
                    fix: Fix::at(time_ms, 57.7 + d as f64 * 1e-4, 11.97 + i as f64 * 1e-5)
                        .with_accuracy(12.0),
                },
            );
        }
        if set.len() >= 20_000 {
            b.write_synced(&[std::mem::take(&mut set)]).unwrap();
        }
    }
    for a in 0..ALARMS {
        let device = DeviceKey::new("t", format!("{}", 100_000 + a * 10));
        let id = store.allocate_id();
        let at = t0 + a as i64 * 1_000;
        set.put_event(
            id,
            &Event {
                device: device.clone(),
                key: format!("r{a}"),
                received_ms: at,
                kind: EventKind::Alarm(vaka_core::AlarmInfo {
                    code: "0010".into(),
                    priority: 1,
                    text: Some("pressed the button".into()),
                    callback: vec![],
                }),
                fix: None,
                raw: format!("<mrq><ref>r{a}</ref><cid>{}</cid></mrq>", device.device.0)
                    .into_bytes(),
                occurred_ms: None,
            },
        );
        set.put_alarm(&Alarm {
            id: AlarmId(id.0),
            device: device.clone(),
            reference: format!("r{a}"),
            kind: AlarmKind::Help,
            code: "0010".into(),
            priority: 1,
            text: Some("pressed the button".into()),
            callback: vec![],
            state: AlarmState::Closed {
                centre: CentreId::new("c1"),
                outcome: "visited".into(),
            },
            step: 0,
            deadline: None,
            repeats: 0,
            created_ms: at,
            updated_ms: at + 300_000,
            stages: Stages {
                durable_ms: Some(at + 5),
                offered_ms: Some(at + 10),
                receipted_ms: Some(at + 900),
                accepted_ms: Some(at + 20_000),
                attended_ms: None,
                closed_ms: Some(at + 300_000),
            },
            test: false,
        });
        for (seq, action) in ["offered to c1", "receipt", "accepted", "attended", "closed"]
            .iter()
            .enumerate()
        {
            set.put_audit(
                seq as u32,
                &AuditRecord {
                    alarm: AlarmId(id.0),
                    at_ms: at + seq as i64 * 1_000,
                    actor: "centre:c1".into(),
                    action: (*action).into(),
                    reason: String::new(),
                },
            );
        }
    }
    b.write_synced(&[set]).unwrap();
    store.close().unwrap();
}

#[test]
#[ignore = "minutes: the BENCHMARKS.md figures of a tenant's export and import"]
fn export_and_import_of_ten_thousand_devices_and_a_million_positions() {
    let mut source = Engine::start(DIRECTORY, &[]);
    let mut rows = String::new();
    for d in 0..DEVICES {
        rows.push_str(&format!(
            "{{\"id\":\"{}\",\"type\":\"0003\",\"password\":\"pw-{d}\",\"heartbeat_secs\":3600}}\n",
            100_000 + d
        ));
    }
    let imported = source.import("t", "application/x-ndjson", rows.into_bytes());
    assert_eq!(imported.count("created"), DEVICES);
    assert_eq!(source.sigterm(Duration::from_secs(30)), Some(0));
    let started = Instant::now();
    // The engine's RocksDB is `data_dir/db`.
    fill(&source.dir.path().join("data").join("db"));
    eprintln!(
        "filled the store in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    source.restart();

    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.tar");
    let (pid, rss0) = (source.pid(), status_kib(source.pid(), "VmRSS:"));
    let (export_s, export_cli) = timed_cli(
        &source,
        &["export", "--tenant", "t", "--out", a.to_str().unwrap()],
    );
    let export_peak = status_kib(pid, "VmHWM:");
    let size = std::fs::metadata(&a).unwrap().len();
    eprintln!(
        "export: {export_s:.1} s, {:.1} MB; engine RSS {} MiB before, peak {} MiB; CLI peak {} MiB",
        size as f64 / 1e6,
        rss0 / 1024,
        export_peak / 1024,
        export_cli / 1024
    );
    drop(source);

    let target = Engine::start(TARGET, &[]);
    let (pid, rss0) = (target.pid(), status_kib(target.pid(), "VmRSS:"));
    let (import_s, import_cli) =
        timed_cli(&target, &["import", "--tenant", "t", a.to_str().unwrap()]);
    let import_peak = status_kib(pid, "VmHWM:");
    eprintln!(
        "import: {import_s:.1} s; engine RSS {} MiB before, peak {} MiB; CLI peak {} MiB",
        rss0 / 1024,
        import_peak / 1024,
        import_cli / 1024
    );
    // The new engine holds the same positions and alarms.
    let b = work.path().join("b.tar");
    timed_cli(
        &target,
        &["export", "--tenant", "t", "--out", b.to_str().unwrap()],
    );
    let file = |p: &std::path::Path, name: &str| -> Vec<u8> {
        let mut ar = tar::Archive::new(std::fs::File::open(p).unwrap());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == name {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                return v;
            }
        }
        panic!("{name} not in {}", p.display());
    };
    for name in ["positions.jsonl", "alarms.jsonl", "devices.jsonl"] {
        let (x, y) = (file(&a, name), file(&b, name));
        assert!(x == y, "{name} differs after the import");
    }
    let lines = file(&a, "positions.jsonl")
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(lines, DEVICES * PER_DEVICE);
}
