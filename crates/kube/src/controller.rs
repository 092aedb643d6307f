//! The reconciler: reads the target, its pods and Prometheus, runs the engine (and the forecast), then scales
//! the target (Direct) or raises an HPA's floor (Floor), records Events and writes the status.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use mcpulse_scaler::forecast::{
    Forecast, ForecastConfig, Forecaster, MAX_HISTORY_LIMIT, RefitPolicy, fill_gaps,
    prediction_trustworthy, predictive_replicas,
};
use mcpulse_scaler::{ConditionStatus, ControllerConfig, Decision, Scaler, Timestamp};
use serde_json::json;

use crate::crd::{
    DecisionStatus, ForecastStatus, McpAutoscaler, McpAutoscalerStatus, Mode, Plan, PredictiveSpec,
};
use crate::error::KubeError;
use crate::leader::Leadership;
use crate::metrics::{AutoscalerLabels, ForecastLabels, Metrics};
use crate::observe::{self, Fetched, PodView};
use crate::prometheus::{MetricsSource, RangeSeries};

/// Field manager of every write, so `kubectl get -o yaml --show-managed-fields` names us.
pub const FIELD_MANAGER: &str = "mcpulse-scaler";
/// Pods with a lower cost are deleted first when a ReplicaSet scales in.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Longest backoff after repeated failures of one autoscaler.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// First backoff after a failure.
const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// Retry after a write conflict: someone changed the object, re-read it soon.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);
/// Prometheus caps a range query at 11,000 points; stay below it.
const MAX_RANGE_POINTS: i64 = 10_000;
/// Mean backtest MASE above which a forecast is not acted on (1.0: no better than "next = now").
const TRUST_THRESHOLD: f64 = 1.0;

/// Controller-wide settings (flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every autoscaler is re-evaluated this often, like the HPA's `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// Compute and report, but write nothing to targets, HPAs or pods.
    pub dry_run: bool,
    /// A per-pod series whose newest sample is older than this counts as stale.
    pub max_staleness: Duration,
    /// The engine's controller-wide settings (tolerance, windows).
    pub engine: ControllerConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
            dry_run: false,
            max_staleness: Duration::from_secs(120),
            engine: ControllerConfig::default(),
        }
    }
}

/// The current time; injected so reconcile tests see fixed timestamps.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Per-autoscaler memory between reconciles: the engine's history, the last forecast, failures in a row.
struct Entry {
    scaler: Scaler,
    forecast: Option<CachedForecast>,
    /// The workload's forecaster and the end of the history it has seen: each step adds only the new points
    /// and refits the remembered model, selecting anew every few refits (see `Forecaster`).
    forecaster: Option<FollowedHistory>,
    /// The arrival rates the queue model read, for the rise since the window before.
    arrivals: observe::ArrivalHistory,
    failures: u32,
}

impl Entry {
    fn new(scaler: Scaler) -> Self {
        Self {
            scaler,
            forecast: None,
            forecaster: None,
            arrivals: observe::ArrivalHistory::default(),
            failures: 0,
        }
    }
}

pub(crate) struct FollowedHistory {
    spec: PredictiveSpec,
    pub(crate) forecaster: Forecaster,
    end: i64,
}

#[derive(Clone)]
struct CachedForecast {
    spec: PredictiveSpec,
    at: jiff::Timestamp,
    status: ForecastStatus,
    replicas: Option<i32>,
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub prometheus: Arc<dyn MetricsSource>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub leadership: Leadership,
    pub settings: Settings,
    pub clock: Clock,
    state: Mutex<HashMap<(String, String), Entry>>,
}

impl Context {
    pub fn new(
        client: Client,
        prometheus: Arc<dyn MetricsSource>,
        recorder: Recorder,
        metrics: Metrics,
        leadership: Leadership,
        settings: Settings,
        clock: Clock,
    ) -> Self {
        Self {
            client,
            prometheus,
            recorder,
            metrics,
            leadership,
            settings,
            clock,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Autoscalers the controller holds history for.
    pub fn tracked(&self) -> usize {
        self.with_state(|s| s.len())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut HashMap<(String, String), Entry>) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-written in a way that matters: recover it.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

/// Why a decision went the way it did: the `reason` label of `mcpulse_scaler_decisions_total` (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MetricAboveTarget,
    MetricBelowTarget,
    Predicted,
    BelowMinReplicas,
    AboveMaxReplicas,
    WithinTolerance,
    ScaleDownStabilized,
    MetricsUnavailable,
    FloorUpdated,
    FloorUnchanged,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetricAboveTarget => "MetricAboveTarget",
            Self::MetricBelowTarget => "MetricBelowTarget",
            Self::Predicted => "Predicted",
            Self::BelowMinReplicas => "BelowMinReplicas",
            Self::AboveMaxReplicas => "AboveMaxReplicas",
            Self::WithinTolerance => "WithinTolerance",
            Self::ScaleDownStabilized => "ScaleDownStabilized",
            Self::MetricsUnavailable => "MetricsUnavailable",
            Self::FloorUpdated => "FloorUpdated",
            Self::FloorUnchanged => "FloorUnchanged",
        }
    }
}

