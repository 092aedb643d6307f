//! A sample MCP server with tunable cost, in-process MCP metrics, self-registration and graceful drain.
//!
//! [`run`] serves MCP at `/mcp` on [`AgentConfig::listen`] and `/metrics`, `/healthz`, `/readyz` on
//! [`AgentConfig::metrics_listen`]. Its `work` tool burns CPU and sleeps on a bounded worker pool,
//! so a fleet of agents queues, saturates and scales like a real one.
#![forbid(unsafe_code)]

mod config;
mod error;
mod http;
mod pool;
mod registration;
mod server;
mod threads;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware;
use axum::serve::ListenerExt;
use mcpulse_telemetry::{
    CardinalityLimits, McpMetrics, ProcessCollector, Registry, register_build_info,
};
use rmcp::model::Implementation;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    AgentConfig, CostDefaults, MAX_CPU_MS, MAX_IO_THREADS, MAX_QUEUE, MAX_RESPONSE_BYTES,
    MAX_SLEEP_MS, MAX_WORKERS, RegistrationConfig,
};
pub use error::AgentError;
pub use server::{EchoArgs, SATURATED_CODE, WorkArgs};

use crate::http::{Admin, Gate, Phase};
use crate::pool::{FaultDice, Pool};
use crate::registration::Registrar;
use crate::server::{Agent, Shared};

/// The addresses the agent actually listens on (port 0 in the configuration becomes a real port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// MCP, served at `/mcp`.
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics: SocketAddr,
}

/// How long the connection threads give MCP connections to close once sessions are cancelled,
/// before cutting them off.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` completes, then drains: `/readyz` fails, the instance is deregistered,
/// new sessions (stateless: all new requests) are refused, in-flight requests finish (up to
/// [`AgentConfig::drain_timeout`]), and the listeners close. `on_bound` learns the real addresses
/// before serving starts.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), AgentError> {
    config.validate()?;
    let mut registry = Registry::default();
    register_build_info(&mut registry, &config.version);
    let metrics = McpMetrics::new(&mut registry, CardinalityLimits::default());
    registry.register_collector(Box::new(ProcessCollector::new()));

    let mcp_listener = bind("MCP", config.listen).await?;
    let admin_listener = bind("metrics", config.metrics_listen).await?;
    let bound = Bound {
        listen: local_addr("MCP", &mcp_listener)?,
        metrics: local_addr("metrics", &admin_listener)?,
    };

    // The pool is the agent's one "upstream": its queue and in-flight gauges carry the server name.
    let pool_metrics = metrics.upstream(&config.server_name);
    let exchanges = TaskTracker::new();
    let shared = Arc::new(Shared {
        pool: Pool::new(config.workers, config.max_queue, pool_metrics.clone()),
        metrics,
        pool_metrics,
        dice: FaultDice::new(config.seed, config.defaults.error_rate),
        defaults: config.defaults,
        server_info: Implementation::new(config.server_name.clone(), config.version.clone()),
        tools: Agent::tool_router(),
        stateless: config.stateless,
    });
    let phase = Arc::new(Phase::default());

    let sessions = CancellationToken::new();
    // The connection threads outlive any runtime: whichever way this function ends (an error, or its
    // future dropped), they must stop serving and drain.
    let _stop_connection_threads = sessions.clone().drop_guard();
    let mcp_app = mcp_router(config.stateless, shared, sessions.child_token())
        // Once draining, turns away requests that would start new work; tracks answers in flight.
        .layer(middleware::from_fn_with_state(
            Gate {
                phase: Arc::clone(&phase),
                exchanges: exchanges.clone(),
                stateless: config.stateless,
            },
            http::gate,
        ));
    let admin_app = http::admin_router(Admin {
        registry: Arc::new(registry),
        phase: Arc::clone(&phase),
    });

    let connection_threads = threads::start(
        config.io_threads,
        config.busy_poll,
        &mcp_app,
        &sessions,
        CLOSE_GRACE,
    )
    .map_err(|source| AgentError::Serve {
        what: "MCP",
        source,
    })?;
    let mut mcp_task = tokio::spawn(threads::serve(
        mcp_listener,
        connection_threads,
        sessions.clone(),
    ));
    let admin_stop = CancellationToken::new();
    let mut admin_task = serve_admin(admin_listener, admin_app, admin_stop.clone());

    let registration_stop = CancellationToken::new();
    let registration = match &config.registration {
        Some(registration) => {
            let endpoint = registration
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("http://{}/mcp", bound.listen));
            let registrar =
                Registrar::new(registration, &config.server_name, &config.version, endpoint)?;
            Some(tokio::spawn(registrar.maintain(registration_stop.clone())))
        }
        None => None,
    };

    on_bound(bound);
    tracing::info!(mcp = %bound.listen, metrics = %bound.metrics, "agent serving");

    tokio::select! {
        () = shutdown => {}
        result = &mut mcp_task => return stopped("MCP", result),
        result = &mut admin_task => return stopped("metrics", result),
    }

    let drain_started = Instant::now();
    phase.not_ready();
    registration_stop.cancel();
    if let Some(task) = registration {
        // Deregistering is bounded by the registry request timeout inside the task.
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "registration task ended abnormally");
        }
    }
    phase.draining();
    exchanges.close();
    let left = config.drain_timeout.saturating_sub(drain_started.elapsed());
    if tokio::time::timeout(left, exchanges.wait()).await.is_err() {
        tracing::warn!(timeout = ?config.drain_timeout, "drain timeout reached; cutting off in-flight requests");
    }
    sessions.cancel();
    // Bounded: each connection thread cuts off what is still open after CLOSE_GRACE.
    let mcp_result = stopped("MCP", mcp_task.await);
    admin_stop.cancel();
    let admin_result = stopped("metrics", admin_task.await);
    tracing::info!(took = ?drain_started.elapsed(), "agent drained");
    mcp_result.and(admin_result)
}

