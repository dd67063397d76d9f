//! Geofences: a circle or a polygon plus a margin, and the three-way decision for one fix.
//!
//! A fix is a circle of radius `accuracy`, not a point. Let `d` be the distance from the fix to the
//! fence boundary:
//! - `Inside`: the point is inside and `d >= accuracy` (the whole accuracy circle is inside);
//! - `Outside`: the point is outside and `d >= margin + accuracy` (the whole accuracy circle is
//!   beyond the fence grown by its margin);
//! - `Uncertain` otherwise: the circle straddles the edge or lies in the margin band. Jitter near
//!   the edge therefore yields `Uncertain`, never an exit.
//!
//! Circles use the haversine distance to the centre. Polygons are projected once, at construction,
//! to a local equirectangular plane around their bounding-box centre; a fix is tested by crossing
//! number (even-odd) and by distance to the nearest segment. Segments are grouped in chunks of
//! `CHUNK` with a bounding box each, so that only chunks the test ray crosses or that lie within
//! `margin + accuracy` of the fix are looked at segment by segment.

use super::geo::{haversine_m, wrap_lon, LocalPlane};
use super::Fix;

/// Polygons may have at most this many vertices (bounded everything).
pub const MAX_POLYGON_VERTICES: usize = 10_000;
/// Every polygon vertex must lie within this distance of the polygon's centre: keeps the local
/// projection's error small (relative error about tan(lat)·Δlat: under 0.5 % at 60°N at this size).
pub const MAX_POLYGON_EXTENT_M: f64 = 50_000.0;
/// Circles may have at most this radius.
pub const MAX_CIRCLE_RADIUS_M: f64 = 1_000_000.0;
/// Polygon vertices must lie within this latitude (the projection degenerates at the poles).
const MAX_POLYGON_LAT: f64 = 85.0;
/// Segments per chunk.
const CHUNK: usize = 16;

/// Where a fix is relative to a fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    Inside,
    Outside,
    Uncertain,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceKind {
    Circle,
    Polygon,
}

/// A fence as configured, e.g. in TOML:
/// `{ kind = "circle", lat = 57.7, lon = 11.97, radius_m = 500, margin_m = 50 }` or
/// `{ kind = "polygon", points = [[57.70, 11.96], [57.71, 11.96], [57.71, 11.98]], margin_m = 30 }`.
/// A flat struct rather than a tagged enum so that binary formats (postcard) can carry it too.
/// Turn it into a `Fence` (which validates) with `Fence::new` or `TryFrom`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceSpec {
    pub kind: FenceKind,
    /// Circle centre.
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// Polygon vertices as `[lat, lon]`, no holes; closing the ring (repeating the first point)
    /// is optional.
    #[serde(default)]
    pub points: Vec<[f64; 2]>,
    #[serde(default)]
    pub margin_m: f64,
}

/// What is wrong with a fence spec.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FenceError {
    #[error("a {kind} fence needs `{field}`")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("a {kind} fence does not take `{field}`")]
    Unexpected {
        kind: &'static str,
        field: &'static str,
    },
    #[error("the centre ({lat}, {lon}) is not a valid coordinate (lat -90..90, lon -180..180)")]
    BadCentre { lat: f64, lon: f64 },
    #[error("radius_m must be a finite number > 0 and <= {max}, got {got}")]
    BadRadius { got: f64, max: f64 },
    #[error("margin_m must be a finite number >= 0, got {0}")]
    BadMargin(f64),
    #[error("a polygon needs at least 3 distinct points, got {0}")]
    TooFewPoints(usize),
    #[error("a polygon may have at most {max} points, got {got}")]
    TooManyPoints { got: usize, max: usize },
    #[error("point {index} ({lat}, {lon}) is not a valid coordinate (polygons: lat -85..85, lon -180..180)")]
    BadPoint { index: usize, lat: f64, lon: f64 },
    #[error("point {index} is {dist_m:.0} m from the polygon's centre; polygons must fit within {max_m} m of it")]
    TooLarge {
        index: usize,
        dist_m: f64,
        max_m: f64,
    },
    #[error("the polygon has no area (its points are on a line)")]
    NoArea,
}

