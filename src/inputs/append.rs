//! The shards' appends ([`vaka_router::IntakeLog`]): an alarm-lane event is one input keyed by
//! its device and message (a resend, to this node or another, within the stream's duplicate
//! window is stored once); a telemetry batch is one input per partition; the alarms a batch
//! changed go as one alarm-records input per partition, after its events, for the other nodes'
//! replicas (on the alarm lane, once the events are acknowledged: an alarm message whose copy
//! in the stream is another node's is refused, and must leave no record). The
//! acknowledgements become this node's record of those inputs, written with the batch. Once
//! a batch is stored, the answers it gave to devices' alarm-lane messages go as one answers
//! input per partition (`vaka_cluster::answers`), recorded by the follower.

use futures::future::{join_all, BoxFuture};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaka_cluster::alarm_records::{self, AlarmRecord, AlarmRecords};
use vaka_cluster::reconcile::Digest;
use vaka_cluster::{answers, events, InputLog, LogError, Partition, PendingAppend};
use vaka_core::idempotency::GivenAnswer;
use vaka_core::{Event, Lane};
use vaka_router::ChangedAlarm;
use vaka_store::{CommitError, WriteSet};

pub struct Appender {
    log: InputLog,
    partitions: u32,
    /// This node's id range: the holder of the alarms it appends.
    range: u64,
    first_elsewhere: Arc<Mutex<FirstElsewhere>>,
}

impl Appender {
    pub fn new(log: InputLog, partitions: u32, range: u64) -> Appender {
        Appender {
            log,
            partitions,
            range,
            first_elsewhere: Arc::default(),
        }
    }
}

/// How long a node answers busy to an alarm message whose copy the stream kept is not the one
/// it sent (another node stored that message first: the device sent it to both receivers).
/// The other node tells its answer once its batch is stored, moments later, and the device's
/// resend here is then answered with that node's alarm: one alarm, not two. Past this, the
/// message is taken here after all: the other node's batch may have failed after its append,
/// and an alarm is never refused for long.
const FIRST_ELSEWHERE_REFUSED_FOR: Duration = Duration::from_secs(5);

/// The alarm messages refused because another copy was stored first, by key: when first.
#[derive(Default)]
struct FirstElsewhere {
    since: HashMap<String, Instant>,
}

impl FirstElsewhere {
    /// Whether `key`, stored first elsewhere, is refused `now` (else it is taken after all).
    fn refuse(&mut self, key: &str, now: Instant) -> bool {
        // A refusal long past is of no use any more (the window of a resend is far shorter).
        self.since
            .retain(|_, t| now.duration_since(*t) < FIRST_ELSEWHERE_REFUSED_FOR * 12);
        let since = *self.since.entry(key.to_owned()).or_insert(now);
        now.duration_since(since) < FIRST_ELSEWHERE_REFUSED_FOR
    }
}

/// Fails the batch if an alarm message in it was stored first by another node (see
/// [`FIRST_ELSEWHERE_REFUSED_FOR`]): nothing of it is stored here, the device is told busy,
/// and no alarm of this node's is opened or offered for it.
fn refuse_first_elsewhere(
    first_elsewhere: &Mutex<FirstElsewhere>,
    keys: &[String],
) -> Result<(), CommitError> {
    let now = Instant::now();
    let mut refused = None;
    let mut first_elsewhere = first_elsewhere.lock().unwrap();
    for key in keys {
        if first_elsewhere.refuse(key, now) {
            refused = Some(key);
        } else {
            tracing::warn!(key = %key, "cluster: taking an alarm message whose first stored copy is not this node's, refused for {FIRST_ELSEWHERE_REFUSED_FOR:?} (no other node told its answer)");
            metrics::counter!("vaka_cluster_alarms_taken_though_stored_elsewhere_total")
                .increment(1);
        }
    }
    match refused {
        None => Ok(()),
        Some(key) => {
            tracing::info!(key = %key, "cluster: an alarm message another node stored first; answered busy, so its resend gets that node's answer");
            metrics::counter!("vaka_cluster_alarms_refused_stored_elsewhere_total").increment(1);
            Err(CommitError::Write(format!(
                "alarm message {key} was stored first by another node"
            )))
        }
    }
}

