//! The `McpAutoscaler` custom resource (`mcpulse.io/v1alpha1`): spec, status and the spec's translation into the engine's.

use k8s_openapi::api::autoscaling::v2 as k8s_v2;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use mcpulse_scaler::sizing::{self, PodSizing, QueueModel};
use mcpulse_scaler::{
    AutoscalerSpec, HorizontalPodAutoscalerBehavior, MetricSpec, MetricTarget, MetricTargetType,
    Quantity, ResourceMetricSource,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::KubeError;

/// API group of every mcpulse resource.
pub const GROUP: &str = "mcpulse.io";
/// Most metrics one McpAutoscaler may list (the engine's bound).
pub const MAX_METRICS: usize = mcpulse_scaler::MAX_METRICS;
/// Longest PromQL expression accepted; real ones are a few hundred characters.
pub const MAX_QUERY_LEN: usize = 4096;
/// Look-ahead bounds, in seconds: at least one minute, at most one day.
const LOOK_AHEAD_RANGE: std::ops::RangeInclusive<i32> = 60..=86_400;
/// Forecast step bounds, in seconds.
const STEP_RANGE: std::ops::RangeInclusive<i32> = 60..=3600;

/// Scales a fleet of MCP servers on their own signals (queue depth, in-flight requests, any PromQL) and
/// CPU/memory, with HPA semantics, optionally ahead of time from a forecast.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "mcpulse.io",
    version = "v1alpha1",
    kind = "McpAutoscaler",
    namespaced,
    status = "McpAutoscalerStatus",
    shortname = "mcpas",
    category = "mcpulse",
    derive = "PartialEq",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"}"#,
    printcolumn = r#"{"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"}"#,
    printcolumn = r#"{"name": "Current", "type": "integer", "jsonPath": ".status.currentReplicas"}"#,
    printcolumn = r#"{"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.maxReplicas >= self.minReplicas").message("maxReplicas must be greater than or equal to minReplicas"),
    validation = Rule::new("self.mode != 'Floor' || has(self.hpaRef)").message("mode Floor needs hpaRef, the HorizontalPodAutoscaler whose minReplicas is raised"),
    validation = Rule::new("self.mode != 'Floor' || (has(self.predictive) && self.predictive.enabled)").message("mode Floor only writes a predicted floor: enable predictive"),
    validation = Rule::new("!has(self.predictive) || has(self.predictive.capacityPerPod) || has(self.queueModel)").message("predictive needs capacityPerPod, or a queueModel to size the forecast with")
)]
#[serde(rename_all = "camelCase")]
pub struct McpAutoscalerSpec {
    /// The workload whose `scale` subresource is read (and, in Direct mode, written).
    pub scale_target_ref: ScaleTargetRef,
    /// Lower bound of replicas, at least 1.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Upper bound of replicas, at least minReplicas.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Direct: the controller sets the target's replicas. Floor: it raises an existing HPA's minReplicas
    /// to the predicted need and leaves the HPA in charge.
    #[serde(default)]
    pub mode: Mode,
    /// The HorizontalPodAutoscaler (same namespace) that Floor mode writes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_ref: Option<HpaRef>,
    /// What to scale on; the highest proposal wins, as in an HPA. Empty means CPU at 80 % of requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub metrics: Vec<McpMetric>,
    /// Scaling behavior exactly as `autoscaling/v2` HorizontalPodAutoscaler `spec.behavior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<k8s_v2::HorizontalPodAutoscalerBehavior>")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// Forecast the load and add capacity ahead of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive: Option<PredictiveSpec>,
    /// Size the fleet by queueing: the fewest pods whose p95 latency and mean queue wait meet their
    /// objectives. When set, every sync also sizes the fleet for the pods' arrival rate
    /// (`mcp_messages_total` requests) plus their backlog (`mcp_requests_in_flight` beyond the workers),
    /// as one more metric; and a forecast without `capacityPerPod` is sized the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_model: Option<QueueModelSpec>,
}

fn default_min_replicas() -> i32 {
    1
}

/// Which workload to scale, as `scaleTargetRef` of an HPA.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// e.g. `apps/v1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// e.g. `Deployment`; any kind with a `scale` subresource.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

