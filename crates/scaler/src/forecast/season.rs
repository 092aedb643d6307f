//! Seasonal period detection: the augurs periodogram finds candidate periods, autocorrelation refines them.

use augurs_seasons::PeriodogramDetector;

/// Shortest period worth modelling; below it a "season" is just noise.
const MIN_PERIOD: u32 = 4;
/// Longest period the detector looks for at full resolution; longer ones are looked for in a block-averaged
/// copy, because Welch's FFT segments (and so the detector's cost) grow with the longest period.
const MAX_DIRECT_PERIOD: usize = 512;
/// A periodogram peak must reach this share of the strongest peak to be considered.
const PEAK_THRESHOLD: f64 = 0.5;
/// Autocorrelation at the refined lag below which the "season" is too weak to help a model.
const MIN_AUTOCORRELATION: f64 = 0.3;
/// How much more a season must correlate at its period than at half of it.
const MIN_SEASON_CONTRAST: f64 = 0.1;
/// MSTL cost grows with each period; two (e.g. daily and weekly) cover load signals.
const MAX_PERIODS: usize = 2;
/// Fewest points the detector is run on; Welch's method needs several segments.
const MIN_POINTS: usize = 32;

/// Seasonal periods of `y` in steps, strongest first, each seen at least three times in `y`.
///
/// The periodogram's frequency grid is coarse (a daily pattern at 5-minute steps falls between the
/// 256- and 341-step bins), so each peak is refined to the lag with the highest autocorrelation between
/// its neighbouring bins. Harmonics of a longer kept period are dropped, since MSTL's longer component
/// already carries them.
pub fn detect_periods(y: &[f64]) -> Vec<usize> {
    if y.len() < MIN_POINTS || y.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    // A trend puts most of the spectrum's power in its longest bin and raises the autocorrelation at
    // every lag, hiding the season; take the least-squares line out first.
    let detrended = detrend(y);
    let y = detrended.as_slice();
    let centered = winsorized(y);
    let energy: f64 = centered.iter().map(|v| v * v).sum();
    if energy <= 0.0 || !energy.is_finite() {
        return Vec::new();
    }
    let longest = y.len() / 3;

    let mut found: Vec<(usize, f64)> = Vec::new();
    for (p, lo, hi) in peaks(y, longest.min(MAX_DIRECT_PERIOD)) {
        found.extend(refine(&centered, energy, p, lo, hi, longest));
    }
    if longest > MAX_DIRECT_PERIOD {
        let factor = longest.div_ceil(MAX_DIRECT_PERIOD);
        let coarse: Vec<f64> = y
            .chunks_exact(factor)
            .map(|c| c.iter().sum::<f64>() / factor as f64)
            .collect();
        for (p, lo, hi) in peaks(&coarse, coarse.len() / 3) {
            if p * factor > MAX_DIRECT_PERIOD {
                let (lo, hi) = (lo * factor, hi * factor);
                found.extend(refine(&centered, energy, p * factor, lo, hi, longest));
            }
        }
    }

    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept: Vec<usize> = Vec::new();
    for (p, _) in found {
        let harmonic_or_same = kept
            .iter()
            .any(|&k| close(k, p) || near_multiple(k, p) || near_multiple(p, k));
        if !harmonic_or_same && kept.len() < MAX_PERIODS {
            kept.push(p);
        }
    }
    kept
}

/// `y` minus its least-squares line.
fn detrend(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let t_mean = (n - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, v) in y.iter().enumerate() {
        let dt = t as f64 - t_mean;
        cov += dt * (v - y_mean);
        var += dt * dt;
    }
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    y.iter()
        .enumerate()
        .map(|(t, v)| v - y_mean - slope * (t as f64 - t_mean))
        .collect()
}

/// `y` minus its median, clipped to 3 median absolute deviations: one burst must not decide which lag
/// looks most seasonal.
fn winsorized(y: &[f64]) -> Vec<f64> {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut sorted = y.to_vec();
    let mid = median(&mut sorted);
    let mut deviations: Vec<f64> = y.iter().map(|v| (v - mid).abs()).collect();
    let mad = median(&mut deviations);
    let limit = if mad > 0.0 { 3.0 * mad } else { f64::INFINITY };
    let centered: Vec<f64> = y.iter().map(|v| (v - mid).clamp(-limit, limit)).collect();
    let mean = centered.iter().sum::<f64>() / centered.len() as f64;
    centered.iter().map(|v| v - mean).collect()
}

