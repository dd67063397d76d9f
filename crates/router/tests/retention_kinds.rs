//! Retention per kind through the router's sweep on a real RocksDB: a tenant keeps positions 2
//! days, telemetry 4, its admin audit 6 and alarms 10; each kind goes at its own period and not
//! a millisecond earlier. Another tenant's stored alarm period of 3 days is below the platform's
//! minimum of 7 (raised since it was written): its alarm stays 7 days. A new record below the
//! minimum is refused, naming the field.
mod support;

use std::sync::Arc;

use support::start_router;
use vaka_core::alarm::{AlarmState, AuditRecord, Stages};
use vaka_core::directory::{
    Change, Defaults, DeviceRecord, Directory, DirectoryError, Records, TenantRecord,
};
use vaka_core::gps::Fix;
use vaka_core::retention::{RetentionRecord, DAY_MS};
use vaka_core::{Alarm, AlarmId, AlarmKind, CentreId, DeviceKey, Event, EventId, EventKind};
use vaka_router::{Clock, RouterConfig};
use vaka_store::directory::{put_audit, read_admin_audit, AdminAuditEntry};
use vaka_store::{
    load_alarm, load_audit, load_event, position_history, Backend, GpsRecord, RocksBackend,
    RocksConfig, StoredPosition, WriteSet,
};

const T0: i64 = 1_700_000_000_000;

fn tenant(id: &str, retention: RetentionRecord) -> TenantRecord {
    TenantRecord {
        id: id.into(),
        retention,
        ..Default::default()
    }
}

fn event(device: &DeviceKey, kind: EventKind) -> Event {
    Event {
        device: device.clone(),
        key: "k".into(),
        received_ms: T0,
        kind,
        fix: None,
        raw: b"raw".to_vec(),
        occurred_ms: None,
    }
}

/// A closed alarm (closed at T0) with its opening event and a trail of three records.
fn closed_alarm(set: &mut WriteSet, id: u64, device: &DeviceKey) {
    let opening = event(
        device,
        EventKind::Alarm(vaka_core::AlarmInfo {
            code: "0010".into(),
            priority: 1,
            text: Some("fell".into()),
            callback: vec![],
        }),
    );
    set.put_event(EventId(id), &opening);
    set.put_alarm(&Alarm {
        id: AlarmId(id),
        device: device.clone(),
        reference: "r".into(),
        kind: AlarmKind::Help,
        code: "0010".into(),
        priority: 1,
        text: Some("fell".into()),
        callback: vec![],
        state: AlarmState::Closed {
            centre: CentreId::new("c1"),
            outcome: "visited".into(),
        },
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: T0 - 60_000,
        updated_ms: T0,
        stages: Stages {
            closed_ms: Some(T0),
            ..Stages::default()
        },
        test: false,
    });
    for (seq, action) in ["offered", "accepted", "closed"].iter().enumerate() {
        set.put_audit(
            seq as u32,
            &AuditRecord {
                alarm: AlarmId(id),
                at_ms: T0 - 1_000 + seq as i64,
                actor: "centre:c1".into(),
                action: (*action).into(),
                reason: String::new(),
            },
        );
    }
}

