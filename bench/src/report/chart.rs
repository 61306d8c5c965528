//! The comparison chart: three panels of grouped bars (throughput, p99 latency, server CPU per
//! operation), etcd and TinyKV side by side for each row, written as SVG.
//!
//! plotters' SVG backend emits text as `<text>` elements, so no font files are needed.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::{Comparison, Figures};
use crate::errors::{Error, Result};

const ETCD: RGBColor = RGBColor(0x41, 0x9e, 0xda);
const TINYKV: RGBColor = RGBColor(0xe8, 0x6a, 0x3a);

struct Metric {
    title: &'static str,
    unit: &'static str,
    value: fn(&Figures) -> Option<f64>,
}

const METRICS: [Metric; 3] = [
    Metric {
        title: "Throughput (higher is better)",
        unit: "ops/s",
        value: |f| Some(f.ops_per_sec),
    },
    Metric {
        title: "p99 latency (lower is better)",
        unit: "ms",
        value: |f| Some(f.p99_ms),
    },
    Metric {
        title: "Server CPU per operation (lower is better)",
        unit: "µs/op",
        value: |f| f.cpu_us_per_op,
    },
];

/// Writes the chart of `cmp` to `path` (SVG).
pub fn write_svg(cmp: &Comparison, path: &Path) -> Result<()> {
    let chart_err = |e: &dyn std::fmt::Display| Error::Chart {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if cmp.rows.is_empty() {
        return Err(chart_err(&"no rows to plot"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let width = (240 + 150 * cmp.rows.len() as u32).max(800);
    let root = SVGBackend::new(path, (width, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(&e))?;
    let root = root
        .titled(
            "TinyKV vs etcd: 3 replicas on one machine, same workload generator",
            ("sans-serif", 22),
        )
        .map_err(|e| chart_err(&e))?;
    let figures: Vec<(Option<Figures>, Option<Figures>)> =
        cmp.rows.iter().map(|r| cmp.figures(r)).collect();
    let labels: Vec<String> = cmp.rows.iter().map(|r| r.short.clone()).collect();
    for (area, metric) in root.split_evenly((3, 1)).iter().zip(&METRICS) {
        draw_panel(area, metric, &figures, &labels).map_err(|e| chart_err(&e))?;
    }
    root.present().map_err(|e| chart_err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_panel(
    area: &Area<'_>,
    metric: &Metric,
    figures: &[(Option<Figures>, Option<Figures>)],
    labels: &[String],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let n = figures.len();
    let values: Vec<(Option<f64>, Option<f64>)> = figures
        .iter()
        .map(|(e, t)| {
            (
                e.as_ref().and_then(metric.value),
                t.as_ref().and_then(metric.value),
            )
        })
        .collect();
    let top = values
        .iter()
        .flat_map(|(e, t)| [*e, *t])
        .flatten()
        .fold(0.0f64, f64::max);
    // Headroom for the value labels and the legend box in the upper right corner.
    let top = if top > 0.0 { top * 1.35 } else { 1.0 };
    // One segment per row: etcd's bar fills its left half, TinyKV's its right half.
    let mut chart = ChartBuilder::on(area)
        .caption(metric.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        // A segmented range `0..k` has k + 1 segments (the last one for `k` itself).
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| short_number(*y))
        .y_desc(metric.unit)
        .draw()?;

    for (side, colour, label) in [(0usize, ETCD, "etcd"), (1, TINYKV, "TinyKV")] {
        let span = move |i: usize| {
            let i = i as i32;
            if side == 0 {
                (SegmentValue::Exact(i), SegmentValue::CenterOf(i))
            } else {
                (SegmentValue::CenterOf(i), SegmentValue::Exact(i + 1))
            }
        };
        let value = move |(e, t): &(Option<f64>, Option<f64>)| if side == 0 { *e } else { *t };
        let bars = values.iter().enumerate().filter_map(move |(i, v)| {
            let v = value(v)?;
            let (left, right) = span(i);
            let mut bar = Rectangle::new([(left, 0.0), (right, v)], colour.filled());
            // Pixels of space between a row's two bars and around the row.
            if side == 0 {
                bar.set_margin(0, 0, 10, 2);
            } else {
                bar.set_margin(0, 0, 2, 10);
            }
            Some(bar)
        });
        chart
            .draw_series(bars)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled()));
        let texts = values.iter().enumerate().filter_map(move |(i, v)| {
            let v = value(v)?;
            let (left, _) = span(i);
            Some(Text::new(
                short_number(v),
                (left, v + top * 0.02),
                ("sans-serif", 12),
            ))
        });
        chart.draw_series(texts)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// `12345.0` → `12.3k`, `2.61` → `2.61`, `0.0` → `0`.
fn short_number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1_000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util;
    use super::*;

    #[test]
    fn chart_has_a_bar_per_measured_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/compare.svg");
        let cmp = test_util::comparison();
        write_svg(&cmp, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        // Row labels, legend, and the bar values of the put row in each panel.
        for text in [
            "put/64", "sget/64", "etcd", "TinyKV", "17.6k", "5500", "33.00", "240",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Bars: 3 panels; throughput and p99 have 3 values (put: both, sget: etcd), CPU too.
        let etcd_fill = "fill=\"#419EDA\"";
        let tinykv_fill = "fill=\"#E86A3A\"";
        // One per bar plus one legend swatch per panel.
        assert_eq!(svg.matches(etcd_fill).count(), 3 * 2 + 3, "etcd bars");
        assert_eq!(svg.matches(tinykv_fill).count(), 3 + 3, "tinykv bars");
    }

    #[test]
    fn one_row_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.svg");
        let mut cmp = test_util::comparison();
        cmp.rows.truncate(1);
        write_svg(&cmp, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("put/64") && !svg.contains("sget/64"));
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(17_600.0), "17.6k");
        assert_eq!(short_number(252.4), "252");
        assert_eq!(short_number(5.126), "5.13");
    }

    #[test]
    fn empty_comparison_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmp = test_util::comparison();
        cmp.rows.clear();
        let err = write_svg(&cmp, &dir.path().join("x.svg")).unwrap_err();
        assert!(err.to_string().contains("no rows"), "{err}");
    }
}
