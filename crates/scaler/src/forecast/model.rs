//! The candidate models: seasonal naive, non-seasonal AutoETS on a short and a long window, and MSTL
//! with AutoETS on the trend.

use std::borrow::Cow;
use std::cell::Cell;

use augurs_core::{Fit, Predict};
use augurs_ets::model::{
    ErrorComponent, Model, ModelType, SeasonalComponent, TrendComponent, Unfit,
};
use augurs_ets::{AutoETS, FittedAutoETS};
use augurs_mstl::{FittedTrendModel, MSTLModel, TrendModel};
use distrs::Normal;

use super::ForecastPoint;

/// ETS is fitted on at most this many of the newest points (12 hours at 5-minute steps): level and trend
/// for a short horizon depend on recent data, and the optimiser's cost grows faster than the series
/// (288 points cost 2.7 times as much as 144 for about 3 % worse MASE on the NAB traces).
const ETS_WINDOW: usize = 144;
/// The second non-seasonal ETS candidate sees this many points (a day at 5-minute steps). On a noisy or
/// intermittent series (bursty request counts) AICc on 144 points picks a trend or a fast-moving level
/// that chases bursts, while the same search on the longer window settles on a slowly moving level, as
/// Holt-Winters fitted on the whole history does; the backtest chooses between the two windows. Twice the
/// short window forecast as well as four times on the NAB and Azure traces, at half the cost.
const ETS_LONG_WINDOW: usize = 2 * ETS_WINDOW;
/// MSTL sees at most this many cycles of its longest period (a week of a daily pattern): the seasonal
/// shape is well estimated by then, and decomposition cost grows linearly with the series.
const MSTL_CYCLES: usize = 7;
/// Additive error, any trend, no season: the AutoETS search space. Multiplicative error is left out
/// because it doubles the search for no gain on the scaled series, and ETS here cannot be seasonal.
const ETS_SPEC: &str = "AZN";

/// One ETS model of the [`ETS_SPEC`] search space. Remembering which one AutoETS chose lets a refit fit
/// only that one instead of all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EtsForm {
    /// ANN: level only.
    Level,
    /// AAN: level and trend.
    Trend,
    /// AAdN: level and damped trend.
    DampedTrend,
}

impl EtsForm {
    /// The form of a fitted model, `None` for one outside the search space (never, with [`ETS_SPEC`]).
    fn of(model: &Model) -> Option<Self> {
        match (model.model_type().trend, model.damped()) {
            (TrendComponent::None, _) => Some(Self::Level),
            (TrendComponent::Additive, false) => Some(Self::Trend),
            (TrendComponent::Additive, true) => Some(Self::DampedTrend),
            (TrendComponent::Multiplicative, _) => None,
        }
    }
}

/// A candidate's forecast and, for the ETS-based ones, the ETS form it was fitted with.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fitted {
    pub(super) points: Vec<ForecastPoint>,
    pub(super) form: Option<EtsForm>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Candidate {
    /// `y[t+h] = y[t+h-period]`; with period 1 the plain naive forecast.
    SeasonalNaive { period: usize },
    /// AutoETS without seasonality, fitted on the newest `window` points.
    Ets { window: usize },
    /// MSTL decomposition with the detected periods, AutoETS on the deseasonalised series.
    Mstl { periods: Vec<usize> },
}

impl Candidate {
    /// Candidates worth trying for a series of `len` points with the detected `periods`, backtested at
    /// `horizon`, simplest first.
    pub(super) fn all(periods: &[usize], len: usize, horizon: usize) -> Vec<Self> {
        let mut all = vec![
            Self::SeasonalNaive {
                period: periods.first().copied().unwrap_or(1),
            },
            Self::Ets { window: ETS_WINDOW },
        ];
        // Unless the longest backtest fold trains on more points than the short window, both windows fit
        // the same points in every fold, score alike, and the tie goes to the short one: fitting the long
        // one would be wasted work.
        if len.saturating_sub(horizon) > ETS_WINDOW {
            all.push(Self::Ets {
                window: ETS_LONG_WINDOW,
            });
        }
        // MSTL needs two full cycles of every period.
        let mut usable: Vec<usize> = periods.iter().copied().filter(|p| 2 * p < len).collect();
        usable.sort_unstable();
        if !usable.is_empty() {
            all.push(Self::Mstl { periods: usable });
        }
        all
    }

