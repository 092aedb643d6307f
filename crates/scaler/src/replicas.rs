//! Per-metric replica proposals, reproducing upstream `replica_calculator.go` on exact milli-values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::ConditionStatus;
use crate::error::ScalerError;
use crate::quantity::Quantity;
use crate::spec::{MetricSource, MetricValue, ResourceTarget, ValueTarget};
use crate::time::Timestamp;

/// Most pods one observation may list; bounds the work of one decision.
pub const MAX_PODS: usize = 50_000;
/// Most external series one observation may sum.
pub const MAX_SERIES: usize = 10_000;
/// Longest pod name accepted (Kubernetes object names are at most 253 characters).
const MAX_POD_NAME_LEN: usize = 253;

/// Everything the engine needs for one evaluation of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// `scale.spec.replicas`: the replica count the decision starts from.
    pub spec_replicas: i32,
    /// `scale.status.replicas`: used by AverageValue targets on Object and External metrics.
    pub status_replicas: i32,
    /// The pods selected by the target's selector.
    pub pods: Vec<PodInfo>,
    /// One entry per spec metric, in the same order.
    pub metrics: Vec<MetricObservation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// The pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyCondition {
    pub status: ConditionStatus,
    pub last_transition_time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub name: String,
    pub phase: PodPhase,
    /// The pod has a deletion timestamp: it is ignored like a failed pod.
    #[serde(default)]
    pub deleting: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// `None` when the pod has no Ready condition yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyCondition>,
}

impl PodInfo {
    /// A running pod that became ready at `since` and started at `since` too.
    pub fn running_ready(name: &str, since: Timestamp) -> Self {
        Self {
            name: name.into(),
            phase: PodPhase::Running,
            deleting: false,
            start_time: Some(since),
            ready: Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_time: since,
            }),
        }
    }

    /// Running with its Ready condition true: a pod that serves.
    pub fn is_running_and_ready(&self) -> bool {
        self.phase == PodPhase::Running
            && self
                .ready
                .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

/// One pod's sample of a per-pod metric, with the collection window it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSample {
    pub pod: String,
    pub value: Quantity,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// The values fetched for one spec metric, or why they could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum MetricObservation {
    /// Resource or ContainerResource: usage per pod, and the request per pod for that resource
    /// (summed over the containers that count, or the one named container).
    Resource {
        usage: Vec<PodSample>,
        requests: BTreeMap<String, Quantity>,
    },
    /// Pods metric: one sample per pod.
    Pods { samples: Vec<PodSample> },
    /// Object metric: the object's value.
    Object { value: Quantity },
    /// External metric: every matching series, summed as upstream does.
    External { values: Vec<Quantity> },
    /// The metrics pipeline failed for this metric; the text lands in the condition message.
    Unavailable { reason: String },
}

impl MetricObservation {
    fn kind(&self) -> &'static str {
        match self {
            Self::Resource { .. } => "Resource",
            Self::Pods { .. } => "Pods",
            Self::Object { .. } => "Object",
            Self::External { .. } => "External",
            Self::Unavailable { .. } => "Unavailable",
        }
    }
}

/// Why one metric gave no proposal: the condition reason and message upstream would set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricFailure {
    pub reason: &'static str,
    pub message: String,
}

/// Scale-down and scale-up tolerances around a usage ratio of 1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tolerances {
    pub down: f64,
    pub up: f64,
}

impl Tolerances {
    fn is_within(self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }
}

/// Inputs shared by every metric of one decision.
pub(crate) struct Ctx<'a> {
    pub pods: &'a [PodInfo],
    pub now: Timestamp,
    pub tolerances: Tolerances,
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub cpu_initialization_period: Duration,
    pub delay_of_initial_readiness_status: Duration,
}

/// A metric's proposal and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Computed {
    pub proposal: i32,
    pub current: MetricValue,
    pub ratio: f64,
}

