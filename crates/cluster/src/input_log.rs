//! The input log: one JetStream stream `VAKA_IN`, a subject per partition. An input is appended
//! and acknowledged by the stream before anyone is told anything about it; every node applies a
//! partition's subject in stream order, so the stream sequence is the input's identity.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, LastRawMessageErrorKind, RetentionPolicy, StorageType, Stream,
};
use async_nats::jetstream::Context;
use bytes::Bytes;
use futures::StreamExt;

use crate::config::REPLICAS;
use crate::partition::{Partition, INPUT_SUBJECT_PREFIX};
use crate::substrate::{check_stream_config, keeps_everything_problem, SubstrateError};

pub const INPUT_STREAM: &str = "VAKA_IN";

/// The header an owner stamps its lease epoch in, so that appends made by two nodes that both
/// believed they owned a partition can be told apart when read.
pub const EPOCH_HEADER: &str = "Vaka-Epoch";

/// The header naming the node that appended an input (its `cluster.node_id`), so a node's
/// follower tells its own appends from other nodes'.
pub const NODE_HEADER: &str = "Vaka-Node";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Substrate(#[from] SubstrateError),
    #[error("idempotency key {key:?}: {problem}")]
    BadKey { key: String, problem: &'static str },
    /// Not sent: nothing was stored.
    #[error("partition {partition}: append of {msg_id:?} not sent: {problem}")]
    NotSent {
        partition: Partition,
        msg_id: String,
        problem: String,
    },
    /// Sent but not acknowledged: it may or may not be stored. Append again with the same key:
    /// within the duplicate window the stream keeps one copy and answers with its sequence.
    #[error("partition {partition}: append of {msg_id:?} not acknowledged (may be stored; append again with the same key): {problem}")]
    Unacknowledged {
        partition: Partition,
        msg_id: String,
        problem: String,
    },
    #[error("stream {INPUT_STREAM}: {0}")]
    Stream(String),
}

/// What the stream answered for an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    /// The key was seen within the duplicate window: nothing new was stored and `sequence` is
    /// the original's.
    pub duplicate: bool,
}

/// One input as the stream holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub partition: Partition,
    pub sequence: u64,
    /// The `Nats-Msg-Id` it was appended with.
    pub msg_id: Option<String>,
    /// The lease epoch of the owner that appended it, if an owner did.
    pub epoch: Option<u64>,
    /// The node that appended it, if it said ([`InputLog::with_node`]).
    pub node: Option<String>,
    /// When the stream stored it (ms since the epoch): its age runs from here.
    pub published_ms: u64,
    pub bytes: Bytes,
}

fn unix_ms(t: time::OffsetDateTime) -> u64 {
    (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}

/// The stream's extent: inputs below `first` are gone (aged out, or lost from its head), and
/// `deleted` are holes between `first` and `last`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub last: u64,
    pub deleted: std::collections::BTreeSet<u64>,
    /// The stream's retention as it is now (zero: for ever), which may have been changed
    /// since this node started.
    pub max_age: Duration,
}

impl Extent {
    /// The highest sequence at or below `to` that the stream still holds (0: none): a read
    /// waits for its target, and the stream's last sequence stays where it was when the
    /// message there is deleted.
    pub fn held_last(&self, to: u64) -> u64 {
        let mut s = self.last.min(to);
        while s >= self.first.max(1) && self.deleted.contains(&s) {
            s -= 1;
        }
        if s < self.first.max(1) {
            0
        } else {
            s
        }
    }
}

/// An append that was sent and whose acknowledgement is still to come. Sends keep the order in
/// which they were made; their acknowledgements may be awaited in any order or together.
#[must_use = "an append is acknowledged only when this is awaited"]
pub struct PendingAppend {
    partition: Partition,
    msg_id: String,
    ack: PublishAckFuture,
}

