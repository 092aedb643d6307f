//! The per-workload engine: history, the decision flow of the HPA controller, conditions and explanation.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

use crate::behavior::{Limited, ScalerState, limit_legacy};
use crate::error::ScalerError;
use crate::hold::PredictionHold;
use crate::replicas::{self, Ctx, MetricFailure, Observation, Tolerances};
use crate::spec::{AutoscalerSpec, HpaScalingPolicy, MetricValue, ResolvedSpec};
use crate::time::Timestamp;

/// Longest window any controller setting may name; far beyond sensible values, it only stops overflow.
const MAX_CONTROLLER_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Controller-wide settings, the `kube-controller-manager` `--horizontal-pod-autoscaler-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerConfig {
    /// Tolerance used when the spec sets none (`--horizontal-pod-autoscaler-tolerance`, 0.1).
    pub tolerance: f64,
    /// CPU samples of pods younger than this are trusted only after a full window since ready (5 min).
    pub cpu_initialization_period: Duration,
    /// A pod unready since within this of its start is taken as never ready (30 s).
    pub delay_of_initial_readiness_status: Duration,
    /// Legacy downscale window, and the default scale-down window of the behavior path (5 min).
    pub downscale_stabilization_window: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            delay_of_initial_readiness_status: Duration::from_secs(30),
            downscale_stabilization_window: Duration::from_secs(300),
        }
    }
}

impl ControllerConfig {
    fn validate(&self) -> Result<(), ScalerError> {
        if !self.tolerance.is_finite() || self.tolerance < 0.0 {
            return Err(ScalerError::spec(
                "controller.tolerance",
                format!("must be a finite number >= 0, got {}", self.tolerance),
            ));
        }
        for (field, d) in [
            (
                "controller.cpuInitializationPeriod",
                self.cpu_initialization_period,
            ),
            (
                "controller.delayOfInitialReadinessStatus",
                self.delay_of_initial_readiness_status,
            ),
            (
                "controller.downscaleStabilizationWindow",
                self.downscale_stabilization_window,
            ),
        ] {
            if d > MAX_CONTROLLER_WINDOW {
                return Err(ScalerError::spec(
                    field,
                    format!("must be at most 24 h, got {d:?}"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionType {
    AbleToScale,
    ScalingActive,
    ScalingLimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A `HorizontalPodAutoscalerCondition` as upstream would set it in this sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// One metric's part in the decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricOutcome {
    /// Upstream's description, e.g. "cpu resource utilization (percentage of request)".
    pub name: String,
    pub current: Option<MetricValue>,
    pub target: MetricValue,
    /// Usage over target before any missing/unready pod adjustment.
    pub ratio: Option<f64>,
    pub proposal: Option<i32>,
    pub failure: Option<MetricFailure>,
}

/// The bound that cut the stabilized recommendation (ScalingLimited=True).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitExplanation {
    pub reason: &'static str,
    pub message: &'static str,
    /// The replica count the bound allowed.
    pub bound: i32,
    /// The rate policy that set the bound, when a policy did.
    pub policy: Option<HpaScalingPolicy>,
}

/// The outcome of one evaluation, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub at: Timestamp,
    pub current_replicas: i32,
    /// What the target should be scaled to; equals `current_replicas` when `rescale` is false.
    pub desired_replicas: i32,
    pub rescale: bool,
    /// Upstream's rescale reason ("cpu resource utilization (percentage of request) above target", ...).
    pub rescale_reason: Option<String>,
    pub metrics: Vec<MetricOutcome>,
    /// Index into `metrics` of the metric whose proposal won.
    pub driving_metric: Option<usize>,
    /// The highest metric proposal, before stabilization.
    pub raw_proposal: Option<i32>,
    /// The recommendation after the stabilization window(s).
    pub stabilized: Option<i32>,
    pub limit: Option<LimitExplanation>,
    pub conditions: Vec<Condition>,
    /// Set when metrics failed; with a partial failure the decision may still scale up.
    pub error: Option<ScalerError>,
}

impl Decision {
    fn new(at: Timestamp, current: i32) -> Self {
        Self {
            at,
            current_replicas: current,
            desired_replicas: current,
            rescale: false,
            rescale_reason: None,
            metrics: Vec::new(),
            driving_metric: None,
            raw_proposal: None,
            stabilized: None,
            limit: None,
            conditions: Vec::new(),
            error: None,
        }
    }

    fn set(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: &'static str,
        message: String,
    ) {
        self.conditions.retain(|c| c.type_ != type_);
        self.conditions.push(Condition {
            type_,
            status,
            reason,
            message,
        });
    }

    /// The condition of the given type, if this decision set one.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// One human-readable line: what happened, which metric drove it, and what held it back.
    pub fn log_line(&self) -> String {
        let mut line = String::new();
        let verb = match self.desired_replicas.cmp(&self.current_replicas) {
            std::cmp::Ordering::Greater => "scale up",
            std::cmp::Ordering::Less => "scale down",
            std::cmp::Ordering::Equal => "hold",
        };
        let _ = write!(
            line,
            "{verb} {} -> {}",
            self.current_replicas, self.desired_replicas
        );
        if let Some(reason) = &self.rescale_reason {
            let _ = write!(line, " ({reason})");
        }
        if let Some(m) = self.driving_metric.and_then(|i| self.metrics.get(i)) {
            let _ = write!(line, "; driver: {}", m.name);
            if let Some(c) = &m.current {
                let _ = write!(line, " current={c}");
            }
            let _ = write!(line, " target={}", m.target);
            if let Some(r) = m.ratio {
                let _ = write!(line, " ratio={r:.3}");
            }
        }
        if let Some(p) = self.raw_proposal {
            let _ = write!(line, "; proposal={p}");
        }
        if let Some(s) = self.stabilized {
            let _ = write!(line, " stabilized={s}");
        }
        if let Some(l) = &self.limit {
            let _ = write!(line, "; limited by {} to {}", l.reason, l.bound);
            if let Some(p) = &l.policy {
                let _ = write!(line, " ({p})");
            }
        }
        let failed = self.metrics.iter().filter(|m| m.failure.is_some()).count();
        if failed > 0 {
            let _ = write!(line, "; {failed}/{} metrics failed", self.metrics.len());
        }
        if let Some(c) = self
            .condition(ConditionType::ScalingActive)
            .filter(|c| c.status != ConditionStatus::True)
        {
            let _ = write!(line, "; {}: {}", c.reason, c.message);
        }
        line
    }
}

/// One workload's autoscaler: its resolved spec, the controller settings and the history it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    spec: ResolvedSpec,
    config: ControllerConfig,
    state: ScalerState,
    /// Predictions combined after the decision, held through the scale-down window.
    predictions: PredictionHold,
}

fn window_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl Scaler {
    /// Validates `spec` and `config` and starts with an empty history.
    pub fn new(spec: &AutoscalerSpec, config: ControllerConfig) -> Result<Self, ScalerError> {
        config.validate()?;
        Ok(Self {
            spec: spec.resolve(window_seconds(config.downscale_stabilization_window))?,
            config,
            state: ScalerState::default(),
            predictions: PredictionHold::default(),
        })
    }

    /// Replaces the spec, keeping the history as upstream does when an HPA is edited.
    pub fn set_spec(&mut self, spec: &AutoscalerSpec) -> Result<(), ScalerError> {
        self.spec = spec.resolve(window_seconds(self.config.downscale_stabilization_window))?;
        Ok(())
    }

    pub fn spec(&self) -> &ResolvedSpec {
        &self.spec
    }

    /// How long a recommendation holds replicas against a scale-down: `behavior`'s scale-down stabilization
    /// window, or the controller's on the legacy path.
    pub fn scale_down_window(&self) -> Duration {
        self.spec
            .behavior
            .as_ref()
            .map_or(self.config.downscale_stabilization_window, |behavior| {
                Duration::from_secs(
                    u64::try_from(behavior.scale_down.stabilization_window_seconds).unwrap_or(0),
                )
            })
    }

    /// Records this sync's prediction (if any) and returns the highest of the scale-down window. Prediction is
    /// combined after the decision, as `max(decision, held)`, so the engine never sees it; holding it here keeps
    /// capacity added for a forecast as long as the decision's own recommendations would be kept.
    pub fn hold_prediction(&mut self, predicted: Option<i32>, now: Timestamp) -> Option<i32> {
        let window = self.scale_down_window();
        self.predictions.hold(predicted, now, window)
    }

    pub fn state(&self) -> &ScalerState {
        &self.state
    }

    fn tolerances(&self) -> Tolerances {
        let default = self.config.tolerance;
        match &self.spec.behavior {
            Some(b) => Tolerances {
                down: b.scale_down.tolerance.unwrap_or(default),
                up: b.scale_up.tolerance.unwrap_or(default),
            },
            None => Tolerances {
                down: default,
                up: default,
            },
        }
    }

    fn check(&self, obs: &Observation) -> Result<(), ScalerError> {
        if obs.spec_replicas < 0 || obs.status_replicas < 0 {
            return Err(ScalerError::observation(
                "specReplicas/statusReplicas",
                format!(
                    "replica counts must be >= 0, got spec {} and status {}",
                    obs.spec_replicas, obs.status_replicas
                ),
            ));
        }
        if obs.metrics.len() != self.spec.metrics.len() {
            return Err(ScalerError::observation(
                "metrics",
                format!(
                    "{} observations for {} spec metrics; send exactly one per spec metric, in order (an Unavailable entry for a failed fetch)",
                    obs.metrics.len(),
                    self.spec.metrics.len()
                ),
            ));
        }
        replicas::check_pods(&obs.pods)
    }

    /// Runs one sync of the HPA controller at `now`. Assumes the actuator applies a rescale: the scale
    /// event is recorded for the behavior policies. Errors only on malformed observations; failing
    /// metrics produce a decision that does not scale (or only scales up, as upstream).
    pub fn decide(&mut self, obs: &Observation, now: Timestamp) -> Result<Decision, ScalerError> {
        self.check(obs)?;
        let current = obs.spec_replicas;
        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        let mut d = Decision::new(now, current);
        if current == 0 {
            d.set(
                ConditionType::ScalingActive,
                ConditionStatus::False,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
            return Ok(d);
        }
        if current > max || current < min {
            let (target, reason) = if current > max {
                (max, "Current number of replicas above Spec.MaxReplicas")
            } else {
                (min, "Current number of replicas below Spec.MinReplicas")
            };
            d.desired_replicas = target;
            d.rescale = true;
            d.rescale_reason = Some(reason.into());
            self.record_scale(current, target, now);
            return Ok(d);
        }

        let ctx = Ctx {
            pods: &obs.pods,
            now,
            tolerances: self.tolerances(),
            spec_replicas: current,
            status_replicas: obs.status_replicas,
            cpu_initialization_period: self.config.cpu_initialization_period,
            delay_of_initial_readiness_status: self.config.delay_of_initial_readiness_status,
        };
        let mut best: Option<(usize, i32)> = None;
        let mut first_failure: Option<MetricFailure> = None;
        let mut invalid = 0usize;
        for (i, (metric, observed)) in self.spec.metrics.iter().zip(&obs.metrics).enumerate() {
            let mut outcome = MetricOutcome {
                name: metric.name.clone(),
                current: None,
                target: metric.source.target_value(),
                ratio: None,
                proposal: None,
                failure: None,
            };
            match replicas::compute(&metric.source, observed, &ctx) {
                Ok(c) => {
                    outcome.current = Some(c.current);
                    outcome.ratio = Some(c.ratio);
                    outcome.proposal = Some(c.proposal);
                    // Upstream takes the first strictly larger proposal (a zero proposal is replaced).
                    if best.is_none_or(|(_, b)| b == 0 || c.proposal > b) {
                        best = Some((i, c.proposal));
                    }
                }
                Err(f) => {
                    invalid += 1;
                    if first_failure.is_none() {
                        first_failure = Some(f.clone());
                    }
                    outcome.failure = Some(f);
                }
            }
            d.metrics.push(outcome);
        }
        let total = self.spec.metrics.len();
        let proposal = best.map_or(0, |(_, p)| p);
        if let Some(f) = &first_failure {
            d.error = Some(ScalerError::InvalidMetrics {
                invalid,
                total,
                first: f.message.clone(),
            });
            // All metrics failed, or the valid ones would scale down: never act on partial data.
            if invalid >= total || proposal < current {
                d.set(
                    ConditionType::ScalingActive,
                    ConditionStatus::False,
                    f.reason,
                    f.message.clone(),
                );
                return Ok(d);
            }
        }
        let driver = best.map(|(i, _)| i);
        let driver_name = driver
            .and_then(|i| d.metrics.get(i))
            .map(|m| m.name.clone())
            .unwrap_or_default();
        d.set(
            ConditionType::ScalingActive,
            ConditionStatus::True,
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {driver_name}"
            ),
        );
        d.driving_metric = driver;
        d.raw_proposal = Some(proposal);
        if proposal > current {
            d.rescale_reason = Some(format!("{driver_name} above target"));
        } else if proposal < current {
            d.rescale_reason = Some("All metrics below target".into());
        }

        let (stabilized, limited) = match &self.spec.behavior {
            None => {
                let s = self.state.stabilize_legacy(
                    proposal,
                    self.config.downscale_stabilization_window,
                    now,
                );
                let (reason, message) = if s != proposal {
                    (
                        "ScaleDownStabilized",
                        "recent recommendations were higher than current one, applying the highest recent recommendation",
                    )
                } else {
                    ("ReadyForNewScale", "recommended size matches current size")
                };
                d.set(
                    ConditionType::AbleToScale,
                    ConditionStatus::True,
                    reason,
                    message.into(),
                );
                (s, limit_legacy(current, s, min, max))
            }
            Some(b) => {
                let (s, reason, message) = self.state.stabilize(proposal, current, b, now);
                let (reason, message) = if s != proposal {
                    (reason, message)
                } else {
                    ("ReadyForNewScale", "recommended size matches current size")
                };
                d.set(
                    ConditionType::AbleToScale,
                    ConditionStatus::True,
                    reason,
                    message.into(),
                );
                (
                    s,
                    self.state.limit_with_behavior(current, s, min, max, b, now),
                )
            }
        };
        d.stabilized = Some(stabilized);
        self.finish(&mut d, stabilized, limited, now);
        Ok(d)
    }

    fn finish(&mut self, d: &mut Decision, stabilized: i32, limited: Limited, now: Timestamp) {
        let status = if limited.replicas == stabilized {
            ConditionStatus::False
        } else {
            d.limit = Some(LimitExplanation {
                reason: limited.reason,
                message: limited.message,
                bound: limited.replicas,
                policy: limited.policy,
            });
            ConditionStatus::True
        };
        d.set(
            ConditionType::ScalingLimited,
            status,
            limited.reason,
            limited.message.into(),
        );
        d.desired_replicas = limited.replicas;
        d.rescale = limited.replicas != d.current_replicas;
        if d.rescale {
            self.record_scale(d.current_replicas, limited.replicas, now);
        } else {
            d.rescale_reason = None;
        }
    }

    fn record_scale(&mut self, prev: i32, new: i32, now: Timestamp) {
        if let Some(b) = &self.spec.behavior {
            self.state.store_scale_event(b, prev, new, now);
        }
    }
}
