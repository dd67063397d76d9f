//! Answer-time statistics of one tenant over a period, from its stored alarms and their audit
//! trails: what municipalities follow their service up with (and the UK TEC standard's 97.5% of
//! alarm calls answered within 60 s, 99% within 180 s). Pure: the caller reads the alarms.
//!
//! Test alarms (canaries, devices or tenants on test) are counted and left out of every other
//! figure. Definitions (all times from the device's message being received, `created_ms`):
//! - receipt time: to the first centre receipt; accept time ("answered"): to an operator's accept;
//! - within the receipt deadline: receipted no later than the device's receipt deadline; within
//!   the accept deadline: accepted no later than the accept deadline after the receipt (the
//!   deadlines in force now, tenant's or the device's own);
//! - a share counts the alarms that were answered plus those that could have been and were not:
//!   an alarm cancelled by its device before the stage is left out, and one still open is left out
//!   until its threshold has passed;
//! - escalations: audit records "escalated"; deadline misses: escalations for a missed receipt or
//!   accept deadline; unhandled: alarms that went unhandled at any time;
//! - silence: each silent-device alarm from its start to the device being heard again (its
//!   "restored" record), its close, or now; the cause is the device's last technical alarm in the
//!   24 h before (battery, mains), else unknown.
use crate::alarm::{Alarm, AlarmKind, AlarmState, AuditRecord, Deadlines};
use crate::ids::UnixMillis;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::BTreeMap;

/// The accept-time histogram's bucket bounds, seconds (the last bucket is everything above).
pub const ACCEPT_BUCKETS_S: [i64; 4] = [10, 30, 60, 180];

/// How far before a silence a technical alarm is taken as its cause.
const CAUSE_WINDOW_MS: i64 = 24 * 3_600_000;

/// One alarm as the statistics read it.
pub struct AlarmFacts<'a> {
    pub alarm: &'a Alarm,
    pub audit: &'a [AuditRecord],
    pub deadlines: Deadlines,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statistics {
    pub tenant: String,
    pub from_ms: UnixMillis,
    pub to_ms: UnixMillis,
    pub alarms: Counts,
    pub receipt_ms: Percentiles,
    pub accept_ms: Percentiles,
    pub within: Within,
    pub escalations: u64,
    pub unhandled: u64,
    pub deadline_misses: u64,
    pub silence: Silence,
    pub accept_histogram: Vec<Bucket>,
    pub per_day: Vec<Day>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Every alarm, test alarms included.
    pub total: u64,
    /// Real alarms: every other figure is over these.
    pub real: u64,
    /// Test alarms (canaries, devices or tenants on test): counted here only.
    pub test: u64,
    /// help, technical, silent, geofence_exit, rule (activity rules' technical alarms).
    pub by_kind: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<i64>,
    pub p90: Option<i64>,
    pub p99: Option<i64>,
    pub max: Option<i64>,
}

