//! `mcpulse meter`: flags, environment and TOML file merged into a `MeterConfig`, then the meter runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mcpulse_meter::{Discovery, MeterConfig, Mode, Upstream};
use serde::Deserialize;

use crate::units::{deserialize_duration, deserialize_size, parse_duration, parse_size};

/// Settings that may come from a flag, its environment variable, or the TOML file, in that order of precedence.
#[derive(Args, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MeterSettings {
    /// Address clients connect to, instead of the upstream [default: 127.0.0.1:7000]
    #[arg(long, env = "MCPULSE_METER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Address serving /metrics, /healthz, /readyz and /upstreams [default: 127.0.0.1:9464]
    #[arg(long, env = "MCPULSE_METER_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    /// Base URL of an MCP server; every path is forwarded unchanged below it. Repeat it (or give a
    /// comma-separated list in the env var) to run a gateway that places new sessions on the least-loaded one
    #[arg(
        long,
        env = "MCPULSE_METER_UPSTREAM",
        value_name = "URL",
        value_delimiter = ','
    )]
    #[serde(default)]
    upstream: Vec<String>,

    /// Registry to discover upstreams from (its healthy instances), in addition to any --upstream
    #[arg(long, env = "MCPULSE_METER_REGISTRY", value_name = "URL")]
    registry: Option<String>,

    /// Only discover instances of this server name (e.g. io.example/weather) [default: all]
    #[arg(long, env = "MCPULSE_METER_REGISTRY_SERVER", value_name = "NAME")]
    registry_server: Option<String>,

    /// How often the registry's instance list is read [default: 5s]
    #[arg(long, env = "MCPULSE_METER_REGISTRY_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    registry_interval: Option<Duration>,

    /// Bearer token for registries that require one for reads
    #[arg(
        long,
        env = "MCPULSE_METER_REGISTRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    registry_token: Option<String>,

    /// Requests served at once per upstream; more wait in a FIFO queue [default: unlimited]
    #[arg(long, env = "MCPULSE_METER_MAX_CONCURRENCY", value_name = "N")]
    max_concurrency: Option<usize>,

    /// Requests allowed to wait per upstream; past it clients get 503 with Retry-After [default: 1024]
    #[arg(long, env = "MCPULSE_METER_MAX_QUEUE", value_name = "N")]
    max_queue: Option<usize>,

    /// Longest wait in the queue before a 503 [default: 10s]
    #[arg(long, env = "MCPULSE_METER_QUEUE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    queue_timeout: Option<Duration>,

    /// Largest request body; larger ones get 413 [default: 4MiB]
    #[arg(long, env = "MCPULSE_METER_MAX_BODY", value_name = "SIZE", value_parser = parse_size)]
    #[serde(default, deserialize_with = "deserialize_size")]
    max_body: Option<usize>,

    /// Time an upstream has to start answering before the client gets 504 [default: 120s]
    #[arg(long, env = "MCPULSE_METER_UPSTREAM_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    upstream_timeout: Option<Duration>,

    /// Time a client has to send its request headers and body [default: 30s]
    #[arg(long, env = "MCPULSE_METER_CLIENT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    client_timeout: Option<Duration>,

    /// Time in-flight requests get to finish after SIGTERM or Ctrl-C [default: 30s]
    #[arg(long, env = "MCPULSE_METER_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    shutdown_grace: Option<Duration>,

    /// Requests awaiting a response that the meter remembers for timing [default: 100000]
    #[arg(long, env = "MCPULSE_METER_MAX_PENDING", value_name = "N")]
    max_pending: Option<usize>,

    /// Unanswered requests are forgotten after this [default: 10m]
    #[arg(long, env = "MCPULSE_METER_PENDING_TTL", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    pending_ttl: Option<Duration>,

    /// Sessions without traffic for this long count as ended [default: 1h]
    #[arg(long, env = "MCPULSE_METER_SESSION_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    session_idle_timeout: Option<Duration>,

    /// Distinct client-supplied values (tools, methods, client names) per label before `_other` [default: 100]
    #[arg(long, env = "MCPULSE_METER_LABEL_LIMIT", value_name = "N")]
    label_limit: Option<usize>,

    /// Largest SSE event inspected; larger events are relayed and counted only [default: 1MiB]
    #[arg(long, env = "MCPULSE_METER_MAX_SSE_EVENT", value_name = "SIZE", value_parser = parse_size)]
    #[serde(default, deserialize_with = "deserialize_size")]
    max_sse_event: Option<usize>,

    /// Threads serving client connections [default: one per CPU the process may use]. Each keeps its
    /// connections from accept to close, so one request never hops between threads; 1 suits a sidecar
    /// given one core
    #[arg(long, env = "MCPULSE_METER_WORKERS", value_name = "N")]
    workers: Option<usize>,

    /// After a read or write, keep each worker polling its sockets this long before it sleeps [default: 0s,
    /// off]. A request or an upstream answer that arrives meanwhile is read without waking a sleeping CPU,
    /// which in a virtual machine costs tens of µs per hop. The price is CPU: up to this much polling after
    /// each burst of traffic, counted as CPU use by CPU-based autoscaling. At most 1ms; e.g. 200us
    #[arg(long, env = "MCPULSE_METER_BUSY_POLL", value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    busy_poll: Option<Duration>,
}

