//! `mcpulse up` and `mcpulse status`: a whole fleet on this machine, and one screen of it from another terminal.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mcpulse_fleet::{FleetConfig, FleetFile, MonitoringSettings};
use serde_json::Value;

use crate::units::parse_duration;

#[derive(Args, Debug)]
#[command(
    after_long_help = "Starts, on this machine and with nothing else installed:
  - the registry (SQLite in DATA_DIR/registry) where agents register and heartbeat,
  - N sample agents as child processes (logs in DATA_DIR/logs), restarted if they crash,
  - the metering gateway, which discovers healthy agents from the registry; MCP clients use
    http://GATEWAY/mcp,
  - the autoscaler: the Kubernetes HPA algorithm on in-flight requests per agent, starting agents and
    draining the ones with the fewest sessions; once 4 minutes of history have trained a forecast that beats
    the naive one, it also adds agents ahead of a forecast rise (max of reactive and predictive),
  - a console at http://CONSOLE/ with live charts and the decision log (JSON at /api/status),
  - if `prometheus` and `prometheus-alertmanager` (or `alertmanager`) are on the PATH: both, configured
    from DATA_DIR/prometheus with the project's recording rules and alerts, scraping the registry, the
    gateway and every agent (labels namespace=\"local\", service, pod=\"agent-N\").
A crashed agent is restarted after a back-off (10 s, doubling to 5 min, as the kubelet does); meanwhile it
is down for Prometheus, so the agent-down alerts see it.
Ctrl-C stops everything cleanly. `mcpulse status --data-dir DATA_DIR` shows the fleet from another terminal.

TRY IT:
  mcpulse up
  mcpulse load --url http://127.0.0.1:7000/mcp --ramp 5:120 --duration 2m      # in another terminal
  mcpulse status"
)]
pub struct UpArgs {
    /// Where the registry database, agent logs and the fleet file live
    #[arg(long, env = "MCPULSE_DATA_DIR", default_value = "mcpulse-data")]
    data_dir: PathBuf,
    /// Agents started at once
    #[arg(long, default_value_t = 2)]
    agents: u32,
    #[arg(long, default_value_t = 1)]
    min_replicas: u32,
    #[arg(long, default_value_t = 8)]
    max_replicas: u32,
    /// Where MCP clients connect (at /mcp)
    #[arg(long, default_value = "127.0.0.1:7000")]
    gateway: SocketAddr,
    /// The web console
    #[arg(long, default_value = "127.0.0.1:7070")]
    console: SocketAddr,
    /// The registry API
    #[arg(long, default_value = "127.0.0.1:8080")]
    registry: SocketAddr,
    /// How long load must stay low before agents are removed (Kubernetes' default is 5m; short is fine for demos)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    scale_down_window: Duration,
    /// Time between scaling decisions
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    sync_period: Duration,
    /// In-flight requests per agent the autoscaler aims for
    #[arg(long, default_value_t = 2.0)]
    target_in_flight: f64,
    /// How long a draining agent may keep sessions before it is stopped anyway
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Simulated I/O per `work` call in each agent, in milliseconds
    #[arg(long, default_value_t = 50)]
    agent_sleep_ms: u64,
    /// CPU burned per `work` call in each agent, in milliseconds
    #[arg(long, default_value_t = 0)]
    agent_cpu_ms: u64,
    /// Calls each agent runs at once
    #[arg(long, default_value_t = 4)]
    agent_workers: usize,
    /// Where Prometheus listens (a free port is used if this one is taken)
    #[arg(long, default_value = "127.0.0.1:9090")]
    prometheus: SocketAddr,
    /// Where Alertmanager listens (a free port is used if this one is taken)
    #[arg(long, default_value = "127.0.0.1:9093")]
    alertmanager: SocketAddr,
    /// How often Prometheus scrapes and evaluates rules
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    scrape_interval: Duration,
    /// Cap every alert's `for:` wait at this, so alerts fire in seconds in a demo (default: the project's own)
    #[arg(long, value_parser = parse_duration)]
    alert_pending_max: Option<Duration>,
    /// Do not start Prometheus and Alertmanager even if they are installed
    #[arg(long)]
    no_monitoring: bool,
    /// Scale on the HPA algorithm alone: no agents added ahead of a forecast rise
    #[arg(long)]
    no_predictive: bool,
}

