//! The fix filter chain, with Traccar's filter semantics as the baseline.
//!
//! Order of checks (the first that fails names the reason):
//! 1. coordinates: NaN or out of range is never a position, alarm or not -> `Reject(BadCoordinates)`;
//! 2. quality, stateless: `invalid` flag, `zero` (0,0), `future`, `past`, `accuracy`;
//! 3. `duplicate`: same fix time and same position as the last accepted fix or as any of the last
//!    16 stored fixes (resends);
//! 4. late: older than the last accepted fix -> `AcceptLate` (history only; not the new "last");
//! 5. `max_speed`: implied speed from the last accepted fix (elapsed time counted as at least 1 s,
//!    device clocks tick in seconds) -> outlier;
//! 6. thinning: `min_distance`, `min_period` (storage thinning only: the fix is good).
//!
//! Exemptions, so that a filter never hides a real change:
//! - `is_alarm`: a fix carried by an alarm is never rejected if its coordinates are usable. It skips
//!   duplicate and thinning; if it fails a quality filter or max speed it comes back as
//!   `AlarmOnly(reason)`: keep it with the alarm for the operator, but it is not trusted as the
//!   device's position (not "last", not fed to the geofence).
//! - `gap_bypass_s` (Traccar's skipLimit): a fix more than this many seconds (fix time) after the
//!   last accepted one skips the thinning filters, so a device standing still is still heard from.
//!   It does not bypass duplicate (a resend has no gap), quality filters or max speed.
//! - speed re-anchoring: if the last accepted fix was itself the outlier, every true fix after it
//!   would be rejected for speed. After `speed_reanchor_fixes` consecutive speed rejections that
//!   agree with each other (each plausible from the one before), the last of them is accepted.
//!
//! Late fixes skip max speed and thinning: they cannot be judged against the newest fix.

use super::dedup::RecentFixes;
use super::geo::haversine_m;
use super::serde_util::{limit, override_limit, ser_override_limit};
use super::Fix;

/// Which filters run and their limits. Every filter can be turned off: booleans with `false`,
/// limits with `false` (TOML has no null). Times are seconds, distances metres.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Reject fixes the device itself marks invalid.
    pub invalid: bool,
    /// Reject (0, 0), the classic "no fix" placeholder.
    pub zero: bool,
    /// Reject resends: same fix time and position as a recently stored fix.
    pub duplicate: bool,
    /// Reject fixes more than this far ahead of now (a wrong device clock; accepting one would
    /// make every later true fix look late).
    #[serde(deserialize_with = "limit")]
    pub future_s: Option<u32>,
    /// Reject fixes older than this before now.
    #[serde(deserialize_with = "limit")]
    pub past_s: Option<u32>,
    /// Reject fixes whose accuracy radius is worse than this.
    #[serde(deserialize_with = "limit")]
    pub accuracy_m: Option<f32>,
    /// Thinning: drop fixes closer than this to the last accepted fix.
    #[serde(deserialize_with = "limit")]
    pub min_distance_m: Option<f32>,
    /// Thinning: drop fixes sooner than this after the last accepted fix.
    #[serde(deserialize_with = "limit")]
    pub min_period_s: Option<u32>,
    /// Reject fixes implying a speed above this from the last accepted fix (outliers).
    #[serde(deserialize_with = "limit")]
    pub max_speed_kmh: Option<f32>,
    /// Accept the N-th consecutive mutually consistent speed outlier (N >= 2; smaller counts as 2).
    #[serde(deserialize_with = "limit")]
    pub speed_reanchor_fixes: Option<u32>,
    /// A fix more than this after the last accepted one bypasses the thinning filters.
    #[serde(deserialize_with = "limit")]
    pub gap_bypass_s: Option<u32>,
}

impl Default for FilterConfig {
    /// Quality filters on, thinning off (thinning is a storage choice per tenant).
    fn default() -> Self {
        FilterConfig {
            invalid: true,
            zero: true,
            duplicate: true,
            future_s: Some(120),
            past_s: Some(7 * 24 * 3600),
            accuracy_m: Some(1_000.0),
            min_distance_m: None,
            min_period_s: None,
            max_speed_kmh: Some(300.0),
            speed_reanchor_fixes: Some(3),
            gap_bypass_s: Some(300),
        }
    }
}