fn direction(from: i32, to: i32) -> &'static str {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => "up",
        std::cmp::Ordering::Less => "down",
        std::cmp::Ordering::Equal => "hold",
    }
}

/// A condition in Kubernetes shape; the transition time is kept when the status did not change.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.chars().take(1024).collect(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The engine's conditions (AbleToScale, ScalingActive, ScalingLimited) in Kubernetes shape.
fn engine_conditions(
    d: &Decision,
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    d.conditions
        .iter()
        .map(|c| {
            let type_ = format!("{:?}", c.type_);
            let mut k = condition(
                previous,
                &type_,
                c.status == ConditionStatus::True,
                c.reason,
                c.message.clone(),
                generation,
                now,
            );
            if c.status == ConditionStatus::Unknown {
                k.status = "Unknown".into();
            }
            k
        })
        .collect()
}

/// Reads and writes one autoscaler's target through its `scale` subresource.
fn target_api(
    client: &Client,
    ns: &str,
    obj: &McpAutoscaler,
) -> Result<Api<DynamicObject>, KubeError> {
    let r = &obj.spec.scale_target_ref;
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version.as_str()),
    };
    if version.is_empty() || r.kind.is_empty() || r.name.is_empty() {
        return Err(KubeError::spec(
            "scaleTargetRef",
            "apiVersion, kind and name must all be set, e.g. apps/v1 Deployment my-server",
        ));
    }
    // The plural of every scalable built-in (deployments, statefulsets, replicasets) and of most CRDs.
    let plural = format!("{}s", r.kind.to_ascii_lowercase());
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    Ok(Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    ))
}

fn key(obj: &McpAutoscaler) -> Result<(String, String), KubeError> {
    let ns = obj.namespace().ok_or_else(|| {
        KubeError::spec(
            "metadata.namespace",
            "McpAutoscaler is namespaced; the object has no namespace",
        )
    })?;
    Ok((ns, obj.name_any()))
}

/// One reconcile of one McpAutoscaler.
pub async fn reconcile(obj: Arc<McpAutoscaler>, ctx: Arc<Context>) -> Result<Action, KubeError> {
    if !ctx.leadership.is_leader() {
        // Followers only watch: the leader does every read of metrics and every write.
        return Ok(Action::requeue(ctx.settings.sync_period));
    }
    let started = Instant::now();
    let result = match reconcile_leader(&obj, &ctx).await {
        // Leadership moved mid-reconcile: nothing was written after the check, and nothing is wrong.
        Err(KubeError::NotLeader) => Ok(Action::requeue(ctx.settings.sync_period)),
        other => other,
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Ok(k) = key(&obj)
    {
        ctx.with_state(|s| {
            if let Some(e) = s.get_mut(&k) {
                e.failures = 0;
            }
        });
    }
    result
}

/// Retries failed reconciles with exponential backoff per autoscaler; conflicts retry almost at once.
pub fn error_policy(obj: Arc<McpAutoscaler>, error: &KubeError, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    tracing::warn!(autoscaler = %obj.name_any(), namespace = ?obj.namespace(), %error, "reconcile failed; retrying");
    if error.is_conflict() {
        return Action::requeue(CONFLICT_RETRY);
    }
    let failures = key(&obj).ok().map_or(1, |k| {
        ctx.with_state(|s| {
            s.get_mut(&k).map_or(1, |e| {
                e.failures = e.failures.saturating_add(1);
                e.failures
            })
        })
    });
    Action::requeue(backoff(failures))
}

/// `BASE_BACKOFF * 2^(failures-1)`, capped at [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BASE_BACKOFF.saturating_mul(1u32 << exp).min(MAX_BACKOFF)
}