fn default_api_version() -> String {
    "apps/v1".to_owned()
}

#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The controller owns the target's `scale` subresource.
    #[default]
    Direct,
    /// The controller writes the predicted floor into the HPA named by `hpaRef`.
    Floor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "Direct",
            Self::Floor => "Floor",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HpaRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpMetricType {
    /// CPU or memory of the pods against their requests (cAdvisor through Prometheus).
    Resource,
    /// Admission-queue depth per pod (`mcp_queue_depth` from the mcpulse meter).
    QueueDepth,
    /// Requests in flight per pod (`mcp_requests_in_flight` from the mcpulse meter).
    InFlight,
    /// Any PromQL expression; its series are summed, as an HPA External metric.
    PromQL,
}

/// One signal to scale on: `type` names the one member that must be set, as in an HPA's metrics.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(
    validation = Rule::new("(self.type == 'Resource') == has(self.resource)").message("set resource exactly when type is Resource"),
    validation = Rule::new("(self.type == 'QueueDepth') == has(self.queueDepth)").message("set queueDepth exactly when type is QueueDepth"),
    validation = Rule::new("(self.type == 'InFlight') == has(self.inFlight)").message("set inFlight exactly when type is InFlight"),
    validation = Rule::new("(self.type == 'PromQL') == has(self.promql)").message("set promql exactly when type is PromQL")
)]
#[serde(rename_all = "camelCase")]
pub struct McpMetric {
    #[serde(rename = "type")]
    pub type_: McpMetricType,
    /// As an HPA Resource metric; `name` is `cpu` or `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<k8s_v2::ResourceMetricSource>")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<PerPodTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<PerPodTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promql: Option<PromQlMetric>,
}

/// The average per pod to hold the fleet at.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PerPodTarget {
    /// A Kubernetes quantity, e.g. `"4"` or `"500m"`.
    #[schemars(with = "k8s_openapi::apimachinery::pkg::api::resource::Quantity")]
    pub average_value: Quantity,
}

#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromQlMetric {
    /// A short name for explanations and events, e.g. `tool-latency`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// An instant-vector or scalar expression; all returned series are summed.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// `Value` (the sum against the target) or `AverageValue` (the sum per replica against the target).
    #[schemars(with = "k8s_v2::MetricTarget")]
    pub target: MetricTarget,
}

#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// Detect the periods from the history (two days of it).
    #[default]
    Auto,
    /// A daily pattern: fit on a week of history.
    Daily,
    /// A weekly pattern: fit on two weeks of history.
    Weekly,
    /// No pattern: fit on a day of history.
    None,
}

impl Seasonality {
    /// History to fetch, in seconds: enough cycles for the season detector to find the pattern.
    pub fn history_seconds(self) -> i64 {
        const DAY: i64 = 86_400;
        match self {
            Self::Auto => 2 * DAY,
            Self::Daily => 7 * DAY,
            Self::Weekly => 14 * DAY,
            Self::None => DAY,
        }
    }
}

/// Predictive scaling: the replicas applied are `max(reactive, predicted)`, so a forecast only adds
/// capacity early and never takes any away.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The load signal to forecast, e.g. `sum(rate(mcp_messages_total{namespace="agents"}[5m]))`.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// Load one pod serves at the desired utilization, in the query's unit. Unset, the spec's
    /// `queueModel` sizes the forecast, and the query must give requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>")]
    pub capacity_per_pod: Option<Quantity>,
    #[serde(default)]
    pub seasonality: Seasonality,
    /// How far ahead capacity must be ready: the pods' start-up time plus a margin.
    #[serde(default = "default_look_ahead")]
    #[schemars(range(min = 60, max = 86400))]
    pub look_ahead_seconds: i32,
    /// Spacing of the history and forecast points.
    #[serde(default = "default_step")]
    #[schemars(range(min = 60, max = 3600))]
    pub step_seconds: i32,
}

fn default_true() -> bool {
    true
}

fn default_look_ahead() -> i32 {
    600
}

fn default_step() -> i32 {
    300
}

