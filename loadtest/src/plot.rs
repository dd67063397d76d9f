//! The SVG plot: latency percentiles (ack and offer, p50 and p99 per second) above throughput per
//! second (sent, acked, delivered), both against seconds since the start of the schedule.
use std::path::Path;

use plotters::prelude::*;

use crate::record::Bucket;

type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

fn latency_series(timeline: &[Bucket]) -> Vec<Series> {
    let pick = |f: fn(&Bucket) -> &hdrhistogram::Histogram<u64>, q: f64| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .enumerate()
            .filter(|(_, b)| !f(b).is_empty())
            .map(|(s, b)| (s as f64 + 0.5, f(b).value_at_quantile(q) as f64 / 1000.0))
            .collect()
    };
    vec![
        ("ack p50", BLUE, pick(|b| &b.ack, 0.5)),
        ("ack p99", RGBColor(0, 0, 120), pick(|b| &b.ack, 0.99)),
        ("offer p50", RED, pick(|b| &b.offer, 0.5)),
        ("offer p99", RGBColor(130, 0, 0), pick(|b| &b.offer, 0.99)),
    ]
}

fn throughput_series(timeline: &[Bucket]) -> Vec<Series> {
    let pick = |f: fn(&Bucket) -> u64| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .enumerate()
            .map(|(s, b)| (s as f64 + 0.5, f(b) as f64))
            .collect()
    };
    vec![
        ("sent/s", RGBColor(120, 120, 120), pick(|b| b.sent)),
        ("acked/s", BLUE, pick(|b| b.acked)),
        ("delivered/s", RGBColor(0, 140, 0), pick(|b| b.delivered)),
    ]
}

fn chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    x_max: f64,
    series: Vec<Series>,
) -> Result<(), String> {
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    for (label, color, points) in series.into_iter().filter(|s| !s.2.is_empty()) {
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Writes the plot of `timeline` to `path` (SVG).
pub fn write_svg(path: &Path, title: &str, timeline: &[Bucket]) -> Result<(), String> {
    let x_max = (timeline.len() as f64).max(1.0);
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(350);
    chart(
        &top,
        &format!("{title}: latency from the scheduled send"),
        "ms",
        x_max,
        latency_series(timeline),
    )?;
    chart(
        &bottom,
        "throughput",
        "events/s",
        x_max,
        throughput_series(timeline),
    )?;
    root.present()
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Path as Route, Recorder};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn writes_an_svg_with_both_charts() {
        let t0 = tokio::time::Instant::now();
        let r = Recorder::new(t0);
        for i in 0..30u64 {
            let at = t0 + Duration::from_millis(100 * i);
            tokio::time::advance(Duration::from_millis(100)).await;
            r.sent("d", &i.to_string(), at, Route::EndsAtOffer);
            r.acked("d", &i.to_string(), at, Route::EndsAtOffer, false);
            r.offered("d", &i.to_string());
        }
        let m = r.finish();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plot.svg");
        write_svg(&p, "mixed over quic", &m.timeline).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg"));
        for needle in [
            "latency from the scheduled send",
            "throughput",
            "ack p99",
            "delivered/s",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
    }
}