async fn reconcile_leader(obj: &McpAutoscaler, ctx: &Context) -> Result<Action, KubeError> {
    let (ns, name) = key(obj)?;
    let now = (ctx.clock)();
    let labels = AutoscalerLabels {
        namespace: ns.clone(),
        autoscaler: name.clone(),
    };
    ctx.metrics
        .max_replicas
        .get_or_create(&labels)
        .set(i64::from(obj.spec.max_replicas));
    let plan = match obj.spec.plan() {
        Ok(p) => p,
        Err(KubeError::InvalidSpec { field, problem }) => {
            invalid_spec(obj, ctx, &field, &problem, now).await?;
            // Nothing to do until the spec changes.
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e),
    };
    let target = target_api(&ctx.client, &ns, obj)?;
    let target_name = &obj.spec.scale_target_ref.name;
    let scale = target.get_scale(target_name).await.map_err(|e| {
        KubeError::api(
            format!(
                "get scale of {} {target_name}",
                obj.spec.scale_target_ref.kind
            ),
            e,
        )
    })?;
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let status_replicas = scale.status.as_ref().map_or(0, |s| s.replicas);
    ctx.metrics
        .current_replicas
        .get_or_create(&labels)
        .set(i64::from(current));
    match obj.spec.mode {
        Mode::Direct => {
            let selector = scale
                .status
                .as_ref()
                .and_then(|s| s.selector.clone())
                .ok_or_else(|| KubeError::Target {
                    target: format!("{} {target_name}", obj.spec.scale_target_ref.kind),
                    problem:
                        "its scale subresource has no status.selector, so its pods cannot be found"
                            .into(),
                })?;
            let scaled = Scaled {
                api: &target,
                current,
                status_replicas,
                selector: &selector,
            };
            direct(obj, ctx, &plan, &scaled, now).await?;
        }
        Mode::Floor => floor(obj, ctx, &plan, current, now).await?,
    }
    Ok(Action::requeue(ctx.settings.sync_period))
}

/// Checked right before every write to a target, HPA or pod: leadership may have moved since the reconcile began.
fn ensure_leader(ctx: &Context) -> Result<(), KubeError> {
    if ctx.leadership.is_leader() {
        Ok(())
    } else {
        Err(KubeError::NotLeader)
    }
}

async fn publish(
    ctx: &Context,
    obj: &McpAutoscaler,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) -> Result<(), KubeError> {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    ctx.recorder
        .publish(&event, &obj.object_ref(&()))
        .await
        .map_err(|e| KubeError::api(format!("publish event {reason}"), e))
}

async fn write_status(
    ctx: &Context,
    obj: &McpAutoscaler,
    status: &McpAutoscalerStatus,
) -> Result<(), KubeError> {
    let (ns, name) = key(obj)?;
    let api: Api<McpAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "apiVersion": "mcpulse.io/v1alpha1",
        "kind": "McpAutoscaler",
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| KubeError::api(format!("patch status of McpAutoscaler {name}"), e))?;
    Ok(())
}

fn previous_conditions(obj: &McpAutoscaler) -> &[Condition] {
    obj.status.as_ref().map_or(&[], |s| s.conditions.as_slice())
}

async fn invalid_spec(
    obj: &McpAutoscaler,
    ctx: &Context,
    field: &str,
    problem: &str,
    now: jiff::Timestamp,
) -> Result<(), KubeError> {
    let message = format!("spec.{field}: {problem}");
    tracing::warn!(autoscaler = %obj.name_any(), %message, "invalid spec");
    if let Ok(k) = key(obj) {
        ctx.with_state(|s| s.remove(&k));
    }
    publish(
        ctx,
        obj,
        EventType::Warning,
        "InvalidSpec",
        "Validate",
        message.clone(),
    )
    .await?;
    let generation = obj.metadata.generation;
    let mut status = obj.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.conditions = vec![condition(
        previous_conditions(obj),
        "Ready",
        false,
        "InvalidSpec",
        message,
        generation,
        now,
    )];
    write_status(ctx, obj, &status).await
}

/// Fetches every metric; a failed query becomes that metric's `Unavailable` entry, so the engine holds or
/// only scales up (never down) on partial data. `Err` only when every query failed to reach Prometheus.
async fn fetch_metrics(
    ctx: &Context,
    plan: &Plan,
    ns: &str,
    now: jiff::Timestamp,
) -> (Vec<Fetched>, Vec<String>) {
    let mut fetched = Vec::with_capacity(plan.metrics.len());
    let mut problems = Vec::new();
    let now_secs = now.as_millisecond() as f64 / 1000.0;
    for (i, m) in plan.metrics.iter().enumerate() {
        let q = observe::queries(m, ns);
        let result = match ctx.prometheus.instant(&q.value).await {
            Err(e) => Err(e.to_string()),
            Ok(series) if series.is_empty() => Ok(Fetched::Empty),
            Ok(series) => match &q.freshness {
                None => Ok(Fetched::Series(series)),
                Some(fq) => match ctx.prometheus.instant(fq).await {
                    Err(e) => Err(e.to_string()),
                    Ok(newest) => {
                        let newest = newest
                            .iter()
                            .map(|s| s.value)
                            .filter(|v| v.is_finite())
                            .fold(f64::NEG_INFINITY, f64::max);
                        let age = now_secs - newest;
                        if age > ctx.settings.max_staleness.as_secs_f64() {
                            Ok(Fetched::Stale { age_seconds: age })
                        } else {
                            Ok(Fetched::Series(series))
                        }
                    }
                },
            },
        };
        match result {
            Ok(Fetched::Series(s)) => fetched.push(Fetched::Series(s)),
            Ok(other) => {
                problems.push(format!(
                    "metrics[{i}]: {}",
                    match &other {
                        Fetched::Empty => "Prometheus returned no series".to_owned(),
                        Fetched::Stale { age_seconds } =>
                            format!("newest sample is {age_seconds:.0}s old"),
                        Fetched::Series(_) => String::new(),
                    }
                ));
                fetched.push(other);
            }
            Err(e) => {
                problems.push(format!("metrics[{i}]: {e}"));
                // Carried to the engine as no data; the reason is in `problems` for the condition.
                fetched.push(Fetched::Empty);
            }
        }
    }
    (fetched, problems)
}

