//! The candidate models: seasonal naive, non-seasonal AutoETS, and MSTL with AutoETS on the trend.

use std::borrow::Cow;

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_ets::trend::AutoETSTrendModel;
use augurs_mstl::{FittedTrendModel, MSTLModel, TrendModel};
use distrs::Normal;

use super::ForecastPoint;

/// ETS is fitted on at most this many of the newest points (12 hours at 5-minute steps): level and trend
/// for a short horizon depend on recent data, and the optimiser's cost grows faster than the series
/// (288 points cost 2.7 times as much as 144 for about 3 % worse MASE on the NAB traces).
const ETS_WINDOW: usize = 144;
/// MSTL sees at most this many cycles of its longest period (a week of a daily pattern): the seasonal
/// shape is well estimated by then, and decomposition cost grows linearly with the series.
const MSTL_CYCLES: usize = 7;
/// Additive error, any trend, no season: the AutoETS search space. Multiplicative error is left out
/// because it doubles the search for no gain on the scaled series, and ETS here cannot be seasonal.
const ETS_SPEC: &str = "AZN";

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Candidate {
    /// `y[t+h] = y[t+h-period]`; with period 1 the plain naive forecast.
    SeasonalNaive { period: usize },
    /// AutoETS without seasonality.
    Ets,
    /// MSTL decomposition with the detected periods, AutoETS on the deseasonalised series.
    Mstl { periods: Vec<usize> },
}

impl Candidate {
    /// Candidates worth trying for a series of `len` points with the detected `periods`, simplest first.
    pub(super) fn all(periods: &[usize], len: usize) -> Vec<Self> {
        let mut all = vec![
            Self::SeasonalNaive {
                period: periods.first().copied().unwrap_or(1),
            },
            Self::Ets,
        ];
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
            Self::Ets => "autoets".to_owned(),
            Self::Mstl { periods } => {
                let list: Vec<String> = periods.iter().map(ToString::to_string).collect();
                format!("mstl[{}]+autoets", list.join(","))
            }
        }
    }

    /// Forecasts `horizon` steps after `y`, with intervals at `level` when given. `None` when the model
    /// cannot be fitted or produces a non-finite value.
    pub(super) fn predict(
        &self,
        y: &[f64],
        horizon: usize,
        level: Option<f64>,
    ) -> Option<Vec<ForecastPoint>> {
        let points = match self {
            Self::SeasonalNaive { period } => seasonal_naive(y, *period, horizon, level)?,
            Self::Ets => {
                let recent = &y[y.len().saturating_sub(ETS_WINDOW)..];
                let fitted = ets()?.fit(recent).ok()?;
                to_points(fitted.predict(horizon, level).ok()?)
            }
            Self::Mstl { periods } => {
                if periods.iter().any(|p| 2 * p >= y.len()) {
                    return None;
                }
                let longest = periods.iter().copied().max().unwrap_or(1);
                let recent = &y[y.len().saturating_sub(MSTL_CYCLES * longest)..];
                let model = MSTLModel::new(periods.clone(), WindowedEts(ets()?.into_trend_model()));
                let fitted = model.fit(recent).ok()?;
                to_points(fitted.predict(horizon, level).ok()?)
            }
        };
        let finite = points
            .iter()
            .all(|p| p.mean.is_finite() && p.lower.is_finite() && p.upper.is_finite());
        (finite && points.len() == horizon).then_some(points)
    }
}

/// The AutoETS search; `None` only if [`ETS_SPEC`] were not a valid spec.
fn ets() -> Option<AutoETS> {
    AutoETS::new(1, ETS_SPEC).ok()
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
/// Only out-of-sample forecasts are used, so the shorter fit does not misalign anything.
#[derive(Debug, Clone)]
struct WindowedEts(AutoETSTrendModel);

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
        self.0.fit(&y[y.len().saturating_sub(ETS_WINDOW)..])
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
    fn mstl_needs_two_cycles() {
        assert_eq!(Candidate::all(&[50], 100).len(), 2);
        assert_eq!(Candidate::all(&[49], 100).len(), 3);
    }
}
