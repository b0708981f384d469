//! `--plot FILE.svg`: latency percentile curves, one panel per message size, each
//! measurement beside its baseline.

use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::units::fmt_size;
use plotters::prelude::*;
use std::path::Path;

/// Highest "nines" shown on the x axis (99.99 %).
const MAX_NINES: f64 = 4.0;

/// Percentile → "nines" (0 → 0, 90 → 1, 99 → 2, 99.9 → 3), so the tail gets room.
fn nines(percentile: f64) -> f64 {
    let rest = (100.0 - percentile) / 100.0;
    if rest <= 0.0 {
        MAX_NINES
    } else {
        (-rest.log10()).min(MAX_NINES)
    }
}

fn nines_label(x: &f64) -> String {
    let p = 100.0 - 100.0 * 10f64.powf(-x);
    if p < 1.0 {
        "0".into()
    } else {
        let s = format!("{p:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draw every latency measurement that has a percentile table (external tools' medians
/// appear as a single marker at p50). Nothing to draw is not an error: the file then
/// holds a note saying so.
pub fn write_svg(path: &Path, title: &str, all: &[Measurement]) -> Result<(), BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut sizes: Vec<u64> = all
        .iter()
        .filter(|m| m.kind == Kind::Latency && m.latency.is_some())
        .map(|m| m.size_bytes)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let panels = sizes.len().max(1);
    let root = SVGBackend::new(path, (900, 420 * panels as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    if sizes.is_empty() {
        root.draw(&Text::new(
            "no latency measurements",
            (20, 20),
            ("sans-serif", 16),
        ))
        .map_err(|e| err(&e))?;
        return root.present().map_err(|e| err(&e));
    }
    let areas = root.split_evenly((panels, 1));
    for (area, size) in areas.iter().zip(&sizes) {
        let group: Vec<&Measurement> = all
            .iter()
            .filter(|m| m.kind == Kind::Latency && m.size_bytes == *size)
            .filter(|m| m.latency.is_some())
            .collect();
        let values = group.iter().flat_map(|m| {
            let l = m.latency.as_ref().expect("filtered");
            l.percentiles.iter().map(|p| p.ns).chain([l.p50_ns])
        });
        let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let y_lo = (lo / 1e3 * 0.8).max(0.01);
        let y_hi = (hi / 1e3 * 1.25).max(y_lo * 10.0);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} round trip / I/O latency", fmt_size(*size)),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..MAX_NINES, (y_lo..y_hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .x_labels(5)
            .x_label_formatter(&nines_label)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, m) in group.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let l = m.latency.as_ref().expect("filtered");
            let label = format!("{} {}", m.subject, m.backend);
            if l.percentiles.is_empty() {
                chart
                    .draw_series([Circle::new(
                        (nines(50.0), l.p50_ns / 1e3),
                        5,
                        colour.filled(),
                    )])
                    .map_err(|e| err(&e))?
                    .label(format!("{label} (p50 only)"))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
            } else {
                let dashed = m.baseline.is_none();
                let pts: Vec<(f64, f64)> = l
                    .percentiles
                    .iter()
                    .map(|p| (nines(p.percentile), p.ns / 1e3))
                    .collect();
                let style = ShapeStyle::from(colour).stroke_width(if dashed { 1 } else { 2 });
                chart
                    .draw_series(LineSeries::new(pts, style))
                    .map_err(|e| err(&e))?
                    .label(if dashed {
                        format!("{label} (baseline)")
                    } else {
                        label
                    })
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Recorder;
    use std::time::Duration;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
        assert_eq!(nines_label(&2.0), "99");
        assert_eq!(nines_label(&3.0), "99.9");
        assert_eq!(nines_label(&0.0), "0");
    }

    #[test]
    fn svg_is_written_with_a_curve_per_measurement() {
        let mut r = Recorder::new().unwrap();
        for us in 1..100 {
            r.record(Duration::from_micros(us));
        }
        let mut base = Measurement::new("raw", "raw tcp", "loopback", Kind::Latency, 64);
        base.latency = r.summary();
        let mut rpc = Measurement::new("rpc", "basalt rpc", "tcp", Kind::Latency, 64);
        rpc.latency = r.summary();
        rpc.baseline = Some("raw".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        write_svg(&path, "test", &[base, rpc]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("basalt rpc tcp"));
        assert!(svg.contains("raw tcp loopback (baseline)"));
    }

    #[test]
    fn empty_plot_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        write_svg(&path, "test", &[]).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("no latency measurements"));
    }
}
