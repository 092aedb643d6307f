//! Load traces from CSV: per-step rate series, one-request-a-line logs and Azure Functions per-minute counts.
//!
//! Accepted layouts (the header decides, see [`detect_format`]):
//! - **rate series**: `timestamp,value` (second column named `value`, `rate`, `rps`, `count` or `requests`).
//!   Values are read as requests per second; rescale with `--peak-rps` when they are counts or percentages.
//!   Rows must be sorted with a fixed step (the most frequent gap). Repair: a hole of up to [`MAX_HOLE_STEPS`]
//!   missing steps is filled by linear interpolation and counted in [`Trace::repaired`]; longer holes,
//!   duplicates, unsorted rows and off-grid timestamps are errors naming the line.
//! - **request log**: first column a timestamp (header name containing `time`, e.g. the Azure LLM inference
//!   traces `TIMESTAMP,ContextTokens,GeneratedTokens`), any further columns ignored. Requests are counted
//!   per [`TraceOptions::bucket`]; order does not matter, so unsorted logs are accepted as they are.
//! - **Azure Functions 2019** invocation counts: `HashOwner,HashApp,HashFunction,Trigger,1,..,1440`, one row a
//!   function and one column a minute of the day; rows are summed into one per-minute series starting at
//!   the Unix epoch (the data set publishes no dates).
//!
//! Timestamps: RFC 3339 (`2024-05-01T12:00:00Z`, `+02:00`), `YYYY-MM-DD HH:MM:SS[.fraction]` (taken as UTC),
//! or Unix seconds (fraction allowed; 13-digit integers are taken as milliseconds).

use std::time::Duration;

use serde::Serialize;

use super::error::SimError;
use crate::time::Timestamp;

/// Largest trace text accepted.
pub const MAX_TRACE_BYTES: usize = 256 << 20;
/// Most steps a trace may expand to (about 23 days at one second, 3.8 years at one minute).
pub const MAX_TRACE_STEPS: usize = 2_000_000;
/// Longest hole in a rate series that is repaired by interpolation rather than refused.
pub const MAX_HOLE_STEPS: usize = 12;
/// Most columns a header may have before the file is taken as something else.
const MAX_COLUMNS: usize = 2000;
/// Shortest step a rate series may have.
const MIN_STEP_MS: i64 = 1000;

/// How the trace file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    RateSeries,
    RequestLog,
    AzureFunctions,
}

/// Parsing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceOptions {
    /// Width of the buckets a request log is counted in.
    pub bucket: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            bucket: Duration::from_secs(10),
        }
    }
}

/// A load trace: a request rate (requests per second) held constant over each step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub format: TraceFormat,
    pub start: Timestamp,
    pub step: Duration,
    pub rps: Vec<f64>,
    /// Steps filled in by interpolation.
    pub repaired: usize,
}

impl Trace {
    /// Builds a trace from rates, checking what the simulator relies on.
    pub fn new(start: Timestamp, step: Duration, rps: Vec<f64>) -> Result<Self, SimError> {
        if step.as_millis() < MIN_STEP_MS as u128 {
            return Err(SimError::trace(
                0,
                format!("step {step:?} is below one second; aggregate the trace to 1 s or more"),
            ));
        }
        if rps.is_empty() {
            return Err(SimError::trace(0, "the trace has no data rows"));
        }
        if rps.len() > MAX_TRACE_STEPS {
            return Err(SimError::trace(
                0,
                format!(
                    "{} steps, at most {MAX_TRACE_STEPS} are accepted; use a coarser step",
                    rps.len()
                ),
            ));
        }
        if let Some((i, v)) = rps
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite() || **v < 0.0)
        {
            return Err(SimError::trace(
                0,
                format!("step {i} has rate {v}; rates must be finite and >= 0"),
            ));
        }
        Ok(Self {
            format: TraceFormat::RateSeries,
            start,
            step,
            rps,
            repaired: 0,
        })
    }

    /// The trace's length.
    pub fn duration(&self) -> Duration {
        self.step
            .saturating_mul(u32::try_from(self.rps.len()).unwrap_or(u32::MAX))
    }

    /// The highest rate.
    pub fn peak(&self) -> f64 {
        self.rps.iter().copied().fold(0.0, f64::max)
    }

    /// The trace as `timestamp,value` CSV with RFC 3339 timestamps, the layout [`parse_trace`] reads back.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("timestamp,value\n");
        let step = i64::try_from(self.step.as_millis()).unwrap_or(i64::MAX);
        for (i, v) in self.rps.iter().enumerate() {
            let t = self
                .start
                .millis()
                .saturating_add(step.saturating_mul(i as i64));
            out.push_str(&format_rfc3339(t));
            out.push_str(&format!(",{v:.3}\n"));
        }
        out
    }

    /// Multiplies every rate so that the peak becomes `peak_rps`; an all-zero trace is refused.
    pub fn rescale_peak(&mut self, peak_rps: f64) -> Result<(), SimError> {
        if !peak_rps.is_finite() || peak_rps <= 0.0 {
            return Err(SimError::config(
                "peak-rps",
                format!("must be a finite number > 0, got {peak_rps}"),
            ));
        }
        let peak = self.peak();
        if peak <= 0.0 {
            return Err(SimError::trace(
                0,
                "every value is zero, so the trace cannot be rescaled to a peak",
            ));
        }
        let factor = peak_rps / peak;
        for v in &mut self.rps {
            *v *= factor;
        }
        Ok(())
    }
}

