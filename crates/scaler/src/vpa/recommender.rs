//! Usage aggregation per container and the estimators that turn it into target, lower and upper bounds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::amount::{CpuAmount, MemoryAmount, ResourceList, amount_from_float, scale};
use super::histogram::{DecayingHistogram, HistogramOptions};
use super::output::{RecommendedContainerResources, RecommendedPodResources};
use super::policy::{MAX_NAME_LEN, PodResourcePolicy, ResourceName, split_minimum};
use crate::error::ScalerError;
use crate::time::Timestamp;

const HOUR_MS: i64 = 3_600_000;
/// Distinct (pod, container) pairs kept; a workload's history over 8 days rarely has more than a few
/// hundred pods, so this bounds memory against a runaway query.
pub const MAX_CONTAINERS: usize = 100_000;
/// Upstream's floor for a CPU sample's weight, in cores, so zero-request containers still count.
const MIN_SAMPLE_WEIGHT: f64 = 0.1;

/// Recommender settings; [`Default`] is upstream's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpaConfig {
    pub target_cpu_percentile: f64,
    pub lower_bound_cpu_percentile: f64,
    pub upper_bound_cpu_percentile: f64,
    pub target_memory_percentile: f64,
    pub lower_bound_memory_percentile: f64,
    pub upper_bound_memory_percentile: f64,
    /// Fraction added on top of every estimate.
    pub safety_margin_fraction: f64,
    /// Pod-wide minimum CPU, split evenly across the pod's containers.
    pub pod_min_cpu_millicores: f64,
    /// Pod-wide minimum memory in MiB (upstream calls the flag `-mb` but multiplies by 1024²).
    pub pod_min_memory_mb: f64,
    pub cpu_half_life_ms: i64,
    pub memory_half_life_ms: i64,
    /// One memory peak per container per interval.
    pub memory_aggregation_interval_ms: i64,
    /// History length that makes the confidence 1 (upstream `--confidence-interval-*`, 24 h).
    pub confidence_interval_ms: i64,
    /// Memory after an OOM is at least `used × ratio` ...
    pub oom_bump_up_ratio: f64,
    /// ... and at least `used + this many bytes`.
    pub oom_min_bump_up_bytes: f64,
}

impl Default for VpaConfig {
    fn default() -> Self {
        Self {
            target_cpu_percentile: 0.9,
            lower_bound_cpu_percentile: 0.5,
            upper_bound_cpu_percentile: 0.95,
            target_memory_percentile: 0.9,
            lower_bound_memory_percentile: 0.5,
            upper_bound_memory_percentile: 0.95,
            safety_margin_fraction: 0.15,
            pod_min_cpu_millicores: 25.0,
            pod_min_memory_mb: 250.0,
            cpu_half_life_ms: 24 * HOUR_MS,
            memory_half_life_ms: 24 * HOUR_MS,
            memory_aggregation_interval_ms: 24 * HOUR_MS,
            confidence_interval_ms: 24 * HOUR_MS,
            oom_bump_up_ratio: 1.2,
            oom_min_bump_up_bytes: 100.0 * 1024.0 * 1024.0,
        }
    }
}

