//! `mcpulse agent`: flags and environment into an `AgentConfig`, then the sample agent runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use mcpulse_agent::{AgentConfig, CostDefaults, RegistrationConfig};

use crate::units::{parse_duration, parse_size};

#[derive(Args, Debug)]
#[command(
    after_long_help = "The agent serves MCP over streamable HTTP at /mcp with these tools:
  work   burns CPU, sleeps and answers with a sized text; arguments cpu_ms, sleep_ms, response_bytes, fail
         override the defaults below for one call
  echo   answers its text argument (zero cost)
Calls run on a bounded worker pool (--workers) with a bounded queue (--max-queue): past it a call fails fast
with a saturation error, which is what an autoscaler should prevent.

EXAMPLES:
  A zero-cost agent on the default ports:
    mcpulse agent --listen 127.0.0.1:3001 --metrics-listen 127.0.0.1:9466

  A realistic agent that registers with the registry (20 ms CPU and 50 ms I/O per call, 1 % errors):
    mcpulse agent --registry http://127.0.0.1:8080 --token \"$TOKEN\" --cpu-ms 20 --sleep-ms 50 --error-rate 0.01

  A stateless replica, any of which can answer any request behind a load balancer:
    mcpulse agent --stateless --listen 0.0.0.0:3001

Every flag can also be set with the environment variable shown in its help."
)]
pub struct AgentArgs {
    /// Address MCP is served on (at /mcp)
    #[arg(
        long,
        env = "MCPULSE_AGENT_LISTEN",
        default_value = "127.0.0.1:3001",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "MCPULSE_AGENT_METRICS_LISTEN",
        default_value = "127.0.0.1:9466",
        value_name = "ADDR"
    )]
    metrics_listen: SocketAddr,
    /// Server name reported to clients and the registry (reverse-DNS form)
    #[arg(
        long,
        env = "MCPULSE_AGENT_SERVER_NAME",
        default_value = "io.mcpulse/agent",
        value_name = "NAME"
    )]
    server_name: String,
    /// Version reported to clients and the registry [default: the mcpulse version]
    #[arg(long, env = "MCPULSE_AGENT_SERVER_VERSION", value_name = "VERSION")]
    server_version: Option<String>,
    /// Registry to register with and heartbeat to; without it the agent runs alone
    #[arg(long, env = "MCPULSE_AGENT_REGISTRY", value_name = "URL")]
    registry: Option<String>,
    /// Bearer token (publisher role) for the registry
    #[arg(
        long,
        env = "MCPULSE_AGENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// MCP URL clients should use for this agent [default: http://<listen>/mcp]
    #[arg(long, env = "MCPULSE_AGENT_ADVERTISE_URL", value_name = "URL")]
    advertise_url: Option<String>,
    /// Instance label stored in the registry, as KEY=VALUE (repeat it)
    #[arg(
        long = "label",
        env = "MCPULSE_AGENT_LABELS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    labels: Vec<String>,
    /// Time between heartbeats to the registry
    #[arg(long, env = "MCPULSE_AGENT_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// CPU burned per `work` call, in milliseconds
    #[arg(long, env = "MCPULSE_AGENT_CPU_MS", default_value_t = 0)]
    cpu_ms: u64,
    /// Sleep (simulated I/O) per `work` call, in milliseconds
    #[arg(long, env = "MCPULSE_AGENT_SLEEP_MS", default_value_t = 0)]
    sleep_ms: u64,
    /// Size of each `work` answer (e.g. 512, 4KiB)
    #[arg(long, env = "MCPULSE_AGENT_RESPONSE_BYTES", default_value = "0", value_parser = parse_size)]
    response_bytes: usize,
    /// Probability (0 to 1) that a `work` call fails with a tool error
    #[arg(long, env = "MCPULSE_AGENT_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    /// Seed for the error draws, so a run can be replayed
    #[arg(long, env = "MCPULSE_AGENT_SEED", default_value_t = 0)]
    seed: u64,
    /// Calls that run at once [default: number of CPUs]
    #[arg(long, env = "MCPULSE_AGENT_WORKERS")]
    workers: Option<usize>,
    /// Calls that may wait for a worker [default: 64 per worker]
    #[arg(long, env = "MCPULSE_AGENT_MAX_QUEUE")]
    max_queue: Option<usize>,
    /// Threads serving MCP connections, each with its own single-threaded runtime that a connection
    /// stays on (no cross-thread wake-ups per request) [default: number of CPUs]
    #[arg(long, env = "MCPULSE_AGENT_IO_THREADS", value_name = "N")]
    io_threads: Option<usize>,
    /// After a read or write, keep each connection thread polling its sockets this long before it sleeps
    /// (0 = sleep at once). A client's next request is then read without waking a sleeping CPU, which in a
    /// virtual machine costs tens of µs per call; 200us takes about a quarter off a zero-cost call on
    /// loopback. The price is CPU: up to this much polling after each burst of traffic, counted as CPU use
    /// by `top` and by CPU-based autoscaling, so leave it off where replicas scale on CPU. At most 1ms
    #[arg(long, env = "MCPULSE_AGENT_BUSY_POLL", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    busy_poll: Duration,
    /// Serve stateless streamable HTTP: no sessions, every POST answered on its own, plain calls as one
    /// JSON body instead of an event stream. Any replica can answer any request, so a fleet scales behind
    /// a plain load balancer without session affinity; in exchange the agent can never reach a client on
    /// its own (no server-initiated requests or notifications, no GET stream, no resumption), counts no
    /// sessions, labels calls with no client name (each request is answered without its handshake), and
    /// when draining refuses every new request (503) rather than only new sessions
    #[arg(long, env = "MCPULSE_AGENT_STATELESS")]
    stateless: bool,
    /// On SIGTERM, how long in-flight calls get to finish after deregistering
    #[arg(long, env = "MCPULSE_AGENT_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Shut down (as on SIGTERM) once this process is no longer the agent's parent, so agents started by
    /// `mcpulse up` do not outlive it when it is killed outright
    #[arg(long, env = "MCPULSE_AGENT_PARENT_PID", value_name = "PID")]
    parent_pid: Option<u32>,
}

