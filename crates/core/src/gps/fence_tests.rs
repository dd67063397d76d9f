//! Geofence decisions, validation and config shapes.

use super::test_util::{from_map, offset, HOME, V};
use super::*;
use Decision::{Inside, Outside, Uncertain};

/// A point `north_m` north and `east_m` east of HOME.
fn at(north_m: f64, east_m: f64) -> (f64, f64) {
    offset(HOME, north_m, east_m)
}

/// A square polygon centred on HOME with half-side `h` metres.
fn square(h: f64, margin_m: f64) -> Fence {
    let pts: Vec<[f64; 2]> = [(-h, -h), (-h, h), (h, h), (h, -h)]
        .iter()
        .map(|&(n, e)| {
            let (lat, lon) = at(n, e);
            [lat, lon]
        })
        .collect();
    Fence::polygon(&pts, margin_m).unwrap()
}

#[test]
fn circle_decisions() {
    let f = Fence::circle(HOME.0, HOME.1, 500.0, 50.0).unwrap();
    // (north metres, accuracy, expected)
    let table = [
        (0.0, 0.0, Inside),
        (400.0, 50.0, Inside), // 100 m clear of the edge >= 50 m accuracy
        (400.0, 99.0, Inside),
        (400.0, 101.0, Uncertain),
        (400.0, 150.0, Uncertain), // straddles the edge
        (499.0, 0.0, Inside),
        (520.0, 0.0, Uncertain), // in the margin band
        (549.0, 0.0, Uncertain),
        (551.0, 0.0, Outside),
        (560.0, 20.0, Uncertain), // 60 m beyond the edge < margin 50 + accuracy 20
        (580.0, 20.0, Outside),
        (2_000.0, 200.0, Outside),
        (700.0, 200.0, Uncertain),
    ];
    for (n, acc, want) in table {
        let (lat, lon) = at(n, 0.0);
        assert_eq!(f.decide(lat, lon, acc), want, "{n} m north, accuracy {acc}");
        // The direction does not matter for a circle.
        let (lat, lon) = at(0.0, -n);
        assert_eq!(f.decide(lat, lon, acc), want, "{n} m west, accuracy {acc}");
    }
    // Bad input is never an exit.
    assert_eq!(f.decide(f64::NAN, HOME.1, 0.0), Uncertain);
    assert_eq!(f.decide(95.0, HOME.1, 0.0), Uncertain);
    // Bad accuracy counts as 0.
    let (lat, lon) = at(499.0, 0.0);
    assert_eq!(f.decide(lat, lon, f64::NAN), Inside);
    assert_eq!(f.decide(lat, lon, -5.0), Inside);
    let fix = Fix::at(0, lat, lon).with_accuracy(10.0);
    assert_eq!(f.decide_fix(&fix), Uncertain);
}

#[test]
fn polygon_decisions() {
    let f = square(500.0, 50.0);
    let table = [
        (0.0, 0.0, 0.0, Inside),
        (400.0, 0.0, 50.0, Inside),
        (400.0, 0.0, 150.0, Uncertain),
        (400.0, 400.0, 99.0, Inside), // 100 m from both edges
        (400.0, 400.0, 101.0, Uncertain),
        (520.0, 0.0, 0.0, Uncertain),
        (560.0, 0.0, 0.0, Outside),
        (560.0, 0.0, 20.0, Uncertain),
        // Beyond a corner the distance is to the corner point: 40 m + 40 m diagonally is 56.6 m.
        (540.0, 540.0, 0.0, Outside),
        (530.0, 530.0, 0.0, Uncertain),
        (-5_000.0, 0.0, 10.0, Outside),
        (0.0, 9_000.0, 10.0, Outside),
        (0.0, -9_000.0, 10.0, Outside), // far left: the ray crosses the polygon twice
    ];
    for (n, e, acc, want) in table {
        let (lat, lon) = at(n, e);
        assert_eq!(f.decide(lat, lon, acc), want, "({n}, {e}) accuracy {acc}");
    }
    // Margin 0, accuracy 0: any point strictly outside is Outside.
    let tight = square(500.0, 0.0);
    let (lat, lon) = at(500.5, 0.0);
    assert_eq!(tight.decide(lat, lon, 0.0), Outside);
}

