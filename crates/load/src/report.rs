//! Counting outcomes while a run goes (bounded memory) and the report it ends with, as JSON or a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use rmcp::model::CallToolResult;
use rmcp::service::ServiceError;
use serde::Serialize;

use crate::plan::Arrivals;

/// `error.type` of a tool result with `isError: true`, as the MCP semantic conventions name it.
pub const TOOL_ERROR: &str = "tool_error";
/// No reply within the plan's timeout.
pub const TIMEOUT: &str = "timeout";
/// The request could not be sent or its reply not read (connection refused, reset, bad response).
pub const TRANSPORT: &str = "transport";
/// The call was due while `max_in_flight` calls were outstanding, so the client refused it.
pub const OVERLOAD_CLIENT: &str = "overload_client";
/// The call's session could not be opened (initialize or tools/list failed), so it was not sent.
pub const SESSION: &str = "session";

/// Highest latency the histograms keep apart, in microseconds (one hour); longer ones count as one hour.
const HISTOGRAM_MAX_MICROS: u64 = 3_600_000_000;

/// The error type of one call's outcome, or `None` when it succeeded.
pub(crate) fn error_type(result: &Result<CallToolResult, ServiceError>) -> Option<&'static str> {
    match result {
        Ok(reply) if reply.is_error == Some(true) => Some(TOOL_ERROR),
        Ok(_) => None,
        Err(ServiceError::McpError(e)) => Some(mcpulse_wire::error_type(i64::from(e.code.0))),
        Err(ServiceError::Timeout { .. }) => Some(TIMEOUT),
        Err(_) => Some(TRANSPORT),
    }
}

