//! What a load run does: the target, the rate shape over time, the tool call and the client's limits.

use std::path::Path;
use std::time::Duration;

use mcpulse_scaler::sim::{MAX_TRACE_BYTES, TraceOptions, parse_trace};
use serde_json::{Map, Value};

use crate::LoadError;

/// Highest rate a plan may ask for, in calls per second; past this one process cannot keep the schedule.
pub const MAX_RATE: f64 = 100_000.0;
/// Longest run a plan may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most concurrent MCP sessions.
pub const MAX_SESSIONS: usize = 1024;
/// Highest `--max-in-flight`: each call in flight holds a task and a connection.
pub const MAX_IN_FLIGHT: usize = 100_000;
/// Largest tool-arguments object, serialized.
pub const MAX_ARGUMENTS_BYTES: usize = 1 << 20;
/// Longest tool name accepted.
pub const MAX_TOOL_NAME: usize = 128;
/// Longest URL accepted.
pub const MAX_URL: usize = 2048;
/// Longest per-call timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The offered rate over the run, in calls per second.
#[derive(Debug, Clone, PartialEq)]
pub enum RateShape {
    /// The same rate from start to end.
    Constant { rps: f64 },
    /// A rate rising (or falling) linearly from `from` to `to` over the duration.
    Ramp { from: f64, to: f64 },
    /// Rates held over equal steps, e.g. a recorded trace: its time axis is compressed or stretched so the
    /// steps fill the duration, while the values stay calls per second.
    Steps { rps: Vec<f64> },
}

impl RateShape {
    /// Parses `FROM:TO` (calls per second at the start and at the end), e.g. `10:200`.
    pub fn parse_ramp(text: &str) -> Result<Self, LoadError> {
        let bad = |problem: String| LoadError::invalid("ramp", problem);
        let (from, to) = text
            .split_once(':')
            .ok_or_else(|| bad(format!("{text:?} is not FROM:TO; write e.g. 10:200")))?;
        let number = |part: &str| {
            part.trim().parse::<f64>().map_err(|_| {
                bad(format!(
                    "{part:?} in {text:?} is not a number of calls per second; write e.g. 10:200"
                ))
            })
        };
        Ok(Self::Ramp {
            from: number(from)?,
            to: number(to)?,
        })
    }

