//! Reconciliation: a node's own synced record of what it applied, held against what the stream
//! holds. JetStream has lost acknowledged writes (file corruption, split brain after a power
//! cut: nats-server issues 7549 and 7567); the node's record is the independent witness that
//! makes such a loss visible. Every finding is logged as an error and counted; none is
//! absorbed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

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
/// of deleted sequences; `first` its first sequence. What lies below `first` aged out or was
/// lost from the head; a node's record tells which ([`aged_out`]), so it is not a gap here.
pub fn gaps(first: u64, deleted: &BTreeSet<u64>, explained: &BTreeSet<u64>) -> Vec<Gap> {
    let mut out: Vec<Gap> = Vec::new();
    let mut add = |from: u64, to: u64| match out.last_mut() {
        Some(g) if g.to + 1 == from => g.to = to,
        _ => out.push(Gap { from, to }),
    };
    // Sequences start at 1: an empty stream reports a first sequence of 0, and may list 0.
    for &s in deleted {
        if s >= first.max(1) && !explained.contains(&s) {
            add(s, s);
        }
    }
    out
}

/// Whether an input this node recorded at `stamped_ms`, now below the stream's first sequence,
/// aged out (the stream's max age, `retention`, has passed since) rather than was lost from the
/// stream's head. The age is read less a slack for the clocks of nodes and servers: a tenth of
/// the retention, at most an hour. With no retention (zero) nothing ages out.
pub fn aged_out(stamped_ms: u64, now_ms: u64, retention: Duration) -> bool {
    if retention.is_zero() {
        return false;
    }
    let retention_ms = retention.as_millis().min(u128::from(u64::MAX)) as u64;
    let slack_ms = (retention_ms / 10).min(3_600_000);
    now_ms.saturating_sub(stamped_ms) >= retention_ms - slack_ms
}

/// The ranges of a node's record one pass checks: what was recorded since the last pass
/// (`new`: above the checked mark, up to the read mark) and a slice of what was checked before
/// (`again`: from `scrub_from`, or from the stream's first sequence once the slice has come
/// round to the checked mark; the caller takes at most so many inputs of it). Empty ranges
/// have their start past their end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassRanges {
    pub new: std::ops::RangeInclusive<u64>,
    pub again: std::ops::RangeInclusive<u64>,
}

/// See [`PassRanges`]. `first`: the stream's first sequence (at least 1); `checked` and `read`:
/// the node's marks; `scrub_from`: where the last pass's slice ended.
pub fn pass_ranges(first: u64, checked: u64, read: u64, scrub_from: u64) -> PassRanges {
    let first = first.max(1);
    let checked = checked.min(read);
    let from = if scrub_from < first || scrub_from > checked {
        first
    } else {
        scrub_from
    };
    PassRanges {
        new: checked.max(first - 1) + 1..=read,
        again: from..=checked,
    }
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

/// Holds `records` (what this node applied, per partition) against the stream: the stream is
/// read once from the lowest to the highest applied sequence, nothing past it, so a pass over a
/// range of the record costs that range. Reports nothing.
pub async fn check(
    log: &InputLog,
    records: &BTreeMap<Partition, BTreeMap<u64, Digest>>,
) -> Result<Vec<(Partition, Finding)>, LogError> {
    let seqs = || records.values().flat_map(|r| r.keys().copied());
    let (Some(low), Some(high)) = (seqs().min(), seqs().max()) else {
        return Ok(Vec::new());
    };
    let mut stream: BTreeMap<Partition, BTreeMap<u64, Digest>> = BTreeMap::new();
    for i in log.read_range(None, low, high, 10_000).await? {
        stream
            .entry(i.partition)
            .or_default()
            .insert(i.sequence, Digest::of(&i.bytes));
    }
    let none = BTreeMap::new();
    Ok(records
        .iter()
        .flat_map(|(&p, applied)| {
            compare(applied, stream.get(&p).unwrap_or(&none))
                .into_iter()
                .map(move |f| (p, f))
        })
        .collect())
}

/// A whole pass against the stream ([`check`] and the stream's holes), reported (logged and
/// counted) and returned.
pub async fn reconcile(
    log: &InputLog,
    records: &BTreeMap<Partition, BTreeMap<u64, Digest>>,
) -> Result<Reconciliation, LogError> {
    let extent = log.extent().await?;
    let explained: BTreeSet<u64> = records.values().flat_map(|r| r.keys().copied()).collect();
    let out = Reconciliation {
        findings: check(log, records).await?,
        gaps: gaps(extent.first, &extent.deleted, &explained),
    };
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
        // Below the first sequence is for the records to tell (aged out or lost).
        assert_eq!(gaps(4, &BTreeSet::new(), &[2].into()), vec![]);
        assert_eq!(
            gaps(4, &[2, 5].into(), &BTreeSet::new()),
            vec![Gap { from: 5, to: 5 }]
        );
        assert_eq!(gaps(1, &BTreeSet::new(), &BTreeSet::new()), vec![]);
        // A stream with nothing in it yet.
        assert_eq!(gaps(0, &[0].into(), &BTreeSet::new()), vec![]);
    }

    #[test]
    fn a_pass_checks_what_is_new_and_a_slice_of_the_rest_that_comes_round_again() {
        // The first pass: everything read is new, nothing to check again.
        let r = pass_ranges(1, 0, 100, 0);
        assert_eq!((r.new, r.again.is_empty()), (1..=100, true));
        // Later: what came since, and the slice from where the last one ended.
        let r = pass_ranges(1, 100, 150, 40);
        assert_eq!((r.new, r.again), (101..=150, 40..=100));
        // The slice has come round to the checked mark: from the stream's first again.
        assert_eq!(pass_ranges(1, 100, 150, 101).again, 1..=100);
        // The stream aged its head out: neither range starts below its first sequence.
        let r = pass_ranges(60, 100, 150, 40);
        assert_eq!((r.new, r.again), (101..=150, 60..=100));
        let r = pass_ranges(120, 100, 150, 40);
        assert_eq!(r.new, 120..=150);
        assert!(r.again.is_empty());
        // Nothing read since: nothing new.
        assert!(pass_ranges(1, 150, 150, 1).new.is_empty());
        // An empty stream reports a first sequence of 0.
        let r = pass_ranges(0, 0, 0, 0);
        assert_eq!((*r.new.start(), r.new.is_empty()), (1, true));
    }

    #[test]
    fn an_input_ages_out_after_the_retention_less_a_slack_for_clocks() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let week_ms = week.as_millis() as u64;
        let t = 1_000_000_000_000;
        // An hour's slack at most: a week less an hour is aged out, a day less is not.
        assert!(aged_out(t, t + week_ms - 3_600_000, week));
        assert!(!aged_out(t, t + week_ms - 3_600_001, week));
        assert!(!aged_out(t, t + week_ms - 24 * 3_600_000, week));
        // A tenth of a short retention.
        let short = Duration::from_secs(3);
        assert!(aged_out(t, t + 2_700, short));
        assert!(!aged_out(t, t + 2_699, short));
        // A record stamped after now (clocks) is not aged; nothing ages without a retention.
        assert!(!aged_out(t + 10, t, short));
        assert!(!aged_out(0, u64::MAX, Duration::ZERO));
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