const NO_PODS: &str = "no pods returned by selector while calculating replica count";

/// `int32(math.Ceil(x))` without the undefined overflow: NaN maps to 0, huge values to `i32::MAX`.
pub(crate) fn ceil_replicas(x: f64) -> i32 {
    if x.is_nan() {
        return 0;
    }
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

/// Validates the pod list once per decision: bounded, unique, sane names.
pub(crate) fn check_pods(pods: &[PodInfo]) -> Result<(), ScalerError> {
    if pods.len() > MAX_PODS {
        return Err(ScalerError::observation(
            "pods",
            format!("lists {} pods, at most {MAX_PODS} are accepted", pods.len()),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in pods.iter().enumerate() {
        if p.name.is_empty() || p.name.len() > MAX_POD_NAME_LEN {
            return Err(ScalerError::observation(
                format!("pods[{i}].name"),
                format!("must be 1..={MAX_POD_NAME_LEN} characters"),
            ));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(ScalerError::observation(
                format!("pods[{i}].name"),
                format!("pod {:?} is listed twice; list each pod once", p.name),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: i64,
    timestamp: Timestamp,
    window: Duration,
}

type Samples<'a> = BTreeMap<&'a str, Sample>;

fn sample_map(samples: &[PodSample]) -> Result<Samples<'_>, String> {
    if samples.len() > MAX_PODS {
        return Err(format!(
            "{} samples received, at most {MAX_PODS} are accepted",
            samples.len()
        ));
    }
    let mut map = BTreeMap::new();
    for s in samples {
        if s.value.milli() < 0 {
            return Err(format!(
                "sample for pod {:?} is negative ({}); samples must be >= 0",
                s.pod, s.value
            ));
        }
        let sample = Sample {
            value: s.value.milli(),
            timestamp: s.timestamp,
            window: s.window,
        };
        if map.insert(s.pod.as_str(), sample).is_some() {
            return Err(format!(
                "two samples received for pod {:?}; send one per pod",
                s.pod
            ));
        }
    }
    Ok(map)
}

struct Groups<'a> {
    ready: usize,
    unready: Vec<&'a str>,
    missing: Vec<&'a str>,
    ignored: Vec<&'a str>,
}

/// Sorts pods as upstream `groupPods`: deleted/failed are ignored, pending are unready, pods without a
/// sample are missing; for CPU only, pods still initialising or never ready are unready too.
fn group_pods<'a>(ctx: &Ctx<'a>, metrics: &Samples<'_>, cpu: bool) -> Groups<'a> {
    let mut g = Groups {
        ready: 0,
        unready: Vec::new(),
        missing: Vec::new(),
        ignored: Vec::new(),
    };
    for pod in ctx.pods {
        let name = pod.name.as_str();
        if pod.deleting || pod.phase == PodPhase::Failed {
            g.ignored.push(name);
            continue;
        }
        if pod.phase == PodPhase::Pending {
            g.unready.push(name);
            continue;
        }
        let Some(sample) = metrics.get(name) else {
            g.missing.push(name);
            continue;
        };
        if cpu {
            let unready = match (pod.ready, pod.start_time) {
                (Some(cond), Some(start)) => {
                    if start.plus(ctx.cpu_initialization_period) > ctx.now {
                        // Still initialising: distrust the sample unless a full window was collected
                        // after the last readiness transition.
                        cond.status == ConditionStatus::False
                            || sample.timestamp < cond.last_transition_time.plus(sample.window)
                    } else {
                        // Past initialisation: ignore only pods that are unready and never were ready.
                        cond.status == ConditionStatus::False
                            && start.plus(ctx.delay_of_initial_readiness_status)
                                > cond.last_transition_time
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.push(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

fn remove_pods(metrics: &mut Samples<'_>, pods: &[&str]) {
    for p in pods {
        metrics.remove(*p);
    }
}

/// `GetResourceUtilizationRatio`: integer percent of summed request, truncated, then divided by target.
fn utilization_ratio(
    metrics: &Samples<'_>,
    requests: &BTreeMap<&str, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i128, 0i128, 0i128);
    for (pod, s) in metrics {
        let Some(r) = requests.get(pod) else { continue };
        used += i128::from(s.value);
        requested += i128::from(*r);
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested).clamp(0, i128::from(i32::MAX)) as i32;
    let raw = (used / n).clamp(0, i128::from(i64::MAX)) as i64;
    Ok((f64::from(utilization) / f64::from(target), utilization, raw))
}

/// `GetMetricUsageRatio`: integer average milli-value over every sample, divided by target.
fn usage_ratio(metrics: &Samples<'_>, target: i64) -> (f64, i64) {
    let total: i128 = metrics.values().map(|s| i128::from(s.value)).sum();
    let n = metrics.len().max(1) as i128;
    let usage = (total / n).clamp(0, i128::from(i64::MAX)) as i64;
    (usage as f64 / target as f64, usage)
}

/// The shared tail of both per-pod calculators: fast path, then the conservative re-computation.
struct Rebalance<'a, 'b> {
    ctx: &'b Ctx<'a>,
    groups: Groups<'a>,
    ratio: f64,
}

impl Rebalance<'_, '_> {
    fn fast_path(&self) -> Option<i32> {
        let scale_up_with_unready = !self.groups.unready.is_empty() && self.ratio > 1.0;
        if scale_up_with_unready || !self.groups.missing.is_empty() {
            return None;
        }
        if self.ctx.tolerances.is_within(self.ratio) {
            return Some(self.ctx.spec_replicas);
        }
        Some(ceil_replicas(self.ratio * self.groups.ready as f64))
    }

    fn finish(&self, new_ratio: f64, counted: usize) -> i32 {
        let (old, current) = (self.ratio, self.ctx.spec_replicas);
        if self.ctx.tolerances.is_within(new_ratio)
            || (old < 1.0 && new_ratio > 1.0)
            || (old > 1.0 && new_ratio < 1.0)
        {
            // Too small a change, or the conservative assumptions flipped the direction.
            return current;
        }
        let proposal = ceil_replicas(new_ratio * counted as f64);
        if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
            return current;
        }
        proposal
    }
}

fn resource_utilization<'a>(
    ctx: &Ctx<'a>,
    resource: &str,
    target: i32,
    usage: &'a [PodSample],
    requests: &BTreeMap<String, Quantity>,
) -> Result<Computed, String> {
    if ctx.pods.is_empty() {
        return Err(NO_PODS.into());
    }
    let mut metrics = sample_map(usage)?;
    let groups = group_pods(ctx, &metrics, resource == "cpu");
    remove_pods(&mut metrics, &groups.ignored);
    remove_pods(&mut metrics, &groups.unready);
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let mut reqs = BTreeMap::new();
    for pod in ctx.pods {
        match requests.get(&pod.name) {
            Some(r) if r.milli() >= 0 => reqs.insert(pod.name.as_str(), r.milli()),
            Some(r) => {
                return Err(format!(
                    "request for {resource} in pod {} is negative ({r})",
                    pod.name
                ));
            }
            None => {
                return Err(format!(
                    "missing request for {resource} in pod {}",
                    pod.name
                ));
            }
        };
    }
    let (ratio, utilization, raw) = utilization_ratio(&metrics, &reqs, target)?;
    let current = MetricValue {
        average_utilization: Some(utilization),
        average_value: Some(Quantity::from_milli(raw)),
        value: None,
    };
    let rb = Rebalance { ctx, groups, ratio };
    if let Some(proposal) = rb.fast_path() {
        return Ok(Computed {
            proposal,
            current,
            ratio,
        });
    }
    let fill = |metrics: &mut Samples<'a>, pod: &'a str, value: i64| {
        if let Some((name, _)) = reqs.get_key_value(pod) {
            metrics.insert(
                name,
                Sample {
                    value,
                    timestamp: ctx.now,
                    window: Duration::ZERO,
                },
            );
        }
    };
    if ratio < 1.0 {
        // Scale-down: missing pods are assumed to use their full request (or the target, if above 100 %).
        let fallback = i64::from(target.max(100));
        for pod in &rb.groups.missing {
            let r = reqs.get(pod).copied().unwrap_or(0);
            fill(&mut metrics, pod, r.saturating_mul(fallback) / 100);
        }
    } else if ratio > 1.0 {
        for pod in &rb.groups.missing {
            fill(&mut metrics, pod, 0);
        }
    }
    if !rb.groups.unready.is_empty() && ratio > 1.0 {
        for pod in &rb.groups.unready {
            fill(&mut metrics, pod, 0);
        }
    }
    let (new_ratio, _, _) = utilization_ratio(&metrics, &reqs, target)?;
    Ok(Computed {
        proposal: rb.finish(new_ratio, metrics.len()),
        current,
        ratio,
    })
}

fn plain_per_pod<'a>(
    ctx: &Ctx<'a>,
    samples: &'a [PodSample],
    target: i64,
    cpu: bool,
) -> Result<Computed, String> {
    if ctx.pods.is_empty() {
        return Err(NO_PODS.into());
    }
    let mut metrics = sample_map(samples)?;
    let groups = group_pods(ctx, &metrics, cpu);
    remove_pods(&mut metrics, &groups.ignored);
    remove_pods(&mut metrics, &groups.unready);
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, usage) = usage_ratio(&metrics, target);
    let current = MetricValue {
        average_value: Some(Quantity::from_milli(usage)),
        ..MetricValue::default()
    };
    let rb = Rebalance { ctx, groups, ratio };
    if let Some(proposal) = rb.fast_path() {
        return Ok(Computed {
            proposal,
            current,
            ratio,
        });
    }
    let assumed = |value: i64| Sample {
        value,
        timestamp: ctx.now,
        window: Duration::ZERO,
    };
    if ratio < 1.0 {
        // Scale-down: missing pods are assumed to sit exactly at the target.
        for pod in &rb.groups.missing {
            metrics.insert(pod, assumed(target));
        }
    } else if ratio > 1.0 {
        for pod in &rb.groups.missing {
            metrics.insert(pod, assumed(0));
        }
    }
    if !rb.groups.unready.is_empty() && ratio > 1.0 {
        for pod in &rb.groups.unready {
            metrics.insert(pod, assumed(0));
        }
    }
    let (new_ratio, _) = usage_ratio(&metrics, target);
    Ok(Computed {
        proposal: rb.finish(new_ratio, metrics.len()),
        current,
        ratio,
    })
}

/// `getUsageRatioReplicaCount`: a whole-target ratio scaled by the number of running, ready pods.
fn ratio_times_ready_pods(ctx: &Ctx<'_>, ratio: f64) -> Result<i32, String> {
    if ctx.tolerances.is_within(ratio) {
        return Ok(ctx.spec_replicas);
    }
    if ctx.pods.is_empty() {
        return Err(format!("unable to calculate ready pods: {NO_PODS}"));
    }
    let ready = ctx.pods.iter().filter(|p| p.is_running_and_ready()).count();
    Ok(ceil_replicas(ratio * ready as f64))
}

fn value_metric(ctx: &Ctx<'_>, usage: i64, target: ValueTarget) -> Result<Computed, String> {
    match target {
        ValueTarget::Value(t) => {
            let ratio = usage as f64 / t as f64;
            Ok(Computed {
                proposal: ratio_times_ready_pods(ctx, ratio)?,
                current: MetricValue {
                    value: Some(Quantity::from_milli(usage)),
                    ..MetricValue::default()
                },
                ratio,
            })
        }
        ValueTarget::AverageValue(t) => {
            let per_pod_needed = usage as f64 / t as f64;
            let status = ctx.status_replicas;
            if status == 0 {
                // Upstream divides by zero here and always rescales to ceil(usage/target); do that
                // without producing an infinite ratio or a garbage average.
                return Ok(Computed {
                    proposal: ceil_replicas(per_pod_needed),
                    current: MetricValue::default(),
                    ratio: per_pod_needed,
                });
            }
            let ratio = per_pod_needed / f64::from(status);
            let proposal = if ctx.tolerances.is_within(ratio) {
                status
            } else {
                ceil_replicas(per_pod_needed)
            };
            let average = (usage as f64 / f64::from(status)).ceil() as i64;
            Ok(Computed {
                proposal,
                current: MetricValue {
                    average_value: Some(Quantity::from_milli(average)),
                    ..MetricValue::default()
                },
                ratio,
            })
        }
    }
}

/// Computes one metric's proposal, or the failure upstream would report for it.
pub(crate) fn compute<'a>(
    source: &MetricSource,
    obs: &'a MetricObservation,
    ctx: &Ctx<'a>,
) -> Result<Computed, MetricFailure> {
    let (reason, what) = match source {
        MetricSource::Resource {
            resource,
            container: None,
            ..
        } => (
            "FailedGetResourceMetric",
            format!("{resource} resource metric"),
        ),
        MetricSource::Resource {
            resource,
            container: Some(_),
            ..
        } => (
            "FailedGetContainerResourceMetric",
            format!("{resource} container resource metric"),
        ),
        MetricSource::Pods { .. } => ("FailedGetPodsMetric", "pods metric".to_string()),
        MetricSource::Object { .. } => ("FailedGetObjectMetric", "object metric".to_string()),
        MetricSource::External { .. } => ("FailedGetExternalMetric", "external metric".to_string()),
    };
    let result = match (source, obs) {
        (_, MetricObservation::Unavailable { reason }) => {
            Err(format!("unable to fetch metrics: {reason}"))
        }
        (
            MetricSource::Resource {
                resource, target, ..
            },
            MetricObservation::Resource { usage, requests },
        ) => match target {
            ResourceTarget::Utilization(t) => {
                resource_utilization(ctx, resource, *t, usage, requests)
            }
            ResourceTarget::AverageValue(t) => plain_per_pod(ctx, usage, *t, resource == "cpu"),
        },
        (MetricSource::Pods { average_milli, .. }, MetricObservation::Pods { samples }) => {
            plain_per_pod(ctx, samples, *average_milli, false)
        }
        (MetricSource::Object { target, .. }, MetricObservation::Object { value }) => {
            if value.milli() < 0 {
                Err(format!(
                    "object metric value is negative ({value}); values must be >= 0"
                ))
            } else {
                value_metric(ctx, value.milli(), *target)
            }
        }
        (MetricSource::External { target, .. }, MetricObservation::External { values }) => {
            if values.len() > MAX_SERIES {
                Err(format!(
                    "{} external series received, at most {MAX_SERIES} are accepted",
                    values.len()
                ))
            } else if let Some(v) = values.iter().find(|v| v.milli() < 0) {
                Err(format!(
                    "external metric series is negative ({v}); values must be >= 0"
                ))
            } else {
                // Saturate like upstream caps the sum at MaxInt64 instead of wrapping.
                let usage = values
                    .iter()
                    .fold(0i64, |acc, v| acc.saturating_add(v.milli()));
                value_metric(ctx, usage, *target)
            }
        }
        (_, other) => Err(format!(
            "the observation is of kind {} but the spec metric needs a different kind; send observations in spec order",
            other.kind()
        )),
    };
    result.map_err(|e| MetricFailure {
        reason,
        message: format!(
            "the HPA was unable to compute the replica count: failed to get {what} value: {e}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type CpuRow<'a> = (
        &'a [PodInfo],
        &'a [i64],
        i32,
        Result<i32, &'static str>,
        &'static str,
    );
    type PodsRow = (&'static [i64], i64, (f64, f64), i32, &'static str);

    const START: Timestamp = Timestamp::from_secs(1_000_000);

    fn now() -> Timestamp {
        START.plus(Duration::from_secs(3600))
    }

    fn ctx(pods: &[PodInfo], current: i32) -> Ctx<'_> {
        Ctx {
            pods,
            now: now(),
            tolerances: Tolerances { down: 0.1, up: 0.1 },
            spec_replicas: current,
            status_replicas: current,
            cpu_initialization_period: Duration::from_secs(300),
            delay_of_initial_readiness_status: Duration::from_secs(30),
        }
    }

    fn pods(n: usize) -> Vec<PodInfo> {
        (0..n)
            .map(|i| PodInfo::running_ready(&format!("p{i}"), START))
            .collect()
    }

    fn samples(values: &[i64]) -> Vec<PodSample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| PodSample {
                pod: format!("p{i}"),
                value: Quantity::from_milli(*v),
                timestamp: now(),
                window: Duration::from_secs(30),
            })
            .collect()
    }

    fn requests(n: usize, milli: i64) -> BTreeMap<String, Quantity> {
        (0..n)
            .map(|i| (format!("p{i}"), Quantity::from_milli(milli)))
            .collect()
    }

    /// Resource utilization against 1000m requests; `usage` has one entry per pod that reports.
    fn cpu(pods: &[PodInfo], usage: &[i64], target: i32) -> Result<Computed, String> {
        resource_utilization(
            &ctx(pods, pods.len() as i32),
            "cpu",
            target,
            &samples(usage),
            &requests(pods.len(), 1000),
        )
    }

    #[test]
    fn resource_utilization_table() {
        let mut unready_first = pods(3);
        unready_first[0].ready = Some(ReadyCondition {
            status: ConditionStatus::False,
            last_transition_time: START,
        });
        let mut pending_first = pods(3);
        pending_first[0].phase = PodPhase::Pending;
        let mut deleting_first = pods(3);
        deleting_first[0].deleting = true;
        let mut young = pods(3);
        for p in &mut young {
            // Started 60 s ago: inside the 5-minute CPU initialization period; ready 10 s ago.
            p.start_time = Some(now().minus(Duration::from_secs(60)));
            p.ready = Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_time: now().minus(Duration::from_secs(10)),
            });
        }
        // (pods, usage samples in milli-cpu against 1000m requests, target %, expected proposal, reason)
        let rows: &[CpuRow<'_>] = &[
            (
                &pods(3),
                &[300, 500, 700],
                30,
                Ok(5),
                "50 % against 30 % on 3 pods scales up to ceil(1.67*3)",
            ),
            (
                &pods(5),
                &[100, 300, 500, 250, 250],
                50,
                Ok(3),
                "28 % against 50 % scales down to ceil(0.56*5)",
            ),
            (
                &pods(4),
                &[400, 500, 600, 500],
                50,
                Ok(4),
                "exactly on target stays",
            ),
            (
                &pods(4),
                &[540, 540, 540, 540],
                50,
                Ok(4),
                "54 % vs 50 % is within the 10 % tolerance",
            ),
            (
                &unready_first,
                &[300, 500, 700],
                30,
                Ok(4),
                "unready pod counts as 0 on scale-up: 40 % over 3 pods",
            ),
            (
                &pending_first,
                &[300, 500, 700],
                30,
                Ok(4),
                "pending pod is unready: same damping",
            ),
            (
                &deleting_first,
                &[9000, 500, 700],
                30,
                Ok(4),
                "deleting pod is ignored, even its huge sample",
            ),
            (
                &pods(4),
                &[900, 900, 900],
                50,
                Ok(6),
                "missing pod counts as 0 on scale-up: 67 % -> ceil(1.34*4)",
            ),
            (
                &pods(4),
                &[100, 100, 100],
                50,
                Ok(3),
                "missing pod counts as its request on scale-down: 32 % -> ceil(0.64*4)",
            ),
            (
                &pods(4),
                &[200, 200, 200],
                30,
                Ok(4),
                "missing pod at 100 % flips a scale-down into a scale-up: no change",
            ),
            (
                &young,
                &[900, 900, 900],
                30,
                Err("did not receive metrics"),
                "initialising pods without a full window since ready are unready",
            ),
            (
                &[],
                &[],
                30,
                Err("no pods returned"),
                "no pods at all is an error, not a scale to zero",
            ),
        ];
        for (pods, usage, target, want, why) in rows {
            match (cpu(pods, usage, *target), want) {
                (Ok(c), Ok(w)) => assert_eq!(c.proposal, *w, "{why}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{why}: {e}"),
                (got, _) => panic!("{why}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn missing_pods_above_100_percent_target_use_the_target() {
        // Target 200 %: a missing pod on scale-down is assumed at 200 % of its request (upstream 1.35).
        // Known: 3 pods at 100m of 1000m = 10 % -> ratio 0.05; filled: 300 + 2000 = 2300/4000 = 57 %
        // -> ratio 0.285 -> ceil(0.285 * 4) = 2.
        let p = pods(4);
        let got = cpu(&p, &[100, 100, 100], 200).expect("computes");
        assert_eq!(got.proposal, 2);
    }

    #[test]
    fn pods_metric_missing_and_tolerance() {
        // (samples in milli, target milli, tolerances, expected, reason)
        let rows: &[PodsRow] = &[
            (
                &[20_000, 10_000, 30_000],
                15_000,
                (0.1, 0.1),
                4,
                "avg 20 vs 15 on 3 pods -> ceil(1.33*3)",
            ),
            (
                &[12_000, 12_000, 12_000],
                15_000,
                (0.1, 0.1),
                3,
                "avg 12 vs 15 is a 20 % drop -> ceil(0.8*3) = 3",
            ),
            (
                &[5_000, 5_000, 5_000],
                15_000,
                (0.1, 0.1),
                1,
                "avg 5 vs 15 -> ceil(0.33*3)",
            ),
            (
                &[16_000, 16_000, 16_000],
                15_000,
                (0.1, 0.1),
                3,
                "6.7 % over target is within default tolerance",
            ),
            (
                &[16_000, 16_000, 16_000],
                15_000,
                (0.1, 0.05),
                4,
                "a 5 % scale-up tolerance lets 6.7 % through",
            ),
            (
                &[14_000, 14_000, 14_000],
                15_000,
                (0.05, 0.1),
                3,
                "6.7 % under with 5 % down tolerance: ceil(0.933*3) = 3",
            ),
        ];
        let p = pods(3);
        for (vals, target, (down, up), want, why) in rows {
            let mut c = ctx(&p, 3);
            c.tolerances = Tolerances {
                down: *down,
                up: *up,
            };
            let got = plain_per_pod(&c, &samples(vals), *target, false).expect("computes");
            assert_eq!(got.proposal, *want, "{why}");
        }
        // Missing pod on scale-down sits at the target: (5+5+15)/3 = 8.33 vs 15 -> ceil(0.555*3) = 2.
        let got =
            plain_per_pod(&ctx(&p, 3), &samples(&[5_000, 5_000]), 15_000, false).expect("computes");
        assert_eq!(got.proposal, 2);
    }

    #[test]
    fn bad_samples_are_errors() {
        let p = pods(2);
        let mut dup = samples(&[100, 100]);
        dup[1].pod = "p0".into();
        let neg = samples(&[100, -1]);
        for (s, want, why) in [
            (dup, "two samples", "duplicate pod sample"),
            (neg, "negative", "negative usage"),
        ] {
            let err = plain_per_pod(&ctx(&p, 2), &s, 100, false).expect_err(why);
            assert!(err.contains(want), "{why}: {err}");
        }
    }
}
