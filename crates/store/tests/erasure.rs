//! Erasure at the store's API: one device's events, positions and per-device rows go, its
//! alarms, audit trails and outbox notices lose their free text; another device's data is left
//! as it was. And (ignored, run by hand) the time to erase a device with 100,000 positions.
use std::sync::Arc;
use std::time::Instant;
use vaka_core::alarm::{AuditRecord, Notice};
use vaka_core::gps::Fix;
use vaka_core::*;
use vaka_store::*;

fn event(device: &DeviceKey, n: u64, kind: EventKind) -> Event {
    Event {
        device: device.clone(),
        key: format!("k{n}"),
        received_ms: 1_700_000_000_000 + n as i64,
        kind,
        fix: Some(Fix::at(1_700_000_000_000 + n as i64, 57.7, 11.97)),
        raw: format!("raw message {n} of {}", device.device).into_bytes(),
        occurred_ms: None,
    }
}

fn alarm(id: u64, device: &DeviceKey) -> Alarm {
    Alarm {
        id: AlarmId(id),
        device: device.clone(),
        reference: format!("k{id}"),
        kind: AlarmKind::Help,
        code: "0010".into(),
        priority: 9,
        text: Some(format!("fell, says {}", device.device)),
        callback: vec!["+46700000001".into()],
        state: AlarmState::Closed {
            centre: CentreId::new("c1"),
            outcome: format!("visited {}: bruised", device.device),
        },
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_001_000,
        stages: Default::default(),
        test: false,
    }
}

/// Writes, per device: `n` telemetry events with positions, one closed alarm with its audit
/// trail and an outbox notice.
fn fill(backend: &dyn Backend, devices: &[(DeviceKey, u64)]) {
    let mut id = 1u64;
    for (device, n) in devices {
        let mut set = WriteSet::new();
        for i in 0..*n {
            let ev = event(device, id, EventKind::Position);
            set.put_event(EventId(id), &ev);
            set.put_position(
                device,
                &StoredPosition {
                    event: EventId(id),
                    received_ms: ev.received_ms,
                    fix: Fix::at(1_700_000_000_000 + i as i64, 57.7, 11.97),
                },
            );
            id += 1;
            if set.len() >= 20_000 {
                backend.write_synced(std::slice::from_ref(&set)).unwrap();
                set = WriteSet::new();
            }
        }
        let a = alarm(id, device);
        set.put_event(EventId(id), &event(device, id, EventKind::Heartbeat));
        set.put_alarm(&a);
        set.put_audit(
            0,
            &AuditRecord {
                alarm: a.id,
                at_ms: 1,
                actor: "centre:c1".into(),
                action: "closed".into(),
                reason: format!("visited {}: bruised", device.device),
            },
        );
        // As the committer numbers notices (sequence = the alarm's id here).
        let notice = Notice::Offer {
            alarm: a,
            unhandled: false,
        };
        set.put_raw(
            Cf::Outbox,
            keys::outbox_key("c1", id),
            postcard::to_allocvec(&notice).unwrap(),
        );
        id += 1;
        backend.write_synced(std::slice::from_ref(&set)).unwrap();
    }
}

#[test]
fn one_device_is_erased_and_the_other_left_alone() {
    let backend = MemBackend::new();
    let (d1, d2) = (DeviceKey::new("t", "d1"), DeviceKey::new("t", "d2"));
    fill(&backend, &[(d1.clone(), 30), (d2.clone(), 20)]);
    let erased = erase_device(&backend, &d1).unwrap();
    assert_eq!(
        (
            erased.events,
            erased.positions,
            erased.alarms,
            erased.audit_texts
        ),
        (31, 30, 1, 1)
    );
    // Keys first: a read inside a scan would wait on the scan's own lock (MemBackend).
    let ids = |cf: Cf| {
        let mut out = Vec::new();
        backend
            .scan(cf, &[], &mut |k, _| {
                out.push(u64::from_be_bytes(k.try_into().unwrap()));
                true
            })
            .unwrap();
        out
    };
    let left: Vec<DeviceKey> = ids(Cf::Events)
        .into_iter()
        .map(|id| load_event(&backend, EventId(id)).unwrap().unwrap().device)
        .collect();
    assert_eq!(left.len(), 21);
    assert!(left.iter().all(|d| *d == d2), "only d2's events remain");
    let (mut d1_alarm, mut d2_alarm) = (None, None);
    for id in ids(Cf::Alarms) {
        let a = load_alarm(&backend, AlarmId(id)).unwrap().unwrap();
        if a.device == d1 {
            d1_alarm = Some(a);
        } else {
            d2_alarm = Some(a);
        }
    }
    let (d1_alarm, d2_alarm) = (d1_alarm.unwrap(), d2_alarm.unwrap());
    assert_eq!(
        (d1_alarm.text.as_deref(), d1_alarm.callback.len()),
        (None, 0)
    );
    assert!(matches!(&d1_alarm.state, AlarmState::Closed { outcome, .. } if outcome == "erased"));
    assert_eq!(
        d2_alarm.text.as_deref(),
        Some("fell, says d2"),
        "d2 untouched"
    );
    assert_eq!(
        load_audit(&backend, d1_alarm.id).unwrap()[0].reason,
        "erased"
    );
    assert_eq!(
        load_audit(&backend, d2_alarm.id).unwrap()[0].reason,
        "visited d2: bruised"
    );
    let notices = read_outbox(&backend, &CentreId::new("c1"), 0, 10).unwrap();
    let texts: Vec<_> = notices
        .iter()
        .map(|(_, n)| n.alarm().text.clone())
        .collect();
    assert_eq!(texts, [None, Some("fell, says d2".into())]);
    let rows = |d: &DeviceKey| {
        let mut n = 0;
        backend
            .scan(Cf::Positions, &keys::device_prefix(d), &mut |_, _| {
                n += 1;
                true
            })
            .unwrap();
        n
    };
    assert_eq!((rows(&d1), rows(&d2)), (0, 20));
    // Again: nothing left to do.
    assert_eq!(erase_device(&backend, &d1).unwrap(), Erased::default());
}

/// `cargo test --workspace --test erasure -- --ignored --nocapture`: a device with 100,000
/// positions (and as many events) among 20 others with 10,000 each, on RocksDB.
#[test]
#[ignore = "a figure for BENCHMARKS.md, run by hand"]
fn erasure_of_a_device_with_100000_positions() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let target = DeviceKey::new("t", "person");
    let mut devices = vec![(target.clone(), 100_000)];
    devices.extend((0..20).map(|i| (DeviceKey::new("t", format!("other{i}")), 10_000)));
    let started = Instant::now();
    fill(backend.as_ref(), &devices);
    let filled = started.elapsed();
    let (store, _) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 1_800_000_000_000,
            idem_window_ms: 0,
        },
    )
    .unwrap();
    let started = Instant::now();
    let erased = store.erase_device(&target).unwrap();
    let took = started.elapsed();
    println!(
        "filled 300,000 events and positions in {filled:?}; erased {erased:?} in {took:?} \
         (scan of all events and alarms, deletes, compaction of every column family)"
    );
    assert_eq!(erased.positions, 100_000);
    store.close().unwrap();
}
