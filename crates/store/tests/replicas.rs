//! Replicas of other nodes' alarms (a cluster): kept apart from this node's own (recovery
//! neither reopens them nor counts their ids), listed with this node's alarms by id with their
//! holder, across pages that miss and repeat nothing; erased, moved and aged out with the
//! device's history.
use futures::executor::block_on;
use std::sync::Arc;
use vaka_core::*;
use vaka_store::query::{AlarmFilter, StateFilter};
use vaka_store::*;

fn opts() -> RecoverOptions {
    RecoverOptions {
        now_ms: 0,
        idem_window_ms: 1_000,
    }
}

fn alarm(id: u64, device: &str, state: AlarmState) -> Alarm {
    Alarm {
        id: AlarmId(id),
        device: DeviceKey::new("t", device),
        reference: format!("r{id}"),
        kind: AlarmKind::Help,
        code: "0010".into(),
        priority: 1,
        text: Some("fell in the kitchen".into()),
        callback: vec!["+46700000001".into()],
        state,
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: 1_000,
        updated_ms: 2_000,
        stages: Default::default(),
        test: false,
    }
}

fn replica(id: u64, device: &str, state: AlarmState) -> Replica {
    Replica {
        holder: "node-b".into(),
        holder_range: 1,
        version: 1,
        alarm: alarm(id, device, state),
    }
}

fn offered() -> AlarmState {
    AlarmState::Offered {
        centre: CentreId::new("c1"),
    }
}

fn closed() -> AlarmState {
    AlarmState::Closed {
        centre: CentreId::new("c1"),
        outcome: "visited".into(),
    }
}

fn write(store: &Store, f: impl FnOnce(&mut WriteSet)) {
    let mut set = WriteSet::new();
    f(&mut set);
    block_on(store.commit(Lane::Alarm, set)).unwrap();
}

fn tenant(state: StateFilter) -> AlarmFilter {
    AlarmFilter {
        tenant: Some("t".into()),
        state,
        ..AlarmFilter::default()
    }
}

/// Own alarms 1, 3, 5, 7 and replicas of another node's alarms 2^43 + 2, 2^43 + 4 (its range).
fn cluster_store(mem: Arc<MemBackend>) -> Store {
    let (store, _) = Store::open(mem, GroupConfig::default(), opts()).unwrap();
    write(&store, |set| {
        for id in [1, 3, 5, 7] {
            set.put_alarm(&alarm(id, "own", offered()));
        }
        set.put_replica(&replica((1 << 43) + 2, "theirs", offered()));
        set.put_replica(&replica((1 << 43) + 4, "theirs", closed()));
    });
    store
}

#[test]
fn replicas_are_listed_with_their_holder_and_never_recovered_as_this_nodes() {
    let mem = Arc::new(MemBackend::new());
    let store = cluster_store(mem.clone());
    let page = store
        .listed_page(&tenant(StateFilter::Any), None, 100)
        .unwrap();
    let ids: Vec<u64> = page.alarms.iter().map(|l| l.alarm.id.0).collect();
    assert_eq!(ids, vec![1, 3, 5, 7, (1 << 43) + 2, (1 << 43) + 4]);
    assert_eq!(page.alarms[4].holder.as_deref(), Some("node-b"));
    assert_eq!(page.alarms[0].holder, None);
    assert_eq!(page.next_after, None);

    let open = store
        .listed_page(&tenant(StateFilter::Open), None, 100)
        .unwrap();
    let ids: Vec<u64> = open.alarms.iter().map(|l| l.alarm.id.0).collect();
    assert_eq!(
        ids,
        vec![1, 3, 5, 7, (1 << 43) + 2],
        "the closed replica is not open"
    );
    let device = DeviceKey::new("t", "theirs");
    assert_eq!(store.open_listed_of(&device).unwrap().len(), 1);
    assert_eq!(
        store
            .listed_alarm(AlarmId((1 << 43) + 4))
            .unwrap()
            .unwrap()
            .holder
            .as_deref(),
        Some("node-b")
    );
    assert!(store.alarm(AlarmId((1 << 43) + 2)).unwrap().is_none());
    store.close().unwrap();

    let (_, rec) = Store::open(mem, GroupConfig::default(), opts()).unwrap();
    assert_eq!(
        rec.open_alarms.len(),
        4,
        "only this node's alarms are reopened"
    );
    assert_eq!(
        rec.next_event_id, 8,
        "ids go on from this node's own, not from a replica's"
    );
}