impl vaka_router::IntakeLog for Appender {
    fn append(
        &self,
        lane: Lane,
        events: Vec<Event>,
        alarms: Vec<ChangedAlarm>,
    ) -> BoxFuture<'static, Result<WriteSet, CommitError>> {
        let (log, partitions, range) = (self.log.clone(), self.partitions, self.range);
        let first_elsewhere = self.first_elsewhere.clone();
        Box::pin(async move {
            let lane_label = match lane {
                Lane::Alarm => "alarm",
                Lane::Telemetry => "telemetry",
            };
            let failed = |e: LogError| {
                tracing::warn!(error = %e, lane = lane_label, "cluster: append to VAKA_IN failed; the batch is answered busy");
                metrics::counter!("vaka_cluster_append_failures_total", "lane" => lane_label)
                    .increment(1);
                CommitError::Write(e.to_string())
            };
            let mut first_in = inputs(partitions, lane, &events);
            let mut then_in = records(partitions, range, alarms);
            let n = (first_in.len() + then_in.len()) as u64;
            // On the alarm lane the records wait for the events' answers: an alarm refused
            // below must leave no record of itself on the other nodes. Otherwise all go at once.
            if lane == Lane::Telemetry || first_in.is_empty() {
                first_in.append(&mut then_in);
            }
            let mut first = append(&log, first_in).await.map_err(failed)?;
            if lane == Lane::Alarm {
                refuse_first_elsewhere(&first_elsewhere, &first.kept_elsewhere)?;
            }
            if !then_in.is_empty() {
                let rest = append(&log, then_in).await.map_err(failed)?;
                first.record.extend(rest.record);
            }
            let record = first.record;
            metrics::counter!("vaka_cluster_inputs_appended_total", "lane" => lane_label)
                .increment(n);
            Ok(record)
        })
    }

    fn answered(&self, given: Vec<GivenAnswer>) {
        let (log, partitions) = (self.log.clone(), self.partitions);
        tokio::spawn(async move {
            let inputs: Vec<ToAppend> = group_by_partition(partitions, given, |g| &g.key.device)
                .into_iter()
                .map(|(partition, g)| {
                    ToAppend::keyed_by_digest(partition, answers::encode(&g), answers::msg_id)
                })
                .collect();
            let n = inputs.len() as u64;
            match append(&log, inputs).await {
                Ok(_) => {
                    metrics::counter!("vaka_cluster_inputs_appended_total", "lane" => "answers")
                        .increment(n)
                }
                // The devices have their answers; a resend to another node opens a second alarm.
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: telling the other nodes a batch's answers failed; a device's resend to one of them opens an alarm of its own");
                    metrics::counter!("vaka_cluster_append_failures_total", "lane" => "answers")
                        .increment(1);
                }
            }
        });
    }
}

/// One input to append: its partition, key(s) and bytes.
struct ToAppend {
    partition: Partition,
    /// An alarm's key, or a telemetry batch's first event's.
    key: String,
    /// A telemetry batch's last event's key.
    last: Option<String>,
    bytes: bytes::Bytes,
}

impl ToAppend {
    /// An input whose `Nats-Msg-Id` is `msg_id` of its bytes (a digest), so one sent again
    /// after a failed append is stored once.
    fn keyed_by_digest(
        partition: Partition,
        bytes: bytes::Bytes,
        msg_id: fn(&[u8]) -> String,
    ) -> ToAppend {
        ToAppend {
            partition,
            key: msg_id(&bytes),
            last: None,
            bytes,
        }
    }
}

/// The inputs a batch's events make: one per alarm-lane event; telemetry, one per partition
/// (in the order the partitions first appear, each keeping its events' order).
fn inputs(partitions: u32, lane: Lane, events: &[Event]) -> Vec<ToAppend> {
    match lane {
        Lane::Alarm => events
            .iter()
            .map(|e| ToAppend {
                partition: Partition::of(&e.device, partitions),
                key: events::msg_id(e),
                last: None,
                bytes: events::encode(std::slice::from_ref(e)),
            })
            .collect(),
        Lane::Telemetry => group_by_partition(partitions, events.iter().cloned(), |e| &e.device)
            .into_iter()
            .map(|(partition, g)| ToAppend {
                partition,
                key: events::msg_id(&g[0]),
                last: Some(events::msg_id(&g[g.len() - 1])),
                bytes: events::encode(&g),
            })
            .collect(),
    }
}

