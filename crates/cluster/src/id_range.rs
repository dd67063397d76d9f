//! Event and alarm ids unique across the cluster. Each node's store gives its own ids (an
//! alarm's id is the id of the event that opened it), so two nodes counting from 1 gave the
//! same ids to different alarms: a centre connected to both, which deduplicates by alarm id
//! (invariant 3), would drop one of them, and an alarm id looked up on the other node named
//! another person's alarm.
//!
//! So each node's store takes a range of ids from the KV bucket `VAKA_ID_RANGES` (R3, file
//! storage, history 1, no expiry): range `n` is `[n << RANGE_BITS, (n + 1) << RANGE_BITS)`,
//! claimed by creating key `n`, which only one node can do, and never given again (a node whose
//! data dir was wiped claims a new one, since its old ids may still be held by centres).
//! Range 0 is the single node's. Ranges are claimed in rising order, so a store that takes a
//! new range keeps ids growing with arrival, which retention's walks rely on.
//!
//! Every id stays below 2^53, so it is exact as a JSON number read by JavaScript (the
//! dashboard, the responder page).

use async_nats::jetstream::kv::{self, Store};
use async_nats::jetstream::stream::StorageType;
use async_nats::jetstream::Context;
use bytes::Bytes;

use crate::config::REPLICAS;
use crate::lease::is_revision_conflict;
use crate::substrate::{check_stream_config, SubstrateError};

pub const ID_RANGE_BUCKET: &str = "VAKA_ID_RANGES";
/// A range holds 2^43 ids: about 28 years of a node taking 10,000 events a second.
pub const RANGE_BITS: u32 = vaka_core::ids::ID_RANGE_BITS;
/// The last range: `(MAX_RANGE + 1) << RANGE_BITS` is 2^53.
pub const MAX_RANGE: u64 = (1 << (53 - RANGE_BITS)) - 1;

/// The first id of range `n`.
pub fn first_id(n: u64) -> u64 {
    n << RANGE_BITS
}

/// The range id `id` lies in.
pub fn range_of(id: u64) -> u64 {
    id >> RANGE_BITS
}

/// The first id past range `n`.
pub fn end(n: u64) -> u64 {
    (n + 1) << RANGE_BITS
}

#[derive(Debug, thiserror::Error)]
pub enum IdRangeError {
    #[error(transparent)]
    Substrate(#[from] SubstrateError),
    #[error("bucket {ID_RANGE_BUCKET}: {0}")]
    Bucket(String),
    #[error("bucket {ID_RANGE_BUCKET}: every id range up to {MAX_RANGE} is taken")]
    Exhausted,
}

pub struct IdRanges {
    kv: Store,
}

impl IdRanges {
    /// Creates the bucket if it does not exist, else checks it: R3 on file storage, and no
    /// expiry (a range that expired could be claimed twice).
    pub async fn open(js: &Context) -> Result<IdRanges, IdRangeError> {
        let wanted = kv::Config {
            bucket: ID_RANGE_BUCKET.into(),
            history: 1,
            storage: StorageType::File,
            num_replicas: REPLICAS,
            ..Default::default()
        };
        let kv = match js.create_key_value(wanted).await {
            Ok(kv) => kv,
            Err(created) => js.get_key_value(ID_RANGE_BUCKET).await.map_err(|e| {
                IdRangeError::Bucket(format!("cannot create ({created}) nor open ({e})"))
            })?,
        };
        let info = kv
            .stream
            .get_info()
            .await
            .map_err(|e| IdRangeError::Bucket(e.to_string()))?;
        let what = format!("bucket {ID_RANGE_BUCKET}");
        check_stream_config(&what, &info.config)?;
        if !info.config.max_age.is_zero() {
            return Err(SubstrateError::Config {
                what,
                problem: format!(
                    "entries expire after {:?}; a claimed id range must never expire",
                    info.config.max_age
                ),
            }
            .into());
        }
        Ok(IdRanges { kv })
    }

    /// Claims the lowest range above `above` that nobody has claimed, for `node`. A create is
    /// checked by the stream's leader, so two nodes asking at once get different ranges.
    pub async fn claim(&self, node: &str, above: u64) -> Result<u64, IdRangeError> {
        for n in above + 1..=MAX_RANGE {
            // Revision 0: only if the key was never written.
            match self
                .kv
                .update(n.to_string(), Bytes::from(node.to_owned()), 0)
                .await
            {
                Ok(_) => return Ok(n),
                Err(e) if is_revision_conflict(&e) => continue,
                Err(e) => return Err(IdRangeError::Bucket(e.to_string())),
            }
        }
        Err(IdRangeError::Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_disjoint_and_every_id_is_exact_in_javascript() {
        assert_eq!(end(0), first_id(1));
        assert!(first_id(1) > 1_000_000_000_000);
        assert_eq!(end(MAX_RANGE), 1 << 53);
        assert!(end(MAX_RANGE) - 1 <= 9_007_199_254_740_991); // Number.MAX_SAFE_INTEGER
    }
}
