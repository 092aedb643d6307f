//! Load predictors for the predictive half of the `mcpulse` policy, behind one small trait.

use serde::Serialize;

use crate::forecast::{Forecast, ForecastConfig, forecast};

/// One predicted step: the expected load and a band around it (requests per second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Predicts the next steps of a load series from its history (oldest first, one value a step).
pub trait LoadPredictor {
    /// Shown in reports, e.g. "seasonal-naive".
    fn name(&self) -> String;
    /// The next `horizon` steps, or `None` when the history is too short to say anything.
    fn predict(&mut self, history: &[f64], horizon: usize) -> Option<Vec<Band>>;
}

/// Robust seasonal naive: the median, over up to `seasons` past periods, of the smoothed value at the same
/// phase, scaled by how the last `window` steps compare with the same phases in those periods. The median
/// keeps a one-off flash crowd from being replayed a period later. Before one full period is seen it extends
/// the recent linear trend. The band is ±2 standard deviations of its own recent one-step errors.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalNaive {
    /// Steps in one season (a day at the trace step).
    pub period: usize,
    /// Steps used to measure the level and the trend, and half-width of the smoothing.
    pub window: usize,
    /// Past periods the median is taken over.
    pub seasons: usize,
}

impl SeasonalNaive {
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            window: 6,
            seasons: 7,
        }
    }

    fn mean(values: &[f64]) -> f64 {
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    }

    fn median(mut values: Vec<f64>) -> Option<f64> {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(values[n / 2]),
            _ => Some(0.5 * (values[n / 2 - 1] + values[n / 2])),
        }
    }

    /// The median over past periods of the smoothed value at the phase of step `target` (absolute index).
    fn seasonal(&self, history: &[f64], target: usize) -> Option<f64> {
        let half = self.window / 2;
        let values: Vec<f64> = (1..=self.seasons)
            .filter_map(|k| target.checked_sub(k * self.period))
            .filter(|&i| i < history.len())
            .map(|i| {
                let lo = i.saturating_sub(half);
                let hi = (i + half + 1).min(history.len());
                Self::mean(&history[lo..hi])
            })
            .collect();
        Self::median(values)
    }

    /// Forecast of the step `h` steps after the end of `history`.
    fn point(&self, history: &[f64], h: usize) -> Option<f64> {
        let n = history.len();
        let w = self.window.min(n);
        if w == 0 {
            return None;
        }
        let recent = &history[n - w..];
        let last = recent[w - 1];
        if n >= self.period + w {
            let base = self.seasonal(history, n - 1 + h)?;
            let before: Vec<f64> = (n - w..n)
                .filter_map(|i| self.seasonal(history, i))
                .collect();
            let before = Self::mean(&before);
            let level = if before > 1e-9 {
                (Self::mean(recent) / before).clamp(0.5, 2.0)
            } else {
                1.0
            };
            Some((base * level).max(0.0))
        } else {
            let slope = if w >= 2 {
                (recent[w - 1] - recent[0]) / (w - 1) as f64
            } else {
                0.0
            };
            Some((last + slope * h as f64).max(0.0))
        }
    }
}

impl LoadPredictor for SeasonalNaive {
    fn name(&self) -> String {
        format!("seasonal-naive(period={})", self.period)
    }

    fn predict(&mut self, history: &[f64], horizon: usize) -> Option<Vec<Band>> {
        let n = history.len();
        if n < 2 || horizon == 0 || horizon > self.period.max(1) {
            return None;
        }
        // Spread from the last few one-step errors; bounded so one call stays cheap.
        let checks = n.saturating_sub(2).min(4 * self.window);
        let mut sq = 0.0;
        for i in n - checks..n {
            if let Some(p) = self.point(&history[..i], 1) {
                sq += (p - history[i]).powi(2);
            }
        }
        let sigma = if checks > 0 {
            (sq / checks as f64).sqrt()
        } else {
            0.0
        };
        (1..=horizon)
            .map(|h| {
                self.point(history, h).map(|mean| {
                    let spread = 2.0 * sigma * (h as f64).sqrt();
                    Band {
                        mean,
                        lower: (mean - spread).max(0.0),
                        upper: mean + spread,
                    }
                })
            })
            .collect()
    }
}