/// What prediction contributed this round.
enum Prediction {
    Disabled,
    /// The history could not be fetched or fitted; the message says why.
    Failed(String),
    Ready(CachedForecast),
}

async fn predict(
    ctx: &Context,
    obj: &McpAutoscaler,
    plan: &Plan,
    now: jiff::Timestamp,
) -> Prediction {
    let Some(p) = obj.spec.predictive.as_ref().filter(|p| p.enabled) else {
        return Prediction::Disabled;
    };
    let Ok(k) = key(obj) else {
        return Prediction::Disabled;
    };
    let step = jiff::SignedDuration::from_secs(i64::from(p.step_seconds));
    // Refit once per step: the history only gains a point per step.
    let cached = ctx.with_state(|s| s.get(&k).and_then(|e| e.forecast.clone()));
    if let Some(c) = cached
        && c.spec == *p
        && c.at.saturating_add(step).is_ok_and(|next| next > now)
    {
        return Prediction::Ready(c);
    }
    let step_seconds = i64::from(p.step_seconds).max(1);
    // On step boundaries, so that the next refit's history is this one shifted by whole steps.
    let end = now.as_second().div_euclid(step_seconds) * step_seconds;
    let span = p
        .seasonality
        .history_seconds()
        .min(MAX_RANGE_POINTS * i64::from(p.step_seconds));
    let horizon = p.look_ahead_steps();
    let config = ForecastConfig {
        horizon,
        max_history: usize::try_from(span / step_seconds + 1)
            .unwrap_or(MAX_HISTORY_LIMIT)
            .clamp(ForecastConfig::default().min_history, MAX_HISTORY_LIMIT),
        ..ForecastConfig::default()
    };
    let need = config.required_history();
    // A followed forecaster only needs the steps since it last looked; anything else reads the whole span.
    let followed = ctx
        .with_state(|s| s.get_mut(&k).and_then(|e| e.forecaster.take()))
        .filter(|f| f.continues(p, end, span));
    let start = followed
        .as_ref()
        .map_or(end - span, |f| f.end + step_seconds);
    let series = if start > end {
        Vec::new()
    } else {
        let range = ctx
            .prometheus
            .range(
                &p.query,
                start as f64,
                end as f64,
                Duration::from_secs(u64::try_from(p.step_seconds).unwrap_or(300)),
            )
            .await;
        match range {
            Ok(series) => series,
            Err(e) => {
                put_back(ctx, &k, followed);
                return Prediction::Failed(e.to_string());
            }
        }
    };
    let points = regular_history(&series, start, end, step_seconds);
    let stagger = ctx.with_state(|s| s.len());
    let spec = p.clone();
    // Fitting is CPU work: keep it off the async workers.
    let fitted = tokio::task::spawn_blocking(move || {
        let mut followed = match followed {
            Some(f) => f,
            None => match FollowedHistory::start(spec, config, end - span, step_seconds, stagger) {
                Ok(f) => f,
                Err(e) => return (None, Err(e.to_string())),
            },
        };
        let outcome = followed.advance(&points, end, need);
        (Some(followed), outcome)
    })
    .await;
    let (followed, outcome) = match fitted {
        Ok(fitted) => fitted,
        Err(e) => return Prediction::Failed(format!("the forecast task failed: {e}")),
    };
    put_back(ctx, &k, followed);
    let (f, realised, known) = match outcome {
        Ok(fitted) => fitted,
        Err(e) => return Prediction::Failed(e),
    };
    // The selection's backtest, and once its forecasts have met reality, how they fared.
    let errors: Vec<f64> = std::iter::once(f.mase).chain(realised).collect();
    let trusted = prediction_trustworthy(&errors, known, need, TRUST_THRESHOLD).is_ok();
    let window = f.points.iter().take(horizon);
    let peak = window.clone().fold(
        None,
        |acc: Option<mcpulse_scaler::forecast::ForecastPoint>, pt| match acc {
            Some(a) if a.upper >= pt.upper => Some(a),
            _ => Some(*pt),
        },
    );
    let (min, max) = (obj.spec.min_replicas.max(1), obj.spec.max_replicas.max(1));
    let replicas = trusted
        .then_some(plan.predictive_sizing)
        .flatten()
        .map(|sizing| {
            let r =
                predictive_replicas(&f, horizon, &sizing, min.unsigned_abs(), max.unsigned_abs());
            i32::try_from(r).unwrap_or(max)
        });
    let fmt = |v: f64| format!("{v:.3}");
    let status = ForecastStatus {
        time: Time(now),
        model: f.model.clone(),
        mase: fmt(f.mase),
        mean: peak.map_or_else(|| "0".into(), |pt| fmt(pt.mean)),
        lower: peak.map_or_else(|| "0".into(), |pt| fmt(pt.lower)),
        upper: peak.map_or_else(|| "0".into(), |pt| fmt(pt.upper)),
        trusted,
    };
    let cached = CachedForecast {
        spec: p.clone(),
        at: now,
        status,
        replicas,
    };
    if let Some(pt) = peak {
        for (bound, v) in [("mean", pt.mean), ("lower", pt.lower), ("upper", pt.upper)] {
            ctx.metrics
                .forecast
                .get_or_create(&ForecastLabels {
                    namespace: k.0.clone(),
                    autoscaler: k.1.clone(),
                    bound,
                })
                .set(v);
        }
    }
    ctx.with_state(|s| {
        if let Some(e) = s.get_mut(&k) {
            e.forecast = Some(cached.clone());
        }
    });
    Prediction::Ready(cached)
}

