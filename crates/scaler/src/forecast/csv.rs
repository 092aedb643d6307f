//! `timestamp,value` CSV text to a regularly spaced series, with the step inferred and gaps marked NaN.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, SecondsFormat};

use crate::error::ScalerError;
use crate::time::Timestamp;

/// Most points a parsed series may hold, gaps included; about 10 years of 5-minute steps.
pub const MAX_SERIES_POINTS: usize = 1_000_000;

/// A regularly spaced series: `values[i]` was observed at `start + i * step_millis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub start: Timestamp,
    /// The step, inferred as the most common gap between consecutive rows.
    pub step_millis: i64,
    /// NaN where a step had no row, or the row's value was empty or `NaN`.
    pub values: Vec<f64>,
    /// How many values are NaN, so callers can report the gaps they fill.
    pub missing: usize,
}

impl Series {
    /// Timestamp of step `i`, which may lie past the last value (forecast steps continue the grid).
    pub fn timestamp_at(&self, i: usize) -> Timestamp {
        let offset = i64::try_from(i)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.step_millis);
        Timestamp::from_millis(self.start.millis().saturating_add(offset))
    }
}

/// RFC 3339 in UTC, with fractional seconds only when the instant has them.
pub fn format_rfc3339(t: Timestamp) -> Result<String, ScalerError> {
    DateTime::from_timestamp_millis(t.millis())
        .map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .ok_or_else(|| {
            ScalerError::observation(
                "timestamp",
                format!(
                    "{} ms since the epoch is outside the years chrono can print",
                    t.millis()
                ),
            )
        })
}

/// Parses CSV text whose first line is a header (e.g. `timestamp,value`) and whose rows are
/// `timestamp,value`. Timestamps are RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC) or unix seconds.
///
/// Rows must be in time order. The step is the most common gap between rows; a gap of several steps
/// inserts NaN for the missing ones, and a gap off the grid by more than a tenth of a step is an error.
/// Values must be finite and not negative (a load signal); an empty value or `NaN` marks a missing step.
/// Every error names the line (1-based) and says how to fix it.
pub fn parse_series_csv(text: &str) -> Result<Series, ScalerError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(line_error(
            1,
            "the file is empty; expected a header `timestamp,value` and rows",
        ));
    };
    let header_fields = fields(header);
    if header_fields.len() != 2 || header_fields[1].parse::<f64>().is_ok() {
        return Err(line_error(
            header_line,
            format!("expected a header with two columns such as `timestamp,value`, got `{header}`"),
        ));
    }

    let mut rows: Vec<(usize, i64, f64)> = Vec::new();
    for (line, row) in lines {
        if rows.len() >= MAX_SERIES_POINTS {
            return Err(line_error(
                line,
                format!("more than {MAX_SERIES_POINTS} rows; pass a shorter window of history"),
            ));
        }
        let f = fields(row);
        if f.len() != 2 {
            return Err(line_error(
                line,
                format!(
                    "expected 2 fields `timestamp,value`, found {} in `{row}`",
                    f.len()
                ),
            ));
        }
        let t = parse_timestamp(f[0]).ok_or_else(|| {
            line_error(
                line,
                format!(
                    "timestamp `{}` is not RFC 3339 (2024-05-01T12:00:00Z), `YYYY-MM-DD HH:MM:SS` \
                     or unix seconds",
                    f[0]
                ),
            )
        })?;
        let v = parse_value(f[1]).map_err(|problem| line_error(line, problem))?;
        if let Some(&(prev_line, prev, _)) = rows.last()
            && t <= prev
        {
            return Err(line_error(
                line,
                format!(
                    "timestamp `{}` is not after the one on line {prev_line}; sort the rows by time \
                     and remove duplicates",
                    f[0]
                ),
            ));
        }
        rows.push((line, t, v));
    }
    if rows.len() < 2 {
        return Err(line_error(
            header_line,
            format!(
                "found {} data rows; at least 2 are needed to infer the step",
                rows.len()
            ),
        ));
    }

    let step = infer_step(&rows);
    let mut values = Vec::with_capacity(rows.len());
    values.push(rows[0].2);
    for pair in rows.windows(2) {
        let (_, prev, _) = pair[0];
        let (line, t, v) = pair[1];
        let gap = t.saturating_sub(prev);
        let steps = gap.saturating_add(step / 2) / step;
        if steps < 1
            || gap
                .saturating_sub(steps.saturating_mul(step))
                .unsigned_abs()
                > (step / 10).unsigned_abs()
        {
            return Err(line_error(
                line,
                format!(
                    "row is {gap} ms after the previous one, not a whole number of the {step} ms step \
                     most rows use; resample the series to a fixed step"
                ),
            ));
        }
        let missing = usize::try_from(steps - 1).unwrap_or(usize::MAX);
        if missing >= MAX_SERIES_POINTS - values.len() {
            return Err(line_error(
                line,
                format!(
                    "the gap before this row would make the series longer than {MAX_SERIES_POINTS} steps"
                ),
            ));
        }
        values.extend(std::iter::repeat_n(f64::NAN, missing));
        values.push(v);
    }
    let missing = values.iter().filter(|v| v.is_nan()).count();
    Ok(Series {
        start: Timestamp::from_millis(rows[0].1),
        step_millis: step,
        values,
        missing,
    })
}

fn line_error(line: usize, problem: impl Into<String>) -> ScalerError {
    ScalerError::observation(format!("line {line}"), problem)
}

/// Splits on commas, trimming spaces and one level of double quotes around each field.
fn fields(row: &str) -> Vec<&str> {
    row.split(',')
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or(f)
        })
        .collect()
}

/// Milliseconds since the epoch, or `None` when no accepted format matches.
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    if let Ok(secs) = s.parse::<f64>() {
        let millis = (secs * 1000.0).round();
        // Within ±1e15 ms (31 700 years) the cast is exact and cannot saturate.
        return (secs.is_finite() && millis.abs() < 1e15).then_some(millis as i64);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
        .map(|d| d.and_utc().timestamp_millis())
}

fn parse_value(s: &str) -> Result<f64, String> {
    if s.is_empty() || s.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    let v: f64 = s.parse().map_err(|_| {
        format!("value `{s}` is not a number; leave it empty to mark a missing step")
    })?;
    if !v.is_finite() {
        return Err(format!(
            "value `{s}` is not finite; leave it empty to mark a missing step"
        ));
    }
    if v < 0.0 {
        return Err(format!(
            "value `{s}` is negative, but a load signal never is"
        ));
    }
    Ok(v)
}

/// The most common gap between consecutive rows (the smallest one on a tie), which rides out a few
/// missing or jittered rows.
fn infer_step(rows: &[(usize, i64, f64)]) -> i64 {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for pair in rows.windows(2) {
        *counts
            .entry(pair[1].1.saturating_sub(pair[0].1))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or(1, |(gap, _)| gap.max(1))
}
