//! Partition ownership: a lease per partition in the KV bucket `VAKA_LEASES` (R3, history 1,
//! entries expire after the TTL). Only the owner speaks to the outside; a lease race costs
//! duplicate notices with the same ids, never a lost alarm (DESIGN.md §8).
//!
//! Every write is checked against the revision the writer holds, so a lease that changed hands
//! can only be reported lost, never silently taken back. The revision at acquisition is the
//! lease's epoch: revisions only grow, so a later owner always has a higher one, and callers
//! stamp it on what they publish as owner (fencing).

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, StorageType};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::config::REPLICAS;
use crate::partition::Partition;
use crate::substrate::{check_stream_config, SubstrateError};

pub const LEASE_BUCKET: &str = "VAKA_LEASES";
/// Keys of live nodes (`n.<node>.<id range>`), beside the partitions' (`p<n>`).
const NODE_KEY_PREFIX: &str = "n.";

/// A node alive: its name and the id range it gives its ids from (0: not said).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveNode {
    pub node: String,
    pub range: u64,
}

impl LiveNode {
    /// The node a key in the bucket says is alive (`None`: a partition's key).
    fn of_key(key: &str) -> Option<LiveNode> {
        let rest = key.strip_prefix(NODE_KEY_PREFIX)?;
        Some(match rest.rsplit_once('.') {
            Some((node, range)) if range.parse::<u64>().is_ok() => LiveNode {
                node: node.to_owned(),
                range: range.parse().unwrap_or(0),
            },
            _ => LiveNode {
                node: rest.to_owned(),
                range: 0,
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Substrate(#[from] SubstrateError),
    /// The lease is no longer this node's: taken over, expired or released elsewhere. The
    /// holder must stop speaking for the partition at once.
    #[error("partition {partition}: lease (epoch {epoch}) lost: {why}")]
    Lost {
        partition: Partition,
        epoch: u64,
        why: String,
    },
    /// The bucket did not answer (no leader, connection down, timeout): the lease may still be
    /// held; it is lost for sure only when [`Lease::valid_until`] passes.
    #[error("partition {partition}: lease bucket: {problem}")]
    Unavailable {
        partition: Partition,
        problem: String,
    },
    #[error("bucket {LEASE_BUCKET}: {0}")]
    Bucket(String),
}

/// A lease this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub partition: Partition,
    /// The fencing number: the bucket revision at acquisition.
    pub epoch: u64,
    /// The revision of the last write, which the next renewal must match.
    revision: u64,
    /// When the last acknowledged write was sent: the server's expiry counts from when it
    /// stored it, which is later, so the lease is surely held until this + TTL.
    written_at: Instant,
    ttl: Duration,
}

impl Lease {
    /// Until when this node may act as owner without another acknowledged renewal.
    pub fn valid_until(&self) -> Instant {
        self.written_at + self.ttl
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }
}

/// What an acquisition found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    Won(Lease),
    /// Someone holds it (possibly this node's previous run: it is not taken back before it
    /// expires, since two processes with one node id would otherwise both own it). `owner` is
    /// `None` when the key changed between the refused claim and the read of who holds it.
    HeldBy {
        owner: Option<String>,
        revision: u64,
    },
}

struct LastWrite {
    owner: String,
    revision: u64,
    operation: Operation,
}

/// A write refused because the key's revision was not the one given: someone else wrote it.
/// The server answers 10071 when the check fails against stored data and 10164 when it fails
/// against a write still being replicated (a concurrent claim); the client names only the
/// first, so the error chain is searched for either code.
pub(crate) fn is_revision_conflict(e: &kv::UpdateError) -> bool {
    if e.kind() == UpdateErrorKind::WrongLastRevision {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(js) = err.downcast_ref::<async_nats::jetstream::Error>() {
            let code = js.error_code();
            return code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT;
        }
        source = err.source();
    }
    false
}

#[derive(Clone)]
pub struct LeaseBucket {
    kv: Store,
    node_id: String,
    ttl: Duration,
    /// This node's id range, said with its key ([`Self::with_range`]).
    range: u64,
}

impl LeaseBucket {
    /// Creates the bucket if it does not exist, else checks it: R3, file storage, history 1,
    /// entries expiring after `ttl` (every node must agree on it).
    pub async fn open(
        js: &Context,
        node_id: impl Into<String>,
        ttl: Duration,
    ) -> Result<LeaseBucket, LeaseError> {
        let wanted = kv::Config {
            bucket: LEASE_BUCKET.into(),
            history: 1,
            max_age: ttl,
            storage: StorageType::File,
            num_replicas: REPLICAS,
            ..Default::default()
        };
        let kv = match js.create_key_value(wanted).await {
            Ok(kv) => kv,
            // Exists with another configuration: open it so the check below names the field.
            Err(created) => js.get_key_value(LEASE_BUCKET).await.map_err(|e| {
                LeaseError::Bucket(format!("cannot create ({created}) nor open ({e})"))
            })?,
        };
        let info = kv
            .stream
            .get_info()
            .await
            .map_err(|e| LeaseError::Bucket(e.to_string()))?;
        let what = format!("bucket {LEASE_BUCKET}");
        check_stream_config(&what, &info.config)?;
        if info.config.max_age != ttl {
            return Err(SubstrateError::Config {
                what,
                problem: format!(
                    "entries expire after {:?}, this node's lease TTL is {ttl:?}",
                    info.config.max_age
                ),
            }
            .into());
        }
        if info.config.max_messages_per_subject != 1 {
            return Err(SubstrateError::Config {
                what,
                problem: format!("history {}, wanted 1", info.config.max_messages_per_subject),
            }
            .into());
        }
        Ok(LeaseBucket {
            kv,
            node_id: node_id.into(),
            ttl,
            range: 0,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the partition if nobody holds it (never held, released, or expired). Every path
    /// is a write checked by the stream's leader, so two nodes asking at once cannot both win.
    pub async fn acquire(&self, partition: Partition) -> Result<Acquired, LeaseError> {
        let key = partition.lease_key();
        let unavailable = |e: &dyn std::fmt::Display| LeaseError::Unavailable {
            partition,
            problem: e.to_string(),
        };
        let sent = Instant::now();
        // Revision 0: only if the key has no entry at all (never written, or expired).
        let refused = match self.kv.update(&key, self.value(), 0).await {
            Ok(revision) => return Ok(Acquired::Won(self.lease(partition, revision, sent))),
            Err(e) if is_revision_conflict(&e) => e,
            Err(e) => return Err(unavailable(&e)),
        };
        match self.last_write(partition).await? {
            Some(w) if w.operation == Operation::Put => Ok(Acquired::HeldBy {
                owner: Some(w.owner),
                revision: w.revision,
            }),
            // Released: the delete marker's revision is the one to claim against.
            Some(w) => {
                let sent = Instant::now();
                match self.kv.update(&key, self.value(), w.revision).await {
                    Ok(revision) => Ok(Acquired::Won(self.lease(partition, revision, sent))),
                    Err(err) if is_revision_conflict(&err) => Ok(Acquired::HeldBy {
                        owner: None,
                        revision: w.revision,
                    }),
                    Err(err) => Err(unavailable(&err)),
                }
            }
            // Expired between the two requests: free, the caller tries again.
            None => {
                tracing::debug!(partition = %partition, error = %refused, "lease entry gone between claim and read");
                Ok(Acquired::HeldBy {
                    owner: None,
                    revision: 0,
                })
            }
        }
    }

    /// The key's last write as the stream's leader has it. Not the KV's direct get: that may
    /// answer from a replica behind the leader, which right after a release still shows the
    /// released lease as held.
    async fn last_write(&self, partition: Partition) -> Result<Option<LastWrite>, LeaseError> {
        let subject = format!("{}{}", self.kv.prefix, partition.lease_key());
        match self
            .kv
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(m) => {
                let operation = match m.headers.get("KV-Operation").map(|v| v.as_str()) {
                    Some("DEL") => Operation::Delete,
                    Some("PURGE") => Operation::Purge,
                    _ => Operation::Put,
                };
                Ok(Some(LastWrite {
                    owner: String::from_utf8_lossy(&m.payload).into_owned(),
                    revision: m.sequence,
                    operation,
                }))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(LeaseError::Unavailable {
                partition,
                problem: e.to_string(),
            }),
        }
    }

    fn value(&self) -> Bytes {
        Bytes::from(self.node_id.clone())
    }

    fn lease(&self, partition: Partition, revision: u64, sent: Instant) -> Lease {
        Lease {
            partition,
            epoch: revision,
            revision,
            written_at: sent,
            ttl: self.ttl,
        }
    }

    /// Who holds the partition now, and at which revision (as the stream's leader has it).
    pub async fn holder(&self, partition: Partition) -> Result<Option<(String, u64)>, LeaseError> {
        Ok(self
            .last_write(partition)
            .await?
            .filter(|w| w.operation == Operation::Put)
            .map(|w| (w.owner, w.revision)))
    }

    /// This node gives its ids from `range` (`crate::id_range`), said with its key: the
    /// alarms a node holds are known by its range (its run), so what a node held before its
    /// data dir was wiped counts as a gone node's though it is back under its name.
    pub fn with_range(mut self, range: u64) -> LeaseBucket {
        self.range = range;
        self
    }

    /// Says this node is alive: its key `n.<node>.<range>` in the bucket, which expires after
    /// the TTL like a lease unless said again. What partitions are spread over, and what tells
    /// whose alarms are to be taken over ([`Self::live_nodes`]).
    pub async fn announce(&self) -> Result<(), LeaseError> {
        self.kv
            .put(self.node_key(), Bytes::new())
            .await
            .map(|_| ())
            .map_err(|e| LeaseError::Bucket(format!("announcing this node: {e}")))
    }

    /// At a graceful stop: the others count this node gone at once, not after the TTL.
    pub async fn withdraw(&self) -> Result<(), LeaseError> {
        self.kv
            .delete(self.node_key())
            .await
            .map_err(|e| LeaseError::Bucket(format!("withdrawing this node: {e}")))
    }

    /// The nodes that have announced themselves within the TTL (and not withdrawn).
    pub async fn live_nodes(&self) -> Result<Vec<LiveNode>, LeaseError> {
        use futures::TryStreamExt;
        let err = |e: &dyn std::fmt::Display| LeaseError::Bucket(format!("listing nodes: {e}"));
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| err(&e))?
            .try_collect()
            .await
            .map_err(|e| err(&e))?;
        Ok(keys.iter().filter_map(|k| LiveNode::of_key(k)).collect())
    }

    fn node_key(&self) -> String {
        format!("{NODE_KEY_PREFIX}{}.{}", self.node_id, self.range)
    }

    /// Extends the lease by a TTL. Fails as [`LeaseError::Lost`] if anyone wrote the key since
    /// this node's last write (taken over) or it expired (the key is gone).
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), LeaseError> {
        let sent = Instant::now();
        match self
            .kv
            .update(lease.partition.lease_key(), self.value(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                lease.written_at = sent;
                Ok(())
            }
            Err(e) if is_revision_conflict(&e) => Err(LeaseError::Lost {
                partition: lease.partition,
                epoch: lease.epoch,
                why: format!(
                    "the key is no longer at revision {} (expired or taken over)",
                    lease.revision
                ),
            }),
            Err(e) => Err(LeaseError::Unavailable {
                partition: lease.partition,
                problem: e.to_string(),
            }),
        }
    }

    /// Gives the partition up so another node can take it at once rather than after the TTL.
    /// Only deletes the key if it is still this lease's write.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        self.kv
            .delete_expect_revision(lease.partition.lease_key(), Some(lease.revision))
            .await
            .map_err(|e| LeaseError::Lost {
                partition: lease.partition,
                epoch: lease.epoch,
                why: format!("release: {e}"),
            })
    }

    /// Renews `lease` every `every` until stopped or lost; the watch says which. A renewal
    /// that gets no answer is retried; the lease counts as lost when it is past
    /// [`Lease::valid_until`] without one, since the server may have expired it by then.
    pub fn keep(&self, lease: Lease, every: Duration) -> Renewer {
        self.keep_telling(lease, every, |_| {})
    }

    /// [`LeaseBucket::keep`], telling `tell` until when the lease is surely held, at once and
    /// after every acknowledged renewal, and `None` when it is lost. An owner that checks this
    /// time before it speaks stops at it even when it was paused and its loop has not run yet.
    pub fn keep_telling(
        &self,
        lease: Lease,
        every: Duration,
        tell: impl Fn(Option<Instant>) + Send + 'static,
    ) -> Renewer {
        tell(Some(lease.valid_until()));
        let (state_tx, state_rx) = watch::channel(LeaseState::Held { epoch: lease.epoch });
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let bucket = self.clone();
        let task = tokio::spawn(async move {
            let mut lease = lease;
            // Counted from when each renewal was sent, not from its answer: a slow answer
            // (a loaded server, a leader being elected) would otherwise push every later
            // renewal back by its delay, and the lease would run out while the bucket still
            // answers within the TTL.
            let mut next = lease.written_at + every;
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return Some(lease),
                    _ = tokio::time::sleep_until(next) => {}
                }
                // Woken too late (a paused process, a starved runtime): the bucket may have
                // given the partition away already. Say so before anything else.
                if Instant::now() >= lease.valid_until() {
                    let why = "no renewal acknowledged within the TTL".to_owned();
                    tell(None);
                    report_lost(&lease, &why);
                    let _ = state_tx.send(LeaseState::Lost { why });
                    return None;
                }
                // A renewal still unanswered when the lease runs out cannot be counted on: the
                // owner must not go on speaking while it waits (the request timeout is longer).
                let renewed =
                    match tokio::time::timeout_at(lease.valid_until(), bucket.renew(&mut lease))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(LeaseError::Lost {
                            partition: lease.partition,
                            epoch: lease.epoch,
                            why: "the TTL ran out while a renewal was unanswered".into(),
                        }),
                    };
                match renewed {
                    Ok(()) => {
                        tell(Some(lease.valid_until()));
                        next = lease.written_at + every;
                    }
                    Err(LeaseError::Lost { why, .. }) => {
                        tell(None);
                        report_lost(&lease, &why);
                        let _ = state_tx.send(LeaseState::Lost { why });
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(partition = %lease.partition, error = %e, "lease renewal failed; retrying");
                        next = Instant::now() + every / 4;
                    }
                }
            }
        });
        Renewer {
            state: state_rx,
            stop: Some(stop_tx),
            task: Some(task),
            bucket: self.clone(),
        }
    }
}

