//! Reconciliation at start and every `cluster.reconcile_every_ms`: this node's record of the
//! inputs it holds, up to its follower's read mark (below it every input is held or was
//! refused a place, so a lack there is a finding and not an append in flight), held against
//! what `VAKA_IN` holds (`vaka_cluster::reconcile`: missing, differing, unapplied inputs and
//! unexplained gaps, each logged as an error and counted, which pages through
//! `VakaClusterInputLost`).
//!
//! A pass reads every partition from its lowest recorded input on, so its cost grows with the
//! stream; bounding the stream and the record (retention of inputs) is not built yet.

use std::collections::BTreeMap;
use std::time::Duration;
use vaka_cluster::reconcile::{self, Digest, Reconciliation};
use vaka_cluster::{InputLog, Partition};
use vaka_store::Store;

/// One pass: what it found, or why it could not look.
pub async fn pass(log: &InputLog, store: &Store) -> Result<Reconciliation, String> {
    let mark = store.input_read().map_err(|e| e.to_string())?;
    let records: BTreeMap<Partition, BTreeMap<u64, Digest>> = store
        .input_records()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(p, seqs)| {
            let upto = seqs
                .into_iter()
                .filter(|(s, _)| *s <= mark)
                .map(|(s, d)| (s, Digest(d)))
                .collect();
            (Partition(p), upto)
        })
        .collect();
    let found = reconcile::reconcile(log, &records)
        .await
        .map_err(|e| e.to_string())?;
    let result = if found.is_clean() {
        "clean"
    } else {
        "findings"
    };
    metrics::counter!("vaka_cluster_reconciliations_total", "result" => result).increment(1);
    Ok(found)
}

/// A pass at once (the node's start), then one every `every`, until aborted.
pub fn spawn(log: InputLog, store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match pass(&log, &store).await {
                Ok(found) => tracing::debug!(clean = found.is_clean(), "cluster: reconciled"),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: reconciliation could not run; trying at the next pass");
                    metrics::counter!("vaka_cluster_reconciliations_total", "result" => "failed")
                        .increment(1);
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}
