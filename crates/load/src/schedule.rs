//! The open-loop schedule: when each call is due, as offsets from the start, computed from the rate shape.
//!
//! The rate over time is a chain of linear segments. Call `k` is due when the expected number of calls so
//! far (the integral of the rate) reaches a target: `k + 0.5` for uniform arrivals, a running sum of
//! exponential draws for Poisson ones. Inverting that integral gives the due time exactly, with no drift.

use std::time::Duration;

use crate::plan::{Arrivals, RateShape};

/// A stretch of time over which the rate changes linearly from `r0` to `r1`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    len: f64,
    r0: f64,
    r1: f64,
    /// Expected calls before this segment starts.
    before: f64,
}

impl Segment {
    fn calls(&self) -> f64 {
        0.5 * (self.r0 + self.r1) * self.len
    }

    /// Seconds into the segment at which `c` expected calls (0 ≤ c ≤ calls()) have been made.
    fn time_for(&self, c: f64) -> f64 {
        // Solve r0·s + (r1 − r0)·s²/(2·len) = c for s; this form stays exact when r1 = r0 and when r0 = 0.
        let a = (self.r1 - self.r0) / (2.0 * self.len);
        let denominator = self.r0 + (self.r0 * self.r0 + 4.0 * a * c).max(0.0).sqrt();
        if denominator <= 0.0 {
            return 0.0;
        }
        (2.0 * c / denominator).clamp(0.0, self.len)
    }
}

/// Due times of the calls of one run, in order; an iterator so a long run never holds them all.
#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<Segment>,
    index: usize,
    target: f64,
    arrivals: Arrivals,
    rng: fastrand::Rng,
    duration: f64,
}

impl Schedule {
    /// The schedule of `shape` over `duration`; the shape must have passed `LoadPlan::validate`.
    pub fn new(shape: &RateShape, duration: Duration, arrivals: Arrivals, seed: u64) -> Self {
        let total = duration.as_secs_f64();
        let mut segments = Vec::new();
        let mut push = |start: f64, len: f64, r0: f64, r1: f64| {
            if len > 0.0 {
                segments.push(Segment {
                    start,
                    len,
                    r0,
                    r1,
                    before: 0.0,
                });
            }
        };
        match shape {
            RateShape::Constant { rps } => push(0.0, total, *rps, *rps),
            RateShape::Ramp { from, to } => push(0.0, total, *from, *to),
            RateShape::Steps { rps } => {
                let step = total / rps.len().max(1) as f64;
                for (i, r) in rps.iter().enumerate() {
                    push(i as f64 * step, step, *r, *r);
                }
            }
        }
        let mut before = 0.0;
        for segment in &mut segments {
            segment.before = before;
            before += segment.calls();
        }
        let mut schedule = Self {
            segments,
            index: 0,
            target: 0.0,
            arrivals,
            rng: fastrand::Rng::with_seed(seed),
            duration: total,
        };
        // Uniform arrivals sit mid-way between integer counts, so a constant rate R over D gives round(R·D).
        schedule.target = match arrivals {
            Arrivals::Uniform => 0.5,
            Arrivals::Poisson => schedule.exponential(),
        };
        schedule
    }

    /// Expected number of calls over the whole run.
    pub fn expected_calls(&self) -> f64 {
        self.segments.last().map_or(0.0, |s| s.before + s.calls())
    }

