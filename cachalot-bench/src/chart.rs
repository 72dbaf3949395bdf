//! `benchmarks.svg`: the four panels of the report, drawn with plotters.
//!
//! Left: the 12 queries on PostgreSQL (direct, cold, hot), log scale. Right, top to bottom: the
//! distribution of hit latencies, invalidation latency against cache size, and the mixed
//! workload's speedup against the write ratio.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Result;
use crate::dataset::QUERIES;
use crate::report::Report;

const WIDTH: u32 = 1500;
const HEIGHT: u32 = 1050;
const FONT: &str = "sans-serif";

const GREY: RGBColor = RGBColor(120, 120, 120);
const ORANGE: RGBColor = RGBColor(230, 140, 40);
const BLUE: RGBColor = RGBColor(40, 110, 200);
const RED: RGBColor = RGBColor(200, 50, 50);
const GREEN: RGBColor = RGBColor(40, 150, 80);
const PURPLE: RGBColor = RGBColor(130, 70, 170);

/// The colour of a backend's hits.
fn backend_color(backend: &str) -> RGBColor {
    if backend == "redis" { RED } else { BLUE }
}

/// The colour of a database.
fn database_color(database: &str) -> RGBColor {
    match database {
        "PostgreSQL" => BLUE,
        "MariaDB" => ORANGE,
        _ => GREEN,
    }
}

/// `color` halfway to white.
fn lighter(RGBColor(r, g, b): RGBColor) -> RGBColor {
    let half = |c: u8| ((u16::from(c) + 255) / 2) as u8;
    RGBColor(half(r), half(g), half(b))
}

/// Powers of ten around `[min, max]`, for log axes.
fn decades(min: f64, max: f64) -> (f64, f64) {
    let min = if min > 0.0 { min } else { 0.1 };
    let max = max.max(min * 10.0);
    (
        10f64.powf(min.log10().floor()),
        10f64.powf(max.log10().ceil()),
    )
}

/// `1`, `10`, `0.1`, `1k`, `1M`: labels of log axes.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The SVG of the report's chart.
pub fn draw(report: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(780);
        let panels = right.split_evenly((3, 1));
        queries(report, &left)?;
        hits(report, &panels[0])?;
        invalidation(report, &panels[1])?;
        throughput(report, &panels[2])?;
        root.present()?;
    }
    Ok(svg)
}

/// Nothing measured: a caption says so.
fn empty(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str) -> Result<()> {
    area.titled(title, (FONT, 18))?;
    Ok(())
}