fn lower_columns(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect()
}

/// Decides the layout from the header line.
pub fn detect_format(header: &str) -> Result<TraceFormat, SimError> {
    let header = header.trim_start_matches('\u{feff}').trim();
    let cols = lower_columns(header);
    if cols.len() > MAX_COLUMNS {
        return Err(SimError::trace(
            1,
            format!("header has {} columns, at most {MAX_COLUMNS}", cols.len()),
        ));
    }
    let Some(first) = cols.first().filter(|c| !c.is_empty()) else {
        return Err(SimError::trace(1, "the header line is empty"));
    };
    if parse_timestamp(first).is_ok() || first.parse::<f64>().is_ok() {
        return Err(SimError::trace(
            1,
            "the first line holds data, not column names; add a header such as `timestamp,value`",
        ));
    }
    if cols.len() >= 5 && cols[..4] == ["hashowner", "hashapp", "hashfunction", "trigger"] {
        return Ok(TraceFormat::AzureFunctions);
    }
    let is_time = first.contains("time") || first == "ts" || first.contains("date");
    let rate_names = ["value", "rate", "rps", "count", "requests"];
    if is_time && cols.len() == 2 && rate_names.contains(&cols[1].as_str()) {
        return Ok(TraceFormat::RateSeries);
    }
    if is_time {
        return Ok(TraceFormat::RequestLog);
    }
    Err(SimError::trace(
        1,
        format!(
            "unrecognised header {:?}; use `timestamp,value` (a rate per step), a request log whose first \
             column is a timestamp (e.g. `TIMESTAMP,ContextTokens,GeneratedTokens`), or the Azure Functions \
             `HashOwner,HashApp,HashFunction,Trigger,1,..,1440` layout",
            header.chars().take(120).collect::<String>()
        ),
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Formats Unix milliseconds as RFC 3339 UTC, with milliseconds only when there are some.
pub(crate) fn format_rfc3339(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let frac = millis.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:03}Z")
    }
}

fn digits(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse::<i64>().map_err(|e| format!("{what} {s:?}: {e}"))
}

/// Parses one timestamp to Unix milliseconds (see the module documentation for the forms accepted).
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let s = text.trim().trim_matches('"');
    if s.is_empty() {
        return Err("empty timestamp".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a Unix time in seconds"))?;
        let int_digits = s.split('.').next().map_or(0, str::len);
        let ms = if int_digits == 13 { v } else { v * 1000.0 };
        if !ms.is_finite() || ms > 1e16 {
            return Err(format!("{s:?} is out of range for a Unix time"));
        }
        return Ok(ms.round() as i64);
    }
    let bad =
        || format!("{s:?} is not a timestamp; use RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix seconds");
    if s.len() < 19 || !s.is_char_boundary(19) {
        return Err(bad());
    }
    let (date_time, rest) = s.split_at(19);
    let b = date_time.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let year = digits(&date_time[0..4], "year")?;
    let month = digits(&date_time[5..7], "month")?;
    let day = digits(&date_time[8..10], "day")?;
    let hour = digits(&date_time[11..13], "hour")?;
    let minute = digits(&date_time[14..16], "minute")?;
    let second = digits(&date_time[17..19], "second")?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("{s:?} has a field out of range"));
    }
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let mut frac_ms = 0.0;
    if !fraction.is_empty() {
        let f: f64 = format!("0.{fraction}").parse().map_err(|_| bad())?;
        frac_ms = f * 1000.0;
    }
    let offset_min = match zone {
        "" | "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
            let h = digits(&z[1..3], "zone hours")?;
            let m = digits(&z[4..6], "zone minutes")?;
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(secs * 1000 + frac_ms.round() as i64)
}

