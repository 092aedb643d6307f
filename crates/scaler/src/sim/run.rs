//! The replay loop: one shared arrival stream, one deployment per policy, and the per-policy report.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::error::SimError;
use super::model::Deployment;
use super::predict::{Band, LoadPredictor};
use super::rng::Rng;
use super::trace::Trace;
use crate::engine::{ControllerConfig, Scaler};
use crate::quantity::Quantity;
use crate::replicas::{MetricObservation, Observation, PodInfo, PodPhase, PodSample};
use crate::sizing::{EarlierRate, QueueModel, catch_up_rate};
use crate::spec::{
    AutoscalerSpec, HorizontalPodAutoscalerBehavior, HpaScalingRules, MetricSpec, MetricTarget,
};
use crate::time::Timestamp;

/// Most ticks one run may take; bounds memory (a few vectors of this length) and time.
const MAX_TICKS: usize = 4_000_000;
/// Most points kept for the plot.
const MAX_TIMELINE_POINTS: usize = 5000;
/// Forecast errors (at the lead time that matters) remembered for the switch-off rule.
const ERROR_WINDOW: usize = 48;
/// Errors needed before the prediction is trusted at all.
const MIN_ERROR_PAIRS: usize = 12;
/// Longest history handed to a predictor.
const MAX_PREDICTOR_HISTORY: usize = 20_000;
/// Most replicas a simulated deployment may have.
const MAX_SIM_REPLICAS: u32 = 5000;

/// A scaling policy the simulator can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// Kubernetes HPA on CPU utilization.
    HpaCpu,
    /// Kubernetes HPA on requests in flight per pod (AverageValue).
    HpaQueue,
    /// The HPA engine on CPU and in-flight plus a predicted-load metric: `max(reactive, predictive)`.
    Mcpulse,
    /// Knows the future arrivals: the fewest pods that meet the SLO, started ahead of need.
    Oracle,
}

impl PolicyKind {
    pub const ALL: [Self; 4] = [Self::HpaCpu, Self::HpaQueue, Self::Mcpulse, Self::Oracle];

    pub fn name(self) -> &'static str {
        match self {
            Self::HpaCpu => "hpa-cpu",
            Self::HpaQueue => "hpa-queue",
            Self::Mcpulse => "mcpulse",
            Self::Oracle => "oracle",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                SimError::config(
                    "policy",
                    format!("unknown policy {s:?}; choose hpa-cpu, hpa-queue, mcpulse or oracle"),
                )
            })
    }
}

/// The modelled deployment, metrics pipeline, SLO and policy targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// Requests per second one pod serves when saturated.
    pub pod_capacity_rps: f64,
    /// Workers per pod; service time mean is `concurrency / pod_capacity_rps`.
    pub pod_concurrency: u32,
    /// CPU of an idle pod, as a fraction of its one-core request.
    pub idle_cpu: f64,
    /// From pod creation to ready.
    #[serde(serialize_with = "as_secs")]
    pub startup: Duration,
    /// Simulation resolution.
    #[serde(serialize_with = "as_secs")]
    pub tick: Duration,
    /// HPA sync period (a multiple of `tick`).
    #[serde(serialize_with = "as_secs")]
    pub sync_period: Duration,
    /// How often metrics are scraped.
    #[serde(serialize_with = "as_secs")]
    pub scrape_interval: Duration,
    /// Window metrics are averaged (rated) over.
    #[serde(serialize_with = "as_secs")]
    pub rate_window: Duration,
    /// Extra delay of the metrics pipeline (adapter cache, relist).
    #[serde(serialize_with = "as_secs")]
    pub metric_delay: Duration,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// CPU utilization target, percent of request.
    pub cpu_target_percent: i32,
    /// In-flight requests per pod target of `hpa-queue`.
    pub queue_target_per_pod: f64,
    /// CPU utilization target of `mcpulse` (it can run hotter: the prediction brings capacity early).
    pub mcpulse_cpu_target_percent: i32,
    /// Margin added to the predicted load before the predictive half sizes the fleet for it: the
    /// prediction is turned into the fewest pods that meet the SLO (the same queue model the oracle uses,
    /// applied to the forecast instead of the future), so the margin covers forecast error only.
    pub predictive_headroom: f64,
    /// Standard deviations of one tick's Poisson arrivals `mcpulse` adds to an estimated rate (the
    /// headroom-raised forecast, or the arrival rate of the latest scrape interval) before sizing the fleet
    /// with the queue model, so it meets the SLO in the noisy ticks and not only at the mean rate.
    pub mcpulse_noise_sigmas: f64,
    /// `mcpulse` provisions for the projected backlog to drain within this, on top of the arrivals.
    #[serde(serialize_with = "as_secs")]
    pub mcpulse_backlog_drain: Duration,
    /// SLO on p95 latency, seconds.
    pub slo_p95_seconds: f64,
    /// SLO on mean queue wait, seconds.
    pub slo_queue_wait_seconds: f64,
    /// Requests waiting longer are dropped.
    pub queue_timeout_seconds: f64,
    /// Prediction is switched off while its recent weighted absolute percentage error exceeds this.
    pub forecast_error_threshold: f64,
    /// Step of the series the predictor sees; `None` takes the trace step, at least one minute.
    #[serde(serialize_with = "as_opt_secs")]
    pub forecast_step: Option<Duration>,
    /// `mcpulse` scale-down stabilization window.
    #[serde(serialize_with = "as_secs")]
    pub mcpulse_scale_down_window: Duration,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            pod_capacity_rps: 10.0,
            pod_concurrency: 4,
            idle_cpu: 0.05,
            startup: Duration::from_secs(60),
            tick: Duration::from_secs(5),
            sync_period: Duration::from_secs(15),
            scrape_interval: Duration::from_secs(15),
            rate_window: Duration::from_secs(60),
            metric_delay: Duration::from_secs(15),
            min_replicas: 1,
            max_replicas: 200,
            cpu_target_percent: 70,
            queue_target_per_pod: 2.8,
            // Hotter than upstream's 70: the queue-model metrics (forecast, and arrivals plus backlog, sized
            // for the noisy ticks) carry the SLO headroom, so CPU is only the backstop for what they miss.
            mcpulse_cpu_target_percent: 80,
            predictive_headroom: 0.1,
            // The rate is estimated from one scrape interval (3 ticks) and must cover the busiest of the
            // next ticks: 2.5 standard deviations of a tick's noise plus the estimate's own, sqrt(1 + 1/3)
            // times larger, is about 3 (measured on the example traces: 2.5 leaves more violations, 3.5
            // over-provisions the small fleets).
            mcpulse_noise_sigmas: 3.0,
            // The queue timeout at the defaults: a request waiting longer is dropped anyway.
            mcpulse_backlog_drain: Duration::from_secs(30),
            slo_p95_seconds: 2.0,
            slo_queue_wait_seconds: 0.5,
            queue_timeout_seconds: 30.0,
            forecast_error_threshold: 0.3,
            forecast_step: None,
            // One start-up time at the defaults. The window guards against dropping pods shortly before they
            // are needed again; the forecast metric already holds capacity for the coming lead time and the
            // arrival metric reads the latest scrape, not a window that echoes a drained backlog, so a longer
            // hold mostly pays for idle pods (measured with the earlier in-flight policy: 120 s cost 1 to 9 %
            // more replica-minutes on the example traces, most on the short burst, for somewhat fewer
            // violation minutes on the spiky ones).
            mcpulse_scale_down_window: Duration::from_secs(60),
            seed: 1,
        }
    }
}