/// Returns the forecaster to the workload's entry (if it still has one), so a failed fetch or fit keeps
/// what it learned and the next step fetches only what it missed.
fn put_back(ctx: &Context, k: &(String, String), followed: Option<FollowedHistory>) {
    ctx.with_state(|s| {
        if let Some(e) = s.get_mut(k) {
            e.forecaster = followed;
        }
    });
}

impl FollowedHistory {
    /// A forecaster for `spec` that has seen nothing yet, as of the step before `start`.
    pub(crate) fn start(
        spec: PredictiveSpec,
        config: ForecastConfig,
        start: i64,
        step_seconds: i64,
        stagger: usize,
    ) -> Result<Self, mcpulse_scaler::ScalerError> {
        Ok(Self {
            spec,
            forecaster: Forecaster::new(config, RefitPolicy::default())?.with_stagger(stagger),
            end: start - step_seconds,
        })
    }

    /// Whether appending the steps after its own end brings this forecaster up to `end`: the same spec,
    /// not ahead of `end`, and a gap shorter than the history span (else the whole span is read anew).
    pub(crate) fn continues(&self, spec: &PredictiveSpec, end: i64, span: i64) -> bool {
        self.spec == *spec && self.end <= end && end - self.end < span
    }

    /// Appends `points` (the steps up to `end`), checks there is enough known history to forecast from,
    /// and forecasts: the forecast, its realised error so far, and the known points of the history. A
    /// batch with impossible values (negative, infinite) is refused whole and not counted as seen.
    pub(crate) fn advance(
        &mut self,
        points: &[f64],
        end: i64,
        need: usize,
    ) -> Result<(Forecast, Option<f64>, usize), String> {
        self.forecaster.observe(points).map_err(|e| e.to_string())?;
        self.end = end;
        let history = self.forecaster.history();
        let known = history.iter().filter(|v| v.is_finite()).count();
        prediction_trustworthy(&[], known, need, TRUST_THRESHOLD).map_err(|d| d.to_string())?;
        fill_gaps(history).map_err(|e| e.to_string())?;
        let refit = self.forecaster.forecast().map_err(|e| e.to_string())?;
        Ok((refit.forecast, self.forecaster.realised_mase(), known))
    }
}

/// Puts the range answer on a regular grid from `start` to `end` (NaN where a step has no point), summing
/// series if the query returned several.
pub fn regular_history(series: &[RangeSeries], start: i64, end: i64, step: i64) -> Vec<f64> {
    let step = step.max(1);
    let len = usize::try_from((end - start) / step + 1).unwrap_or(0);
    let mut out = vec![f64::NAN; len];
    for s in series {
        for &(t, v) in &s.points {
            if !v.is_finite() {
                continue;
            }
            let idx = ((t - start as f64) / step as f64).round();
            if idx < 0.0 || idx >= len as f64 {
                continue;
            }
            let slot = &mut out[idx as usize];
            *slot = if slot.is_nan() { v } else { *slot + v };
        }
    }
    out
}

fn prediction_condition(
    p: &Prediction,
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Option<Condition> {
    let (ok, reason, message) = match p {
        Prediction::Disabled => return None,
        Prediction::Failed(m) => (false, "ForecastUnavailable", m.clone()),
        Prediction::Ready(c) if c.status.trusted => (
            true,
            "ForecastTrusted",
            format!(
                "model {} (backtest MASE {}) asks for {} replicas",
                c.status.model,
                c.status.mase,
                c.replicas.unwrap_or(0)
            ),
        ),
        Prediction::Ready(c) => (
            false,
            "ForecastDistrusted",
            format!(
                "model {} has backtest MASE {}, above {TRUST_THRESHOLD}; scaling reactively only",
                c.status.model, c.status.mase
            ),
        ),
    };
    Some(condition(
        previous,
        "PredictionActive",
        ok,
        reason,
        message,
        generation,
        now,
    ))
}

/// The target as its scale subresource shows it.
struct Scaled<'a> {
    api: &'a Api<DynamicObject>,
    current: i32,
    status_replicas: i32,
    selector: &'a str,
}