/// Everything counted during a run; one per run, behind a lock held only to add one outcome.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// From the call's scheduled time to its outcome, in microseconds, for every call that reached the
    /// server and either got an answer or timed out.
    latency: Histogram<u64>,
    /// From the scheduled time to the moment the call was handed to its session, in microseconds.
    lag: Histogram<u64>,
    pub(crate) due: u64,
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) sessions_opened: u64,
    pub(crate) sessions_failed: u64,
    pub(crate) sessions_reopened: u64,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, 3)
                .expect("constant histogram bounds are valid")
        };
        Self {
            latency: histogram(),
            lag: histogram(),
            due: 0,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            sessions_opened: 0,
            sessions_failed: 0,
            sessions_reopened: 0,
        }
    }

    pub(crate) fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub(crate) fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn sent(&mut self, lag: Duration) {
        self.sent += 1;
        self.lag.saturating_record(micros(lag));
    }

    /// One sent call's outcome; `latency` is measured from its scheduled time.
    pub(crate) fn outcome(&mut self, error: Option<&'static str>, latency: Duration) {
        match error {
            None => self.ok += 1,
            Some(kind) => self.error(kind),
        }
        if error != Some(TRANSPORT) {
            self.latency.saturating_record(micros(latency));
        }
    }

    pub(crate) fn report(&self, context: ReportContext) -> LoadReport {
        let seconds = context.duration.as_secs_f64();
        let per_second = |n: u64| n as f64 / seconds;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let at = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        LoadReport {
            url: context.url,
            tool: context.tool,
            schedule: context.schedule,
            arrivals: context.arrivals,
            duration_s: seconds,
            elapsed_s: context.elapsed.as_secs_f64(),
            requests: self.due,
            sent: self.sent,
            ok: self.ok,
            errors: ErrorSummary {
                total: self.errors_total(),
                by_type: self
                    .errors
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect(),
            },
            offered_rps: per_second(self.due),
            sent_rps: per_second(self.sent),
            throughput_rps: per_second(self.ok),
            latency_ms: LatencySummary {
                count: self.latency.len(),
                mean: if self.latency.is_empty() {
                    0.0
                } else {
                    self.latency.mean() / 1000.0
                },
                p50: at(&self.latency, 0.50),
                p90: at(&self.latency, 0.90),
                p95: at(&self.latency, 0.95),
                p99: at(&self.latency, 0.99),
                max: ms(self.latency.max()),
            },
            schedule_lag_ms: LagSummary {
                p50: at(&self.lag, 0.50),
                p99: at(&self.lag, 0.99),
                max: ms(self.lag.max()),
            },
            sessions: SessionSummary {
                requested: context.sessions,
                opened: self.sessions_opened,
                failed: self.sessions_failed,
                reopened: self.sessions_reopened,
            },
            peak_in_flight: context.peak_in_flight,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the report says about the run besides the counts.
#[derive(Debug)]
pub(crate) struct ReportContext {
    pub(crate) url: String,
    pub(crate) tool: String,
    pub(crate) schedule: String,
    pub(crate) arrivals: Arrivals,
    pub(crate) duration: Duration,
    pub(crate) elapsed: Duration,
    pub(crate) sessions: usize,
    pub(crate) peak_in_flight: usize,
}

/// The outcome of a load run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub tool: String,
    /// The rate shape, e.g. `ramp 10 -> 200 calls/s`.
    pub schedule: String,
    pub arrivals: Arrivals,
    /// Seconds over which calls were scheduled.
    pub duration_s: f64,
    /// Seconds the run took, including waiting for the last replies.
    pub elapsed_s: f64,
    /// Calls the schedule made due, whether sent or refused.
    pub requests: u64,
    /// Calls actually sent (due calls minus `overload_client` and `session` refusals).
    pub sent: u64,
    /// Calls that returned a result without `isError`.
    pub ok: u64,
    pub errors: ErrorSummary,
    /// `requests` per second of `duration_s`: the rate asked for.
    pub offered_rps: f64,
    /// `sent` per second of `duration_s`: the rate achieved.
    pub sent_rps: f64,
    /// `ok` per second of `duration_s`.
    pub throughput_rps: f64,
    /// From each call's scheduled send time (not the time it was actually sent, which would hide queueing
    /// in the client) to its reply or timeout. Transport failures and calls never sent are left out.
    pub latency_ms: LatencySummary,
    /// How late calls were handed to their session compared with the schedule; large values mean this
    /// client could not keep up and the offered rate was not really offered.
    pub schedule_lag_ms: LagSummary,
    pub sessions: SessionSummary,
    /// Most calls in flight at once.
    pub peak_in_flight: usize,
}

/// Failed calls, by `error.type`: JSON-RPC error names, `tool_error`, `timeout`, `transport`,
/// `overload_client`, `session`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSummary {
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Calls measured.
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagSummary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub requested: usize,
    /// Sessions opened, first attempts and reopenings.
    pub opened: u64,
    /// Attempts to open a session that failed.
    pub failed: u64,
    /// Sessions opened again after their transport closed.
    pub reopened: u64,
}

