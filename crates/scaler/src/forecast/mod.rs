//! Predictive scaling: forecasts a load signal from its regularly spaced history and turns it into replicas.
//!
//! [`forecast`] fits a few candidate models (seasonal naive, non-seasonal AutoETS on a short and a long
//! window of recent points, MSTL with the detected seasonal periods and AutoETS on the trend), picks the
//! one with the lowest rolling-origin backtest MASE and returns its point forecast with a prediction
//! interval. The policy helpers ([`predictive_replicas`],
//! [`learn_capacity`], [`prediction_trustworthy`], [`combine_replicas`]) turn a forecast into a replica
//! count that can only add capacity ahead of the reactive engine: the final count is
//! `max(reactive, predictive)`, and prediction is switched off while it has been wrong recently.
//! [`Forecaster`] keeps one workload's selection between refits, so most refits fit a single model.

mod clean;
mod csv;
mod model;
mod policy;
mod refit;
mod season;

use serde::Serialize;

use crate::error::ScalerError;

pub use clean::{FilledHistory, fill_gaps};
pub use csv::{MAX_SERIES_POINTS, Series, format_rfc3339, parse_series_csv};
pub use policy::{
    Distrust, combine_replicas, learn_capacity, prediction_trustworthy, predictive_replicas,
    realized_mase,
};
pub use refit::{Forecaster, MAX_RESELECT_EVERY, Refit, RefitKind, RefitPolicy, SelectReason};
pub use season::detect_periods;

use model::{Candidate, EtsForm};

/// Longest history [`forecast`] accepts in `max_history`; beyond it fitting time, not accuracy, grows.
pub const MAX_HISTORY_LIMIT: usize = 100_000;
/// Longest forecast horizon, in steps.
pub const MAX_HORIZON: usize = 10_000;
/// Most backtest folds; each one refits every candidate, so more only costs time.
pub const MAX_BACKTEST_FOLDS: usize = 20;
/// Fewest points a candidate is fitted on in a backtest fold; below it ETS has more parameters than data.
pub const MIN_FIT_POINTS: usize = 24;

/// How [`forecast`] treats a history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastConfig {
    /// Steps ahead to forecast (and the length of each backtest fold).
    pub horizon: usize,
    /// Coverage of the prediction interval, strictly between 0 and 1 (0.9 gives the 5 % and 95 % quantiles).
    pub level: f64,
    /// Only the newest `max_history` points are used, which bounds fitting time.
    pub max_history: usize,
    /// Fewer points than this (after `max_history`) is an error rather than a poor forecast.
    pub min_history: usize,
    /// Rolling-origin folds used to choose the model, each `horizon` steps long.
    pub backtest_folds: usize,
}

impl Default for ForecastConfig {
    /// One hour ahead at 5-minute steps, from up to two weeks of history (two cycles of a weekly pattern
    /// are not enough to detect it, but 14 daily cycles are).
    fn default() -> Self {
        Self {
            horizon: 12,
            level: 0.9,
            max_history: 4032,
            min_history: 48,
            backtest_folds: 3,
        }
    }
}

impl ForecastConfig {
    fn validate(&self) -> Result<(), ScalerError> {
        let bad = |field: &str, problem: String| Err(ScalerError::spec(field, problem));
        if self.horizon == 0 || self.horizon > MAX_HORIZON {
            return bad(
                "forecast.horizon",
                format!("must be 1..={MAX_HORIZON} steps, got {}", self.horizon),
            );
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return bad(
                "forecast.level",
                format!(
                    "must be strictly between 0 and 1 (e.g. 0.9), got {}",
                    self.level
                ),
            );
        }
        if self.backtest_folds == 0 || self.backtest_folds > MAX_BACKTEST_FOLDS {
            return bad(
                "forecast.backtestFolds",
                format!(
                    "must be 1..={MAX_BACKTEST_FOLDS}, got {}",
                    self.backtest_folds
                ),
            );
        }
        if self.max_history > MAX_HISTORY_LIMIT || self.max_history < self.min_history {
            return bad(
                "forecast.maxHistory",
                format!(
                    "must be between minHistory ({}) and {MAX_HISTORY_LIMIT}, got {}",
                    self.min_history, self.max_history
                ),
            );
        }
        Ok(())
    }

    /// Points the history must hold: `min_history`, and enough for every backtest fold to train on
    /// [`MIN_FIT_POINTS`] and score `horizon` steps.
    pub fn required_history(&self) -> usize {
        self.min_history.max(
            self.backtest_folds
                .saturating_mul(self.horizon)
                .saturating_add(MIN_FIT_POINTS),
        )
    }
}

/// One forecast step: the point forecast and the prediction interval at the configured level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastPoint {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The chosen model's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Which candidate won, with its parameters, e.g. `mstl[288]+ets(AAdN)`.
    pub model: String,
    /// Its rolling-origin backtest MASE (mean absolute error over the one-step naive in-sample error);
    /// below 1 beats "tomorrow equals now", 0 for a constant history.
    pub mase: f64,
    /// `horizon` steps, the first one step after the last history point.
    pub points: Vec<ForecastPoint>,
}

/// Forecasts `config.horizon` steps after `history`, a regularly spaced load signal (NaN marks a missing
/// step; see [`fill_gaps`]).
///
/// Values are never negative, so forecasts and bounds are clamped at 0. A constant history gives a flat
/// forecast with a zero-width interval (model `constant`, MASE 0). Every call runs the full model
/// selection; [`Forecaster`] remembers it between refits of one workload.
pub fn forecast(history: &[f64], config: &ForecastConfig) -> Result<Forecast, ScalerError> {
    config.validate()?;
    match prepare(history, config)? {
        Prepared::Constant(f) => Ok(f),
        Prepared::Scaled { scaled, peak } => select(&scaled, peak, config).map(|(f, _)| f),
    }
}