async fn direct(
    obj: &McpAutoscaler,
    ctx: &Context,
    plan: &Plan,
    target: &Scaled<'_>,
    now: jiff::Timestamp,
) -> Result<(), KubeError> {
    let Scaled {
        api: target,
        current,
        status_replicas,
        selector,
    } = *target;
    let (ns, name) = key(obj)?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pods_api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| KubeError::api(format!("list pods of {selector}"), e))?;
    let views: Vec<PodView> = pods.items.iter().filter_map(observe::pod_view).collect();
    let (fetched, problems) = fetch_metrics(ctx, plan, &ns, now).await;
    let engine_now = Timestamp::from_millis(now.as_millisecond());
    let k = (ns.clone(), name.clone());
    // Observed outside the lock, on a copy of the remembered arrivals, which goes back with the decision.
    let mut arrivals =
        ctx.with_state(|s| s.get(&k).map(|e| e.arrivals.clone()).unwrap_or_default());
    let obs = observe::observation(
        current,
        status_replicas,
        &views,
        &plan.metrics,
        &fetched,
        engine_now,
        &mut arrivals,
    );
    let decision = ctx.with_state(|s| -> Result<Decision, KubeError> {
        let entry = match s.entry(k.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let e = o.into_mut();
                e.scaler.set_spec(&plan.engine)?;
                e
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry::new(Scaler::new(&plan.engine, ctx.settings.engine)?))
            }
        };
        entry.arrivals = arrivals;
        Ok(entry.scaler.decide(&obs, engine_now)?)
    })?;
    let prediction = predict(ctx, obj, plan, now).await;
    let reactive = decision.desired_replicas;
    let predicted = match &prediction {
        Prediction::Ready(c) => c.replicas,
        _ => None,
    };
    let held = ctx.with_state(|s| {
        s.get_mut(&k)
            .and_then(|entry| entry.scaler.hold_prediction(predicted, engine_now))
    });
    // Prediction only adds capacity, and never while the target is outside its bounds or scaling is off.
    let desired = match held {
        Some(p) if current > 0 && p > reactive => p.min(obj.spec.max_replicas),
        _ => reactive,
    };
    let reason = if desired > reactive {
        Reason::Predicted
    } else if current < obj.spec.min_replicas && desired != current {
        Reason::BelowMinReplicas
    } else if current > obj.spec.max_replicas && desired != current {
        Reason::AboveMaxReplicas
    } else if desired > current {
        Reason::MetricAboveTarget
    } else if desired < current {
        Reason::MetricBelowTarget
    } else if !problems.is_empty() {
        Reason::MetricsUnavailable
    } else if decision.raw_proposal.is_some_and(|p| p < current) {
        Reason::ScaleDownStabilized
    } else {
        Reason::WithinTolerance
    };
    let mut explanation = decision.log_line();
    if let Some(p) = predicted {
        explanation.push_str(&format!("; predictive={p}"));
    }
    if let Some(h) = held.filter(|h| Some(*h) != predicted) {
        explanation.push_str(&format!(
            "; predictive held at {h} within the scale-down window"
        ));
    }
    if desired > reactive {
        let action = if desired == current {
            format!("hold {current}")
        } else {
            format!(
                "scale {} {current} -> {desired}",
                direction(current, desired)
            )
        };
        explanation = format!("{action} for the forecast; reactive: {explanation}");
    }
    let dir = direction(current, desired);
    tracing::info!(namespace = %ns, autoscaler = %name, direction = dir, reason = reason.as_str(), %explanation, "decision");
    ctx.metrics
        .record_decision(&ns, &name, dir, reason.as_str(), desired);

    let mut scaled = false;
    if desired != current {
        if desired < current && !ctx.settings.dry_run {
            set_deletion_costs(ctx, &ns, &views).await?;
        }
        let kind = &obj.spec.scale_target_ref.kind;
        let target_name = &obj.spec.scale_target_ref.name;
        if ctx.settings.dry_run {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "DryRunScale",
                "Scale",
                format!("would scale {kind} {target_name}: {explanation}"),
            )
            .await?;
        } else {
            let body = json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": target_name, "namespace": ns},
                "spec": {"replicas": desired},
            });
            ensure_leader(ctx)?;
            target
                .patch_scale(
                    target_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|e| KubeError::api(format!("patch scale of {kind} {target_name}"), e))?;
            let event_reason = if desired > current {
                "ScaledUp"
            } else {
                "ScaledDown"
            };
            publish(
                ctx,
                obj,
                EventType::Normal,
                event_reason,
                "Scale",
                format!("{kind} {target_name}: {explanation}"),
            )
            .await?;
            scaled = true;
        }
    }

    let generation = obj.metadata.generation;
    let previous = previous_conditions(obj);
    let mut conditions = vec![
        condition(
            previous,
            "Ready",
            true,
            "Reconciled",
            format!(
                "{kind} {target} evaluated",
                kind = obj.spec.scale_target_ref.kind,
                target = obj.spec.scale_target_ref.name
            ),
            generation,
            now,
        ),
        if problems.is_empty() {
            condition(
                previous,
                "MetricsAvailable",
                true,
                "MetricsFetched",
                "every metric returned fresh values".into(),
                generation,
                now,
            )
        } else {
            let all_failed = problems.len() >= plan.metrics.len();
            condition(
                previous,
                "MetricsAvailable",
                false,
                if all_failed {
                    "PrometheusUnavailable"
                } else {
                    "SomeMetricsUnavailable"
                },
                format!(
                    "holding at {current} replicas at least (never scaling down on missing data): {}",
                    problems.join("; ")
                ),
                generation,
                now,
            )
        },
    ];
    conditions.extend(engine_conditions(&decision, previous, generation, now));
    conditions.extend(prediction_condition(&prediction, previous, generation, now));
    let mut status = obj.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.current_replicas = Some(current);
    status.desired_replicas = Some(desired);
    if scaled {
        status.last_scale_time = Some(Time(now));
    }
    status.last_decision = Some(DecisionStatus {
        time: Time(now),
        direction: match dir {
            "up" => "Up",
            "down" => "Down",
            _ => "Hold",
        }
        .to_owned(),
        reason: reason.as_str().to_owned(),
        reactive_replicas: reactive,
        predictive_replicas: predicted,
        explanation: explanation.chars().take(1024).collect(),
    });
    status.forecast = match prediction {
        Prediction::Ready(c) => Some(c.status),
        _ => None,
    };
    status.conditions = conditions;
    write_status(ctx, obj, &status).await
}