impl VpaConfig {
    /// Rejects percentiles outside 0..=1, negative or non-finite amounts and non-positive durations.
    pub fn validate(&self) -> Result<(), ScalerError> {
        let percentiles = [
            ("targetCpuPercentile", self.target_cpu_percentile),
            ("lowerBoundCpuPercentile", self.lower_bound_cpu_percentile),
            ("upperBoundCpuPercentile", self.upper_bound_cpu_percentile),
            ("targetMemoryPercentile", self.target_memory_percentile),
            (
                "lowerBoundMemoryPercentile",
                self.lower_bound_memory_percentile,
            ),
            (
                "upperBoundMemoryPercentile",
                self.upper_bound_memory_percentile,
            ),
        ];
        for (field, p) in percentiles {
            if !(0.0..=1.0).contains(&p) {
                return Err(ScalerError::spec(
                    field,
                    format!("{p} is not a fraction in 0..=1"),
                ));
            }
        }
        let amounts = [
            ("safetyMarginFraction", self.safety_margin_fraction),
            ("podMinCpuMillicores", self.pod_min_cpu_millicores),
            ("podMinMemoryMb", self.pod_min_memory_mb),
            ("oomMinBumpUpBytes", self.oom_min_bump_up_bytes),
        ];
        for (field, v) in amounts {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ScalerError::spec(
                    field,
                    format!("{v} must be a finite number ≥ 0"),
                ));
            }
        }
        if !(self.oom_bump_up_ratio.is_finite() && self.oom_bump_up_ratio >= 1.0) {
            return Err(ScalerError::spec(
                "oomBumpUpRatio",
                format!("{} must be finite and ≥ 1", self.oom_bump_up_ratio),
            ));
        }
        let durations = [
            ("cpuHalfLifeMs", self.cpu_half_life_ms),
            ("memoryHalfLifeMs", self.memory_half_life_ms),
            (
                "memoryAggregationIntervalMs",
                self.memory_aggregation_interval_ms,
            ),
            ("confidenceIntervalMs", self.confidence_interval_ms),
        ];
        for (field, ms) in durations {
            if ms < 60_000 {
                return Err(ScalerError::spec(
                    field,
                    format!("{ms} ms is shorter than a minute"),
                ));
            }
        }
        Ok(())
    }
}

/// One usage measurement of one container of one pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageSample<'a> {
    pub pod: &'a str,
    pub container: &'a str,
    /// Start of the measurement interval.
    pub at: Timestamp,
    pub usage: Usage,
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Usage {
    /// Average CPU in cores over the interval, with the container's CPU request in cores (0 if none).
    Cpu { cores: f64, request_cores: f64 },
    /// Memory (working set) in bytes.
    Memory { bytes: f64 },
}

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Aggregated,
    /// A NaN, infinite or negative value.
    SkippedInvalid,
    /// Not newer than the previous sample of the same container and resource.
    SkippedOutOfOrder,
    /// An OOM before the previous memory aggregation interval.
    SkippedOomTooOld,
}

/// Counts of every input, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestStats {
    pub cpu_samples: u64,
    pub memory_samples: u64,
    pub ooms: u64,
    pub skipped_invalid: u64,
    pub skipped_out_of_order: u64,
    pub skipped_oom_too_old: u64,
}

/// What the aggregate of one container name has seen; `confidence` is in confidence intervals (days).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistorySummary {
    pub first_sample: Option<Timestamp>,
    pub last_sample: Option<Timestamp>,
    pub total_cpu_samples: u64,
    pub confidence: f64,
}

/// Histograms shared by every container with the same name (upstream `AggregateContainerState`).
/// First/last/count are CPU-only, as upstream.
#[derive(Debug, Clone)]
struct Aggregate {
    cpu: DecayingHistogram,
    memory_peaks: DecayingHistogram,
    first_sample: Option<Timestamp>,
    last_sample: Option<Timestamp>,
    total_samples: u64,
}

/// Per-container-instance state (upstream `ContainerState`): dedup and the current memory window.
#[derive(Debug, Clone, Default)]
struct Instance {
    last_cpu_sample: Option<Timestamp>,
    last_memory_sample: Option<Timestamp>,
    memory_peak: i64,
    oom_peak: i64,
    window_end: Option<Timestamp>,
}

/// The VPA recommender for one workload: feed samples and OOMs in time order, then ask for a
/// recommendation. Pure: time comes only from the samples.
#[derive(Debug, Clone)]
pub struct Recommender {
    config: VpaConfig,
    aggregates: BTreeMap<String, Aggregate>,
    instances: BTreeMap<(String, String), Instance>,
    stats: IngestStats,
}

