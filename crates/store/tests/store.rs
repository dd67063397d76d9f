//! Group commit, lane priority and recovery, on the in-memory and RocksDB backends.
use futures::executor::block_on;
use std::sync::{Arc, Condvar, Mutex};
use vaka_core::alarm::AuditRecord;
use vaka_core::idempotency::{Answer, IdemKey};
use vaka_core::*;
use vaka_store::*;

fn opts(now_ms: i64) -> RecoverOptions {
    RecoverOptions {
        now_ms,
        idem_window_ms: 1_000,
    }
}

fn event_set(id: u64) -> WriteSet {
    let mut s = WriteSet::new();
    s.put_raw(Cf::Events, id.to_be_bytes().to_vec(), vec![7; 100]);
    s.events = 1;
    s
}

/// Records the first key of every synced write; can hold writes at a gate.
struct Recording {
    inner: MemBackend,
    firsts: Mutex<Vec<Vec<u8>>>,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Recording {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemBackend::new(),
            firsts: Mutex::new(Vec::new()),
            open: Mutex::new(true),
            cv: Condvar::new(),
        })
    }
    fn set_open(&self, v: bool) {
        *self.open.lock().unwrap() = v;
        self.cv.notify_all();
    }
}

impl Backend for Recording {
    fn write_synced(&self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        drop(open);
        if let Some(op) = sets.first().and_then(|s| s.ops.first()) {
            self.firsts.lock().unwrap().push(op.key.clone());
        }
        self.inner.write_synced(sets)
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }
    fn scan(
        &self,
        cf: Cf,
        p: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan(cf, p, f)
    }
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(cf)
    }
}