/// A validated fence, ready for fast decisions. (De)serialises as its `FenceSpec`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FenceSpec", into = "FenceSpec")]
pub struct Fence {
    shape: Shape,
    margin_m: f64,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Circle { lat: f64, lon: f64, radius_m: f64 },
    Polygon(Polygon),
}

#[derive(Clone, Debug, PartialEq)]
struct Polygon {
    /// The vertices as given (closing point and repeats removed), to give the spec back.
    points: Vec<[f64; 2]>,
    plane: LocalPlane,
    bbox: Rect,
    /// Projected vertices; segment i runs from xy[i] to xy[i + 1] (xy is closed: last == first).
    xy: Vec<(f64, f64)>,
    /// Bounding box of segments [k·CHUNK, (k+1)·CHUNK).
    chunks: Vec<Rect>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
}

impl Rect {
    fn around(pts: &[(f64, f64)]) -> Rect {
        let mut r = Rect {
            min_x: f64::INFINITY,
            min_y: f64::INFINITY,
            max_x: f64::NEG_INFINITY,
            max_y: f64::NEG_INFINITY,
        };
        for &(x, y) in pts {
            r.min_x = r.min_x.min(x);
            r.min_y = r.min_y.min(y);
            r.max_x = r.max_x.max(x);
            r.max_y = r.max_y.max(y);
        }
        r
    }

    /// Squared distance from a point to the rectangle (0 inside).
    fn dist2(&self, x: f64, y: f64) -> f64 {
        let dx = (self.min_x - x).max(0.0).max(x - self.max_x);
        let dy = (self.min_y - y).max(0.0).max(y - self.max_y);
        dx * dx + dy * dy
    }

    /// A horizontal ray from (x, y) towards +x may cross a segment inside this box. Matches the
    /// half-open crossing rule below: a segment straddles y if one end is above y and the other not.
    fn ray_may_cross(&self, x: f64, y: f64) -> bool {
        self.min_y <= y && y < self.max_y && x < self.max_x
    }
}

impl Fence {
    /// Validate a spec.
    pub fn new(spec: &FenceSpec) -> Result<Fence, FenceError> {
        match spec.kind {
            FenceKind::Circle => {
                let kind = "circle";
                if !spec.points.is_empty() {
                    return Err(FenceError::Unexpected {
                        kind,
                        field: "points",
                    });
                }
                let need = |v: Option<f64>, field| v.ok_or(FenceError::Missing { kind, field });
                Fence::circle(
                    need(spec.lat, "lat")?,
                    need(spec.lon, "lon")?,
                    need(spec.radius_m, "radius_m")?,
                    spec.margin_m,
                )
            }
            FenceKind::Polygon => {
                let kind = "polygon";
                for (v, field) in [
                    (spec.lat, "lat"),
                    (spec.lon, "lon"),
                    (spec.radius_m, "radius_m"),
                ] {
                    if v.is_some() {
                        return Err(FenceError::Unexpected { kind, field });
                    }
                }
                Fence::polygon(&spec.points, spec.margin_m)
            }
        }
    }

