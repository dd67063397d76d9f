//! Activity rules: patterns over a device's sensor events and time that become engine-made
//! alarms (night checks by bed, door and motion sensors; missed medication doses; thresholds on
//! readings), evaluated here without I/O or clock reads: the shard gives each event and each
//! due timer, with its time, and persists the state.
//!
//! What a rule reads (`sensor`, `sensor_off`, `due`, `taken`, `missed` name them):
//! - a vaka/1 telemetry value (`Telemetry { name, value }`): `name` is the sensor, `value` the
//!   reading (bed: 1 in bed, 0 out; door: 1 open, 0 closed; motion: 1 motion seen; a
//!   thermometer: degrees);
//! - a SCAIP `<mrq>` of class info (`mty=IN`) arrives as telemetry `scaip.info.<stc>` = 1: a
//!   sensor that reports two status codes names one as `sensor` and the other as `sensor_off`
//!   (read as 0);
//! - for dose events also an alarm's or technical event's code (a medication robot's own
//!   "dose missed" status code).
//!
//! | kind | fires when | restores when | fields |
//! |---|---|---|---|
//! | `out_of_bed` | out of bed (0) for `minutes`, the getting up within `window` | back in bed | sensor, window, minutes |
//! | `not_in_bed_by` | at local time `at`, the last bed reading is not "in bed" | in bed | sensor, at |
//! | `door_at_night` | the door opens (1) within `window` | it closes (0) | sensor, window |
//! | `no_motion` | no motion (1) for `hours` within the day `window` | motion | sensor, window, hours |
//! | `missed_dose` | `due` not followed by `taken` within `minutes`, or `missed` | `taken` | due, taken, missed?, minutes |
//! | `threshold` | the value below `below` or above `above` for `minutes` | back inside by `hysteresis` | sensor, below?, above?, minutes, hysteresis? |
//!
//! Windows and times are local to the tenant's time zone (`time_zone`, IANA name), daylight
//! saving included. Readings are taken in the order they happened: at the device's own time
//! (vaka/1 `occurred_ms`; an event without one, e.g. every SCAIP and DC-09 event, at its
//! arrival), a reading that arrives after a newer one is put in its place within the last
//! [`REORDER_MS`] (`order`), an older one is too late and not taken.
mod eval;
mod order;
pub mod time;

pub use eval::{Input, Kept, Outcome, Phase, Reorder, RuleState};
pub use order::{TooLate, MAX_KEPT, REORDER_MS};

use crate::checks::{valid_id, Problems};
use serde::{Deserialize, Serialize};
use time::{TimeOfDay, Window};

/// A rule as written in the directory (one record shape for every kind; `kind` says which
/// fields it needs).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRecord {
    /// Names the rule on the device (and in its alarm's code `rule:<kind>:<id>`).
    pub id: String,
    /// out_of_bed, not_in_bed_by, door_at_night, no_motion, missed_dose, threshold.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_off: Option<String>,
    /// "HH:MM-HH:MM", local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// "HH:MM", local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<f64>,
}

/// What a rule watches for, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    OutOfBed {
        window: Window,
        minutes: u32,
    },
    NotInBedBy {
        at: TimeOfDay,
    },
    DoorAtNight {
        window: Window,
    },
    NoMotion {
        window: Window,
        hours: u32,
    },
    MissedDose {
        due: String,
        taken: String,
        missed: Option<String>,
        minutes: u32,
    },
    Threshold {
        below: Option<f64>,
        above: Option<f64>,
        minutes: u32,
        hysteresis: f64,
    },
}

/// A checked rule, ready to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub id: String,
    pub sensor: Option<String>,
    pub sensor_off: Option<String>,
    pub kind: RuleKind,
}

