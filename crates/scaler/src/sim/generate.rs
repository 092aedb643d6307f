//! A seeded synthetic trace generator: diurnal and weekly cycles, noise, ramps and flash crowds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::rng::Rng;
use super::trace::{MAX_TRACE_STEPS, Trace};
use crate::time::Timestamp;

/// A lasting change of level: the load is multiplied by a factor rising linearly from 1 to `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    /// From the trace start.
    pub start: Duration,
    pub duration: Duration,
    pub factor: f64,
}

/// A short surge: rises to `factor` times the load, holds, then decays back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlashCrowd {
    pub start: Duration,
    pub rise: Duration,
    pub hold: Duration,
    pub decay: Duration,
    pub factor: f64,
}

impl FlashCrowd {
    fn multiplier(&self, t: f64) -> f64 {
        let (s, r, h, d) = (
            self.start.as_secs_f64(),
            self.rise.as_secs_f64().max(1.0),
            self.hold.as_secs_f64(),
            self.decay.as_secs_f64().max(1.0),
        );
        let extra = self.factor - 1.0;
        let shape = if t < s || t > s + r + h + d {
            0.0
        } else if t < s + r {
            (t - s) / r
        } else if t < s + r + h {
            1.0
        } else {
            1.0 - (t - s - r - h) / d
        };
        1.0 + extra * shape
    }
}

/// What to generate. Rates are requests per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub start: Timestamp,
    pub step: Duration,
    pub duration: Duration,
    /// Mean level before cycles, ramps and surges.
    pub base_rps: f64,
    /// Daily swing: the level moves within `base * (1 ± amplitude)`.
    pub diurnal_amplitude: f64,
    /// Hour of the day (UTC) of the daily peak.
    pub peak_hour: f64,
    /// Share of load lost on Saturdays and Sundays.
    pub weekend_dip: f64,
    /// Relative standard deviation of the noise (smooth: an AR(1) process with a few minutes' memory).
    pub noise: f64,
    pub ramps: Vec<Ramp>,
    pub flash_crowds: Vec<FlashCrowd>,
    /// Random extra flash crowds, expected per day (factor 2..5, a few minutes up, 5..20 minutes held).
    pub random_flash_crowds_per_day: f64,
    pub seed: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            start: Timestamp::from_secs(1_704_067_200), // 2024-01-01T00:00:00Z, a Monday
            step: Duration::from_secs(60),
            duration: Duration::from_secs(7 * 86_400),
            base_rps: 50.0,
            diurnal_amplitude: 0.6,
            peak_hour: 14.0,
            weekend_dip: 0.3,
            noise: 0.05,
            ramps: Vec::new(),
            flash_crowds: Vec::new(),
            random_flash_crowds_per_day: 0.0,
            seed: 1,
        }
    }
}

fn invalid(field: &str, problem: String) -> SimError {
    SimError::config(field, problem)
}

/// Generates the trace described by `config`; the same config always gives the same trace.
pub fn generate(config: &GeneratorConfig) -> Result<Trace, SimError> {
    let step = config.step.as_secs_f64();
    if !(1.0..=86_400.0).contains(&step) {
        return Err(invalid(
            "step",
            format!("must be 1 s..1 day, got {:?}", config.step),
        ));
    }
    let steps = (config.duration.as_secs_f64() / step).floor() as usize;
    if steps == 0 || steps > MAX_TRACE_STEPS {
        return Err(invalid(
            "duration",
            format!("must span 1..={MAX_TRACE_STEPS} steps, got {steps}"),
        ));
    }
    let fractions = [
        ("diurnal_amplitude", config.diurnal_amplitude),
        ("weekend_dip", config.weekend_dip),
        ("noise", config.noise),
    ];
    for (field, v) in fractions {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(field, format!("must be within 0..=1, got {v}")));
        }
    }
    if !(config.base_rps.is_finite() && config.base_rps >= 0.0 && config.base_rps <= 1e7) {
        return Err(invalid(
            "base_rps",
            format!("must be within 0..=1e7, got {}", config.base_rps),
        ));
    }
    if !(0.0..=100.0).contains(&config.random_flash_crowds_per_day) {
        return Err(invalid(
            "random_flash_crowds_per_day",
            format!(
                "must be within 0..=100, got {}",
                config.random_flash_crowds_per_day
            ),
        ));
    }
    let factors = config
        .ramps
        .iter()
        .map(|r| r.factor)
        .chain(config.flash_crowds.iter().map(|f| f.factor));
    for f in factors {
        if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
            return Err(invalid(
                "factor",
                format!("ramp and flash-crowd factors must be in (0, 1000], got {f}"),
            ));
        }
    }
    let mut rng = Rng::new(config.seed);
    let mut crowds = config.flash_crowds.clone();
    let days = config.duration.as_secs_f64() / 86_400.0;
    let expected = config.random_flash_crowds_per_day * days;
    let count = rng.poisson(expected) as usize;
    for _ in 0..count {
        crowds.push(FlashCrowd {
            start: Duration::from_secs_f64(rng.uniform() * config.duration.as_secs_f64()),
            rise: Duration::from_secs_f64(60.0 + 120.0 * rng.uniform()),
            hold: Duration::from_secs_f64(300.0 + 900.0 * rng.uniform()),
            decay: Duration::from_secs_f64(300.0 + 300.0 * rng.uniform()),
            factor: 2.0 + 3.0 * rng.uniform(),
        });
    }
    let start_secs = config.start.millis() as f64 / 1000.0;
    // AR(1) noise with a five-minute memory, scaled to the requested standard deviation.
    let phi = (-step / 300.0).exp();
    let innovation = (1.0 - phi * phi).sqrt();
    let mut ar = 0.0;
    let rps = (0..steps)
        .map(|i| {
            let t = i as f64 * step;
            let abs = start_secs + t;
            let hour = (abs / 3600.0).rem_euclid(24.0);
            let daily = 1.0
                + config.diurnal_amplitude
                    * (std::f64::consts::TAU * (hour - config.peak_hour) / 24.0).cos();
            // 1970-01-01 was a Thursday: day 2 and 3 of the week counted from it are Saturday and Sunday.
            let weekday = (abs / 86_400.0).floor().rem_euclid(7.0) as u32;
            let weekly = if matches!(weekday, 2 | 3) {
                1.0 - config.weekend_dip
            } else {
                1.0
            };
            let ramp: f64 = config
                .ramps
                .iter()
                .map(|r| {
                    let progress = ((t - r.start.as_secs_f64())
                        / r.duration.as_secs_f64().max(1.0))
                    .clamp(0.0, 1.0);
                    1.0 + (r.factor - 1.0) * progress
                })
                .product();
            let flash: f64 = crowds.iter().map(|c| c.multiplier(t)).product();
            ar = phi * ar + innovation * rng.normal();
            let noise = (1.0 + config.noise * ar).max(0.0);
            (config.base_rps * daily * weekly * ramp * flash * noise).max(0.0)
        })
        .collect();
    Trace::new(config.start, config.step, rps)
}