    /// A circle around (lat, lon).
    pub fn circle(lat: f64, lon: f64, radius_m: f64, margin_m: f64) -> Result<Fence, FenceError> {
        if !Fix::at(0, lat, lon).coords_ok() {
            return Err(FenceError::BadCentre { lat, lon });
        }
        if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= MAX_CIRCLE_RADIUS_M) {
            return Err(FenceError::BadRadius {
                got: radius_m,
                max: MAX_CIRCLE_RADIUS_M,
            });
        }
        check_margin(margin_m)?;
        Ok(Fence {
            shape: Shape::Circle { lat, lon, radius_m },
            margin_m,
        })
    }

    /// A polygon from `[lat, lon]` vertices (no holes; even-odd rule if it crosses itself).
    pub fn polygon(points: &[[f64; 2]], margin_m: f64) -> Result<Fence, FenceError> {
        check_margin(margin_m)?;
        if points.len() > MAX_POLYGON_VERTICES + 1 {
            return Err(FenceError::TooManyPoints {
                got: points.len(),
                max: MAX_POLYGON_VERTICES,
            });
        }
        for (index, &[lat, lon]) in points.iter().enumerate() {
            let ok = lat.is_finite()
                && lon.is_finite()
                && (-MAX_POLYGON_LAT..=MAX_POLYGON_LAT).contains(&lat)
                && (-180.0..=180.0).contains(&lon);
            if !ok {
                return Err(FenceError::BadPoint { index, lat, lon });
            }
        }
        // Drop repeated consecutive points and the optional closing point.
        let mut pts: Vec<[f64; 2]> = Vec::with_capacity(points.len());
        for &p in points {
            if pts.last() != Some(&p) {
                pts.push(p);
            }
        }
        while pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        if pts.len() < 3 {
            return Err(FenceError::TooFewPoints(pts.len()));
        }
        if pts.len() > MAX_POLYGON_VERTICES {
            return Err(FenceError::TooManyPoints {
                got: pts.len(),
                max: MAX_POLYGON_VERTICES,
            });
        }

        // Origin: bounding-box centre, longitudes taken relative to the first vertex so that a
        // polygon across the antimeridian is not torn apart.
        let lon_ref = pts[0][1];
        let (mut lat_lo, mut lat_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut dl_lo, mut dl_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &[lat, lon] in &pts {
            let dl = wrap_lon(lon - lon_ref);
            lat_lo = lat_lo.min(lat);
            lat_hi = lat_hi.max(lat);
            dl_lo = dl_lo.min(dl);
            dl_hi = dl_hi.max(dl);
        }
        let plane = LocalPlane::new(
            (lat_lo + lat_hi) / 2.0,
            wrap_lon(lon_ref + (dl_lo + dl_hi) / 2.0),
        );
        let (lat0, lon0) = plane.origin();
        let mut xy: Vec<(f64, f64)> = Vec::with_capacity(pts.len() + 1);
        for (index, &[lat, lon]) in pts.iter().enumerate() {
            let dist_m = haversine_m(lat0, lon0, lat, lon);
            if dist_m > MAX_POLYGON_EXTENT_M {
                return Err(FenceError::TooLarge {
                    index,
                    dist_m,
                    max_m: MAX_POLYGON_EXTENT_M,
                });
            }
            xy.push(plane.project(lat, lon));
        }
        xy.push(xy[0]);
        // Shoelace area; a square metre is "no area" at this scale.
        let twice_area: f64 = xy
            .windows(2)
            .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
            .sum();
        if twice_area.abs() < 2.0 {
            return Err(FenceError::NoArea);
        }
        let n_seg = xy.len() - 1;
        let chunks = (0..n_seg)
            .step_by(CHUNK)
            .map(|s| Rect::around(&xy[s..=(s + CHUNK).min(n_seg)]))
            .collect();
        Ok(Fence {
            shape: Shape::Polygon(Polygon {
                points: pts,
                plane,
                bbox: Rect::around(&xy),
                xy,
                chunks,
            }),
            margin_m,
        })
    }

    pub fn kind(&self) -> FenceKind {
        match self.shape {
            Shape::Circle { .. } => FenceKind::Circle,
            Shape::Polygon(_) => FenceKind::Polygon,
        }
    }

    pub fn margin_m(&self) -> f64 {
        self.margin_m
    }

    /// The spec this fence was built from (closing and repeated polygon points removed).
    pub fn spec(&self) -> FenceSpec {
        match &self.shape {
            Shape::Circle { lat, lon, radius_m } => FenceSpec {
                kind: FenceKind::Circle,
                lat: Some(*lat),
                lon: Some(*lon),
                radius_m: Some(*radius_m),
                points: Vec::new(),
                margin_m: self.margin_m,
            },
            Shape::Polygon(p) => FenceSpec {
                kind: FenceKind::Polygon,
                lat: None,
                lon: None,
                radius_m: None,
                points: p.points.clone(),
                margin_m: self.margin_m,
            },
        }
    }

    /// Decide a fix (its accuracy per `Fix::accuracy`).
    pub fn decide_fix(&self, fix: &Fix) -> Decision {
        self.decide(fix.lat, fix.lon, fix.accuracy())
    }

    /// Decide a position with an accuracy radius in metres. Unusable input (NaN, out of range)
    /// is `Uncertain`: bad data never makes an exit.
    pub fn decide(&self, lat: f64, lon: f64, accuracy_m: f64) -> Decision {
        let acc = if accuracy_m.is_finite() && accuracy_m > 0.0 {
            accuracy_m
        } else {
            0.0
        };
        if !Fix::at(0, lat, lon).coords_ok() {
            return Decision::Uncertain;
        }
        let out_clear = self.margin_m + acc;
        match &self.shape {
            Shape::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            } => {
                let d = haversine_m(*clat, *clon, lat, lon);
                if radius_m - d >= acc {
                    Decision::Inside
                } else if d - radius_m >= out_clear {
                    Decision::Outside
                } else {
                    Decision::Uncertain
                }
            }
            Shape::Polygon(p) => p.decide(lat, lon, acc, out_clear),
        }
    }
}

