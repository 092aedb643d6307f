//! Wiring for `mcpulse scaler --kubernetes`: client, Prometheus, leader election, metrics listener, controller.

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use prometheus_client::registry::Registry;

use crate::controller::{self, Context, FIELD_MANAGER, Settings};
use crate::error::KubeError;
use crate::leader::{self, Leadership, LeaseConfig};
use crate::metrics::{self, Metrics};
use crate::prometheus::{PrometheusConfig, PrometheusHttp};

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    pub prometheus: PrometheusConfig,
    pub metrics_listen: SocketAddr,
    pub settings: Settings,
    /// `None` runs without election: only for a single replica.
    pub lease: Option<LeaseConfig>,
    /// This replica's name in Events and the Lease (the pod name).
    pub identity: String,
    /// Reported as `mcpulse_build_info{version}`.
    pub version: String,
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(options: Options) -> Result<(), KubeError> {
    // kube's TLS takes the process-wide rustls provider; pick ring explicitly, so a binary that also links
    // another provider cannot leave the choice ambiguous (an error means one is already installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.map_err(|e| {
        KubeError::api(
            "connect to the API server (in-cluster service account or KUBECONFIG)",
            e,
        )
    })?;
    let prometheus = PrometheusHttp::new(&options.prometheus)?;
    let mut registry = Registry::default();
    mcpulse_telemetry::register_build_info(&mut registry, &options.version);
    let metrics = Metrics::register(&mut registry);
    let registry = Arc::new(registry);

    let leadership = match &options.lease {
        None => Leadership::fixed(true),
        Some(lease) => {
            let (tx, leadership) = leader::channel();
            let api: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
            tokio::spawn(leader::run(api, lease.clone(), tx));
            leadership
        }
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(options.identity.clone()),
        },
    );
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(options.metrics_listen).await?;
    tracing::info!(listen = %options.metrics_listen, "metrics listener up");
    let server = tokio::spawn(metrics::serve(listener, registry, ready_rx));
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(prometheus),
        recorder,
        metrics,
        leadership,
        options.settings,
        Arc::new(jiff::Timestamp::now),
    ));
    let result = controller::run(ctx, ready_tx).await;
    server.abort();
    result
}
