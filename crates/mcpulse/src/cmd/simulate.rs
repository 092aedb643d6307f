//! `mcpulse simulate`: replays a load trace under several scaling policies and prints how each one did.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcpulse_scaler::forecast::ForecastConfig;
use mcpulse_scaler::sim::{
    ForecastPredictor, LoadPredictor, MAX_TRACE_BYTES, PolicyKind, SeasonalNaive, SimConfig,
    SimReport, TraceOptions, parse_trace, render_svg, simulate,
};

/// Replay a load trace (CSV) against a modelled deployment under several scaling policies.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Trace file: `timestamp,value` (requests/s per step), a request log whose first column is a timestamp
    /// (e.g. Azure LLM traces), or Azure Functions per-minute counts
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,

    /// Rescale the trace so its peak is R requests/s [default: use the values as requests/s]
    #[arg(long, value_name = "R")]
    peak_rps: Option<f64>,

    /// Requests per second one pod serves when saturated
    #[arg(long, value_name = "RPS", default_value_t = 10.0)]
    pod_capacity: f64,

    /// Workers per pod (service time mean = concurrency / pod capacity)
    #[arg(long, value_name = "N", default_value_t = 4)]
    pod_concurrency: u32,

    /// Seconds from pod creation to ready
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    startup: f64,

    /// Policies to compare (repeat or comma-separate): hpa-cpu, hpa-queue, mcpulse, oracle [default: all]
    #[arg(long = "policy", value_name = "NAME", num_args = 1.., value_delimiter = ',', value_parser = parse_policy)]
    policies: Vec<PolicyKind>,

    /// SLO on p95 latency, seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    slo_p95: f64,

    /// SLO on mean queue wait, seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5)]
    slo_queue_wait: f64,

    #[arg(long, value_name = "N", default_value_t = 1)]
    min_replicas: u32,

    #[arg(long, value_name = "N", default_value_t = 200)]
    max_replicas: u32,

    /// Seconds per bucket when counting a request log
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    bucket: u64,

    /// Seed of the arrival noise; the same seed gives the same report
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Load predictor of the mcpulse policy: `forecast` (model chosen by backtest, refitted every 6 steps)
    /// or `seasonal-naive` (median of past days, fast)
    #[arg(long, value_name = "NAME", default_value = "forecast", value_parser = ["forecast", "seasonal-naive"])]
    predictor: String,

    /// Write a plot of load, forecast band and replicas per policy to this SVG file
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    s.parse()
        .map_err(|e: mcpulse_scaler::sim::SimError| e.to_string())
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        bail!("--{flag} must be a number of seconds within 0..=86400, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Runs the command; returns the process exit code.
pub fn run(args: SimulateArgs) -> Result<i32> {
    let size = std::fs::metadata(&args.trace)
        .with_context(|| format!("cannot read --trace {}", args.trace.display()))?
        .len();
    if size > MAX_TRACE_BYTES as u64 {
        bail!(
            "--trace {} is {size} bytes, at most {MAX_TRACE_BYTES}; aggregate or cut it",
            args.trace.display()
        );
    }
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read --trace {} as UTF-8 text", args.trace.display()))?;
    let options = TraceOptions {
        bucket: Duration::from_secs(args.bucket),
    };
    let mut trace =
        parse_trace(&text, &options).with_context(|| format!("in {}", args.trace.display()))?;
    if let Some(peak) = args.peak_rps {
        trace.rescale_peak(peak).context("--peak-rps")?;
    }
    let config = SimConfig {
        pod_capacity_rps: args.pod_capacity,
        pod_concurrency: args.pod_concurrency,
        startup: seconds("startup", args.startup)?,
        slo_p95_seconds: args.slo_p95,
        slo_queue_wait_seconds: args.slo_queue_wait,
        min_replicas: args.min_replicas,
        max_replicas: args.max_replicas,
        queue_target_per_pod: 0.7 * f64::from(args.pod_concurrency),
        seed: args.seed,
        ..SimConfig::default()
    };
    let policies = if args.policies.is_empty() {
        PolicyKind::ALL.to_vec()
    } else {
        args.policies.clone()
    };
    let mut seasonal = SeasonalNaive::new(config.daily_period_for(&trace));
    let mut fitted = ForecastPredictor::new(ForecastConfig::default(), 6);
    let predictor: &mut dyn LoadPredictor = if args.predictor == "seasonal-naive" {
        &mut seasonal
    } else {
        &mut fitted
    };

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% simulated, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = simulate(&trace, &config, &policies, predictor, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    });
    bar.finish_and_clear();
    let report = report.context("simulation failed")?;

    if let Some(path) = &args.svg {
        let title = format!(
            "{} (peak {:.0} req/s, pod {:.0} req/s, start-up {:.0} s)",
            args.trace.display(),
            report.peak_rps,
            config.pod_capacity_rps,
            config.startup.as_secs_f64()
        );
        let svg = render_svg(&report.timeline, &title).context("drawing the plot")?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write --svg {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(0)
}

/// The human-readable comparison.
fn table(report: &SimReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:.1} h simulated, peak {:.1} req/s, {:.0} requests, predictor {}",
        report.duration_seconds / 3600.0,
        report.peak_rps,
        report.requests,
        report.predictor
    );
    let _ = writeln!(
        out,
        "{:<10} {:>12} {:>14} {:>10} {:>8} {:>13} {:>10} {:>10}",
        "policy",
        "SLO-viol min",
        "replica-min",
        "vs oracle",
        "events",
        "max recover s",
        "dropped",
        "worst p95"
    );
    for p in &report.policies {
        let _ = writeln!(
            out,
            "{:<10} {:>12.1} {:>14.1} {:>9.1}% {:>8} {:>13.0} {:>10.0} {:>9.2}s",
            p.policy,
            p.slo_violation_minutes,
            p.replica_minutes,
            p.overprovision_vs_oracle * 100.0,
            p.scaling_events,
            p.max_recovery_seconds,
            p.dropped_requests,
            p.worst_p95_seconds
        );
    }
    out
}
