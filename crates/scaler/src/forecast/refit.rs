//! A per-workload forecaster that remembers its last model selection, so most refits fit one model.
//!
//! A full selection ([`super::forecast`]) detects the seasons and backtests every candidate: about
//! thirty-six ETS fits. Between two selections the winner rarely changes, so [`Forecaster`] refits only
//! the remembered candidate with its remembered ETS form (one ETS fit, plus the MSTL decomposition for MSTL),
//! and runs a full selection again every [`RefitPolicy::reselect_every`] forecasts, or sooner when the
//! forecasts it made since the last selection score clearly worse than that selection's backtest.

use std::collections::VecDeque;

use serde::Serialize;

use super::clean::check_value;
use super::{Forecast, ForecastConfig, Prepared, Selection, prepare, rescale, select};
use crate::error::ScalerError;

/// Largest [`RefitPolicy::reselect_every`]; past it a season change would go unnoticed for too long.
pub const MAX_RESELECT_EVERY: usize = 10_000;

/// When a [`Forecaster`] runs a full model selection instead of refitting the remembered model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefitPolicy {
    /// A full selection at least once every this many forecasts; 1 selects every time, like
    /// [`super::forecast`].
    pub reselect_every: usize,
    /// Select again early when the realised MASE of the forecasts made since the last selection exceeds
    /// that selection's backtest MASE times this (at least 1).
    pub degradation_factor: f64,
}

impl Default for RefitPolicy {
    /// Refitting every 5-minute step, a full selection every hour, or as soon as one horizon of forecasts
    /// has been twice as wrong as the backtest promised.
    fn default() -> Self {
        Self {
            reselect_every: 12,
            degradation_factor: 2.0,
        }
    }
}

impl RefitPolicy {
    fn validate(&self) -> Result<(), ScalerError> {
        if self.reselect_every == 0 || self.reselect_every > MAX_RESELECT_EVERY {
            return Err(ScalerError::spec(
                "forecast.reselectEvery",
                format!(
                    "must be 1..={MAX_RESELECT_EVERY} forecasts, got {}",
                    self.reselect_every
                ),
            ));
        }
        if !(self.degradation_factor.is_finite() && self.degradation_factor >= 1.0) {
            return Err(ScalerError::spec(
                "forecast.degradationFactor",
                format!(
                    "must be a finite number of at least 1 (e.g. 2), got {}",
                    self.degradation_factor
                ),
            ));
        }
        Ok(())
    }
}

/// Why a [`Forecaster`] ran a full model selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SelectReason {
    /// Nothing was remembered: the first forecast, or the first after a constant history.
    First,
    /// [`RefitPolicy::reselect_every`] forecasts since the last selection.
    Scheduled,
    /// The forecasts since the last selection were worse than its backtest by the degradation factor.
    Degraded,
    /// The remembered model could not be fitted to the new history.
    RememberedFailed,
}

/// How a [`Forecaster`] produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RefitKind {
    /// The history is constant; no model was fitted.
    Constant,
    /// Only the model of the last selection was refitted.
    Remembered,
    /// A full model selection ran.
    Selected(SelectReason),
}

/// A [`Forecaster`]'s forecast and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refit {
    /// Its `mase` is the backtest MASE of the selection the model comes from.
    pub forecast: Forecast,
    pub kind: RefitKind,
}

/// The last full selection and what has happened since.
#[derive(Debug, Clone, PartialEq)]
struct Memory {
    selection: Selection,
    /// Mean absolute one-step change of the history it was selected on, in the caller's units.
    scale: f64,
    /// Forecasts made since the selection, counting the selection itself.
    forecasts: usize,
    /// Points observed before the selection.
    selected_at: u64,
}

/// A forecast still waiting for some of the points it predicted.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    /// Absolute index of the point its first step predicts.
    start: u64,
    means: Vec<f64>,
}

