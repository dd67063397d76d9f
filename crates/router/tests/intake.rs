//! A cluster node's shard and its input log (`IntakeLog`): a device is answered only once the
//! log has acknowledged its event and the store holds it with the log's record; a failed append
//! fails the batch (nothing stored, the device may resend), and the batch built after it too;
//! and a later batch whose append is acknowledged first still reaches the store after the batch
//! built before it.
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::BoxFuture;
use support::*;
use tokio::sync::mpsc;
use vaka_core::idempotency::{GivenAnswer, IdemKey};
use vaka_core::{AlarmId, DeviceKey, Event, EventId, Lane};
use vaka_router::{ChangedAlarm, Clock, Intake, IntakeLog, Reply, RouterConfig, SubmitError};
use vaka_store::{Backend, Cf, CommitError, MemBackend, WriteSet};

type Answer = oneshot::Sender<Result<WriteSet, CommitError>>;
/// An append: the events, the alarms' records, and where the test answers it.
type Call = (Vec<Event>, Vec<ChangedAlarm>, Answer);

/// An input log whose every append waits for the test to answer it.
struct HeldLog {
    calls: mpsc::UnboundedSender<Call>,
    told: mpsc::UnboundedSender<Vec<GivenAnswer>>,
}

impl IntakeLog for HeldLog {
    fn append(
        &self,
        _: Lane,
        events: Vec<Event>,
        alarms: Vec<ChangedAlarm>,
    ) -> BoxFuture<'static, Result<WriteSet, CommitError>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.calls.send((events, alarms, tx));
        Box::pin(async move { rx.await.unwrap_or(Err(CommitError::Closed)) })
    }

    fn answered(&self, answers: Vec<GivenAnswer>) {
        let _ = self.told.send(answers);
    }
}

struct Node {
    mem: Arc<MemBackend>,
    store: vaka_store::Store,
    router: Arc<vaka_router::Router>,
    calls: tokio::sync::Mutex<mpsc::UnboundedReceiver<Call>>,
    /// The answers the shard told the other nodes.
    told: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<GivenAnswer>>>,
}

fn node() -> Node {
    node_lingering(Duration::ZERO)
}

/// A node whose shard takes a telemetry batch no sooner than `linger` after the last.
fn node_lingering(linger: Duration) -> Node {
    node_with(linger, RouterConfig::default().max_batch)
}

fn node_with(linger: Duration, max_batch: usize) -> Node {
    let (tx, rx) = mpsc::unbounded_channel();
    let (told_tx, told) = mpsc::unbounded_channel();
    let mem = Arc::new(MemBackend::new());
    let rc = RouterConfig {
        shards: 1,
        max_inflight: 4,
        intake: Some(Intake(Arc::new(HeldLog {
            calls: tx,
            told: told_tx,
        }))),
        telemetry_linger: linger,
        max_batch,
        ..RouterConfig::default()
    };
    let (store, router) = start_router(mem.clone(), directory(2), rc, Clock::new());
    Node {
        mem,
        store,
        router,
        calls: tokio::sync::Mutex::new(rx),
        told: tokio::sync::Mutex::new(told),
    }
}

impl Node {
    /// An alarm of `device` submitted in a task of its own: its reply, when it comes.
    fn submit(
        &self,
        device: &'static str,
        key: &'static str,
    ) -> tokio::task::JoinHandle<Result<Reply, SubmitError>> {
        let r = self.router.clone();
        tokio::spawn(async move { r.submit(alarm(device, key)).await })
    }

    /// A telemetry reading of `device` submitted in a task of its own.
    fn submit_reading(
        &self,
        device: &'static str,
        n: u64,
    ) -> tokio::task::JoinHandle<Result<Reply, SubmitError>> {
        let r = self.router.clone();
        tokio::spawn(async move { r.submit(telemetry(device, n)).await })
    }

    async fn next_append(&self) -> (Vec<Event>, Answer) {
        let (events, _, answer) = self.next_call().await;
        (events, answer)
    }

