//! The directory of a cluster: nodes (each a `Control`, a router and its own RocksDB store in a
//! temp dir) over three real nats-server processes on loopback with `sync_interval: always`
//! (crates/cluster/tests/support: one three-server cluster at a time in this binary).

#[path = "../../cluster/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use support::{eventually, Cluster};
use vaka_admin::replicated::{self, Follower};
use vaka_admin::{Applied, Control, ControlError, Request};
use vaka_cluster::directory_log::DIRECTORY_STREAM;
use vaka_cluster::testing::CountingRecorder;
use vaka_cluster::DirectoryLog;
use vaka_core::directory::{
    CentreRecord, Change, Defaults, DeviceRecord, Directory, FenceRecord, Records, TenantRecord,
};
use vaka_core::gps::FenceKind;
use vaka_router::{Clock, LiveDirectory, Presence, Router, RouterConfig};
use vaka_store::directory::AdminAuditEntry;
use vaka_store::{GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};

const SETTLE: Duration = Duration::from_secs(30);

fn recorder() -> &'static CountingRecorder {
    static R: OnceLock<CountingRecorder> = OnceLock::new();
    R.get_or_init(|| {
        let r = CountingRecorder::default();
        metrics::set_global_recorder(r.clone()).expect("the only recorder of this test binary");
        r
    })
}

/// The configuration file's directory entries: one centre, one tenant.
fn bootstrap() -> Vec<Change> {
    vec![
        Change::PutCentre(CentreRecord {
            id: "c1".into(),
            tenants: vec!["t".into()],
            ..Default::default()
        }),
        Change::PutTenant(TenantRecord {
            id: "t".into(),
            centres: vec!["c1".into()],
            ..Default::default()
        }),
    ]
}

fn device(id: &str, heartbeat: u32) -> Request {
    let mut d = DeviceRecord::new("t", id, "0003");
    d.heartbeat_secs = Some(heartbeat);
    Change::PutDevice(Box::new(d)).into()
}

/// A device with five fences: about 1 KB of JSON.
fn fenced(id: &str) -> Request {
    let mut d = DeviceRecord::new("t", id, "0003");
    d.fences = (0..5)
        .map(|i| FenceRecord {
            id: format!("fence-{i}"),
            kind: FenceKind::Circle,
            lat: Some(59.33 + f64::from(i) / 100.0),
            lon: Some(18.06),
            radius_m: Some(200.0),
            points: Vec::new(),
            margin_m: 20.0,
            confirm_fixes: Some(3),
            confirm_secs: Some(60),
        })
        .collect();
    Change::PutDevice(Box::new(d)).into()
}

struct Node {
    store: Store,
    router: Arc<Router>,
    control: Arc<Control>,
}

async fn open_log(c: &Cluster, node: &str) -> DirectoryLog {
    let js = vaka_cluster::connect(&c.config(node))
        .await
        .expect("the servers sync every write");
    eventually(SETTLE, "open VAKA_DIR", || DirectoryLog::open(js.clone())).await
}

fn open_store(data: &Path) -> (Store, vaka_store::Recovered) {
    let backend = RocksBackend::open(&RocksConfig::new(data.join("db"))).unwrap();
    Store::open(
        Arc::new(backend),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: Clock::new().now_ms(),
            idem_window_ms: 60_000,
        },
    )
    .unwrap()
}

/// A node's start as the engine does it (src/serve.rs): the store opened, the directory caught
/// up with the log (or the start refused), then the router and the control plane.
async fn try_start(c: &Cluster, name: &str, data: &Path) -> Result<Node, (String, Store)> {
    let opened = open_node(c, name, data).await;
    start_opened(opened).await
}

/// A node's store and its connection to the cluster's directory log.
struct Opened {
    store: Store,
    recovered: vaka_store::Recovered,
    log: DirectoryLog,
}

async fn open_node(c: &Cluster, name: &str, data: &Path) -> Opened {
    let (store, recovered) = open_store(data);
    let log = open_log(c, name).await;
    Opened {
        store,
        recovered,
        log,
    }
}

async fn start_opened(o: Opened) -> Result<Node, (String, Store)> {
    start_opened_with(o, bootstrap()).await
}

