//! Reconciliation at start and every `cluster.reconcile_every_ms`: this node's record of the
//! inputs it holds, held against what `VAKA_IN` holds (`vaka_cluster::reconcile`: missing,
//! differing and unapplied inputs and unexplained gaps, each logged as an error and counted,
//! which pages through `VakaClusterInputLost`). A pass looks at
//! - what was recorded since the last pass, up to the follower's read mark (below it every
//!   input is held or was refused a place, so a lack there is a finding and not an append in
//!   flight); the checked mark (`meta` `input_checked`) then moves there;
//! - a slice of what was checked before (as many as are new, at least [`SCRUB_PER_PASS`], on
//!   from where the last slice ended, round again from the stream's first sequence): the
//!   stream can lose what it acknowledged long ago (a damaged file);
//! - the stream's holes: one this node holds is a loss in its partition, one it does not is a
//!   gap;
//! - its records below the stream's first sequence: those the stream aged out (its max age as
//!   it is now, `cluster.input_retention_ms`) are forgotten; the others were lost from the
//!   stream's head and are reported every pass until they would have aged out.
//!
//! So a pass reads about twice what arrived since the last one (at least 20,000 inputs more),
//! a chunk at a time, not the whole stream, and the record is as long as the stream's
//! retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vaka_cluster::reconcile::{self, Digest, Finding, Reconciliation};
use vaka_cluster::{InputLog, Partition};
use vaka_core::Lane;
use vaka_store::{InputRecord, Store, WriteSet};

/// Inputs checked again per pass at least; with more arriving, as many as arrived since the
/// last pass, so the slice comes round the whole retained stream within its retention (every
/// input is checked again about once in its life) whatever the rate, and a pass reads about
/// twice what arrived.
pub const SCRUB_PER_PASS: usize = 20_000;
/// Records read and checked at a time: what a pass holds in memory.
pub const CHUNK: usize = 100_000;

/// How much of a range a pass checked.
#[derive(Default)]
struct Checked {
    count: usize,
    last: Option<u64>,
}

pub struct Reconciler {
    log: InputLog,
    store: Store,
    /// Where the next slice of what was checked before starts.
    scrub_from: u64,
    /// Records read and checked at a time ([`CHUNK`]).
    chunk: usize,
}

fn by_partition(records: &[InputRecord]) -> BTreeMap<Partition, BTreeMap<u64, Digest>> {
    let mut out: BTreeMap<Partition, BTreeMap<u64, Digest>> = BTreeMap::new();
    for r in records {
        out.entry(Partition(r.partition))
            .or_default()
            .insert(r.sequence, Digest(r.digest));
    }
    out
}

impl Reconciler {
    pub fn new(log: InputLog, store: Store) -> Reconciler {
        Reconciler {
            log,
            store,
            scrub_from: 0,
            chunk: CHUNK,
        }
    }

    /// Checks `chunk` records at a time instead of [`CHUNK`] (a test's ranges span chunks).
    pub fn with_chunk(mut self, chunk: usize) -> Reconciler {
        self.chunk = chunk.max(1);
        self
    }

