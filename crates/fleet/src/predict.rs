//! Predictive scaling for the local fleet: the request rate is forecast in 5-second steps, turned into agents
//! through the per-agent capacity learned from the fleet's own history, and applied (as `max(reactive,
//! predictive)`) only while recent forecasts have proved no worse than the naive one.

use std::collections::VecDeque;

use mcpulse_scaler::forecast::{
    Distrust, Forecast, ForecastConfig, Forecaster, RefitPolicy, learn_capacity,
    prediction_trustworthy, predictive_replicas, realized_mase,
};
use mcpulse_scaler::sizing::PodSizing;
use serde::Serialize;

const STEP_SECONDS: u32 = 5;
/// The band the console shows is the one forecast this many steps (30 s) earlier.
const BAND_LEAD_STEPS: usize = 6;
/// Capacity must be there within this many steps (10 s): an agent starts and registers in a few seconds, and
/// the next decision comes within a sync period.
const SCALING_LEAD_STEPS: usize = 2;
/// Two hours of steps bound the fitting time.
const MAX_STEPS: usize = 1440;
/// Four minutes of history before a forecast is believed at all.
const MIN_HISTORY_STEPS: usize = 48;
/// In-flight per agent over the target above which a step is saturated and teaches nothing about capacity.
const MAX_LEARNING_UTILIZATION: f64 = 1.0;
/// Realized errors of this many recent forecasts judge whether prediction is trusted.
const TRACK_RECORD: usize = 6;
/// A mean realized MASE above this (worse than "the next steps equal the last one") switches prediction off.
const MASE_THRESHOLD: f64 = 1.0;

/// One second of the fleet as the predictor sees it.
pub struct Tick {
    pub t: f64,
    /// Requests per second through the gateway.
    pub rate: f64,
    /// Agents serving (running).
    pub serving: u32,
    /// Requests in flight or queued, summed over agents.
    pub in_flight: f64,
}

/// What prediction recommends, or why it stays out of the decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Prediction {
    Trusted {
        replicas: u32,
        /// The highest upper-interval rate forecast over the scaling lead.
        peak_rate: f64,
        /// Requests per second one agent serves at the target in-flight count, learned from history.
        capacity_per_agent: f64,
    },
    Off {
        reason: String,
    },
}

impl Default for Prediction {
    fn default() -> Self {
        Self::Off {
            reason: "starting".into(),
        }
    }
}

#[derive(Default)]
struct Step {
    rate: f64,
    serving: f64,
    in_flight: f64,
    ticks: u32,
}

pub struct Predictor {
    target_in_flight: f64,
    rates: VecDeque<f64>,
    /// Per step: mean agents serving and mean in-flight per agent over the target (1.0 = at target).
    serving: VecDeque<f64>,
    utilization: VecDeque<f64>,
    step: Step,
    /// Steps observed so far; indexes the forecasts awaiting their realized error.
    steps_seen: usize,
    /// Refits the remembered model each step and selects anew every few, instead of a full model
    /// selection every 5 s; `None` only if its fixed settings were refused.
    forecaster: Option<Forecaster>,
    latest: Option<Forecast>,
    /// Forecasts made after step `usize`, judged once their horizon has happened.
    awaiting_judgement: VecDeque<(usize, Forecast)>,
    recent_errors: VecDeque<f64>,
    bands_due: VecDeque<(f64, (f64, f64, f64))>,
}

impl Predictor {
    pub fn new(target_in_flight: f64) -> Self {
        Self {
            target_in_flight,
            rates: VecDeque::new(),
            serving: VecDeque::new(),
            utilization: VecDeque::new(),
            step: Step::default(),
            steps_seen: 0,
            forecaster: Forecaster::new(forecast_config(), RefitPolicy::default()).ok(),
            latest: None,
            awaiting_judgement: VecDeque::new(),
            recent_errors: VecDeque::new(),
            bands_due: VecDeque::new(),
        }
    }

