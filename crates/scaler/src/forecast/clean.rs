//! Input checks and gap filling, so that models only ever see a finite, non-negative, gap-free series.

use crate::error::ScalerError;

/// Above this share of missing steps the interpolated series would be mostly invented.
const MAX_MISSING_SHARE: f64 = 0.5;

/// A history with its missing steps filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct FilledHistory {
    pub values: Vec<f64>,
    /// How many NaN steps were replaced; callers should tell the user when it is not 0.
    pub filled: usize,
}

/// Replaces NaN (a missing step) by linear interpolation between its known neighbours, or by the nearest
/// known value at either end. Infinite or negative values are errors, since no load signal takes them
/// and guessing would hide a broken exporter.
pub fn fill_gaps(history: &[f64]) -> Result<FilledHistory, ScalerError> {
    for (i, v) in history.iter().enumerate() {
        check_value("history", i, *v)?;
    }
    let missing = history.iter().filter(|v| v.is_nan()).count();
    if missing > 0 && missing as f64 > MAX_MISSING_SHARE * history.len() as f64 {
        return Err(ScalerError::observation(
            "history",
            format!(
                "{missing} of {} steps are missing (NaN); at most half may be filled by interpolation",
                history.len()
            ),
        ));
    }

    let mut values = history.to_vec();
    let mut last_known: Option<usize> = None;
    for i in 0..values.len() {
        if values[i].is_nan() {
            continue;
        }
        let gap_start = last_known.map_or(0, |k| k + 1);
        let right = values[i];
        match last_known {
            Some(k) => {
                let left = values[k];
                let span = (i - k) as f64;
                for (j, slot) in values[gap_start..i].iter_mut().enumerate() {
                    let t = (j + 1) as f64 / span;
                    *slot = left + (right - left) * t;
                }
            }
            None => values[..i].fill(right),
        }
        last_known = Some(i);
    }
    if let Some(k) = last_known {
        let tail = values[k];
        values[k + 1..].fill(tail);
    }
    Ok(FilledHistory {
        values,
        filled: missing,
    })
}

/// Rejects `list[i]` when no load signal takes it (infinite or negative); NaN, a missing step, passes.
pub(super) fn check_value(list: &str, i: usize, v: f64) -> Result<(), ScalerError> {
    let field = || format!("{list}[{i}]");
    if v.is_infinite() {
        return Err(ScalerError::observation(
            field(),
            format!("{v} is not a finite value; pass NaN for a missing step"),
        ));
    }
    if v < 0.0 {
        return Err(ScalerError::observation(
            field(),
            format!(
                "{v} is negative, but a load signal (request rate, queue depth) never is; \
                 check the query that produced it"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_and_extends_at_the_ends() {
        let nan = f64::NAN;
        let got = fill_gaps(&[nan, 2.0, nan, nan, 8.0, 9.0, 10.0, nan]).unwrap();
        assert_eq!(got.values, vec![2.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0, 10.0]);
        assert_eq!(got.filled, 4);
    }

    #[test]
    fn rejects_what_interpolation_must_not_hide() {
        for (input, why) in [
            (vec![1.0, f64::INFINITY], "infinite value"),
            (vec![1.0, -0.5], "negative load"),
            (vec![f64::NAN, f64::NAN, 1.0], "mostly missing"),
            (vec![f64::NAN], "nothing known"),
        ] {
            assert!(fill_gaps(&input).is_err(), "{why}");
        }
    }
}
