//! Pure reactive scaling engine with Kubernetes HorizontalPodAutoscaler (autoscaling/v2) semantics: no IO, time passed in.
//!
//! The engine mirrors the upstream HPA controller as of Kubernetes 1.35, including the per-direction
//! `behavior.scaleUp/scaleDown.tolerance` field (KEP-4951) and the legacy path taken when `behavior` is unset.
//! Feed a [`Scaler`] one [`Observation`] per sync period; it returns a [`Decision`] that explains itself.

#![forbid(unsafe_code)]

mod behavior;
mod engine;
mod error;
pub mod forecast;
mod hold;
mod quantity;
mod replicas;
pub mod sim;
pub mod sizing;
mod spec;
mod time;
pub mod vpa;

pub use behavior::{ScaleEvent, ScalerState, TimestampedRecommendation};
pub use engine::{
    Condition, ConditionStatus, ConditionType, ControllerConfig, Decision, LimitExplanation,
    MetricOutcome, Scaler,
};
pub use error::ScalerError;
pub use quantity::Quantity;
pub use replicas::{
    MAX_PODS, MAX_SERIES, MetricFailure, MetricObservation, Observation, PodInfo, PodPhase,
    PodSample, ReadyCondition,
};
pub use spec::{
    AutoscalerSpec, ContainerResourceMetricSource, CrossVersionObjectReference,
    DEFAULT_CPU_UTILIZATION, ExternalMetricSource, HorizontalPodAutoscalerBehavior,
    HpaScalingPolicy, HpaScalingPolicyType, HpaScalingRules, LabelSelector,
    LabelSelectorRequirement, MAX_METRICS, MAX_POLICIES, MetricIdentifier, MetricSource,
    MetricSourceType, MetricSpec, MetricTarget, MetricTargetType, MetricValue, ObjectMetricSource,
    PodsMetricSource, ResolvedBehavior, ResolvedMetric, ResolvedSpec, ResourceMetricSource,
    ResourceTarget, ScalingPolicySelect, ScalingRules, ValueTarget,
};
pub use time::Timestamp;
