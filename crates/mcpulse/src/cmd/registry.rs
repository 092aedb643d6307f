//! `mcpulse registry`: flags and environment into a `RegistryConfig`, token administration, and the registry bench.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use mcpulse_registry::bench::BenchOptions;
use mcpulse_registry::{
    HealthPolicy, ProbeSettings, RegistryConfig, Role, ServiceOptions, StorageConfig,
};

use crate::units::{parse_duration, parse_size};

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_long_help = "EXAMPLES:
  One replica on SQLite (data in ./registry-data/registry.db), metrics on :9465:
    mcpulse registry --listen 127.0.0.1:8080 --metrics-listen 127.0.0.1:9465 --data-dir ./registry-data

  Several replicas sharing PostgreSQL (each instance is probed by one replica per interval):
    mcpulse registry --listen 0.0.0.0:8080 --database-url postgres://registry@db/registry

  A token for agents of one namespace (printed once; only its hash is stored):
    mcpulse registry token create --role publisher --namespace 'io.example/*' --data-dir ./registry-data

  Agents then register and heartbeat with it:
    curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\
      -d '{\"serverName\":\"io.example/weather\",\"version\":\"1.2.0\",\"endpoint\":\"http://10.0.0.7:3001/mcp\"}' \\
      http://127.0.0.1:8080/api/v1/instances

HEALTH: an instance is gone when its last heartbeat is older than --gone-after; unhealthy when the
heartbeat is older than --unhealthy-after or its last --probe-failures MCP pings in a row failed;
healthy otherwise. Probes run initialize + ping over streamable HTTP against http:// endpoints
(https:// endpoints are judged by heartbeats alone).

Every flag can also be set with the environment variable shown in its help."
)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: Option<RegistryCommand>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Create or revoke the bearer tokens that publishers, agents and readers send
    Token(TokenArgs),
}

#[derive(Args, Debug)]
struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand, Debug)]
enum TokenAction {
    /// Create a token and print it (once) on stdout
    Create(TokenCreateArgs),
    /// Revoke a token, given the token itself or its id (the 16 hex digits after `mcpr_`)
    Revoke(TokenRevokeArgs),
}

#[derive(Args, Debug)]
struct TokenCreateArgs {
    /// What the token may do: read, publish and register inside its namespace, or everything
    #[arg(long, env = "MCPULSE_REGISTRY_TOKEN_ROLE", value_enum)]
    role: RoleArg,
    /// Server names a publisher may write, as a glob such as 'io.example/*' [default: all]
    #[arg(long, env = "MCPULSE_REGISTRY_TOKEN_NAMESPACE", value_name = "GLOB")]
    namespace: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args, Debug)]
struct TokenRevokeArgs {
    /// The token (mcpr_...) or its id
    #[arg(value_name = "TOKEN_OR_ID")]
    token: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RoleArg {
    Reader,
    Publisher,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Reader => Role::Reader,
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Args, Debug)]
struct StorageArgs {
    /// Directory of the embedded SQLite database (created if missing); for a single replica
    #[arg(
        long,
        env = "MCPULSE_REGISTRY_DATA_DIR",
        value_name = "DIR",
        conflicts_with = "database_url"
    )]
    data_dir: Option<PathBuf>,
    /// PostgreSQL shared by all replicas, e.g. postgres://registry@db/registry
    #[arg(long, env = "MCPULSE_REGISTRY_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