/// A per-device override laid over a tenant's `FilterConfig`: absent fields inherit, present
/// ones replace; a limit set to `false` turns that filter off for the device.
/// Serialises (for the directory's JSON records) to the same form: absent fields are left out,
/// a limit turned off is `false`; not for positional formats such as postcard.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub future_s: Option<Option<u32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub past_s: Option<Option<u32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub accuracy_m: Option<Option<f32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_distance_m: Option<Option<f32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_period_s: Option<Option<u32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_speed_kmh: Option<Option<f32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub speed_reanchor_fixes: Option<Option<u32>>,
    #[serde(
        deserialize_with = "override_limit",
        serialize_with = "ser_override_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub gap_bypass_s: Option<Option<u32>>,
}

impl FilterConfig {
    /// This config with a device's override laid on top.
    pub fn with_override(&self, o: &FilterOverride) -> FilterConfig {
        FilterConfig {
            invalid: o.invalid.unwrap_or(self.invalid),
            zero: o.zero.unwrap_or(self.zero),
            duplicate: o.duplicate.unwrap_or(self.duplicate),
            future_s: o.future_s.unwrap_or(self.future_s),
            past_s: o.past_s.unwrap_or(self.past_s),
            accuracy_m: o.accuracy_m.unwrap_or(self.accuracy_m),
            min_distance_m: o.min_distance_m.unwrap_or(self.min_distance_m),
            min_period_s: o.min_period_s.unwrap_or(self.min_period_s),
            max_speed_kmh: o.max_speed_kmh.unwrap_or(self.max_speed_kmh),
            speed_reanchor_fixes: o.speed_reanchor_fixes.unwrap_or(self.speed_reanchor_fixes),
            gap_bypass_s: o.gap_bypass_s.unwrap_or(self.gap_bypass_s),
        }
    }

    /// Every filter off: only unusable coordinates and lateness are classified.
    pub fn none() -> FilterConfig {
        FilterConfig {
            invalid: false,
            zero: false,
            duplicate: false,
            future_s: None,
            past_s: None,
            accuracy_m: None,
            min_distance_m: None,
            min_period_s: None,
            max_speed_kmh: None,
            speed_reanchor_fixes: None,
            gap_bypass_s: None,
        }
    }
}

/// Why a fix was rejected (or kept only for its alarm). `as_str` is a stable metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FilterReason {
    BadCoordinates,
    Invalid,
    Zero,
    Future,
    Past,
    Accuracy,
    Duplicate,
    MaxSpeed,
    MinDistance,
    MinPeriod,
}

impl FilterReason {
    /// All reasons, e.g. to register metric series up front.
    pub const ALL: [FilterReason; 10] = [
        FilterReason::BadCoordinates,
        FilterReason::Invalid,
        FilterReason::Zero,
        FilterReason::Future,
        FilterReason::Past,
        FilterReason::Accuracy,
        FilterReason::Duplicate,
        FilterReason::MaxSpeed,
        FilterReason::MinDistance,
        FilterReason::MinPeriod,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FilterReason::BadCoordinates => "bad_coordinates",
            FilterReason::Invalid => "invalid",
            FilterReason::Zero => "zero",
            FilterReason::Future => "future",
            FilterReason::Past => "past",
            FilterReason::Accuracy => "accuracy",
            FilterReason::Duplicate => "duplicate",
            FilterReason::MaxSpeed => "max_speed",
            FilterReason::MinDistance => "min_distance",
            FilterReason::MinPeriod => "min_period",
        }
    }

    /// Thinning drops a good fix to save storage; the geofence should still see it.
    pub const fn is_thinning(self) -> bool {
        matches!(self, FilterReason::MinDistance | FilterReason::MinPeriod)
    }
}

/// What to do with one fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// Store it; it becomes the device's last fix; feed it to the geofence.
    Accept,
    /// Older than the last accepted fix (buffered by a device out of coverage): store it in
    /// fix-time order for history; it does not become "last" and is not fed to the geofence.
    AcceptLate,
    /// Carried by an alarm but failed a quality filter or max speed: keep it with the alarm so the
    /// operator sees it (with the reason), but do not trust it as the device's position.
    AlarmOnly(FilterReason),
    /// Drop it (count it under `reason.as_str()`). Thinning rejects still feed the geofence.
    Reject(FilterReason),
}

