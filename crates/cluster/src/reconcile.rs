//! Reconciliation: a node's own synced record of what it applied, held against what the stream
//! holds. JetStream has lost acknowledged writes (file corruption, split brain after a power
//! cut: nats-server issues 7549 and 7567); the node's record is the independent witness that
//! makes such a loss visible. Every finding is logged as an error and counted; none is
//! absorbed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::input_log::{InputLog, LogError};
use crate::partition::Partition;

/// SHA-256 of an input's bytes: what a node records per applied sequence.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

/// One disagreement, at a stream sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// This node applied an input at this sequence; the stream no longer has it in this
    /// partition (deleted, lost in a truncated tail, or another partition's input there now).
    Missing { seq: u64 },
    /// The stream has an input there whose bytes differ from what this node applied.
    Differs {
        seq: u64,
        applied: Digest,
        stream: Digest,
    },
    /// The stream has this partition's input here, below inputs this node applied after it,
    /// but this node's record lacks it: the node skipped it, or its record lost it.
    Unapplied { seq: u64 },
}

impl Finding {
    pub fn seq(&self) -> u64 {
        match *self {
            Finding::Missing { seq }
            | Finding::Differs { seq, .. }
            | Finding::Unapplied { seq } => seq,
        }
    }

    /// Missing and differing inputs are losses of the substrate; an unapplied one is this
    /// node's divergence.
    pub fn is_loss(&self) -> bool {
        !matches!(self, Finding::Unapplied { .. })
    }
}

/// Compares one partition. `applied`: what this node applied (sequence -> digest);
/// `stream`: the partition's inputs the stream holds from the lowest applied sequence on, read
/// after the record was taken, so anything newer is above the record and not compared.
pub fn compare(applied: &BTreeMap<u64, Digest>, stream: &BTreeMap<u64, Digest>) -> Vec<Finding> {
    let mut found = Vec::new();
    let Some((&low, _)) = applied.first_key_value() else {
        return found;
    };
    let high = *applied.last_key_value().expect("not empty").0;
    for (&seq, &mine) in applied {
        match stream.get(&seq) {
            None => found.push(Finding::Missing { seq }),
            Some(&theirs) if theirs != mine => found.push(Finding::Differs {
                seq,
                applied: mine,
                stream: theirs,
            }),
            Some(_) => {}
        }
    }
    for &seq in stream.range(low..=high).map(|(s, _)| s) {
        if !applied.contains_key(&seq) {
            found.push(Finding::Unapplied { seq });
        }
    }
    found.sort_by_key(Finding::seq);
    found
}

/// A run of stream sequences the stream no longer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from: u64,
    pub to: u64,
}

/// Holes in the stream's sequence (Vaka never deletes an input, so every one is a loss) that no
/// record explains: whose partition they were is unknown here. `deleted` is the stream's list
/// of deleted sequences; `first` its first sequence (everything below it is gone too).
pub fn gaps(first: u64, deleted: &BTreeSet<u64>, explained: &BTreeSet<u64>) -> Vec<Gap> {
    let mut out: Vec<Gap> = Vec::new();
    let mut add = |from: u64, to: u64| match out.last_mut() {
        Some(g) if g.to + 1 == from => g.to = to,
        _ => out.push(Gap { from, to }),
    };
    // Below the first sequence, minus what a record explains (that is reported as Missing).
    if first > 1 {
        let mut start = 1;
        for &e in explained.range(1..first) {
            if e > start {
                add(start, e - 1);
            }
            start = e + 1;
        }
        if start < first {
            add(start, first - 1);
        }
    }
    // Sequences start at 1: an empty stream reports a first sequence of 0, and may list 0.
    for &s in deleted {
        if s >= first.max(1) && !explained.contains(&s) {
            add(s, s);
        }
    }
    out
}

/// The outcome of a reconciliation pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub findings: Vec<(Partition, Finding)>,
    pub gaps: Vec<Gap>,
}

impl Reconciliation {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.gaps.is_empty()
    }
}

/// Logs and counts every finding: `vaka_cluster_input_lost_total{partition}` for losses (a gap
/// whose partition is unknown counts under `partition="unknown"`),
/// `vaka_cluster_input_unapplied_total{partition}` for a node's own divergence.
pub fn report(r: &Reconciliation) {
    for (p, f) in &r.findings {
        let partition = p.to_string();
        if f.is_loss() {
            tracing::error!(partition = %p, seq = f.seq(), finding = ?f,
                "input lost: the stream no longer holds what this node applied");
            metrics::counter!("vaka_cluster_input_lost_total", "partition" => partition)
                .increment(1);
        } else {
            tracing::error!(partition = %p, seq = f.seq(), finding = ?f,
                "input unapplied: this node's record lacks an input the stream holds");
            metrics::counter!("vaka_cluster_input_unapplied_total", "partition" => partition)
                .increment(1);
        }
    }
    for g in &r.gaps {
        tracing::error!(
            from = g.from,
            to = g.to,
            "input lost: the stream's sequence has a gap no node record here explains"
        );
        metrics::counter!("vaka_cluster_input_lost_total", "partition" => "unknown")
            .increment(g.to - g.from + 1);
    }
}