#[test]
fn pages_over_alarms_and_replicas_miss_and_repeat_nothing() {
    let store = cluster_store(Arc::new(MemBackend::new()));
    write(&store, |set| {
        for id in [2, 6] {
            set.put_replica(&replica(id, "theirs", offered()));
        }
    });
    for state in [StateFilter::Any, StateFilter::Open] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.listed_page(&tenant(state), after, 2).unwrap();
            assert!(page.alarms.len() <= 2);
            seen.extend(page.alarms.iter().map(|l| l.alarm.id.0));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut want = vec![1, 2, 3, 5, 6, 7, (1 << 43) + 2];
        if state == StateFilter::Any {
            want.push((1 << 43) + 4);
        }
        assert_eq!(seen, want, "{state:?}");
    }
}

#[test]
fn a_later_record_supersedes_and_an_earlier_one_does_not() {
    let first = replica(9, "d", offered());
    let mut later = replica(9, "d", closed());
    later.version = 2;
    assert!(later.supersedes(&first));
    assert!(!first.supersedes(&later));
    assert!(first.supersedes(&first), "the same record read again");
}

#[test]
fn replicas_are_erased_moved_and_aged_out_with_the_devices_history() {
    let mem = Arc::new(MemBackend::new());
    let store = cluster_store(mem.clone());
    let theirs = DeviceKey::new("t", "theirs");

    let erased = store.erase_device(&theirs).unwrap();
    assert_eq!(erased.alarms, 2, "{erased:?}");
    let r = store.replica(AlarmId((1 << 43) + 2)).unwrap().unwrap();
    assert_eq!(r.alarm.text, None);
    assert!(r.alarm.callback.is_empty());

    let moved = store
        .move_history(&theirs, &DeviceKey::new("u", "theirs"))
        .unwrap();
    assert_eq!(moved.alarms, 2);
    let r = store.replica(AlarmId((1 << 43) + 4)).unwrap().unwrap();
    assert_eq!(r.alarm.device, DeviceKey::new("u", "theirs"));

    let pruned = store.prune_alarms(&mut |_| Some(3_000)).unwrap();
    assert_eq!(
        pruned.replicas, 1,
        "the closed one, ended before the cutoff"
    );
    assert!(store.replica(AlarmId((1 << 43) + 4)).unwrap().is_none());
    assert!(
        store.replica(AlarmId((1 << 43) + 2)).unwrap().is_some(),
        "an open one stays"
    );
}

#[test]
fn an_alarm_taken_over_from_a_higher_range_does_not_move_this_nodes_next_id() {
    let mem = Arc::new(MemBackend::new());
    let (store, _) = Store::open(mem.clone(), GroupConfig::default(), opts()).unwrap();
    let own = (2u64 << 43) + 10;
    let taken_over = (5u64 << 43) + 3;
    write(&store, |set| {
        set.put_id_range(2);
        set.put_alarm(&alarm(own, "d", offered()));
        set.put_alarm(&alarm(taken_over, "d", offered()));
        set.put_replica(&replica((5 << 43) + 4, "d", offered()));
    });
    store.close().unwrap();
    let (store, rec) = Store::open(mem, GroupConfig::default(), opts()).unwrap();
    assert_eq!(
        rec.next_event_id,
        own + 1,
        "this node's ids go on in its range"
    );
    assert_eq!(rec.open_alarms.len(), 2, "the one taken over is held here");

    // Let go: the record and the open index go, the replica stays.
    write(&store, |set| {
        set.drop_alarm(AlarmId(taken_over));
        set.delete_replica(AlarmId((5 << 43) + 4));
    });
    assert!(store.alarm(AlarmId(taken_over)).unwrap().is_none());
    assert!(store.replica(AlarmId((5 << 43) + 4)).unwrap().is_none());
    let open = store
        .listed_page(&tenant(StateFilter::Open), None, 10)
        .unwrap();
    assert_eq!(open.alarms.len(), 1);
}

#[test]
fn an_alarm_taken_over_counts_its_audit_on_from_the_holders_after_a_restart() {
    let mem = Arc::new(MemBackend::new());
    let (store, _) = Store::open(mem.clone(), GroupConfig::default(), opts()).unwrap();
    let taken_over = (5u64 << 43) + 3;
    write(&store, |set| {
        set.put_alarm(&alarm(taken_over, "d", offered()));
        // The holder had written 0..=6; this node's trail starts at 7.
        for seq in 7..9 {
            set.put_audit(
                seq,
                &vaka_core::alarm::AuditRecord {
                    alarm: AlarmId(taken_over),
                    at_ms: 0,
                    actor: "engine".into(),
                    action: "taken_over".into(),
                    reason: String::new(),
                },
            );
        }
    });
    store.close().unwrap();
    let (store, rec) = Store::open(mem, GroupConfig::default(), opts()).unwrap();
    assert_eq!(
        rec.open_alarms[0].1, 9,
        "past the last record, not the count of them"
    );
    assert_eq!(store.next_audit_seq(AlarmId(taken_over)).unwrap(), 9);
}
