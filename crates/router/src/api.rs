//! What the router's callers give and get back: its settings, the durable reply to an event,
//! the errors, and the one-shot reply senders the shards answer through. Apart from `Router`
//! so that the shards import these without importing the router.
use futures::channel::oneshot;
use futures::future::BoxFuture;
use std::sync::Arc;
use vaka_core::idempotency::GivenAnswer;
use vaka_core::{Alarm, AlarmId, Event, EventId, Lane};
use vaka_store::{CommitError, WriteSet};

/// A cluster node's input log (`VAKA_IN`, DESIGN.md §8): a shard hands it each batch's new device
/// events and the alarms the batch changed before the batch goes to the store, and commits the
/// batch only once the log has acknowledged them, so an event a device is told is stored
/// survives the loss of this node, and every other node sees this node's alarms as they are.
pub trait IntakeLog: Send + Sync + 'static {
    /// Appends `events` (in the order the shard took them) and `alarms` (each alarm's record
    /// after the batch, once). Resolves once the log holds them, to what the batch must also
    /// write: the node's record of those inputs. An error fails the batch like a failed commit
    /// (the devices are told busy and resend; a deadline fires again).
    fn append(
        &self,
        lane: Lane,
        events: Vec<Event>,
        alarms: Vec<ChangedAlarm>,
    ) -> BoxFuture<'static, Result<WriteSet, CommitError>>;

    /// Tells the other nodes the answers a batch gave to devices' alarm-lane messages, once the
    /// batch is stored, so a resend of one of them to another node is answered the same way.
    /// Returns at once: the device already has its answer, and one lost costs at most a second
    /// alarm for a message sent to two nodes.
    fn answered(&self, answers: Vec<GivenAnswer>);
}

/// An alarm as a batch left it, for the input log.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedAlarm {
    /// How many audit records it has (grows with every change): orders two records of one
    /// alarm whose batches were in flight together.
    pub version: u32,
    pub alarm: Alarm,
}

/// The router's handle on an [`IntakeLog`] (none on a single node).
#[derive(Clone)]
pub struct Intake(pub Arc<dyn IntakeLog>);

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub shards: usize,
    /// Capacity of each shard's alarm lane.
    pub alarm_queue: usize,
    /// Capacity of each shard's telemetry lane.
    pub telemetry_queue: usize,
    /// Events a shard folds into one write set.
    pub max_batch: usize,
    /// Write sets a shard may have waiting for durability, per lane.
    pub max_inflight: usize,
    /// How long a resend is recognised (SCAIP HOLD window is up to 30 min).
    pub idempotency_window_ms: i64,
    /// Idempotency entries kept per shard.
    pub idempotency_capacity: usize,
    /// Silence beyond a device's heartbeat interval tolerated before "device silent" is raised.
    pub supervision_grace_ms: i64,
    /// How long a centre that is away (since the start, or since its stream closed) is waited for
    /// before escalation passes it or takes its alarms elsewhere (invariant 11).
    pub reconnect_grace_ms: i64,
    /// A cluster node's input log; `None` on a single node.
    pub intake: Option<Intake>,
    /// The least time between two telemetry batches of a shard (a cluster node's
    /// `cluster.telemetry_linger_ms`: fewer, larger telemetry inputs); zero on a single node.
    pub telemetry_linger: std::time::Duration,
    /// The devices this node supervises and runs activity rules for: every one on a single
    /// node, those of its partitions on a cluster node.
    pub owners: crate::Owners,
    /// A cluster node's id range (`vaka_cluster::id_range`; 0 on a single node): of two nodes
    /// that changed one alarm at once, the one with the higher range keeps it.
    pub id_range: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            shards: std::thread::available_parallelism().map_or(2, |n| n.get()),
            alarm_queue: 4096,
            telemetry_queue: 16384,
            max_batch: 512,
            max_inflight: 4,
            idempotency_window_ms: 30 * 60 * 1000,
            idempotency_capacity: 1_000_000,
            supervision_grace_ms: 120_000,
            reconnect_grace_ms: 5_000,
            intake: None,
            telemetry_linger: std::time::Duration::ZERO,
            owners: crate::Owners::all(),
            id_range: 0,
        }
    }
}

/// The answer to a device once its event is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Accepted {
        event: EventId,
        /// The alarm the event opened or updated, if any.
        alarm: Option<AlarmId>,
        /// A resend of a message already accepted: nothing new was stored.
        duplicate: bool,
        /// Whether any centre of the device's chain can act now; if not, the device must fall back
        /// to its next receiver (SCAIP snu 5) although the event is stored (invariant 5).
        centre_available: bool,
    },
    Rejected {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The shard's lane is full: try later (SCAIP snu 6, QUIC status busy).
    #[error("busy")]
    Busy,
    #[error("shutting down")]
    ShuttingDown,
    #[error("store failure: {0}")]
    Store(String),
}

pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, SubmitError>>;
pub(crate) type CentreTx = oneshot::Sender<Result<(), InputError>>;

/// Why a centre's input was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("alarm {0} is not open")]
    NotFound(AlarmId),
    #[error("alarm {0} is held by another centre")]
    NotHolder(AlarmId),
    #[error("{0}")]
    Invalid(String),
    #[error("busy")]
    Busy,
    #[error("shutting down")]
    ShuttingDown,
    #[error("store failure: {0}")]
    Store(String),
}