#[test]
fn concurrent_producers_share_syncs() {
    let rec = Recording::new();
    let (store, _) = Store::open(rec.clone(), GroupConfig::default(), opts(0)).unwrap();
    // Hold the first write so the others pile up behind it and must be grouped.
    rec.set_open(false);
    let first = std::thread::spawn({
        let s = store.clone();
        move || block_on(s.commit(Lane::Telemetry, event_set(0)))
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    let producers: Vec<_> = (1..=64u64)
        .map(|i| {
            let s = store.clone();
            std::thread::spawn(move || block_on(s.commit(Lane::Telemetry, event_set(i))))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    rec.set_open(true);
    first.join().unwrap().unwrap();
    for p in producers {
        p.join().unwrap().unwrap();
    }
    let st = store.stats();
    assert_eq!(st.events, 65);
    assert!(
        st.syncs <= 3,
        "65 waiting producers should need few syncs, used {}",
        st.syncs
    );
    for i in 0..=64u64 {
        assert!(rec.get(Cf::Events, &i.to_be_bytes()).unwrap().is_some());
    }
}

#[test]
fn alarm_lane_jumps_the_telemetry_queue() {
    let rec = Recording::new();
    let cfg = GroupConfig {
        max_group_ops: 1,
        queue_depth: 1024,
    };
    let (store, _) = Store::open(rec.clone(), cfg, opts(0)).unwrap();
    // Opening a new store wrote its format version: only the commits below count.
    rec.firsts.lock().unwrap().clear();
    rec.set_open(false);
    // The committer takes telemetry 0 and blocks in its write.
    let mut waits = vec![std::thread::spawn({
        let s = store.clone();
        move || block_on(s.commit(Lane::Telemetry, event_set(0)))
    })];
    std::thread::sleep(std::time::Duration::from_millis(50));
    for i in 1..=100u64 {
        let s = store.clone();
        waits.push(std::thread::spawn(move || {
            block_on(s.commit(Lane::Telemetry, event_set(i)))
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let alarm = std::thread::spawn({
        let s = store.clone();
        move || block_on(s.commit(Lane::Alarm, event_set(1_000)))
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    rec.set_open(true);
    alarm.join().unwrap().unwrap();
    for w in waits {
        w.join().unwrap().unwrap();
    }
    let firsts = rec.firsts.lock().unwrap().clone();
    assert_eq!(firsts[0], 0u64.to_be_bytes().to_vec());
    assert_eq!(
        firsts[1],
        1_000u64.to_be_bytes().to_vec(),
        "the alarm goes right after the write in progress"
    );
}

fn sample_alarm(id: u64, state: AlarmState) -> Alarm {
    Alarm {
        id: AlarmId(id),
        device: DeviceKey::new("t", "d"),
        reference: format!("r{id}"),
        kind: AlarmKind::Help,
        code: "0010".into(),
        priority: 1,
        text: None,
        callback: vec![],
        state,
        step: 0,
        deadline: None,
        repeats: 0,
        created_ms: 0,
        updated_ms: 0,
        stages: Default::default(),
        test: false,
    }
}

#[test]
fn recovery_finds_open_alarms_live_idempotency_and_next_id() {
    let dir = tempfile::tempdir().unwrap();
    {
        let backend = Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
        let (store, rec) = Store::open(backend, GroupConfig::default(), opts(0)).unwrap();
        assert!(rec.open_alarms.is_empty());
        assert_eq!(rec.next_event_id, 1);
        let mut set = WriteSet::new();
        let ev = Event {
            device: DeviceKey::new("t", "d"),
            key: "r5".into(),
            received_ms: 0,
            kind: EventKind::Heartbeat,
            fix: None,
            raw: vec![],
            occurred_ms: None,
        };
        set.put_event(EventId(5), &ev);
        set.put_alarm(&sample_alarm(5, AlarmState::Pending));
        set.put_alarm(&sample_alarm(6, AlarmState::Cancelled));
        set.put_audit(
            0,
            &AuditRecord {
                alarm: AlarmId(5),
                at_ms: 0,
                actor: "device".into(),
                action: "received".into(),
                reason: String::new(),
            },
        );
        let k = |s: &str| IdemKey {
            device: DeviceKey::new("t", "d"),
            key: s.into(),
        };
        let ans = Answer {
            event: EventId(5),
            alarm: Some(AlarmId(5)),
        };
        set.put_idem(&k("fresh"), ans, 900);
        set.put_idem(&k("old"), ans, 100);
        block_on(store.commit(Lane::Alarm, set)).unwrap();
        store.close().unwrap();
    }
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let (store, rec) = Store::open(backend.clone(), GroupConfig::default(), opts(1_500)).unwrap();
    assert_eq!(rec.open_alarms.len(), 1);
    assert_eq!(rec.open_alarms[0].0.id, AlarmId(5));
    assert_eq!(
        rec.open_alarms[0].1, 1,
        "next audit seq follows the stored records"
    );
    assert_eq!(rec.next_event_id, 7, "past both events and alarms");
    assert_eq!(rec.idem.len(), 1);
    assert_eq!(rec.idem[0].0.key, "fresh");
    assert_eq!(rec.idem_expired, 1);
    let mut left = 0;
    backend
        .scan(Cf::Idem, &[], &mut |_, _| {
            left += 1;
            true
        })
        .unwrap();
    assert_eq!(left, 1, "expired entries are deleted at open");
    store.close().unwrap();
}

#[test]
fn close_commits_what_is_queued_and_refuses_later_writes() {
    let mem = Arc::new(MemBackend::new());
    let (store, _) = Store::open(mem.clone(), GroupConfig::default(), opts(0)).unwrap();
    let pending: Vec<_> = (0..50u64)
        .map(|i| store.commit(Lane::Telemetry, event_set(i)))
        .collect();
    // The futures have not been polled: nothing is queued yet, so poll them on threads first.
    let handles: Vec<_> = pending
        .into_iter()
        .map(|f| std::thread::spawn(move || block_on(f)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    store.close().unwrap();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(
        block_on(store.commit(Lane::Alarm, event_set(99))),
        Err(CommitError::Closed)
    );
}

#[test]
fn outbox_notices_are_numbered_in_commit_order_and_resume_after_restart() {
    use vaka_core::alarm::Notice;
    let dir = tempfile::tempdir().unwrap();
    let c1 = CentreId::new("c1");
    let notice = |id| Notice::Offer {
        alarm: sample_alarm(id, AlarmState::Pending),
        unhandled: false,
    };
    {
        let backend = Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
        let (store, _) = Store::open(backend.clone(), GroupConfig::default(), opts(0)).unwrap();
        let watermark = store.outbox_watermark();
        for id in 1..=3 {
            let mut set = WriteSet::new();
            set.push_notice(&c1, &notice(id));
            set.push_notice(&CentreId::new("c2"), &notice(id));
            block_on(store.commit(Lane::Alarm, set)).unwrap();
        }
        assert_eq!(
            *watermark.borrow(),
            6,
            "durable watermark follows the commits"
        );
        let got = read_outbox(backend.as_ref(), &c1, 0, 10).unwrap();
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 3, 5]);
        assert_eq!(got[2].1.alarm().id, AlarmId(3));
        assert_eq!(
            read_outbox(backend.as_ref(), &c1, 3, 10).unwrap().len(),
            1,
            "resume after a cursor"
        );
        let mut set = WriteSet::new();
        set.put_cursor(&c1, 3);
        block_on(store.commit(Lane::Alarm, set)).unwrap();
        store.close().unwrap();
    }
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let (store, rec) = Store::open(backend.clone(), GroupConfig::default(), opts(0)).unwrap();
    assert_eq!(rec.outbox_seq, 6);
    assert_eq!(load_cursor(backend.as_ref(), &c1).unwrap(), 3);
    let mut set = WriteSet::new();
    set.push_notice(&c1, &notice(4));
    block_on(store.commit(Lane::Alarm, set)).unwrap();
    let got = read_outbox(backend.as_ref(), &c1, 5, 10).unwrap();
    assert_eq!(
        got[0].0, 7,
        "numbering continues after a restart, never reusing a sequence"
    );
    store.close().unwrap();
}