#[derive(Args, Debug)]
#[command(after_long_help = "EXAMPLES:
  Sidecar in front of one server (clients use http://127.0.0.1:7000/mcp):
    mcpulse meter --listen 127.0.0.1:7000 --metrics-listen 127.0.0.1:9464 --upstream http://127.0.0.1:3001

  Gateway over two servers, at most 8 concurrent requests each:
    mcpulse meter --upstream http://10.0.0.1:3001 --upstream http://10.0.0.2:3001 --max-concurrency 8

  A stdio server, metered without changing it (the parent talks to mcpulse as it would to the server):
    mcpulse meter --stdio --metrics-listen 127.0.0.1:9464 -- python server.py

  Gateway over every healthy agent the registry knows:
    mcpulse meter --registry http://127.0.0.1:8080 --registry-server io.example/weather

  Drain an upstream before removing it:
    curl -X POST 'http://127.0.0.1:9464/upstreams/drain?url=http://10.0.0.1:3001'

Every flag can also be set with its environment variable or in a TOML file given with --config, using the
flag's name as the key (e.g. max-concurrency = 8, queue-timeout = \"5s\"). Flags win over the environment,
which wins over the file.")]
pub struct MeterArgs {
    #[command(flatten)]
    settings: MeterSettings,

    /// TOML file with any of the settings above
    #[arg(long, env = "MCPULSE_METER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Run the command after `--` as a stdio MCP server and meter its stdin/stdout
    #[arg(long, requires = "command")]
    stdio: bool,

    /// The stdio server's command and arguments (after `--`)
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

impl MeterArgs {
    pub fn into_config(self) -> Result<MeterConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --config {}", path.display()))?;
                toml::from_str::<MeterSettings>(&text)
                    .with_context(|| format!("invalid meter config {}", path.display()))?
            }
            None => MeterSettings::default(),
        };
        let flags = self.settings;
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or(([127, 0, 0, 1], 7000).into());
        let metrics_listen = flags
            .metrics_listen
            .or(file.metrics_listen)
            .unwrap_or(([127, 0, 0, 1], 9464).into());
        let upstream_urls = if flags.upstream.is_empty() {
            file.upstream
        } else {
            flags.upstream
        };
        let upstreams = upstream_urls
            .iter()
            .map(|url| Upstream::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = MeterConfig::http(listen, metrics_listen, upstreams);
        if self.stdio {
            let mut command = self.command.into_iter();
            config.mode = Mode::Stdio {
                command: command.next().unwrap_or_default(),
                args: command.collect(),
            };
        } else if !self.command.is_empty() {
            anyhow::bail!(
                "a command after `--` needs --stdio (mcpulse meter --stdio -- COMMAND ...)"
            );
        }
        if let Some(registry) = flags.registry.or(file.registry) {
            let registry = registry
                .parse()
                .with_context(|| format!("--registry {registry:?} is not a URL"))?;
            config.discovery = Some(Discovery {
                registry,
                server_name: flags.registry_server.or(file.registry_server),
                interval: flags
                    .registry_interval
                    .or(file.registry_interval)
                    .unwrap_or(Duration::from_secs(5)),
                token: flags.registry_token.or(file.registry_token),
            });
        }
        let admission = &mut config.admission;
        admission.max_concurrency = flags.max_concurrency.or(file.max_concurrency);
        set(&mut admission.max_queue, flags.max_queue, file.max_queue);
        set(
            &mut admission.queue_timeout,
            flags.queue_timeout,
            file.queue_timeout,
        );
        set(&mut config.max_body, flags.max_body, file.max_body);
        set(
            &mut config.upstream_timeout,
            flags.upstream_timeout,
            file.upstream_timeout,
        );
        set(
            &mut config.client_timeout,
            flags.client_timeout,
            file.client_timeout,
        );
        set(
            &mut config.shutdown_grace,
            flags.shutdown_grace,
            file.shutdown_grace,
        );
        set(&mut config.max_pending, flags.max_pending, file.max_pending);
        set(&mut config.pending_ttl, flags.pending_ttl, file.pending_ttl);
        set(
            &mut config.session_idle_timeout,
            flags.session_idle_timeout,
            file.session_idle_timeout,
        );
        set(&mut config.label_limit, flags.label_limit, file.label_limit);
        set(
            &mut config.max_sse_event_bytes,
            flags.max_sse_event,
            file.max_sse_event,
        );
        set(&mut config.workers, flags.workers, file.workers);
        set(&mut config.busy_poll, flags.busy_poll, file.busy_poll);
        config.validate()?;
        Ok(config)
    }
}

