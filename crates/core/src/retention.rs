//! How long each kind of a tenant's data is kept (GDPR storage limitation): positions,
//! heartbeats and telemetry (events with their raw messages), closed alarms with their audit
//! trails, and the admin audit log, each with its own period in the tenant's record.
//!
//! A kind the record leaves out keeps what the engine did before periods per kind existed:
//! positions and telemetry follow the tenant's `retention_days`, alarms and the admin audit log
//! are kept. Alarm records are the care record: the platform sets a minimum
//! (`defaults.alarm_retention_min_days`); a shorter period is refused when written, and one
//! stored before the minimum was raised is read as the minimum.
use serde::{Deserialize, Serialize};

use crate::checks::Problems;
use crate::UnixMillis;

pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// The kinds of data with a period of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Positions,
    /// Heartbeats, positions and sensor readings as events, with their raw messages.
    Telemetry,
    /// Closed alarms, their audit trails and the alarm-lane events they were made of.
    Alarms,
    AdminAudit,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Positions,
        Kind::Telemetry,
        Kind::Alarms,
        Kind::AdminAudit,
    ];

    /// Its name in metrics and records.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Positions => "positions",
            Kind::Telemetry => "telemetry",
            Kind::Alarms => "alarms",
            Kind::AdminAudit => "admin_audit",
        }
    }
}

/// Periods per kind in a tenant's record, in days.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRecord {
    /// Position history; absent: the tenant's `retention_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_days: Option<u32>,
    /// Heartbeat, position and telemetry events with their raw messages; absent: the
    /// tenant's `retention_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_days: Option<u32>,
    /// Closed alarms (from their closing) with audit trails and alarm messages; absent: kept.
    /// At least the platform's minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms_days: Option<u32>,
    /// The tenant's admin audit log; absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_audit_days: Option<u32>,
}

impl RetentionRecord {
    pub fn is_empty(&self) -> bool {
        *self == RetentionRecord::default()
    }

    /// What is wrong with it, fields named under `at`: a period of 0 days, or alarms kept
    /// less than the platform's minimum.
    pub fn problems(&self, at: &str, alarm_min_days: u32) -> Problems {
        let mut p = Problems::new();
        for (field, v) in [
            ("positions_days", self.positions_days),
            ("telemetry_days", self.telemetry_days),
            ("alarms_days", self.alarms_days),
            ("admin_audit_days", self.admin_audit_days),
        ] {
            if v == Some(0) {
                p.push((format!("{at}.{field}"), "must be at least 1".into()));
            }
        }
        if let Some(d) = self.alarms_days.filter(|d| *d > 0 && *d < alarm_min_days) {
            p.push((
                format!("{at}.alarms_days"),
                format!(
                    "{d} days is below the platform's minimum for alarm records, \
                     {alarm_min_days} days (defaults.alarm_retention_min_days): refused"
                ),
            ));
        }
        p
    }

    /// The record as it applies under a platform minimum for alarms: a shorter alarm period
    /// (stored before the minimum was raised) is raised to it.
    pub fn raised_to(mut self, alarm_min_days: u32) -> RetentionRecord {
        if let Some(d) = &mut self.alarms_days {
            *d = (*d).max(alarm_min_days);
        }
        self
    }

    /// Days `kind` is kept, `retention_days` being the tenant's general period; `None`: kept.
    pub fn days(&self, kind: Kind, retention_days: u32) -> Option<u32> {
        match kind {
            Kind::Positions => Some(self.positions_days.unwrap_or(retention_days)),
            Kind::Telemetry => Some(self.telemetry_days.unwrap_or(retention_days)),
            Kind::Alarms => self.alarms_days,
            Kind::AdminAudit => self.admin_audit_days,
        }
    }
}

/// What is older than this at `now` goes, for a period of `days`.
pub fn cutoff(now: UnixMillis, days: u32) -> UnixMillis {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_kinds_keep_the_old_behaviour() {
        let r = RetentionRecord::default();
        assert_eq!(r.days(Kind::Positions, 30), Some(30));
        assert_eq!(r.days(Kind::Telemetry, 30), Some(30));
        assert_eq!(r.days(Kind::Alarms, 30), None);
        assert_eq!(r.days(Kind::AdminAudit, 30), None);
        // A record written before periods per kind existed reads, and writes back the same.
        let old: RetentionRecord = serde_json::from_str("{}").unwrap();
        assert!(old.is_empty());
        assert_eq!(serde_json::to_string(&old).unwrap(), "{}");
    }

    #[test]
    fn a_tenant_record_stored_before_periods_per_kind_reads_and_writes_the_same() {
        let old = r#"{"id":"t","name":"","centres":[],"retention_days":30,"revision":3}"#;
        let t: crate::directory::TenantRecord = serde_json::from_str(old).unwrap();
        assert!(t.retention.is_empty());
        assert!(!serde_json::to_string(&t).unwrap().contains("\"retention\""));
        let new = r#"{"id":"t","retention":{"alarms_days":400}}"#;
        let t: crate::directory::TenantRecord = serde_json::from_str(new).unwrap();
        assert_eq!(t.retention.alarms_days, Some(400));
        let typo = r#"{"id":"t","retention":{"alarm_days":400}}"#;
        assert!(serde_json::from_str::<crate::directory::TenantRecord>(typo).is_err());
    }

    #[test]
    fn alarms_below_the_minimum_are_refused_when_written_and_raised_when_stored() {
        let r = RetentionRecord {
            alarms_days: Some(30),
            telemetry_days: Some(0),
            ..Default::default()
        };
        let p = r.problems("retention", 365);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, "retention.telemetry_days");
        assert_eq!(p[1].0, "retention.alarms_days");
        assert!(
            p[1].1.contains("365") && p[1].1.contains("refused"),
            "{p:?}"
        );
        assert_eq!(r.raised_to(365).days(Kind::Alarms, 90), Some(365));
        assert_eq!(r.raised_to(7).days(Kind::Alarms, 90), Some(30));
        assert!(RetentionRecord {
            alarms_days: Some(400),
            ..Default::default()
        }
        .problems("retention", 365)
        .is_empty());
    }

    #[test]
    fn cutoff_is_days_before_now() {
        assert_eq!(cutoff(10 * DAY_MS, 3), 7 * DAY_MS);
        assert_eq!(cutoff(0, u32::MAX), -(i64::from(u32::MAX) * DAY_MS));
        assert_eq!(cutoff(i64::MIN, 1), i64::MIN);
    }
}