/// Shares 0..1; `None` when nothing counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Within {
    pub receipt_deadline: Option<f64>,
    pub accept_deadline: Option<f64>,
    pub accepted_60s: Option<f64>,
    pub accepted_180s: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Silence {
    pub hours: f64,
    pub periods: Vec<SilencePeriod>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SilencePeriod {
    pub device: String,
    pub from_ms: UnixMillis,
    /// `None`: still silent.
    pub to_ms: Option<UnixMillis>,
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound in seconds; `None` for the last bucket.
    pub le_s: Option<i64>,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Day {
    /// The tenant's local date.
    pub day: String,
    pub alarms: u64,
    pub accept_p90_ms: Option<i64>,
}

/// Kind names as the API shows them.
pub fn kind_name(a: &Alarm) -> &'static str {
    match a.kind {
        AlarmKind::Help => "help",
        AlarmKind::Technical if a.code.starts_with("rule:") => "rule",
        AlarmKind::Technical => "technical",
        AlarmKind::Silent => "silent",
        AlarmKind::GeofenceExit => "geofence_exit",
    }
}

/// Statistics of `alarms` (one tenant's, created in `[from_ms, to_ms)`) as of `now`.
pub fn compute(
    tenant: &str,
    from_ms: UnixMillis,
    to_ms: UnixMillis,
    now: UnixMillis,
    tz: &TimeZone,
    alarms: &[AlarmFacts<'_>],
) -> Statistics {
    let mut counts = Counts::default();
    let mut receipts = Vec::new();
    let mut accepts = Vec::new();
    let mut shares = [Share::default(); 4];
    let (mut escalations, mut unhandled, mut misses) = (0, 0, 0);
    let mut days: BTreeMap<String, (u64, Vec<i64>)> = BTreeMap::new();
    for f in alarms {
        let a = f.alarm;
        counts.total += 1;
        if a.test {
            counts.test += 1;
            continue;
        }
        counts.real += 1;
        *counts.by_kind.entry(kind_name(a).into()).or_default() += 1;
        let s = &a.stages;
        let receipt = s.receipted_ms.map(|t| t - a.created_ms);
        let accept = s.accepted_ms.map(|t| t - a.created_ms);
        receipts.extend(receipt);
        accepts.extend(accept);
        let cancelled_before =
            |stage: Option<UnixMillis>| stage.is_none() && matches!(a.state, AlarmState::Cancelled);
        // Receipt within its deadline.
        if !cancelled_before(s.receipted_ms) {
            let limit = f.deadlines.receipt_ms;
            shares[0].count(receipt, limit, now - a.created_ms, a.is_open());
        }
        if !cancelled_before(s.accepted_ms) {
            let after_receipt = match (s.receipted_ms, s.accepted_ms) {
                (Some(r), Some(t)) => Some(t - r),
                (None, Some(_)) => Some(0), // taken while unhandled: no accept deadline ran
                _ => None,
            };
            let since_receipt = s.receipted_ms.map_or(0, |r| now - r);
            let accept_limit = f.deadlines.accept_ms;
            shares[1].count(after_receipt, accept_limit, since_receipt, a.is_open());
            shares[2].count(accept, 60_000, now - a.created_ms, a.is_open());
            shares[3].count(accept, 180_000, now - a.created_ms, a.is_open());
        }
        for r in f.audit {
            match r.action.as_str() {
                "escalated" => {
                    escalations += 1;
                    if r.reason.starts_with("no receipt")
                        || r.reason.starts_with("no operator")
                        || r.reason.starts_with("no reachable")
                    {
                        misses += 1;
                    }
                }
                "unhandled" => unhandled += 1,
                _ => {}
            }
        }
        let day = local_day(a.created_ms, tz);
        let entry = days.entry(day).or_default();
        entry.0 += 1;
        entry.1.extend(accept);
    }
    let mut histogram: Vec<Bucket> = ACCEPT_BUCKETS_S
        .iter()
        .map(|&le| Bucket {
            le_s: Some(le),
            count: 0,
        })
        .chain(std::iter::once(Bucket {
            le_s: None,
            count: 0,
        }))
        .collect();
    for ms in &accepts {
        let i = ACCEPT_BUCKETS_S
            .iter()
            .position(|&le| *ms <= le * 1000)
            .unwrap_or(ACCEPT_BUCKETS_S.len());
        histogram[i].count += 1;
    }
    Statistics {
        tenant: tenant.to_string(),
        from_ms,
        to_ms,
        alarms: counts,
        receipt_ms: percentiles(receipts),
        accept_ms: percentiles(accepts),
        within: Within {
            receipt_deadline: shares[0].ratio(),
            accept_deadline: shares[1].ratio(),
            accepted_60s: shares[2].ratio(),
            accepted_180s: shares[3].ratio(),
        },
        escalations,
        unhandled,
        deadline_misses: misses,
        silence: silence(alarms, to_ms.min(now)),
        accept_histogram: histogram,
        per_day: days
            .into_iter()
            .map(|(day, (n, accepts))| Day {
                day,
                alarms: n,
                accept_p90_ms: percentiles(accepts).p90,
            })
            .collect(),
    }
}

#[derive(Clone, Copy, Default)]
struct Share {
    within: u64,
    of: u64,
}

impl Share {
    /// One alarm's stage `took` (ms) against `limit`; `waited` is how long it has been possible.
    fn count(&mut self, took: Option<i64>, limit: i64, waited: i64, open: bool) {
        match took {
            Some(t) => {
                self.of += 1;
                if t <= limit {
                    self.within += 1;
                }
            }
            // Not (yet) reached: a miss once the limit has passed, or once it ended without it.
            None if !open || waited > limit => self.of += 1,
            None => {}
        }
    }

    fn ratio(self) -> Option<f64> {
        (self.of > 0).then(|| self.within as f64 / self.of as f64)
    }
}

/// Nearest-rank percentiles.
fn percentiles(mut v: Vec<i64>) -> Percentiles {
    v.sort_unstable();
    let rank = |p: f64| -> Option<i64> {
        if v.is_empty() {
            return None;
        }
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    };
    Percentiles {
        count: v.len() as u64,
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: v.last().copied(),
    }
}

fn local_day(at: UnixMillis, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(at)
        .map(|t| t.to_zoned_datetime(tz.clone()).date().to_string())
        .unwrap_or_else(|_| "invalid".into())
}

fn silence(alarms: &[AlarmFacts<'_>], end: UnixMillis) -> Silence {
    let mut out = Silence::default();
    let mut total_ms = 0i64;
    for f in alarms
        .iter()
        .filter(|f| f.alarm.kind == AlarmKind::Silent && !f.alarm.test)
    {
        let a = f.alarm;
        let heard = f
            .audit
            .iter()
            .find(|r| r.action == "restored")
            .map(|r| r.at_ms);
        let to_ms = heard.or(a.stages.closed_ms);
        total_ms += (to_ms.unwrap_or(end).min(end) - a.created_ms).max(0);
        let cause = alarms
            .iter()
            .map(|c| c.alarm)
            .filter(|c| c.device == a.device && c.kind == AlarmKind::Technical)
            .filter(|c| {
                c.created_ms <= a.created_ms && a.created_ms - c.created_ms <= CAUSE_WINDOW_MS
            })
            .max_by_key(|c| c.created_ms)
            .map_or_else(
                || "unknown (no technical alarm in the 24 h before)".to_string(),
                |c| format!("technical alarm {} before it", c.code),
            );
        out.periods.push(SilencePeriod {
            device: a.device.device.to_string(),
            from_ms: a.created_ms,
            to_ms,
            cause,
        });
    }
    out.hours = total_ms as f64 / 3_600_000.0;
    out
}

/// The statistics as CSV: one `metric,value` row per figure (shares as fractions), then the
/// per-day rows and the silence periods, each under its own header.
pub fn to_csv(s: &Statistics) -> String {
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let share = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    let mut out = String::from("metric,value\n");
    let mut row = |k: &str, v: String| out.push_str(&format!("{k},{v}\n"));
    row("tenant", csv_field(&s.tenant));
    row("from_ms", s.from_ms.to_string());
    row("to_ms", s.to_ms.to_string());
    row("alarms.total", s.alarms.total.to_string());
    row("alarms.real", s.alarms.real.to_string());
    row("alarms.test", s.alarms.test.to_string());
    for (k, n) in &s.alarms.by_kind {
        row(&format!("alarms.by_kind.{k}"), n.to_string());
    }
    for (name, p) in [("receipt_ms", &s.receipt_ms), ("accept_ms", &s.accept_ms)] {
        row(&format!("{name}.count"), p.count.to_string());
        row(&format!("{name}.p50"), opt(p.p50));
        row(&format!("{name}.p90"), opt(p.p90));
        row(&format!("{name}.p99"), opt(p.p99));
        row(&format!("{name}.max"), opt(p.max));
    }
    row("within.receipt_deadline", share(s.within.receipt_deadline));
    row("within.accept_deadline", share(s.within.accept_deadline));
    row("within.accepted_60s", share(s.within.accepted_60s));
    row("within.accepted_180s", share(s.within.accepted_180s));
    row("escalations", s.escalations.to_string());
    row("unhandled", s.unhandled.to_string());
    row("deadline_misses", s.deadline_misses.to_string());
    row("silence.hours", format!("{:.3}", s.silence.hours));
    out.push_str("\nday,alarms,accept_p90_ms\n");
    for d in &s.per_day {
        out.push_str(&format!(
            "{},{},{}\n",
            d.day,
            d.alarms,
            opt(d.accept_p90_ms)
        ));
    }
    out.push_str("\ndevice,silent_from_ms,silent_to_ms,cause\n");
    for p in &s.silence.periods {
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&p.device),
            p.from_ms,
            opt(p.to_ms),
            csv_field(&p.cause)
        ));
    }
    out
}

/// RFC 4180 quoting where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).collect());
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max),
            (Some(50), Some(90), Some(99), Some(100))
        );
        assert_eq!(percentiles(vec![]).p50, None);
        assert_eq!(percentiles(vec![7]).p99, Some(7));
    }

    #[test]
    fn an_open_alarm_counts_against_a_share_only_once_its_limit_passed() {
        let mut s = Share::default();
        s.count(None, 60_000, 10_000, true);
        assert_eq!(s.ratio(), None);
        s.count(None, 60_000, 61_000, true);
        s.count(Some(59_000), 60_000, 0, false);
        assert_eq!(s.ratio(), Some(0.5));
    }

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
