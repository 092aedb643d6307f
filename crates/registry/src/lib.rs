//! The mcpulse registry: an MCP server catalogue with the official registry's read API, and live instances.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod bench;
mod cache;
mod catalogue;
mod error;
pub mod instances;
mod metrics;
pub mod probe;
mod state;
pub mod storage;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::Role;
pub use cache::TOKEN_TTL;
pub use catalogue::{OFFICIAL_META_KEY, server_response};
pub use error::{FieldError, RegistryError};
pub use instances::{Cutoffs, HealthPolicy, HealthState};
pub use metrics::{HttpLabels, RegistryMetrics};
pub use probe::{ProbeSettings, Prober};
pub use state::{AppState, Clock, ServiceOptions};
pub use storage::{Storage, StorageConfig};

/// Everything `mcpulse registry` needs to run one replica.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where the API listens, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` serves them on no port of their own.
    pub metrics_listen: Option<SocketAddr>,
    pub storage: StorageConfig,
    pub options: ServiceOptions,
    /// Active MCP probing of instances; `None` judges health by heartbeats alone.
    pub probe: Option<ProbeSettings>,
    /// How often the instance gauges are recomputed from storage.
    pub gauge_refresh: Duration,
}

impl RegistryConfig {
    /// A configuration with default policies, probing on, and no metrics listener.
    pub fn new(listen: SocketAddr, storage: StorageConfig) -> Self {
        Self {
            listen,
            metrics_listen: None,
            storage,
            options: ServiceOptions::default(),
            probe: Some(ProbeSettings::default()),
            gauge_refresh: Duration::from_secs(10),
        }
    }
}

/// The HTTP API over `state`. The catalogue is served under `/v0.1` and, as an alias, `/v0`.
pub fn router(state: AppState) -> Router {
    let catalogue = Router::new()
        .route("/servers", get(catalogue::list_servers))
        .route(
            "/servers/{serverName}/versions",
            get(catalogue::server_versions),
        )
        .route(
            "/servers/{serverName}/versions/{version}",
            get(catalogue::server_version)
                .put(catalogue::immutable_version)
                .delete(catalogue::immutable_version),
        )
        .route(
            "/servers/{serverName}/versions/{version}/status",
            patch(catalogue::set_version_status),
        )
        .route(
            "/servers/{serverName}/status",
            patch(catalogue::set_server_status),
        )
        .route("/publish", post(catalogue::publish));
    let instances = Router::new()
        .route("/", get(instances::list).post(instances::register))
        .route("/{id}", get(instances::get).delete(instances::deregister))
        .route("/{id}/heartbeat", post(instances::heartbeat));
    let body_limit = state.options().body_limit;
    Router::new()
        .nest("/v0.1", catalogue.clone())
        .nest("/v0", catalogue)
        .nest("/api/v1/instances", instances)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .fallback(unknown_route)
        // The JSON error every other failure uses instead of axum's bare 405; axum adds Allow.
        .method_not_allowed_fallback(method_not_allowed)
        // Records every request, matched or not, under its route template.
        .layer(middleware::from_fn_with_state(state.clone(), record_http))
        // Bounds what a client can make the server buffer; extractors turn excess into 413.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Result<&'static str, RegistryError> {
    state.storage().ping().await.map(|()| "ready")
}

async fn unknown_route() -> RegistryError {
    RegistryError::NotFound(
        "no such endpoint; the catalogue is under /v0.1/servers and instances under /api/v1/instances".to_owned(),
    )
}

async fn method_not_allowed() -> RegistryError {
    RegistryError::MethodNotAllowed(
        "this endpoint does not accept that method; the Allow header lists the ones it does"
            .to_owned(),
    )
}

/// OTel semconv: methods outside the standard set are reported as `_OTHER` to bound cardinality.
fn method_label(method: &Method) -> String {
    match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::CONNECT
        | Method::OPTIONS
        | Method::TRACE
        | Method::PATCH => method.as_str().to_owned(),
        _ => "_OTHER".to_owned(),
    }
}

async fn record_http(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The template, never the raw path, so names and ids do not become label values.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let labels = HttpLabels {
        http_request_method: method,
        http_route: route,
        http_response_status_code: response.status().as_u16(),
    };
    state
        .metrics()
        .observe_http(&labels, start.elapsed().as_secs_f64());
    response
}

/// A bound, not yet serving, registry: lets callers learn the ports before serving.
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    prometheus: Arc<Registry>,
    prober: Option<Prober>,
    gauge_refresh: Duration,
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, RegistryError> {
    listener.local_addr().map_err(|source| RegistryError::Io {
        action: "read the address of",
        path: "the listener".to_owned(),
        source,
    })
}

