//! Holdout accuracy and fit time of `forecast` on one CSV series, printed as JSON for
//! `scripts/forecast-vs-statsmodels.py`.
//!
//! Usage: `forecast_timing <series.csv> [horizon] [origins]`. For each origin `o` in `1..=origins`
//! the model is fitted on every point before the last `o * horizon` and scored on the next `horizon`.
//! MASE is the mean absolute error over all scored points divided by the mean absolute one-step change
//! of the series before the earliest origin (gaps filled by interpolation); the script computes the
//! same for Holt-Winters.
//!
//! Two times are reported per origin, both averaged over the origins: `select_ms`, a full model selection
//! (what `forecast` does on every call and a [`Forecaster`] does on its first and scheduled forecasts), and
//! `refit_ms`, a [`Forecaster`] refitting the model it remembers from that selection on the same history
//! (what the controller does between selections: one fixed model structure, as Holt-Winters fits).

use std::time::Instant;

use mcpulse_scaler::forecast::{
    ForecastConfig, Forecaster, MAX_RESELECT_EVERY, RefitKind, RefitPolicy, detect_periods,
    fill_gaps, parse_series_csv,
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
    // Only the timed second forecast may refit: no scheduled or degradation-triggered selection.
    let policy = RefitPolicy {
        reselect_every: MAX_RESELECT_EVERY,
        degradation_factor: f64::MAX,
    };
    let earliest = y
        .len()
        .checked_sub(origins * horizon)
        .ok_or("series shorter than origins x horizon")?;
    let before = &y[..earliest];
    let scale = before.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>()
        / before.len().saturating_sub(1).max(1) as f64;

    let (mut abs_error, mut scored, mut model) = (0.0, 0usize, String::new());
    let (mut select_ms, mut refit_ms) = (0.0, 0.0);
    for o in (1..=origins).rev() {
        let origin = y.len() - o * horizon;
        let mut forecaster = Forecaster::new(config, policy)?;
        forecaster.observe(&y[..origin])?;

        let started = Instant::now();
        let selected = forecaster.forecast()?;
        select_ms += started.elapsed().as_secs_f64() * 1e3;

        let started = Instant::now();
        let refitted = forecaster.forecast()?;
        refit_ms += started.elapsed().as_secs_f64() * 1e3;
        if refitted.kind != RefitKind::Remembered || refitted.forecast != selected.forecast {
            return Err(format!(
                "origin {origin}: the refit was {:?} and gave another forecast than the selection; \
                 its time would not be the selected model's refit time",
                refitted.kind
            )
            .into());
        }

        for (p, actual) in selected
            .forecast
            .points
            .iter()
            .zip(&y[origin..origin + horizon])
        {
            abs_error += (p.mean - actual).abs();
            scored += 1;
        }
        model = selected.forecast.model;
    }
    let window = &y[earliest.saturating_sub(config.max_history)..earliest];
    let runs = origins.max(1) as f64;
    let out = serde_json::json!({
        "series": path,
        "points": y.len(),
        "horizon": horizon,
        "origins": origins,
        "max_history": config.max_history,
        "periods": detect_periods(window),
        "model": model,
        "mase": abs_error / scored.max(1) as f64 / scale,
        "select_ms": select_ms / runs,
        "refit_ms": refit_ms / runs,
    });
    println!("{out}");
    Ok(())
}