impl Verdict {
    /// Whether the fix is written to the store.
    pub const fn stores(self) -> bool {
        !matches!(self, Verdict::Reject(_))
    }

    /// Whether the fix is fed to the geofence trackers: accepted fixes, and good fixes dropped only
    /// by thinning (so thinning never delays an exit).
    pub const fn feeds_geofence(self) -> bool {
        match self {
            Verdict::Accept => true,
            Verdict::Reject(r) => r.is_thinning(),
            Verdict::AcceptLate | Verdict::AlarmOnly(_) => false,
        }
    }

    pub const fn reason(self) -> Option<FilterReason> {
        match self {
            Verdict::Accept | Verdict::AcceptLate => None,
            Verdict::AlarmOnly(r) | Verdict::Reject(r) => Some(r),
        }
    }
}

/// A speed outlier that may turn out to be the truth (see speed re-anchoring).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Outlier {
    time_ms: i64,
    lat: f64,
    lon: f64,
    /// Length of the chain of mutually consistent outliers ending here.
    streak: u32,
}

/// Per-device filter state, kept by the caller: the last accepted fix, a dedup ring of recently
/// stored fixes, and the pending speed-outlier chain. 232 bytes, no heap.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FilterState {
    last: Option<Fix>,
    recent: RecentFixes,
    outlier: Option<Outlier>,
}

impl FilterState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last accepted fix: the device's current position as far as filters know.
    pub fn last(&self) -> Option<&Fix> {
        self.last.as_ref()
    }

    /// Fix time of the newest fix this state holds (last accepted, pending outlier).
    pub fn newest_fix_ms(&self) -> Option<i64> {
        self.last
            .map(|f| f.time_ms)
            .into_iter()
            .chain(self.outlier.map(|o| o.time_ms))
            .max()
    }

    /// Retention (GDPR): forgets every fix this state holds if the newest one it knows (last
    /// accepted, pending outlier) has a fix time before `before_ms`. Returns whether it did. The
    /// next fix is then judged as a device's first.
    pub fn forget_before(&mut self, before_ms: i64) -> bool {
        match self.newest_fix_ms() {
            Some(t) if t < before_ms => {
                *self = Self::default();
                true
            }
            _ => false,
        }
    }

    /// Record an accepted fix (`Verdict::Accept`). Idempotent.
    pub fn accept(&mut self, fix: &Fix) {
        self.last = Some(*fix);
        self.recent.remember(fix);
        self.outlier = None;
    }

    /// Record the outcome of `check` for this fix; call it for every verdict.
    pub fn apply(&mut self, cfg: &FilterConfig, fix: &Fix, verdict: Verdict) {
        match verdict {
            Verdict::Accept => self.accept(fix),
            Verdict::AcceptLate => self.recent.remember(fix),
            Verdict::AlarmOnly(r) => {
                self.recent.remember(fix);
                if r == FilterReason::MaxSpeed {
                    self.note_outlier(cfg, fix);
                }
            }
            Verdict::Reject(FilterReason::MaxSpeed) => self.note_outlier(cfg, fix),
            Verdict::Reject(_) => {}
        }
    }

    /// `check` then `apply`.
    pub fn process(
        &mut self,
        cfg: &FilterConfig,
        fix: &Fix,
        is_alarm: bool,
        now_ms: i64,
    ) -> Verdict {
        let v = check(cfg, self, fix, is_alarm, now_ms);
        self.apply(cfg, fix, v);
        v
    }

    fn note_outlier(&mut self, cfg: &FilterConfig, fix: &Fix) {
        let streak = match self.outlier {
            // Not newer than the chain's end: leaves the chain as it is (keeps `apply` idempotent).
            Some(o) if fix.time_ms <= o.time_ms => return,
            Some(o) if plausible(cfg, o.time_ms, o.lat, o.lon, fix) => o.streak.saturating_add(1),
            _ => 1,
        };
        self.outlier = Some(Outlier {
            time_ms: fix.time_ms,
            lat: fix.lat,
            lon: fix.lon,
            streak,
        });
    }
}