    /// One pass: what it found, or why it could not look.
    pub async fn pass(&mut self) -> Result<Reconciliation, String> {
        let started = std::time::Instant::now();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let store = &self.store;
        let extent = self.log.extent().await.map_err(|e| err(&e))?;
        let mark = store.input_read().map_err(|e| err(&e))?;
        let checked = store.input_checked().map_err(|e| err(&e))?;
        let first = extent.first.max(1);
        let mut findings: Vec<(Partition, Finding)> = Vec::new();

        // Below the stream's first sequence: aged out, or lost from its head.
        findings.extend(self.age_out(first, extent.max_age).await?);

        let ranges = reconcile::pass_ranges(first, checked, mark, self.scrub_from);
        // What was recorded since the last pass, all of it: a pass keeps up with any rate.
        let (new_found, new) = self
            .check_range(*ranges.new.start(), *ranges.new.end(), usize::MAX)
            .await?;
        // A slice of what was checked before, as many as are new: round and round.
        let (old_found, old) = self
            .check_range(
                *ranges.again.start(),
                *ranges.again.end(),
                SCRUB_PER_PASS.max(new.count),
            )
            .await?;
        self.scrub_from = old.last.map_or(first, |s| s + 1);
        findings.extend(new_found);
        findings.extend(old_found);

        // The stream's holes: a loss this node can place, or a gap.
        let mut explained = BTreeSet::new();
        for &s in extent.deleted.range(first..) {
            if let Some(r) = store.input_record(s).map_err(|e| err(&e))? {
                explained.insert(s);
                if !findings.iter().any(|(_, f)| f.seq() == s) {
                    findings.push((Partition(r.partition), Finding::Missing { seq: s }));
                }
            }
        }
        findings.sort_by_key(|(p, f)| (f.seq(), *p));
        let found = Reconciliation {
            gaps: reconcile::gaps(first, &extent.deleted, &explained),
            findings,
        };
        reconcile::report(&found);

        let mut set = WriteSet::new();
        set.put_input_checked(mark);
        store
            .commit(Lane::Telemetry, set)
            .await
            .map_err(|e| err(&e))?;
        metrics::gauge!("vaka_cluster_input_checked_sequence").set(mark as f64);
        metrics::histogram!("vaka_cluster_reconciliation_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("vaka_cluster_reconciled_inputs_total")
            .increment((new.count + old.count) as u64);
        let result = if found.is_clean() {
            "clean"
        } else {
            "findings"
        };
        metrics::counter!("vaka_cluster_reconciliations_total", "result" => result).increment(1);
        Ok(found)
    }

    /// Forgets the records below the stream's first sequence that aged out, a chunk at a time;
    /// the others were lost from the stream's head: returned as findings.
    async fn age_out(
        &self,
        first: u64,
        max_age: Duration,
    ) -> Result<Vec<(Partition, Finding)>, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let now = super::now_ms();
        let mut lost = Vec::new();
        let mut next = 0;
        loop {
            let chunk = self
                .store
                .input_records_between(next, first - 1, self.chunk)
                .map_err(|e| err(&e))?;
            let Some(last) = chunk.last() else { break };
            next = last.sequence + 1;
            let (aged, kept): (Vec<InputRecord>, Vec<InputRecord>) = chunk
                .iter()
                .partition(|r| reconcile::aged_out(r.stamped_ms, now, max_age));
            let aged: Vec<u64> = aged.iter().map(|r| r.sequence).collect();
            self.store.forget_inputs(&aged).map_err(|e| err(&e))?;
            metrics::counter!("vaka_cluster_input_records_forgotten_total")
                .increment(aged.len() as u64);
            lost.extend(
                kept.iter()
                    .map(|r| (Partition(r.partition), Finding::Missing { seq: r.sequence })),
            );
            if chunk.len() < self.chunk {
                break;
            }
        }
        Ok(lost)
    }

    /// Checks up to `max` of this node's records in `from..=to` against the stream, a chunk
    /// ([`CHUNK`]) at a time, so what a pass holds in memory is bounded whatever it checks.
    async fn check_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<(Vec<(Partition, Finding)>, Checked), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut found = Vec::new();
        let mut done = Checked::default();
        let mut next = from;
        while done.count < max && next <= to {
            let want = self.chunk.min(max - done.count);
            let chunk = self
                .store
                .input_records_between(next, to, want)
                .map_err(|e| err(&e))?;
            let Some(last) = chunk.last().map(|r| r.sequence) else {
                break;
            };
            found.extend(
                reconcile::check(&self.log, &by_partition(&chunk))
                    .await
                    .map_err(|e| err(&e))?,
            );
            done.count += chunk.len();
            done.last = Some(last);
            next = last + 1;
            if chunk.len() < want {
                break;
            }
        }
        Ok((found, done))
    }

    /// A pass at once (the node's start), then one every `every`, until aborted.
    /// `vaka_cluster_reconciled_timestamp_seconds` is when a pass last ran to its end (from the
    /// start on), `vaka_cluster_reconcile_every_seconds` the period: `VakaClusterReconciliationStalled`
    /// fires when passes stop running.
    pub fn spawn(mut self, every: Duration) -> tokio::task::JoinHandle<()> {
        metrics::gauge!("vaka_cluster_reconcile_every_seconds").set(every.as_secs_f64());
        super::stamp("vaka_cluster_reconciled_timestamp_seconds");
        tokio::spawn(async move {
            loop {
                match self.pass().await {
                    Ok(found) => {
                        super::stamp("vaka_cluster_reconciled_timestamp_seconds");
                        tracing::debug!(clean = found.is_clean(), "cluster: reconciled")
                    }
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
}