/// `/mcp` in the configured mode. Stateful keeps one handler per session in memory and answers
/// every POST as an event stream; stateless builds a handler per request, keeps nothing between
/// requests, and answers a plain call with one JSON body.
fn mcp_router(stateless: bool, shared: Arc<Shared>, stop: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        // Fleet replicas are reached by pod IP or service name, never only as localhost.
        .disable_allowed_hosts()
        .with_cancellation_token(stop);
    let handler = move || Ok(Agent::new(Arc::clone(&shared)));
    if stateless {
        let config = config
            .with_legacy_session_mode(false)
            .with_json_response(true);
        Router::new().nest_service(
            "/mcp",
            StreamableHttpService::new(handler, Arc::new(NeverSessionManager::default()), config),
        )
    } else {
        Router::new().nest_service(
            "/mcp",
            StreamableHttpService::new(handler, Arc::new(LocalSessionManager::default()), config),
        )
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { what, addr, source })
}

fn local_addr(what: &'static str, listener: &TcpListener) -> Result<SocketAddr, AgentError> {
    listener
        .local_addr()
        .map_err(|source| AgentError::Serve { what, source })
}

/// Serves the metrics listener on the caller's runtime: scrapes are rare, so its latency matters little.
fn serve_admin(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
) -> JoinHandle<Result<(), AgentError>> {
    // Nagle's algorithm would hold back the small final writes of an answer (an event stream's
    // closing chunk) until the client's delayed ACK, up to 40 ms per exchange.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot disable Nagle's algorithm on a connection");
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .map_err(|source| AgentError::Serve {
                what: "metrics",
                source,
            })
    })
}

fn stopped(
    what: &'static str,
    result: Result<Result<(), AgentError>, tokio::task::JoinError>,
) -> Result<(), AgentError> {
    result.map_err(|e| AgentError::Serve {
        what,
        source: std::io::Error::other(e.to_string()),
    })?
}