/// Reads a trace from CSV text.
pub fn parse_trace(text: &str, options: &TraceOptions) -> Result<Trace, SimError> {
    if text.len() > MAX_TRACE_BYTES {
        return Err(SimError::trace(
            0,
            format!(
                "{} bytes, at most {MAX_TRACE_BYTES}; cut or aggregate the trace",
                text.len()
            ),
        ));
    }
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(SimError::trace(
            0,
            "the trace is empty; it needs a header and data rows",
        ));
    };
    let format = detect_format(header)?;
    let rows = lines.map(|(i, l)| (i + 1, l));
    let mut trace = match format {
        TraceFormat::RateSeries => parse_rate_series(rows)?,
        TraceFormat::RequestLog => parse_request_log(rows, options)?,
        TraceFormat::AzureFunctions => parse_azure_functions(rows, lower_columns(header).len())?,
    };
    trace.format = format;
    Ok(trace)
}

fn parse_value(line: usize, text: &str) -> Result<f64, SimError> {
    let v: f64 = text
        .trim()
        .trim_matches('"')
        .parse()
        .map_err(|_| SimError::trace(line, format!("value {text:?} is not a number")))?;
    if !v.is_finite() || v < 0.0 {
        return Err(SimError::trace(
            line,
            format!("value {v} is not allowed; rates must be finite and >= 0"),
        ));
    }
    Ok(v)
}

fn parse_rate_series<'a>(rows: impl Iterator<Item = (usize, &'a str)>) -> Result<Trace, SimError> {
    let mut points: Vec<(usize, i64, f64)> = Vec::new();
    for (line, row) in rows {
        let mut cols = row.split(',');
        let (Some(t), Some(v), None) = (cols.next(), cols.next(), cols.next()) else {
            return Err(SimError::trace(
                line,
                "expected two columns: timestamp,value",
            ));
        };
        let t = parse_timestamp(t).map_err(|e| SimError::trace(line, e))?;
        let v = parse_value(line, v)?;
        if let Some(&(prev_line, prev, _)) = points.last()
            && t <= prev
        {
            let what = if t == prev {
                "repeats"
            } else {
                "is earlier than"
            };
            return Err(SimError::trace(
                line,
                format!(
                    "timestamp {what} the one on line {prev_line}; rows must be sorted by time with one row \
                     per step (sort the file, e.g. `sort -t, -k1,1`, and drop duplicates)"
                ),
            ));
        }
        points.push((line, t, v));
        if points.len() > MAX_TRACE_STEPS {
            return Err(SimError::trace(
                line,
                format!("more than {MAX_TRACE_STEPS} rows"),
            ));
        }
    }
    let (first_t, first_v) = match points.first() {
        Some(&(_, t, v)) => (t, v),
        None => {
            return Err(SimError::trace(
                0,
                "the trace has a header but no data rows",
            ));
        }
    };
    if points.len() < 2 {
        return Err(SimError::trace(
            0,
            "a rate series needs at least two rows to tell its step",
        ));
    }
    let mut gaps: Vec<i64> = points.windows(2).map(|w| w[1].1 - w[0].1).collect();
    gaps.sort_unstable();
    // The most frequent gap (the smallest on a tie): holes and a few stray rows do not move it.
    let mut step = gaps[0];
    let (mut best, mut run) = (0, 0);
    for (i, g) in gaps.iter().enumerate() {
        run = if i > 0 && gaps[i - 1] == *g {
            run + 1
        } else {
            1
        };
        if run > best {
            best = run;
            step = *g;
        }
    }
    if step < MIN_STEP_MS {
        return Err(SimError::trace(
            0,
            format!("the step is {step} ms; aggregate the series to one second or more"),
        ));
    }
    let mut rps = vec![first_v];
    let mut repaired = 0;
    for &(line, t, v) in &points[1..] {
        let offset = t - first_t;
        let slot = (offset + step / 2) / step;
        if (offset - slot * step).abs() > step / 4 {
            return Err(SimError::trace(
                line,
                format!(
                    "timestamp is off the {step} ms step grid started by the first row; resample the series to a fixed step"
                ),
            ));
        }
        let slot = usize::try_from(slot).unwrap_or(usize::MAX);
        if slot > MAX_TRACE_STEPS {
            return Err(SimError::trace(
                line,
                format!("the series spans more than {MAX_TRACE_STEPS} steps"),
            ));
        }
        let missing = slot.saturating_sub(rps.len());
        if slot < rps.len() {
            return Err(SimError::trace(
                line,
                format!("two rows fall in the same {step} ms step"),
            ));
        }
        if missing > MAX_HOLE_STEPS {
            return Err(SimError::trace(
                line,
                format!(
                    "{missing} steps are missing before this row, more than the {MAX_HOLE_STEPS} that are \
                     interpolated; fill the hole or split the trace"
                ),
            ));
        }
        let prev = rps.last().copied().unwrap_or(v);
        for k in 1..=missing {
            rps.push(prev + (v - prev) * k as f64 / (missing + 1) as f64);
        }
        repaired += missing;
        rps.push(v);
    }
    let mut trace = Trace::new(
        Timestamp::from_millis(first_t),
        Duration::from_millis(step as u64),
        rps,
    )?;
    trace.repaired = repaired;
    Ok(trace)
}