/// Classify one fix. Pure: `now_ms` is the caller's clock; `is_alarm` says the fix came with an
/// alarm event. Never returns `Reject` for an alarm fix with usable coordinates.
pub fn check(
    cfg: &FilterConfig,
    state: &FilterState,
    fix: &Fix,
    is_alarm: bool,
    now_ms: i64,
) -> Verdict {
    if !fix.coords_ok() {
        return Verdict::Reject(FilterReason::BadCoordinates);
    }
    let suspect = |r| {
        if is_alarm {
            Verdict::AlarmOnly(r)
        } else {
            Verdict::Reject(r)
        }
    };
    if let Some(r) = quality(cfg, fix, now_ms) {
        return suspect(r);
    }
    if cfg.duplicate
        && !is_alarm
        && (state.last.is_some_and(|l| l.same_as(fix)) || state.recent.contains(fix))
    {
        return Verdict::Reject(FilterReason::Duplicate);
    }
    let Some(last) = state.last else {
        return Verdict::Accept;
    };
    if fix.time_ms < last.time_ms {
        return Verdict::AcceptLate;
    }
    let dt_ms = fix.time_ms.saturating_sub(last.time_ms);
    let bypass = matches!(cfg.gap_bypass_s, Some(g) if dt_ms > i64::from(g) * 1000);
    let thin = !is_alarm && !bypass;
    let need_distance = cfg.max_speed_kmh.is_some() || (thin && cfg.min_distance_m.is_some());
    let dist = if need_distance {
        haversine_m(last.lat, last.lon, fix.lat, fix.lon)
    } else {
        0.0
    };
    if let Some(v) = cfg.max_speed_kmh {
        if too_fast(dist, dt_ms, v) {
            return if reanchors(cfg, state, fix) {
                Verdict::Accept
            } else {
                suspect(FilterReason::MaxSpeed)
            };
        }
    }
    if thin {
        if cfg.min_distance_m.is_some_and(|d| dist < f64::from(d)) {
            return Verdict::Reject(FilterReason::MinDistance);
        }
        if cfg
            .min_period_s
            .is_some_and(|p| dt_ms < i64::from(p) * 1000)
        {
            return Verdict::Reject(FilterReason::MinPeriod);
        }
    }
    Verdict::Accept
}

/// The stateless quality filters.
fn quality(cfg: &FilterConfig, fix: &Fix, now_ms: i64) -> Option<FilterReason> {
    if cfg.invalid && !fix.valid {
        return Some(FilterReason::Invalid);
    }
    if cfg.zero && fix.lat == 0.0 && fix.lon == 0.0 {
        return Some(FilterReason::Zero);
    }
    if let Some(s) = cfg.future_s {
        if fix.time_ms > now_ms.saturating_add(i64::from(s) * 1000) {
            return Some(FilterReason::Future);
        }
    }
    if let Some(s) = cfg.past_s {
        if fix.time_ms < now_ms.saturating_sub(i64::from(s) * 1000) {
            return Some(FilterReason::Past);
        }
    }
    if let Some(a) = cfg.accuracy_m {
        if fix.accuracy() > f64::from(a) {
            return Some(FilterReason::Accuracy);
        }
    }
    None
}

/// Implied speed above the limit. Elapsed time counts as at least 1 s: device clocks tick in
/// seconds, so two fixes stamped the same second may be up to a second apart.
fn too_fast(dist_m: f64, dt_ms: i64, max_kmh: f32) -> bool {
    let secs = dt_ms.max(1000) as f64 / 1000.0;
    dist_m * 3.6 > f64::from(max_kmh) * secs
}

/// `fix` is reachable from (time, lat, lon) under the speed limit, and newer.
fn plausible(cfg: &FilterConfig, time_ms: i64, lat: f64, lon: f64, fix: &Fix) -> bool {
    let Some(v) = cfg.max_speed_kmh else {
        return true;
    };
    let dt_ms = fix.time_ms.saturating_sub(time_ms);
    fix.time_ms > time_ms && !too_fast(haversine_m(lat, lon, fix.lat, fix.lon), dt_ms, v)
}

/// This speed outlier completes a chain of `speed_reanchor_fixes` consistent outliers.
fn reanchors(cfg: &FilterConfig, state: &FilterState, fix: &Fix) -> bool {
    let (Some(n), Some(o)) = (cfg.speed_reanchor_fixes, state.outlier) else {
        return false;
    };
    o.streak.saturating_add(1) >= n.max(2) && plausible(cfg, o.time_ms, o.lat, o.lon, fix)
}