    async fn next_call(&self) -> Call {
        let mut rx = self.calls.lock().await;
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an append within 5 s")
            .expect("the log is alive")
    }

    fn events_stored(&self) -> usize {
        let mut n = 0;
        self.mem
            .scan(Cf::Events, b"", &mut |_, _| {
                n += 1;
                true
            })
            .unwrap();
        n
    }
}

/// Answered as a resend, with `answer`'s event and alarm.
fn assert_answered_with(r: Reply, answer: vaka_core::idempotency::Answer) {
    let Reply::Accepted {
        event,
        alarm,
        duplicate,
        ..
    } = r
    else {
        panic!("{r:?}");
    };
    assert_eq!(
        (event, alarm, duplicate),
        (answer.event, answer.alarm, true)
    );
}

/// Accepted as a new event, not as a resend of one already taken.
fn assert_taken_afresh(r: &Reply) {
    assert!(
        matches!(
            r,
            Reply::Accepted {
                duplicate: false,
                ..
            }
        ),
        "{r:?}"
    );
}

/// What the log answers for input `seq` of partition 7: the node's record of it.
fn record(seq: u64) -> WriteSet {
    let mut w = WriteSet::new();
    w.put_input(7, seq, [seq as u8; 32], 0);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_answered_only_once_the_log_and_the_store_hold_it() {
    let n = node();
    let reply = n.submit("d0", "r1");
    let (events, alarms, answer) = n.next_call().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key, "r1");
    // The alarm it opened goes with it, for the other nodes' replicas.
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].alarm.reference, "r1");
    assert!(alarms[0].alarm.is_open());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reply.is_finished(), "answered before the log held it");
    assert_eq!(n.events_stored(), 0, "stored before the log held it");
    answer.send(Ok(record(1))).unwrap();
    let r = reply.await.unwrap().unwrap();
    assert_taken_afresh(&r);
    assert_eq!(n.events_stored(), 1);
    assert!(
        n.store.has_input(7, 1).unwrap(),
        "the record is written with the batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_fails_the_batch_and_a_resend_is_taken_afresh() {
    let n = node();
    let first = n.submit("d0", "r1");
    let (_, answer) = n.next_append().await;
    answer
        .send(Err(CommitError::Write("no stream found".into())))
        .unwrap();
    let r = first.await.unwrap();
    assert!(matches!(r, Err(SubmitError::Store(_))), "{r:?}");
    assert_eq!(n.events_stored(), 0);

    // The device resends: not a duplicate of something never stored.
    let again = n.submit("d0", "r1");
    let (_, answer) = n.next_append().await;
    answer.send(Ok(record(2))).unwrap();
    let r = again.await.unwrap().unwrap();
    assert_taken_afresh(&r);
    assert_eq!(n.events_stored(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_batch_acknowledged_first_waits_for_the_one_built_before_it() {
    let n = node();
    let first = n.submit("d0", "r1");
    let (_, answer_first) = n.next_append().await;
    let second = n.submit("d1", "r2");
    let (events, answer_second) = n.next_append().await;
    assert_eq!(events[0].key, "r2", "two batches, two appends");

    answer_second.send(Ok(record(2))).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n.events_stored(), 0, "the later batch was stored first");
    assert!(!second.is_finished());

    answer_first.send(Ok(record(1))).unwrap();
    for r in [first.await, second.await] {
        let r = r.unwrap().unwrap();
        assert!(matches!(r, Reply::Accepted { .. }), "{r:?}");
    }
    assert_eq!(n.events_stored(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_built_after_one_whose_append_failed_fails_with_it() {
    let n = node();
    // The second alarm is of the same device: built on the first's open alarm.
    let first = n.submit("d0", "r1");
    let (_, answer_first) = n.next_append().await;
    let second = n.submit("d0", "r2");
    let (_, answer_second) = n.next_append().await;
    answer_second.send(Ok(record(2))).unwrap();
    answer_first
        .send(Err(CommitError::Write("no stream found".into())))
        .unwrap();
    for r in [first.await, second.await] {
        let r = r.unwrap();
        assert!(matches!(r, Err(SubmitError::Store(_))), "{r:?}");
    }
    assert_eq!(
        n.events_stored(),
        0,
        "the second batch was stored without the first"
    );

    // Afterwards a batch starts afresh.
    let third = n.submit("d0", "r3");
    let (_, answer) = n.next_append().await;
    answer.send(Ok(record(3))).unwrap();
    assert_taken_afresh(&third.await.unwrap().unwrap());
    assert_eq!(n.events_stored(), 1);
}

/// With a telemetry linger (a cluster node's `telemetry_linger_ms`), readings that come while
/// it runs wait for it and go to the log as one batch, so the log takes fewer, larger inputs;
/// an alarm that comes meanwhile is appended at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_waits_out_the_linger_in_one_batch_and_an_alarm_does_not_wait() {
    let linger = Duration::from_millis(300);
    let n = node_lingering(linger);
    let first = n.submit_reading("d0", 1);
    let (events, answer) = n.next_append().await;
    let first_taken = std::time::Instant::now();
    assert_eq!(events.len(), 1, "the first reading goes at once");
    answer.send(Ok(record(1))).unwrap();
    assert_taken_afresh(&first.await.unwrap().unwrap());

    let readings: Vec<_> = (2..=4).map(|i| n.submit_reading("d1", i)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let alarm = n.submit("d0", "r1");
    let (events, answer) = n.next_append().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key, "r1", "the alarm first, during the linger");
    assert!(
        first_taken.elapsed() < linger,
        "the alarm waited for the linger"
    );
    answer.send(Ok(record(2))).unwrap();
    assert_taken_afresh(&alarm.await.unwrap().unwrap());

    let (events, answer) = n.next_append().await;
    assert!(
        first_taken.elapsed() >= linger - Duration::from_millis(20),
        "the next telemetry batch came {:?} after the first",
        first_taken.elapsed()
    );
    let mut keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["tm2", "tm3", "tm4"],
        "one batch of what came meanwhile"
    );
    answer.send(Ok(record(3))).unwrap();
    for r in readings {
        assert_taken_afresh(&r.await.unwrap().unwrap());
    }
    assert_eq!(n.events_stored(), 5);
}

/// A whole batch waiting is taken without waiting out the linger, so the linger never caps the
/// rate (it would at shards x max_batch per linger).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_telemetry_batch_waiting_does_not_wait_for_the_linger() {
    let n = node_with(Duration::from_secs(30), 4);
    let first = n.submit_reading("d0", 1);
    let (_, answer) = n.next_append().await;
    answer.send(Ok(record(1))).unwrap();
    first.await.unwrap().unwrap();
    let taken = std::time::Instant::now();
    let readings: Vec<_> = (2..=5).map(|i| n.submit_reading("d1", i)).collect();
    let (events, answer) = n.next_append().await;
    assert_eq!(events.len(), 4);
    assert!(
        taken.elapsed() < Duration::from_secs(5),
        "{:?}",
        taken.elapsed()
    );
    answer.send(Ok(record(2))).unwrap();
    for r in readings {
        assert_taken_afresh(&r.await.unwrap().unwrap());
    }
}

/// A batch's answers to devices' alarm-lane messages are told to the other nodes once it is
/// stored, never before and never for a batch that failed: another node would answer a resend
/// from an alarm nobody holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_answers_are_told_once_it_is_stored_and_never_when_it_failed() {
    let n = node();
    let failed = n.submit("d0", "r1");
    let (_, answer) = n.next_append().await;
    answer
        .send(Err(CommitError::Write("no stream found".into())))
        .unwrap();
    assert!(failed.await.unwrap().is_err());

    let stored = n.submit("d0", "r2");
    let (_, answer) = n.next_append().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        n.told.lock().await.try_recv().is_err(),
        "told before it was stored"
    );
    answer.send(Ok(record(2))).unwrap();
    let Reply::Accepted { event, alarm, .. } = stored.await.unwrap().unwrap() else {
        panic!("not accepted");
    };
    let told = tokio::time::timeout(Duration::from_secs(5), n.told.lock().await.recv())
        .await
        .expect("told within 5 s")
        .unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].key.key, "r2", "r1's batch failed: {told:?}");
    assert_eq!((told[0].answer.event, told[0].answer.alarm), (event, alarm));
    assert!(alarm.is_some());
}

