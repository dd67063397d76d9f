//! A cluster node's ids: its store gives event and alarm ids from a range of its own
//! (`vaka_cluster::id_range`, bucket `VAKA_ID_RANGES`), so no two nodes give one id to
//! different alarms. Taken before anything on the node gives an id (the directory's and the
//! input log's catch-up), and kept in the store (`meta` `id_range`) across restarts.

use vaka_cluster::id_range::{self, IdRangeError, IdRanges};
use vaka_core::Lane;
use vaka_store::{Store, WriteSet};

/// A store with less than this left of its range takes a new one at start, so no run reaches
/// the next node's range (2^40 ids: years of any node's rate).
const LEFT_AT_START: u64 = 1 << 40;

/// Makes `store` give its ids from its range, claiming one for `node` first if it has none
/// (a new data dir) or little is left of it. Returns the range.
pub async fn take(
    js: &async_nats::jetstream::Context,
    store: &Store,
    node: &str,
) -> Result<u64, String> {
    let err = |e: &dyn std::fmt::Display| format!("the cluster's id ranges: {e}");
    let held = store.id_range().map_err(|e| err(&e))?;
    let next = store.next_id();
    let range = if held > 0 && next < id_range::end(held) - LEFT_AT_START {
        held
    } else {
        if held > 0 && next >= id_range::end(held) {
            tracing::error!(
                range = held,
                next_id = next,
                "cluster: this node's ids ran past its id range into the next one's"
            );
        }
        // Tried again while a cluster that is just starting elects the bucket's leader (a
        // claim whose answer was lost wastes a range: there are 1,023).
        let claimed = crate::settling::open_while_settling(
            "the cluster's id ranges",
            |e| matches!(e, IdRangeError::Substrate(_) | IdRangeError::Exhausted),
            || async { IdRanges::open(js).await?.claim(node, held).await },
        )
        .await?;
        let mut set = WriteSet::new();
        set.put_id_range(claimed);
        store.commit(Lane::Alarm, set).await.map_err(|e| err(&e))?;
        tracing::info!(node, range = claimed, "cluster: id range claimed");
        claimed
    };
    store.ids_past(id_range::first_id(range) - 1);
    metrics::gauge!("vaka_cluster_id_range").set(range as f64);
    Ok(range)
}