impl Recommender {
    /// A recommender with no history.
    pub fn new(config: VpaConfig) -> Result<Self, ScalerError> {
        config.validate()?;
        Ok(Self {
            config,
            aggregates: BTreeMap::new(),
            instances: BTreeMap::new(),
            stats: IngestStats::default(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &VpaConfig {
        &self.config
    }

    /// Counts of everything fed so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// Adds one sample. Bad values are skipped and counted, never fatal; bad names are errors.
    pub fn add_sample(&mut self, sample: &UsageSample<'_>) -> Result<Ingested, ScalerError> {
        let outcome = match sample.usage {
            Usage::Cpu {
                cores,
                request_cores,
            } => {
                if !valid(cores) || !valid(request_cores) {
                    Ingested::SkippedInvalid
                } else {
                    self.add_cpu(
                        sample.pod,
                        sample.container,
                        sample.at,
                        cores,
                        request_cores,
                    )?
                }
            }
            Usage::Memory { bytes } => {
                if !valid(bytes) {
                    Ingested::SkippedInvalid
                } else {
                    let bytes = MemoryAmount::from_bytes(bytes).0;
                    self.add_memory(sample.pod, sample.container, sample.at, bytes, false)?
                }
            }
        };
        self.count(outcome, matches!(sample.usage, Usage::Cpu { .. }));
        Ok(outcome)
    }

    /// Records an OOM kill as an artificial memory peak of `max(used + min bump, used × ratio)`,
    /// where `used` is the larger of the memory request and this interval's observed peak.
    pub fn record_oom(
        &mut self,
        pod: &str,
        container: &str,
        at: Timestamp,
        request_bytes: f64,
    ) -> Result<Ingested, ScalerError> {
        if !valid(request_bytes) {
            self.stats.skipped_invalid += 1;
            return Ok(Ingested::SkippedInvalid);
        }
        let interval = self.config.memory_aggregation_interval_ms;
        let instance = self.instance(pod, container)?;
        if let Some(end) = instance.window_end
            && at.millis() < end.millis().saturating_sub(interval)
        {
            self.stats.skipped_oom_too_old += 1;
            return Ok(Ingested::SkippedOomTooOld);
        }
        // The OOM peak itself is left out so that repeated OOMs do not compound.
        let used = MemoryAmount::from_bytes(request_bytes)
            .0
            .max(instance.memory_peak);
        let bumped = amount_from_float(used as f64 + self.config.oom_min_bump_up_bytes);
        let needed = bumped.max(scale(used, self.config.oom_bump_up_ratio));
        let outcome = self.add_memory(pod, container, at, needed, true)?;
        if outcome == Ingested::Aggregated {
            self.stats.ooms += 1;
        }
        Ok(outcome)
    }

    fn count(&mut self, outcome: Ingested, cpu: bool) {
        let s = &mut self.stats;
        match outcome {
            Ingested::Aggregated if cpu => s.cpu_samples += 1,
            Ingested::Aggregated => s.memory_samples += 1,
            Ingested::SkippedInvalid => s.skipped_invalid += 1,
            Ingested::SkippedOutOfOrder => s.skipped_out_of_order += 1,
            Ingested::SkippedOomTooOld => s.skipped_oom_too_old += 1,
        }
    }

    fn instance(&mut self, pod: &str, container: &str) -> Result<&mut Instance, ScalerError> {
        for (field, name) in [("pod", pod), ("container", container)] {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(ScalerError::observation(
                    field,
                    format!(
                        "name {:?} must be 1..={MAX_NAME_LEN} characters",
                        name.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        let key = (pod.to_owned(), container.to_owned());
        if !self.instances.contains_key(&key) && self.instances.len() >= MAX_CONTAINERS {
            return Err(ScalerError::observation(
                "pod",
                format!(
                    "more than {MAX_CONTAINERS} distinct pod containers; narrow the workload selector or the time range"
                ),
            ));
        }
        Ok(self.instances.entry(key).or_default())
    }

    fn aggregate(&mut self, container: &str) -> &mut Aggregate {
        let config = &self.config;
        self.aggregates
            .entry(container.to_owned())
            .or_insert_with(|| Aggregate {
                cpu: DecayingHistogram::new(HistogramOptions::cpu(), config.cpu_half_life_ms),
                memory_peaks: DecayingHistogram::new(
                    HistogramOptions::memory(),
                    config.memory_half_life_ms,
                ),
                first_sample: None,
                last_sample: None,
                total_samples: 0,
            })
    }

    fn add_cpu(
        &mut self,
        pod: &str,
        container: &str,
        at: Timestamp,
        cores: f64,
        request_cores: f64,
    ) -> Result<Ingested, ScalerError> {
        let instance = self.instance(pod, container)?;
        if instance.last_cpu_sample.is_some_and(|last| at <= last) {
            return Ok(Ingested::SkippedOutOfOrder);
        }
        instance.last_cpu_sample = Some(at);
        // Upstream holds usage and request as whole millicores before converting back to cores.
        let usage = CpuAmount::from_cores(cores).cores();
        let request = CpuAmount::from_cores(request_cores).cores();
        let agg = self.aggregate(container);
        // Weighting by the request makes history decay faster after a request increase, which is
        // how upstream reacts quickly to CPU starvation.
        agg.cpu.add(usage, request.max(MIN_SAMPLE_WEIGHT), at);
        if agg.last_sample.is_none_or(|last| at > last) {
            agg.last_sample = Some(at);
        }
        if agg.first_sample.is_none_or(|first| at < first) {
            agg.first_sample = Some(at);
        }
        agg.total_samples += 1;
        Ok(Ingested::Aggregated)
    }

    fn add_memory(
        &mut self,
        pod: &str,
        container: &str,
        at: Timestamp,
        bytes: i64,
        is_oom: bool,
    ) -> Result<Ingested, ScalerError> {
        let interval = self.config.memory_aggregation_interval_ms;
        let instance = self.instance(pod, container)?;
        if !is_oom && instance.last_memory_sample.is_some_and(|last| at < last) {
            return Ok(Ingested::SkippedOutOfOrder);
        }
        instance.last_memory_sample = Some(at);
        let window_end = *instance.window_end.get_or_insert(at);
        let mut subtract = None;
        let add_new_peak = if at < window_end {
            let old = instance.memory_peak.max(instance.oom_peak);
            if old != 0 && bytes > old {
                subtract = Some(old);
                true
            } else {
                false
            }
        } else {
            // Move the window forward by whole intervals until it covers `at`.
            let behind = at.millis().saturating_sub(window_end.millis());
            let shift = (behind - behind % interval).saturating_add(interval);
            instance.window_end = Some(Timestamp::from_millis(
                window_end.millis().saturating_add(shift),
            ));
            instance.memory_peak = 0;
            instance.oom_peak = 0;
            true
        };
        if add_new_peak {
            if is_oom {
                instance.oom_peak = bytes;
            } else {
                instance.memory_peak = bytes;
            }
        }
        // Peaks are stamped with the window end, so all of one interval decay together.
        let stamp = instance.window_end.unwrap_or(at);
        let agg = self.aggregate(container);
        if let Some(old) = subtract {
            agg.memory_peaks.subtract(old as f64, 1.0, window_end);
        }
        if add_new_peak {
            agg.memory_peaks.add(bytes as f64, 1.0, stamp);
        }
        Ok(Ingested::Aggregated)
    }

    /// Container names with history, sorted.
    pub fn containers(&self) -> Vec<&str> {
        self.aggregates.keys().map(String::as_str).collect()
    }

    /// What the aggregate for `container` has seen, if anything.
    pub fn history(&self, container: &str) -> Option<HistorySummary> {
        self.aggregates.get(container).map(|a| HistorySummary {
            first_sample: a.first_sample,
            last_sample: a.last_sample,
            total_cpu_samples: a.total_samples,
            confidence: self.confidence(a),
        })
    }

    /// Most distinct container names seen in one pod: the split of the pod-wide minimum.
    pub fn containers_per_pod(&self) -> usize {
        let mut per_pod: BTreeMap<&str, usize> = BTreeMap::new();
        for (pod, _) in self.instances.keys() {
            *per_pod.entry(pod.as_str()).or_default() += 1;
        }
        per_pod.values().copied().max().unwrap_or(1)
    }

    /// Upstream `getConfidence`: the smaller of the history span and the sample count (at one sample a
    /// minute), both in confidence intervals.
    fn confidence(&self, a: &Aggregate) -> f64 {
        let interval = self.config.confidence_interval_ms as f64;
        let span = match (a.first_sample, a.last_sample) {
            (Some(first), Some(last)) => last.millis().saturating_sub(first.millis()) as f64,
            _ => 0.0,
        };
        let samples = a.total_samples as f64 / (interval / 60_000.0);
        (span / interval).min(samples)
    }

    /// The recommendation for every container with history, capped by `policy` and sorted by name.
    /// `containers_per_pod` overrides the split of the pod minimum (default: [`Self::containers_per_pod`]).
    pub fn recommend(
        &self,
        policy: Option<&PodResourcePolicy>,
        containers_per_pod: Option<usize>,
    ) -> Result<RecommendedPodResources, ScalerError> {
        if let Some(policy) = policy {
            policy.validate()?;
        }
        if self.aggregates.is_empty() {
            return Err(ScalerError::observation(
                "history",
                "no usable samples for any container; check the namespace, workload and time range",
            ));
        }
        let c = &self.config;
        let minimum = split_minimum(
            c.pod_min_cpu_millicores,
            c.pod_min_memory_mb,
            containers_per_pod.unwrap_or_else(|| self.containers_per_pod()),
        );
        let mut out = Vec::with_capacity(self.aggregates.len());
        for (name, agg) in &self.aggregates {
            let container_policy = policy.and_then(|p| p.for_container(name));
            if container_policy.is_some_and(|p| !p.is_enabled()) {
                continue;
            }
            let confidence = self.confidence(agg);
            let estimate = |cpu_p: f64, mem_p: f64, multiplier: f64, exponent: f64| {
                let with_margin =
                    |base: i64| base.saturating_add(scale(base, c.safety_margin_fraction));
                let confident = |v: i64| {
                    if multiplier == 0.0 {
                        v
                    } else {
                        scale(v, (1.0 + multiplier / confidence).powf(exponent))
                    }
                };
                let cpu = CpuAmount::from_cores(agg.cpu.percentile(cpu_p)).0;
                let memory = MemoryAmount::from_bytes(agg.memory_peaks.percentile(mem_p)).0;
                ResourceList::new(
                    CpuAmount(confident(with_margin(cpu)).max(minimum.cpu.map_or(0, |m| m.0))),
                    MemoryAmount(
                        confident(with_margin(memory)).max(minimum.memory.map_or(0, |m| m.0)),
                    ),
                )
            };
            let target = estimate(
                c.target_cpu_percentile,
                c.target_memory_percentile,
                0.0,
                0.0,
            );
            // Upper bound × (1 + 1/days): ∞ with no history, ×2 at one day, ×1.14 at a week.
            let upper = estimate(
                c.upper_bound_cpu_percentile,
                c.upper_bound_memory_percentile,
                1.0,
                1.0,
            );
            // Lower bound × (1 + 0.001/days)^-2: 0 with no history, ~0.95 after an hour.
            let lower = estimate(
                c.lower_bound_cpu_percentile,
                c.lower_bound_memory_percentile,
                0.001,
                -2.0,
            );
            let filter = |mut list: ResourceList| {
                if let Some(p) = container_policy {
                    if !p.controls(ResourceName::Cpu) {
                        list.cpu = None;
                    }
                    if !p.controls(ResourceName::Memory) {
                        list.memory = None;
                    }
                }
                list
            };
            let (target, lower, upper) = (filter(target), filter(lower), filter(upper));
            let capped = |mut list: ResourceList| {
                if let Some(p) = container_policy {
                    p.cap(&mut list);
                }
                list
            };
            out.push(RecommendedContainerResources {
                container_name: name.clone(),
                target: capped(target),
                lower_bound: capped(lower),
                upper_bound: capped(upper),
                uncapped_target: target,
            });
        }
        Ok(RecommendedPodResources {
            container_recommendations: out,
        })
    }
}

fn valid(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}
