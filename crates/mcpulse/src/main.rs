//! The `mcpulse` binary: parses the command line and wires the library crates together.

mod cmd;
mod units;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcpulse",
    version,
    about = "Monitoring and autoscaling for fleets of MCP servers",
    long_about = "Monitoring and autoscaling for fleets of MCP (Model Context Protocol) servers.\n\n\
                  Each subcommand is one role of the system; `mcpulse <command> --help` explains it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start-up; boxing the larger argument structs would only add noise.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// A whole fleet on this machine: registry, agents, metering gateway, autoscaler and a live console
    Up(Box<cmd::up::UpArgs>),
    /// One screen of the fleet that `mcpulse up` runs from the same data directory
    Status(cmd::up::StatusArgs),
    /// Metering proxy: put it in front of any MCP server (HTTP or stdio) to get MCP metrics without code changes
    Meter(cmd::meter::MeterArgs),
    /// Sample MCP agent with tunable tool cost, a bounded worker pool and self-registration
    Agent(Box<cmd::agent::AgentArgs>),
    /// MCP server registry: catalogue (official registry API), live agent instances, health probing
    Registry(Box<cmd::registry::RegistryArgs>),
    /// Forecast a load series (CSV of timestamp,value): the model the scaler would choose, its backtest error,
    /// and the point forecast with its interval
    Forecast(cmd::forecast::ForecastArgs),
    /// Open-loop MCP load: real sessions, calls on schedule (constant rate, ramp or trace), latency and errors
    Load(cmd::load::LoadArgs),
    /// Right-size a workload's CPU and memory requests from Prometheus history, like the VPA recommender
    Recommend(cmd::recommend::RecommendArgs),
    /// Kubernetes controller for McpAutoscaler resources (predictive, multi-metric, session-aware scaling)
    Scaler(Box<cmd::scaler::ScalerArgs>),
    /// Replay a load trace against a modelled deployment under several scaling policies, side by side
    Simulate(cmd::simulate::SimulateArgs),
    /// Benchmarks that compare mcpulse with a baseline and a peer in one run, printed as a table
    Bench(cmd::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPULSE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            // One line with the whole cause chain: what failed and why, without a backtrace for user errors.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<i32> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            Command::Up(args) => cmd::up::up(*args).await,
            Command::Status(args) => cmd::up::status(args).await,
            Command::Meter(args) => cmd::meter::run(args).await,
            Command::Agent(args) => cmd::agent::run(*args).await,
            Command::Registry(args) => cmd::registry::run(*args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
            Command::Forecast(args) => cmd::forecast::run(args),
            Command::Load(args) => cmd::load::run(args).await,
            Command::Recommend(args) => cmd::recommend::run(args).await,
            Command::Scaler(args) => cmd::scaler::run(*args).await,
            Command::Simulate(args) => cmd::simulate::run(args),
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