impl AgentArgs {
    pub fn into_config(self) -> Result<AgentConfig> {
        let mut config = AgentConfig::new(self.listen, self.metrics_listen);
        config.server_name = self.server_name;
        if let Some(version) = self.server_version {
            config.version = version;
        }
        config.defaults = CostDefaults {
            cpu_ms: self.cpu_ms,
            sleep_ms: self.sleep_ms,
            response_bytes: self.response_bytes as u64,
            error_rate: self.error_rate,
        };
        config.seed = self.seed;
        if let Some(workers) = self.workers {
            config.workers = workers;
            config.max_queue = workers * 64;
        }
        if let Some(max_queue) = self.max_queue {
            config.max_queue = max_queue;
        }
        if let Some(io_threads) = self.io_threads {
            config.io_threads = io_threads;
        }
        config.busy_poll = self.busy_poll;
        config.drain_timeout = self.drain_timeout;
        config.stateless = self.stateless;
        let labels = parse_labels(&self.labels)?;
        match self.registry {
            Some(url) => {
                let mut registration = RegistrationConfig::new(url);
                registration.token = self.token;
                registration.advertise_url = self.advertise_url;
                registration.labels = labels;
                registration.heartbeat_interval = self.heartbeat_interval;
                config.registration = Some(registration);
            }
            None if self.token.is_some() || !labels.is_empty() => {
                bail!("--token and --label only make sense with --registry URL")
            }
            None => {}
        }
        config.validate()?;
        Ok(config)
    }
}

fn parse_labels(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("--label {pair:?} must be KEY=VALUE, e.g. --label zone=a"),
        })
        .collect()
}

pub async fn run(args: AgentArgs) -> Result<i32> {
    let parent = args.parent_pid;
    let config = args.into_config()?;
    let shutdown = async move {
        tokio::select! {
            () = crate::shutdown_signal() => {}
            () = parent_gone(parent) => tracing::warn!("the parent process is gone; shutting down"),
        }
    };
    mcpulse_agent::run(config, shutdown, |bound| {
        tracing::info!(mcp = %format!("http://{}/mcp", bound.listen), metrics = %bound.metrics, "agent listening");
    })
    .await?;
    Ok(0)
}

/// Resolves once `parent` is no longer this process's parent (an orphan is adopted by init or a subreaper);
/// never without a parent to watch.
async fn parent_gone(parent: Option<u32>) {
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        every_second.tick().await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> Result<AgentConfig> {
        Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))?
            .agent
            .into_config()
    }

    #[test]
    fn registration_takes_token_labels_and_interval() {
        let config = parse(&[
            "--registry",
            "http://r:8080",
            "--token",
            "t",
            "--label",
            "zone=a",
            "--heartbeat-interval",
            "2s",
        ])
        .unwrap();
        let registration = config.registration.unwrap();
        assert_eq!(registration.url, "http://r:8080");
        assert_eq!(registration.token.as_deref(), Some("t"));
        assert_eq!(
            registration.labels.get("zone").map(String::as_str),
            Some("a")
        );
        assert_eq!(registration.heartbeat_interval, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_the_flag() {
        // (args, flag the error must name, reason)
        let cases: [(&[&str], &str, &str); 5] = [
            (
                &["--error-rate", "1.5"],
                "--error-rate",
                "a probability above 1",
            ),
            (&["--label", "nokey"], "--label", "a label without '='"),
            (
                &["--io-threads", "0"],
                "--io-threads",
                "no thread to serve connections",
            ),
            (
                &["--busy-poll", "5ms"],
                "--busy-poll",
                "polling that long only burns CPU",
            ),
            (
                &["--token", "t"],
                "--registry",
                "a token with nowhere to send it",
            ),
        ];
        for (args, flag, reason) in cases {
            let err = format!("{:#}", parse(args).unwrap_err());
            assert!(err.contains(flag), "{reason}: {err}");
        }
    }

    #[test]
    fn busy_polling_is_opt_in_and_takes_a_duration() {
        assert_eq!(parse(&[]).unwrap().busy_poll, Duration::ZERO);
        assert_eq!(
            parse(&["--busy-poll", "200us"]).unwrap().busy_poll,
            Duration::from_micros(200)
        );
    }

    #[test]
    fn stateless_is_opt_in() {
        assert!(!parse(&[]).unwrap().stateless, "sessions stay the default");
        assert!(parse(&["--stateless"]).unwrap().stateless);
    }

    #[test]
    fn workers_scale_the_default_queue() {
        let config = parse(&["--workers", "3"]).unwrap();
        assert_eq!((config.workers, config.max_queue), (3, 192));
    }
}
