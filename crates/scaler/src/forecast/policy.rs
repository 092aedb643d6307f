//! Predictive policy: replicas from a forecast, per-pod capacity from history, and when to trust prediction.
//!
//! Combination rule: the replica count applied is `max(reactive, predictive)` ([`combine_replicas`]).
//! Prediction can therefore only add capacity ahead of a rise; scaling down stays the reactive engine's
//! job, with its stabilization window, so a wrong forecast costs some idle pods, never an outage.

use serde::Serialize;

use super::{Forecast, naive_scale};
use crate::error::ScalerError;
use crate::sizing::PodSizing;

/// Fewest usable samples [`learn_capacity`] estimates from; fewer would let one odd sample decide.
pub const MIN_CAPACITY_SAMPLES: usize = 12;
/// Samples whose utilization is below this are skipped: an idle pod says nothing about its capacity.
const MIN_UTILIZATION: f64 = 0.05;

/// Replicas needed to serve the highest upper-interval load over the next `lookahead_steps` (the pod
/// start-up time, in forecast steps), sized by `sizing` and clamped to `min..=max`.
///
/// Gives `min` (no opinion, since the result is combined with `max`) when the look-ahead is 0 or the
/// forecast holds no finite upper bound.
pub fn predictive_replicas(
    forecast: &Forecast,
    lookahead_steps: usize,
    sizing: &PodSizing,
    min: u32,
    max: u32,
) -> u32 {
    let peak = forecast
        .points
        .iter()
        .take(lookahead_steps)
        .map(|p| p.upper)
        .filter(|u| u.is_finite())
        .fold(None, |acc: Option<f64>, u| {
            Some(acc.map_or(u, |a| a.max(u)))
        });
    match peak {
        Some(peak) => sizing.pods(peak, min, max),
        None => min,
    }
}

/// The rule for using prediction: the larger of the two counts, so prediction only adds capacity early.
pub fn combine_replicas(reactive: u32, predictive: Option<u32>) -> u32 {
    predictive.map_or(reactive, |p| reactive.max(p))
}

/// Load one pod serves at `target_utilization`, estimated from aligned samples of total `load`, ready
/// `replicas` and mean pod `utilization` (a fraction, 0.6 for 60 %).
///
/// Each sample gives `load / (replicas * utilization)`, the load one pod would serve at 100 %; the
/// estimate is the median of those (robust to the odd sample taken mid-rollout), times the target.
/// Samples with non-finite values, no replicas or utilization under 5 % are skipped.
pub fn learn_capacity(
    load: &[f64],
    replicas: &[f64],
    utilization: &[f64],
    target_utilization: f64,
) -> Result<f64, ScalerError> {
    if load.len() != replicas.len() || load.len() != utilization.len() {
        return Err(ScalerError::observation(
            "capacity samples",
            format!(
                "load, replicas and utilization must be aligned, got {}, {} and {} samples",
                load.len(),
                replicas.len(),
                utilization.len()
            ),
        ));
    }
    if !(target_utilization.is_finite() && target_utilization > 0.0 && target_utilization <= 1.0) {
        return Err(ScalerError::observation(
            "targetUtilization",
            format!("must be a fraction in (0, 1], e.g. 0.7, got {target_utilization}"),
        ));
    }
    let mut per_pod: Vec<f64> = load
        .iter()
        .zip(replicas)
        .zip(utilization)
        .filter(|((l, r), u)| {
            l.is_finite() && **l >= 0.0 && r.is_finite() && **r >= 1.0 && u.is_finite()
        })
        .filter(|(_, u)| **u >= MIN_UTILIZATION)
        .map(|((l, r), u)| l / (r * u))
        .filter(|c| c.is_finite())
        .collect();
    if per_pod.len() < MIN_CAPACITY_SAMPLES {
        return Err(ScalerError::observation(
            "capacity samples",
            format!(
                "{} usable samples (replicas >= 1, utilization >= {MIN_UTILIZATION}); need at least \
                 {MIN_CAPACITY_SAMPLES}, so wait for more history or set the capacity by hand",
                per_pod.len()
            ),
        ));
    }
    per_pod.sort_by(f64::total_cmp);
    let mid = per_pod.len() / 2;
    let median = if per_pod.len().is_multiple_of(2) {
        (per_pod[mid - 1] + per_pod[mid]) / 2.0
    } else {
        per_pod[mid]
    };
    let capacity = median * target_utilization;
    if capacity > 0.0 && capacity.is_finite() {
        Ok(capacity)
    } else {
        Err(ScalerError::observation(
            "capacity samples",
            "the median sample served no load; capacity cannot be learned from an idle workload",
        ))
    }
}

/// MASE of a past forecast against what happened: mean absolute error of its means over `actual`
/// (as many steps as both have), over the naive one-step error of `history` (the series it was fitted on).
/// `None` when nothing overlaps or the history never changed.
pub fn realized_mase(forecast: &Forecast, actual: &[f64], history: &[f64]) -> Option<f64> {
    let scale = naive_scale(history);
    let errors: Vec<f64> = forecast
        .points
        .iter()
        .zip(actual)
        .map(|(p, a)| (p.mean - a).abs())
        .collect();
    if errors.is_empty() || !(scale > 0.0 && scale.is_finite()) {
        return None;
    }
    let mase = errors.iter().sum::<f64>() / errors.len() as f64 / scale;
    mase.is_finite().then_some(mase)
}

/// Why prediction is switched off for now.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Distrust {
    /// Too little history to fit or to judge a model.
    #[error("history holds {have} points; prediction needs {need}")]
    HistoryTooShort { have: usize, need: usize },
    /// Recent forecasts missed by more than the threshold.
    #[error("recent forecast error (MASE {mase:.2}) is above the threshold {threshold}")]
    ErrorTooHigh { mase: f64, threshold: f64 },
    /// A recent error could not be computed (NaN or infinite); judged as a miss rather than ignored.
    #[error("a recent forecast error is not finite")]
    ErrorUnknown,
}

/// Whether prediction may be used: enough history, and the mean of `recent_errors` (e.g. the
/// [`realized_mase`] of the last few forecasts) at most `threshold` (1.0 means "no worse than naive").
/// With no recent errors yet, only the history length is judged: the backtest stands in for a track record.
pub fn prediction_trustworthy(
    recent_errors: &[f64],
    history_len: usize,
    min_history: usize,
    threshold: f64,
) -> Result<(), Distrust> {
    if history_len < min_history {
        return Err(Distrust::HistoryTooShort {
            have: history_len,
            need: min_history,
        });
    }
    if recent_errors.iter().any(|e| !e.is_finite()) {
        return Err(Distrust::ErrorUnknown);
    }
    if recent_errors.is_empty() {
        return Ok(());
    }
    let mase = recent_errors.iter().sum::<f64>() / recent_errors.len() as f64;
    // A NaN threshold compares false, so it distrusts rather than trusts.
    if mase <= threshold {
        Ok(())
    } else {
        Err(Distrust::ErrorTooHigh { mase, threshold })
    }
}