/// Adapts [`crate::forecast::forecast`] (the model chosen by backtest among seasonal naive, ETS and MSTL) to
/// [`LoadPredictor`]. A fit costs far more than a step, so it refits every `refit_every` steps and serves the
/// steps in between from the last fit, shifted by the steps elapsed. A history the forecaster refuses (too
/// short) yields no prediction, which leaves the policy reactive.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastPredictor {
    pub config: ForecastConfig,
    pub refit_every: usize,
    last: Option<(usize, Forecast)>,
}

impl ForecastPredictor {
    pub fn new(config: ForecastConfig, refit_every: usize) -> Self {
        Self {
            config,
            refit_every: refit_every.max(1),
            last: None,
        }
    }
}

impl LoadPredictor for ForecastPredictor {
    fn name(&self) -> String {
        match &self.last {
            Some((_, f)) => format!("forecast (last model {})", f.model),
            None => "forecast".into(),
        }
    }

    fn predict(&mut self, history: &[f64], horizon: usize) -> Option<Vec<Band>> {
        let n = history.len();
        let reuse = self.last.as_ref().and_then(|(fitted_at, f)| {
            let offset = n.checked_sub(*fitted_at)?;
            (offset < self.refit_every)
                .then(|| f.points.get(offset..offset + horizon))
                .flatten()
        });
        let points = match reuse {
            Some(p) => p.to_vec(),
            None => {
                let config = ForecastConfig {
                    horizon: horizon + self.refit_every,
                    ..self.config
                };
                let fitted = forecast(history, &config).ok()?;
                let p = fitted.points.get(..horizon)?.to_vec();
                self.last = Some((n, fitted));
                p
            }
        };
        Some(
            points
                .iter()
                .map(|p| Band {
                    mean: p.mean,
                    lower: p.lower,
                    upper: p.upper,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_a_clean_season() {
        let season = [1.0, 2.0, 4.0, 8.0, 4.0, 2.0];
        let history: Vec<f64> = season.iter().cycle().take(30).copied().collect();
        let mut p = SeasonalNaive {
            period: 6,
            window: 1,
            seasons: 3,
        };
        let out = p.predict(&history, 6).expect("enough history");
        let means: Vec<f64> = out.iter().map(|b| b.mean).collect();
        assert_eq!(
            means,
            season.to_vec(),
            "a clean season is predicted exactly"
        );
        assert!(out.iter().all(|b| b.lower <= b.mean && b.mean <= b.upper));
    }

    #[test]
    fn forecast_adapter_reuses_its_fit_between_refits() {
        let history: Vec<f64> = (0..200)
            .map(|i| 50.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin())
            .collect();
        let mut p = ForecastPredictor::new(ForecastConfig::default(), 4);
        assert!(
            p.predict(&history[..10], 3).is_none(),
            "too short for the forecaster"
        );
        let first = p.predict(&history[..150], 3).expect("fits");
        let shifted = p.predict(&history[..151], 3).expect("reuses");
        assert_eq!(
            first[1], shifted[0],
            "one step later, the same fit shifted by one"
        );
        assert!(p.name().starts_with("forecast (last model"));
    }

    #[test]
    fn extends_a_trend_before_one_season() {
        let history = [10.0, 12.0, 14.0, 16.0];
        let mut p = SeasonalNaive::new(100);
        let out = p.predict(&history, 2).expect("trend");
        assert!((out[0].mean - 18.0).abs() < 1e-9 && (out[1].mean - 20.0).abs() < 1e-9);
        assert!(p.predict(&[1.0], 1).is_none(), "one point is too little");
    }
}
