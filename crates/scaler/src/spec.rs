//! autoscaling/v2 spec types (camelCase, embeddable in a CRD) and their validation into resolved rules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::error::ScalerError;
use crate::quantity::Quantity;

/// Most metrics one autoscaler may list; a bound on per-decision work.
pub const MAX_METRICS: usize = 32;
/// Most policies one scaling direction may list.
pub const MAX_POLICIES: usize = 16;
/// Longest name (metric, resource, object) accepted, as for Kubernetes object names.
const MAX_NAME_LEN: usize = 253;
/// Upper bound of `stabilizationWindowSeconds` (one hour), as upstream validation.
const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
/// Upper bound of a policy's `periodSeconds` (30 minutes), as upstream validation.
const MAX_PERIOD_SECONDS: i32 = 1800;
/// Default CPU utilization target when no metric is listed (upstream API defaulting).
/// CPU utilization target, percent, of a spec that lists no metrics (the upstream default).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// The scaling part of a `HorizontalPodAutoscalerSpec` (everything but `scaleTargetRef`, which the
/// embedding CRD names its own way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSpec {
    /// Lower bound; defaults to 1. Zero (the alpha `HPAScaleToZero` gate) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// Empty means the upstream default: CPU at 80 % average utilization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Unset selects the legacy algorithm (fixed scale-up limit, controller-wide downscale window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricSourceType {
    Object,
    Pods,
    Resource,
    ContainerResource,
    External,
}

/// One metric to scale on; exactly the member named by `type` must be set, as in the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
}

impl MetricSpec {
    /// A `Resource` metric with an average-utilization target (percent of request).
    pub fn resource_utilization(name: &str, percent: i32) -> Self {
        Self::only(MetricSourceType::Resource).with_resource(ResourceMetricSource {
            name: name.into(),
            target: MetricTarget::utilization(percent),
        })
    }

    /// A `Pods` metric with an average-value target.
    pub fn pods_average(metric: &str, average: Quantity) -> Self {
        let mut m = Self::only(MetricSourceType::Pods);
        m.pods = Some(PodsMetricSource {
            metric: MetricIdentifier::named(metric),
            target: MetricTarget::average_value(average),
        });
        m
    }

    /// An `Object` metric on `kind/name` with the given target.
    pub fn object(kind: &str, name: &str, metric: &str, target: MetricTarget) -> Self {
        let mut m = Self::only(MetricSourceType::Object);
        m.object = Some(ObjectMetricSource {
            described_object: CrossVersionObjectReference {
                kind: kind.into(),
                name: name.into(),
                api_version: None,
            },
            metric: MetricIdentifier::named(metric),
            target,
        });
        m
    }

    /// An `External` metric with the given target.
    pub fn external(metric: &str, target: MetricTarget) -> Self {
        let mut m = Self::only(MetricSourceType::External);
        m.external = Some(ExternalMetricSource {
            metric: MetricIdentifier::named(metric),
            target,
        });
        m
    }

    fn only(type_: MetricSourceType) -> Self {
        Self {
            type_,
            object: None,
            pods: None,
            resource: None,
            container_resource: None,
            external: None,
        }
    }