impl StorageArgs {
    fn config(self) -> Result<StorageConfig> {
        match (self.data_dir, self.database_url) {
            (Some(data_dir), None) => Ok(StorageConfig::Sqlite { data_dir }),
            (None, Some(url)) => Ok(StorageConfig::Postgres { url }),
            _ => anyhow::bail!(
                "say where the data lives: --data-dir DIR (SQLite) or --database-url postgres://... (shared by replicas)"
            ),
        }
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address of the catalogue (/v0.1) and instances (/api/v1/instances) API
    #[arg(
        long,
        env = "MCPULSE_REGISTRY_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,

    /// Address serving /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "MCPULSE_REGISTRY_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9465"
    )]
    metrics_listen: SocketAddr,

    #[command(flatten)]
    storage: StorageArgs,

    /// An instance without a heartbeat for this long is unhealthy
    #[arg(long, env = "MCPULSE_REGISTRY_UNHEALTHY_AFTER", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    unhealthy_after: Duration,

    /// An instance without a heartbeat for this long is gone (and no longer probed)
    #[arg(long, env = "MCPULSE_REGISTRY_GONE_AFTER", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    gone_after: Duration,

    /// How often each instance gets an MCP ping (by one replica)
    #[arg(long, env = "MCPULSE_REGISTRY_PROBE_INTERVAL", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    probe_interval: Duration,

    /// Time a probe (initialize + ping) may take before it counts as failed
    #[arg(long, env = "MCPULSE_REGISTRY_PROBE_TIMEOUT", value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    probe_timeout: Duration,

    /// Largest random delay before each probe round, so replicas do not move in lockstep
    #[arg(long, env = "MCPULSE_REGISTRY_PROBE_JITTER", value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    probe_jitter: Duration,

    /// Probes in flight at once on this replica
    #[arg(
        long,
        env = "MCPULSE_REGISTRY_PROBE_CONCURRENCY",
        value_name = "N",
        default_value_t = 64
    )]
    probe_concurrency: usize,

    /// Failed probes in a row that make an instance unhealthy
    #[arg(
        long,
        env = "MCPULSE_REGISTRY_PROBE_FAILURES",
        value_name = "N",
        default_value_t = 3
    )]
    probe_failures: u32,

    /// Do not probe; judge health by heartbeats alone
    #[arg(long, env = "MCPULSE_REGISTRY_NO_PROBE")]
    no_probe: bool,

    /// Largest request body; larger ones get 413
    #[arg(long, env = "MCPULSE_REGISTRY_MAX_BODY", value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    max_body: usize,

    /// Require a token for reads too (by default anyone may read, like the official registry)
    #[arg(long, env = "MCPULSE_REGISTRY_REQUIRE_READ_TOKEN")]
    require_read_token: bool,

    /// How often the instance gauges on /metrics are recomputed from the database
    #[arg(long, env = "MCPULSE_REGISTRY_GAUGE_REFRESH", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    gauge_refresh: Duration,
}

impl ServeArgs {
    fn into_config(self) -> Result<RegistryConfig> {
        let mut config = RegistryConfig::new(self.listen, self.storage.config()?);
        config.metrics_listen = Some(self.metrics_listen);
        config.options = ServiceOptions {
            health: HealthPolicy {
                unhealthy_after: self.unhealthy_after,
                gone_after: self.gone_after,
                probe_failures: self.probe_failures,
            },
            anonymous_reads: !self.require_read_token,
            body_limit: self.max_body,
        };
        config.probe = (!self.no_probe).then_some(ProbeSettings {
            interval: self.probe_interval,
            timeout: self.probe_timeout,
            jitter: self.probe_jitter,
            concurrency: self.probe_concurrency,
        });
        config.gauge_refresh = self.gauge_refresh;
        Ok(config)
    }
}

pub async fn run(args: RegistryArgs) -> Result<i32> {
    match args.command {
        None => {
            let config = args.serve.into_config()?;
            mcpulse_registry::serve(config, crate::shutdown_signal())
                .await
                .context("registry stopped")?;
        }
        Some(RegistryCommand::Token(TokenArgs {
            action: TokenAction::Create(create),
        })) => {
            let storage = create.storage.config()?;
            let token =
                mcpulse_registry::create_token(&storage, create.role.into(), create.namespace)
                    .await?;
            println!("{token}");
            eprintln!("store it now: the registry keeps only its hash and cannot show it again");
        }
        Some(RegistryCommand::Token(TokenArgs {
            action: TokenAction::Revoke(revoke),
        })) => {
            let storage = revoke.storage.config()?;
            mcpulse_registry::revoke_token(&storage, &revoke.token).await?;
            eprintln!("revoked");
        }
    }
    Ok(0)
}

/// `mcpulse bench registry`: for the lead to add as a variant of the bench targets.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Starts a registry on loopback with the given number of registered instances, then drives \
get, list, heartbeat and registration requests from concurrent keep-alive clients and prints requests per second and latency \
percentiles. SQLite always (in a temporary directory); PostgreSQL too when a database URL is given (a fresh \
database is created on that server and dropped afterwards)."
)]
pub struct RegistryBenchArgs {
    /// Instances registered before measuring
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// Concurrent closed-loop clients
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured time per operation
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Also measure PostgreSQL on this server
    #[arg(long, env = "MCPULSE_TEST_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

pub async fn bench(args: RegistryBenchArgs) -> Result<i32> {
    let report = mcpulse_registry::bench::bench(BenchOptions {
        instances: args.instances,
        clients: args.clients,
        duration: args.duration,
        database_url: args.database_url,
    })
    .await?;
    print!("{report}");
    Ok(0)
}