/// Median latency of each query: direct, then cold and hot per backend.
fn queries(report: &Report, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<()> {
    let Some(latency) = report
        .latency
        .iter()
        .find(|l| l.database == "PostgreSQL")
        .or(report.latency.first())
    else {
        return empty(area, "The 12 queries: not measured");
    };
    // (label, colour, median per query)
    let mut series: Vec<(String, RGBColor, Vec<f64>)> = vec![(
        "direct".into(),
        GREY,
        latency.queries.iter().map(|q| q.direct.median_us).collect(),
    )];
    let backends: Vec<&str> = latency
        .queries
        .first()
        .map(|q| q.backends.iter().map(|b| b.backend).collect())
        .unwrap_or_default();
    for (b, name) in backends.iter().enumerate() {
        let cold = latency
            .queries
            .iter()
            .map(|q| q.backends[b].cold.median_us)
            .collect();
        let hot = latency
            .queries
            .iter()
            .map(|q| q.backends[b].hot.median_us)
            .collect();
        let cold_color = if *name == "redis" { PURPLE } else { ORANGE };
        series.push((format!("{name} cold (miss)"), cold_color, cold));
        series.push((format!("{name} hot (hit)"), backend_color(name), hot));
    }
    let all = series.iter().flat_map(|s| s.2.iter().copied());
    let (lo, hi) = decades(
        all.clone().fold(f64::INFINITY, f64::min),
        all.fold(0.0, f64::max),
    );
    let n = QUERIES.len();
    // Below the last query, room for the legend.
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: median latency per query (µs, log scale)",
                latency.database
            ),
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d((lo..hi).log_scale(), -2.2f64..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .y_labels(n + 3)
        .y_label_formatter(&|y| {
            let i = n as f64 - 1.0 - y.round();
            QUERIES
                .get(i as usize)
                .filter(|_| (y - y.round()).abs() < 1e-6 && i >= 0.0)
                .map_or_else(String::new, |q| q.django.to_owned())
        })
        .x_label_formatter(&|v| short(*v))
        .disable_y_mesh()
        .label_style((FONT, 13))
        .draw()?;
    let height = 0.8 / series.len() as f64;
    for (k, (label, color, values)) in series.iter().enumerate() {
        let color = *color;
        chart
            .draw_series(values.iter().enumerate().map(|(q, &v)| {
                let center = n as f64 - 1.0 - q as f64;
                let top = center + 0.4 - k as f64 * height;
                Rectangle::new([(lo, top - height * 0.9), (v.max(lo), top)], color.filled())
            }))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

/// The distribution of hit latencies, every database together, per backend.
fn hits(report: &Report, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<()> {
    let histograms = &report.hit_histograms;
    if histograms.iter().all(|h| h.hits == 0) {
        return empty(area, "Hit latency: not measured");
    }
    let buckets = histograms.iter().flat_map(|h| h.buckets.iter());
    let (lo, hi) = decades(
        buckets
            .clone()
            .map(|b| b.from_us)
            .fold(f64::INFINITY, f64::min),
        buckets.map(|b| b.to_us).fold(0.0, f64::max),
    );
    let top = histograms
        .iter()
        .flat_map(|h| {
            h.buckets
                .iter()
                .map(move |b| b.count as f64 * 100.0 / h.hits as f64)
        })
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("Hit latency distribution (µs, log scale)", (FONT, 18))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..(top * 1.15).max(1.0))?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| format!("{v:.0}%"))
        .y_desc("share of hits")
        .label_style((FONT, 12))
        .draw()?;
    for h in histograms {
        let color = backend_color(h.backend);
        let total = h.hits as f64;
        chart
            .draw_series(h.buckets.iter().map(|b| {
                Rectangle::new(
                    [(b.from_us, 0.0), (b.to_us, b.count as f64 * 100.0 / total)],
                    color.mix(0.6).filled(),
                )
            }))?
            .label(format!("{} ({total} hits)", h.backend))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// Invalidation latency against the number of entries cached.
fn invalidation(report: &Report, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<()> {
    let curves = &report.invalidation;
    let points = curves.iter().flat_map(|c| c.points.iter());
    if points.clone().next().is_none() {
        return empty(area, "Invalidation: not measured");
    }
    let (x_lo, x_hi) = decades(
        points
            .clone()
            .map(|p| p.entries as f64)
            .fold(f64::INFINITY, f64::min),
        points.clone().map(|p| p.entries as f64).fold(0.0, f64::max),
    );
    let (y_lo, y_hi) = decades(
        points
            .clone()
            .map(|p| p.latency.median_us)
            .fold(f64::INFINITY, f64::min),
        points.map(|p| p.latency.p99_us).fold(0.0, f64::max),
    );
    let mut chart = ChartBuilder::on(area)
        .caption("Invalidation latency vs entries cached (µs)", (FONT, 18))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .x_desc("entries")
        .label_style((FONT, 12))
        .draw()?;
    for c in curves {
        let color = backend_color(c.backend);
        let median: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (p.entries as f64, p.latency.median_us))
            .collect();
        let p99: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (p.entries as f64, p.latency.p99_us))
            .collect();
        chart
            .draw_series(LineSeries::new(median.clone(), color.stroke_width(2)))?
            .label(format!("{} median", c.backend))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
        chart.draw_series(median.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        chart
            .draw_series(LineSeries::new(p99, color.mix(0.4).stroke_width(1)))?
            .label(format!("{} p99", c.backend))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.mix(0.4)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// The mixed workload's speedup over direct against the write ratio.
fn throughput(report: &Report, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<()> {
    let results = &report.throughput;
    if results.is_empty() {
        return empty(area, "Mixed workload: not measured");
    }
    let ratios = &report.settings.write_ratios;
    let speedups = results
        .iter()
        .flat_map(|t| t.backends.iter().map(|b| b.speedup));
    let (lo, hi) = decades(
        speedups.clone().fold(f64::INFINITY, f64::min).min(0.9),
        speedups.fold(0.0, f64::max),
    );
    let mut chart = ChartBuilder::on(area)
        .caption("Mixed workload: speedup over direct (8 tasks)", (FONT, 18))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.3f64..(ratios.len() as f64 - 0.7), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(ratios.len())
        .x_label_formatter(&|x| {
            ratios
                .get(x.round() as usize)
                .filter(|_| (x - x.round()).abs() < 1e-6)
                .map_or_else(String::new, |r| format!("{}% writes", r * 100.0))
        })
        .y_label_formatter(&|v| format!("{}×", short(*v)))
        .disable_x_mesh()
        .label_style((FONT, 12))
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(-0.3, 1.0), (ratios.len() as f64 - 0.7, 1.0)],
        BLACK.mix(0.5),
    ))?;
    /// One database and backend's speedups: label, colour, points.
    struct Line(String, RGBColor, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    for t in results {
        let x = ratios
            .iter()
            .position(|r| (r - t.write_ratio).abs() < 1e-9)
            .unwrap_or_default() as f64;
        for b in &t.backends {
            let label = format!("{} / {}", t.database, b.backend);
            match lines.iter_mut().find(|l| l.0 == label) {
                Some(line) => line.2.push((x, b.speedup)),
                None => {
                    let mut color = database_color(t.database);
                    if b.backend == "redis" {
                        color = lighter(color);
                    }
                    lines.push(Line(label, color, vec![(x, b.speedup)]));
                }
            }
        }
    }
    for Line(label, color, points) in lines {
        let width = if label.ends_with("redis") { 1 } else { 2 };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}
