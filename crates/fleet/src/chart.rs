//! Small SVG line charts for the console, drawn with plotters like the simulator's plots (no fonts needed: the
//! SVG names font families only).

use plotters::prelude::*;

const WIDTH: u32 = 560;
const HEIGHT: u32 = 260;
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// One named line of (seconds, value) points.
pub struct Line<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line chart over the last minutes; an optional band (t, low, high) is shaded behind the lines.
pub fn line_chart(
    title: &str,
    y_label: &str,
    lines: &[Line<'_>],
    band: &[(f64, f64, f64)],
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let all_t = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(band.iter().map(|b| b.0));
        let (t0, t1) = all_t.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
            (lo.min(t), hi.max(t))
        });
        let (t0, t1) = if t0.is_finite() && t1 > t0 {
            (t0, t1)
        } else {
            (0.0, 60.0)
        };
        let peak = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(band.iter().map(|b| b.2))
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max);
        let top = if peak > 0.0 { peak * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(t0..t1, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        if !band.is_empty() {
            let upper = band.iter().map(|b| (b.0, b.2));
            let lower = band.iter().rev().map(|b| (b.0, b.1));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    RGBColor(31, 119, 180).mix(0.15).filled(),
                )))
                .map_err(|e| e.to_string())?
                .label("forecast band")
                .legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 4), (x + 12, y + 4)],
                        RGBColor(31, 119, 180).mix(0.15).filled(),
                    )
                });
        }
        for (n, line) in lines.iter().enumerate() {
            let colour = COLOURS[n % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(line.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_line_with_its_legend() {
        let lines = [
            Line {
                name: "desired",
                points: vec![(0.0, 1.0), (10.0, 3.0)],
            },
            Line {
                name: "current",
                points: vec![(0.0, 1.0), (10.0, 2.0)],
            },
        ];
        let svg = line_chart(
            "replicas",
            "agents",
            &lines,
            &[(0.0, 0.5, 1.5), (10.0, 2.0, 4.0)],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        for text in ["desired", "current", "forecast band", "replicas"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(
            svg.matches("<polyline").count() >= 2,
            "one polyline per series"
        );
    }

    #[test]
    fn an_empty_chart_still_renders() {
        assert!(
            line_chart("nothing yet", "req/s", &[], &[])
                .unwrap()
                .contains("nothing yet")
        );
    }
}
