//! Reading an outbox from a cursor and letting acknowledged notices go, on both backends: a reader
//! past pruned entries sees exactly what follows its cursor, other centres' outboxes untouched.
use futures::executor::block_on;
use std::sync::Arc;
use vaka_core::alarm::{Alarm, AlarmKind, AlarmState, Notice};
use vaka_core::*;
use vaka_store::*;

fn alarm(id: u64) -> Alarm {
    Alarm {
        id: AlarmId(id),
        device: DeviceKey::new("t", "d"),
        reference: format!("r{id}"),
        kind: AlarmKind::Help,
        code: "0010".into(),
        priority: 1,
        text: None,
        callback: vec![],
        state: AlarmState::Pending,
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: 1,
        updated_ms: 1,
        stages: Default::default(),
        test: false,
    }
}

fn offer(id: u64) -> Notice {
    Notice::Offer {
        alarm: alarm(id),
        unhandled: false,
    }
}

fn open(backend: Arc<dyn Backend>) -> Store {
    Store::open(
        backend,
        GroupConfig::default(),
        RecoverOptions {
            now_ms: 0,
            idem_window_ms: 1_000,
        },
    )
    .unwrap()
    .0
}

fn check(backend: Arc<dyn Backend>) {
    let store = open(backend.clone());
    let (a, b) = (CentreId::new("a"), CentreId::new("b"));
    // Interleaved notices: a gets odd sequences, b even ones.
    for i in 1..=10u64 {
        let mut set = WriteSet::new();
        set.push_notice(&a, &offer(i));
        set.push_notice(&b, &offer(100 + i));
        block_on(store.commit(Lane::Alarm, set)).unwrap();
    }
    assert_eq!(*store.outbox_watermark().borrow(), 20);
    let be = backend.as_ref();
    let seqs = |c: &CentreId, after| -> Vec<u64> {
        read_outbox(be, c, after, 100)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(seqs(&a, 0), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    assert_eq!(seqs(&a, 6), [7, 9, 11, 13, 15, 17, 19]);

    // Acknowledge a through 9: at most 3 keys per call, resuming where the last pruning stopped.
    let first = outbox_keys_through(be, &a, 0, 9, 3).unwrap();
    assert_eq!(first.len(), 3);
    let rest = outbox_keys_through(be, &a, 5, 9, 3).unwrap();
    assert_eq!(rest.len(), 2, "7 and 9 remain");
    let mut set = WriteSet::new();
    for k in first.into_iter().chain(rest) {
        set.delete(Cf::Outbox, k);
    }
    set.put_cursor(&a, 9);
    block_on(store.commit(Lane::Telemetry, set)).unwrap();

    assert_eq!(load_cursor(be, &a).unwrap(), 9);
    assert_eq!(seqs(&a, 0), [11, 13, 15, 17, 19]);
    assert_eq!(seqs(&a, 9), [11, 13, 15, 17, 19]);
    assert_eq!(
        seqs(&b, 0).len(),
        10,
        "another centre's outbox is untouched"
    );
    assert!(outbox_keys_through(be, &a, 9, 9, 10).unwrap().is_empty());
    let n = read_outbox(be, &a, 12, 1).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, 13);
    assert_eq!(n[0].1.alarm().id, AlarmId(7));
    store.close().unwrap();
}

#[test]
fn outbox_prunes_and_resumes_in_memory() {
    check(Arc::new(MemBackend::new()));
}

#[test]
fn outbox_prunes_and_resumes_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    check(Arc::new(
        RocksBackend::open(&RocksConfig::new(dir.path())).unwrap(),
    ));
}

#[test]
fn opening_event_is_readable_by_alarm_id() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let store = open(backend.clone());
    let event = Event {
        device: DeviceKey::new("t", "d"),
        key: "r1".into(),
        received_ms: 5,
        kind: EventKind::Heartbeat,
        fix: Some(vaka_core::gps::Fix::at(4, 57.7, 11.9)),
        raw: b"x".to_vec(),
        occurred_ms: None,
    };
    let mut set = WriteSet::new();
    set.put_event(EventId(42), &event);
    block_on(store.commit(Lane::Alarm, set)).unwrap();
    assert_eq!(
        load_event(backend.as_ref(), EventId(42)).unwrap(),
        Some(event)
    );
    assert_eq!(load_event(backend.as_ref(), EventId(43)).unwrap(), None);
}
