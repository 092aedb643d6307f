//! The controller's own metrics (names the dashboards query), registered once, and the metrics listener.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::error::KubeError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AutoscalerLabels {
    pub namespace: String,
    pub autoscaler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForecastLabels {
    pub namespace: String,
    pub autoscaler: String,
    /// `mean`, `lower` or `upper`.
    pub bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub namespace: String,
    pub autoscaler: String,
    /// `up`, `down` or `hold`.
    pub direction: &'static str,
    /// One of a fixed set of CamelCase reasons (see `controller::Reason`).
    pub reason: &'static str,
}

/// Every family the controller records.
#[derive(Clone)]
pub struct Metrics {
    pub desired_replicas: Family<AutoscalerLabels, Gauge>,
    pub current_replicas: Family<AutoscalerLabels, Gauge>,
    pub max_replicas: Family<AutoscalerLabels, Gauge>,
    pub forecast: Family<ForecastLabels, Gauge<f64, AtomicU64>>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub reconcile_errors: Counter,
    pub reconcile_duration: Histogram,
}

impl Metrics {
    /// Counts one decision and sets the replicas it asked for.
    pub fn record_decision(
        &self,
        namespace: &str,
        autoscaler: &str,
        direction: &'static str,
        reason: &'static str,
        desired: i32,
    ) {
        let labels = DecisionLabels {
            namespace: namespace.to_owned(),
            autoscaler: autoscaler.to_owned(),
            direction,
            reason,
        };
        self.decisions.get_or_create(&labels).inc();
        let target = AutoscalerLabels {
            namespace: namespace.to_owned(),
            autoscaler: autoscaler.to_owned(),
        };
        self.desired_replicas
            .get_or_create(&target)
            .set(i64::from(desired));
    }

    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            desired_replicas: Family::default(),
            current_replicas: Family::default(),
            max_replicas: Family::default(),
            forecast: Family::default(),
            decisions: Family::default(),
            reconcile_errors: Counter::default(),
            // 1 ms to ~16 s: a reconcile is a few API calls and queries, a forecast refit the slow tail.
            reconcile_duration: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15),
            ),
        };
        registry.register(
            "mcpulse_scaler_desired_replicas",
            "Replicas the autoscaler wants for its target",
            m.desired_replicas.clone(),
        );
        registry.register(
            "mcpulse_scaler_current_replicas",
            "Replicas the target has (its scale subresource's spec.replicas)",
            m.current_replicas.clone(),
        );
        registry.register(
            "mcpulse_scaler_max_replicas",
            "The autoscaler's maxReplicas",
            m.max_replicas.clone(),
        );
        registry.register(
            "mcpulse_scaler_forecast",
            "Forecast of the predictive signal over the look-ahead: mean and interval bounds",
            m.forecast.clone(),
        );
        registry.register(
            "mcpulse_scaler_decisions",
            "Scaling decisions by direction and reason",
            m.decisions.clone(),
        );
        registry.register(
            "mcpulse_scaler_reconcile_errors",
            "Reconciles that failed and were retried with backoff",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "mcpulse_scaler_reconcile_duration_seconds",
            "Time taken by one reconcile",
            m.reconcile_duration.clone(),
        );
        m
    }

    /// Drops an autoscaler's series once it is gone, so deleted autoscalers do not linger on dashboards.
    pub fn forget(&self, namespace: &str, autoscaler: &str) {
        let labels = AutoscalerLabels {
            namespace: namespace.to_owned(),
            autoscaler: autoscaler.to_owned(),
        };
        self.desired_replicas.remove(&labels);
        self.current_replicas.remove(&labels);
        self.max_replicas.remove(&labels);
        for bound in ["mean", "lower", "upper"] {
            self.forecast.remove(&ForecastLabels {
                namespace: namespace.to_owned(),
                autoscaler: autoscaler.to_owned(),
                bound,
            });
        }
    }
}

#[derive(Clone)]
struct Listener {
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
}

/// `/metrics`, `/healthz` (the process answers) and `/readyz` (the controller's watch has started).
pub fn router(registry: Arc<Registry>, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; this listener serves /metrics, /healthz and /readyz\n",
            )
        })
        .with_state(Listener { registry, ready })
}

/// Serves the metrics listener on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
) -> Result<(), KubeError> {
    axum::serve(listener, router(registry, ready)).await?;
    Ok(())
}

async fn metrics(State(l): State<Listener>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let scrape = mcpulse_telemetry::scrape(&l.registry, accept);
    let status = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = HeaderValue::from_static(scrape.content_type);
    (status, [(header::CONTENT_TYPE, content_type)], scrape.body).into_response()
}

async fn readyz(State(l): State<Listener>) -> Response {
    if *l.ready.borrow() {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller has not started its watch yet\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_exactly_the_names_the_dashboards_query() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let labels = AutoscalerLabels {
            namespace: "agents".into(),
            autoscaler: "web".into(),
        };
        m.desired_replicas.get_or_create(&labels).set(3);
        m.current_replicas.get_or_create(&labels).set(2);
        m.max_replicas.get_or_create(&labels).set(10);
        m.forecast
            .get_or_create(&ForecastLabels {
                namespace: "agents".into(),
                autoscaler: "web".into(),
                bound: "upper",
            })
            .set(1.5);
        m.decisions
            .get_or_create(&DecisionLabels {
                namespace: "agents".into(),
                autoscaler: "web".into(),
                direction: "up",
                reason: "MetricAboveTarget",
            })
            .inc();
        m.reconcile_errors.inc();
        let text = mcpulse_telemetry::encode(&registry, mcpulse_telemetry::Format::PrometheusText)
            .expect("encodes");
        for needle in [
            r#"mcpulse_scaler_desired_replicas{namespace="agents",autoscaler="web"} 3"#,
            r#"mcpulse_scaler_current_replicas{namespace="agents",autoscaler="web"} 2"#,
            r#"mcpulse_scaler_max_replicas{namespace="agents",autoscaler="web"} 10"#,
            r#"mcpulse_scaler_forecast{namespace="agents",autoscaler="web",bound="upper"} 1.5"#,
            r#"mcpulse_scaler_decisions_total{namespace="agents",autoscaler="web",direction="up",reason="MetricAboveTarget"} 1"#,
            "mcpulse_scaler_reconcile_errors_total 1",
            "mcpulse_scaler_reconcile_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.forget("agents", "web");
        let text = mcpulse_telemetry::encode(&registry, mcpulse_telemetry::Format::PrometheusText)
            .expect("encodes");
        assert!(
            !text.contains(r#"mcpulse_scaler_desired_replicas{"#),
            "forgotten autoscalers leave no series"
        );
    }
}