/// Durations appear in reports as (fractional) seconds, the unit every flag uses.
fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn as_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn check(ok: bool, field: &str, problem: String) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::config(field, problem))
    }
}

impl SimConfig {
    /// Checks every setting; errors name the setting and the accepted range.
    pub fn validate(&self) -> Result<(), SimError> {
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        check(
            finite_pos(self.pod_capacity_rps) && self.pod_capacity_rps <= 1e6,
            "pod-capacity",
            format!(
                "must be in (0, 1e6] requests/s, got {}",
                self.pod_capacity_rps
            ),
        )?;
        check(
            (1..=1024).contains(&self.pod_concurrency),
            "pod-concurrency",
            format!("must be 1..=1024, got {}", self.pod_concurrency),
        )?;
        check(
            (0.0..1.0).contains(&self.idle_cpu),
            "idle-cpu",
            format!("must be in [0, 1), got {}", self.idle_cpu),
        )?;
        check(
            self.startup <= Duration::from_secs(3600),
            "startup",
            format!("must be at most one hour, got {:?}", self.startup),
        )?;
        let tick = ms(self.tick);
        check(
            (1000..=60_000).contains(&tick) && tick % 1000 == 0,
            "tick",
            format!("must be whole seconds within 1..=60 s, got {:?}", self.tick),
        )?;
        for (field, d) in [
            ("sync-period", self.sync_period),
            ("scrape-interval", self.scrape_interval),
        ] {
            check(
                ms(d) >= tick && ms(d) % tick == 0 && d <= Duration::from_secs(3600),
                field,
                format!(
                    "must be a multiple of the {:?} tick, at most one hour, got {d:?}",
                    self.tick
                ),
            )?;
        }
        check(
            self.rate_window >= self.scrape_interval
                && self.rate_window <= Duration::from_secs(3600),
            "rate-window",
            format!(
                "must be within the scrape interval ({:?}) and one hour, got {:?}",
                self.scrape_interval, self.rate_window
            ),
        )?;
        check(
            self.metric_delay <= Duration::from_secs(600),
            "metric-delay",
            format!("must be at most 10 minutes, got {:?}", self.metric_delay),
        )?;
        check(
            self.min_replicas >= 1
                && self.min_replicas <= self.max_replicas
                && self.max_replicas <= MAX_SIM_REPLICAS,
            "min-replicas/max-replicas",
            format!(
                "need 1 <= min <= max <= {MAX_SIM_REPLICAS}, got {}..{}",
                self.min_replicas, self.max_replicas
            ),
        )?;
        check(
            (1..=100).contains(&self.cpu_target_percent),
            "cpu-target",
            format!("must be 1..=100 percent, got {}", self.cpu_target_percent),
        )?;
        check(
            (1..=100).contains(&self.mcpulse_cpu_target_percent),
            "mcpulse-cpu-target",
            format!(
                "must be 1..=100 percent, got {}",
                self.mcpulse_cpu_target_percent
            ),
        )?;
        check(
            finite_pos(self.queue_target_per_pod) && self.queue_target_per_pod <= 1e6,
            "queue-target",
            format!("must be in (0, 1e6], got {}", self.queue_target_per_pod),
        )?;
        check(
            self.mcpulse_backlog_drain <= Duration::from_secs(3600),
            "mcpulse-backlog-drain",
            format!(
                "must be at most an hour, got {:?}",
                self.mcpulse_backlog_drain
            ),
        )?;
        check(
            (0.0..=10.0).contains(&self.predictive_headroom),
            "predictive-headroom",
            format!("must be within 0..=10, got {}", self.predictive_headroom),
        )?;
        check(
            (0.0..=10.0).contains(&self.mcpulse_noise_sigmas),
            "mcpulse-noise-sigmas",
            format!(
                "must be within 0..=10 standard deviations, got {}",
                self.mcpulse_noise_sigmas
            ),
        )?;
        let service_p95 = self.deployment().queue.service_p95();
        check(
            self.slo_p95_seconds.is_finite() && self.slo_p95_seconds > service_p95,
            "slo-p95",
            format!(
                "must exceed the p95 service time ({service_p95:.3} s with these pod settings), got {}; \
                 raise it or the pod capacity",
                self.slo_p95_seconds
            ),
        )?;
        for (field, v) in [
            ("slo-queue-wait", self.slo_queue_wait_seconds),
            ("queue-timeout", self.queue_timeout_seconds),
            ("forecast-error-threshold", self.forecast_error_threshold),
        ] {
            check(
                finite_pos(v) && v <= 1e6,
                field,
                format!("must be a finite number > 0, got {v}"),
            )?;
        }
        if let Some(step) = self.forecast_step {
            check(
                ms(step) >= tick && step <= Duration::from_secs(86_400),
                "forecast-step",
                format!("must be within the tick and one day, got {step:?}"),
            )?;
        }
        check(
            self.mcpulse_scale_down_window <= Duration::from_secs(3600),
            "mcpulse-scale-down-window",
            format!(
                "must be at most one hour, got {:?}",
                self.mcpulse_scale_down_window
            ),
        )?;
        Ok(())
    }