    pub fn observe(&mut self, tick: &Tick) {
        self.step.rate += tick.rate;
        self.step.serving += f64::from(tick.serving);
        self.step.in_flight += tick.in_flight;
        self.step.ticks += 1;
        if self.step.ticks < STEP_SECONDS {
            return;
        }
        let ticks = f64::from(self.step.ticks);
        let step = std::mem::take(&mut self.step);
        let serving = step.serving / ticks;
        let per_agent = if serving > 0.0 {
            step.in_flight / ticks / serving
        } else {
            0.0
        };
        push_bounded(&mut self.rates, step.rate / ticks);
        push_bounded(&mut self.serving, serving);
        push_bounded(&mut self.utilization, per_agent / self.target_in_flight);
        self.steps_seen += 1;
        self.judge_past_forecasts();

        // Too little history is the normal start: the band and the recommendation appear once there is enough.
        self.latest = self.forecaster.as_mut().and_then(|f| {
            f.observe(&[step.rate / ticks]).ok()?;
            f.forecast().ok().map(|refit| refit.forecast)
        });
        if let Some(latest) = &self.latest {
            if let Some(point) = latest.points.get(BAND_LEAD_STEPS - 1) {
                let lead = f64::from(STEP_SECONDS) * BAND_LEAD_STEPS as f64;
                self.bands_due
                    .push_back((tick.t + lead, (point.mean, point.lower, point.upper)));
            }
            self.awaiting_judgement
                .push_back((self.steps_seen, latest.clone()));
        }
    }

    /// Compares each forecast whose horizon has fully happened with what happened.
    fn judge_past_forecasts(&mut self) {
        let oldest_step = self.steps_seen - self.rates.len();
        while let Some((made_after, _)) = self.awaiting_judgement.front() {
            if made_after + BAND_LEAD_STEPS > self.steps_seen {
                break;
            }
            let Some((made_after, past)) = self.awaiting_judgement.pop_front() else {
                break;
            };
            if made_after <= oldest_step {
                continue;
            }
            let history: Vec<f64> = self.rates.iter().copied().collect();
            let split = made_after - oldest_step;
            let error = realized_mase(&past, &history[split..], &history[..split]);
            // No error means the history never moved; that says nothing about the model.
            if let Some(error) = error {
                if self.recent_errors.len() == TRACK_RECORD {
                    self.recent_errors.pop_front();
                }
                self.recent_errors.push_back(error);
            }
        }
    }

    /// The band predicted for instant `t`, if one came due.
    pub fn band_for(&mut self, t: f64) -> Option<(f64, f64, f64)> {
        let mut band = None;
        while self.bands_due.front().is_some_and(|(due, _)| *due <= t) {
            band = self.bands_due.pop_front().map(|(_, b)| b);
        }
        band.or_else(|| {
            self.bands_due
                .front()
                .filter(|(due, _)| *due - t < 1.0)
                .map(|(_, b)| *b)
        })
    }

    /// Agents needed for the forecast load, when prediction has earned trust.
    pub fn recommend(&self, min: u32, max: u32) -> Prediction {
        let off = |reason: String| Prediction::Off { reason };
        let errors: Vec<f64> = self.recent_errors.iter().copied().collect();
        if let Err(distrust) =
            prediction_trustworthy(&errors, self.rates.len(), MIN_HISTORY_STEPS, MASE_THRESHOLD)
        {
            return off(match distrust {
                Distrust::HistoryTooShort { have, need } => format!(
                    "learning: {} s of history of the {} s needed",
                    have * STEP_SECONDS as usize,
                    need * STEP_SECONDS as usize
                ),
                other => other.to_string(),
            });
        }
        let Some(latest) = &self.latest else {
            return off("no forecast could be fitted yet".into());
        };
        // Only steps at or under the target teach capacity: past it, requests queue and in-flight grows with the
        // wait, not with the load, so a saturated fleet would look slower than it is.
        let (mut rates, mut serving, mut utilization) = (Vec::new(), Vec::new(), Vec::new());
        for ((rate, agents), used) in self.rates.iter().zip(&self.serving).zip(&self.utilization) {
            if *used <= MAX_LEARNING_UTILIZATION {
                rates.push(*rate);
                serving.push(*agents);
                utilization.push(*used);
            }
        }
        let capacity = match learn_capacity(&rates, &serving, &utilization, 1.0) {
            Ok(capacity) => capacity,
            Err(error) => return off(format!("per-agent capacity unknown: {error}")),
        };
        let peak_rate = latest
            .points
            .iter()
            .take(SCALING_LEAD_STEPS)
            .map(|p| p.upper)
            .fold(0.0, f64::max);
        Prediction::Trusted {
            replicas: predictive_replicas(
                latest,
                SCALING_LEAD_STEPS,
                &PodSizing::Capacity { per_pod: capacity },
                min,
                max,
            ),
            peak_rate,
            capacity_per_agent: capacity,
        }
    }
}

fn forecast_config() -> ForecastConfig {
    ForecastConfig {
        horizon: BAND_LEAD_STEPS,
        max_history: MAX_STEPS,
        min_history: MIN_HISTORY_STEPS,
        ..Default::default()
    }
}

