//! The directory log: one JetStream stream `VAKA_DIR`, one subject, whose messages are
//! directory change batches (their encoding belongs to the control plane; here they are bytes).
//! Every node applies the stream in order, so a batch's stream sequence is its revision on every
//! node. An append names the last sequence its writer has applied (`Nats-Expected-Last-Sequence`),
//! so a node never appends on a view another node's batch has already moved past.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, LastRawMessageErrorKind, RetentionPolicy, StorageType, Stream,
};
use async_nats::jetstream::Context;
use bytes::Bytes;

use crate::config::REPLICAS;
use crate::substrate::{check_stream_config, keeps_everything_problem, SubstrateError};

pub const DIRECTORY_STREAM: &str = "VAKA_DIR";
pub const DIRECTORY_SUBJECT: &str = "vaka.dir";

/// Long enough for an append retried after a lost acknowledgement to be stored once.
pub const DIRECTORY_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DirectoryLogError {
    #[error(transparent)]
    Substrate(#[from] SubstrateError),
    /// Another batch is already past the sequence named: nothing was stored.
    #[error("stream {DIRECTORY_STREAM}: not appended: the stream is past sequence {expected}")]
    Behind { expected: u64 },
    /// Not sent (too large, no connection): nothing was stored.
    #[error("stream {DIRECTORY_STREAM}: append not sent: {0}")]
    NotSent(String),
    /// Sent but not acknowledged: it may or may not be stored.
    #[error("stream {DIRECTORY_STREAM}: append not acknowledged (it may be stored): {0}")]
    Unacknowledged(String),
    #[error("stream {DIRECTORY_STREAM}: {0}")]
    Stream(String),
}

/// The stream's bounds as its leader has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The lowest sequence still held (the last + 1 when the stream is empty).
    pub first: u64,
    /// The last sequence ever stored (kept when that message is deleted).
    pub last: u64,
}

/// One batch as the stream holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub sequence: u64,
    pub bytes: Bytes,
}

/// The stream as the cluster wants it: nothing ever aged or trimmed out (a node catching up
/// from an old sequence needs every batch after it).
pub fn stream_config() -> StreamConfig {
    StreamConfig {
        name: DIRECTORY_STREAM.into(),
        subjects: vec![DIRECTORY_SUBJECT.into()],
        num_replicas: REPLICAS,
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        duplicate_window: DIRECTORY_DUPLICATE_WINDOW,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        ..Default::default()
    }
}

/// Checks an existing stream against what the cluster needs, naming what differs.
pub fn verify_stream(found: &StreamConfig) -> Result<(), SubstrateError> {
    let what = format!("stream {DIRECTORY_STREAM}");
    check_stream_config(&what, found)?;
    let problem = if found.subjects != [DIRECTORY_SUBJECT] {
        Some(format!(
            "subjects {:?}, wanted [{DIRECTORY_SUBJECT:?}]",
            found.subjects
        ))
    } else {
        keeps_everything_problem(found, "directory changes")
    };
    match problem {
        Some(problem) => Err(SubstrateError::Config { what, problem }),
        None => Ok(()),
    }
}

#[derive(Clone, Debug)]
pub struct DirectoryLog {
    js: Context,
    stream: Stream,
}

impl DirectoryLog {
    /// Creates the stream if it does not exist, else checks that it is the one we need.
    pub async fn open(js: Context) -> Result<DirectoryLog, DirectoryLogError> {
        let mut stream = js
            .get_or_create_stream(stream_config())
            .await
            .map_err(|e| DirectoryLogError::Stream(e.to_string()))?;
        let info = stream
            .info()
            .await
            .map_err(|e| DirectoryLogError::Stream(e.to_string()))?;
        verify_stream(&info.config)?;
        Ok(DirectoryLog { js, stream })
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The client the stream is reached through (a plain subscription to
    /// [`DIRECTORY_SUBJECT`] wakes a follower when a batch is stored).
    pub fn client(&self) -> async_nats::Client {
        self.js.client()
    }

    /// Appends `bytes` if the stream's last sequence is `expected` (0: the stream is empty),
    /// with `msg_id` for the duplicate window. Returns the new batch's sequence.
    pub async fn append(
        &self,
        expected: u64,
        msg_id: &str,
        bytes: Bytes,
    ) -> Result<u64, DirectoryLogError> {
        let publish = PublishMessage::build()
            .payload(bytes)
            .message_id(msg_id)
            .expected_last_sequence(expected);
        let ack = self
            .js
            .send_publish(DIRECTORY_SUBJECT, publish)
            .await
            .map_err(|e| DirectoryLogError::NotSent(e.to_string()))?;
        match ack.await {
            Ok(ack) if ack.stream != DIRECTORY_STREAM => Err(DirectoryLogError::Unacknowledged(
                format!("acknowledged by stream {:?}", ack.stream),
            )),
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(DirectoryLogError::Behind { expected })
            }
            Err(e) => Err(DirectoryLogError::Unacknowledged(e.to_string())),
        }
    }

    /// The stream's first and last sequence, from its leader.
    pub async fn bounds(&self) -> Result<Bounds, DirectoryLogError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| DirectoryLogError::Stream(format!("info: {e}")))?;
        Ok(Bounds {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
        })
    }

    /// The batch at `sequence`, from the stream's leader; `None` if the stream does not hold it
    /// (never stored, or deleted: a loss, since Vaka deletes no batch).
    pub async fn get(&self, sequence: u64) -> Result<Option<Batch>, DirectoryLogError> {
        match self.stream.get_raw_message(sequence).await {
            Ok(m) => Ok(Some(Batch {
                sequence: m.sequence,
                bytes: m.payload,
            })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(DirectoryLogError::Stream(format!(
                "read sequence {sequence}: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_stream_passes_and_each_difference_is_named() {
        verify_stream(&stream_config()).unwrap();
        let mut c = stream_config();
        c.num_replicas = 1;
        assert!(verify_stream(&c)
            .unwrap_err()
            .to_string()
            .contains("1 replicas"));
        let mut c = stream_config();
        c.max_messages = 1_000;
        assert!(verify_stream(&c).unwrap_err().to_string().contains("limit"));
        let mut c = stream_config();
        c.subjects = vec!["vaka.>".into()];
        assert!(verify_stream(&c)
            .unwrap_err()
            .to_string()
            .contains("subjects"));
        let mut c = stream_config();
        c.storage = StorageType::Memory;
        assert!(verify_stream(&c)
            .unwrap_err()
            .to_string()
            .contains("file storage"));
    }
}
