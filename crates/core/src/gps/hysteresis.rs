//! Exit/re-entry hysteresis per (device, fence).
//!
//! - The confirmed zone starts `Unknown`. The first confirmed zone is taken silently if it is
//!   `Inside`; if it is `Outside` it raises `Exit` (a device first heard of outside its fence must
//!   alarm once). After an exit, confirmed re-entry raises `Restoral`.
//! - A change is confirmed by `confirm_fixes` consecutive decisions for the other side, or by
//!   decisions for the other side spanning at least `confirm_secs` (first to last), whichever comes
//!   first. A decision for the confirmed side resets the pending change. `Uncertain` neither counts
//!   nor resets: a fix straddling the edge says nothing either way.
//! - Only observations in fix-time order are used: a fix older than the last fed one is ignored
//!   (`Transition::Stale`). The caller feeds only `Verdict::feeds_geofence()` fixes.
//! - Equal fix times (tie-break): all fixes stamped the same millisecond are one observation whose
//!   decision is the highest-ranked among them: first the decision that advances the pending
//!   change (Outside when Inside or Unknown, Inside when Outside), then the other definite one,
//!   then Uncertain. The tracker keeps the state from before that timestamp and recomputes from
//!   it, so the result does not depend on arrival order; and since only the top-ranked decision
//!   can raise a transition, nothing raised ever needs taking back. (Contradicting fixes stamped
//!   the same millisecond mean one is wrong; leaning toward the change errs on the side of an
//!   alarm, and the change still needs its confirmations.)

use super::fence::{Decision, Fence};
use super::serde_util::limit;
use super::Fix;

/// When an exit (or re-entry) counts as confirmed.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HysteresisConfig {
    /// Consecutive decisions for the other side that confirm a change (0 counts as 1).
    pub confirm_fixes: u32,
    /// Or: decisions for the other side spanning at least this long (`false` to turn off).
    #[serde(deserialize_with = "limit")]
    pub confirm_secs: Option<u32>,
}

impl Default for HysteresisConfig {
    fn default() -> Self {
        HysteresisConfig {
            confirm_fixes: 3,
            confirm_secs: Some(60),
        }
    }
}

/// The confirmed zone of a device relative to one fence.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Zone {
    #[default]
    Unknown,
    Inside,
    Outside,
}

/// What one fed fix did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Transition {
    /// Nothing to raise.
    None,
    /// Exit confirmed: raise the geofence alarm.
    Exit,
    /// Re-entry confirmed after an exit: raise the restoral.
    Restoral,
    /// Ignored: older than the last fix fed (late fixes are history, not geofence input).
    Stale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Streak {
    toward: Zone,
    count: u32,
    since_ms: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Core {
    zone: Zone,
    streak: Option<Streak>,
}

/// Hysteresis state for one (device, fence). Start a new one when the fence changes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FenceTracker {
    /// Fix time of the latest observation.
    at_ms: Option<i64>,
    /// State before that observation, to recompute it when another fix with the same time comes.
    before: Core,
    /// The observation's decision (top-ranked of the fixes stamped `at_ms`).
    seen: Decision,
    /// State after it.
    now: Core,
}

impl Default for FenceTracker {
    fn default() -> Self {
        FenceTracker {
            at_ms: None,
            before: Core::default(),
            seen: Decision::Uncertain,
            now: Core::default(),
        }
    }
}

impl FenceTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The confirmed zone.
    pub fn zone(&self) -> Zone {
        self.now.zone
    }

    /// Decisions counted so far toward a change of zone (0 if none pending).
    pub fn pending(&self) -> u32 {
        self.now.streak.map_or(0, |s| s.count)
    }

    /// Fix time of the last observation fed.
    pub fn last_time_ms(&self) -> Option<i64> {
        self.at_ms
    }

    /// Decide `fix` against `fence` and feed it.
    pub fn feed_fix(&mut self, cfg: &HysteresisConfig, fence: &Fence, fix: &Fix) -> Transition {
        self.feed(cfg, fix.time_ms, fence.decide_fix(fix))
    }

    /// Feed one decision for a fix stamped `time_ms`.
    pub fn feed(&mut self, cfg: &HysteresisConfig, time_ms: i64, d: Decision) -> Transition {
        match self.at_ms {
            Some(t) if time_ms < t => Transition::Stale,
            Some(t) if time_ms == t => {
                if rank(self.before.zone, d) <= rank(self.before.zone, self.seen) {
                    return Transition::None;
                }
                // `seen` was not top-ranked, so it raised nothing; recompute with the better one.
                self.seen = d;
                let (core, tr) = step(cfg, self.before, time_ms, d);
                self.now = core;
                tr
            }
            _ => {
                self.at_ms = Some(time_ms);
                self.before = self.now;
                self.seen = d;
                let (core, tr) = step(cfg, self.before, time_ms, d);
                self.now = core;
                tr
            }
        }
    }
}

/// Tie-break order among decisions with the same fix time, given the zone before them: the one
/// that advances a change first, then a definite one, then `Uncertain`. Only the top rank can
/// raise a transition (see `step`), which is what makes recomputing safe.
fn rank(zone: Zone, d: Decision) -> u8 {
    match (zone, d) {
        (_, Decision::Uncertain) => 0,
        (Zone::Unknown | Zone::Inside, Decision::Outside) | (Zone::Outside, Decision::Inside) => 2,
        _ => 1,
    }
}

fn step(cfg: &HysteresisConfig, core: Core, t: i64, d: Decision) -> (Core, Transition) {
    let side = match d {
        Decision::Uncertain => return (core, Transition::None),
        Decision::Inside => Zone::Inside,
        Decision::Outside => Zone::Outside,
    };
    if core.zone == side {
        // Confirms where we are: drop any pending change.
        return (
            Core {
                zone: side,
                streak: None,
            },
            Transition::None,
        );
    }
    let (count, since_ms) = match core.streak {
        Some(s) if s.toward == side => (s.count.saturating_add(1), s.since_ms),
        _ => (1, t),
    };
    let by_count = count >= cfg.confirm_fixes.max(1);
    let by_time = cfg
        .confirm_secs
        .is_some_and(|m| t.saturating_sub(since_ms) >= i64::from(m) * 1000);
    if !(by_count || by_time) {
        let streak = Some(Streak {
            toward: side,
            count,
            since_ms,
        });
        return (
            Core {
                zone: core.zone,
                streak,
            },
            Transition::None,
        );
    }
    let tr = match (core.zone, side) {
        (_, Zone::Outside) => Transition::Exit,
        (Zone::Outside, Zone::Inside) => Transition::Restoral,
        _ => Transition::None, // Unknown -> Inside: the normal start, nothing to raise
    };
    (
        Core {
            zone: side,
            streak: None,
        },
        tr,
    )
}