impl LoadReport {
    /// The human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} over {:.1} s ({} arrivals), tool `{}` at {}",
            self.schedule,
            self.duration_s,
            match self.arrivals {
                Arrivals::Uniform => "uniform",
                Arrivals::Poisson => "Poisson",
            },
            self.tool,
            self.url
        );
        let _ = writeln!(out, "{:<18} {:>10} {:>12}", "calls", "count", "per second");
        for (name, count, rate) in [
            ("due", self.requests, self.offered_rps),
            ("sent", self.sent, self.sent_rps),
            ("ok", self.ok, self.throughput_rps),
        ] {
            let _ = writeln!(out, "{name:<18} {count:>10} {rate:>12.1}");
        }
        let _ = writeln!(out, "{:<18} {:>10}", "errors", self.errors.total);
        for (kind, count) in &self.errors.by_type {
            let _ = writeln!(out, "  {kind:<16} {count:>10}");
        }
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "latency ms (from scheduled send, {} calls): p50 {:.2}  p90 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            l.count, l.p50, l.p90, l.p95, l.p99, l.max
        );
        let _ = writeln!(
            out,
            "schedule lag ms: p50 {:.2}  p99 {:.2}  max {:.2}; peak in flight {}",
            self.schedule_lag_ms.p50,
            self.schedule_lag_ms.p99,
            self.schedule_lag_ms.max,
            self.peak_in_flight
        );
        let s = &self.sessions;
        let _ = writeln!(
            out,
            "sessions: {} requested, {} opened, {} failed to open, {} reopened",
            s.requested, s.opened, s.failed, s.reopened
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use rmcp::ErrorData;
    use rmcp::model::{ContentBlock, ErrorCode};

    use super::*;

    #[test]
    fn outcomes_are_classified() {
        let json_rpc = |code| {
            Err(ServiceError::McpError(ErrorData::new(
                ErrorCode(code),
                "x",
                None,
            )))
        };
        // (outcome, error type, reason)
        let cases: Vec<(Result<CallToolResult, ServiceError>, Option<&str>, &str)> = vec![
            (
                Ok(CallToolResult::success(vec![ContentBlock::text("hi")])),
                None,
                "a plain result",
            ),
            (
                Ok(CallToolResult::error(vec![ContentBlock::text("no")])),
                Some(TOOL_ERROR),
                "isError result",
            ),
            (
                json_rpc(-32602),
                Some("invalid_params"),
                "JSON-RPC error by name",
            ),
            (
                json_rpc(-32000),
                Some("server_error"),
                "implementation-defined server error",
            ),
            (
                Err(ServiceError::Timeout {
                    timeout: Duration::from_secs(1),
                }),
                Some(TIMEOUT),
                "rmcp's own timeout",
            ),
            (
                Err(ServiceError::TransportClosed),
                Some(TRANSPORT),
                "connection gone",
            ),
            (
                Err(ServiceError::UnexpectedResponse),
                Some(TRANSPORT),
                "a reply of the wrong kind",
            ),
        ];
        for (outcome, want, reason) in cases {
            assert_eq!(error_type(&outcome), want, "{reason}");
        }
    }

    #[test]
    fn report_counts_and_percentiles() {
        let mut recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.due += 1;
            recorder.sent(Duration::from_micros(10));
            let error = (ms % 10 == 0).then_some(TOOL_ERROR);
            recorder.outcome(error, Duration::from_millis(ms));
        }
        recorder.due += 1;
        recorder.error(OVERLOAD_CLIENT);
        recorder.outcome(Some(TRANSPORT), Duration::from_secs(50));
        let report = recorder.report(ReportContext {
            url: "http://x/mcp".into(),
            tool: "work".into(),
            schedule: "constant 10 calls/s".into(),
            arrivals: Arrivals::Uniform,
            duration: Duration::from_secs(10),
            elapsed: Duration::from_secs(11),
            sessions: 2,
            peak_in_flight: 3,
        });
        assert_eq!((report.requests, report.sent, report.ok), (101, 100, 90));
        assert_eq!(report.errors.total, 12);
        assert_eq!(report.errors.by_type.get(TOOL_ERROR), Some(&10));
        assert_eq!(report.errors.by_type.get(OVERLOAD_CLIENT), Some(&1));
        assert_eq!(
            report.latency_ms.count, 100,
            "transport failures carry no latency"
        );
        assert!(
            (report.latency_ms.p50 - 50.0).abs() < 0.1,
            "{:?}",
            report.latency_ms
        );
        assert!(
            (report.latency_ms.p99 - 99.0).abs() < 0.1,
            "{:?}",
            report.latency_ms
        );
        assert!(
            (report.latency_ms.max - 100.0).abs() < 0.1,
            "{:?}",
            report.latency_ms
        );
        assert!((report.offered_rps - 10.1).abs() < 1e-9);
        assert!((report.throughput_rps - 9.0).abs() < 1e-9);
        let table = report.table();
        for needle in ["tool_error", "overload_client", "p99 99.", "2 requested"] {
            assert!(table.contains(needle), "{needle} missing from\n{table}");
        }
    }
}