/// Forecasts one workload's load from the points it is fed, refitting the remembered model between full
/// selections (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Forecaster {
    config: ForecastConfig,
    policy: RefitPolicy,
    stagger: usize,
    /// The newest points, at least the newest `config.max_history`; trimmed in batches.
    window: Vec<f64>,
    /// Points observed so far, including NaN.
    seen: u64,
    memory: Option<Memory>,
    pending: VecDeque<Pending>,
    /// Absolute error and count of the predicted points realised since the last selection.
    realised: (f64, usize),
}

impl Forecaster {
    /// A forecaster with no history yet.
    pub fn new(config: ForecastConfig, policy: RefitPolicy) -> Result<Self, ScalerError> {
        config.validate()?;
        policy.validate()?;
        Ok(Self {
            config,
            policy,
            stagger: 0,
            window: Vec::new(),
            seen: 0,
            memory: None,
            pending: VecDeque::new(),
            realised: (0.0, 0),
        })
    }

    /// Spreads a fleet's scheduled selections over `reselect_every` forecasts: workload `index` runs its
    /// second full selection `index % reselect_every` forecasts early, and keeps that phase. Without it, a
    /// fleet started together would run every full selection in the same decision cycle.
    pub fn with_stagger(mut self, index: usize) -> Self {
        self.stagger = index % self.policy.reselect_every;
        self
    }

    /// Appends new points, oldest first (NaN marks a missing step). Infinite or negative values reject the
    /// whole batch, so one bad scrape cannot poison the window.
    pub fn observe(&mut self, points: &[f64]) -> Result<(), ScalerError> {
        for (i, v) in points.iter().enumerate() {
            check_value("points", i, *v)?;
        }
        self.score(points);
        self.window.extend_from_slice(points);
        self.seen += points.len() as u64;
        // Trimming only once the window holds twice what is used keeps appending amortised O(1).
        let keep = self.config.max_history;
        if self.window.len() >= 2 * keep.max(1) {
            self.window.drain(..self.window.len() - keep);
        }
        Ok(())
    }

    /// The newest `max_history` points observed, the history [`Self::forecast`] fits.
    pub fn history(&self) -> &[f64] {
        &self.window[self.window.len().saturating_sub(self.config.max_history)..]
    }

    /// Realised MASE of the forecasts made since the last selection, once any of their points arrived.
    pub fn realised_mase(&self) -> Option<f64> {
        let memory = self.memory.as_ref()?;
        let (abs_error, count) = self.realised;
        (count > 0 && memory.scale > 0.0).then(|| abs_error / count as f64 / memory.scale)
    }

    /// Forecasts `config.horizon` steps after the points observed. Errors as [`super::forecast`] does on
    /// the same history (too short, mostly missing).
    pub fn forecast(&mut self) -> Result<Refit, ScalerError> {
        let (scaled, peak) = match prepare(self.history(), &self.config)? {
            Prepared::Constant(forecast) => {
                // A constant history says nothing about which model fits; start afresh when it varies.
                self.forget();
                return Ok(Refit {
                    forecast,
                    kind: RefitKind::Constant,
                });
            }
            Prepared::Scaled { scaled, peak } => (scaled, peak),
        };

        let remembered = match self.select_reason() {
            Some(reason) => Err(reason),
            None => self
                .refit_remembered(&scaled, peak)
                .ok_or(SelectReason::RememberedFailed),
        };
        let refit = match remembered {
            Ok(refit) => refit,
            Err(reason) => {
                let (forecast, selection) = select(&scaled, peak, &self.config)?;
                // The first selection takes the stagger, so later ones keep the workload's phase.
                let forecasts = match reason {
                    SelectReason::First => 1 + self.stagger,
                    _ => 1,
                };
                self.forget();
                self.memory = Some(Memory {
                    scale: selection.scale * peak,
                    selection,
                    forecasts,
                    selected_at: self.seen,
                });
                Refit {
                    forecast,
                    kind: RefitKind::Selected(reason),
                }
            }
        };
        self.remember_pending(&refit.forecast);
        Ok(refit)
    }