    fn with_resource(mut self, r: ResourceMetricSource) -> Self {
        self.resource = Some(r);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricSource {
    pub name: String,
    pub container: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSource {
    pub described_object: CrossVersionObjectReference,
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// Names a metric; the selector is carried for the metrics adapter, the engine does not evaluate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricIdentifier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl MetricIdentifier {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            selector: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricTargetType {
    Utilization,
    Value,
    AverageValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub type_: MetricTargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

impl MetricTarget {
    pub fn utilization(percent: i32) -> Self {
        Self {
            type_: MetricTargetType::Utilization,
            value: None,
            average_value: None,
            average_utilization: Some(percent),
        }
    }

    pub fn value(value: Quantity) -> Self {
        Self {
            type_: MetricTargetType::Value,
            value: Some(value),
            average_value: None,
            average_utilization: None,
        }
    }

    pub fn average_value(value: Quantity) -> Self {
        Self {
            type_: MetricTargetType::AverageValue,
            value: None,
            average_value: Some(value),
            average_utilization: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerBehavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HpaScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HpaScalingRules>,
}

/// `HPAScalingRules`; unset members take the upstream defaults for their direction.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaScalingRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<ScalingPolicySelect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<HpaScalingPolicy>>,
    /// Per-direction tolerance (KEP-4951); unset uses the controller-wide tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Quantity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingPolicySelect {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HpaScalingPolicyType {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaScalingPolicy {
    #[serde(rename = "type")]
    pub type_: HpaScalingPolicyType,
    pub value: i32,
    pub period_seconds: i32,
}

impl fmt::Display for HpaScalingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.type_ {
            HpaScalingPolicyType::Pods => {
                write!(f, "Pods {} per {}s", self.value, self.period_seconds)
            }
            HpaScalingPolicyType::Percent => {
                write!(f, "Percent {}% per {}s", self.value, self.period_seconds)
            }
        }
    }
}

/// A metric value in the shape of `MetricValueStatus`: whichever members apply are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(u) = self.average_utilization {
            write!(f, "{u}%")?;
            sep = " ";
        }
        if let Some(v) = self.average_value {
            write!(f, "{sep}avg {v}")?;
            sep = " ";
        }
        if let Some(v) = self.value {
            write!(f, "{sep}{v}")?;
        }
        Ok(())
    }
}