/// Periodogram peaks of `y` as (period, shorter neighbour bin, longer neighbour bin).
fn peaks(y: &[f64], max_period: usize) -> Vec<(usize, usize, usize)> {
    if y.len() < MIN_POINTS || max_period <= MIN_PERIOD as usize {
        return Vec::new();
    }
    let max_period = u32::try_from(max_period).unwrap_or(u32::MAX);
    let detector = PeriodogramDetector::builder()
        .min_period(MIN_PERIOD)
        .max_period(max_period)
        .build();
    detector
        .periodogram(y)
        .peaks(PEAK_THRESHOLD)
        .filter(|peak| peak.power > 0.0)
        .map(|peak| {
            let p = peak.period as usize;
            // A bin at either end of the grid has no neighbour there (0): look an octave around it.
            let shorter = match peak.next_period {
                0 => p / 2,
                n => n as usize,
            };
            let longer = match peak.prev_period {
                0 => p * 2,
                n => n as usize,
            };
            (p, shorter.min(p), longer.max(p))
        })
        .collect()
}

/// The lag in `lo..=hi` (capped at `longest`) with the highest autocorrelation, if strong enough.
fn refine(
    centered: &[f64],
    energy: f64,
    period: usize,
    lo: usize,
    hi: usize,
    longest: usize,
) -> Option<(usize, f64)> {
    let lo = lo.max(MIN_PERIOD as usize);
    let hi = hi.min(longest);
    // Each lag costs a pass over the series, so scan a wide window coarsely, then every lag near the best.
    let stride = ((hi.saturating_sub(lo)) / 64).max(1);
    let best_in = |from: usize, to: usize, step: usize| {
        let mut best: Option<(usize, f64)> = None;
        for lag in (from..=to).step_by(step) {
            let r = autocorrelation(centered, energy, lag);
            if best.is_none_or(|(_, b)| r > b) {
                best = Some((lag, r));
            }
        }
        best
    };
    let best = best_in(lo, hi, stride).and_then(|(coarse, _)| {
        best_in(
            coarse.saturating_sub(stride).max(lo),
            (coarse + stride).min(hi),
            1,
        )
    });
    let (lag, r) = best.unwrap_or((period, autocorrelation(centered, energy, period)));
    // A trend or slow drift also correlates at long lags, but then more so at half the lag; a season
    // correlates more one full cycle on than half a cycle on.
    let half = autocorrelation(centered, energy, lag / 2);
    (r >= MIN_AUTOCORRELATION && r - half >= MIN_SEASON_CONTRAST && lag <= longest)
        .then_some((lag, r))
}

fn autocorrelation(centered: &[f64], energy: f64, lag: usize) -> f64 {
    if lag >= centered.len() {
        return 0.0;
    }
    let sum: f64 = centered
        .iter()
        .zip(&centered[lag..])
        .map(|(a, b)| a * b)
        .sum();
    sum / energy
}

/// Whether two periods are within 10 % of each other: neighbouring bins refined to the same season.
fn close(a: usize, b: usize) -> bool {
    a.abs_diff(b) * 10 <= a.max(b)
}

/// Whether `long` is within 3 % of a whole multiple of `short`.
fn near_multiple(long: usize, short: usize) -> bool {
    if short == 0 || long < short {
        return false;
    }
    let ratio = long as f64 / short as f64;
    (ratio - ratio.round()).abs() * short as f64 <= 0.03 * long as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, period: f64) -> Vec<f64> {
        (0..n)
            .map(|t| 10.0 + (std::f64::consts::TAU * t as f64 / period).sin())
            .collect()
    }

    #[test]
    fn finds_a_period_between_periodogram_bins() {
        assert_eq!(detect_periods(&wave(2016, 288.0)), vec![288]);
    }

    #[test]
    fn finds_a_short_period() {
        assert_eq!(detect_periods(&wave(400, 24.0)), vec![24]);
    }

    #[test]
    fn finds_no_period_in_a_ramp_or_a_short_series() {
        let ramp: Vec<f64> = (0..500).map(|t| t as f64).collect();
        assert!(
            detect_periods(&ramp).len() <= 1,
            "a ramp has no clear season"
        );
        assert!(detect_periods(&wave(20, 4.0)).is_empty());
    }
}
