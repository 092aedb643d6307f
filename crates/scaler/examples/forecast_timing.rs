//! Holdout accuracy and fit time of `forecast` on one CSV series, printed as JSON for
//! `scripts/forecast-vs-statsmodels.py`.
//!
//! Usage: `forecast_timing <series.csv> [horizon] [origins]`. For each origin `o` in `1..=origins`
//! the model is fitted on every point before the last `o * horizon` and scored on the next `horizon`.
//! MASE is the mean absolute error over all scored points divided by the mean absolute one-step change
//! of the series before the earliest origin (gaps filled by interpolation); the script computes the
//! same for Holt-Winters.

use std::time::Instant;

use mcpulse_scaler::forecast::{
    ForecastConfig, detect_periods, fill_gaps, forecast, parse_series_csv,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: forecast_timing <series.csv> [horizon] [origins]")?;
    let horizon: usize = args.next().map_or(Ok(12), |s| s.parse())?;
    let origins: usize = args.next().map_or(Ok(5), |s| s.parse())?;

    let series = parse_series_csv(&std::fs::read_to_string(&path)?)?;
    let y = fill_gaps(&series.values)?.values;
    let config = ForecastConfig {
        horizon,
        ..ForecastConfig::default()
    };
    let earliest = y
        .len()
        .checked_sub(origins * horizon)
        .ok_or("series shorter than origins x horizon")?;
    let before = &y[..earliest];
    let scale = before.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>()
        / before.len().saturating_sub(1).max(1) as f64;

    let (mut abs_error, mut scored, mut fit_ms, mut model) = (0.0, 0usize, 0.0, String::new());
    for o in (1..=origins).rev() {
        let origin = y.len() - o * horizon;
        let started = Instant::now();
        let f = forecast(&y[..origin], &config)?;
        fit_ms += started.elapsed().as_secs_f64() * 1e3;
        for (p, actual) in f.points.iter().zip(&y[origin..origin + horizon]) {
            abs_error += (p.mean - actual).abs();
            scored += 1;
        }
        model = f.model;
    }
    let window = &y[earliest.saturating_sub(config.max_history)..earliest];
    let out = serde_json::json!({
        "series": path,
        "points": y.len(),
        "horizon": horizon,
        "origins": origins,
        "max_history": config.max_history,
        "periods": detect_periods(window),
        "model": model,
        "mase": abs_error / scored.max(1) as f64 / scale,
        "fit_ms": fit_ms / origins.max(1) as f64,
    });
    println!("{out}");
    Ok(())
}