#[tokio::test]
async fn each_kind_goes_at_its_own_period_and_alarms_stay_the_platform_minimum() {
    // The platform's minimum was 1 day when tenant "u" chose 3 days for its alarms.
    let loose = Defaults {
        alarm_retention_min_days: 1,
        ..Defaults::default()
    };
    let mut records = Records::default();
    for t in [
        tenant(
            "t",
            RetentionRecord {
                positions_days: Some(2),
                telemetry_days: Some(4),
                alarms_days: Some(10),
                admin_audit_days: Some(6),
            },
        ),
        tenant(
            "u",
            RetentionRecord {
                alarms_days: Some(3),
                ..Default::default()
            },
        ),
    ] {
        records.tenants.insert(t.id.clone(), t);
    }
    for (t, d) in [("t", "d0"), ("u", "e0")] {
        records
            .devices
            .insert((t.into(), d.into()), DeviceRecord::new(t, d, "0003"));
    }
    let mut check = Directory::from_records(loose, Records::default(), 0);
    for t in records.tenants.values() {
        check.apply(Change::PutTenant(t.clone()), 1).unwrap();
    }
    // Now the platform keeps alarm records at least 7 days.
    let strict = Defaults {
        alarm_retention_min_days: 7,
        ..Defaults::default()
    };
    let dir = Directory::from_records(strict.clone(), records, 1);
    // A new record below it is refused, naming the field and the minimum.
    let mut fresh = Directory::from_records(strict, Records::default(), 0);
    match fresh.apply(
        Change::PutTenant(tenant(
            "v",
            RetentionRecord {
                alarms_days: Some(3),
                ..Default::default()
            },
        )),
        1,
    ) {
        Err(DirectoryError::Invalid(p)) => {
            assert_eq!(p[0].0, "retention.alarms_days", "{p:?}");
            assert!(p[0].1.contains("minimum") && p[0].1.contains('7'), "{p:?}");
        }
        other => panic!("a period below the minimum was taken: {other:?}"),
    }

    let tmp = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&RocksConfig::new(tmp.path())).unwrap());
    let (d0, e0) = (DeviceKey::new("t", "d0"), DeviceKey::new("u", "e0"));
    let mut set = WriteSet::new();
    set.put_gps(&d0, &GpsRecord::default());
    set.put_position(
        &d0,
        &StoredPosition {
            event: EventId(100),
            received_ms: T0,
            fix: Fix::at(T0, 57.7, 11.9),
        },
    );
    set.put_event(EventId(101), &event(&d0, EventKind::Heartbeat));
    closed_alarm(&mut set, 102, &d0);
    // An alarm-lane event that opened no alarm (a reset): goes with the alarm period.
    set.put_event(
        EventId(103),
        &event(
            &d0,
            EventKind::Reset {
                reference: "r".into(),
            },
        ),
    );
    closed_alarm(&mut set, 104, &e0);
    put_audit(
        &mut set,
        &[AdminAuditEntry {
            revision: 1,
            at_ms: T0,
            actor: "token:x".into(),
            tenant: Some("t".into()),
            action: "put device".into(),
            resource: "tenants/t/devices/d0".into(),
            before: None,
            after: None,
        }],
    );
    backend.write_synced(&[set]).unwrap();

    let rc = RouterConfig {
        shards: 2,
        ..RouterConfig::default()
    };
    let (store, router) = start_router(backend.clone(), dir.clone(), rc, Clock::starting_at(T0));
    let dir = Arc::new(dir);
    let b = backend.as_ref();
    let positions = || {
        position_history(b, &d0, i64::MIN, i64::MAX, 10)
            .unwrap()
            .len()
    };
    let event_there = |id| load_event(b, EventId(id)).unwrap().is_some();
    let alarm_there = |id| load_alarm(b, AlarmId(id)).unwrap().is_some();
    let admin_audit = || read_admin_audit(b, Some("t"), 0, 10).unwrap().len();
    let sweep = |days: i64, extra: i64| {
        let (store, router, dir) = (store.clone(), router.clone(), dir.clone());
        async move {
            vaka_router::retention::sweep(&store, &router, &dir, 90, T0 + days * DAY_MS + extra)
                .await
                .unwrap()
        }
    };

    // Positions: 2 days.
    let s = sweep(2, 0).await;
    assert_eq!((positions(), s.positions), (1, 0), "{s:?}");
    let s = sweep(2, 1).await;
    assert_eq!((positions(), s.positions), (0, 1), "{s:?}");
    assert!(
        event_there(101),
        "telemetry goes at 4 days, not with the positions"
    );
    // Telemetry: 4 days.
    let s = sweep(4, 0).await;
    assert!(event_there(101), "{s:?}");
    let s = sweep(4, 1).await;
    assert!(!event_there(101));
    assert_eq!(s.events, 1, "{s:?}");
    // Admin audit: 6 days.
    assert_eq!(sweep(6, 0).await.admin_audit, 0);
    assert_eq!(admin_audit(), 1);
    let s = sweep(6, 1).await;
    assert_eq!((admin_audit(), s.admin_audit), (0, 1), "{s:?}");
    // Tenant u's alarm: its record says 3 days, the platform's minimum is 7.
    let s = sweep(3, 1).await;
    assert!(alarm_there(104), "below the platform's minimum: {s:?}");
    let s = sweep(7, 0).await;
    assert!(alarm_there(104) && s.alarms == 0, "{s:?}");
    let s = sweep(7, 1).await;
    assert!(!alarm_there(104) && !event_there(104), "{s:?}");
    assert!(load_audit(b, AlarmId(104)).unwrap().is_empty());
    assert_eq!((s.alarms, s.alarm_audit_records), (1, 3), "{s:?}");
    // Tenant t's alarm, its trail, its opening event and its reset: 10 days.
    assert!(alarm_there(102) && event_there(102) && event_there(103));
    let s = sweep(10, 0).await;
    assert!(alarm_there(102) && event_there(103), "{s:?}");
    let s = sweep(10, 1).await;
    assert!(!alarm_there(102), "{s:?}");
    assert!(load_audit(b, AlarmId(102)).unwrap().is_empty());
    assert!(!event_there(102) && !event_there(103), "{s:?}");
    assert_eq!((s.alarms, s.alarm_events), (1, 2), "{s:?}");
    router.shutdown().await;
    store.close().unwrap();
}