impl Rule {
    /// The kind's name, as in the record: what a device's `chains_by_kind` may route.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            RuleKind::OutOfBed { .. } => "out_of_bed",
            RuleKind::NotInBedBy { .. } => "not_in_bed_by",
            RuleKind::DoorAtNight { .. } => "door_at_night",
            RuleKind::NoMotion { .. } => "no_motion",
            RuleKind::MissedDose { .. } => "missed_dose",
            RuleKind::Threshold { .. } => "threshold",
        }
    }

    /// The code of the alarm it raises: `rule:<kind>:<id>`.
    pub fn code(&self) -> String {
        format!("rule:{}:{}", self.kind_name(), self.id)
    }

    /// Checks a record: every problem named by its field (prefixed with `at`).
    pub fn from_record(r: &RuleRecord, at: &str) -> Result<Rule, Problems> {
        let mut p = Problems::new();
        let field = |f: &str| format!("{at}.{f}");
        let need_str = |p: &mut Problems, f: &str, v: &Option<String>| -> String {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => s.to_owned(),
                _ => {
                    p.push((field(f), "required for this kind".into()));
                    String::new()
                }
            }
        };
        if !valid_id(&r.id) {
            p.push((field("id"), "must be 1-64 of A-Z a-z 0-9 - _ . : @".into()));
        }
        let window = |p: &mut Problems| match r.window.as_deref().map(Window::parse) {
            Some(Some(w)) => Some(w),
            Some(None) => {
                p.push((
                    field("window"),
                    "must be \"HH:MM-HH:MM\" with different ends".into(),
                ));
                None
            }
            None => {
                p.push((field("window"), "required for this kind".into()));
                None
            }
        };
        let positive = |p: &mut Problems, f: &str, v: Option<u32>| match v {
            Some(n) if n > 0 => n,
            Some(_) => {
                p.push((field(f), "must be at least 1".into()));
                0
            }
            None => {
                p.push((field(f), "required for this kind".into()));
                0
            }
        };
        let kind = match r.kind.as_str() {
            "out_of_bed" => {
                need_str(&mut p, "sensor", &r.sensor);
                let w = window(&mut p);
                let minutes = positive(&mut p, "minutes", r.minutes);
                w.map(|window| RuleKind::OutOfBed { window, minutes })
            }
            "not_in_bed_by" => {
                need_str(&mut p, "sensor", &r.sensor);
                match r.at.as_deref().map(TimeOfDay::parse) {
                    Some(Some(at)) => Some(RuleKind::NotInBedBy { at }),
                    _ => {
                        p.push((field("at"), "must be \"HH:MM\"".into()));
                        None
                    }
                }
            }
            "door_at_night" => {
                need_str(&mut p, "sensor", &r.sensor);
                window(&mut p).map(|window| RuleKind::DoorAtNight { window })
            }
            "no_motion" => {
                need_str(&mut p, "sensor", &r.sensor);
                let w = window(&mut p);
                let hours = positive(&mut p, "hours", r.hours);
                if let (Some(w), true) = (w, hours > 0) {
                    let len = (w.end.0 + 1440 - w.start.0) % 1440;
                    if u32::from(len) < hours * 60 {
                        p.push((
                            field("hours"),
                            "longer than the window: the rule could never fire".into(),
                        ));
                    }
                }
                w.map(|window| RuleKind::NoMotion { window, hours })
            }
            "missed_dose" => {
                let due = need_str(&mut p, "due", &r.due);
                let taken = need_str(&mut p, "taken", &r.taken);
                let minutes = positive(&mut p, "minutes", r.minutes);
                Some(RuleKind::MissedDose {
                    due,
                    taken,
                    missed: r.missed.clone().filter(|m| !m.trim().is_empty()),
                    minutes,
                })
            }
            "threshold" => {
                need_str(&mut p, "sensor", &r.sensor);
                if r.below.is_none() && r.above.is_none() {
                    p.push((field("below"), "give below, above or both".into()));
                }
                if let (Some(b), Some(a)) = (r.below, r.above) {
                    if b >= a {
                        p.push((field("below"), "must be less than above".into()));
                    }
                }
                let hysteresis = r.hysteresis.unwrap_or(0.0);
                if !(hysteresis >= 0.0 && hysteresis.is_finite()) {
                    p.push((field("hysteresis"), "must be 0 or more".into()));
                }
                let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
                if !finite(r.below) || !finite(r.above) {
                    p.push((field("below"), "must be a number".into()));
                }
                Some(RuleKind::Threshold {
                    below: r.below,
                    above: r.above,
                    minutes: r.minutes.unwrap_or(0),
                    hysteresis,
                })
            }
            other => {
                p.push((
                    field("kind"),
                    format!(
                        "unknown rule kind \"{other}\" (out_of_bed, not_in_bed_by, door_at_night, \
                         no_motion, missed_dose, threshold)"
                    ),
                ));
                None
            }
        };
        match kind {
            Some(kind) if p.is_empty() => Ok(Rule {
                id: r.id.clone(),
                sensor: r.sensor.clone(),
                sensor_off: r.sensor_off.clone(),
                kind,
            }),
            _ => Err(p),
        }
    }
}

/// Checks a list of rules (ids unique), each problem named by its field under `at`.
pub fn check_rules(rules: &[RuleRecord], at: &str) -> Problems {
    let mut p = Problems::new();
    let mut ids = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if let Err(e) = Rule::from_record(r, &here) {
            p.extend(e);
        }
        if !ids.insert(r.id.as_str()) {
            p.push((format!("{here}.id"), format!("duplicate rule \"{}\"", r.id)));
        }
    }
    p
}

#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
