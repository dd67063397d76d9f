//! Invariant 12, damage is loud, at the store's API: a damaged, cut or deleted write-ahead log and a
//! damaged table file refuse the open; a torn last record (a killed writer) does not; salvage
//! reports what was lost; ids are never given twice, across crashes and salvage.
use futures::executor::block_on;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vaka_core::Lane;
use vaka_store::testing::flip;
use vaka_store::*;

const EVENTS: u64 = 300;

fn opts() -> RecoverOptions {
    RecoverOptions {
        now_ms: 0,
        idem_window_ms: 1_000,
    }
}

fn open(path: &Path) -> Result<(Store, Recovered), StoreError> {
    let backend = RocksBackend::open(&RocksConfig::new(path))?;
    Store::open(Arc::new(backend), GroupConfig::default(), opts())
}

/// Commits `n` events through the store, each in its own synced group, and returns their ids.
fn commit_events(store: &Store, n: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let id = store.allocate_id().0;
            let mut set = WriteSet::new();
            set.put_raw(Cf::Events, keys::id_key(id), vec![7; 200]);
            set.events = 1;
            block_on(store.commit(Lane::Telemetry, set)).unwrap();
            id
        })
        .collect()
}

/// A store that saw `EVENTS` acknowledged events and then "crashed": dropped without `close`, so
/// nothing was flushed and every event is only in the write-ahead log.
fn crashed_store() -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    let ids = commit_events(&store, EVENTS);
    drop(store);
    (dir, ids)
}

fn wal(path: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let last = logs.pop().expect("a write-ahead log");
    assert!(
        std::fs::metadata(&last).unwrap().len() > 20_000,
        "the events must be in the log"
    );
    last
}

fn refused(path: &Path) -> String {
    match open(path) {
        Err(StoreError::Damaged(text)) => text,
        Err(e) => panic!("refused, but not as damage: {e}"),
        Ok((_, rec)) => panic!(
            "a damaged store opened (next id {}): damage went unnoticed",
            rec.next_event_id
        ),
    }
}

#[test]
fn a_crashed_store_opens_cleanly_with_every_event() {
    let (dir, ids) = crashed_store();
    let (store, rec) = open(dir.path()).unwrap();
    let last = *ids.last().unwrap();
    assert!(store
        .backend()
        .get(Cf::Events, &keys::id_key(last))
        .unwrap()
        .is_some());
    // The crash skips the rest of the reserved block: no id from before can come again.
    assert!(rec.next_event_id > last, "{}", rec.next_event_id);
    store.close().unwrap();
}

#[test]
fn flipped_bytes_in_the_wal_refuse_the_open_naming_the_file() {
    let (dir, _) = crashed_store();
    let wal = wal(dir.path());
    flip(&wal, 2000, 0x5a);
    let text = refused(dir.path());
    assert!(text.contains(&wal.display().to_string()), "{text}");
    // A second attempt still refuses: the first changed nothing.
    refused(dir.path());
}

#[test]
fn a_cut_wal_refuses_the_open() {
    let (dir, _) = crashed_store();
    let wal = wal(dir.path());
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let text = refused(dir.path());
    assert!(text.contains("acknowledged writes are missing"), "{text}");
    assert!(text.contains(&wal.display().to_string()), "{text}");
    // The refused open replayed and replaced the log, but the mark still refuses a second try.
    let again = refused(dir.path());
    assert!(again.contains("acknowledged writes are missing"), "{again}");
}

#[test]
fn a_deleted_wal_refuses_the_open() {
    let (dir, _) = crashed_store();
    std::fs::remove_file(wal(dir.path())).unwrap();
    let text = refused(dir.path());
    assert!(text.contains("no write-ahead log file"), "{text}");
}

/// What a killed process may leave: the last group half written and never synced (its mark was
/// not updated). That group was never acknowledged, so the open must succeed.
#[test]
fn a_torn_last_record_opens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    let ids = commit_events(&store, EVENTS);
    let mark_before = std::fs::read(dir.path().join("vaka-durable")).unwrap();
    let len_before = std::fs::metadata(wal(dir.path())).unwrap().len();
    let torn = commit_events(&store, 1)[0];
    drop(store);
    std::fs::write(dir.path().join("vaka-durable"), mark_before).unwrap();
    let wal = wal(dir.path());
    let len = std::fs::metadata(&wal).unwrap().len();
    assert!(len > len_before + 10);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    let (store, rec) = open(dir.path()).expect("a torn unsynced tail is no damage");
    let b = store.backend();
    assert!(b
        .get(Cf::Events, &keys::id_key(*ids.last().unwrap()))
        .unwrap()
        .is_some());
    assert!(b.get(Cf::Events, &keys::id_key(torn)).unwrap().is_none());
    assert!(
        rec.next_event_id > torn,
        "the torn write's id is not given again"
    );
    store.close().unwrap();
}

#[test]
fn a_damaged_table_file_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    commit_events(&store, EVENTS);
    store.close().unwrap(); // flushes the events into a table file
    drop(store);
    let sst = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a table file after close");
    let len = std::fs::metadata(&sst).unwrap().len();
    // The blocks an open reads (index, meta, footer) sit at the end; a damaged data block
    // elsewhere is found when it is read (ARCHITECTURE.md, "Table-file damage").
    flip(&sst, len - 100, 0x5a);
    let text = match open(dir.path()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a damaged table file went unnoticed"),
    };
    let name = sst.file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains(&name), "{text}");
}

#[test]
fn salvage_reports_what_was_lost_and_ids_stay_above_every_id_given() {
    let (dir, ids) = crashed_store();
    let path = dir.path();
    flip(&wal(path), 2000, 0x5a);
    refused(path);
    let copy = tempfile::tempdir().unwrap();
    let copy = copy.path().join("copy");
    let report = salvage(&RocksConfig::new(path), &copy).unwrap();

    let last = *ids.last().unwrap();
    assert_eq!(
        report.before.durable_event, last,
        "the mark knows the last durable event"
    );
    assert!(report.recovered_event < last, "{report:?}");
    assert!(report.lost_events());
    assert!(
        report.damage.as_deref().unwrap().contains("checksum"),
        "{report:?}"
    );
    assert!(report.next_id > last);
    // The copy holds the damaged log as it was.
    assert!(std::fs::read_dir(&copy).unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "log")));

    // `open` accepts the salvaged store, and a new id is above every id given before.
    let (store, rec) = open(path).expect("a salvaged store opens");
    assert_eq!(rec.next_event_id, report.next_id);
    let new = commit_events(&store, 1)[0];
    assert!(new > last, "id {new} was given before");
    store.close().unwrap();
}

#[test]
fn ids_are_reserved_in_blocks_and_a_clean_close_leaves_no_gap() {
    let backend = Arc::new(MemBackend::new());
    let (store, _) = Store::open(backend.clone(), GroupConfig::default(), opts()).unwrap();
    let first = commit_events(&store, 3);
    assert_eq!(
        backend.reserved_ids(),
        first[0] + 1 + ID_BLOCK,
        "one block for all three"
    );
    drop(store); // a crash: the next id comes after the block
    let (store, rec) = Store::open(backend.clone(), GroupConfig::default(), opts()).unwrap();
    assert_eq!(rec.next_event_id, first[0] + 1 + ID_BLOCK);
    let id = store.allocate_id().0;
    store.close().unwrap(); // clean: the reservation is the exact next id
    let (_, rec) = Store::open(backend, GroupConfig::default(), opts()).unwrap();
    assert_eq!(rec.next_event_id, id + 1);
}