/// [`start_opened`] with another configuration file's directory entries.
async fn start_opened_with(o: Opened, file: Vec<Change>) -> Result<Node, (String, Store)> {
    let Opened {
        store,
        recovered,
        log,
    } = o;
    let now = Clock::new().now_ms();
    let started = replicated::start(log, &store, Defaults::default(), file, now, SETTLE);
    let (dir, follower): (Directory, Follower) = match started.await {
        Ok(x) => x,
        Err(e) => return Err((e, store)),
    };
    let live = LiveDirectory::new(dir);
    let router = Router::start(
        RouterConfig {
            shards: 1,
            ..RouterConfig::default()
        },
        store.clone(),
        recovered,
        live.clone(),
        Presence::new(),
        Clock::new(),
    );
    let control =
        Control::new_replicated(store.clone(), live, router.clone(), Clock::new(), follower)
            .unwrap();
    Ok(Node {
        store,
        router,
        control,
    })
}

async fn start(c: &Cluster, name: &str, data: &Path) -> Node {
    match try_start(c, name, data).await {
        Ok(n) => n,
        Err((e, _)) => panic!("node {name}: {e}"),
    }
}

impl Node {
    async fn stop(self) {
        self.control.stop_following().await;
        self.router.shutdown().await;
        drop(self.control);
        self.store.close().unwrap();
    }

    fn live(&self) -> &LiveDirectory {
        self.control.live()
    }

    fn records(&self) -> (Records, u64) {
        self.store.load_directory().unwrap()
    }

    fn audit(&self) -> Vec<AdminAuditEntry> {
        let mut all = self.store.admin_audit(None, 0, 10_000).unwrap();
        all.extend(self.store.admin_audit(Some("t"), 0, 10_000).unwrap());
        all.sort_by_key(|e| (e.revision, e.resource.clone()));
        all
    }

    fn sequence(&self) -> u64 {
        self.store.directory_log_sequence().unwrap()
    }
}

/// Waits (on the directory's revision watch, not a sleep) until `node` has `revision`.
async fn wait_revision(node: &Node, revision: u64, within: Duration) -> Duration {
    let t = Instant::now();
    let mut watch = node.live().watch();
    tokio::time::timeout(within, watch.wait_for(|r| *r >= revision))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "revision {revision} not seen within {within:?} (at {})",
                node.live().load().revision
            )
        })
        .unwrap();
    t.elapsed()
}

