//! Renders a run's timeline as an SVG string (load, forecast band, replicas per policy), for the CLI and web console.

use plotters::prelude::*;

use super::error::SimError;
use super::run::Timeline;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 720;
/// One colour per policy, in report order; more policies reuse them.
const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_error(e: impl std::fmt::Display) -> SimError {
    SimError::Plot(e.to_string())
}

/// Draws two stacked panels: requests/s with the forecast band on top, pods per policy below. The SVG
/// names fonts by family only, so no font files are needed to produce it.
pub fn render_svg(timeline: &Timeline, title: &str) -> Result<String, SimError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(HEIGHT / 2);
        let hours = |t: f64| t / 3600.0;
        let end = timeline.points.last().map_or(1.0, |p| hours(p.t)).max(1e-3);
        let peak_load = timeline
            .points
            .iter()
            .map(|p| p.forecast.map_or(p.load, |b| b.upper.max(p.load)))
            .fold(1.0, f64::max);
        let title: String = title.chars().take(120).collect();
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..peak_load * 1.05)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .y_desc("requests/s")
            .x_desc("hours")
            .draw()
            .map_err(plot_error)?;
        let band: Vec<(f64, f64, f64)> = timeline
            .points
            .iter()
            .filter_map(|p| p.forecast.map(|b| (hours(p.t), b.lower, b.upper)))
            .collect();
        if !band.is_empty() {
            let blue = RGBColor(31, 119, 180);
            chart
                .draw_series(LineSeries::new(
                    band.iter().map(|(t, _, u)| (*t, *u)),
                    blue.mix(0.35),
                ))
                .map_err(plot_error)?
                .label("forecast band")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.mix(0.35)));
            chart
                .draw_series(LineSeries::new(
                    band.iter().map(|(t, l, _)| (*t, *l)),
                    blue.mix(0.35),
                ))
                .map_err(plot_error)?;
        }
        chart
            .draw_series(LineSeries::new(
                timeline.points.iter().map(|p| (hours(p.t), p.load)),
                BLACK,
            ))
            .map_err(plot_error)?
            .label("load")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;

        let peak_pods = timeline
            .points
            .iter()
            .flat_map(|p| p.replicas.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut pods = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..f64::from(peak_pods) * 1.1)
            .map_err(plot_error)?;
        pods.configure_mesh()
            .y_desc("pods")
            .x_desc("hours")
            .draw()
            .map_err(plot_error)?;
        for (i, name) in timeline.policies.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            pods.draw_series(LineSeries::new(
                timeline
                    .points
                    .iter()
                    .filter_map(|p| p.replicas.get(i).map(|r| (hours(p.t), f64::from(*r)))),
                colour,
            ))
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        pods.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