    pub(crate) fn deployment(&self) -> Deployment {
        Deployment {
            queue: QueueModel {
                pod_capacity_rps: self.pod_capacity_rps,
                concurrency: self.pod_concurrency.max(1),
                latency_p95_seconds: self.slo_p95_seconds,
                queue_wait_seconds: self.slo_queue_wait_seconds,
                // The SLO is judged per tick, so one tick's arrivals are the burst to absorb.
                burst_window_seconds: self.tick.as_secs_f64(),
                burst_sigmas: self.mcpulse_noise_sigmas,
            },
            idle_cpu: self.idle_cpu,
            queue_timeout: self.queue_timeout_seconds,
        }
    }

    /// The step of the load series the predictor sees for this trace: a whole number of ticks.
    pub fn forecast_step_for(&self, trace: &Trace) -> Duration {
        let wanted = self
            .forecast_step
            .unwrap_or_else(|| trace.step.max(Duration::from_secs(60)));
        let tick = ms(self.tick).max(1);
        let ticks = ((ms(wanted) + tick / 2) / tick).max(1);
        Duration::from_millis(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
    }

    /// Steps of the predictor series in one day, the season of the built-in predictor.
    pub fn daily_period_for(&self, trace: &Trace) -> usize {
        let step = ms(self.forecast_step_for(trace)).max(1);
        usize::try_from(86_400_000 / step).unwrap_or(1).max(1)
    }

    fn spec(&self, kind: PolicyKind) -> Result<Option<AutoscalerSpec>, SimError> {
        let cpu = MetricSpec::resource_utilization("cpu", self.cpu_target_percent);
        let inflight = MetricSpec::pods_average(
            "inflight_requests",
            Quantity::from_f64(self.queue_target_per_pod)?,
        );
        let metrics = match kind {
            PolicyKind::Oracle => return Ok(None),
            PolicyKind::HpaCpu => vec![cpu],
            PolicyKind::HpaQueue => vec![inflight],
            PolicyKind::Mcpulse => {
                vec![
                    MetricSpec::resource_utilization("cpu", self.mcpulse_cpu_target_percent),
                    // The same queue-model sizing applied to the arrival rate of the latest scrape
                    // interval plus its backlog: reacts within one scrape, with the headroom a small
                    // fleet needs and CPU lacks. No per-pod in-flight target: it kept ordering pods for
                    // a backlog that pods already starting would drain.
                    MetricSpec::external(
                        "arrival_replicas",
                        MetricTarget::average_value(Quantity::from_units(1)),
                    ),
                ]
            }
        };
        let behavior = match kind {
            // Upstream scale-up (double or add 4 pods per 15 s): the arrival sizing asks for the count the
            // rate needs in one step, so a slower policy only delays it.
            PolicyKind::Mcpulse => HorizontalPodAutoscalerBehavior {
                scale_up: None,
                scale_down: Some(HpaScalingRules {
                    stabilization_window_seconds: Some(
                        i32::try_from(self.mcpulse_scale_down_window.as_secs()).unwrap_or(3600),
                    ),
                    ..HpaScalingRules::default()
                }),
            },
            // The upstream defaults, exactly as an HPA created without `behavior` gets them.
            _ => HorizontalPodAutoscalerBehavior::default(),
        };
        Ok(Some(AutoscalerSpec {
            min_replicas: i32::try_from(self.min_replicas).ok(),
            max_replicas: i32::try_from(self.max_replicas).unwrap_or(i32::MAX),
            metrics,
            behavior: Some(behavior),
        }))
    }
}

/// How far a run has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// One policy's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    /// Minutes in which the p95 latency or the mean queue wait was over its target.
    pub slo_violation_minutes: f64,
    /// Pods (starting ones included: they are paid for) times minutes.
    pub replica_minutes: f64,
    /// `replica_minutes / oracle replica_minutes - 1`.
    pub overprovision_vs_oracle: f64,
    /// Changes of the replica count.
    pub scaling_events: u32,
    /// Separate stretches of SLO violation.
    pub violation_episodes: u32,
    /// Longest stretch of violation: the time to recover from the worst spike.
    pub max_recovery_seconds: f64,
    pub mean_recovery_seconds: f64,
    pub dropped_requests: f64,
    pub mean_replicas: f64,
    pub peak_replicas: u32,
    pub worst_p95_seconds: f64,
    /// Share of syncs in which the prediction was trusted (`mcpulse` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictive_active_fraction: Option<f64>,
}

/// One sampled instant for the plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the trace start.
    pub t: f64,
    /// Arrival rate in the tick, requests/s.
    pub load: f64,
    /// The prediction made one lead time earlier for this instant, when the predictor was trusted.
    pub forecast: Option<Band>,
    /// Pods per policy, in the order of [`Timeline::policies`].
    pub replicas: Vec<u32>,
}

/// What the plot draws.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Timeline {
    pub policies: Vec<String>,
    pub pod_capacity_rps: f64,
    pub points: Vec<TimelinePoint>,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub duration_seconds: f64,
    pub peak_rps: f64,
    pub requests: f64,
    pub predictor: String,
    pub config: SimConfig,
    pub policies: Vec<PolicyReport>,
    #[serde(skip)]
    pub timeline: Timeline,
}

/// Trace rates averaged over each tick.
fn tick_rates(trace: &Trace, tick_ms: i64, ticks: usize) -> Vec<f64> {
    let step = ms(trace.step).max(1);
    (0..ticks)
        .map(|k| {
            let (a, b) = (k as i64 * tick_ms, (k as i64 + 1) * tick_ms);
            let mut sum = 0.0;
            let mut s = a / step;
            while s * step < b {
                let lo = a.max(s * step);
                let hi = b.min((s + 1) * step);
                let rate = usize::try_from(s)
                    .ok()
                    .and_then(|i| trace.rps.get(i))
                    .copied()
                    .unwrap_or(0.0);
                sum += rate * (hi - lo) as f64;
                s += 1;
            }
            sum / tick_ms as f64
        })
        .collect()
}