/// Before a scale-in, marks each pod with its active sessions as deletion cost, so the ReplicaSet
/// deletes the pods serving the fewest sessions first. Without session data the scale-in goes ahead unordered.
async fn set_deletion_costs(ctx: &Context, ns: &str, pods: &[PodView]) -> Result<(), KubeError> {
    let query = observe::sessions_query(ns);
    let sessions = match ctx.prometheus.instant(&query).await {
        Ok(s) => observe::sessions_per_pod(&s, pods),
        Err(e) => {
            tracing::warn!(namespace = %ns, error = %e, "no session counts; scaling in without pod-deletion-cost");
            return Ok(());
        }
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for pod in pods {
        let Some(count) = sessions.get(&pod.info.name) else {
            continue;
        };
        // The annotation is an int32; saturate rather than wrap on absurd counts.
        let cost = (*count).clamp(0, i64::from(i32::MAX)).to_string();
        if pod.deletion_cost.as_deref() == Some(cost.as_str()) {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {DELETION_COST: cost}}});
        ensure_leader(ctx)?;
        api.patch(
            &pod.info.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| {
            KubeError::api(
                format!("annotate pod {} with its deletion cost", pod.info.name),
                e,
            )
        })?;
    }
    Ok(())
}

async fn floor(
    obj: &McpAutoscaler,
    ctx: &Context,
    plan: &Plan,
    current: i32,
    now: jiff::Timestamp,
) -> Result<(), KubeError> {
    let (ns, name) = key(obj)?;
    let hpa_name = obj
        .spec
        .hpa_ref
        .as_ref()
        .map(|h| h.name.clone())
        .ok_or_else(|| KubeError::spec("hpaRef", "mode Floor needs hpaRef.name"))?;
    let k = (ns.clone(), name.clone());
    ctx.with_state(|s| -> Result<(), KubeError> {
        if let std::collections::hash_map::Entry::Vacant(v) = s.entry(k) {
            v.insert(Entry::new(Scaler::new(&plan.engine, ctx.settings.engine)?));
        }
        Ok(())
    })?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let hpa = hpas
        .get(&hpa_name)
        .await
        .map_err(|e| KubeError::api(format!("get HorizontalPodAutoscaler {hpa_name}"), e))?;
    let hpa_min = hpa.spec.as_ref().and_then(|s| s.min_replicas).unwrap_or(1);
    let hpa_max = hpa
        .spec
        .as_ref()
        .map_or(obj.spec.max_replicas, |s| s.max_replicas);
    let prediction = predict(ctx, obj, plan, now).await;
    // Untrusted prediction restores the configured floor; a failed fetch keeps whatever floor is set,
    // because lowering it on missing data could scale the fleet down.
    let floor = match &prediction {
        Prediction::Ready(c) => c.replicas.unwrap_or(obj.spec.min_replicas),
        Prediction::Failed(_) | Prediction::Disabled => hpa_min,
    }
    .clamp(
        obj.spec.min_replicas,
        obj.spec
            .max_replicas
            .min(hpa_max)
            .max(obj.spec.min_replicas),
    );
    let dir = direction(hpa_min, floor);
    let reason = if floor == hpa_min {
        Reason::FloorUnchanged
    } else {
        Reason::FloorUpdated
    };
    let explanation = format!(
        "HorizontalPodAutoscaler {hpa_name} minReplicas {hpa_min} -> {floor}{}",
        match &prediction {
            Prediction::Ready(c) => format!(
                " (forecast peak {} by model {}, trusted: {})",
                c.status.upper, c.status.model, c.status.trusted
            ),
            Prediction::Failed(m) => format!(" (forecast unavailable: {m})"),
            Prediction::Disabled => String::new(),
        }
    );
    ctx.metrics
        .record_decision(&ns, &name, dir, reason.as_str(), current.max(floor));
    if floor != hpa_min {
        if ctx.settings.dry_run {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "DryRunFloor",
                "SetFloor",
                format!("would set {explanation}"),
            )
            .await?;
        } else {
            let patch = json!({"spec": {"minReplicas": floor}});
            ensure_leader(ctx)?;
            hpas.patch(&hpa_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    KubeError::api(
                        format!("patch minReplicas of HorizontalPodAutoscaler {hpa_name}"),
                        e,
                    )
                })?;
            let event_reason = if floor > hpa_min {
                "FloorRaised"
            } else {
                "FloorLowered"
            };
            publish(
                ctx,
                obj,
                EventType::Normal,
                event_reason,
                "SetFloor",
                explanation.clone(),
            )
            .await?;
        }
    }
    let generation = obj.metadata.generation;
    let previous = previous_conditions(obj);
    let mut conditions = vec![condition(
        previous,
        "Ready",
        true,
        "Reconciled",
        format!("HorizontalPodAutoscaler {hpa_name} evaluated"),
        generation,
        now,
    )];
    conditions.extend(prediction_condition(&prediction, previous, generation, now));
    let mut status = obj.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.current_replicas = Some(current);
    status.desired_replicas = Some(current.max(floor));
    status.last_decision = Some(DecisionStatus {
        time: Time(now),
        direction: match dir {
            "up" => "Up",
            "down" => "Down",
            _ => "Hold",
        }
        .to_owned(),
        reason: reason.as_str().to_owned(),
        reactive_replicas: current,
        predictive_replicas: match &prediction {
            Prediction::Ready(c) => c.replicas,
            _ => None,
        },
        explanation,
    });
    status.forecast = match prediction {
        Prediction::Ready(c) => Some(c.status),
        _ => None,
    };
    status.conditions = conditions;
    write_status(ctx, obj, &status).await
}