fn push_bounded(values: &mut VecDeque<f64>, value: f64) {
    if values.len() == MAX_STEPS {
        values.pop_front();
    }
    values.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet whose agents each serve 10 requests/s at the target in-flight: in flight per agent is
    /// `target × rate / (10 × serving)`, as Little's law gives for a fixed service time.
    fn run(predictor: &mut Predictor, seconds: std::ops::Range<u32>, load: impl Fn(f64) -> f64) {
        for second in seconds {
            let t = f64::from(second);
            let rate = load(t);
            let serving = ((rate / 10.0).ceil() as u32).max(1);
            predictor.observe(&Tick {
                t,
                rate,
                serving,
                in_flight: 2.0 * rate / 10.0,
            });
        }
    }

    #[test]
    fn the_forecast_band_appears_once_there_is_history_and_follows_the_load() {
        let mut predictor = Predictor::new(2.0);
        let mut bands = Vec::new();
        for second in 0..600 {
            let t = f64::from(second);
            run(&mut predictor, second..second + 1, |t| {
                50.0 + 10.0 * (t / 60.0).sin()
            });
            if let Some(band) = predictor.band_for(t) {
                bands.push((t, band));
            }
        }
        let first = bands
            .first()
            .map(|(t, _)| *t)
            .expect("a band after ten minutes");
        assert!(
            first >= 240.0,
            "no band before 48 five-second steps of history (first at {first} s)"
        );
        for (t, (mean, lower, upper)) in &bands {
            assert!(lower <= mean && mean <= upper, "band ordered at {t}");
            assert!(
                (30.0..=70.0).contains(mean),
                "the forecast tracks the load at {t}: {mean}"
            );
        }
    }

    #[test]
    fn the_forecaster_accepts_its_settings() {
        assert!(
            Predictor::new(2.0).forecaster.is_some(),
            "the fixed forecast settings must validate, or prediction would stay off for good"
        );
    }

    #[test]
    fn prediction_stays_off_until_there_is_history() {
        let mut predictor = Predictor::new(2.0);
        run(&mut predictor, 0..60, |_| 40.0);
        match predictor.recommend(1, 20) {
            Prediction::Off { reason } => assert!(reason.contains("learning"), "{reason}"),
            trusted => panic!("one minute of history is not enough: {trusted:?}"),
        }
    }

    #[test]
    fn a_learned_pattern_asks_for_the_agents_its_peak_needs() {
        let mut predictor = Predictor::new(2.0);
        // A steady climb of 0.2 requests/s per second: a trend any model should carry forward.
        run(&mut predictor, 0..400, |t| 20.0 + 0.2 * t);
        let Prediction::Trusted {
            replicas,
            peak_rate,
            capacity_per_agent,
        } = predictor.recommend(1, 50)
        else {
            panic!(
                "a clean trend earns trust: {:?}",
                predictor.recommend(1, 50)
            );
        };
        assert!(
            (capacity_per_agent - 10.0).abs() < 1.0,
            "each agent serves 10 requests/s at the target: learned {capacity_per_agent}"
        );
        let now = 20.0 + 0.2 * 400.0;
        assert!(
            peak_rate >= now,
            "the climb goes on: peak {peak_rate} vs now {now}"
        );
        assert!(
            replicas >= (now / 10.0).ceil() as u32,
            "at least the agents today's load needs: {replicas}"
        );
        assert!(replicas <= 20, "no wild over-provisioning: {replicas}");
    }

    #[test]
    fn saturated_steps_do_not_make_agents_look_slower() {
        let mut predictor = Predictor::new(2.0);
        // Five minutes under the target (each agent serves 10 requests/s at 2 in flight), then five minutes
        // overloaded: the rate is capped at what 2 agents serve and requests queue, 15 in flight per agent.
        run(&mut predictor, 0..300, |t| 12.0 + 4.0 * (t / 40.0).sin());
        for second in 300..600 {
            predictor.observe(&Tick {
                t: f64::from(second),
                rate: 40.0,
                serving: 2,
                in_flight: 30.0,
            });
        }
        match predictor.recommend(1, 50) {
            Prediction::Trusted {
                capacity_per_agent, ..
            } => assert!(
                (capacity_per_agent - 10.0).abs() < 1.0,
                "capacity comes from the unsaturated steps: {capacity_per_agent}"
            ),
            off => panic!("enough history and unsaturated steps: {off:?}"),
        }
    }

    #[test]
    fn idle_fleets_learn_no_capacity() {
        let mut predictor = Predictor::new(2.0);
        for second in 0..600 {
            predictor.observe(&Tick {
                t: f64::from(second),
                rate: 0.0,
                serving: 2,
                in_flight: 0.0,
            });
        }
        assert!(
            matches!(predictor.recommend(1, 10), Prediction::Off { .. }),
            "an idle fleet says nothing about what an agent can serve"
        );
    }
}