/// Sliding maximum of `need` over `[k, k + ahead]`, with a monotone deque.
fn lookahead_max(need: &[u32], ahead: usize) -> Vec<u32> {
    let mut out = vec![0; need.len()];
    let mut dq: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        let end = (k + ahead).min(need.len() - 1);
        while next <= end {
            while dq.back().is_some_and(|&b| need[b] <= need[next]) {
                dq.pop_back();
            }
            dq.push_back(next);
            next += 1;
        }
        while dq.front().is_some_and(|&f| f < k) {
            dq.pop_front();
        }
        *slot = dq.front().map_or(0, |&f| need[f]);
    }
    out
}

/// What the predictor said, per predictor step, shared by every `mcpulse` run.
struct Predictions {
    step_ticks: usize,
    /// Value handed to the engine once history up to step `j` is visible (0 when switched off).
    value: Vec<f64>,
    active: Vec<bool>,
    /// The band predicted for step `j` one lead time ahead.
    band_for: Vec<Option<Band>>,
}

fn predictions(
    arrivals: &[f64],
    dt: f64,
    step_ticks: usize,
    lead: usize,
    threshold: f64,
    predictor: &mut dyn LoadPredictor,
) -> Predictions {
    let steps = arrivals.len().div_ceil(step_ticks);
    let observed: Vec<f64> = arrivals
        .chunks(step_ticks)
        .map(|c| c.iter().sum::<f64>() / (c.len() as f64 * dt))
        .collect();
    let mut value = vec![0.0; steps + 1];
    let mut active = vec![false; steps + 1];
    let mut band_for: Vec<Option<Band>> = vec![None; steps + lead + 1];
    let mut errors: VecDeque<(f64, f64)> = VecDeque::new();
    for j in 1..=steps {
        if let Some(b) = band_for[j - 1] {
            errors.push_back(((b.mean - observed[j - 1]).abs(), observed[j - 1].abs()));
            if errors.len() > ERROR_WINDOW {
                errors.pop_front();
            }
        }
        let history = &observed[j.saturating_sub(MAX_PREDICTOR_HISTORY)..j];
        let Some(bands) = predictor.predict(history, lead) else {
            continue;
        };
        if let Some(b) = bands.get(lead - 1) {
            band_for[j - 1 + lead] = Some(*b);
        }
        let (err, actual) = errors
            .iter()
            .fold((0.0, 0.0), |(e, a), (x, y)| (e + x, a + y));
        // Weighted absolute percentage error: robust to near-zero steps, unlike MAPE.
        let trusted = errors.len() >= MIN_ERROR_PAIRS && err <= threshold * actual.max(1e-9);
        active[j] = trusted;
        if trusted {
            value[j] = bands.iter().map(|b| b.mean).fold(0.0, f64::max);
        }
    }
    Predictions {
        step_ticks,
        value,
        active,
        band_for,
    }
}

struct Pod {
    id: u64,
    created: i64,
}

struct Run {
    kind: PolicyKind,
    scaler: Option<Scaler>,
    pods: Vec<Pod>,
    next_id: u64,
    backlog: f64,
    cpu: Vec<f64>,
    inflight: Vec<f64>,
    violation_ticks: usize,
    episode_start: Option<usize>,
    episodes: Vec<usize>,
    pod_ticks: u64,
    events: u32,
    dropped: f64,
    peak: u32,
    worst_p95: f64,
    syncs: u64,
    active_syncs: u64,
}

impl Run {
    /// A policy's run before its first pod, with room for `ticks` samples.
    fn new(kind: PolicyKind, scaler: Option<Scaler>, ticks: usize) -> Self {
        Run {
            kind,
            scaler,
            pods: Vec::new(),
            next_id: 0,
            backlog: 0.0,
            cpu: Vec::with_capacity(ticks),
            inflight: Vec::with_capacity(ticks),
            violation_ticks: 0,
            episode_start: None,
            episodes: Vec::new(),
            pod_ticks: 0,
            events: 0,
            dropped: 0.0,
            peak: 0,
            worst_p95: 0.0,
            syncs: 0,
            active_syncs: 0,
        }
    }

    fn resize(&mut self, desired: u32, now: i64) {
        let desired = desired as usize;
        if desired == self.pods.len() {
            return;
        }
        self.events += 1;
        // Newest first: starting pods go before ready ones, as a ReplicaSet prefers to delete them.
        self.pods.truncate(desired);
        while self.pods.len() < desired {
            self.pods.push(Pod {
                id: self.next_id,
                created: now,
            });
            self.next_id += 1;
        }
    }
}

/// Mean of `series` over the ticks that end within `(end - window, end]`, all times relative in ms.
fn window_mean(series: &[f64], end: i64, window: i64, tick: i64) -> Option<f64> {
    let last = end / tick; // ticks 0..last end at or before `end`
    let first = (end - window).max(0) / tick;
    let last = usize::try_from(last).ok()?.min(series.len());
    let first = usize::try_from(first).ok()?;
    let slice = series.get(first..last).filter(|s| !s.is_empty())?;
    Some(slice.iter().sum::<f64>() / slice.len() as f64)
}

struct Clock {
    start: Timestamp,
    tick: i64,
    startup: i64,
    scrape: i64,
    window: i64,
    delay: i64,
    /// The scalers' CPU initialization period: a pod's CPU sample is distrusted this long after its start.
    cpu_initialization: i64,
}

impl Clock {
    fn abs(&self, rel: i64) -> Timestamp {
        Timestamp::from_millis(self.start.millis().saturating_add(rel))
    }

    /// The newest scrape the metrics pipeline has delivered by `now`.
    fn scraped_at(&self, now: i64) -> i64 {
        (now - self.delay).div_euclid(self.scrape) * self.scrape
    }
}

