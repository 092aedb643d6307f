//! `mcpulse scaler --kubernetes`: runs the McpAutoscaler controller in a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use mcpulse_kube::leader::LeaseConfig;
use mcpulse_kube::prometheus::PrometheusConfig;
use mcpulse_kube::{Options, Settings};

use crate::units::parse_duration;

#[derive(Args, Debug)]
#[command(after_long_help = "EXAMPLES:
  In a cluster (what deploy/kustomize/components/scaler runs), two replicas electing a leader:
    mcpulse scaler --kubernetes \\
      --prometheus-url http://kube-prometheus-stack-prometheus.monitoring:9090 \\
      --lease-name mcpulse-scaler --lease-namespace mcpulse

  Against the cluster of your kubeconfig, computing and reporting but changing nothing:
    mcpulse scaler --kubernetes --dry-run --prometheus-url http://localhost:9090

Install the CRD first: kubectl apply -f deploy/crds/mcpautoscaler.yaml

Every flag can also be set with the environment variable shown in its help.")]
pub struct ScalerArgs {
    /// Run as the Kubernetes controller of McpAutoscaler objects (the only mode of this command; on one
    /// machine, `mcpulse up` scales the local fleet)
    #[arg(long)]
    kubernetes: bool,

    /// Base URL of the Prometheus HTTP API
    #[arg(
        long,
        env = "MCPULSE_SCALER_PROMETHEUS_URL",
        value_name = "URL",
        default_value = "http://kube-prometheus-stack-prometheus.monitoring:9090"
    )]
    prometheus_url: String,

    /// File holding a bearer token for Prometheus, re-read on every query
    #[arg(
        long,
        env = "MCPULSE_SCALER_PROMETHEUS_TOKEN_FILE",
        value_name = "FILE"
    )]
    prometheus_token_file: Option<PathBuf>,

    /// PEM file of the CA that signed Prometheus's certificate (for https:// URLs)
    #[arg(long, env = "MCPULSE_SCALER_PROMETHEUS_CA_FILE", value_name = "FILE")]
    prometheus_ca_file: Option<PathBuf>,

    /// Per-query timeout for Prometheus
    #[arg(long, env = "MCPULSE_SCALER_PROMETHEUS_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    prometheus_timeout: Duration,

    /// Address of the listener serving /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "MCPULSE_SCALER_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9466"
    )]
    metrics_listen: SocketAddr,

    /// How often every McpAutoscaler is re-evaluated (as the HPA's sync period)
    #[arg(long, env = "MCPULSE_SCALER_SYNC_PERIOD", value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    sync_period: Duration,

    /// A per-pod series whose newest sample is older than this is stale: the autoscaler holds
    #[arg(long, env = "MCPULSE_SCALER_MAX_STALENESS", value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    max_staleness: Duration,

    /// Name of the coordination.k8s.io Lease used to elect one acting replica; unset runs without
    /// election (a single replica only)
    #[arg(long, env = "MCPULSE_SCALER_LEASE_NAME", value_name = "NAME")]
    lease_name: Option<String>,

    /// Namespace of the Lease (normally the controller's own)
    #[arg(
        long,
        env = "MCPULSE_SCALER_LEASE_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = "mcpulse"
    )]
    lease_namespace: String,

    /// This replica's identity in the Lease and in Events (the pod name; defaults to the hostname)
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    identity: Option<String>,

    /// Compute, report status and emit DryRun events, but change no target, HPA or pod
    #[arg(long, env = "MCPULSE_SCALER_DRY_RUN")]
    dry_run: bool,
}

/// Longest sync period or staleness accepted; beyond it the autoscaler reacts too late to be useful.
const MAX_PERIOD: Duration = Duration::from_secs(3600);

pub async fn run(args: ScalerArgs) -> Result<i32> {
    if !args.kubernetes {
        bail!(
            "mcpulse scaler only runs as the Kubernetes controller: pass --kubernetes (and install \
             deploy/crds/mcpautoscaler.yaml). To autoscale a local fleet, use `mcpulse up`."
        );
    }
    for (flag, value) in [
        ("--sync-period", args.sync_period),
        ("--max-staleness", args.max_staleness),
        ("--prometheus-timeout", args.prometheus_timeout),
    ] {
        if value.is_zero() || value > MAX_PERIOD {
            bail!("{flag} must be between 1s and 1h, got {value:?}");
        }
    }
    let identity = match args.identity.filter(|s| !s.trim().is_empty()) {
        Some(id) => id,
        None => std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("mcpulse-scaler-{}", std::process::id())),
    };
    let lease = args.lease_name.map(|name| LeaseConfig {
        name,
        namespace: args.lease_namespace.clone(),
        identity: identity.clone(),
        lease_duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    });
    let options = Options {
        prometheus: PrometheusConfig {
            url: args.prometheus_url,
            token_file: args.prometheus_token_file,
            ca_file: args.prometheus_ca_file,
            timeout: args.prometheus_timeout,
        },
        metrics_listen: args.metrics_listen,
        settings: Settings {
            sync_period: args.sync_period,
            dry_run: args.dry_run,
            max_staleness: args.max_staleness,
            ..Settings::default()
        },
        lease,
        identity,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    tracing::info!(
        dry_run = options.settings.dry_run,
        leader_election = options.lease.is_some(),
        "starting the McpAutoscaler controller"
    );
    mcpulse_kube::run(options).await?;
    Ok(0)
}
