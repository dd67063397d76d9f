//! Per-tenant admission: how many events per second a tenant's devices may hand the engine,
//! alarm lane and telemetry lane apart, as token buckets, so that one tenant's flood (a
//! misconfigured fleet, a test storm, a GPS flood) cannot take another tenant's share of the
//! shared lanes. Pure: the caller passes the time and how full the lane is.
//!
//! The rule (ARCHITECTURE.md, "Admission"):
//! - within its tenant's limit an event goes on to its lane (whose own bound still applies);
//! - over the limit, telemetry and the alarm lane's other events (technical alarms, resets) are
//!   answered busy at once;
//! - over the limit, a real alarm (`EventKind::Alarm`) is still taken while its lane is less
//!   than half full: the lower half of every alarm lane is open to any alarm, the upper half is
//!   kept for tenants within their limits. A person's alarm is refused only when the engine is
//!   truly short of room, and then it is answered busy, never dropped.
use crate::checks::Problems;
use crate::event::{EventKind, Lane};
use crate::ids::UnixMillis;
use serde::{Deserialize, Serialize};

/// A rate with a burst: `per_sec` tokens come back every second, at most `burst` are kept.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per_sec: u32,
    pub burst: u32,
}

/// A tenant's admission limits as written (tenant record, config file); an absent class takes
/// the platform's default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionRecord {
    /// Alarm-lane events: alarms, technical alarms and restorals, resets.
    #[serde(default)]
    pub alarms: Option<Limit>,
    /// Telemetry-lane events: positions, heartbeats, sensor readings.
    #[serde(default)]
    pub telemetry: Option<Limit>,
}

/// A tenant's limits, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub alarms: Limit,
    pub telemetry: Limit,
}

/// The platform's default: about what one engine takes (BENCHMARKS.md), so that a tenant with
/// an engine of its own is limited by the engine, not by this (a SIGKILL test sends thousands
/// of alarm-lane events a second from one tenant, and must get them all). A platform that
/// shares an engine between tenants gives each its share in the tenant record; normal life is
/// far below (a region of 100,000 alarm buttons raises a few alarms a second).
pub const DEFAULT_LIMITS: Limits = Limits {
    alarms: Limit {
        per_sec: 10_000,
        burst: 100_000,
    },
    telemetry: Limit {
        per_sec: 100_000,
        burst: 200_000,
    },
};

/// Highest rate or burst accepted: above it a limit means nothing on one engine.
pub const MAX_LIMIT: u32 = 10_000_000;

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

impl Limits {
    /// `record` laid over `self`.
    pub fn with(self, record: Option<&AdmissionRecord>) -> Limits {
        let r = record.copied().unwrap_or_default();
        Limits {
            alarms: r.alarms.unwrap_or(self.alarms),
            telemetry: r.telemetry.unwrap_or(self.telemetry),
        }
    }

    pub fn of(&self, lane: Lane) -> Limit {
        match lane {
            Lane::Alarm => self.alarms,
            Lane::Telemetry => self.telemetry,
        }
    }
}

/// Every problem of `record`, each named by its field under `prefix` (e.g. `admission`).
pub fn check_admission(record: &AdmissionRecord, prefix: &str) -> Problems {
    let mut p = Problems::new();
    for (class, limit) in [("alarms", record.alarms), ("telemetry", record.telemetry)] {
        let Some(l) = limit else { continue };
        for (name, v) in [("per_sec", l.per_sec), ("burst", l.burst)] {
            if v == 0 || v > MAX_LIMIT {
                p.push((
                    format!("{prefix}.{class}.{name}"),
                    format!("must be 1-{MAX_LIMIT}"),
                ));
            }
        }
    }
    p
}

/// A token bucket, counted in thousandths of an event so that a rate per second refills
/// exactly per millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    milli: u64,
    at_ms: UnixMillis,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: Limit, now: UnixMillis) -> Bucket {
        Bucket {
            milli: u64::from(limit.burst) * 1000,
            at_ms: now,
        }
    }

    /// Refills for the time since the last call, then takes one event if there is one. A clock
    /// going back refills nothing.
    pub fn take(&mut self, limit: Limit, now: UnixMillis) -> bool {
        let elapsed = now.saturating_sub(self.at_ms).max(0) as u64;
        if now > self.at_ms {
            self.at_ms = now;
        }
        let cap = u64::from(limit.burst) * 1000;
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(limit.per_sec)))
            .min(cap);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// One tenant's two buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantBuckets {
    alarms: Bucket,
    telemetry: Bucket,
}

/// What admission says to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tenant's limit.
    Admit,
    /// A real alarm over its tenant's limit, taken from the lower half of its lane.
    Borrow,
    /// Over the limit: answer busy.
    Busy,
}

impl TenantBuckets {
    pub fn new(limits: &Limits, now: UnixMillis) -> TenantBuckets {
        TenantBuckets {
            alarms: Bucket::new(limits.alarms, now),
            telemetry: Bucket::new(limits.telemetry, now),
        }
    }