/// Runs the controller until a termination signal: watches every McpAutoscaler, re-evaluates each one every
/// sync period, and reconciles all of them at once when this replica becomes leader.
pub async fn run(
    ctx: Arc<Context>,
    ready: tokio::sync::watch::Sender<bool>,
) -> Result<(), KubeError> {
    let api: Api<McpAutoscaler> = Api::all(ctx.client.clone());
    // Fail early with a fix when the CRD is missing, rather than a watch that retries forever.
    api.list(&ListParams::default().limit(1)).await.map_err(|e| {
        KubeError::api("list McpAutoscalers (is the CRD installed? kubectl apply -f deploy/crds/mcpautoscaler.yaml)", e)
    })?;
    ready.send_replace(true);
    let became_leader = futures::stream::unfold(ctx.leadership.subscribe(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    });
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    // Deleted autoscalers are never reconciled again: drop their history and series from the watch cache.
    let store = controller.store();
    let sweeper_ctx = ctx.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweeper_ctx.settings.sync_period.saturating_mul(4));
        loop {
            tick.tick().await;
            let live = store
                .state()
                .iter()
                .filter_map(|o| key(o).ok())
                .collect::<HashSet<_>>();
            sweep(&sweeper_ctx, &live);
        }
    });
    controller
        .reconcile_all_on(became_leader)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    sweeper.abort();
    Ok(())
}

/// Forgets every autoscaler not in `live`: its engine history, forecast and metric series.
pub fn sweep(ctx: &Context, live: &HashSet<(String, String)>) {
    let gone: Vec<(String, String)> = ctx.with_state(|s| {
        let gone: Vec<_> = s.keys().filter(|k| !live.contains(*k)).cloned().collect();
        for k in &gone {
            s.remove(k);
        }
        gone
    });
    for (ns, name) in gone {
        tracing::info!(namespace = %ns, autoscaler = %name, "autoscaler deleted; forgetting its history");
        ctx.metrics.forget(&ns, &name);
    }
}