    /// Fits the remembered candidate, with its remembered ETS form, to `scaled`.
    fn refit_remembered(&mut self, scaled: &[f64], peak: f64) -> Option<Refit> {
        let memory = self.memory.as_mut()?;
        let chosen = &memory.selection;
        let level = Some(self.config.level);
        let fitted = chosen
            .candidate
            .predict(scaled, self.config.horizon, level, chosen.form)?;
        memory.forecasts += 1;
        Some(Refit {
            forecast: Forecast {
                model: chosen.candidate.name(),
                mase: chosen.mase,
                points: fitted
                    .points
                    .into_iter()
                    .map(|p| rescale(p, peak))
                    .collect(),
            },
            kind: RefitKind::Remembered,
        })
    }

    /// Why the next forecast needs a full selection, `None` when the remembered model may be refitted.
    fn select_reason(&self) -> Option<SelectReason> {
        let Some(memory) = &self.memory else {
            return Some(SelectReason::First);
        };
        if memory.forecasts >= self.policy.reselect_every {
            return Some(SelectReason::Scheduled);
        }
        // One horizon of new points before judging, so a single surprising step cannot force a selection.
        let judged = self.seen >= memory.selected_at + self.config.horizon as u64;
        let degraded = self.realised_mase().is_some_and(|realised| {
            realised > self.policy.degradation_factor * memory.selection.mase
        });
        (judged && degraded).then_some(SelectReason::Degraded)
    }

    fn forget(&mut self) {
        self.memory = None;
        self.pending.clear();
        self.realised = (0.0, 0);
    }

    /// Keeps `forecast` to score against the points it predicts; a second forecast before any new point
    /// replaces the first.
    fn remember_pending(&mut self, forecast: &Forecast) {
        if self.pending.back().is_some_and(|p| p.start == self.seen) {
            self.pending.pop_back();
        }
        self.pending.push_back(Pending {
            start: self.seen,
            means: forecast.points.iter().map(|p| p.mean).collect(),
        });
    }