/// One alarm-records input per partition the changed alarms' devices fall in (in the order the
/// partitions first appear).
fn records(partitions: u32, holder_range: u64, alarms: Vec<ChangedAlarm>) -> Vec<ToAppend> {
    let groups = group_by_partition(partitions, alarms, |c| &c.alarm.device);
    groups
        .into_iter()
        .map(|(partition, changed)| {
            let records = changed
                .into_iter()
                .map(|c| AlarmRecord {
                    version: c.version,
                    alarm: c.alarm,
                })
                .collect();
            let bytes = alarm_records::encode(&AlarmRecords {
                holder_range,
                records,
            });
            ToAppend::keyed_by_digest(partition, bytes, alarm_records::msg_id)
        })
        .collect()
}

/// `items` by the partition of their device, in the order the partitions first appear, each
/// group in the items' order.
fn group_by_partition<T>(
    partitions: u32,
    items: impl IntoIterator<Item = T>,
    device: impl Fn(&T) -> &vaka_core::DeviceKey,
) -> Vec<(Partition, Vec<T>)> {
    let mut groups: Vec<(Partition, Vec<T>)> = Vec::new();
    for item in items {
        let p = Partition::of(device(&item), partitions);
        match groups.iter_mut().position(|(q, _)| *q == p) {
            Some(i) => groups[i].1.push(item),
            None => groups.push((p, vec![item])),
        }
    }
    groups
}

/// How long an input whose append failed is sent again (with the same key, so a copy that was
/// stored after all is kept once) before its batch fails: a stream electing a leader refuses
/// appends ("no stream found for given subject") for 2-7 s on loopback, and an alarm held
/// through the election is taken instead of bounced (a SIP transaction waits 32 s).
const RETRY_FOR: Duration = Duration::from_secs(8);

async fn send(log: &InputLog, i: &ToAppend) -> Result<PendingAppend, LogError> {
    match &i.last {
        None => log.send_alarm(i.partition, &i.key, i.bytes.clone()).await,
        Some(last) => {
            log.send_batch(i.partition, &i.key, last, i.bytes.clone())
                .await
        }
    }
}

/// What the stream answered to a batch's inputs.
struct Appended {
    /// This node's record of them, written with the batch.
    record: WriteSet,
    /// The keys of those the stream already held another node's copy of.
    kept_elsewhere: Vec<String>,
}