/// A validated spec with every default applied; what the engine actually runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSpec {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub metrics: Vec<ResolvedMetric>,
    /// `None` selects the legacy path.
    pub behavior: Option<ResolvedBehavior>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMetric {
    /// Upstream's description of the metric, e.g. "cpu resource utilization (percentage of request)".
    pub name: String,
    pub source: MetricSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricSource {
    /// Resource or (with `container`) ContainerResource.
    Resource {
        resource: String,
        container: Option<String>,
        target: ResourceTarget,
    },
    Pods {
        metric: String,
        average_milli: i64,
    },
    Object {
        metric: String,
        target: ValueTarget,
    },
    External {
        metric: String,
        target: ValueTarget,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceTarget {
    Utilization(i32),
    AverageValue(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueTarget {
    Value(i64),
    AverageValue(i64),
}

impl MetricSource {
    /// The target in status shape, for explanations.
    pub fn target_value(&self) -> MetricValue {
        let q = |m: i64| Some(Quantity::from_milli(m));
        match self {
            Self::Resource {
                target: ResourceTarget::Utilization(p),
                ..
            } => MetricValue {
                average_utilization: Some(*p),
                ..MetricValue::default()
            },
            Self::Resource {
                target: ResourceTarget::AverageValue(m),
                ..
            }
            | Self::Pods {
                average_milli: m, ..
            }
            | Self::Object {
                target: ValueTarget::AverageValue(m),
                ..
            }
            | Self::External {
                target: ValueTarget::AverageValue(m),
                ..
            } => MetricValue {
                average_value: q(*m),
                ..MetricValue::default()
            },
            Self::Object {
                target: ValueTarget::Value(m),
                ..
            }
            | Self::External {
                target: ValueTarget::Value(m),
                ..
            } => MetricValue {
                value: q(*m),
                ..MetricValue::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBehavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    pub stabilization_window_seconds: i32,
    pub select_policy: ScalingPolicySelect,
    pub policies: Vec<HpaScalingPolicy>,
    /// `None` means "use the controller-wide tolerance".
    pub tolerance: Option<f64>,
}

impl ScalingRules {
    /// Upstream scale-up defaults: no window, the larger of +100 % and +4 pods every 15 s.
    pub fn default_scale_up() -> Self {
        Self {
            stabilization_window_seconds: 0,
            select_policy: ScalingPolicySelect::Max,
            policies: vec![
                HpaScalingPolicy {
                    type_: HpaScalingPolicyType::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                HpaScalingPolicy {
                    type_: HpaScalingPolicyType::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
            tolerance: None,
        }
    }

    /// Upstream scale-down defaults: the given window (300 s by default), -100 % every 15 s.
    pub fn default_scale_down(window_seconds: i32) -> Self {
        Self {
            stabilization_window_seconds: window_seconds,
            select_policy: ScalingPolicySelect::Max,
            policies: vec![HpaScalingPolicy {
                type_: HpaScalingPolicyType::Percent,
                value: 100,
                period_seconds: 15,
            }],
            tolerance: None,
        }
    }

    pub(crate) fn longest_period(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ScalerError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ScalerError::spec(
            field,
            format!("must be a non-empty name of at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

fn positive_quantity(field: &str, q: Option<Quantity>, what: &str) -> Result<i64, ScalerError> {
    match q {
        Some(q) if q.milli() > 0 => Ok(q.milli()),
        Some(q) => Err(ScalerError::spec(
            field,
            format!("must be positive, got {q}; set a {what} above zero"),
        )),
        None => Err(ScalerError::spec(
            field,
            format!("must be set when the target type asks for a {what}"),
        )),
    }
}

fn resolve_value_target(field: &str, t: &MetricTarget) -> Result<ValueTarget, ScalerError> {
    match t.type_ {
        MetricTargetType::Value => Ok(ValueTarget::Value(positive_quantity(
            &format!("{field}.value"),
            t.value,
            "value",
        )?)),
        MetricTargetType::AverageValue => Ok(ValueTarget::AverageValue(positive_quantity(
            &format!("{field}.averageValue"),
            t.average_value,
            "averageValue",
        )?)),
        MetricTargetType::Utilization => Err(ScalerError::spec(
            format!("{field}.type"),
            "Utilization targets apply to Resource and ContainerResource metrics only; use Value or AverageValue",
        )),
    }
}

fn resolve_resource_target(field: &str, t: &MetricTarget) -> Result<ResourceTarget, ScalerError> {
    match t.type_ {
        MetricTargetType::Utilization => match t.average_utilization {
            Some(p) if p > 0 => Ok(ResourceTarget::Utilization(p)),
            Some(p) => Err(ScalerError::spec(
                format!("{field}.averageUtilization"),
                format!("must be greater than 0, got {p}"),
            )),
            None => Err(ScalerError::spec(
                format!("{field}.averageUtilization"),
                "must be set for a Utilization target",
            )),
        },
        MetricTargetType::AverageValue => Ok(ResourceTarget::AverageValue(positive_quantity(
            &format!("{field}.averageValue"),
            t.average_value,
            "averageValue",
        )?)),
        MetricTargetType::Value => Err(ScalerError::spec(
            format!("{field}.type"),
            "resource metrics take Utilization or AverageValue targets, not Value",
        )),
    }
}

fn resolve_metric(i: usize, m: &MetricSpec) -> Result<ResolvedMetric, ScalerError> {
    let field = format!("metrics[{i}]");
    let set = [
        (MetricSourceType::Object, m.object.is_some()),
        (MetricSourceType::Pods, m.pods.is_some()),
        (MetricSourceType::Resource, m.resource.is_some()),
        (
            MetricSourceType::ContainerResource,
            m.container_resource.is_some(),
        ),
        (MetricSourceType::External, m.external.is_some()),
    ];
    if let Some((other, _)) = set.iter().find(|(t, present)| *present && *t != m.type_) {
        return Err(ScalerError::spec(
            &field,
            format!(
                "type is {:?} but the {other:?} member is also set; set only the member named by type",
                m.type_
            ),
        ));
    }
    let missing = || {
        ScalerError::spec(
            &field,
            format!("type is {:?} but its member is not set", m.type_),
        )
    };
    match m.type_ {
        MetricSourceType::Resource => {
            let r = m.resource.as_ref().ok_or_else(missing)?;
            check_name(&format!("{field}.resource.name"), &r.name)?;
            let target = resolve_resource_target(&format!("{field}.resource.target"), &r.target)?;
            let name = match target {
                ResourceTarget::Utilization(_) => {
                    format!("{} resource utilization (percentage of request)", r.name)
                }
                ResourceTarget::AverageValue(_) => format!("{} resource", r.name),
            };
            Ok(ResolvedMetric {
                name,
                source: MetricSource::Resource {
                    resource: r.name.clone(),
                    container: None,
                    target,
                },
            })
        }
        MetricSourceType::ContainerResource => {
            let r = m.container_resource.as_ref().ok_or_else(missing)?;
            check_name(&format!("{field}.containerResource.name"), &r.name)?;
            check_name(
                &format!("{field}.containerResource.container"),
                &r.container,
            )?;
            let target =
                resolve_resource_target(&format!("{field}.containerResource.target"), &r.target)?;
            let name = match target {
                ResourceTarget::Utilization(_) => format!(
                    "{} container resource utilization (percentage of request)",
                    r.name
                ),
                ResourceTarget::AverageValue(_) => format!("{} container resource", r.name),
            };
            Ok(ResolvedMetric {
                name,
                source: MetricSource::Resource {
                    resource: r.name.clone(),
                    container: Some(r.container.clone()),
                    target,
                },
            })
        }
        MetricSourceType::Pods => {
            let p = m.pods.as_ref().ok_or_else(missing)?;
            check_name(&format!("{field}.pods.metric.name"), &p.metric.name)?;
            if p.target.type_ != MetricTargetType::AverageValue {
                return Err(ScalerError::spec(
                    format!("{field}.pods.target.type"),
                    "Pods metrics take an AverageValue target only",
                ));
            }
            let average_milli = positive_quantity(
                &format!("{field}.pods.target.averageValue"),
                p.target.average_value,
                "averageValue",
            )?;
            Ok(ResolvedMetric {
                name: format!("pods metric {}", p.metric.name),
                source: MetricSource::Pods {
                    metric: p.metric.name.clone(),
                    average_milli,
                },
            })
        }
        MetricSourceType::Object => {
            let o = m.object.as_ref().ok_or_else(missing)?;
            check_name(&format!("{field}.object.metric.name"), &o.metric.name)?;
            check_name(
                &format!("{field}.object.describedObject.kind"),
                &o.described_object.kind,
            )?;
            check_name(
                &format!("{field}.object.describedObject.name"),
                &o.described_object.name,
            )?;
            let target = resolve_value_target(&format!("{field}.object.target"), &o.target)?;
            Ok(ResolvedMetric {
                name: format!("{} metric {}", o.described_object.kind, o.metric.name),
                source: MetricSource::Object {
                    metric: o.metric.name.clone(),
                    target,
                },
            })
        }
        MetricSourceType::External => {
            let e = m.external.as_ref().ok_or_else(missing)?;
            check_name(&format!("{field}.external.metric.name"), &e.metric.name)?;
            let target = resolve_value_target(&format!("{field}.external.target"), &e.target)?;
            Ok(ResolvedMetric {
                name: format!("external metric {}", e.metric.name),
                source: MetricSource::External {
                    metric: e.metric.name.clone(),
                    target,
                },
            })
        }
    }
}

fn resolve_rules(
    field: &str,
    rules: Option<&HpaScalingRules>,
    defaults: ScalingRules,
) -> Result<ScalingRules, ScalerError> {
    let Some(rules) = rules else {
        return Ok(defaults);
    };
    let window = rules
        .stabilization_window_seconds
        .unwrap_or(defaults.stabilization_window_seconds);
    if !(0..=MAX_STABILIZATION_WINDOW_SECONDS).contains(&window) {
        return Err(ScalerError::spec(
            format!("{field}.stabilizationWindowSeconds"),
            format!("must be within 0..={MAX_STABILIZATION_WINDOW_SECONDS} seconds, got {window}"),
        ));
    }
    let policies = match &rules.policies {
        None => defaults.policies,
        Some(p) if p.is_empty() => {
            return Err(ScalerError::spec(
                format!("{field}.policies"),
                "must list at least one policy; omit the field to use the defaults",
            ));
        }
        Some(p) if p.len() > MAX_POLICIES => {
            return Err(ScalerError::spec(
                format!("{field}.policies"),
                format!(
                    "lists {} policies, at most {MAX_POLICIES} are accepted",
                    p.len()
                ),
            ));
        }
        Some(p) => p.clone(),
    };
    for (i, p) in policies.iter().enumerate() {
        if p.value <= 0 {
            return Err(ScalerError::spec(
                format!("{field}.policies[{i}].value"),
                format!("must be greater than zero, got {}", p.value),
            ));
        }
        if !(1..=MAX_PERIOD_SECONDS).contains(&p.period_seconds) {
            return Err(ScalerError::spec(
                format!("{field}.policies[{i}].periodSeconds"),
                format!(
                    "must be within 1..={MAX_PERIOD_SECONDS} seconds, got {}",
                    p.period_seconds
                ),
            ));
        }
    }
    let tolerance = match rules.tolerance {
        Some(t) if t.milli() < 0 => {
            return Err(ScalerError::spec(
                format!("{field}.tolerance"),
                format!("must be greater than or equal to 0, got {t}"),
            ));
        }
        Some(t) => Some(t.as_f64()),
        None => None,
    };
    Ok(ScalingRules {
        stabilization_window_seconds: window,
        select_policy: rules.select_policy.unwrap_or(defaults.select_policy),
        policies,
        tolerance,
    })
}

impl AutoscalerSpec {
    /// Validates the spec as the API server would and applies the API and controller defaults.
    /// `downscale_window_seconds` fills an unset `scaleDown.stabilizationWindowSeconds`.
    pub fn resolve(&self, downscale_window_seconds: i32) -> Result<ResolvedSpec, ScalerError> {
        let min_replicas = self.min_replicas.unwrap_or(1);
        if min_replicas < 1 {
            return Err(ScalerError::spec(
                "minReplicas",
                format!(
                    "must be at least 1, got {min_replicas}; scale to zero (alpha HPAScaleToZero) is not supported"
                ),
            ));
        }
        if self.max_replicas < min_replicas {
            return Err(ScalerError::spec(
                "maxReplicas",
                format!(
                    "must be greater than or equal to minReplicas ({min_replicas}), got {}",
                    self.max_replicas
                ),
            ));
        }
        if self.metrics.len() > MAX_METRICS {
            return Err(ScalerError::spec(
                "metrics",
                format!(
                    "lists {} metrics, at most {MAX_METRICS} are accepted",
                    self.metrics.len()
                ),
            ));
        }
        let metrics = if self.metrics.is_empty() {
            vec![resolve_metric(
                0,
                &MetricSpec::resource_utilization("cpu", DEFAULT_CPU_UTILIZATION),
            )?]
        } else {
            self.metrics
                .iter()
                .enumerate()
                .map(|(i, m)| resolve_metric(i, m))
                .collect::<Result<Vec<_>, _>>()?
        };
        let behavior = match &self.behavior {
            None => None,
            Some(b) => Some(ResolvedBehavior {
                scale_up: resolve_rules(
                    "behavior.scaleUp",
                    b.scale_up.as_ref(),
                    ScalingRules::default_scale_up(),
                )?,
                scale_down: resolve_rules(
                    "behavior.scaleDown",
                    b.scale_down.as_ref(),
                    ScalingRules::default_scale_down(downscale_window_seconds),
                )?,
            }),
        };
        Ok(ResolvedSpec {
            min_replicas,
            max_replicas: self.max_replicas,
            metrics,
            behavior,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<ResolvedSpec, ScalerError> {
        let s: AutoscalerSpec = serde_json::from_str(json).expect("test json parses");
        s.resolve(300)
    }

    #[test]
    fn kubernetes_json_round_trips() {
        let json = r#"{"minReplicas":2,"maxReplicas":10,"metrics":[
            {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}},
            {"type":"External","external":{"metric":{"name":"queue","selector":{"matchLabels":{"q":"a"}}},
              "target":{"type":"AverageValue","averageValue":"30"}}}],
            "behavior":{"scaleDown":{"stabilizationWindowSeconds":60,"selectPolicy":"Min",
              "policies":[{"type":"Pods","value":1,"periodSeconds":60}],"tolerance":"0.05"}}}"#;
        let s: AutoscalerSpec = serde_json::from_str(json).expect("parses");
        let back: AutoscalerSpec =
            serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("re-parses");
        assert_eq!(s, back);
        let r = s.resolve(300).expect("valid");
        assert_eq!(r.min_replicas, 2);
        let b = r.behavior.expect("behavior set");
        assert_eq!(b.scale_down.tolerance, Some(0.05));
        assert_eq!(b.scale_down.select_policy, ScalingPolicySelect::Min);
        assert_eq!(
            b.scale_up,
            ScalingRules::default_scale_up(),
            "unset scaleUp takes defaults"
        );
        assert_eq!(r.metrics[1].name, "external metric queue");
    }

    #[test]
    fn defaults_match_upstream() {
        let r = spec(r#"{"maxReplicas":5}"#).expect("valid");
        assert_eq!(r.min_replicas, 1, "minReplicas defaults to 1");
        assert!(r.behavior.is_none(), "no behavior selects the legacy path");
        assert_eq!(
            r.metrics[0].source,
            MetricSource::Resource {
                resource: "cpu".into(),
                container: None,
                target: ResourceTarget::Utilization(80)
            },
            "no metrics means cpu at 80 %"
        );
        let r = spec(r#"{"maxReplicas":5,"behavior":{"scaleDown":{"selectPolicy":"Disabled"}}}"#)
            .expect("valid");
        let b = r.behavior.expect("behavior");
        assert_eq!(b.scale_down.stabilization_window_seconds, 300);
        assert_eq!(
            b.scale_down.policies,
            ScalingRules::default_scale_down(300).policies
        );
    }

    #[test]
    fn rejects_invalid_specs() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"minReplicas":5,"maxReplicas":2}"#,
                "maxReplicas",
                "min above max",
            ),
            (
                r#"{"minReplicas":0,"maxReplicas":2}"#,
                "minReplicas",
                "scale to zero is alpha",
            ),
            (
                r#"{"maxReplicas":2,"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":0}}}]}"#,
                "averageUtilization",
                "zero utilization target",
            ),
            (
                r#"{"maxReplicas":2,"metrics":[{"type":"Pods","pods":{"metric":{"name":"rps"},"target":{"type":"AverageValue","averageValue":"0"}}}]}"#,
                "averageValue",
                "zero average target",
            ),
            (
                r#"{"maxReplicas":2,"metrics":[{"type":"Pods","pods":{"metric":{"name":"rps"},"target":{"type":"Value","value":"1"}}}]}"#,
                "pods.target.type",
                "pods metrics only take AverageValue",
            ),
            (
                r#"{"maxReplicas":2,"metrics":[{"type":"External","pods":{"metric":{"name":"rps"},"target":{"type":"AverageValue","averageValue":"1"}}}]}"#,
                "metrics[0]",
                "member does not match type",
            ),
            (
                r#"{"maxReplicas":2,"metrics":[{"type":"Object","object":{"describedObject":{"kind":"Service","name":"s"},"metric":{"name":"rps"},"target":{"type":"Value","value":"-1"}}}]}"#,
                "value",
                "negative value target",
            ),
            (
                r#"{"maxReplicas":2,"behavior":{"scaleUp":{"stabilizationWindowSeconds":3601}}}"#,
                "stabilizationWindowSeconds",
                "window above one hour",
            ),
            (
                r#"{"maxReplicas":2,"behavior":{"scaleUp":{"policies":[{"type":"Pods","value":1,"periodSeconds":0}]}}}"#,
                "periodSeconds",
                "zero period",
            ),
            (
                r#"{"maxReplicas":2,"behavior":{"scaleUp":{"policies":[{"type":"Percent","value":0,"periodSeconds":15}]}}}"#,
                "value",
                "zero policy value",
            ),
            (
                r#"{"maxReplicas":2,"behavior":{"scaleDown":{"policies":[]}}}"#,
                "policies",
                "empty policy list",
            ),
            (
                r#"{"maxReplicas":2,"behavior":{"scaleDown":{"tolerance":"-0.1"}}}"#,
                "tolerance",
                "negative tolerance",
            ),
        ];
        for (json, field, why) in cases {
            match spec(json) {
                Err(ScalerError::InvalidSpec { field: f, .. }) => {
                    assert!(f.contains(field), "{why}: error at {f}, expected {field}")
                }
                other => panic!("{why}: expected InvalidSpec, got {other:?}"),
            }
        }
    }
}