/// Most requests [`request_log_csv`] writes.
pub const MAX_LOG_REQUESTS: usize = 1_000_000;

/// Draws individual requests from `trace` (a Poisson process at each step's rate) and writes them as a
/// one-request-a-line log, `timestamp,size` like the Azure LLM traces, with a made-up token count as `size`.
pub fn request_log_csv(trace: &Trace, seed: u64) -> Result<String, SimError> {
    let mut rng = Rng::new(seed);
    let step = trace.step.as_secs_f64();
    let expected: f64 = trace.rps.iter().map(|r| r * step).sum();
    if expected > MAX_LOG_REQUESTS as f64 {
        return Err(invalid(
            "trace",
            format!(
                "about {expected:.0} requests, at most {MAX_LOG_REQUESTS}; lower the rate or shorten the trace"
            ),
        ));
    }
    let mut out = String::from("timestamp,size\n");
    let start = trace.start.millis();
    for (i, rate) in trace.rps.iter().enumerate() {
        let count = rng.poisson(rate * step) as usize;
        let mut offsets: Vec<f64> = (0..count).map(|_| rng.uniform() * step).collect();
        offsets.sort_by(f64::total_cmp);
        for o in offsets {
            let t = start + ((i as f64 * step + o) * 1000.0).round() as i64;
            let size = 100 + (rng.uniform() * 4000.0) as u32;
            out.push_str(&format!("{},{size}\n", super::trace::format_rfc3339(t)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_peak_lands_at_the_peak_hour() {
        let config = GeneratorConfig {
            duration: Duration::from_secs(86_400),
            noise: 0.0,
            ..GeneratorConfig::default()
        };
        let trace = generate(&config).expect("valid");
        let peak_step = trace
            .rps
            .iter()
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (i, v)| if *v > best.1 { (i, *v) } else { best },
            )
            .0;
        assert_eq!(peak_step, 14 * 60, "peak at 14:00 UTC");
        assert!((trace.peak() - 80.0).abs() < 1e-6, "50 * (1 + 0.6)");
    }

    #[test]
    fn flash_crowd_multiplies_load() {
        let crowd = FlashCrowd {
            start: Duration::from_secs(600),
            rise: Duration::from_secs(60),
            hold: Duration::from_secs(300),
            decay: Duration::from_secs(60),
            factor: 4.0,
        };
        let cases: &[(f64, f64, &str)] = &[
            (0.0, 1.0, "before"),
            (630.0, 2.5, "half way up"),
            (800.0, 4.0, "held"),
            (2000.0, 1.0, "after"),
        ];
        for (t, want, why) in cases {
            assert!((crowd.multiplier(*t) - want).abs() < 1e-9, "{why}");
        }
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = [
            GeneratorConfig {
                noise: 2.0,
                ..GeneratorConfig::default()
            },
            GeneratorConfig {
                base_rps: f64::NAN,
                ..GeneratorConfig::default()
            },
            GeneratorConfig {
                step: Duration::ZERO,
                ..GeneratorConfig::default()
            },
            GeneratorConfig {
                duration: Duration::ZERO,
                ..GeneratorConfig::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(generate(&c), Err(SimError::Config { .. })),
                "{c:?}"
            );
        }
    }
}
