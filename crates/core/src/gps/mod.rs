//! GPS fixes: filters, dedup of resent fixes, geofences and exit/re-entry hysteresis.
//!
//! Everything here is pure: the current time is an argument, state is a plain value the caller
//! (the router shard owning the device) keeps. The per-fix pipeline is:
//!
//! ```text
//! fix --check(FilterConfig, FilterState)--> Verdict
//!        Accept            store; state.apply; feed the geofence
//!        AcceptLate        store in fix-time order (history only); state.apply; NOT fed
//!        AlarmOnly(r)      keep with the alarm that carried it; state.apply; NOT fed
//!        Reject(r)         count under r.as_str(); state.apply; fed only if r is thinning
//! feed: Fence::decide(fix) -> Decision --FenceTracker::feed--> Transition (None / Exit / Restoral)
//! ```
//! `Verdict::stores()` and `Verdict::feeds_geofence()` say which of these apply. `DeviceTrack`
//! runs this whole pipeline for one device against its `GpsPlan` entry (filters, fences). Keep one
//! `FilterState` per device and one `FenceTracker` per (device, fence); start a fresh tracker when
//! a fence changes. A tracker ignores (`Transition::Stale`) a fix older than the newest it has been
//! fed, which can happen with thinning on and fixes arriving out of order.

mod dedup;
mod fence;
mod filter;
mod geo;
mod hysteresis;
mod plan;
mod serde_util;
mod track;

#[cfg(test)]
mod fence_tests;
#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod hysteresis_tests;
#[cfg(test)]
mod perf_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod trace_tests;
#[cfg(test)]
mod track_tests;

pub use dedup::RecentFixes;
pub use fence::{
    Decision, Fence, FenceError, FenceKind, FenceSpec, MAX_POLYGON_EXTENT_M, MAX_POLYGON_VERTICES,
};
pub use filter::{check, FilterConfig, FilterOverride, FilterReason, FilterState, Verdict};
pub use geo::{haversine_m, EARTH_RADIUS_M};
pub use hysteresis::{FenceTracker, HysteresisConfig, Transition, Zone};
pub use plan::{DeviceFence, DeviceGps, GpsPlan};
pub use track::{DeviceTrack, FenceEvent, FenceMemo, Observed};

/// One position fix as a device reported it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fix {
    pub time_ms: i64, // fix time from the device, unix milliseconds
    pub lat: f64,     // WGS84 degrees
    pub lon: f64,
    pub accuracy_m: Option<f32>, // horizontal accuracy radius (1 sigma-ish), metres
    pub speed_mps: Option<f32>,
    pub course_deg: Option<f32>,
    pub valid: bool, // the device's own validity flag (e.g. GGA quality > 0)
}

impl Fix {
    /// A valid fix with no accuracy, speed or course: handy for tests and simple decoders.
    pub fn at(time_ms: i64, lat: f64, lon: f64) -> Fix {
        Fix {
            time_ms,
            lat,
            lon,
            accuracy_m: None,
            speed_mps: None,
            course_deg: None,
            valid: true,
        }
    }

    /// The same fix with a horizontal accuracy.
    pub fn with_accuracy(self, accuracy_m: f32) -> Fix {
        Fix {
            accuracy_m: Some(accuracy_m),
            ..self
        }
    }

    /// Latitude and longitude are finite and in range (lat ±90, lon ±180). A fix failing this
    /// is not a position at all, whoever carried it.
    pub fn coords_ok(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }

    /// Accuracy radius in metres used for decisions: an absent, negative or non-finite value
    /// counts as 0 (the fix is taken as a point; the fence margin absorbs ordinary jitter).
    pub fn accuracy(&self) -> f64 {
        match self.accuracy_m {
            Some(a) if a.is_finite() && a > 0.0 => f64::from(a),
            _ => 0.0,
        }
    }

    /// Same fix time and bit-for-bit the same position: what a resend looks like.
    pub fn same_as(&self, other: &Fix) -> bool {
        self.time_ms == other.time_ms && self.lat == other.lat && self.lon == other.lon
    }
}