/// Runs a pass against the stream: `records` is what this node applied, per partition. The
/// stream's holes are read once; each partition's inputs from its lowest applied sequence on.
/// Reports (logs and counts) what it finds and returns it.
pub async fn reconcile(
    log: &InputLog,
    records: &BTreeMap<Partition, BTreeMap<u64, Digest>>,
) -> Result<Reconciliation, LogError> {
    let info = log
        .stream()
        .info_builder()
        .with_deleted(true)
        .fetch()
        .await
        .map_err(|e| LogError::Stream(format!("info: {e}")))?
        .info;
    let deleted: BTreeSet<u64> = info.state.deleted.unwrap_or_default().into_iter().collect();
    let mut out = Reconciliation::default();
    let mut explained = BTreeSet::new();
    for (&p, applied) in records {
        let Some((&low, _)) = applied.first_key_value() else {
            continue;
        };
        explained.extend(applied.keys().copied());
        let mut stream = BTreeMap::new();
        let mut from = low;
        loop {
            let batch = log.read(p, from, 10_000).await?;
            let Some(last) = batch.last() else { break };
            from = last.sequence + 1;
            stream.extend(batch.iter().map(|i| (i.sequence, Digest::of(&i.bytes))));
        }
        out.findings
            .extend(compare(applied, &stream).into_iter().map(|f| (p, f)));
    }
    out.gaps = gaps(info.state.first_sequence, &deleted, &explained);
    report(&out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn map(items: &[(u64, &str)]) -> BTreeMap<u64, Digest> {
        items.iter().map(|&(s, b)| (s, d(b))).collect()
    }

    #[test]
    fn agreement_is_clean_and_newer_stream_inputs_are_not_findings() {
        let applied = map(&[(3, "a"), (7, "b"), (9, "c")]);
        let stream = map(&[(3, "a"), (7, "b"), (9, "c"), (12, "d"), (15, "e")]);
        assert_eq!(compare(&applied, &stream), vec![]);
        assert_eq!(compare(&BTreeMap::new(), &stream), vec![]);
    }

    #[test]
    fn a_missing_a_differing_and_an_unapplied_input_are_each_found() {
        let applied = map(&[(3, "a"), (7, "b"), (9, "c"), (20, "z")]);
        let stream = map(&[(3, "a"), (5, "x"), (9, "C")]);
        assert_eq!(
            compare(&applied, &stream),
            vec![
                Finding::Unapplied { seq: 5 },
                Finding::Missing { seq: 7 },
                Finding::Differs {
                    seq: 9,
                    applied: d("c"),
                    stream: d("C")
                },
                // The stream's tail is gone: an applied input above what it holds.
                Finding::Missing { seq: 20 },
            ]
        );
        assert!(Finding::Missing { seq: 1 }.is_loss());
        assert!(!Finding::Unapplied { seq: 1 }.is_loss());
    }

    #[test]
    fn gaps_are_holes_no_record_explains_merged_into_runs() {
        let deleted: BTreeSet<u64> = [4, 5, 6, 10, 12].into();
        let explained: BTreeSet<u64> = [5, 12].into();
        assert_eq!(
            gaps(1, &deleted, &explained),
            vec![
                Gap { from: 4, to: 4 },
                Gap { from: 6, to: 6 },
                Gap { from: 10, to: 10 }
            ]
        );
        // A stream starting above 1 lost its head.
        assert_eq!(
            gaps(4, &BTreeSet::new(), &[2].into()),
            vec![Gap { from: 1, to: 1 }, Gap { from: 3, to: 3 }]
        );
        assert_eq!(gaps(1, &BTreeSet::new(), &BTreeSet::new()), vec![]);
        // A stream with nothing in it yet.
        assert_eq!(gaps(0, &[0].into(), &BTreeSet::new()), vec![]);
    }

    #[test]
    fn findings_are_counted_by_partition() {
        use metrics::with_local_recorder;
        let rec = crate::testing::CountingRecorder::default();
        let r = Reconciliation {
            findings: vec![
                (Partition(3), Finding::Missing { seq: 7 }),
                (Partition(3), Finding::Unapplied { seq: 8 }),
                (
                    Partition(5),
                    Finding::Differs {
                        seq: 9,
                        applied: d("a"),
                        stream: d("b"),
                    },
                ),
            ],
            gaps: vec![Gap { from: 20, to: 22 }],
        };
        with_local_recorder(&rec, || report(&r));
        assert_eq!(rec.get("vaka_cluster_input_lost_total{partition=3}"), 1);
        assert_eq!(rec.get("vaka_cluster_input_lost_total{partition=5}"), 1);
        assert_eq!(
            rec.get("vaka_cluster_input_lost_total{partition=unknown}"),
            3
        );
        assert_eq!(
            rec.get("vaka_cluster_input_unapplied_total{partition=3}"),
            1
        );
    }
}
