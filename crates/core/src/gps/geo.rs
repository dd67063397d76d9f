//! Distances on the sphere, and the local plane polygons are tested in.

/// Mean Earth radius (IUGG), metres. A sphere is plenty for filters and fences of a few km.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres per degree of latitude on that sphere.
pub(crate) const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// Great-circle distance in metres (haversine; stable for the short distances we mostly see).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let p1 = lat1.to_radians();
    let p2 = lat2.to_radians();
    let sin_dp = ((p2 - p1) * 0.5).sin();
    let sin_dl = ((lon2 - lon1).to_radians() * 0.5).sin();
    let a = sin_dp * sin_dp + p1.cos() * p2.cos() * sin_dl * sin_dl;
    // Rounding can push `a` a hair above 1 for antipodal points.
    2.0 * EARTH_RADIUS_M * a.min(1.0).sqrt().asin()
}

/// Longitude difference folded into [-180, 180) so fences across the antimeridian work.
pub(crate) fn wrap_lon(d: f64) -> f64 {
    if (-180.0..180.0).contains(&d) {
        d
    } else {
        (d + 180.0).rem_euclid(360.0) - 180.0
    }
}

/// Equirectangular projection around an origin: x east, y north, metres. Good to ~tan(lat)·Δlat
/// relative error, which is why polygons are limited in extent (see `MAX_POLYGON_EXTENT_M`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LocalPlane {
    lat0: f64,
    lon0: f64,
    kx: f64,
}

impl LocalPlane {
    pub(crate) fn new(lat0: f64, lon0: f64) -> Self {
        LocalPlane {
            lat0,
            lon0,
            kx: M_PER_DEG * lat0.to_radians().cos(),
        }
    }

    pub(crate) fn project(&self, lat: f64, lon: f64) -> (f64, f64) {
        (
            wrap_lon(lon - self.lon0) * self.kx,
            (lat - self.lat0) * M_PER_DEG,
        )
    }

    pub(crate) fn origin(&self) -> (f64, f64) {
        (self.lat0, self.lon0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_known_distances() {
        // One degree of latitude is R·π/180.
        let d = haversine_m(57.0, 12.0, 58.0, 12.0);
        assert!((d - M_PER_DEG).abs() < 1e-6, "{d}");
        assert_eq!(haversine_m(57.7, 11.9, 57.7, 11.9), 0.0);
        // Gothenburg -> Stockholm is about 398 km.
        let d = haversine_m(57.7089, 11.9746, 59.3293, 18.0686);
        assert!((d - 398_000.0).abs() < 3_000.0, "{d}");
        // Antipodes: half the circumference, no NaN.
        let d = haversine_m(0.0, 0.0, 0.0, 180.0);
        assert!((d - EARTH_RADIUS_M * std::f64::consts::PI).abs() < 1e-3);
        // Across the antimeridian.
        let d = haversine_m(0.0, 179.9995, 0.0, -179.9995);
        assert!((d - 0.001 * M_PER_DEG).abs() < 1e-3, "{d}");
    }

    #[test]
    fn wrap_and_project() {
        assert_eq!(wrap_lon(190.0), -170.0);
        assert_eq!(wrap_lon(-190.0), 170.0);
        assert_eq!(wrap_lon(10.0), 10.0);
        let p = LocalPlane::new(57.7, 11.97);
        let (x, y) = p.project(57.7 + 0.001, 11.97 + 0.001);
        assert!((y - 0.001 * M_PER_DEG).abs() < 1e-9);
        let expect_x = 0.001 * M_PER_DEG * 57.7f64.to_radians().cos();
        assert!((x - expect_x).abs() < 1e-9);
        // Close to the haversine distance at this scale.
        let d = haversine_m(57.7, 11.97, 57.701, 11.971);
        assert!(((x * x + y * y).sqrt() - d).abs() < 0.01);
    }
}
