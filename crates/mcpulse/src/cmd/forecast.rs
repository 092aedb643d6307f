//! `mcpulse forecast`: forecasts a `timestamp,value` CSV series and prints it as a table or JSON.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use mcpulse_scaler::forecast::{
    ForecastConfig, MAX_HORIZON, forecast, format_rfc3339, parse_series_csv,
};
use serde::Serialize;

/// Largest CSV read; about 20 million rows of `timestamp,value`, far beyond any `--max-history`.
const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct ForecastArgs {
    /// CSV with a header and `timestamp,value` rows at a fixed step (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC,
    /// or unix seconds); missing steps are filled by interpolation
    #[arg(long, value_name = "CSV")]
    input: PathBuf,

    /// Steps to forecast after the last row, at the input's step
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_HORIZON as u64))]
    horizon: u64,

    /// Coverage of the prediction interval, between 0 and 1
    #[arg(long, value_name = "LEVEL", default_value_t = ForecastConfig::default().level)]
    level: f64,

    /// Only the newest N points are used for fitting
    #[arg(long, value_name = "N", default_value_t = ForecastConfig::default().max_history)]
    max_history: usize,

    /// Print `{"model", "mase", "forecast": [{"timestamp", "mean", "lower", "upper"}]}` instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    model: String,
    mase: f64,
    forecast: Vec<Step>,
}

#[derive(Serialize)]
struct Step {
    timestamp: String,
    mean: f64,
    lower: f64,
    upper: f64,
}

pub fn run(args: ForecastArgs) -> Result<i32> {
    let path = args.input.display();
    let file = File::open(&args.input).with_context(|| format!("opening --input {path}"))?;
    let mut text = String::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading --input {path} (it must be UTF-8 text)"))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        bail!(
            "--input {path} is larger than {MAX_INPUT_BYTES} bytes; pass only the recent history"
        );
    }
    let series = parse_series_csv(&text).with_context(|| format!("in --input {path}"))?;
    if series.missing > 0 {
        eprintln!(
            "note: {} of {} steps in {path} had no value; filled by linear interpolation",
            series.missing,
            series.values.len()
        );
    }

    let config = ForecastConfig {
        horizon: usize::try_from(args.horizon).context("--horizon does not fit this platform")?,
        level: args.level,
        max_history: args.max_history,
        ..ForecastConfig::default()
    };
    let result = forecast(&series.values, &config).with_context(|| {
        format!("forecasting {path} (try a shorter --horizon or a longer history)")
    })?;

    let first = series.values.len();
    let steps = result
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Step {
                timestamp: format_rfc3339(series.timestamp_at(first + i))?,
                mean: p.mean,
                lower: p.lower,
                upper: p.upper,
            })
        })
        .collect::<Result<Vec<_>, mcpulse_scaler::ScalerError>>()?;
    let output = Output {
        model: result.model,
        mase: result.mase,
        forecast: steps,
    };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!(
            "model {}  backtest MASE {:.3}  interval {:.0} %",
            output.model,
            output.mase,
            config.level * 100.0
        );
        println!(
            "{:<26} {:>14} {:>14} {:>14}",
            "timestamp", "mean", "lower", "upper"
        );
        for s in &output.forecast {
            println!(
                "{:<26} {:>14.3} {:>14.3} {:>14.3}",
                s.timestamp, s.mean, s.lower, s.upper
            );
        }
    }
    Ok(0)
}