fn parse_request_log<'a>(
    rows: impl Iterator<Item = (usize, &'a str)>,
    options: &TraceOptions,
) -> Result<Trace, SimError> {
    let bucket = i64::try_from(options.bucket.as_millis()).unwrap_or(i64::MAX);
    if bucket < MIN_STEP_MS {
        return Err(SimError::config("bucket", "must be at least one second"));
    }
    let mut stamps = Vec::new();
    for (line, row) in rows {
        let first = row.split(',').next().unwrap_or("");
        stamps.push(parse_timestamp(first).map_err(|e| SimError::trace(line, e))?);
    }
    let (Some(&min), Some(&max)) = (stamps.iter().min(), stamps.iter().max()) else {
        return Err(SimError::trace(
            0,
            "the request log has a header but no requests",
        ));
    };
    let start = min - min.rem_euclid(bucket);
    let steps = usize::try_from((max - start) / bucket + 1).unwrap_or(usize::MAX);
    if steps > MAX_TRACE_STEPS {
        return Err(SimError::trace(
            0,
            format!("the log spans {steps} buckets, at most {MAX_TRACE_STEPS}; use a wider bucket"),
        ));
    }
    let mut counts = vec![0.0; steps];
    for t in stamps {
        let i = usize::try_from((t - start) / bucket).unwrap_or(0);
        if let Some(c) = counts.get_mut(i) {
            *c += 1.0;
        }
    }
    let per_second = 1000.0 / bucket as f64;
    for c in &mut counts {
        *c *= per_second;
    }
    Trace::new(Timestamp::from_millis(start), options.bucket, counts)
}

fn parse_azure_functions<'a>(
    rows: impl Iterator<Item = (usize, &'a str)>,
    columns: usize,
) -> Result<Trace, SimError> {
    let minutes = columns - 4;
    let mut totals = vec![0.0; minutes];
    let mut any = false;
    for (line, row) in rows {
        let cols: Vec<&str> = row.split(',').collect();
        if cols.len() != columns {
            return Err(SimError::trace(
                line,
                format!("{} columns where the header has {columns}", cols.len()),
            ));
        }
        for (total, v) in totals.iter_mut().zip(&cols[4..]) {
            *total += parse_value(line, v)?;
        }
        any = true;
    }
    if !any {
        return Err(SimError::trace(
            0,
            "the Azure Functions file has a header but no rows",
        ));
    }
    for t in &mut totals {
        *t /= 60.0;
    }
    Trace::new(Timestamp::from_millis(0), Duration::from_secs(60), totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_table() {
        let cases: &[(&str, i64, &str)] = &[
            ("1970-01-01T00:00:00Z", 0, "epoch in RFC 3339"),
            ("2015-02-26 21:42:53", 1_424_986_973_000, "NAB layout, UTC"),
            (
                "2023-11-16 18:17:03.9799600",
                1_700_158_623_980,
                "Azure LLM 7-digit fraction",
            ),
            (
                "2024-01-01T02:00:00+02:00",
                1_704_067_200_000,
                "offset subtracted",
            ),
            ("1700000000", 1_700_000_000_000, "unix seconds"),
            ("1700000000.5", 1_700_000_000_500, "fractional unix seconds"),
            (
                "1700000000123",
                1_700_000_000_123,
                "13 digits are milliseconds",
            ),
            ("2000-02-29 00:00:00", 951_782_400_000, "leap day"),
        ];
        for (text, want, why) in cases {
            assert_eq!(parse_timestamp(text), Ok(*want), "{why}: {text}");
        }
        for t in [0, 951_782_400_000, 1_700_158_623_980, -86_400_000] {
            assert_eq!(
                parse_timestamp(&format_rfc3339(t)),
                Ok(t),
                "format and parse round-trip {t}"
            );
        }
        for bad in [
            "",
            "yesterday",
            "2024-13-01 00:00:00",
            "2024-01-01 00:00",
            "2024-01-01T00:00:00+0200",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