/// Another node's answer to a device's message: the device's resend here is answered with that
/// node's event and alarm, as a duplicate, and opens no alarm of this node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_of_a_message_another_node_answered_gets_that_answer_and_opens_nothing() {
    let n = node();
    let elsewhere = vaka_core::idempotency::Answer {
        event: EventId(5 << 43),
        alarm: Some(AlarmId(5 << 43)),
    };
    let key = IdemKey {
        device: DeviceKey::new("t", "d0"),
        key: "r1".into(),
    };
    let now = vaka_router::Clock::new().now_ms();
    n.router
        .answered_elsewhere(vec![(
            GivenAnswer {
                key,
                answer: elsewhere,
            },
            now,
        )])
        .await;
    assert_answered_with(n.submit("d0", "r1").await.unwrap().unwrap(), elsewhere);
    // Another message of the device is taken afresh: only that one was answered elsewhere.
    let other = n.submit("d0", "r2");
    let (events, alarms, answer) = n.next_call().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].key, "r2", "r1 was appended again");
    assert_eq!(alarms.len(), 1);
    answer.send(Ok(record(1))).unwrap();
    assert_taken_afresh(&other.await.unwrap().unwrap());
}

/// Another node's answer to a message whose own answer here is still in flight waits for this
/// node's batch: the append refuses the message (the stream kept that node's copy first), and
/// the device's resend here is answered with that node's event and alarm, as a duplicate.
/// Before, the other's answer was counted as a second alarm and dropped, and the resend, with
/// the refused batch forgotten, opened an alarm here afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_answer_to_a_message_in_flight_here_is_kept_when_the_batch_is_refused() {
    let n = node();
    let elsewhere = vaka_core::idempotency::Answer {
        event: EventId(5 << 43),
        alarm: Some(AlarmId(5 << 43)),
    };
    let first = n.submit("d0", "r1");
    let (_, answer) = n.next_append().await;
    let given = GivenAnswer {
        key: IdemKey {
            device: DeviceKey::new("t", "d0"),
            key: "r1".into(),
        },
        answer: elsewhere,
    };
    let now = vaka_router::Clock::new().now_ms();
    n.router.answered_elsewhere(vec![(given, now)]).await;
    // The shard takes the other's answer before this node's append is answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    answer
        .send(Err(CommitError::Write(
            "stored first by another node".into(),
        )))
        .unwrap();
    let r = first.await.unwrap();
    assert!(matches!(r, Err(SubmitError::Store(_))), "{r:?}");
    // (Taken afresh, it would wait for an append this test never answers.)
    let r = tokio::time::timeout(Duration::from_secs(5), n.submit("d0", "r1"))
        .await
        .expect("answered without an append")
        .unwrap()
        .unwrap();
    assert_answered_with(r, elsewhere);
    assert_eq!(n.events_stored(), 0);
    // Stored with the next batch, so a restart keeps it.
    let other = n.submit("d1", "r2");
    let (_, answer) = n.next_append().await;
    answer.send(Ok(record(1))).unwrap();
    assert_taken_afresh(&other.await.unwrap().unwrap());
    let r1 = vaka_store::keys::idem_key(&IdemKey {
        device: DeviceKey::new("t", "d0"),
        key: "r1".into(),
    });
    let mut stored = false;
    n.mem
        .scan(Cf::Idem, b"", &mut |k, _| {
            stored |= k == r1.as_slice();
            true
        })
        .unwrap();
    assert!(stored, "the other node's answer to r1 stored");
}