/// The scraped in-flight gauge of `mcpulse` at `now`: total requests in flight at the sampled tick and
/// the pods that were serving through it (the pods that report it).
fn gauge_total(run: &Run, clock: &Clock, now: i64) -> Option<(f64, usize)> {
    let scraped = clock.scraped_at(now);
    let per_pod = window_mean(&run.inflight, scraped, clock.tick, clock.tick)?;
    let serving = run
        .pods
        .iter()
        .filter(|p| served_sampled_tick(p.created + clock.startup, clock, scraped))
        .count();
    Some((per_pod * serving as f64, serving))
}

/// `mcpulse`'s arrival metric at `now`: the fewest pods for the arrival rate of the latest scraped interval
/// (a request counter's rate) plus its backlog, read from the in-flight gauge of the same scrape; 0 (no
/// opinion) before the first scrape.
fn arrival_replicas(
    run: &Run,
    arrivals: &[f64],
    clock: &Clock,
    now: i64,
    config: &SimConfig,
) -> f64 {
    let queue = config.deployment().queue;
    let scraped = clock.scraped_at(now);
    let rate_over = |end: i64| {
        window_mean(arrivals, end, clock.scrape, clock.tick)
            .map(|per_tick| per_tick / (clock.tick as f64 / 1000.0))
    };
    let Some(latest) = rate_over(scraped) else {
        return 0.0;
    };
    let window_seconds = clock.scrape as f64 / 1000.0;
    let earlier = rate_over(scraped - clock.scrape).map(|rate| EarlierRate {
        rate,
        seconds_before: window_seconds,
    });
    let arrival_rate = catch_up_rate(latest, earlier, window_seconds);
    // Pods that did not serve the sampled tick are on their way, or ready but not yet in the gauge.
    let starting_ready_in: Vec<f64> = run
        .pods
        .iter()
        .map(|p| p.created + clock.startup)
        .filter(|&ready_at| !served_sampled_tick(ready_at, clock, scraped))
        .map(|ready_at| (ready_at - now).max(0) as f64 / 1000.0)
        .collect();
    let rate = match gauge_total(run, clock, now) {
        Some((in_flight, serving)) => queue.rate_with_backlog(
            arrival_rate,
            in_flight,
            u32::try_from(serving).unwrap_or(u32::MAX),
            &starting_ready_in,
            clock.startup as f64 / 1000.0,
            config.mcpulse_backlog_drain.as_secs_f64(),
        ),
        None => arrival_rate,
    };
    f64::from(queue.pods_with_headroom(rate, config.min_replicas, config.max_replicas))
}

/// Whether a pod ready at `ready_at` served through the whole tick sampled at `scraped`: a pod that was not yet
/// serving held none of that tick's in-flight requests, so it reports no gauge sample.
fn served_sampled_tick(ready_at: i64, clock: &Clock, scraped: i64) -> bool {
    ready_at <= scraped - clock.tick
}

fn observe(
    run: &Run,
    clock: &Clock,
    now: i64,
    arrival_pods: f64,
    idle_cpu: f64,
) -> Result<Observation, SimError> {
    let scraped = clock.scraped_at(now);
    let mut pods = Vec::with_capacity(run.pods.len());
    let mut cpu_samples = Vec::new();
    let mut inflight_samples = Vec::new();
    let mut requests = BTreeMap::new();
    for p in &run.pods {
        let name = format!("pod-{}", p.id);
        let ready_at = p.created + clock.startup;
        if ready_at <= now {
            let mut info = PodInfo::running_ready(&name, clock.abs(p.created));
            if let Some(r) = info.ready.as_mut() {
                r.last_transition_time = clock.abs(ready_at);
            }
            pods.push(info);
            // A pod's series covers only the time it served, and it reports once it has served through a
            // whole tick before the scrape. All serving pods share the load alike, so a pod's sample is the
            // per-pod value averaged over the part of the window it served: a pod that joined mid-window
            // does not report the backlog of the ticks before it joined.
            let sample = |v: f64, window: i64| -> Result<PodSample, SimError> {
                Ok(PodSample {
                    pod: name.clone(),
                    value: Quantity::from_f64(v)?,
                    timestamp: clock.abs(scraped),
                    window: Duration::from_millis(u64::try_from(window).unwrap_or(0)),
                })
            };
            if served_sampled_tick(ready_at, clock, scraped) {
                let window = clock.window.min(scraped - ready_at);
                if let Some(c) = window_mean(&run.cpu, scraped, window, clock.tick) {
                    cpu_samples.push(sample(c, window)?);
                }
                // `hpa-queue` reads in flight as the upstream adapter serves it: averaged over the rate
                // window like a counter. (`mcpulse` reads the latest sample instead, see `gauge_total`.)
                if let Some(q) = window_mean(&run.inflight, scraped, window, clock.tick) {
                    inflight_samples.push(sample(q, window)?);
                }
            } else if p.created < scraped && now - p.created < clock.cpu_initialization {
                // Ready, but not serving at the scrape: its container already ran through start-up (modelled
                // as idle), and a CPU sample of that reaches the engine. Within the CPU initialization period
                // and with a window that began before the pod was ready, upstream's rule sets it aside as
                // unready, instead of counting it as a pod missing metrics, which a scale-down must assume
                // busy.
                cpu_samples.push(sample(idle_cpu, clock.window.min(scraped - p.created))?);
            }
        } else {
            pods.push(PodInfo {
                name: name.clone(),
                phase: PodPhase::Pending,
                deleting: false,
                start_time: None,
                ready: None,
            });
        }
        requests.insert(name, Quantity::from_units(1));
    }
    let cpu_obs = MetricObservation::Resource {
        usage: cpu_samples,
        requests,
    };
    let inflight_obs = MetricObservation::Pods {
        samples: inflight_samples,
    };
    let metrics = match run.kind {
        PolicyKind::HpaCpu => vec![cpu_obs],
        PolicyKind::HpaQueue => vec![inflight_obs],
        PolicyKind::Mcpulse => vec![
            cpu_obs,
            MetricObservation::External {
                values: vec![Quantity::from_f64(arrival_pods)?],
            },
        ],
        PolicyKind::Oracle => Vec::new(),
    };
    let replicas = i32::try_from(run.pods.len()).unwrap_or(i32::MAX);
    Ok(Observation {
        spec_replicas: replicas,
        status_replicas: replicas,
        pods,
        metrics,
    })
}