    pub(super) fn name(&self) -> String {
        match self {
            Self::SeasonalNaive { period: 1 } => "naive".to_owned(),
            Self::SeasonalNaive { period } => format!("seasonal_naive[{period}]"),
            Self::Ets { window: ETS_WINDOW } => "autoets".to_owned(),
            Self::Ets { window } => format!("autoets_last{window}"),
            Self::Mstl { periods } => {
                let list: Vec<String> = periods.iter().map(ToString::to_string).collect();
                format!("mstl[{}]+autoets", list.join(","))
            }
        }
    }

    /// Forecasts `horizon` steps after `y`, with intervals at `level` when given. ETS (alone or on the
    /// MSTL trend) searches [`ETS_SPEC`], or fits only `form` when given. `None` when the model cannot be
    /// fitted or produces a non-finite value.
    pub(super) fn predict(
        &self,
        y: &[f64],
        horizon: usize,
        level: Option<f64>,
        form: Option<EtsForm>,
    ) -> Option<Fitted> {
        let (points, form) = match self {
            Self::SeasonalNaive { period } => (seasonal_naive(y, *period, horizon, level)?, None),
            Self::Ets { window } => {
                let recent = &y[y.len().saturating_sub(*window)..];
                let fitted = EtsFit::fit(form, recent).ok()?;
                let forecast = fitted.model().predict(horizon, level).ok()?;
                (to_points(forecast), fitted.form())
            }
            Self::Mstl { periods } => {
                if periods.iter().any(|p| 2 * p >= y.len()) {
                    return None;
                }
                let longest = periods.iter().copied().max().unwrap_or(1);
                let recent = &y[y.len().saturating_sub(MSTL_CYCLES * longest)..];
                let trend = WindowedEts {
                    form,
                    chosen: Cell::new(None),
                };
                let model = MSTLModel::new(periods.clone(), trend);
                let fitted = model.fit(recent).ok()?;
                let chosen = model.trend_model().chosen.get();
                (to_points(fitted.predict(horizon, level).ok()?), chosen)
            }
        };
        let finite = points
            .iter()
            .all(|p| p.mean.is_finite() && p.lower.is_finite() && p.upper.is_finite());
        (finite && points.len() == horizon).then_some(Fitted { points, form })
    }
}

/// A fitted ETS model: the AutoETS search's winner, or the one remembered form fitted alone.
#[derive(Debug)]
enum EtsFit {
    Searched(FittedAutoETS),
    Fixed(Model),
}

impl EtsFit {
    /// Searches [`ETS_SPEC`] when `form` is `None`. A remembered form is fitted directly rather than by an
    /// AutoETS restricted to it: with the same settings the fit is the one the search would have made, and
    /// AutoETS cannot be restricted to "no trend" (it then has no candidate at all).
    fn fit(form: Option<EtsForm>, y: &[f64]) -> Result<Self, augurs_ets::Error> {
        let (trend, damped) = match form {
            None => return AutoETS::new(1, ETS_SPEC)?.fit(y).map(Self::Searched),
            Some(EtsForm::Level) => (TrendComponent::None, false),
            Some(EtsForm::Trend) => (TrendComponent::Additive, false),
            Some(EtsForm::DampedTrend) => (TrendComponent::Additive, true),
        };
        let model_type = ModelType {
            error: ErrorComponent::Additive,
            trend,
            season: SeasonalComponent::None,
        };
        Unfit::new(model_type)
            .damped(damped)
            .fit(y)
            .map(Self::Fixed)
    }

    fn model(&self) -> &Model {
        match self {
            Self::Searched(fitted) => fitted.model(),
            Self::Fixed(model) => model,
        }
    }

    fn form(&self) -> Option<EtsForm> {
        EtsForm::of(self.model())
    }
}

/// Seasonal naive with the usual interval: the residual spread of `y[t] - y[t-period]`, widened by the
/// square root of the number of whole seasons ahead.
fn seasonal_naive(
    y: &[f64],
    period: usize,
    horizon: usize,
    level: Option<f64>,
) -> Option<Vec<ForecastPoint>> {
    let n = y.len();
    if period == 0 || n < period {
        return None;
    }
    let residuals: Vec<f64> = y[period..]
        .iter()
        .zip(y)
        .map(|(now, before)| now - before)
        .collect();
    let sigma = if residuals.is_empty() {
        0.0
    } else {
        (residuals.iter().map(|r| r * r).sum::<f64>() / residuals.len() as f64).sqrt()
    };
    let z = level.map_or(0.0, z_score);
    let last_season = &y[n - period..];
    Some(
        (0..horizon)
            .map(|h| {
                let mean = last_season[h % period];
                let seasons_ahead = (h / period + 1) as f64;
                let half = z * sigma * seasons_ahead.sqrt();
                ForecastPoint {
                    mean,
                    lower: mean - half,
                    upper: mean + half,
                }
            })
            .collect(),
    )
}

