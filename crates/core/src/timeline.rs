//! The deadlines one alarm ran under, read back from its audit trail (for incident reports):
//! each offer to a centre starts a receipt deadline, a receipt ends it and starts an accept
//! deadline, an operator's accept ends that; an escalation, expiry or "unhandled" naming a
//! missed deadline ends it missed. A deadline met after it was due (a centre back within its
//! reconnect grace) is missed too. The lengths are the device's deadlines as given (the trail
//! holds when each started and ended, not the configuration of the time).
use serde::Serialize;

use crate::alarm::{AuditRecord, DeadlineKind, Deadlines};
use crate::UnixMillis;

/// How a deadline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Met in time.
    Met,
    /// Passed: the alarm escalated, expired or became unhandled; or met only after it was due.
    Missed,
    /// The alarm ended otherwise first (cancelled, closed, restored, offered elsewhere).
    Ended,
    /// Still running (the alarm is open).
    Running,
}

/// One deadline the alarm ran under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlineRun {
    pub kind: DeadlineKind,
    /// The centre it ran at (empty: none was reachable).
    pub centre: String,
    pub started_ms: UnixMillis,
    pub due_ms: UnixMillis,
    pub outcome: Outcome,
    /// When it was met, missed or ended.
    pub ended_ms: Option<UnixMillis>,
}

/// The deadlines of a trail, in order. `open`: whether the alarm is still open.
pub fn deadlines(trail: &[AuditRecord], lengths: Deadlines, open: bool) -> Vec<DeadlineRun> {
    let mut out: Vec<DeadlineRun> = Vec::new();
    let mut current: Option<DeadlineRun> = None;
    let start = |kind, centre: &str, at: UnixMillis| {
        let len = match kind {
            DeadlineKind::Receipt => lengths.receipt_ms,
            DeadlineKind::Accept => lengths.accept_ms,
        };
        Some(DeadlineRun {
            kind,
            centre: centre.to_owned(),
            started_ms: at,
            due_ms: at + len,
            outcome: Outcome::Running,
            ended_ms: None,
        })
    };
    let end = |d: Option<DeadlineRun>, outcome: Outcome, at: UnixMillis, out: &mut Vec<_>| {
        if let Some(mut d) = d {
            d.outcome = match outcome {
                Outcome::Met if at > d.due_ms => Outcome::Missed,
                o => o,
            };
            d.ended_ms = Some(at);
            out.push(d);
        }
    };
    for r in trail {
        let at = r.at_ms;
        let missed_deadline = r.reason.starts_with("no receipt from")
            || r.reason.starts_with("no operator accepted at")
            || r.reason
                .starts_with("no reachable centre before the receipt deadline");
        match r.action.as_str() {
            a if a.starts_with("offered to ") => {
                end(current.take(), Outcome::Ended, at, &mut out);
                current = start(DeadlineKind::Receipt, &a["offered to ".len()..], at);
            }
            // A receipt meets a running receipt deadline and starts the accept deadline.
            "receipt"
                if current
                    .as_ref()
                    .is_some_and(|d| d.kind == DeadlineKind::Receipt) =>
            {
                let centre = current
                    .as_ref()
                    .map(|d| d.centre.clone())
                    .unwrap_or_default();
                end(current.take(), Outcome::Met, at, &mut out);
                current = start(DeadlineKind::Accept, &centre, at);
            }
            "accepted" => end(current.take(), Outcome::Met, at, &mut out),
            "escalated" | "expired" | "unhandled" if missed_deadline => {
                end(current.take(), Outcome::Missed, at, &mut out);
            }
            "escalated" | "unhandled" => end(current.take(), Outcome::Ended, at, &mut out),
            "cancelled" | "closed" | "restored" | "expired" => {
                end(current.take(), Outcome::Ended, at, &mut out);
            }
            _ => {}
        }
    }
    if let Some(d) = current {
        if open {
            out.push(d);
        } else {
            // The trail ends with it running: the alarm ended without a record that says how.
            let at = trail.last().map_or(d.started_ms, |r| r.at_ms);
            end(Some(d), Outcome::Ended, at, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlarmId;

    fn r(at_ms: i64, actor: &str, action: &str, reason: &str) -> AuditRecord {
        AuditRecord {
            alarm: AlarmId(1),
            at_ms,
            actor: actor.into(),
            action: action.into(),
            reason: reason.into(),
        }
    }

    const LEN: Deadlines = Deadlines {
        receipt_ms: 10_000,
        accept_ms: 60_000,
    };

    #[test]
    fn a_missed_receipt_escalates_and_the_next_centre_meets_both() {
        let trail = [
            r(0, "engine", "offered to c1", ""),
            r(10_000, "engine", "escalated", "no receipt from c1"),
            r(10_000, "engine", "offered to c2", "no receipt from c1"),
            r(12_000, "centre:c2", "receipt", ""),
            r(30_000, "operator:anna", "accepted", "c2"),
            r(90_000, "centre:c2", "closed", "visited"),
        ];
        let d = deadlines(&trail, LEN, false);
        let got: Vec<_> = d
            .iter()
            .map(|d| (d.kind, d.centre.as_str(), d.due_ms, d.outcome, d.ended_ms))
            .collect();
        assert_eq!(
            got,
            [
                (
                    DeadlineKind::Receipt,
                    "c1",
                    10_000,
                    Outcome::Missed,
                    Some(10_000)
                ),
                (
                    DeadlineKind::Receipt,
                    "c2",
                    20_000,
                    Outcome::Met,
                    Some(12_000)
                ),
                (
                    DeadlineKind::Accept,
                    "c2",
                    72_000,
                    Outcome::Met,
                    Some(30_000)
                ),
            ]
        );
    }

    #[test]
    fn a_late_receipt_is_missed_and_an_open_alarm_keeps_its_running_deadline() {
        let trail = [
            r(0, "engine", "offered to c1", ""),
            r(15_000, "centre:c1", "receipt", ""),
        ];
        let d = deadlines(&trail, LEN, true);
        assert_eq!(d[0].outcome, Outcome::Missed, "{d:?}");
        assert_eq!(
            (d[1].kind, d[1].outcome),
            (DeadlineKind::Accept, Outcome::Running)
        );
        let cancelled = [
            r(0, "engine", "offered to c1", ""),
            r(1_000, "device", "cancelled", "reset by device"),
        ];
        assert_eq!(deadlines(&cancelled, LEN, false)[0].outcome, Outcome::Ended);
    }
}