pub async fn up(args: UpArgs) -> Result<i32> {
    let config = FleetConfig {
        data_dir: args.data_dir,
        agents: args.agents,
        min_replicas: args.min_replicas,
        max_replicas: args.max_replicas,
        registry: args.registry,
        gateway: args.gateway,
        console: args.console,
        scale_down_window: args.scale_down_window,
        sync_period: args.sync_period,
        target_in_flight: args.target_in_flight,
        drain_timeout: args.drain_timeout,
        agent_args: vec![
            "--sleep-ms".into(),
            args.agent_sleep_ms.to_string(),
            "--cpu-ms".into(),
            args.agent_cpu_ms.to_string(),
            "--workers".into(),
            args.agent_workers.to_string(),
            "--drain-timeout".into(),
            "10s".into(),
        ],
        mcpulse: std::env::current_exe()
            .context("cannot find the mcpulse binary to start agents from")?,
        monitoring: (!args.no_monitoring).then_some(MonitoringSettings {
            prometheus: args.prometheus,
            alertmanager: args.alertmanager,
            scrape_interval: args.scrape_interval,
            pending_max: args.alert_pending_max,
        }),
        predictive: !args.no_predictive,
    };
    let live = std::io::stderr().is_terminal();
    let mut last_print = std::time::Instant::now();
    mcpulse_fleet::run(
        config,
        crate::shutdown_signal(),
        |addresses| {
            eprintln!("mcpulse fleet is up:");
            eprintln!("  MCP gateway   http://{}/mcp", addresses.gateway);
            eprintln!("  console       http://{}/", addresses.console);
            eprintln!(
                "  registry      http://{}/v0.1/servers  (instances: /api/v1/instances)",
                addresses.registry
            );
            eprintln!(
                "  metrics       http://{}/metrics",
                addresses.gateway_metrics
            );
            if let (Some(prometheus), Some(alertmanager)) =
                (&addresses.prometheus, &addresses.alertmanager)
            {
                eprintln!("  Prometheus    http://{prometheus}/  (alerts: /alerts)");
                eprintln!("  Alertmanager  http://{alertmanager}/");
            }
            eprintln!("Ctrl-C stops everything.");
        },
        |status| {
            // A terminal gets one line rewritten in place; a log gets a line every 10 s.
            if live {
                eprint!("\r\x1b[2K{status}");
                let _ = std::io::stderr().flush();
            } else if last_print.elapsed() >= Duration::from_secs(10) {
                last_print = std::time::Instant::now();
                eprintln!("{status}");
            }
        },
        |event| {
            if live {
                eprint!("\r\x1b[2K");
            }
            tracing::info!("{event}");
        },
    )
    .await?;
    if live {
        eprintln!();
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The data directory `mcpulse up` runs from
    #[arg(long, env = "MCPULSE_DATA_DIR", default_value = "mcpulse-data")]
    data_dir: PathBuf,
    /// Print the fleet as JSON (replicas, instances with health, decisions)
    #[arg(long)]
    json: bool,
}

pub async fn status(args: StatusArgs) -> Result<i32> {
    let fleet = FleetFile::read(&args.data_dir).map_err(anyhow::Error::msg)?;
    let url = format!("http://{}/api/status", fleet.console);
    let status: Value = reqwest::get(&url)
        .await
        .with_context(|| {
            format!("the fleet's console at {url} does not answer; is `mcpulse up` still running?")
        })?
        .json()
        .await
        .context("the console answered something that is not JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(0);
    }
    let number =
        |v: &Value, digits: usize| v.as_f64().map_or("–".into(), |x| format!("{x:.digits$}"));
    println!(
        "replicas {} current / {} desired   rate {} req/s   p95 {} ms   in flight {}   restarts {}",
        status["replicas"]["current"],
        status["replicas"]["desired"],
        number(&status["rate"], 1),
        number(&status["p95_ms"], 0),
        number(&status["in_flight"], 0),
        status["restarts"]
    );
    println!(
        "\n{:<6} {:<34} {:<12} {:<9} {:>8}",
        "AGENT", "ENDPOINT", "HEALTH", "PHASE", "SESSIONS"
    );
    for agent in status["instances"].as_array().into_iter().flatten() {
        println!(
            "{:<6} {:<34} {:<12} {:<9} {:>8}",
            agent["id"].as_u64().unwrap_or(0),
            agent["endpoint"].as_str().unwrap_or(""),
            agent["health"].as_str().unwrap_or(""),
            agent["phase"].as_str().unwrap_or(""),
            agent["sessions"]
        );
    }
    if status["monitoring"].as_bool() == Some(true) {
        let alerts = status["alerts"].as_array().map_or(&[][..], Vec::as_slice);
        println!("\nFIRING ALERTS ({})", alerts.len());
        for alert in alerts {
            let pod = alert["labels"]["pod"]
                .as_str()
                .map_or(String::new(), |p| format!(" pod={p}"));
            println!(
                "  {:<28} {:<9}{pod}  {}",
                alert["name"].as_str().unwrap_or(""),
                alert["severity"].as_str().unwrap_or(""),
                alert["summary"].as_str().unwrap_or("")
            );
        }
    } else {
        println!("\nALERTS: no Prometheus/Alertmanager in this fleet");
    }
    println!("\nRECENT DECISIONS");
    for decision in status["decisions"].as_array().into_iter().flatten().take(5) {
        println!(
            "  t={:>6}s  {}",
            number(&decision["t"], 0),
            decision["explanation"].as_str().unwrap_or("")
        );
    }
    println!("\nconsole: http://{}/", fleet.console);
    Ok(0)
}