/// A history ready for the models.
enum Prepared {
    /// The history is constant: its forecast needs no model.
    Constant(Forecast),
    /// Gaps filled and divided by `peak`, its maximum (positive): MSTL works in f32 and ETS optimises in
    /// absolute units, so a rate of 1e9 req/s or 1e-6 must look the same to them as one near 1.
    Scaled { scaled: Vec<f64>, peak: f64 },
}

/// Fills the gaps of the newest `max_history` points and checks there are enough of them.
fn prepare(history: &[f64], config: &ForecastConfig) -> Result<Prepared, ScalerError> {
    let recent = &history[history.len().saturating_sub(config.max_history)..];
    let filled = fill_gaps(recent)?;
    let y = filled.values;
    let need = config.required_history();
    if y.len() < need {
        return Err(ScalerError::observation(
            "history",
            format!(
                "{} points is too short: need at least {need} (minHistory {}, or backtestFolds {} \
                 x horizon {} + {MIN_FIT_POINTS}); collect more history or lower them",
                y.len(),
                config.min_history,
                config.backtest_folds,
                config.horizon
            ),
        ));
    }

    let (lo, hi) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if hi - lo <= 1e-12 * hi.abs().max(1.0) {
        let point = ForecastPoint {
            mean: hi,
            lower: hi,
            upper: hi,
        };
        return Ok(Prepared::Constant(Forecast {
            model: CONSTANT_MODEL.to_owned(),
            mase: 0.0,
            points: vec![point; config.horizon],
        }));
    }
    let scaled = y.iter().map(|v| v / hi).collect();
    Ok(Prepared::Scaled { scaled, peak: hi })
}

/// Model name of a constant history's forecast.
const CONSTANT_MODEL: &str = "constant";

/// What a full model selection chose: enough to refit the same model on newer data.
#[derive(Debug, Clone, PartialEq)]
struct Selection {
    candidate: Candidate,
    /// The ETS form the final fit chose, so a refit fits only that one.
    form: Option<EtsForm>,
    /// The candidate's backtest MASE.
    mase: f64,
    /// The mean absolute one-step change of the history it was selected on (scaled), which scales MASE.
    scale: f64,
}

/// Detects the seasons of `scaled`, backtests every candidate, and forecasts with the best one that fits.
fn select(
    scaled: &[f64],
    peak: f64,
    config: &ForecastConfig,
) -> Result<(Forecast, Selection), ScalerError> {
    let periods = detect_periods(scaled);
    let candidates = Candidate::all(&periods, scaled.len(), config.horizon);
    let scale = naive_scale(scaled);

    let mut scored: Vec<(f64, &Candidate)> = candidates
        .iter()
        .filter_map(|c| {
            backtest(c, scaled, config.horizon, config.backtest_folds, scale).map(|m| (m, c))
        })
        .collect();
    // Stable sort keeps the simpler candidate (listed first) on a tie.
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (mase, candidate) in scored {
        if let Some(fitted) = candidate.predict(scaled, config.horizon, Some(config.level), None) {
            let forecast = Forecast {
                model: candidate.name(),
                mase,
                points: fitted
                    .points
                    .into_iter()
                    .map(|p| rescale(p, peak))
                    .collect(),
            };
            let selection = Selection {
                candidate: candidate.clone(),
                form: fitted.form,
                mase,
                scale,
            };
            return Ok((forecast, selection));
        }
    }
    // Seasonal naive cannot fail on a finite series of this length; this keeps the promise of no panic.
    Err(ScalerError::observation(
        "history",
        "no candidate model could be fitted; check that the series is a load signal",
    ))
}

/// Mean absolute one-step change: the error of the naive forecast, which scales MASE.
pub(crate) fn naive_scale(y: &[f64]) -> f64 {
    if y.len() < 2 {
        return 0.0;
    }
    y.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (y.len() - 1) as f64
}

/// Rolling-origin MASE of one candidate: fold `k` trains on all but the last `k * horizon` points and
/// scores the next `horizon`. `None` when the candidate cannot be fitted at some origin.
fn backtest(
    candidate: &Candidate,
    y: &[f64],
    horizon: usize,
    folds: usize,
    scale: f64,
) -> Option<f64> {
    let mut abs_error = 0.0;
    let mut count = 0usize;
    for k in 1..=folds {
        let origin = y.len().checked_sub(k * horizon)?;
        let fitted = candidate.predict(&y[..origin], horizon, None, None)?;
        for (p, actual) in fitted.points.iter().zip(&y[origin..origin + horizon]) {
            abs_error += (p.mean - actual).abs();
            count += 1;
        }
    }
    if count == 0 || scale <= 0.0 {
        return None;
    }
    let mase = abs_error / count as f64 / scale;
    mase.is_finite().then_some(mase)
}

/// Back to the caller's units, clamped because a load signal is never negative.
fn rescale(p: ForecastPoint, factor: f64) -> ForecastPoint {
    let mean = (p.mean * factor).max(0.0);
    ForecastPoint {
        mean,
        lower: (p.lower * factor).clamp(0.0, mean),
        upper: (p.upper * factor).max(mean),
    }
}