fn report_lost(lease: &Lease, why: &str) {
    tracing::warn!(partition = %lease.partition, epoch = lease.epoch, why, "partition lease lost");
    metrics::counter!("vaka_cluster_lease_lost_total", "partition" => lease.partition.to_string())
        .increment(1);
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Held { epoch: u64 },
    Lost { why: String },
}

/// A running renewal loop. Dropping it stops renewing (the lease then expires by itself).
pub struct Renewer {
    state: watch::Receiver<LeaseState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Option<Lease>>>,
    bucket: LeaseBucket,
}

impl Renewer {
    /// Changes to `Lost` when the lease is lost; the owner stops speaking on that change.
    pub fn state(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    /// Stops renewing and releases the lease if it is still held.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("released once");
        match task.await {
            Ok(Some(lease)) => self.bucket.release(lease).await,
            Ok(None) => Ok(()),
            Err(e) => Err(LeaseError::Bucket(format!("renewal task: {e}"))),
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LiveNode;

    #[test]
    fn a_node_key_names_the_node_and_its_range_and_a_partition_key_no_node() {
        let live = |node: &str, range| {
            Some(LiveNode {
                node: node.into(),
                range,
            })
        };
        assert_eq!(LiveNode::of_key("n.a.3"), live("a", 3));
        assert_eq!(LiveNode::of_key("n.node.b.12"), live("node.b", 12));
        assert_eq!(
            LiveNode::of_key("n.old"),
            live("old", 0),
            "a key without a range"
        );
        assert_eq!(LiveNode::of_key("p7"), None);
    }
}