/// Replays `trace` under each of `policies` and reports them side by side (in the order given, duplicates
/// dropped). The oracle always runs, as the cost baseline. `progress` is called about a hundred times.
pub fn simulate(
    trace: &Trace,
    config: &SimConfig,
    policies: &[PolicyKind],
    predictor: &mut dyn LoadPredictor,
    progress: &mut dyn FnMut(Progress),
) -> Result<SimReport, SimError> {
    config.validate()?;
    if policies.is_empty() {
        return Err(SimError::config("policy", "name at least one policy"));
    }
    let tick = ms(config.tick);
    let dt = tick as f64 / 1000.0;
    let total_ms = ms(trace.duration());
    let ticks = usize::try_from(total_ms.div_euclid(tick).max(1)).unwrap_or(usize::MAX);
    if ticks > MAX_TICKS {
        return Err(SimError::config(
            "tick",
            format!(
                "the trace spans {ticks} ticks, at most {MAX_TICKS}; use a longer tick or a shorter trace"
            ),
        ));
    }
    let deployment = config.deployment();
    let mut rng = Rng::new(config.seed);
    let arrivals: Vec<f64> = tick_rates(trace, tick, ticks)
        .into_iter()
        .map(|rate| rng.poisson(rate * dt))
        .collect();

    // The oracle sizes for each tick's actual arrivals; `mcpulse` sizes for an estimated mean rate plus the
    // Poisson spread of one tick's arrivals around it, since the SLO is judged per tick.
    let queue = deployment.queue;
    let (min, max) = (config.min_replicas, config.max_replicas);
    // The oracle: the fewest pods for each tick's actual arrivals, started early enough.
    let need: Vec<u32> = arrivals
        .iter()
        .map(|a| queue.fewest_pods(a / dt, min, max))
        .collect();
    // Replica counts change at most once a sync period, even for the oracle: it needs the busiest tick's
    // count for the whole period.
    let sync_ticks = usize::try_from(ms(config.sync_period) / tick)
        .unwrap_or(1)
        .max(1);
    let need: Vec<u32> = need
        .chunks(sync_ticks)
        .flat_map(|c| {
            let top = c.iter().copied().max().unwrap_or(config.min_replicas);
            std::iter::repeat_n(top, c.len())
        })
        .collect();
    let startup_ticks = usize::try_from(
        config
            .startup
            .as_millis()
            .div_ceil(tick.unsigned_abs().into()),
    )
    .unwrap_or(0);
    let oracle_plan = lookahead_max(&need, startup_ticks);

    let step = config.forecast_step_for(trace);
    let step_ticks = usize::try_from(ms(step) / tick).unwrap_or(1).max(1);
    let lead_ms = ms(config.startup) + ms(config.metric_delay) + ms(config.sync_period) + ms(step);
    let lead = usize::try_from(
        lead_ms
            .unsigned_abs()
            .div_ceil(ms(step).unsigned_abs().max(1)),
    )
    .unwrap_or(1)
    .max(1);
    let wants_prediction = policies.contains(&PolicyKind::Mcpulse);
    let preds = if wants_prediction {
        Some(predictions(
            &arrivals,
            dt,
            step_ticks,
            lead,
            config.forecast_error_threshold,
            predictor,
        ))
    } else {
        None
    };

    let mut order: Vec<PolicyKind> = Vec::new();
    for p in policies {
        if !order.contains(p) {
            order.push(*p);
        }
    }
    let mut all = order.clone();
    if !all.contains(&PolicyKind::Oracle) {
        all.push(PolicyKind::Oracle);
    }
    let controller = ControllerConfig::default();
    let clock = Clock {
        start: trace.start,
        tick,
        startup: ms(config.startup),
        scrape: ms(config.scrape_interval),
        window: ms(config.rate_window),
        delay: ms(config.metric_delay),
        cpu_initialization: ms(controller.cpu_initialization_period),
    };
    let initial = oracle_plan.first().copied().unwrap_or(config.min_replicas);
    // Warm start: every policy begins with the oracle's first count, long past start-up.
    let warm = -clock.startup - 3_600_000;
    let mut runs = Vec::with_capacity(all.len());
    for kind in &all {
        let scaler = match config.spec(*kind)? {
            Some(spec) => Some(Scaler::new(&spec, controller)?),
            None => None,
        };
        let mut run = Run::new(*kind, scaler, ticks);
        run.resize(initial, warm);
        run.events = 0;
        runs.push(run);
    }

    let stride = sync_ticks.max(ticks.div_ceil(MAX_TIMELINE_POINTS));
    let mut timeline = Timeline {
        policies: order.iter().map(|p| p.name().to_string()).collect(),
        pod_capacity_rps: config.pod_capacity_rps,
        points: Vec::new(),
    };
    let report_every = (ticks / 100).max(1);
    for k in 0..ticks {
        let now = k as i64 * tick;
        for run in &mut runs {
            match run.kind {
                PolicyKind::Oracle => run.resize(oracle_plan[k], now),
                _ if k % sync_ticks == 0 => {
                    let (predicted, active) = match &preds {
                        Some(p) if run.kind == PolicyKind::Mcpulse => {
                            let visible =
                                (now - clock.delay).div_euclid(tick * p.step_ticks as i64);
                            let j = usize::try_from(visible).unwrap_or(0).min(p.value.len() - 1);
                            let pods = if p.active[j] {
                                // The headroom covers forecast error, the spread the tick noise.
                                let mean = p.value[j].max(0.0) * (1.0 + config.predictive_headroom);
                                f64::from(queue.pods_with_headroom(mean, min, max))
                            } else {
                                0.0
                            };
                            (pods, p.active[j])
                        }
                        _ => (0.0, false),
                    };
                    run.syncs += 1;
                    run.active_syncs += u64::from(active);
                    let arrival_pods = if run.kind == PolicyKind::Mcpulse {
                        arrival_replicas(run, &arrivals, &clock, now, config)
                    } else {
                        0.0
                    };
                    let obs = observe(run, &clock, now, arrival_pods, deployment.idle_cpu)?;
                    if let Some(scaler) = run.scaler.as_mut() {
                        let at = clock.abs(now);
                        let decision = scaler.decide(&obs, at)?;
                        // As the controller does: prediction only adds to what the engine decided, and is
                        // held through the scale-down window like the engine's own recommendations.
                        let prediction = (active && predicted > 0.0)
                            .then(|| i32::try_from(predicted as i64).unwrap_or(i32::MAX));
                        let held = scaler.hold_prediction(prediction, at);
                        let desired = held.map_or(decision.desired_replicas, |p| {
                            p.max(decision.desired_replicas)
                        });
                        let desired = u32::try_from(desired).unwrap_or(config.min_replicas);
                        run.resize(desired.clamp(config.min_replicas, config.max_replicas), now);
                    }
                }
                _ => {}
            }
            let ready = run
                .pods
                .iter()
                .filter(|p| p.created + clock.startup <= now)
                .count();
            let ready = u32::try_from(ready).unwrap_or(u32::MAX);
            let out = deployment.tick(ready, arrivals[k], dt, &mut run.backlog);
            run.cpu.push(out.cpu);
            run.inflight.push(out.inflight_per_pod);
            let pods = u32::try_from(run.pods.len()).unwrap_or(u32::MAX);
            run.pod_ticks += u64::from(pods);
            run.peak = run.peak.max(pods);
            run.dropped += out.dropped;
            run.worst_p95 = run.worst_p95.max(out.latency_p95);
            let violated = out.latency_p95 > config.slo_p95_seconds
                || out.wait_mean > config.slo_queue_wait_seconds;
            if violated {
                run.violation_ticks += 1;
                run.episode_start.get_or_insert(k);
            } else if let Some(s) = run.episode_start.take() {
                run.episodes.push(k - s);
            }
        }
        if k % stride == 0 {
            let forecast = preds.as_ref().and_then(|p| {
                let j = k / p.step_ticks;
                p.band_for
                    .get(j)
                    .copied()
                    .flatten()
                    .filter(|_| p.active.get(j).copied().unwrap_or(false))
            });
            timeline.points.push(TimelinePoint {
                t: now as f64 / 1000.0,
                load: arrivals[k] / dt,
                forecast,
                replicas: order
                    .iter()
                    .filter_map(|kind| runs.iter().find(|r| r.kind == *kind))
                    .map(|r| u32::try_from(r.pods.len()).unwrap_or(u32::MAX))
                    .collect(),
            });
        }
        if k % report_every == 0 || k + 1 == ticks {
            progress(Progress {
                done: k + 1,
                total: ticks,
            });
        }
    }

    let minutes = |t: u64| t as f64 * dt / 60.0;
    let oracle_cost = runs
        .iter()
        .find(|r| r.kind == PolicyKind::Oracle)
        .map_or(0.0, |r| minutes(r.pod_ticks));
    let mut reports = Vec::new();
    for kind in &order {
        let Some(run) = runs.iter_mut().find(|r| r.kind == *kind) else {
            continue;
        };
        if let Some(s) = run.episode_start.take() {
            run.episodes.push(ticks - s);
        }
        let cost = minutes(run.pod_ticks);
        let episodes = run.episodes.len();
        let longest = run.episodes.iter().copied().max().unwrap_or(0);
        let sum: usize = run.episodes.iter().sum();
        reports.push(PolicyReport {
            policy: kind.name().to_string(),
            slo_violation_minutes: minutes(run.violation_ticks as u64),
            replica_minutes: cost,
            overprovision_vs_oracle: if oracle_cost > 0.0 {
                cost / oracle_cost - 1.0
            } else {
                0.0
            },
            scaling_events: run.events,
            violation_episodes: u32::try_from(episodes).unwrap_or(u32::MAX),
            max_recovery_seconds: longest as f64 * dt,
            mean_recovery_seconds: if episodes > 0 {
                sum as f64 * dt / episodes as f64
            } else {
                0.0
            },
            dropped_requests: run.dropped,
            mean_replicas: run.pod_ticks as f64 / ticks as f64,
            peak_replicas: run.peak,
            worst_p95_seconds: run.worst_p95,
            predictive_active_fraction: (*kind == PolicyKind::Mcpulse)
                .then(|| run.active_syncs as f64 / run.syncs.max(1) as f64),
        });
    }
    Ok(SimReport {
        duration_seconds: ticks as f64 * dt,
        peak_rps: trace.peak(),
        requests: arrivals.iter().sum(),
        predictor: if wants_prediction {
            predictor.name()
        } else {
            "none".into()
        },
        config: config.clone(),
        policies: reports,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookahead_max_table() {
        let cases: &[(&[u32], usize, &[u32], &str)] = &[
            (&[1, 3, 2, 1, 1], 0, &[1, 3, 2, 1, 1], "no lookahead copies"),
            (&[1, 3, 2, 1, 1], 1, &[3, 3, 2, 1, 1], "one step ahead"),
            (
                &[1, 1, 1, 5],
                2,
                &[1, 5, 5, 5],
                "a spike is provisioned two steps early",
            ),
        ];
        for (need, ahead, want, why) in cases {
            assert_eq!(lookahead_max(need, *ahead), want.to_vec(), "{why}");
        }
    }

    #[test]
    fn window_mean_uses_completed_ticks_only() {
        let series = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            window_mean(&series, 10_000, 10_000, 5000),
            Some(1.5),
            "ticks 0 and 1 end by 10 s"
        );
        assert_eq!(
            window_mean(&series, 0, 10_000, 5000),
            None,
            "nothing completed yet"
        );
        assert_eq!(
            window_mean(&series, -5000, 10_000, 5000),
            None,
            "before the start"
        );
    }

    fn run_with(pods: &[i64], inflight: Vec<f64>) -> Run {
        let mut run = Run::new(PolicyKind::Mcpulse, None, 0);
        run.pods = pods
            .iter()
            .enumerate()
            .map(|(id, &created)| Pod {
                id: id as u64,
                created,
            })
            .collect();
        run.next_id = pods.len() as u64;
        run.inflight = inflight;
        run
    }

    /// The defaults' pipeline: 5 s ticks, 60 s start-up, 15 s scrapes delayed 15 s, 60 s rate window.
    fn test_clock() -> Clock {
        Clock {
            start: Timestamp::from_millis(0),
            tick: 5000,
            startup: 60_000,
            scrape: 15_000,
            window: 60_000,
            delay: 15_000,
            cpu_initialization: 300_000,
        }
    }

    #[test]
    fn gauge_counts_only_pods_serving_through_the_sampled_tick() {
        let clock = test_clock();
        // Ticks 0..=5 (ending at 30 s): 3 requests in flight per serving pod, then 40 in the last one.
        let series = vec![3.0, 3.0, 3.0, 3.0, 3.0, 40.0];
        // At 45 s the delayed scrape is at 30 s and samples tick 5 (25..30 s). The old pod served through
        // it; the second became ready at 30 s, too late to hold any of that tick's requests.
        let run = run_with(&[-120_000, -30_000], series);
        let (total, serving) = gauge_total(&run, &clock, 45_000).expect("a sample exists");
        assert_eq!(
            serving, 1,
            "the pod ready at the sample instant does not report"
        );
        assert!(
            (total - 40.0).abs() < 1e-9,
            "latest sample, not the window mean: {total}"
        );
        assert!(
            gauge_total(&run, &clock, 15_000).is_none(),
            "nothing scraped before the first tick ends"
        );
    }

    #[test]
    fn a_pod_joining_mid_window_reports_only_the_ticks_it_served() {
        let clock = test_clock();
        // Twelve ticks (0..60 s): 10 in flight per pod during a backlog, then 1 for the last three.
        let mut inflight = vec![10.0; 9];
        inflight.extend([1.0; 3]);
        // The old pod served the whole window; the new one became ready at 45 s.
        let mut run = run_with(&[-120_000, -15_000], inflight);
        run.kind = PolicyKind::HpaQueue;
        let obs = observe(&run, &clock, 75_000, 0.0, 0.05).expect("observes");
        let MetricObservation::Pods { samples } = &obs.metrics[0] else {
            panic!("hpa-queue observes in flight per pod: {:?}", obs.metrics);
        };
        let got: Vec<(&str, i64)> = samples
            .iter()
            .map(|s| (s.pod.as_str(), s.value.milli()))
            .collect();
        assert_eq!(
            got,
            [("pod-0", 7750), ("pod-1", 1000)],
            "the old pod averages the window (93 / 12); the new one only its own three ticks"
        );
    }

    #[test]
    fn arrival_sizing_catches_up_with_a_rise_and_counts_pods_on_their_way() {
        let clock = test_clock();
        let config = SimConfig::default();
        let queue = config.deployment().queue;
        // At 60 s the delayed scrape is at 45 s: the latest window is ticks 6..=8, the one before 3..=5.
        let old = -600_000;
        let pods_for = |rate: f64| f64::from(queue.pods_with_headroom(rate, 1, 200));

        // 3/s, then 10/s: 150 requests after 45 is a rise beyond noise (105 > 4 x 14), so 10 + 7.
        let arrivals: Vec<f64> = [15.0; 6].into_iter().chain([50.0; 3]).collect();
        let run = run_with(&[old, old], vec![2.0; 9]);
        assert_ne!(pods_for(17.0), pods_for(10.0));
        assert_eq!(
            arrival_replicas(&run, &arrivals, &clock, 60_000, &config),
            pods_for(17.0)
        );

        // A steady 30/s on two pods (20/s) with 8 queued; a third pod ready in 10 s stops the backlog
        // growing then, instead of after the whole 60 s start-up.
        let arrivals = vec![150.0; 9];
        let run = run_with(&[old, old, 10_000], vec![8.0; 9]);
        let with_it = pods_for(30.0 + (8.0 + 10.0 * 10.0) / 30.0);
        assert_ne!(with_it, pods_for(30.0 + (8.0 + 10.0 * 60.0) / 30.0));
        assert_eq!(
            arrival_replicas(&run, &arrivals, &clock, 60_000, &config),
            with_it
        );
    }

    #[test]
    fn a_pod_just_ready_is_initialising_for_cpu_not_missing() {
        let clock = test_clock();
        // At 60 s the delayed scrape is at 45 s. The old pod served the window at 20 % CPU; the new one,
        // created at -5 s, became ready at 55 s, after the sampled tick.
        let mut run = run_with(&[-120_000, -5_000], Vec::new());
        run.kind = PolicyKind::HpaCpu;
        run.cpu = vec![0.2; 12];
        let obs = observe(&run, &clock, 60_000, 0.0, 0.05).expect("observes");
        let MetricObservation::Resource { usage, .. } = &obs.metrics[0] else {
            panic!("hpa-cpu observes CPU: {:?}", obs.metrics);
        };
        let new_pod = usage
            .iter()
            .find(|s| s.pod == "pod-1")
            .expect("start-up CPU is reported");
        assert_eq!(new_pod.value.milli(), 50);
        // Missing, it would count as busy on a scale-down: (20 % + 100 %) / 2 against 70 % keeps 2 pods.
        // Initialising, it is set aside, and the old pod's 20 % asks for 1.
        let spec = SimConfig::default()
            .spec(PolicyKind::HpaCpu)
            .expect("spec")
            .expect("hpa");
        let mut scaler = Scaler::new(&spec, ControllerConfig::default()).expect("scaler");
        let decision = scaler.decide(&obs, clock.abs(60_000)).expect("decides");
        assert_eq!(
            decision.metrics[0].proposal,
            Some(1),
            "{:?}",
            decision.metrics[0]
        );
    }

    #[test]
    fn policy_names_round_trip() {
        for p in PolicyKind::ALL {
            assert_eq!(p.name().parse::<PolicyKind>().ok(), Some(p));
        }
        assert!("hpa".parse::<PolicyKind>().is_err());
    }
}