/// Sends every input in order, then awaits their acknowledgements together; one that fails is
/// sent again until [`RETRY_FOR`] has passed.
async fn append(log: &InputLog, inputs: Vec<ToAppend>) -> Result<Appended, LogError> {
    let until = tokio::time::Instant::now() + RETRY_FOR;
    let mut sent = Vec::with_capacity(inputs.len());
    for i in &inputs {
        sent.push(send(log, i).await);
    }
    let acks = join_all(sent.into_iter().zip(&inputs).map(|(first, i)| async move {
        let mut attempt = first;
        loop {
            let result = match attempt {
                Ok(pending) => pending.acknowledged().await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if tokio::time::Instant::now() < until => {
                    tracing::debug!(error = %e, "cluster: append failed; sending it again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    attempt = send(log, i).await;
                }
                r => return (i, r),
            }
        }
    }))
    .await;
    let mut appended = Appended {
        record: WriteSet::new(),
        kept_elsewhere: Vec::new(),
    };
    for (i, ack) in acks {
        let ack = ack?;
        // A duplicate (a resend, or the same message sent to another node first): the stream
        // keeps the first copy, so that copy is what this node records holding.
        let first = match ack.duplicate {
            false => None,
            true => log.get(ack.sequence).await?,
        };
        let kept = first
            .as_ref()
            .map_or_else(|| Digest::of(&i.bytes), |f| Digest::of(&f.bytes));
        if first.is_some_and(|f| f.node.is_some() && f.node.as_deref() != log.node()) {
            appended.kept_elsewhere.push(i.key.clone());
        }
        // The stream stamped it a moment before its acknowledgement; its age runs from here.
        appended
            .record
            .put_input(i.partition.0, ack.sequence, kept.0, super::now_ms());
    }
    Ok(appended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::{DeviceKey, EventKind};

    fn ev(device: &str, key: &str, kind: EventKind) -> Event {
        Event {
            device: DeviceKey::new("t", device),
            key: key.into(),
            received_ms: 1,
            kind,
            fix: None,
            raw: Vec::new(),
            occurred_ms: None,
        }
    }

    #[test]
    fn a_message_stored_first_elsewhere_is_refused_for_a_while_then_taken() {
        let mut f = FirstElsewhere::default();
        let t0 = Instant::now();
        assert!(f.refuse("q1 fall", t0));
        assert!(f.refuse("q1 fall", t0 + Duration::from_secs(4)));
        // Another message is refused from its own first time.
        assert!(f.refuse("q2 fall", t0 + Duration::from_secs(4)));
        assert!(!f.refuse("q1 fall", t0 + FIRST_ELSEWHERE_REFUSED_FOR));
        assert!(f.refuse("q2 fall", t0 + FIRST_ELSEWHERE_REFUSED_FOR));
        // Long after, a refusal starts afresh.
        let later = t0 + FIRST_ELSEWHERE_REFUSED_FOR * 13;
        assert!(f.refuse("q1 fall", later));
        assert_eq!(f.since.len(), 1, "the old ones are forgotten");
    }

    #[test]
    fn alarms_go_one_by_one_and_telemetry_one_input_per_partition_in_order() {
        let p = |d: &str| Partition::of(&DeviceKey::new("t", d), 64);
        // Two devices in different partitions.
        let (a, b) = (
            "a",
            (0..100)
                .map(|i| format!("d{i}"))
                .find(|d| p(d) != p("a"))
                .unwrap(),
        );
        let alarms = [
            ev(a, "1", EventKind::Silent),
            ev(&b, "2", EventKind::Silent),
        ];
        let got = inputs(64, Lane::Alarm, &alarms);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, events::msg_id(&alarms[0]));
        assert_eq!(got[0].last, None);
        let t = [
            ev(a, "1", EventKind::Heartbeat),
            ev(&b, "2", EventKind::Heartbeat),
            ev(a, "3", EventKind::Heartbeat),
        ];
        let got = inputs(64, Lane::Telemetry, &t);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].partition, p(a));
        let first = events::decode(&got[0].bytes).unwrap();
        assert_eq!(first, vec![t[0].clone(), t[2].clone()]);
        assert_eq!(got[0].key, events::msg_id(&t[0]));
        assert_eq!(got[0].last, Some(events::msg_id(&t[2])));
        assert_eq!(events::decode(&got[1].bytes).unwrap(), vec![t[1].clone()]);
    }

    #[test]
    fn changed_alarms_go_as_one_records_input_per_partition() {
        let p = |d: &str| Partition::of(&DeviceKey::new("t", d), 64);
        let other = (0..100)
            .map(|i| format!("d{i}"))
            .find(|d| p(d) != p("a"))
            .unwrap();
        let changed = |id: u64, device: &str, version: u32| ChangedAlarm {
            version,
            alarm: vaka_core::Alarm {
                id: vaka_core::AlarmId(id),
                device: DeviceKey::new("t", device),
                reference: format!("r{id}"),
                kind: vaka_core::AlarmKind::Help,
                code: "0010".into(),
                priority: 1,
                text: None,
                callback: vec![],
                state: vaka_core::AlarmState::Pending,
                step: 0,
                deadline: None,
                repeats: 0,
                created_ms: 1,
                updated_ms: 1,
                stages: Default::default(),
                test: false,
            },
        };
        let got = records(
            64,
            5,
            vec![
                changed(1, "a", 1),
                changed(2, &other, 3),
                changed(3, "a", 2),
            ],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].partition, p("a"));
        let first = alarm_records::decode(&got[0].bytes).unwrap().unwrap();
        assert_eq!(first.holder_range, 5);
        let ids: Vec<(u64, u32)> = first
            .records
            .iter()
            .map(|r| (r.alarm.id.0, r.version))
            .collect();
        assert_eq!(ids, vec![(1, 1), (3, 2)]);
        assert_eq!(got[0].key, alarm_records::msg_id(&got[0].bytes));
        assert_eq!(got[1].partition, p(&other));
        assert!(
            events::decode(&got[1].bytes).is_err(),
            "not taken for events"
        );
    }
}