#[test]
fn concave_polygon() {
    // A U shape opening north: the notch (x in -100..100, y > -200) is outside.
    let shape = [
        (-400.0, -400.0),
        (400.0, -400.0),
        (400.0, 100.0),
        (-200.0, 100.0),
        (-200.0, -100.0),
        (400.0, -100.0),
        (400.0, 400.0),
        (-400.0, 400.0),
    ];
    let pts: Vec<[f64; 2]> = shape
        .iter()
        .map(|&(n, e)| {
            let (lat, lon) = at(n, e);
            [lat, lon]
        })
        .collect();
    let f = Fence::polygon(&pts, 20.0).unwrap();
    let table = [
        (300.0, 0.0, 0.0, Outside), // in the notch, 100 m from its sides
        (300.0, 0.0, 90.0, Uncertain),
        (0.0, 300.0, 10.0, Inside),
        (0.0, -300.0, 10.0, Inside),
        (-300.0, 0.0, 10.0, Inside),
    ];
    for (n, e, acc, want) in table {
        let (lat, lon) = at(n, e);
        assert_eq!(f.decide(lat, lon, acc), want, "({n}, {e}) accuracy {acc}");
    }
}

#[test]
fn polygon_across_the_antimeridian() {
    let pts = [
        [-0.01, 179.99],
        [-0.01, -179.99],
        [0.01, -179.99],
        [0.01, 179.99],
    ];
    let f = Fence::polygon(&pts, 10.0).unwrap();
    assert_eq!(f.decide(0.0, 180.0, 10.0), Inside);
    assert_eq!(f.decide(0.0, -179.995, 10.0), Inside);
    assert_eq!(f.decide(0.0, 179.995, 10.0), Inside);
    assert_eq!(f.decide(0.0, 179.9, 10.0), Outside);
    assert_eq!(f.decide(0.0, -179.9, 10.0), Outside);
    assert_eq!(f.decide(0.0, 0.0, 10.0), Outside);
}