/// One pod as a queue (M/M/c: `concurrencyPerPod` workers sharing `capacityPerPod` requests/s), and the
/// objectives the fleet must meet.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueModelSpec {
    /// Requests per second one pod completes when all its workers are busy (measure it with `mcpulse
    /// load` against one pod).
    #[schemars(with = "k8s_openapi::apimachinery::pkg::api::resource::Quantity")]
    pub capacity_per_pod: Quantity,
    /// Requests one pod serves at once: its workers or concurrency limit.
    #[schemars(range(min = 1, max = 4096))]
    pub concurrency_per_pod: i32,
    /// Objective on the p95 latency of a request (queue wait plus service), milliseconds.
    #[schemars(range(min = 1, max = 600000))]
    pub latency_p95_milliseconds: i32,
    /// Objective on the mean time a request waits for a worker, milliseconds.
    #[schemars(range(min = 1, max = 600000))]
    pub queue_wait_milliseconds: i32,
    /// The objectives hold over windows this long, so the fleet is sized for the busiest such window's
    /// arrivals, not just the mean rate: a few pods get relatively more headroom than many.
    #[serde(default = "default_burst_window")]
    #[schemars(range(min = 1, max = 3600))]
    pub burst_window_seconds: i32,
    /// Window of the arrival rate (`rate(mcp_messages_total[...])`): short reacts sooner, but must hold
    /// at least two scrapes.
    #[serde(default = "default_rate_window")]
    #[schemars(range(min = 10, max = 3600))]
    pub rate_window_seconds: i32,
    /// Seconds from ordering a pod to it serving: a backlog grows this long before new pods help.
    #[serde(default = "default_pod_startup")]
    #[schemars(range(min = 0, max = 3600))]
    pub pod_startup_seconds: i32,
    /// A backlog (requests beyond the workers, and those it will gain until new pods are ready) is
    /// provisioned to drain within this, on top of the arrivals.
    #[serde(default = "default_backlog_drain")]
    #[schemars(range(min = 1, max = 3600))]
    pub backlog_drain_seconds: i32,
}

fn default_burst_window() -> i32 {
    15
}

fn default_rate_window() -> i32 {
    30
}

fn default_pod_startup() -> i32 {
    60
}

fn default_backlog_drain() -> i32 {
    30
}

/// The queue model with what the sizing metric needs beyond it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSizing {
    pub model: QueueModel,
    pub max_pods: u32,
    pub rate_window_seconds: u32,
    pub lead_seconds: f64,
    pub drain_seconds: f64,
}

const MAX_OBJECTIVE_MILLISECONDS: i32 = 600_000;