/// Two-sided normal quantile for a central interval of coverage `level`.
fn z_score(level: f64) -> f64 {
    let z = Normal::ppf(0.5 + level / 2.0, 0.0, 1.0);
    if z.is_finite() { z } else { 0.0 }
}

fn to_points(forecast: augurs_core::Forecast) -> Vec<ForecastPoint> {
    match forecast.intervals {
        Some(iv) => forecast
            .point
            .iter()
            .zip(iv.lower.iter().zip(&iv.upper))
            .map(|(&mean, (&lower, &upper))| ForecastPoint { mean, lower, upper })
            .collect(),
        None => forecast
            .point
            .iter()
            .map(|&mean| ForecastPoint {
                mean,
                lower: mean,
                upper: mean,
            })
            .collect(),
    }
}

/// MSTL's trend model, fitted on the newest [`ETS_WINDOW`] points of the deseasonalised series only.
/// Only out-of-sample forecasts are used, so the shorter fit does not misalign anything. It records the
/// ETS form it fitted, which MSTL's boxed fitted trend no longer tells.
#[derive(Debug)]
struct WindowedEts {
    /// The remembered form, or `None` to search [`ETS_SPEC`].
    form: Option<EtsForm>,
    chosen: Cell<Option<EtsForm>>,
}

impl TrendModel for WindowedEts {
    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed("AutoETS (windowed)")
    }

    fn fit(
        &self,
        y: &[f64],
    ) -> Result<
        Box<dyn FittedTrendModel + Sync + Send>,
        Box<dyn std::error::Error + Send + Sync + 'static>,
    > {
        let recent = &y[y.len().saturating_sub(ETS_WINDOW)..];
        let fitted = EtsFit::fit(self.form, recent)?;
        self.chosen.set(fitted.form());
        Ok(Box::new(EtsTrend {
            fitted,
            points: recent.len(),
        }))
    }
}

/// A fitted ETS model as MSTL's trend.
#[derive(Debug)]
struct EtsTrend {
    fitted: EtsFit,
    points: usize,
}

impl FittedTrendModel for EtsTrend {
    fn predict_inplace(
        &self,
        horizon: usize,
        level: Option<f64>,
        forecast: &mut augurs_core::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self
            .fitted
            .model()
            .predict_inplace(horizon, level, forecast)?)
    }

    fn predict_in_sample_inplace(
        &self,
        level: Option<f64>,
        forecast: &mut augurs_core::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self
            .fitted
            .model()
            .predict_in_sample_inplace(level, forecast)?)
    }

    fn training_data_size(&self) -> Option<usize> {
        Some(self.points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_naive_repeats_the_last_season_and_widens_per_season() {
        let y = [1.0, 2.0, 3.0, 1.5, 2.5, 3.5];
        let points = seasonal_naive(&y, 3, 4, Some(0.9)).unwrap();
        let means: Vec<f64> = points.iter().map(|p| p.mean).collect();
        assert_eq!(means, vec![1.5, 2.5, 3.5, 1.5]);
        let first = points[0].upper - points[0].mean;
        let fourth = points[3].upper - points[3].mean;
        assert!(first > 0.0);
        assert!((fourth / first - 2f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn candidates_by_history_length() {
        let names = |periods: &[usize], len| -> Vec<String> {
            Candidate::all(periods, len, 12)
                .iter()
                .map(Candidate::name)
                .collect()
        };
        for (periods, len, expected, why) in [
            (
                &[50][..],
                100,
                &["seasonal_naive[50]", "autoets"][..],
                "MSTL needs two cycles",
            ),
            (
                &[49],
                100,
                &["seasonal_naive[49]", "autoets", "mstl[49]+autoets"],
                "two cycles fit",
            ),
            (
                &[],
                ETS_WINDOW + 12,
                &["naive", "autoets"],
                "every backtest fold of the long window would see the same points",
            ),
            (
                &[],
                ETS_WINDOW + 13,
                &["naive", "autoets", "autoets_last288"],
                "the longest fold is longer than the short window",
            ),
        ] {
            assert_eq!(names(periods, len), expected, "{why}");
        }
    }
}