#[test]
fn polygon_like_circle_agrees_with_circle() {
    // A 1,000-gon of radius 500 m differs from the circle by millimetres.
    let pts: Vec<[f64; 2]> = (0..1000)
        .map(|i| {
            let a = i as f64 * std::f64::consts::TAU / 1000.0;
            let (lat, lon) = at(500.0 * a.cos(), 500.0 * a.sin());
            [lat, lon]
        })
        .collect();
    let poly = Fence::polygon(&pts, 50.0).unwrap();
    let circle = Fence::circle(HOME.0, HOME.1, 500.0, 50.0).unwrap();
    let mut checked = 0;
    for r in (0..1_400).step_by(7) {
        for k in 0..36 {
            let a = f64::from(k) * 10f64.to_radians() + 0.01;
            let (lat, lon) = at(f64::from(r) * a.cos(), f64::from(r) * a.sin());
            for acc in [0.0, 30.0, 120.0] {
                // Skip points within 1 m of a decision threshold.
                let d = haversine_m(HOME.0, HOME.1, lat, lon);
                let near = [500.0 - acc, 550.0 + acc]
                    .iter()
                    .any(|t| (d - t).abs() < 1.0);
                if !near {
                    assert_eq!(
                        poly.decide(lat, lon, acc),
                        circle.decide(lat, lon, acc),
                        "r={r} k={k}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn validation_errors_say_what_is_wrong() {
    let e = |r: Result<Fence, FenceError>| r.unwrap_err();
    assert_eq!(
        e(Fence::circle(91.0, 0.0, 10.0, 0.0)),
        FenceError::BadCentre {
            lat: 91.0,
            lon: 0.0
        }
    );
    assert!(matches!(
        e(Fence::circle(1.0, 1.0, 0.0, 0.0)),
        FenceError::BadRadius { .. }
    ));
    assert!(matches!(
        e(Fence::circle(1.0, 1.0, f64::NAN, 0.0)),
        FenceError::BadRadius { .. }
    ));
    assert_eq!(
        e(Fence::circle(1.0, 1.0, 10.0, -1.0)),
        FenceError::BadMargin(-1.0)
    );
    assert!(matches!(
        e(Fence::circle(1.0, 1.0, 10.0, f64::INFINITY)),
        FenceError::BadMargin(_)
    ));
    let tri = [[57.0, 12.0], [57.001, 12.0], [57.0, 12.001]];
    assert!(Fence::polygon(&tri, 0.0).is_ok());
    // Closing point and repeats do not count.
    let closed = [[57.0, 12.0], [57.001, 12.0], [57.001, 12.0], [57.0, 12.0]];
    assert_eq!(e(Fence::polygon(&closed, 0.0)), FenceError::TooFewPoints(2));
    assert_eq!(e(Fence::polygon(&[], 0.0)), FenceError::TooFewPoints(0));
    let bad = [[57.0, 12.0], [57.001, f64::NAN], [57.0, 12.001]];
    assert!(matches!(
        e(Fence::polygon(&bad, 0.0)),
        FenceError::BadPoint { index: 1, .. }
    ));
    let polar = [[86.0, 12.0], [86.001, 12.0], [86.0, 12.001]];
    assert!(matches!(
        e(Fence::polygon(&polar, 0.0)),
        FenceError::BadPoint { index: 0, .. }
    ));
    let line = [[57.0, 12.0], [57.001, 12.0], [57.002, 12.0]];
    assert_eq!(e(Fence::polygon(&line, 0.0)), FenceError::NoArea);
    let huge = [[57.0, 12.0], [58.0, 12.0], [57.0, 13.0]];
    assert!(matches!(
        e(Fence::polygon(&huge, 0.0)),
        FenceError::TooLarge { .. }
    ));
    let many: Vec<[f64; 2]> = (0..MAX_POLYGON_VERTICES + 5)
        .map(|i| {
            let a = i as f64 * 0.001;
            [57.0 + 0.01 * a.cos(), 12.0 + 0.01 * a.sin()]
        })
        .collect();
    assert!(matches!(
        e(Fence::polygon(&many, 0.0)),
        FenceError::TooManyPoints { .. }
    ));
    // Messages are readable.
    assert_eq!(
        FenceError::TooFewPoints(2).to_string(),
        "a polygon needs at least 3 distinct points, got 2"
    );
    let msg = e(Fence::polygon(&bad, 0.0)).to_string();
    assert!(
        msg.starts_with("point 1 (57.001, NaN) is not a valid coordinate"),
        "{msg}"
    );
}

#[test]
fn spec_shapes() {
    let circle: Fence = from_map(vec![
        ("kind", V::S("circle")),
        ("lat", V::F(57.7089)),
        ("lon", V::F(11.9746)),
        ("radius_m", V::I(500)),
        ("margin_m", V::I(50)),
    ])
    .unwrap();
    assert_eq!(
        circle,
        Fence::circle(57.7089, 11.9746, 500.0, 50.0).unwrap()
    );
    assert_eq!(circle.kind(), FenceKind::Circle);
    assert_eq!(Fence::new(&circle.spec()).unwrap(), circle);

    let pt = |a: f64, b: f64| V::L(vec![V::F(a), V::F(b)]);
    let poly: Fence = from_map(vec![
        ("kind", V::S("polygon")),
        (
            "points",
            V::L(vec![
                pt(57.70, 11.96),
                pt(57.71, 11.96),
                pt(57.71, 11.98),
                pt(57.70, 11.96),
            ]),
        ),
    ])
    .unwrap();
    assert_eq!(poly.kind(), FenceKind::Polygon);
    assert_eq!(poly.margin_m(), 0.0);
    assert_eq!(poly.spec().points.len(), 3, "closing point dropped");
    assert_eq!(Fence::new(&poly.spec()).unwrap(), poly);

    // Errors come through deserialization with their message.
    let err = from_map::<Fence>(vec![
        ("kind", V::S("circle")),
        ("lat", V::F(1.0)),
        ("lon", V::F(1.0)),
    ])
    .unwrap_err();
    assert_eq!(err, "a circle fence needs `radius_m`");
    let err = from_map::<Fence>(vec![
        ("kind", V::S("polygon")),
        ("radius_m", V::F(1.0)),
        ("points", V::L(vec![])),
    ])
    .unwrap_err();
    assert_eq!(err, "a polygon fence does not take `radius_m`");
    let err = from_map::<Fence>(vec![
        ("kind", V::S("circle")),
        ("points", V::L(vec![pt(1.0, 1.0)])),
    ])
    .unwrap_err();
    assert_eq!(err, "a circle fence does not take `points`");
    let err = from_map::<Fence>(vec![("kind", V::S("hexagon"))]).unwrap_err();
    assert!(err.contains("hexagon"), "{err}");
    let err = from_map::<Fence>(vec![("kind", V::S("circle")), ("radius", V::I(5))]).unwrap_err();
    assert!(err.contains("unknown field `radius`"), "{err}");
}
