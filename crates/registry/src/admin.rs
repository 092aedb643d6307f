//! The metrics listener: `/metrics` (Prometheus or OpenMetrics text), `/healthz` and `/readyz`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::RegistryError;
use crate::state::AppState;

#[derive(Clone)]
struct Admin {
    state: AppState,
    prometheus: Arc<Registry>,
}

/// The metrics listener's routes over `state` and the Prometheus registry holding its metrics.
pub fn router(state: AppState, prometheus: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; this listener serves /metrics, /healthz and /readyz\n",
            )
        })
        .with_state(Admin { state, prometheus })
}

/// Serves the metrics listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    prometheus: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    axum::serve(listener, router(state, prometheus))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| RegistryError::Io {
            action: "serve",
            path: "the metrics listener".to_owned(),
            source,
        })
}

async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let scrape = mcpulse_telemetry::scrape(&admin.prometheus, accept);
    let status = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = HeaderValue::from_static(scrape.content_type);
    (status, [(header::CONTENT_TYPE, content_type)], scrape.body).into_response()
}

/// Ready when the database answers: a replica that cannot reach it can serve nothing.
async fn ready(State(admin): State<Admin>) -> Response {
    match admin.state.storage().ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer; see the registry log\n",
            )
                .into_response()
        }
    }
}