    /// Adds the errors of pending forecasts on the `points` about to be appended, and drops the forecasts
    /// that have no point left to predict.
    fn score(&mut self, points: &[f64]) {
        let first = self.seen;
        let end = first + points.len() as u64;
        for pending in &self.pending {
            let from = pending.start.max(first);
            let to = (pending.start + pending.means.len() as u64).min(end);
            for t in from..to {
                let predicted = usize::try_from(t - pending.start)
                    .ok()
                    .and_then(|ahead| pending.means.get(ahead));
                let actual = usize::try_from(t - first)
                    .ok()
                    .and_then(|at| points.get(at));
                let (Some(predicted), Some(&actual)) = (predicted, actual) else {
                    continue;
                };
                // A missing point scores nothing rather than a guess.
                if !actual.is_nan() {
                    self.realised.0 += (predicted - actual).abs();
                    self.realised.1 += 1;
                }
            }
        }
        self.pending
            .retain(|p| p.start + p.means.len() as u64 > end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::forecast;

    const NEVER: f64 = 1e9;

    /// Deterministic noise in [-0.5, 0.5).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    /// A daily-like pattern (period 48) on a slow rise.
    fn seasonal(n: usize) -> Vec<f64> {
        noise(n, 42)
            .into_iter()
            .enumerate()
            .map(|(t, e)| {
                let phase = std::f64::consts::TAU * t as f64 / 48.0;
                100.0 + 0.05 * t as f64 + 40.0 * phase.sin() + 4.0 * e
            })
            .collect()
    }

    /// A trending random walk without a season.
    fn trending(n: usize) -> Vec<f64> {
        let mut level = 200.0;
        noise(n, 7)
            .into_iter()
            .enumerate()
            .map(|(t, e)| {
                level += 0.5 + 3.0 * e;
                level + 0.02 * t as f64
            })
            .collect()
    }

    fn config() -> ForecastConfig {
        ForecastConfig {
            max_history: 1000,
            ..ForecastConfig::default()
        }
    }

    fn forecaster(reselect_every: usize, degradation_factor: f64) -> Forecaster {
        let policy = RefitPolicy {
            reselect_every,
            degradation_factor,
        };
        Forecaster::new(config(), policy).unwrap()
    }

    #[test]
    fn an_unchanged_history_refits_to_the_full_selections_forecast() {
        for (y, model, why) in [
            (
                seasonal(600),
                "mstl[48]",
                "MSTL with its remembered ETS form",
            ),
            (
                trending(400),
                "autoets",
                "ETS alone with its remembered form",
            ),
        ] {
            let mut f = forecaster(12, 2.0);
            f.observe(&y).unwrap();
            let first = f.forecast().unwrap();
            assert_eq!(
                first.kind,
                RefitKind::Selected(SelectReason::First),
                "{why}"
            );
            assert_eq!(first.forecast, forecast(&y, &config()).unwrap(), "{why}");
            assert!(
                first.forecast.model.starts_with(model),
                "{why}: {}",
                first.forecast.model
            );
            let again = f.forecast().unwrap();
            assert_eq!(again.kind, RefitKind::Remembered, "{why}");
            assert_eq!(again.forecast, first.forecast, "{why}");
        }
    }

    #[test]
    fn new_points_refit_the_remembered_model() {
        let y = seasonal(700);
        let mut f = forecaster(12, NEVER);
        f.observe(&y[..600]).unwrap();
        let first = f.forecast().unwrap();
        f.observe(&y[600..]).unwrap();
        let later = f.forecast().unwrap();
        assert_eq!(later.kind, RefitKind::Remembered);
        assert_eq!(later.forecast.model, first.forecast.model);
        assert_ne!(
            later.forecast.points, first.forecast.points,
            "refitted on new data"
        );
        assert_eq!(f.history(), &y[..], "shorter than max_history: all of it");
    }

    #[test]
    fn history_keeps_the_newest_max_history_points_in_bounded_memory() {
        let y = seasonal(2500);
        let mut f = forecaster(12, 2.0);
        for batch in y.chunks(100) {
            f.observe(batch).unwrap();
            assert!(
                f.window.len() < 2 * config().max_history,
                "trimmed in batches"
            );
        }
        assert_eq!(f.history(), &y[1500..]);
    }

    #[test]
    fn reselects_on_schedule_and_keeps_its_stagger() {
        use RefitKind::{Remembered as R, Selected};
        let (first, scheduled) = (
            Selected(SelectReason::First),
            Selected(SelectReason::Scheduled),
        );
        for (stagger, expected, why) in [
            (
                0,
                [first, R, R, scheduled, R, R, scheduled],
                "every third forecast",
            ),
            (
                1,
                [first, R, scheduled, R, R, scheduled, R],
                "one forecast early, then every third",
            ),
            (
                4,
                [first, R, scheduled, R, R, scheduled, R],
                "stagger is taken modulo the period",
            ),
        ] {
            let y = seasonal(600 + expected.len());
            let mut f = forecaster(3, NEVER).with_stagger(stagger);
            f.observe(&y[..600]).unwrap();
            let kinds: Vec<RefitKind> = (600..y.len())
                .map(|t| {
                    let kind = f.forecast().unwrap().kind;
                    f.observe(&y[t..=t]).unwrap();
                    kind
                })
                .collect();
            assert_eq!(kinds, expected, "{why}");
        }
    }

    #[test]
    fn reselects_when_forecasts_go_wrong_but_not_while_they_hold() {
        let y = seasonal(700);
        // The same pattern half a period out of phase and three times as high from step 600 on.
        let broken: Vec<f64> = (600..700).map(|t| 3.0 * y[t - 24]).collect();
        for (tail, degrades, why) in [
            (&y[600..700], false, "the pattern continues"),
            (&broken[..], true, "the pattern breaks"),
        ] {
            let mut f = forecaster(MAX_RESELECT_EVERY, 2.0);
            f.observe(&y[..600]).unwrap();
            f.forecast().unwrap();
            let mut kinds = Vec::new();
            for v in &tail[..36] {
                f.observe(&[*v]).unwrap();
                kinds.push(f.forecast().unwrap().kind);
            }
            let degraded = kinds
                .iter()
                .position(|k| *k == RefitKind::Selected(SelectReason::Degraded));
            assert_eq!(degraded.is_some(), degrades, "{why}: {kinds:?}");
            if let Some(at) = degraded {
                assert!(
                    at + 1 >= config().horizon,
                    "{why}: judged after one horizon, at {at}"
                );
            }
        }
    }

    #[test]
    fn realised_mase_scores_forecasts_against_the_points_that_arrive() {
        let mut f = forecaster(12, NEVER);
        f.observe(&seasonal(600)).unwrap();
        assert_eq!(f.realised_mase(), None, "nothing predicted yet");
        let means: Vec<f64> = f
            .forecast()
            .unwrap()
            .forecast
            .points
            .iter()
            .map(|p| p.mean)
            .collect();
        f.observe(&means[..3]).unwrap();
        assert_eq!(f.realised_mase(), Some(0.0), "exactly as predicted");
        f.observe(&[means[3] + 50.0, f64::NAN]).unwrap();
        assert!(
            f.realised_mase().is_some_and(|m| m > 0.0),
            "one miss counts"
        );
    }

    #[test]
    fn bad_points_are_rejected_whole_and_gaps_handled_as_forecast_does() {
        let mut f = forecaster(12, 2.0);
        f.observe(&seasonal(300)).unwrap();
        for (points, field, why) in [
            (vec![1.0, f64::INFINITY], "points[1]", "infinite value"),
            (vec![-0.5], "points[0]", "negative load"),
        ] {
            let err = f.observe(&points).expect_err(why).to_string();
            assert!(err.contains(field), "{why}: {err}");
            assert_eq!(f.history().len(), 300, "{why}: nothing of the batch kept");
        }

        let mut gappy = seasonal(300);
        for i in (10..290).step_by(7) {
            gappy[i] = f64::NAN;
        }
        let mut f = forecaster(12, 2.0);
        f.observe(&gappy).unwrap();
        assert_eq!(
            f.forecast().unwrap().forecast,
            forecast(&gappy, &config()).unwrap()
        );

        for (history, why) in [
            (vec![f64::NAN; 200], "nothing known"),
            (seasonal(20), "too short"),
        ] {
            let mut f = forecaster(12, 2.0);
            f.observe(&history).unwrap();
            assert_eq!(
                f.forecast().expect_err(why),
                forecast(&history, &config()).expect_err(why),
                "{why}"
            );
        }
    }

    #[test]
    fn a_constant_history_forgets_the_selection() {
        let mut f = forecaster(12, 2.0);
        f.observe(&[5.0; 100]).unwrap();
        assert_eq!(f.forecast().unwrap().kind, RefitKind::Constant);
        f.observe(&seasonal(200)).unwrap();
        let kind = f.forecast().unwrap().kind;
        assert_eq!(kind, RefitKind::Selected(SelectReason::First));
    }

    #[test]
    fn rejects_policies_that_cannot_work() {
        for (reselect_every, degradation_factor, field, why) in [
            (0, 2.0, "reselectEvery", "never reselects"),
            (
                MAX_RESELECT_EVERY + 1,
                2.0,
                "reselectEvery",
                "past the bound",
            ),
            (
                12,
                0.5,
                "degradationFactor",
                "below 1 degrades on any error",
            ),
            (12, f64::NAN, "degradationFactor", "not a number"),
            (
                12,
                f64::INFINITY,
                "degradationFactor",
                "never degrades but not finite",
            ),
        ] {
            let policy = RefitPolicy {
                reselect_every,
                degradation_factor,
            };
            let err = Forecaster::new(config(), policy)
                .expect_err(why)
                .to_string();
            assert!(err.contains(field), "{why}: {err}");
        }
    }
}