impl PendingAppend {
    /// Waits for the stream's acknowledgement: after `Ok` the input is stored on a majority of
    /// the servers, each of which synced it (`sync_interval: always`, checked at start). The
    /// context's timeout runs from when this is awaited, not from the send: await many pending
    /// appends together (join_all, FuturesUnordered), or 50 lost acks cost 50 timeouts in a row.
    pub async fn acknowledged(self) -> Result<Appended, LogError> {
        let ack = self.ack.await.map_err(|e| LogError::Unacknowledged {
            partition: self.partition,
            msg_id: self.msg_id.clone(),
            problem: e.to_string(),
        })?;
        // A subject taken by another stream would acknowledge into the wrong log.
        if ack.stream != INPUT_STREAM {
            return Err(LogError::Unacknowledged {
                partition: self.partition,
                msg_id: self.msg_id,
                problem: format!("acknowledged by stream {:?}", ack.stream),
            });
        }
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

/// The stream as this cluster wants it: inputs kept for `retention` (zero: for ever) and no
/// other limit, since an input trimmed by count or size would look like a loss to
/// reconciliation (and be one for a node catching up). Reconciliation tells an input aged out
/// from a lost one by the time each node recorded with it.
pub fn stream_config(duplicate_window: Duration, retention: Duration) -> StreamConfig {
    StreamConfig {
        name: INPUT_STREAM.into(),
        subjects: vec![format!("{INPUT_SUBJECT_PREFIX}*")],
        num_replicas: REPLICAS,
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        duplicate_window,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_age: retention,
        ..Default::default()
    }
}

/// Checks an existing stream against what the cluster needs, naming what differs.
pub fn verify_stream(
    found: &StreamConfig,
    duplicate_window: Duration,
    retention: Duration,
) -> Result<(), SubstrateError> {
    let what = format!("stream {INPUT_STREAM}");
    check_stream_config(&what, found)?;
    let wanted = stream_config(duplicate_window, retention);
    let problem = if found.subjects != wanted.subjects {
        Some(format!(
            "subjects {:?}, wanted {:?}",
            found.subjects, wanted.subjects
        ))
    } else if found.duplicate_window != duplicate_window {
        Some(format!(
            "duplicate window {:?}, the config says {:?}",
            found.duplicate_window, duplicate_window
        ))
    } else if found.max_age != retention {
        Some(format!(
            "max age {:?}, the config says {retention:?} (cluster.input_retention_ms)",
            found.max_age
        ))
    } else {
        // Every other limit: none.
        let mut others = found.clone();
        others.max_age = Duration::ZERO;
        keeps_everything_problem(&others, "inputs")
    };
    match problem {
        Some(problem) => Err(SubstrateError::Config { what, problem }),
        None => Ok(()),
    }
}

/// A key goes into a NATS header and, for batches, into a pair separated by a space: printable
/// ASCII without spaces keeps both unambiguous.
fn check_key(key: &str) -> Result<(), LogError> {
    let bad = |problem| {
        Err(LogError::BadKey {
            key: key.to_owned(),
            problem,
        })
    };
    if key.is_empty() || key.len() > 256 {
        return bad("must be 1 to 256 bytes");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ASCII without spaces");
    }
    Ok(())
}

/// The `Nats-Msg-Id` of a telemetry batch: its first and last keys. No alarm key has a space,
/// so a batch id never equals an alarm's.
pub fn batch_msg_id(first_key: &str, last_key: &str) -> String {
    format!("{first_key} {last_key}")
}

#[derive(Clone, Debug)]
pub struct InputLog {
    js: Context,
    stream: Stream,
    node: Option<String>,
}

impl InputLog {
    /// Creates the stream if it does not exist, else checks that it is the one we need; a
    /// difference is refused, named. Nodes never change the stream: two nodes configured
    /// differently would change it back and forth. To change the retention, change the stream
    /// (`nats stream edit VAKA_IN --max-age`), then each node's config.
    pub async fn open(
        js: Context,
        duplicate_window: Duration,
        retention: Duration,
    ) -> Result<InputLog, LogError> {
        let mut stream = js
            .get_or_create_stream(stream_config(duplicate_window, retention))
            .await
            .map_err(|e| LogError::Stream(e.to_string()))?;
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::Stream(e.to_string()))?;
        verify_stream(&info.config, duplicate_window, retention)?;
        Ok(InputLog {
            js,
            stream,
            node: None,
        })
    }

    /// Every append made through the returned log names `node` ([`NODE_HEADER`]).
    pub fn with_node(mut self, node: &str) -> InputLog {
        self.node = Some(node.to_owned());
        self
    }

    /// The node its appends name, if any ([`InputLog::with_node`]).
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Sends an alarm-lane input with `Nats-Msg-Id` = its idempotency key. Returns once the
    /// message is on its way; await the result for the acknowledgement. Calls made one after
    /// another are stored in that order.
    pub async fn send_alarm(
        &self,
        partition: Partition,
        idempotency_key: &str,
        bytes: Bytes,
    ) -> Result<PendingAppend, LogError> {
        check_key(idempotency_key)?;
        self.send(partition, idempotency_key.to_owned(), bytes, None)
            .await
    }

    /// [`Self::send_alarm`] for the owner of the partition, stamped with its lease's epoch
    /// (deadline expiries and other inputs only the owner appends).
    pub async fn send_as_owner(
        &self,
        lease: &crate::lease::Lease,
        idempotency_key: &str,
        bytes: Bytes,
    ) -> Result<PendingAppend, LogError> {
        check_key(idempotency_key)?;
        self.send(
            lease.partition,
            idempotency_key.to_owned(),
            bytes,
            Some(lease.epoch),
        )
        .await
    }

    /// [`Self::send_alarm`] and its acknowledgement.
    pub async fn append_alarm(
        &self,
        partition: Partition,
        idempotency_key: &str,
        bytes: Bytes,
    ) -> Result<Appended, LogError> {
        self.send_alarm(partition, idempotency_key, bytes)
            .await?
            .acknowledged()
            .await
    }

    /// Sends a telemetry batch (many events in one message: one sync for all of them), its
    /// `Nats-Msg-Id` made of the batch's first and last idempotency keys.
    pub async fn send_batch(
        &self,
        partition: Partition,
        first_key: &str,
        last_key: &str,
        bytes: Bytes,
    ) -> Result<PendingAppend, LogError> {
        check_key(first_key)?;
        check_key(last_key)?;
        self.send(partition, batch_msg_id(first_key, last_key), bytes, None)
            .await
    }

    /// [`Self::send_batch`] and its acknowledgement.
    pub async fn append_batch(
        &self,
        partition: Partition,
        first_key: &str,
        last_key: &str,
        bytes: Bytes,
    ) -> Result<Appended, LogError> {
        self.send_batch(partition, first_key, last_key, bytes)
            .await?
            .acknowledged()
            .await
    }

    async fn send(
        &self,
        partition: Partition,
        msg_id: String,
        bytes: Bytes,
        epoch: Option<u64>,
    ) -> Result<PendingAppend, LogError> {
        let mut publish = PublishMessage::build()
            .payload(bytes)
            .message_id(msg_id.as_str());
        if let Some(epoch) = epoch {
            publish = publish.header(EPOCH_HEADER, epoch.to_string().as_str());
        }
        if let Some(node) = &self.node {
            publish = publish.header(NODE_HEADER, node.as_str());
        }
        let ack = self
            .js
            .send_publish(partition.input_subject(), publish)
            .await
            .map_err(|e| LogError::NotSent {
                partition,
                msg_id: msg_id.clone(),
                problem: e.to_string(),
            })?;
        Ok(PendingAppend {
            partition,
            msg_id,
            ack,
        })
    }

    /// What one pull brings (without waiting for more), appended to `out`. Each input's
    /// partition is its subject's.
    async fn fetch(
        &self,
        consumer: &async_nats::jetstream::consumer::Consumer<pull::Config>,
        want: usize,
        out: &mut Vec<Input>,
    ) -> Result<(), async_nats::Error> {
        let mut batch = consumer.fetch().max_messages(want).messages().await?;
        while let Some(m) = batch.next().await {
            let m = m?;
            let sequence = m.info()?.stream_sequence;
            // A pull retried after an interruption never hands back what was delivered, but
            // order is what every caller relies on: keep it strictly increasing.
            if out.last().is_some_and(|l| l.sequence >= sequence) {
                continue;
            }
            let header = |name: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let Some(partition) = Partition::from_input_subject(&m.subject) else {
                continue; // not an input subject: the stream's config forbids it
            };
            let msg_id = header("Nats-Msg-Id");
            let epoch = header(EPOCH_HEADER).and_then(|e| e.parse().ok());
            out.push(Input {
                partition,
                sequence,
                msg_id,
                epoch,
                node: header(NODE_HEADER),
                published_ms: unix_ms(m.info()?.published),
                bytes: m.payload.clone(),
            });
        }
        Ok(())
    }

    /// The partition's last sequence as the stream's leader has it (0: none).
    async fn last_sequence(&self, partition: Partition) -> Result<u64, LogError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&partition.input_subject())
            .await
        {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(LogError::Stream(format!(
                "read partition {partition}: last sequence: {e}"
            ))),
        }
    }

    /// Up to `max` inputs of a partition from sequence `from` on, in stream order: everything
    /// the stream had acknowledged for it when called, and perhaps some newer (an empty answer:
    /// caught up). For a standby applying a partition and for catch-up after a restart: call
    /// again from the last sequence + 1.
    pub async fn read(
        &self,
        partition: Partition,
        from: u64,
        max: usize,
    ) -> Result<Vec<Input>, LogError> {
        let what = format!("partition {partition}");
        // A cluster under load or changing leaders fails API requests for a moment: each step
        // is retried until it has made no progress for `STALL`.
        let deadline = tokio::time::Instant::now() + STALL;
        // The target comes from the leader. The consumer below may live on a replica that is
        // still behind it, so what the consumer says is pending, or a pull coming back empty,
        // does not mean everything was read.
        let target = retrying(deadline, || self.last_sequence(partition)).await?;
        self.read_to(&what, partition.input_subject(), target, from, max)
            .await
    }

    /// The inputs with a sequence in `from..=to`, of one partition or (`None`) of all, in
    /// stream order, read in pulls of at most `step`: for checking a range of the stream
    /// without reading past it.
    pub async fn read_range(
        &self,
        partition: Option<Partition>,
        from: u64,
        to: u64,
        step: usize,
    ) -> Result<Vec<Input>, LogError> {
        let deadline = tokio::time::Instant::now() + STALL;
        let (what, subjects, last) = match partition {
            Some(p) => (
                format!("partition {p}"),
                p.input_subject(),
                retrying(deadline, || self.last_sequence(p)).await?,
            ),
            None => (
                "every partition".to_owned(),
                format!("{INPUT_SUBJECT_PREFIX}*"),
                retrying(deadline, || async {
                    Ok(self.extent().await?.held_last(to))
                })
                .await?,
            ),
        };
        let target = last.min(to);
        let mut out: Vec<Input> = Vec::new();
        let mut next = from;
        while next <= target {
            let batch = self
                .read_to(&what, subjects.clone(), target, next, step.max(1))
                .await?;
            let Some(l) = batch.last().map(|i| i.sequence) else {
                break;
            };
            next = l + 1;
            out.extend(batch.into_iter().filter(|i| i.sequence <= to));
        }
        Ok(out)
    }

    /// The stream's first and last sequence and its holes, as its leader has them.
    pub async fn extent(&self) -> Result<Extent, LogError> {
        let info = self
            .stream
            .info_builder()
            .with_deleted(true)
            .fetch()
            .await
            .map_err(|e| LogError::Stream(format!("info: {e}")))?
            .info;
        Ok(Extent {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
            deleted: info.state.deleted.unwrap_or_default().into_iter().collect(),
            max_age: info.config.max_age,
        })
    }

    /// The stream's last sequence (of every partition), as its leader has it.
    pub async fn stream_last(&self) -> Result<u64, LogError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::Stream(format!("info: {e}")))?;
        Ok(info.state.last_sequence)
    }

    /// [`Self::read`] across every partition: up to `max` inputs from stream sequence `from` on,
    /// in stream order. For a node's follower, which holds every partition's inputs.
    pub async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Input>, LogError> {
        let deadline = tokio::time::Instant::now() + STALL;
        let target = retrying(deadline, || self.stream_last()).await?;
        let subjects = format!("{INPUT_SUBJECT_PREFIX}*");
        self.read_to("every partition", subjects, target, from, max)
            .await
    }

    /// The input at `sequence`, as the stream's leader has it (`None`: not there).
    pub async fn get(&self, sequence: u64) -> Result<Option<Input>, LogError> {
        match self.stream.get_raw_message(sequence).await {
            Ok(m) => {
                let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
                let Some(partition) = Partition::from_input_subject(&m.subject) else {
                    return Ok(None);
                };
                Ok(Some(Input {
                    partition,
                    sequence,
                    msg_id: header("Nats-Msg-Id"),
                    epoch: header(EPOCH_HEADER).and_then(|e| e.parse().ok()),
                    node: header(NODE_HEADER),
                    published_ms: unix_ms(m.time),
                    bytes: m.payload,
                }))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(LogError::Stream(format!("get {sequence}: {e}"))),
        }
    }

    /// Reads `subjects` from `from` until `target` (or `max` inputs).
    async fn read_to(
        &self,
        what: &str,
        subjects: String,
        target: u64,
        from: u64,
        max: usize,
    ) -> Result<Vec<Input>, LogError> {
        let err = |e: &dyn std::fmt::Display| LogError::Stream(format!("read {what}: {e}"));
        let mut deadline = tokio::time::Instant::now() + STALL;
        if target < from || max == 0 {
            return Ok(Vec::new());
        }
        // An ephemeral consumer of its own: nothing to acknowledge, nothing kept on disk, gone
        // when deleted below or, if this task dies, after the inactivity threshold.
        let config = pull::Config {
            filter_subject: subjects,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            num_replicas: 1,
            memory_storage: true,
            ..Default::default()
        };
        let consumer = retrying(deadline, || async {
            self.stream
                .create_consumer(config.clone())
                .await
                .map_err(|e| err(&format!("consumer: {e}")))
        })
        .await?;
        let mut out: Vec<Input> = Vec::new();
        deadline = tokio::time::Instant::now() + STALL;
        while out.len() < max && out.last().is_none_or(|l| l.sequence < target) {
            let want = (max - out.len()).min(1_000);
            let before = out.len();
            let pulled = self.fetch(&consumer, want, &mut out).await;
            if out.len() > before {
                deadline = tokio::time::Instant::now() + STALL;
                continue;
            }
            // Nothing came: a replica catching up, a consumer not yet reachable through this
            // server (its interest still crossing the routes: 503), or a leader change. All
            // pass; a read that makes no progress for 10 s fails.
            if tokio::time::Instant::now() >= deadline {
                let why = match pulled {
                    Err(e) => e.to_string(),
                    Ok(()) => format!(
                        "stuck below sequence {target} at {:?}",
                        out.last().map(|l| l.sequence)
                    ),
                };
                return Err(err(&why));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let name = consumer.cached_info().name.clone();
        // Best effort: the inactivity threshold removes it anyway.
        let _ = self.stream.delete_consumer(&name).await;
        Ok(out)
    }
}

/// How long a read may make no progress before it fails.
const STALL: Duration = Duration::from_secs(10);

/// `f` again and again (50 ms apart) until it succeeds or `deadline` passes; then its error.
async fn retrying<T, F: std::future::Future<Output = Result<T, LogError>>>(
    deadline: tokio::time::Instant,
    mut f: impl FnMut() -> F,
) -> Result<T, LogError> {
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "stream request failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::PersistenceMode;

    #[test]
    fn a_read_targets_the_last_sequence_the_stream_still_holds() {
        let e = Extent {
            first: 3,
            last: 10,
            deleted: [8, 9, 10].into(),
            max_age: Duration::ZERO,
        };
        assert_eq!(e.held_last(100), 7);
        assert_eq!(e.held_last(9), 7);
        assert_eq!(e.held_last(5), 5);
        assert_eq!(e.held_last(2), 0, "below the first");
        let gone = Extent {
            deleted: (3..=10).collect(),
            ..e
        };
        assert_eq!(gone.held_last(100), 0);
        assert_eq!(Extent::default().held_last(5), 0, "an empty stream");
    }

    #[test]
    fn keys_are_checked_and_batch_ids_cannot_be_alarm_keys() {
        check_key("dev-1/ref-42").unwrap();
        for bad in ["", "a b", "a\r\nb", "ä"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(257)).is_err());
        let id = batch_msg_id("a/1", "a/64");
        assert_eq!(id, "a/1 a/64");
        assert!(check_key(&id).is_err());
    }

    #[test]
    fn the_wanted_stream_passes_and_each_difference_is_named() {
        let w = Duration::from_secs(120);
        let r = Duration::from_secs(7 * 24 * 3600);
        let stream_config = |w| stream_config(w, r);
        let verify_stream = |c: &StreamConfig, w| verify_stream(c, w, r);
        verify_stream(&stream_config(w), w).unwrap();
        super::verify_stream(&super::stream_config(w, Duration::ZERO), w, Duration::ZERO).unwrap();
        let e = verify_stream(&stream_config(w), Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("duplicate window"), "{e}");
        let e = super::verify_stream(&stream_config(w), w, Duration::from_secs(3600)).unwrap_err();
        assert!(e.to_string().contains("input_retention_ms"), "{e}");
        let mut c = stream_config(w);
        c.num_replicas = 1;
        assert!(verify_stream(&c, w)
            .unwrap_err()
            .to_string()
            .contains("1 replicas"));
        let mut c = stream_config(w);
        c.max_messages = 1_000_000;
        assert!(verify_stream(&c, w)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        let mut c = stream_config(w);
        c.persist_mode = Some(PersistenceMode::Async);
        assert!(verify_stream(&c, w)
            .unwrap_err()
            .to_string()
            .contains("async"));
        let mut c = stream_config(w);
        c.subjects = vec!["vaka.>".into()];
        assert!(verify_stream(&c, w)
            .unwrap_err()
            .to_string()
            .contains("subjects"));
    }
}