fn assert_identical(a: &Node, b: &Node) {
    let (ra, rb) = (a.records(), b.records());
    assert_eq!(ra, rb, "records and revision differ between the nodes");
    assert_eq!(
        a.audit(),
        b.audit(),
        "admin audit differs between the nodes"
    );
    assert_eq!(a.sequence(), b.sequence());
    assert_eq!(a.live().load().revision, b.live().load().revision);
    assert_eq!(a.live().load().records, b.live().load().records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_is_seen_on_the_other_and_concurrent_if_match_writes_let_one_win() {
    let c = Cluster::start3();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&c, "a", da.path()).await;
    let b = start(&c, "b", db.path()).await;
    // One bootstrap batch (sequence 1), applied by both.
    assert_eq!((a.sequence(), b.sequence()), (1, 1));

    // Added through A: B's live directory has it, at the same revision (about 10 ms here;
    // the bound allows a CI machine busy with other tests' fsyncs, where 1 s once failed).
    let (applied, revision) = a
        .control
        .apply_one("tok_a", device("d1", 60))
        .await
        .unwrap();
    assert_eq!(applied, Applied::Created);
    assert_eq!(revision, 2, "revision = the batch's stream sequence");
    let took = wait_revision(&b, revision, Duration::from_secs(5)).await;
    let key = vaka_core::DeviceKey::new("t", "d1");
    assert_eq!(
        b.live().load().device(&key).unwrap().heartbeat_secs,
        Some(60)
    );
    assert_identical(&a, &b);
    let audit = b.audit();
    let put = audit
        .iter()
        .find(|e| e.revision == 2)
        .expect("audited on B");
    assert_eq!(
        (put.actor.as_str(), put.action.as_str()),
        ("tok_a", "put device")
    );
    eprintln!("seen on B after {took:?}");

    // Two If-Match updates of d1 at revision 2, one through each node, at once.
    let update = |hb| Request {
        if_match: Some(2),
        ..device("d1", hb)
    };
    let (ra, rb) = tokio::join!(
        a.control.apply_one("tok_a", update(30)),
        b.control.apply_one("tok_b", update(90)),
    );
    let (won, lost) = match (&ra, &rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (*w, l),
        _ => panic!("exactly one must win: A {ra:?}, B {rb:?}"),
    };
    assert_eq!(won.0, Applied::Updated);
    assert!(
        matches!(
            lost,
            ControlError::Stale {
                current,
                expected: 2,
                ..
            } if *current == won.1
        ),
        "{lost:?}"
    );
    let winner_hb = if ra.is_ok() { 30 } else { 90 };
    // The loser's batch was refused, yet it is a batch: both nodes apply it (and refuse it).
    let last = a.sequence().max(b.sequence());
    wait_revision(&a, won.1, Duration::from_secs(5)).await;
    wait_revision(&b, won.1, Duration::from_secs(5)).await;
    for n in [&a, &b] {
        let until = Instant::now() + Duration::from_secs(5);
        while n.sequence() < last && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_identical(&a, &b);
    assert_eq!(
        a.live().load().device(&key).unwrap().heartbeat_secs,
        Some(winner_hb)
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_sequence_before_it_serves() {
    let c = Cluster::start3();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&c, "a", da.path()).await;
    let b = start(&c, "b", db.path()).await;
    a.control
        .apply_one("tok_a", device("d1", 60))
        .await
        .unwrap();
    wait_revision(&b, 2, Duration::from_secs(5)).await;
    b.stop().await;

    // While B is down: a device added, one changed, one removed.
    let changes = vec![
        device("d2", 60),
        device("d3", 60),
        Change::DeleteDevice {
            tenant: "t".into(),
            id: "d1".into(),
        }
        .into(),
    ];
    a.control.apply("tok_a", changes).await.unwrap();
    a.control
        .apply_one("tok_a", device("d2", 120))
        .await
        .unwrap();
    assert_eq!(a.sequence(), 4);

    // B's store still says 2; started again it applies 3 and 4 before the caller gets it.
    let b = start(&c, "b", db.path()).await;
    assert_eq!(b.sequence(), 4);
    let dir = b.live().load();
    assert_eq!(dir.revision, 4);
    assert!(dir.device(&vaka_core::DeviceKey::new("t", "d1")).is_none());
    let d2 = dir.device(&vaka_core::DeviceKey::new("t", "d2")).unwrap();
    assert_eq!(d2.heartbeat_secs, Some(120));
    drop(dir);
    assert_identical(&a, &b);

    // And it goes on following.
    a.control
        .apply_one("tok_a", device("d4", 60))
        .await
        .unwrap();
    wait_revision(&b, 5, Duration::from_secs(5)).await;
    assert_identical(&a, &b);

    // An import larger than one NATS message (1 MiB), made while B is down: appended as
    // several batches in order, every change answered, and B catches up on all of them.
    b.stop().await;
    let many: Vec<Request> = (0..1_500).map(|i| fenced(&format!("m{i}"))).collect();
    let out = a.control.apply("tok_a", many).await.unwrap();
    assert_eq!(out.results.len(), 1_500);
    assert!(out
        .results
        .iter()
        .all(|r| matches!(r, Ok(Applied::Created))));
    assert_eq!(out.revision, a.sequence());
    assert!(a.sequence() > 6, "one batch of {} bytes?", a.sequence());
    let b = start(&c, "b", db.path()).await;
    assert_eq!(b.live().load().records.devices.len(), 1_503);
    assert_identical(&a, &b);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_together_bootstrap_the_directory_once() {
    let c = Cluster::start3();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Connected first (the servers' checks take their own time), then started at once: each
    // finds the log empty and appends its bootstrap; the expected last sequence lets one in.
    let mut opened = Vec::new();
    for (d, name) in dirs.iter().zip(["a", "b", "c"]) {
        opened.push(open_node(&c, name, d.path()).await);
    }
    let (o3, o2, o1) = (
        opened.pop().unwrap(),
        opened.pop().unwrap(),
        opened.pop().unwrap(),
    );
    let started = tokio::join!(start_opened(o1), start_opened(o2), start_opened(o3));
    let up = |r: Result<Node, (String, Store)>| r.unwrap_or_else(|(e, _)| panic!("{e}"));
    let (a, b, n3) = (up(started.0), up(started.1), up(started.2));
    let log = open_log(&c, "check").await;
    let bounds = log.bounds().await.unwrap();
    assert_eq!(bounds.last, 1, "one bootstrap batch in {DIRECTORY_STREAM}");
    for n in [&a, &b, &n3] {
        assert_eq!(n.sequence(), 1);
        let audit = n.audit();
        assert_eq!(audit.len(), 2, "{audit:?}");
        assert!(audit
            .iter()
            .all(|e| e.actor == "bootstrap" && e.revision == 1));
    }
    assert_identical(&a, &b);
    assert_identical(&a, &n3);
    for n in [a, b, n3] {
        n.stop().await;
    }
}

/// A configuration file too large for one NATS message (1,500 devices of about 1 KB: 1.6 MB,
/// over the servers' 1 MiB `max_payload`) bootstraps as several batches, in order, by one of two
/// nodes starting together; both serve every device. Before, the start was refused ("max
/// payload size exceeded").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_too_large_for_one_message_bootstraps_in_parts() {
    let c = Cluster::start3();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut file = bootstrap();
    file.extend((0..1_500).map(|i| fenced(&format!("f{i}")).change));
    let a = open_node(&c, "a", dirs[0].path()).await;
    let b = open_node(&c, "b", dirs[1].path()).await;
    let started = tokio::join!(
        start_opened_with(a, file.clone()),
        start_opened_with(b, file)
    );
    let up = |r: Result<Node, (String, Store)>| r.unwrap_or_else(|(e, _)| panic!("{e}"));
    let (a, b) = (up(started.0), up(started.1));
    let bounds = open_log(&c, "check").await.bounds().await.unwrap();
    assert!(
        bounds.last >= 4,
        "1.6 MB in parts of at most 512 KiB: {bounds:?}"
    );
    for n in [&a, &b] {
        assert_eq!(n.sequence(), bounds.last);
        assert_eq!(n.live().load().devices.len(), 1_500);
        let audit = n.audit();
        assert!(audit.iter().all(|e| e.actor == "bootstrap"), "{audit:?}");
    }
    assert_identical(&a, &b);
    for n in [a, b] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_gone_from_the_log_a_node_past_its_end_or_a_log_written_again_is_reported_and_counted(
) {
    let r = recorder();
    let c = Cluster::start3();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&c, "a", da.path()).await;
    let b = start(&c, "b", db.path()).await;
    b.stop().await;
    a.control
        .apply_one("tok_a", device("d1", 60))
        .await
        .unwrap();
    a.control
        .apply_one("tok_a", device("d2", 60))
        .await
        .unwrap();

    // Batch 2 deleted (a server losing a write): B, at 1, must not skip to 3.
    let log = open_log(&c, "check").await;
    assert!(log.stream().delete_message(2).await.unwrap());
    let gaps = r.get("vaka_cluster_directory_lost_total{kind=gap}");
    let e = match try_start(&c, "b", db.path()).await {
        Ok(_) => panic!("B started over a gap in the directory log"),
        Err((e, store)) => {
            assert_eq!(
                store.directory_log_sequence().unwrap(),
                1,
                "nothing applied"
            );
            store.close().unwrap();
            e
        }
    };
    assert!(e.contains("lacks batch 2"), "{e}");
    assert_eq!(
        r.get("vaka_cluster_directory_lost_total{kind=gap}"),
        gaps + 1
    );

    // The stream lost whole and made again, empty: A (at 3) is past its end. Its follower
    // reports it and stops; A keeps its directory and refuses changes, naming the loss.
    let ahead = r.get("vaka_cluster_directory_lost_total{kind=ahead}");
    let js = c.js().await;
    js.delete_stream(DIRECTORY_STREAM).await.unwrap();
    eventually(SETTLE, "VAKA_DIR made again", || {
        DirectoryLog::open(js.clone())
    })
    .await;
    let until = Instant::now() + Duration::from_secs(10);
    while r.get("vaka_cluster_directory_lost_total{kind=ahead}") == ahead {
        assert!(
            Instant::now() < until,
            "A's follower did not report the loss"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = a
        .control
        .apply_one("tok_a", device("d3", 60))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stream ends at 0"), "{e}");
    assert_eq!(a.live().load().revision, 3, "the last good directory kept");
    a.stop().await;

    // Started again, A refuses to start on it.
    let ahead = r.get("vaka_cluster_directory_lost_total{kind=ahead}");
    match try_start(&c, "a", da.path()).await {
        Ok(_) => panic!("A started past the end of the directory log"),
        Err((e, store)) => {
            assert!(e.contains("up to batch 3"), "{e}");
            store.close().unwrap();
        }
    }
    assert_eq!(
        r.get("vaka_cluster_directory_lost_total{kind=ahead}"),
        ahead + 1
    );

    // A new node bootstraps the new stream and writes past A's sequence: A's batch 3 is not
    // the stream's batch 3, and A must not go on from 4 over a history it never had.
    let dn = tempfile::tempdir().unwrap();
    let n = start(&c, "n", dn.path()).await;
    for d in ["x1", "x2", "x3"] {
        n.control.apply_one("tok_n", device(d, 60)).await.unwrap();
    }
    assert_eq!(n.sequence(), 4);
    let differs = r.get("vaka_cluster_directory_lost_total{kind=differs}");
    match try_start(&c, "a", da.path()).await {
        Ok(_) => panic!("A started on a stream that is not the history it applied"),
        Err((e, store)) => {
            assert!(e.contains("sequence 3, is different"), "{e}");
            store.close().unwrap();
        }
    }
    assert_eq!(
        r.get("vaka_cluster_directory_lost_total{kind=differs}"),
        differs + 1
    );
    n.stop().await;
}

/// An erasure's run (a scan and a compaction: seconds on a large store) is off the follower:
/// while it runs on both nodes, a device added on B is in both directories, and the erasure
/// answers once it has run. Before, each node's follower ran it in line, so every directory
/// change after it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The lock held across awaits is the point: it stands in for a long erasure.
#[allow(clippy::await_holding_lock)]
async fn a_long_erasure_holds_up_no_directory_change_after_it() {
    let c = Cluster::start3();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&c, "a", da.path()).await;
    let b = start(&c, "b", db.path()).await;
    a.control
        .apply_one("tok_a", device("d1", 60))
        .await
        .unwrap();
    wait_revision(&b, 2, Duration::from_secs(5)).await;

    // Actions on stored data held, as a long erasure would hold them.
    let held = vaka_admin::data::hold_actions();
    let erasure = {
        let control = a.control.clone();
        tokio::spawn(async move {
            let delete = Change::DeleteDevice {
                tenant: "t".into(),
                id: "d1".into(),
            };
            let erase = vaka_admin::data::DataAction::Erase {
                tenant: "t".into(),
                device: "d1".into(),
                removed_from_directory: true,
            };
            control.act("tok_a", vec![delete.into()], vec![erase]).await
        })
    };
    wait_revision(&b, 3, Duration::from_secs(5)).await;
    wait_revision(&a, 3, Duration::from_secs(5)).await;
    assert!(!erasure.is_finished(), "the erasure answered before it ran");
    // Past the retry of waiting actions (5 s), which must not take the writer lock meanwhile.
    tokio::time::sleep(vaka_admin::data::RETRY + Duration::from_secs(1)).await;
    let added = tokio::time::timeout(
        Duration::from_secs(5),
        b.control.apply_one("tok_b", device("d2", 60)),
    )
    .await
    .expect("a directory change waited for an erasure's run")
    .unwrap();
    assert_eq!(added.1, 4);
    wait_revision(&a, 4, Duration::from_secs(5)).await;
    assert_eq!(a.store.pending().unwrap().len(), 1);
    assert_eq!(b.store.pending().unwrap().len(), 1);

    drop(held);
    let out = tokio::time::timeout(Duration::from_secs(10), erasure)
        .await
        .expect("the erasure answers once it has run")
        .unwrap()
        .unwrap();
    match out.done.as_slice() {
        [vaka_admin::data::DataDone::Erased(e)] => assert!(e.removed_from_directory),
        other => panic!("the erasure on A: {other:?}"),
    }
    eventually_empty(&b).await;
    assert!(a.store.pending().unwrap().is_empty());
    assert_identical(&a, &b);
    a.stop().await;
    b.stop().await;
}

/// Waits until `node` has no action on stored data pending.
async fn eventually_empty(node: &Node) {
    let until = Instant::now() + Duration::from_secs(10);
    while !node.store.pending().unwrap().is_empty() {
        assert!(Instant::now() < until, "actions still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
