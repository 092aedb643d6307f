//! The registry's Prometheus metrics: HTTP RED by route template, storage latency, fleet gauges.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use crate::storage::InstanceSummary;

/// OpenTelemetry's recommended boundaries for `http.server.request.duration`, in seconds.
const HTTP_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Database calls are expected to be faster than whole requests, so the scale starts lower.
const STORAGE_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Probe round trips: a healthy MCP server on a network answers a ping in milliseconds; the
/// upper buckets separate slow servers from timeouts (the default probe timeout is 3 s).
const PROBE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Heartbeat intervals: agents are expected to beat every few seconds to a minute.
const HEARTBEAT_BUCKETS: [f64; 10] = [1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// OTel HTTP semconv attributes mapped to Prometheus label names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub http_request_method: String,
    /// The route template (`/v0.1/servers/{serverName}/versions`), never the raw path.
    pub http_route: String,
    pub http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// `result` is one of a fixed set ([`crate::probe::ProbeResult::label`]), so the series stay bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Handles to every registry metric; cheap to clone, all clones record into the same series.
#[derive(Clone, Debug)]
pub struct RegistryMetrics {
    http_duration: HistogramFamily<HttpLabels>,
    storage_duration: HistogramFamily<OperationLabels>,
    storage_errors: Family<OperationLabels, Counter>,
    instances: Family<StateLabels, Gauge>,
    oldest_heartbeat_age: Gauge<f64, AtomicU64>,
    heartbeat_interval: Histogram,
    probe_duration: HistogramFamily<ResultLabels>,
    probes: Family<ResultLabels, Counter>,
}

impl RegistryMetrics {
    /// Creates the metrics and registers them on `registry` (the caller serves `/metrics`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests, by method, route template and status code",
            metrics.http_duration.clone(),
        );
        registry.register(
            "mcpulse_registry_storage_operation_duration_seconds",
            "Duration of registry storage operations, successful or not",
            metrics.storage_duration.clone(),
        );
        registry.register(
            "mcpulse_registry_storage_operation_errors",
            "Registry storage operations that failed (conflicts and not-found are not errors)",
            metrics.storage_errors.clone(),
        );
        registry.register(
            "mcpulse_registry_instances",
            "Registered MCP server instances by health state, as of the last refresh",
            metrics.instances.clone(),
        );
        registry.register(
            "mcpulse_registry_oldest_heartbeat_age_seconds",
            "Age of the oldest heartbeat among instances that are not gone (0 when there are none)",
            metrics.oldest_heartbeat_age.clone(),
        );
        registry.register(
            "mcpulse_registry_heartbeat_interval_seconds",
            "Time between consecutive heartbeats of one instance",
            metrics.heartbeat_interval.clone(),
        );
        registry.register(
            "mcpulse_registry_probe_duration_seconds",
            "Duration of active MCP probes (initialize, ping, session close) by result",
            metrics.probe_duration.clone(),
        );
        registry.register(
            "mcpulse_registry_probes",
            "Active MCP probes this replica ran, by result",
            metrics.probes.clone(),
        );
        metrics
    }

    /// Metrics that record but are exposed nowhere, for callers that do not scrape (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            http_duration: Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS)),
            storage_duration: Family::new_with_constructor(|| Histogram::new(STORAGE_BUCKETS)),
            storage_errors: Family::default(),
            instances: Family::default(),
            oldest_heartbeat_age: Gauge::default(),
            heartbeat_interval: Histogram::new(HEARTBEAT_BUCKETS),
            probe_duration: Family::new_with_constructor(|| Histogram::new(PROBE_BUCKETS)),
            probes: Family::default(),
        }
    }

    pub fn observe_probe(&self, result: &'static str, seconds: f64) {
        let labels = ResultLabels { result };
        self.probe_duration.get_or_create(&labels).observe(seconds);
        self.probes.get_or_create(&labels).inc();
    }

    pub fn observe_http(&self, labels: &HttpLabels, seconds: f64) {
        self.http_duration.get_or_create(labels).observe(seconds);
    }

    pub fn observe_storage(&self, operation: &'static str, seconds: f64, failed: bool) {
        let labels = OperationLabels { operation };
        self.storage_duration
            .get_or_create(&labels)
            .observe(seconds);
        if failed {
            self.storage_errors.get_or_create(&labels).inc();
        }
    }

    pub fn observe_heartbeat(&self, previous: OffsetDateTime, now: OffsetDateTime) {
        self.heartbeat_interval
            .observe((now - previous).as_seconds_f64().max(0.0));
    }

    /// Sets the fleet gauges from a storage summary taken at `now`.
    pub fn set_instances(&self, summary: &InstanceSummary, now: OffsetDateTime) {
        for (state, count) in [
            ("healthy", summary.healthy),
            ("unhealthy", summary.unhealthy),
            ("gone", summary.gone),
        ] {
            self.instances
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let age = summary
            .oldest_live_heartbeat
            .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        self.oldest_heartbeat_age.set(age);
    }
}