    /// Reads a trace in the simulator's format (`timestamp,value` with values in requests/s, or a request
    /// log), optionally rescaled so its peak is `peak_rps`.
    pub fn from_trace_file(path: &Path, peak_rps: Option<f64>) -> Result<Self, LoadError> {
        let read_error = |cause| LoadError::TraceRead {
            path: path.to_owned(),
            cause,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_TRACE_BYTES as u64 {
            return Err(LoadError::invalid(
                "trace",
                format!(
                    "{} is {size} bytes, at most {MAX_TRACE_BYTES}; aggregate or cut it",
                    path.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let trace_error = |cause| LoadError::Trace {
            path: path.to_owned(),
            cause,
        };
        let mut trace = parse_trace(&text, &TraceOptions::default()).map_err(trace_error)?;
        if let Some(peak) = peak_rps {
            trace.rescale_peak(peak).map_err(trace_error)?;
        }
        Ok(Self::Steps { rps: trace.rps })
    }

    /// One line for reports, e.g. `ramp 10 -> 200 calls/s`.
    pub fn describe(&self) -> String {
        match self {
            Self::Constant { rps } => format!("constant {rps} calls/s"),
            Self::Ramp { from, to } => format!("ramp {from} -> {to} calls/s"),
            Self::Steps { rps } => {
                let peak = rps.iter().copied().fold(0.0, f64::max);
                format!("trace of {} steps, peak {peak:.1} calls/s", rps.len())
            }
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let field = match self {
            Self::Constant { .. } => "rate",
            Self::Ramp { .. } => "ramp",
            Self::Steps { .. } => "trace",
        };
        let pair;
        let ends: &[f64] = match self {
            Self::Constant { rps } => std::slice::from_ref(rps),
            Self::Ramp { from, to } => {
                pair = [*from, *to];
                &pair
            }
            Self::Steps { rps } => rps,
        };
        if ends.is_empty() {
            return Err(LoadError::invalid(field, "the trace has no steps"));
        }
        if let Some(bad) = ends
            .iter()
            .find(|r| !r.is_finite() || **r < 0.0 || **r > MAX_RATE)
        {
            return Err(LoadError::invalid(
                field,
                format!("{bad} calls/s is out of range; use 0 to {MAX_RATE}"),
            ));
        }
        if ends.iter().all(|r| *r == 0.0) {
            return Err(LoadError::invalid(
                field,
                "the rate is 0 throughout, so no call would be sent",
            ));
        }
        Ok(())
    }
}

/// How calls are spaced within the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced at the current rate: the clearest signal for comparing runs.
    #[default]
    Uniform,
    /// A Poisson process with the current rate as intensity: bursts like independent clients.
    Poisson,
}

/// Everything one load run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// The MCP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    pub url: String,
    pub shape: RateShape,
    /// How long calls are scheduled for; calls still in flight at the end get up to `timeout` to finish.
    pub duration: Duration,
    /// The tool every call invokes.
    pub tool: String,
    /// The tool's arguments, the same for every call.
    pub arguments: Map<String, Value>,
    /// Concurrent MCP sessions the calls are spread over, round robin.
    pub sessions: usize,
    /// Longest wait for one reply (and for opening one session) before it counts as `timeout`.
    pub timeout: Duration,
    /// After this, a session is closed and a new one opened in its place, the way real clients come and go;
    /// without it every call stays on the servers the first sessions landed on, and new replicas get none.
    pub session_lifetime: Option<Duration>,
    /// Calls that may be in flight at once; a call due past this is counted as `overload_client` instead
    /// of being queued, so the schedule stays open-loop and memory stays bounded.
    pub max_in_flight: usize,
    pub arrivals: Arrivals,
    /// Seed of the Poisson draws: the same seed gives the same schedule.
    pub seed: u64,
}

impl LoadPlan {
    /// A plan with the defaults: tool `work` with no arguments, 8 sessions, 10 s timeout,
    /// 10,000 calls in flight at most, uniform arrivals.
    pub fn new(url: impl Into<String>, shape: RateShape, duration: Duration) -> Self {
        Self {
            url: url.into(),
            shape,
            duration,
            tool: "work".to_owned(),
            arguments: Map::new(),
            sessions: 8,
            timeout: Duration::from_secs(10),
            session_lifetime: None,
            max_in_flight: 10_000,
            arrivals: Arrivals::Uniform,
            seed: 0,
        }
    }

    /// Parses tool arguments given as JSON text; they must form an object.
    pub fn parse_arguments(text: &str) -> Result<Map<String, Value>, LoadError> {
        if text.len() > MAX_ARGUMENTS_BYTES {
            return Err(LoadError::invalid(
                "arguments",
                format!("{} bytes, at most {MAX_ARGUMENTS_BYTES}", text.len()),
            ));
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(LoadError::invalid(
                "arguments",
                format!("expected a JSON object such as {{\"sleep_ms\": 50}}, got {other}"),
            )),
            Err(e) => Err(LoadError::invalid(
                "arguments",
                format!("not JSON ({e}); write e.g. '{{\"sleep_ms\": 50}}'"),
            )),
        }
    }

    /// Checks every setting, naming the flag and the accepted range when one is off.
    pub fn validate(&self) -> Result<(), LoadError> {
        let url = self.url.trim();
        if url.len() > MAX_URL {
            return Err(LoadError::invalid(
                "url",
                format!("{} characters, at most {MAX_URL}", url.len()),
            ));
        }
        match url.strip_prefix("http://") {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {}
            _ if url.starts_with("https://") => {
                return Err(LoadError::invalid(
                    "url",
                    format!(
                        "{url:?}: https is not supported by this build; target the meter or a \
                         port-forward over plain http"
                    ),
                ));
            }
            _ => {
                return Err(LoadError::invalid(
                    "url",
                    format!("{url:?} is not an http URL; write e.g. http://127.0.0.1:8080/mcp"),
                ));
            }
        }
        self.shape.validate()?;
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(LoadError::invalid(
                "duration",
                format!(
                    "{:?} is out of range; use more than 0 and at most 7 days",
                    self.duration
                ),
            ));
        }
        if self.tool.is_empty() || self.tool.len() > MAX_TOOL_NAME {
            return Err(LoadError::invalid(
                "tool",
                format!("the name must have 1 to {MAX_TOOL_NAME} characters"),
            ));
        }
        let arguments = serde_json::to_string(&self.arguments).map_or(0, |s| s.len());
        if arguments > MAX_ARGUMENTS_BYTES {
            return Err(LoadError::invalid(
                "arguments",
                format!("{arguments} bytes, at most {MAX_ARGUMENTS_BYTES}"),
            ));
        }
        if !(1..=MAX_SESSIONS).contains(&self.sessions) {
            return Err(LoadError::invalid(
                "sessions",
                format!("{} is out of range; use 1 to {MAX_SESSIONS}", self.sessions),
            ));
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > MAX_TIMEOUT {
            return Err(LoadError::invalid(
                "timeout",
                format!("{:?} is out of range; use 1ms to 1h", self.timeout),
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(LoadError::invalid(
                "max-in-flight",
                format!(
                    "{} is out of range; use 1 to {MAX_IN_FLIGHT}",
                    self.max_in_flight
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(shape: RateShape) -> LoadPlan {
        LoadPlan::new("http://127.0.0.1:1/mcp", shape, Duration::from_secs(1))
    }

    #[test]
    fn ramps_parse() {
        // (input, expected, reason)
        let cases = [
            ("10:200", Some((10.0, 200.0)), "rising"),
            (
                " 5.5 : 0 ",
                Some((5.5, 0.0)),
                "falling, spaces and decimals",
            ),
            ("10-200", None, "wrong separator"),
            ("10:", None, "missing end"),
            ("a:b", None, "not numbers"),
        ];
        for (input, expected, reason) in cases {
            let got = RateShape::parse_ramp(input).ok().map(|s| match s {
                RateShape::Ramp { from, to } => (from, to),
                other => panic!("{input}: parsed to {other:?}"),
            });
            assert_eq!(got, expected, "{input}: {reason}");
        }
    }

    #[test]
    fn validation_names_the_flag() {
        let rate = |rps| RateShape::Constant { rps };
        // (plan, flag named in the error or None when valid, reason)
        let cases: Vec<(LoadPlan, Option<&str>, &str)> = vec![
            (plan(rate(10.0)), None, "the defaults are valid"),
            (plan(rate(0.0)), Some("--rate"), "a zero rate sends nothing"),
            (plan(rate(f64::NAN)), Some("--rate"), "NaN rate"),
            (plan(rate(1e9)), Some("--rate"), "rate above the maximum"),
            (
                plan(RateShape::Ramp {
                    from: 0.0,
                    to: 50.0,
                }),
                None,
                "a ramp may start at 0",
            ),
            (
                plan(RateShape::Ramp {
                    from: 10.0,
                    to: -1.0,
                }),
                Some("--ramp"),
                "negative end",
            ),
            (
                plan(RateShape::Steps { rps: vec![] }),
                Some("--trace"),
                "empty trace",
            ),
            (
                LoadPlan {
                    url: "127.0.0.1:8080/mcp".into(),
                    ..plan(rate(1.0))
                },
                Some("--url"),
                "no scheme",
            ),
            (
                LoadPlan {
                    url: "https://example.com/mcp".into(),
                    ..plan(rate(1.0))
                },
                Some("https"),
                "no TLS in this build",
            ),
            (
                LoadPlan {
                    duration: Duration::ZERO,
                    ..plan(rate(1.0))
                },
                Some("--duration"),
                "zero duration",
            ),
            (
                LoadPlan {
                    sessions: 0,
                    ..plan(rate(1.0))
                },
                Some("--sessions"),
                "no sessions",
            ),
            (
                LoadPlan {
                    tool: String::new(),
                    ..plan(rate(1.0))
                },
                Some("--tool"),
                "empty tool name",
            ),
            (
                LoadPlan {
                    max_in_flight: 0,
                    ..plan(rate(1.0))
                },
                Some("--max-in-flight"),
                "nothing may be in flight",
            ),
            (
                LoadPlan {
                    timeout: Duration::ZERO,
                    ..plan(rate(1.0))
                },
                Some("--timeout"),
                "zero timeout",
            ),
        ];
        for (plan, flag, reason) in cases {
            match (plan.validate(), flag) {
                (Ok(()), None) => {}
                (Err(e), Some(flag)) => assert!(e.to_string().contains(flag), "{reason}: {e}"),
                (got, _) => panic!("{reason}: got {got:?}"),
            }
        }
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert_eq!(
            LoadPlan::parse_arguments(r#"{"sleep_ms": 5}"#)
                .ok()
                .and_then(|m| m.get("sleep_ms").cloned()),
            Some(Value::from(5))
        );
        for bad in ["[1]", "5", "{", ""] {
            let error = LoadPlan::parse_arguments(bad).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("--arguments")),
                "{bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn traces_load_in_the_simulator_format() {
        let path =
            std::env::temp_dir().join(format!("mcpulse-load-trace-{}.csv", std::process::id()));
        let csv = "timestamp,value\n\
                   2024-01-01T00:00:00Z,10\n\
                   2024-01-01T00:01:00Z,40\n\
                   2024-01-01T00:02:00Z,20\n";
        std::fs::write(&path, csv).expect("write the trace");
        let as_is = RateShape::from_trace_file(&path, None);
        let rescaled = RateShape::from_trace_file(&path, Some(100.0));
        let zero_peak = RateShape::from_trace_file(&path, Some(0.0));
        let _ = std::fs::remove_file(&path);

        assert_eq!(
            as_is.ok(),
            Some(RateShape::Steps {
                rps: vec![10.0, 40.0, 20.0]
            })
        );
        assert_eq!(
            rescaled.ok(),
            Some(RateShape::Steps {
                rps: vec![25.0, 100.0, 50.0]
            })
        );
        assert!(
            matches!(zero_peak, Err(LoadError::Trace { .. })),
            "{zero_peak:?}"
        );
        let missing = RateShape::from_trace_file(Path::new("/nonexistent/trace.csv"), None);
        assert!(
            matches!(missing, Err(LoadError::TraceRead { .. })),
            "{missing:?}"
        );
    }
}