impl Server {
    pub fn local_addr(&self) -> Result<SocketAddr, RegistryError> {
        local_addr(&self.listener)
    }

    /// The address of the metrics listener, when one is configured.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, RegistryError> {
        self.admin.as_ref().map(local_addr).transpose()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RegistryError> {
        let addr = self.local_addr()?;
        // Every background task watches this; dropping the sender tells them all to stop.
        let (stop, stopped) = watch::channel(());
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
            }
        };
        let refresher = tokio::spawn(refresh_gauges(self.state.clone(), self.gauge_refresh));
        let prober = self.prober.map(|p| tokio::spawn(p.run(until_stopped())));
        let admin = match self.admin {
            Some(listener) => Some(tokio::spawn(admin::serve(
                listener,
                self.state.clone(),
                self.prometheus.clone(),
                until_stopped(),
            ))),
            None => None,
        };
        let result = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                drop(stop);
            })
            .await;
        refresher.abort();
        if let Some(prober) = prober {
            let _ = prober.await;
        }
        if let Some(admin) = admin
            && let Ok(Err(e)) = admin.await
        {
            tracing::warn!(error = %e, "metrics listener failed");
        }
        result.map_err(|source| RegistryError::Io {
            action: "serve on",
            path: addr.to_string(),
            source,
        })
    }
}

async fn refresh_gauges(state: AppState, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // A failed refresh leaves the previous values; the storage error counter shows why.
        if let Err(e) = state.refresh_gauges().await {
            tracing::warn!(error = %e, "cannot refresh instance gauges");
        }
    }
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, RegistryError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RegistryError::Io {
            action: "listen on",
            path: addr.to_string(),
            source,
        })
}

/// Opens storage, registers the metrics and binds the listeners.
pub async fn bind(config: RegistryConfig) -> Result<Server, RegistryError> {
    config.options.health.validate()?;
    if let Some(probe) = &config.probe {
        probe.validate()?;
    }
    if config.gauge_refresh.is_zero() {
        return Err(RegistryError::Config(
            "gauge refresh interval must be positive".to_owned(),
        ));
    }
    let mut prometheus = Registry::default();
    let metrics = RegistryMetrics::register(&mut prometheus);
    prometheus.register_collector(Box::new(mcpulse_telemetry::ProcessCollector::new()));
    mcpulse_telemetry::register_build_info(&mut prometheus, env!("CARGO_PKG_VERSION"));
    let storage = storage::open(&config.storage).await?;
    let state = AppState::new(storage, config.options, metrics);
    let listener = listen(config.listen).await?;
    let admin = match config.metrics_listen {
        Some(addr) => Some(listen(addr).await?),
        None => None,
    };
    let prober = config
        .probe
        .map(|settings| Prober::new(state.clone(), settings))
        .transpose()?;
    Ok(Server {
        listener,
        admin,
        state,
        prometheus: Arc::new(prometheus),
        prober,
        gauge_refresh: config.gauge_refresh,
    })
}

/// Runs one registry replica until `shutdown` completes.
pub async fn serve(
    config: RegistryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    let server = bind(config).await?;
    tracing::info!(
        addr = %server.local_addr()?,
        metrics = ?server.metrics_addr()?,
        "registry listening"
    );
    server.run(shutdown).await
}

/// Creates a token and returns it; it is shown only this once (only its hash is stored).
pub async fn create_token(
    storage: &StorageConfig,
    role: Role,
    namespace: Option<String>,
) -> Result<String, RegistryError> {
    let (token, record) = auth::generate(role, namespace)?;
    storage::open(storage)
        .await?
        .insert_token(&record, time::OffsetDateTime::now_utc())
        .await?;
    Ok(token)
}

/// Revokes a token given either the token itself or its id (the 16 hex digits after `mcpr_`).
/// Running replicas trust a token they checked for [`TOKEN_TTL`], so they refuse it at most
/// that long after this returns.
pub async fn revoke_token(storage: &StorageConfig, token_or_id: &str) -> Result<(), RegistryError> {
    let id = auth::token_id(token_or_id).unwrap_or(token_or_id);
    let revoked = storage::open(storage)
        .await?
        .revoke_token(id, time::OffsetDateTime::now_utc())
        .await?;
    if revoked {
        Ok(())
    } else {
        Err(RegistryError::NotFound(format!(
            "no live token with id '{id}'; it may be revoked already"
        )))
    }
}