    /// The verdict for an event of `kind` arriving at `now` for `lane` (the lane it rides: a
    /// caller may carry an alarm below real ones, e.g. a test alarm, in the telemetry lane),
    /// that lane holding `queued` of `capacity`. The event counts against its lane's limit;
    /// only a real alarm (`EventKind::Alarm` in the alarm lane) may borrow.
    pub fn admit(
        &mut self,
        limits: &Limits,
        lane: Lane,
        kind: &EventKind,
        queued: usize,
        capacity: usize,
        now: UnixMillis,
    ) -> Verdict {
        let bucket = match lane {
            Lane::Alarm => &mut self.alarms,
            Lane::Telemetry => &mut self.telemetry,
        };
        let real_alarm = lane == Lane::Alarm && matches!(kind, EventKind::Alarm(_));
        if bucket.take(limits.of(lane), now) {
            Verdict::Admit
        } else if real_alarm && queued < capacity / 2 {
            Verdict::Borrow
        } else {
            Verdict::Busy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AlarmInfo;

    fn alarm() -> EventKind {
        EventKind::Alarm(AlarmInfo {
            code: "0010".into(),
            priority: 2,
            text: None,
            callback: vec![],
        })
    }

    fn limits(alarms: (u32, u32), telemetry: (u32, u32)) -> Limits {
        Limits {
            alarms: Limit {
                per_sec: alarms.0,
                burst: alarms.1,
            },
            telemetry: Limit {
                per_sec: telemetry.0,
                burst: telemetry.1,
            },
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let l = Limit {
            per_sec: 10,
            burst: 5,
        };
        let mut b = Bucket::new(l, 0);
        assert_eq!((0..8).filter(|_| b.take(l, 0)).count(), 5);
        // 10 per second: one every 100 ms.
        assert!(!b.take(l, 99));
        assert!(b.take(l, 100));
        assert!(!b.take(l, 150));
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..8).filter(|_| b.take(l, 60_000)).count(), 5);
        // A clock going back refills nothing and does not jam the bucket.
        assert!(!b.take(l, 1_000));
        assert!(b.take(l, 60_100));
    }

    #[test]
    fn telemetry_and_technical_over_the_limit_are_busy_even_with_room() {
        let l = limits((1, 1), (1, 1));
        let mut t = TenantBuckets::new(&l, 0);
        let tm = EventKind::Position;
        let tech = EventKind::Technical {
            code: "battery".into(),
            restoral: false,
        };
        assert_eq!(t.admit(&l, Lane::Telemetry, &tm, 0, 100, 0), Verdict::Admit);
        assert_eq!(t.admit(&l, Lane::Telemetry, &tm, 0, 100, 0), Verdict::Busy);
        assert_eq!(t.admit(&l, Lane::Alarm, &tech, 0, 100, 0), Verdict::Admit);
        assert_eq!(t.admit(&l, Lane::Alarm, &tech, 0, 100, 0), Verdict::Busy);
        // The classes are apart: telemetry spent takes nothing from alarms.
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 0, 100, 1_000),
            Verdict::Admit
        );
        // An alarm carried below real ones (a test alarm in the telemetry lane) counts as
        // telemetry and never borrows.
        let below = |t: &mut TenantBuckets| t.admit(&l, Lane::Telemetry, &alarm(), 0, 100, 2_000);
        assert_eq!(below(&mut t), Verdict::Admit);
        assert_eq!(below(&mut t), Verdict::Busy);
    }

    #[test]
    fn a_real_alarm_over_the_limit_borrows_the_lower_half_of_its_lane_only() {
        let l = limits((1, 1), (1, 1));
        let mut t = TenantBuckets::new(&l, 0);
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 99, 100, 0),
            Verdict::Admit
        );
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 0, 100, 0),
            Verdict::Borrow
        );
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 49, 100, 0),
            Verdict::Borrow
        );
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 50, 100, 0),
            Verdict::Busy
        );
        assert_eq!(
            t.admit(&l, Lane::Alarm, &alarm(), 100, 100, 0),
            Verdict::Busy
        );
    }

    #[test]
    fn records_lay_over_the_defaults_and_bad_fields_are_named() {
        let r = AdmissionRecord {
            alarms: Some(Limit {
                per_sec: 5,
                burst: 50,
            }),
            telemetry: None,
        };
        let l = DEFAULT_LIMITS.with(Some(&r));
        assert_eq!(l.alarms.per_sec, 5);
        assert_eq!(l.telemetry, DEFAULT_LIMITS.telemetry);
        assert_eq!(DEFAULT_LIMITS.with(None), DEFAULT_LIMITS);
        assert!(check_admission(&r, "admission").is_empty());

        let bad = AdmissionRecord {
            alarms: Some(Limit {
                per_sec: 0,
                burst: 1,
            }),
            telemetry: Some(Limit {
                per_sec: 1,
                burst: MAX_LIMIT + 1,
            }),
        };
        let fields: Vec<String> = check_admission(&bad, "admission")
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            ["admission.alarms.per_sec", "admission.telemetry.burst"]
        );
    }
}