impl Polygon {
    fn decide(&self, lat: f64, lon: f64, acc: f64, out_clear: f64) -> Decision {
        let (px, py) = self.plane.project(lat, lon);
        let reach2 = out_clear * out_clear;
        // Outside the bounding box (so outside the polygon) and at least `out_clear` from it.
        let d2 = self.bbox.dist2(px, py);
        if d2 > 0.0 && d2 >= reach2 {
            return Decision::Outside;
        }
        let mut inside = false;
        // Nearest segment distance², only tracked below `reach2` (farther never matters).
        let mut near2 = reach2;
        for (k, chunk) in self.chunks.iter().enumerate() {
            let ray = chunk.ray_may_cross(px, py);
            let close = chunk.dist2(px, py) < near2;
            if !ray && !close {
                continue;
            }
            let start = k * CHUNK;
            let end = (start + CHUNK).min(self.xy.len() - 1);
            for i in start..end {
                let (ax, ay) = self.xy[i];
                let (bx, by) = self.xy[i + 1];
                if ray && (ay > py) != (by > py) && px < ax + (py - ay) * (bx - ax) / (by - ay) {
                    inside = !inside;
                }
                if close {
                    near2 = near2.min(seg_dist2(px, py, ax, ay, bx, by));
                }
            }
        }
        if inside {
            if near2 >= acc * acc {
                Decision::Inside
            } else {
                Decision::Uncertain
            }
        } else if near2 >= reach2 {
            Decision::Outside
        } else {
            Decision::Uncertain
        }
    }
}

#[cfg(test)]
impl Fence {
    /// Reference for tests: every segment, no bounding boxes.
    pub(crate) fn decide_brute_force(&self, lat: f64, lon: f64, acc: f64) -> Decision {
        let Shape::Polygon(p) = &self.shape else {
            return self.decide(lat, lon, acc);
        };
        let (px, py) = p.plane.project(lat, lon);
        let mut inside = false;
        let mut min2 = f64::INFINITY;
        for w in p.xy.windows(2) {
            let ((ax, ay), (bx, by)) = (w[0], w[1]);
            if (ay > py) != (by > py) && px < ax + (py - ay) * (bx - ax) / (by - ay) {
                inside = !inside;
            }
            min2 = min2.min(seg_dist2(px, py, ax, ay, bx, by));
        }
        let d = min2.sqrt();
        if inside && d >= acc {
            Decision::Inside
        } else if !inside && d >= self.margin_m + acc {
            Decision::Outside
        } else {
            Decision::Uncertain
        }
    }
}

/// Squared distance from p to segment ab.
fn seg_dist2(px: f64, py: f64, ax: f64, ay: f64, bx: f64, by: f64) -> f64 {
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (ax + t * dx - px, ay + t * dy - py);
    ex * ex + ey * ey
}

fn check_margin(margin_m: f64) -> Result<(), FenceError> {
    if margin_m.is_finite() && margin_m >= 0.0 {
        Ok(())
    } else {
        Err(FenceError::BadMargin(margin_m))
    }
}

impl TryFrom<FenceSpec> for Fence {
    type Error = FenceError;
    fn try_from(spec: FenceSpec) -> Result<Fence, FenceError> {
        Fence::new(&spec)
    }
}

impl From<Fence> for FenceSpec {
    fn from(f: Fence) -> FenceSpec {
        f.spec()
    }
}
