//! `mcpulse load`: open-loop MCP load over real sessions, with a progress bar and a summary table or JSON.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcpulse_load::{Arrivals, LoadPlan, Progress, RateShape};

use crate::units::parse_duration;

/// Generate MCP load: `tools/call` at a constant rate, a ramp or a replayed trace, over real sessions.
#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("shape").required(true).args(["rate", "ramp", "trace"])),
    after_long_help = "Open-loop: calls are sent on schedule whether or not earlier calls have been answered, \
so a slow server meets the offered rate instead of slowing the client down. Latency is measured from each \
call's scheduled send time, not from when it was actually sent, which avoids coordinated omission: queueing in \
the client or the server shows up in the percentiles. `schedule lag` in the summary says how late this client \
itself was; if it is large, the offered rate was not really offered.\n\nEach session runs `initialize` and \
`tools/list` before the schedule starts; calls go to the sessions round robin. Error types: JSON-RPC error \
names (invalid_params, server_error, ...), tool_error (isError results), timeout, transport, overload_client \
(more than --max-in-flight calls outstanding, so the call was not sent) and session (its session was down)."
)]
pub struct LoadArgs {
    /// MCP endpoint, e.g. http://127.0.0.1:8080/mcp
    #[arg(long, value_name = "URL")]
    url: String,

    /// Constant rate, calls per second
    #[arg(long, value_name = "R")]
    rate: Option<f64>,

    /// Linear ramp from FROM to TO calls per second over --duration, e.g. 10:200
    #[arg(long, value_name = "FROM:TO")]
    ramp: Option<String>,

    /// Replay a trace (CSV `timestamp,value`, value = requests/s per step; the simulator's format),
    /// compressed or stretched to --duration
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,

    /// Rescale the trace so its peak is R calls per second [default: the trace's values]
    #[arg(long, value_name = "R", requires = "trace")]
    peak_rps: Option<f64>,

    /// How long calls are scheduled for, e.g. 30s, 2m
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Duration,

    /// Tool to call
    #[arg(long, value_name = "NAME", default_value = "work")]
    tool: String,

    /// Tool arguments as a JSON object, e.g. '{"sleep_ms": 50}' for the sample agent's `work`
    #[arg(long, value_name = "JSON", default_value = "{}")]
    arguments: String,

    /// Concurrent MCP sessions the calls are spread over
    #[arg(long, value_name = "N", default_value_t = 8)]
    sessions: usize,

    /// Replace each session with a new one after this long, as real clients come and go (new sessions are
    /// placed on the least-loaded server, so a scaled-out fleet gets traffic) [default: sessions last the run]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    session_lifetime: Option<Duration>,

    /// Longest wait for one reply, or for opening one session
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,

    /// Calls that may be outstanding at once; a call due past this counts as `overload_client` instead of
    /// being queued, which keeps the schedule open-loop and memory bounded. Each outstanding call holds one
    /// connection, so keep this below the open-file limit (`ulimit -n`)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_in_flight: usize,

    /// Spacing of calls within the rate: `uniform`, or `poisson` (bursty, like independent clients)
    #[arg(long, value_name = "KIND", default_value = "uniform", value_parser = ["uniform", "poisson"])]
    arrivals: String,

    /// Seed of the Poisson draws; the same seed gives the same schedule
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,

    /// Print one JSON object instead of the table, and no progress bar
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the process exit code.
pub async fn run(args: LoadArgs) -> Result<i32> {
    let shape = match (args.rate, &args.ramp, &args.trace) {
        (Some(rps), _, _) => RateShape::Constant { rps },
        (_, Some(ramp), _) => RateShape::parse_ramp(ramp)?,
        (_, _, Some(path)) => RateShape::from_trace_file(path, args.peak_rps)?,
        // clap's required group guarantees one of the three.
        (None, None, None) => anyhow::bail!("give one of --rate, --ramp or --trace"),
    };
    let mut plan = LoadPlan::new(args.url, shape, args.duration);
    plan.tool = args.tool;
    plan.arguments = LoadPlan::parse_arguments(&args.arguments)?;
    plan.sessions = args.sessions;
    plan.session_lifetime = args.session_lifetime;
    plan.timeout = args.timeout;
    plan.max_in_flight = args.max_in_flight;
    plan.arrivals = if args.arrivals == "poisson" {
        Arrivals::Poisson
    } else {
        Arrivals::Uniform
    };
    plan.seed = args.seed;
    plan.validate()?;

    let bar = if !args.json && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} calls due {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = mcpulse_load::run(plan, |p: Progress| {
        bar.set_length(p.expected.max(p.due));
        bar.set_position(p.due);
        bar.set_message(if p.draining {
            format!("waiting for {} replies", p.in_flight)
        } else {
            format!("ok {} errors {} in flight {}", p.ok, p.errors, p.in_flight)
        });
    })
    .await;
    bar.finish_and_clear();
    let report = report?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(0)
}