    /// An Exp(1) draw: the gap, in expected calls, between Poisson arrivals.
    fn exponential(&mut self) -> f64 {
        -(1.0 - self.rng.f64()).ln()
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let target = self.target;
        while let Some(segment) = self.segments.get(self.index) {
            let end = segment.before + segment.calls();
            if target <= end {
                let at = segment.start + segment.time_for(target - segment.before);
                if at >= self.duration {
                    return None;
                }
                self.target += match self.arrivals {
                    Arrivals::Uniform => 1.0,
                    Arrivals::Poisson => self.exponential(),
                };
                return Some(Duration::from_secs_f64(at));
            }
            self.index += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_per_second(schedule: Schedule, seconds: usize) -> Vec<usize> {
        let mut counts = vec![0; seconds];
        for at in schedule {
            let second = at.as_secs() as usize;
            counts[second] += 1;
        }
        counts
    }

    #[test]
    fn totals_match_the_integral_of_the_rate() {
        let secs = Duration::from_secs;
        // (shape, duration, expected calls, reason)
        let cases = [
            (
                RateShape::Constant { rps: 50.0 },
                secs(10),
                500,
                "constant: rate × duration",
            ),
            (
                RateShape::Constant { rps: 0.5 },
                secs(4),
                2,
                "a rate below 1/s",
            ),
            (
                RateShape::Ramp {
                    from: 0.0,
                    to: 100.0,
                },
                secs(10),
                500,
                "ramp from 0: half the peak area",
            ),
            (
                RateShape::Ramp {
                    from: 100.0,
                    to: 0.0,
                },
                secs(10),
                500,
                "falling ramp: same area",
            ),
            (
                RateShape::Ramp {
                    from: 10.0,
                    to: 30.0,
                },
                secs(4),
                80,
                "ramp: mean rate × duration",
            ),
            (
                RateShape::Steps {
                    rps: vec![10.0, 0.0, 30.0],
                },
                secs(3),
                40,
                "steps, one idle",
            ),
            (
                RateShape::Steps {
                    rps: vec![10.0, 30.0],
                },
                secs(6),
                120,
                "steps stretched to 3 s each",
            ),
        ];
        for (shape, duration, want, reason) in cases {
            let schedule = Schedule::new(&shape, duration, Arrivals::Uniform, 0);
            let got: Vec<Duration> = schedule.collect();
            assert_eq!(got.len(), want, "{reason}");
            assert!(
                got.windows(2).all(|w| w[0] <= w[1]),
                "{reason}: out of order"
            );
            assert!(got.iter().all(|t| *t < duration), "{reason}: past the end");
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let shape = RateShape::Constant { rps: 4.0 };
        let got: Vec<f64> = Schedule::new(&shape, Duration::from_secs(1), Arrivals::Uniform, 0)
            .map(|d| d.as_secs_f64())
            .collect();
        let want = [0.125, 0.375, 0.625, 0.875];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn ramp_counts_rise_each_second() {
        let shape = RateShape::Ramp {
            from: 10.0,
            to: 100.0,
        };
        let schedule = Schedule::new(&shape, Duration::from_secs(10), Arrivals::Uniform, 0);
        let counts = counts_per_second(schedule, 10);
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        // Second k holds the mean rate over [k, k+1): 10 + 9·(k + 0.5).
        assert!((counts[0] as i64 - 14).abs() <= 1, "{counts:?}");
        assert!((counts[9] as i64 - 95).abs() <= 1, "{counts:?}");
    }

    #[test]
    fn steps_keep_their_shape_when_compressed() {
        let shape = RateShape::Steps {
            rps: vec![5.0, 50.0, 5.0, 20.0],
        };
        let schedule = Schedule::new(&shape, Duration::from_secs(4), Arrivals::Uniform, 0);
        assert_eq!(counts_per_second(schedule, 4), [5, 50, 5, 20]);
    }

    #[test]
    fn poisson_is_seeded_and_near_the_rate() {
        let shape = RateShape::Constant { rps: 1000.0 };
        let run = |seed| -> Vec<Duration> {
            Schedule::new(&shape, Duration::from_secs(10), Arrivals::Poisson, seed).collect()
        };
        let first = run(7);
        assert_eq!(first, run(7), "the same seed gives the same schedule");
        assert_ne!(first, run(8), "another seed gives another schedule");
        // 10,000 expected; a Poisson count has a standard deviation of 100, so ±500 is 5 sigma.
        assert!((first.len() as i64 - 10_000).abs() < 500, "{}", first.len());
        let gaps: Vec<f64> = first
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let uneven = gaps.iter().filter(|g| (**g - 0.001).abs() > 0.0005).count();
        assert!(
            uneven > gaps.len() / 2,
            "Poisson gaps vary, unlike uniform ones"
        );
    }

    #[test]
    fn expected_calls_is_the_area() {
        let shape = RateShape::Ramp { from: 2.0, to: 4.0 };
        let schedule = Schedule::new(&shape, Duration::from_secs(10), Arrivals::Uniform, 0);
        assert!((schedule.expected_calls() - 30.0).abs() < 1e-9);
    }
}
