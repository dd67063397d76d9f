//! One device's GPS state and the whole per-fix pipeline over it: filters, then the fences.
//!
//! `DeviceTrack` is what the router keeps per device and persists after every change, so a restart
//! neither re-raises an exit already raised nor forgets one pending: the filter state (last fix,
//! dedup ring, outlier chain) and one hysteresis tracker per fence. Trackers are matched to the
//! configured fences by id and fingerprint; a fence that changed starts a fresh tracker.

use super::filter::{FilterConfig, FilterState, Verdict};
use super::hysteresis::{FenceTracker, Transition, Zone};
use super::plan::DeviceFence;
use super::Fix;

/// The hysteresis tracker of one fence, tagged with the fence it was made for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FenceMemo {
    pub id: String,
    pub fingerprint: u64,
    pub tracker: FenceTracker,
}

/// Per-device GPS state (persisted by the router).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceTrack {
    pub filter: FilterState,
    pub fences: Vec<FenceMemo>,
}

/// A fence transition one fix confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceEvent {
    pub fence: String,
    /// `true`: confirmed exit (raise the alarm); `false`: confirmed re-entry (its restoral).
    pub exit: bool,
}

/// What one fix did.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub verdict: Verdict,
    /// Exits and re-entries this fix confirmed, in fence order. Empty for most fixes.
    pub fences: Vec<FenceEvent>,
}

impl Observed {
    /// The fix goes to the position history (accepted, or accepted late).
    pub fn to_history(&self) -> bool {
        matches!(self.verdict, Verdict::Accept | Verdict::AcceptLate)
    }

    /// The fix is the device's new latest position.
    pub fn is_latest(&self) -> bool {
        self.verdict == Verdict::Accept
    }
}

impl DeviceTrack {
    /// Runs `fix` through the filters and, if they trust it, through every fence.
    /// `is_alarm`: the fix came with an alarm, so no filter may reject it.
    pub fn observe(
        &mut self,
        filter: &FilterConfig,
        fences: &[DeviceFence],
        fix: &Fix,
        is_alarm: bool,
        now_ms: i64,
    ) -> Observed {
        let verdict = self.filter.process(filter, fix, is_alarm, now_ms);
        let mut out = Observed {
            verdict,
            fences: Vec::new(),
        };
        if !verdict.feeds_geofence() || fences.is_empty() {
            return out;
        }
        self.match_fences(fences);
        for (memo, f) in self.fences.iter_mut().zip(fences) {
            match memo.tracker.feed_fix(&f.hysteresis, &f.fence, fix) {
                Transition::Exit => out.fences.push(FenceEvent {
                    fence: f.id.clone(),
                    exit: true,
                }),
                Transition::Restoral => out.fences.push(FenceEvent {
                    fence: f.id.clone(),
                    exit: false,
                }),
                Transition::None | Transition::Stale => {}
            }
        }
        out
    }

    /// The confirmed zone for a fence id (`Unknown` if it has no tracker yet).
    pub fn zone(&self, fence: &str) -> Zone {
        self.fences
            .iter()
            .find(|m| m.id == fence)
            .map_or(Zone::Unknown, |m| m.tracker.zone())
    }

    /// Lines the trackers up with `fences` (same order), keeping each whose fence is unchanged.
    /// Trackers of fences no longer configured are dropped.
    fn match_fences(&mut self, fences: &[DeviceFence]) {
        let aligned = self.fences.len() == fences.len()
            && self
                .fences
                .iter()
                .zip(fences)
                .all(|(m, f)| m.id == f.id && m.fingerprint == f.fingerprint());
        if aligned {
            return;
        }
        let mut old = std::mem::take(&mut self.fences);
        for f in fences {
            let fingerprint = f.fingerprint();
            let tracker = match old
                .iter()
                .position(|m| m.id == f.id && m.fingerprint == fingerprint)
            {
                Some(i) => old.swap_remove(i).tracker,
                None => FenceTracker::new(),
            };
            self.fences.push(FenceMemo {
                id: f.id.clone(),
                fingerprint,
                tracker,
            });
        }
    }
}