/// Flag (or env) first, then the file, else the built-in default already in `slot`.
fn set<T>(slot: &mut T, flag: Option<T>, file: Option<T>) {
    if let Some(value) = flag.or(file) {
        *slot = value;
    }
}

pub async fn run(args: MeterArgs) -> Result<i32> {
    let config = args.into_config()?;
    let stdio = matches!(config.mode, Mode::Stdio { .. });
    let code = mcpulse_meter::run(config, crate::shutdown_signal(), move |bound| {
        // In stdio mode stdout belongs to the MCP protocol, so announcements go to the log (stderr).
        if let Some(proxy) = bound.proxy {
            tracing::info!(%proxy, metrics = %bound.metrics, "meter listening");
        } else if stdio {
            tracing::info!(metrics = %bound.metrics, "meter relaying stdio");
        }
    })
    .await?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        meter: MeterArgs,
    }

    fn parse(args: &[&str]) -> Result<MeterConfig> {
        Cli::try_parse_from(std::iter::once("meter").chain(args.iter().copied()))?
            .meter
            .into_config()
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("mcpulse-meter-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("meter.toml");
        std::fs::write(&file, "upstream = [\"http://127.0.0.1:3001\"]\nmax-concurrency = 4\nqueue-timeout = \"2s\"\nmax-body = \"1MiB\"\n").unwrap();
        let config =
            parse(&["--config", file.to_str().unwrap(), "--max-concurrency", "9"]).unwrap();
        assert_eq!(config.admission.max_concurrency, Some(9), "flag wins");
        assert_eq!(
            config.admission.queue_timeout,
            Duration::from_secs(2),
            "file beats default"
        );
        assert_eq!(config.max_body, 1 << 20);
        assert_eq!(config.admission.max_queue, 1024, "default kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_file_keys_are_errors_that_name_them() {
        let dir =
            std::env::temp_dir().join(format!("mcpulse-meter-badconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("meter.toml");
        std::fs::write(&file, "upstreams = [\"http://127.0.0.1:3001\"]\n").unwrap();
        let err = format!(
            "{:#}",
            parse(&["--config", file.to_str().unwrap()]).unwrap_err()
        );
        assert!(
            err.contains("upstreams") && err.contains("meter.toml"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stdio_takes_the_command_after_the_separator() {
        let config = parse(&["--stdio", "--", "python3", "server.py", "--flag"]).unwrap();
        let Mode::Stdio { command, args } = config.mode else {
            panic!("stdio mode expected")
        };
        assert_eq!(command, "python3");
        assert_eq!(args, ["server.py", "--flag"]);
    }

    #[test]
    fn busy_polling_is_off_unless_set_and_bounded() {
        let upstream = ["--upstream", "http://127.0.0.1:3001"];
        assert_eq!(parse(&upstream).unwrap().busy_poll, Duration::ZERO);
        let config = parse(&[upstream[0], upstream[1], "--busy-poll", "200us"]).unwrap();
        assert_eq!(config.busy_poll, Duration::from_micros(200));
        let err = format!(
            "{:#}",
            parse(&[upstream[0], upstream[1], "--busy-poll", "5ms"]).unwrap_err()
        );
        assert!(err.contains("busy-poll"), "{err}");
    }

    #[test]
    fn http_mode_needs_an_upstream() {
        let err = parse(&[]).unwrap_err().to_string();
        assert!(err.contains("--upstream"), "{err}");
    }
}
