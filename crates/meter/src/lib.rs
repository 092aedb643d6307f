//! The metering proxy: a transparent reverse proxy for MCP streamable HTTP and stdio that records MCP metrics.

mod admin;
mod body;
pub mod config;
mod discovery;
mod observe;
mod pending;
mod pool;
mod proxy;
mod sessions;
mod stdio;
mod upstream;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mcpulse_telemetry::{CardinalityLimits, McpMetrics, ProcessCollector};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use config::{Admission, Discovery, MeterConfig, Mode, Upstream};

use crate::admin::Admin;
use crate::observe::Observer;
use crate::pending::PendingTable;
use crate::proxy::Proxy;
use crate::sessions::SessionTable;
use crate::upstream::UpstreamSet;

/// Largest number of sessions followed at once; past it the least recently seen is forgotten.
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("invalid setting `{field}`: {message}")]
    Config { field: String, message: String },
    #[error(
        "cannot listen on {addr}: {source}; is another process using it? pick another with --listen / --metrics-listen"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot start the proxy worker threads: {0}")]
    Workers(std::io::Error),
    #[error("every proxy worker thread has stopped; the meter exits so that it can be restarted")]
    WorkersStopped,
    #[error("stdio relay failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Addresses the meter actually listens on (useful when configured with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub proxy: Option<SocketAddr>,
    pub metrics: SocketAddr,
}

/// Runs the meter until `shutdown` resolves, then drains in-flight requests for up to the grace period.
/// `on_bound` learns the bound addresses once both listeners are up. In stdio mode it returns when the child
/// exits, with the child's exit code.
pub async fn run(
    config: MeterConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(Bound),
) -> Result<i32, MeterError> {
    config.validate()?;
    let mut registry = Registry::default();
    let metrics = McpMetrics::new(
        &mut registry,
        CardinalityLimits::new(
            config.label_limit,
            CardinalityLimits::default().max_value_bytes(),
        )
        .map_err(|e| MeterError::Config {
            field: "label-limit".into(),
            message: e.to_string(),
        })?,
    );
    registry.register_collector(Box::new(ProcessCollector::new()));
    mcpulse_telemetry::register_build_info(&mut registry, env!("CARGO_PKG_VERSION"));
    let dropped = Counter::default();
    registry.register(
        "mcpulse_meter_pending_dropped",
        "Requests forgotten without a response: expired after --pending-ttl or evicted past --max-pending",
        dropped.clone(),
    );

    let configured: &[Upstream] = match &config.mode {
        Mode::Http { upstreams, .. } => upstreams,
        Mode::Stdio { .. } => &[],
    };
    let upstreams = UpstreamSet::new(configured, config.admission, &metrics);
    let observer = Arc::new(Observer::new(
        metrics.clone(),
        PendingTable::new(config.max_pending, config.pending_ttl),
        SessionTable::new(configured.len(), MAX_SESSIONS),
        dropped,
    ));
    spawn_sweeper(observer.clone(), config.session_idle_timeout);

    let metrics_listener = bind(config.metrics_listen).await?;
    let metrics_addr = metrics_listener.local_addr()?;

    match config.mode.clone() {
        Mode::Stdio { command, args } => {
            let admin = Arc::new(Admin {
                registry,
                proxy: None,
                shutting_down: Default::default(),
            });
            tokio::spawn(serve_admin(metrics_listener, admin));
            on_bound(Bound {
                proxy: None,
                metrics: metrics_addr,
            });
            stdio::run(&command, &args, observer, config.max_body).await
        }
        Mode::Http { listen, .. } => {
            let listener = bind(listen).await?;
            let proxy_addr = listener.local_addr()?;
            let proxy = Arc::new(Proxy {
                upstreams,
                observer,
                config: config.clone(),
            });
            let admin = Arc::new(Admin {
                registry,
                proxy: Some(proxy.clone()),
                shutting_down: Default::default(),
            });
            tokio::spawn(serve_admin(metrics_listener, admin.clone()));
            if let Some(discovery) = config.discovery.clone() {
                tokio::spawn(discovery::run(discovery, proxy.clone()));
            }
            let workers = workers::start(
                config.workers,
                config.busy_poll,
                &proxy,
                config.shutdown_grace,
            )
            .map_err(MeterError::Workers)?;
            on_bound(Bound {
                proxy: Some(proxy_addr),
                metrics: metrics_addr,
            });
            serve_proxy(listener, workers, admin, config.shutdown_grace, shutdown).await?;
            Ok(0)
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, MeterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MeterError::Bind { addr, source })
}

fn connection_builder(client_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slow clients must not hold a connection open forever without sending a request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    builder
}

/// Accepts client connections until shutdown and hands each to a worker; then stops accepting and lets the
/// workers finish their in-flight exchanges within the grace period.
async fn serve_proxy(
    listener: TcpListener,
    workers: mcpulse_percore::Pool,
    admin: Arc<Admin>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MeterError> {
    let outcome = workers.accept_until(listener, shutdown).await.map_err(|_| {
        // Exiting lets the supervisor (kubelet, `mcpulse up`) restart a working meter.
        tracing::error!("every proxy worker thread has stopped; shutting down");
        MeterError::WorkersStopped
    });
    admin.shutting_down.store(true, Ordering::Relaxed);
    tracing::info!(
        ?grace,
        "shutting down: no new connections, finishing in-flight requests"
    );
    workers.shut_down().await;
    outcome
}

async fn serve_admin(listener: TcpListener, admin: Arc<Admin>) {
    let builder = connection_builder(Duration::from_secs(10));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let admin = admin.clone();
        let service = service_fn(move |request| admin.clone().handle(request));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

fn spawn_sweeper(observer: Arc<Observer>, idle: Duration) {
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            observer.sweep(idle, Instant::now());
        }
    });
}