impl QueueModelSpec {
    /// The engine's model, checked: fields in range, and a latency objective some pod count can meet.
    pub fn model(&self) -> Result<QueueModel, KubeError> {
        let field = "queueModel";
        for (name, v, range) in [
            (
                "concurrencyPerPod",
                self.concurrency_per_pod,
                1..=i32::try_from(sizing::MAX_CONCURRENCY).unwrap_or(i32::MAX),
            ),
            (
                "latencyP95Milliseconds",
                self.latency_p95_milliseconds,
                1..=MAX_OBJECTIVE_MILLISECONDS,
            ),
            (
                "queueWaitMilliseconds",
                self.queue_wait_milliseconds,
                1..=MAX_OBJECTIVE_MILLISECONDS,
            ),
            ("burstWindowSeconds", self.burst_window_seconds, 1..=3600),
            ("rateWindowSeconds", self.rate_window_seconds, 10..=3600),
            ("podStartupSeconds", self.pod_startup_seconds, 0..=3600),
            ("backlogDrainSeconds", self.backlog_drain_seconds, 1..=3600),
        ] {
            if !range.contains(&v) {
                return Err(KubeError::spec(
                    format!("{field}.{name}"),
                    format!(
                        "must be within {}..={}, got {v}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let model = QueueModel {
            pod_capacity_rps: self.capacity_per_pod.as_f64(),
            concurrency: self.concurrency_per_pod.unsigned_abs(),
            latency_p95_seconds: f64::from(self.latency_p95_milliseconds) / 1000.0,
            queue_wait_seconds: f64::from(self.queue_wait_milliseconds) / 1000.0,
            burst_window_seconds: f64::from(self.burst_window_seconds),
            burst_sigmas: sizing::DEFAULT_BURST_SIGMAS,
        };
        model.validate(field).map_err(engine_spec_error)?;
        Ok(model)
    }

    /// The checked model with the metric's settings, for a fleet of at most `max_pods`.
    pub fn sizing(&self, max_pods: u32) -> Result<QueueSizing, KubeError> {
        Ok(QueueSizing {
            model: self.model()?,
            max_pods,
            rate_window_seconds: self.rate_window_seconds.unsigned_abs(),
            lead_seconds: f64::from(self.pod_startup_seconds),
            drain_seconds: f64::from(self.backlog_drain_seconds),
        })
    }
}

/// What the controller saw and did, for `kubectl describe` and dashboards.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct McpAutoscalerStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<DecisionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// `Ready`, `MetricsAvailable`, `AbleToScale`, `ScalingActive`, `ScalingLimited`, `PredictionActive`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The last decision and why it was taken.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStatus {
    pub time: Time,
    /// `Up`, `Down` or `Hold`.
    pub direction: String,
    /// A short CamelCase reason, also the `reason` label of `mcpulse_scaler_decisions_total`.
    pub reason: String,
    /// Replicas the reactive engine asked for.
    pub reactive_replicas: i32,
    /// Replicas the forecast asked for, when prediction was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive_replicas: Option<i32>,
    /// One line: what happened, which metric drove it, and what held it back.
    pub explanation: String,
}

/// The forecast over the look-ahead window (its highest point).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    pub time: Time,
    /// The chosen model, e.g. `mstl[288]+ets(AAdN)`.
    pub model: String,
    /// Backtest MASE as a decimal string; below 1 beats "the next step equals this one".
    pub mase: String,
    pub mean: String,
    pub lower: String,
    pub upper: String,
    /// Whether the forecast was good enough to act on.
    pub trusted: bool,
}

/// Where one metric's values come from, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricPlan {
    /// CPU or memory usage per pod against the pods' requests.
    Resource { resource: ResourceKind },
    /// A gauge exported per pod by the meter, averaged across pods.
    PerPod { metric: &'static str },
    /// A PromQL expression whose series are summed.
    PromQl { query: String },
    /// Pods for the pods' arrival rate plus their backlog (in flight beyond the workers), by the queue
    /// model; the count is the metric's value, against a target of one per pod.
    QueueModel(QueueSizing),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Cpu,
    Memory,
}

/// The gauge behind `QueueDepth`.
pub const QUEUE_DEPTH_METRIC: &str = "mcp_queue_depth";
/// The gauge behind `InFlight`.
pub const IN_FLIGHT_METRIC: &str = "mcp_requests_in_flight";
/// The name of the queue-model metric in decisions and explanations.
pub const QUEUE_MODEL_METRIC: &str = "queue_model_replicas";

/// A spec ready to run: the engine's spec and, per metric in the same order, where its values come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub engine: AutoscalerSpec,
    pub metrics: Vec<MetricPlan>,
    /// How the forecast is turned into pods, when prediction is configured: `capacityPerPod` when set,
    /// else the queue model.
    pub predictive_sizing: Option<PodSizing>,
}

impl McpAutoscalerSpec {
    /// Checks what the schema cannot (or what an API server without CEL would let through) and translates
    /// the spec into the engine's; the engine then checks behavior and targets with HPA rules.
    pub fn plan(&self) -> Result<Plan, KubeError> {
        if self.min_replicas < 1 {
            return Err(KubeError::spec(
                "minReplicas",
                format!("must be at least 1, got {}", self.min_replicas),
            ));
        }
        if self.max_replicas < self.min_replicas {
            return Err(KubeError::spec(
                "maxReplicas",
                format!(
                    "must be greater than or equal to minReplicas ({}), got {}",
                    self.min_replicas, self.max_replicas
                ),
            ));
        }
        if self.mode == Mode::Floor && self.hpa_ref.is_none() {
            return Err(KubeError::spec(
                "hpaRef",
                "mode Floor needs hpaRef.name, the HorizontalPodAutoscaler whose minReplicas is raised",
            ));
        }
        if self.mode == Mode::Floor && !self.predictive.as_ref().is_some_and(|p| p.enabled) {
            return Err(KubeError::spec(
                "predictive",
                "mode Floor only writes a predicted floor: set predictive.enabled and predictive.query",
            ));
        }
        let queue_model = self
            .queue_model
            .as_ref()
            .map(|q| q.sizing(self.max_replicas.unsigned_abs()))
            .transpose()?;
        let predictive_sizing = match &self.predictive {
            None => None,
            Some(p) => {
                p.check()?;
                Some(match (p.capacity_per_pod, &queue_model) {
                    (Some(c), _) => PodSizing::Capacity {
                        per_pod: c.as_f64(),
                    },
                    (None, Some(q)) => PodSizing::Queue(q.model),
                    (None, None) => {
                        return Err(KubeError::spec(
                            "predictive.capacityPerPod",
                            "is needed to turn the forecast into pods: set it (load one pod serves, in the query's unit), \
                             or set queueModel and forecast requests per second",
                        ));
                    }
                })
            }
        };
        if self.metrics.len() > MAX_METRICS {
            return Err(KubeError::spec(
                "metrics",
                format!(
                    "lists {} metrics, at most {MAX_METRICS} are accepted",
                    self.metrics.len()
                ),
            ));
        }
        let mut engine_metrics = Vec::with_capacity(self.metrics.len());
        let mut plans = Vec::with_capacity(self.metrics.len());
        for (i, m) in self.metrics.iter().enumerate() {
            let (spec, plan) = m.plan(i)?;
            engine_metrics.push(spec);
            plans.push(plan);
        }
        if plans.is_empty() {
            // The engine's default (CPU at 80 %) needs CPU samples, so plan for them; with a queue model
            // listed below, the default is spelled out, since the engine only applies it to an empty list.
            plans.push(MetricPlan::Resource {
                resource: ResourceKind::Cpu,
            });
            if queue_model.is_some() {
                engine_metrics.push(MetricSpec::resource_utilization(
                    "cpu",
                    mcpulse_scaler::DEFAULT_CPU_UTILIZATION,
                ));
            }
        }
        if let Some(sizing) = queue_model {
            // The value is already a pod count, so one unit per pod.
            engine_metrics.push(MetricSpec::external(
                QUEUE_MODEL_METRIC,
                MetricTarget::average_value(Quantity::from_units(1)),
            ));
            plans.push(MetricPlan::QueueModel(sizing));
        }
        let engine = AutoscalerSpec {
            min_replicas: Some(self.min_replicas),
            max_replicas: self.max_replicas,
            metrics: engine_metrics,
            behavior: self.behavior.clone(),
        };
        // Resolve once here so a bad behavior or target is reported as a spec error, with its field.
        engine.resolve(300).map_err(engine_spec_error)?;
        Ok(Plan {
            engine,
            metrics: plans,
            predictive_sizing,
        })
    }
}

/// An engine spec error as the controller reports it: with its field, like the controller's own checks.
fn engine_spec_error(e: mcpulse_scaler::ScalerError) -> KubeError {
    match e {
        mcpulse_scaler::ScalerError::InvalidSpec { field, problem } => {
            KubeError::spec(field, problem)
        }
        other => KubeError::Engine(other),
    }
}

impl McpMetric {
    fn plan(&self, i: usize) -> Result<(MetricSpec, MetricPlan), KubeError> {
        let field = format!("metrics[{i}]");
        let set: Vec<&str> = [
            ("resource", self.resource.is_some()),
            ("queueDepth", self.queue_depth.is_some()),
            ("inFlight", self.in_flight.is_some()),
            ("promql", self.promql.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        let expected = match self.type_ {
            McpMetricType::Resource => "resource",
            McpMetricType::QueueDepth => "queueDepth",
            McpMetricType::InFlight => "inFlight",
            McpMetricType::PromQL => "promql",
        };
        if set != [expected] {
            return Err(KubeError::spec(
                format!("{field}.{expected}"),
                format!(
                    "type is {:?}, so set {expected} and no other member (set: {})",
                    self.type_,
                    if set.is_empty() {
                        "none".to_owned()
                    } else {
                        set.join(", ")
                    }
                ),
            ));
        }
        match (
            &self.resource,
            &self.queue_depth,
            &self.in_flight,
            &self.promql,
        ) {
            (Some(r), None, None, None) => {
                let resource = match r.name.as_str() {
                    "cpu" => ResourceKind::Cpu,
                    "memory" => ResourceKind::Memory,
                    other => {
                        return Err(KubeError::spec(
                            format!("{field}.resource.name"),
                            format!("{other:?} is not read from Prometheus; use cpu or memory"),
                        ));
                    }
                };
                let spec = MetricSpec {
                    type_: mcpulse_scaler::MetricSourceType::Resource,
                    object: None,
                    pods: None,
                    resource: Some(r.clone()),
                    container_resource: None,
                    external: None,
                };
                Ok((spec, MetricPlan::Resource { resource }))
            }
            (None, Some(t), None, None) => Ok((
                MetricSpec::pods_average(QUEUE_DEPTH_METRIC, t.average_value),
                MetricPlan::PerPod {
                    metric: QUEUE_DEPTH_METRIC,
                },
            )),
            (None, None, Some(t), None) => Ok((
                MetricSpec::pods_average(IN_FLIGHT_METRIC, t.average_value),
                MetricPlan::PerPod {
                    metric: IN_FLIGHT_METRIC,
                },
            )),
            (None, None, None, Some(p)) => {
                check_query(&format!("{field}.promql.query"), &p.query)?;
                if p.target.type_ == MetricTargetType::Utilization {
                    return Err(KubeError::spec(
                        format!("{field}.promql.target.type"),
                        "a PromQL metric takes a Value or AverageValue target, not Utilization",
                    ));
                }
                Ok((
                    MetricSpec::external(&p.name, p.target.clone()),
                    MetricPlan::PromQl {
                        query: p.query.clone(),
                    },
                ))
            }
            // Unreachable after the member check above; reported rather than panicking.
            _ => Err(KubeError::spec(
                field,
                "set exactly the member named by type",
            )),
        }
    }
}

impl PredictiveSpec {
    fn check(&self) -> Result<(), KubeError> {
        check_query("predictive.query", &self.query)?;
        if let Some(c) = self.capacity_per_pod
            && c.milli() <= 0
        {
            return Err(KubeError::spec(
                "predictive.capacityPerPod",
                format!("must be greater than zero, got {c}"),
            ));
        }
        if !LOOK_AHEAD_RANGE.contains(&self.look_ahead_seconds) {
            return Err(KubeError::spec(
                "predictive.lookAheadSeconds",
                format!("must be within 60..=86400, got {}", self.look_ahead_seconds),
            ));
        }
        if !STEP_RANGE.contains(&self.step_seconds) {
            return Err(KubeError::spec(
                "predictive.stepSeconds",
                format!("must be within 60..=3600, got {}", self.step_seconds),
            ));
        }
        Ok(())
    }

    /// Forecast steps that cover the look-ahead (at least one).
    pub fn look_ahead_steps(&self) -> usize {
        let steps = (self.look_ahead_seconds.max(1) + self.step_seconds.max(1) - 1)
            / self.step_seconds.max(1);
        usize::try_from(steps).unwrap_or(1).max(1)
    }
}

fn check_query(field: &str, query: &str) -> Result<(), KubeError> {
    if query.trim().is_empty() || query.len() > MAX_QUERY_LEN {
        return Err(KubeError::spec(
            field,
            format!("must be a PromQL expression of 1..={MAX_QUERY_LEN} characters"),
        ));
    }
    Ok(())
}

/// The CRD, with `apiVersion` and `kind` declared at the top of the schema as controller-gen does, so
/// strict validators (which refuse undeclared fields) accept every object the API server accepts.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
    use kube::CustomResourceExt;
    let mut crd = McpAutoscaler::crd();
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let properties = schema.properties.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "apiVersion",
                "APIVersion defines the versioned schema of this representation of an object.",
            ),
            (
                "kind",
                "Kind is a string value representing the REST resource this object represents.",
            ),
        ] {
            properties
                .entry(name.to_owned())
                .or_insert_with(|| JSONSchemaProps {
                    type_: Some("string".to_owned()),
                    description: Some(description.to_owned()),
                    ..JSONSchemaProps::default()
                });
        }
    }
    crd
}

/// Renders the CRD as YAML, what `crdgen` prints and `deploy/crds/mcpautoscaler.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd())
}
