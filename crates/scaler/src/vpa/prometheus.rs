//! Prometheus `query_range` responses turned into per-container series, and those fed to the recommender.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::amount::{CpuAmount, MemoryAmount, ResourceList};
use super::policy::ContainerResources;
use super::recommender::{Recommender, Usage, UsageSample};
use crate::error::ScalerError;
use crate::time::Timestamp;

/// Series kept per query; one workload's pods × containers over a week stay far below it.
pub const MAX_SERIES: usize = 20_000;
/// Points kept per query (8 days at a 1-minute step is 11 520 points a series).
pub const MAX_POINTS: usize = 20_000_000;

/// The JSON envelope of `/api/v1/query_range` (also of errors, which carry `errorType` and `error`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    pub status: String,
    #[serde(default)]
    pub data: Option<QueryData>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryData {
    pub result_type: String,
    #[serde(default)]
    pub result: Vec<RangeSeries>,
}

/// One series of a `matrix` result: labels and `[unix seconds, "value"]` pairs.
#[derive(Debug, Clone, Deserialize)]
pub struct RangeSeries {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    #[serde(default)]
    pub values: Vec<(f64, String)>,
}

/// Points of one container of one pod, in the order Prometheus sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub pod: String,
    pub container: String,
    pub points: Vec<(Timestamp, f64)>,
}

/// A parsed matrix and what had to be dropped from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    pub series: Vec<Series>,
    /// Values that were NaN, infinite, negative or not numbers.
    pub skipped_values: usize,
    /// Series without a `pod` or `container` label.
    pub skipped_series: usize,
}

impl Matrix {
    /// Appends another chunk of the same query (a later time range), joining series by pod and container.
    pub fn merge(&mut self, other: Matrix) -> Result<(), ScalerError> {
        self.skipped_values += other.skipped_values;
        self.skipped_series += other.skipped_series;
        let mut index: BTreeMap<(String, String), usize> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.pod.clone(), s.container.clone()), i))
            .collect();
        for s in other.series {
            match index.get(&(s.pod.clone(), s.container.clone())) {
                Some(&i) => self.series[i].points.extend(s.points),
                None => {
                    index.insert((s.pod.clone(), s.container.clone()), self.series.len());
                    self.series.push(s);
                }
            }
        }
        check_bounds(self.series.len(), self.points())
    }

    /// Total points across series.
    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The newest value per container name (across pods): today's request or limit.
    pub fn latest_by_container(&self) -> BTreeMap<String, f64> {
        let mut latest: BTreeMap<String, (Timestamp, f64)> = BTreeMap::new();
        for s in &self.series {
            if let Some(&(at, v)) = s.points.iter().max_by_key(|(at, _)| *at) {
                let slot = latest.entry(s.container.clone()).or_insert((at, v));
                if at >= slot.0 {
                    *slot = (at, v);
                }
            }
        }
        latest.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }

    /// The newest value per (pod, container).
    fn latest_by_pod_container(&self) -> BTreeMap<(&str, &str), f64> {
        let mut latest = BTreeMap::new();
        for s in &self.series {
            if let Some(&(_, v)) = s.points.iter().max_by_key(|(at, _)| *at) {
                latest.insert((s.pod.as_str(), s.container.as_str()), v);
            }
        }
        latest
    }
}

fn check_bounds(series: usize, points: usize) -> Result<(), ScalerError> {
    if series > MAX_SERIES || points > MAX_POINTS {
        return Err(ScalerError::observation(
            "prometheus",
            format!(
                "{series} series / {points} points exceed the limits of {MAX_SERIES} / {MAX_POINTS}; \
                 narrow --range, raise --step or pick one --container"
            ),
        ));
    }
    Ok(())
}

/// Checks the envelope (`status: success`, a `matrix`) and keeps finite, non-negative points of series
/// that name a pod and a container. `what` names the query in errors.
pub fn parse_matrix(response: QueryResponse, what: &str) -> Result<Matrix, ScalerError> {
    if response.status != "success" {
        return Err(ScalerError::observation(
            what,
            format!(
                "Prometheus answered {}: {} ({}); check the URL, the query and the time range",
                response.status,
                response.error.as_deref().unwrap_or("no error message"),
                response.error_type.as_deref().unwrap_or("no error type"),
            ),
        ));
    }
    let Some(data) = response.data else {
        return Err(ScalerError::observation(
            what,
            "Prometheus answered success without `data`; is this a Prometheus query API?",
        ));
    };
    if data.result_type != "matrix" {
        return Err(ScalerError::observation(
            what,
            format!(
                "expected a `matrix` result from query_range, got `{}`",
                data.result_type
            ),
        ));
    }
    let total: usize = data.result.iter().map(|s| s.values.len()).sum();
    check_bounds(data.result.len(), total)?;
    let mut matrix = Matrix::default();
    for raw in data.result {
        let (Some(pod), Some(container)) = (raw.metric.get("pod"), raw.metric.get("container"))
        else {
            matrix.skipped_series += 1;
            continue;
        };
        if pod.is_empty() || container.is_empty() {
            matrix.skipped_series += 1;
            continue;
        }
        let mut points = Vec::with_capacity(raw.values.len());
        for (secs, text) in &raw.values {
            let value = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0);
            match (Timestamp::from_secs_f64(*secs), value) {
                (Ok(at), Some(v)) => points.push((at, v)),
                _ => matrix.skipped_values += 1,
            }
        }
        matrix.series.push(Series {
            pod: pod.clone(),
            container: container.clone(),
            points,
        });
    }
    Ok(matrix)
}

/// Everything read for one workload; the optional parts come from kube-state-metrics when present.
#[derive(Debug, Clone, Default)]
pub struct PrometheusHistory {
    /// CPU usage in cores (a `rate` of `container_cpu_usage_seconds_total`).
    pub cpu: Matrix,
    /// Working-set memory in bytes.
    pub memory: Matrix,
    /// `kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}`: 1 while the last
    /// termination was an OOM kill.
    pub oom: Matrix,
    pub cpu_requests: Matrix,
    pub memory_requests: Matrix,
    pub cpu_limits: Matrix,
    pub memory_limits: Matrix,
}

impl PrometheusHistory {
    /// Feeds every sample and OOM to `recommender` in time order (memory before an OOM of the same
    /// instant). CPU samples are weighted by the container's latest known CPU request; OOMs use the
    /// latest memory request. An OOM is the first point of a run of 1s: the metric cannot show a
    /// second OOM while the last termination reason stays `OOMKilled`.
    pub fn feed(&self, recommender: &mut Recommender) -> Result<(), ScalerError> {
        let cpu_requests = self.cpu_requests.latest_by_pod_container();
        let memory_requests = self.memory_requests.latest_by_pod_container();
        // (time, order, series index, point index or OOM marker)
        let mut events: Vec<(Timestamp, u8, usize, usize)> = Vec::new();
        for (si, s) in self.cpu.series.iter().enumerate() {
            events.extend(s.points.iter().enumerate().map(|(pi, p)| (p.0, 0, si, pi)));
        }
        for (si, s) in self.memory.series.iter().enumerate() {
            events.extend(s.points.iter().enumerate().map(|(pi, p)| (p.0, 1, si, pi)));
        }
        for (si, s) in self.oom.series.iter().enumerate() {
            let mut sorted: Vec<(usize, &(Timestamp, f64))> = s.points.iter().enumerate().collect();
            sorted.sort_by_key(|(_, p)| p.0);
            let mut previous_on = false;
            for (pi, (at, v)) in sorted {
                let on = *v >= 0.5;
                if on && !previous_on {
                    events.push((*at, 2, si, pi));
                }
                previous_on = on;
            }
        }
        events.sort_by_key(|&(at, order, _, _)| (at, order));
        for (at, order, si, pi) in events {
            match order {
                0 => {
                    let s = &self.cpu.series[si];
                    let request = cpu_requests
                        .get(&(s.pod.as_str(), s.container.as_str()))
                        .copied()
                        .unwrap_or(0.0);
                    recommender.add_sample(&UsageSample {
                        pod: &s.pod,
                        container: &s.container,
                        at,
                        usage: Usage::Cpu {
                            cores: s.points[pi].1,
                            request_cores: request,
                        },
                    })?;
                }
                1 => {
                    let s = &self.memory.series[si];
                    recommender.add_sample(&UsageSample {
                        pod: &s.pod,
                        container: &s.container,
                        at,
                        usage: Usage::Memory {
                            bytes: s.points[pi].1,
                        },
                    })?;
                }
                _ => {
                    let s = &self.oom.series[si];
                    let request = memory_requests
                        .get(&(s.pod.as_str(), s.container.as_str()))
                        .copied()
                        .unwrap_or(0.0);
                    recommender.record_oom(&s.pod, &s.container, at, request)?;
                }
            }
        }
        Ok(())
    }

    /// Today's requests and limits of `container` (newest values across pods), if any were read.
    pub fn current_resources(&self, container: &str) -> Option<ContainerResources> {
        let get = |m: &Matrix| m.latest_by_container().get(container).copied();
        let resources = ContainerResources {
            requests: ResourceList {
                cpu: get(&self.cpu_requests).map(CpuAmount::from_cores),
                memory: get(&self.memory_requests).map(MemoryAmount::from_bytes),
            },
            limits: ResourceList {
                cpu: get(&self.cpu_limits).map(CpuAmount::from_cores),
                memory: get(&self.memory_limits).map(MemoryAmount::from_bytes),
            },
        };
        (!resources.requests.is_empty() || !resources.limits.is_empty()).then_some(resources)
    }

    /// Values and series dropped while parsing, across all queries.
    pub fn skipped(&self) -> (usize, usize) {
        let all = [
            &self.cpu,
            &self.memory,
            &self.oom,
            &self.cpu_requests,
            &self.memory_requests,
            &self.cpu_limits,
            &self.memory_limits,
        ];
        (
            all.iter().map(|m| m.skipped_values).sum(),
            all.iter().map(|m| m.skipped_series).sum(),
        )
    }
}

/// Prometheus refuses a range query of more than 11 000 points per series; stay below it.
pub const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// The PromQL of every query `mcpulse recommend` makes, in [`PrometheusHistory`] field order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    pub cpu: String,
    pub memory: String,
    pub oom: String,
    pub cpu_requests: String,
    pub memory_requests: String,
    pub cpu_limits: String,
    pub memory_limits: String,
}

/// Checks that `name` is a DNS-1123 subdomain, so it can go into a PromQL string unescaped.
fn dns_name(field: &str, name: &str) -> Result<(), ScalerError> {
    let ok = !name.is_empty()
        && name.len() <= super::policy::MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ScalerError::spec(
            field,
            format!(
                "{:?} is not a Kubernetes name (lowercase letters, digits, `-` and `.`, 1..=253 characters)",
                name.chars().take(64).collect::<String>()
            ),
        ))
    }
}

impl Queries {
    /// Queries for the pods of `workload` (pods named `workload-…`, as Deployments, StatefulSets and
    /// DaemonSets name them) in `namespace`, optionally one container. `rate_window` is PromQL
    /// duration text such as `5m`.
    pub fn new(
        namespace: &str,
        workload: &str,
        container: Option<&str>,
        rate_window: &str,
    ) -> Result<Self, ScalerError> {
        dns_name("--namespace", namespace)?;
        dns_name("--workload", workload)?;
        if let Some(c) = container {
            dns_name("--container", c)?;
        }
        if rate_window.is_empty() || !rate_window.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ScalerError::spec(
                "rate window",
                format!("{rate_window:?} is not a PromQL duration such as 5m"),
            ));
        }
        // `.` is a regex metacharacter; PromQL strings need the backslash doubled.
        let pod_regex = format!("{}-.*", workload.replace('.', "\\\\."));
        let container_matcher = match container {
            Some(c) => format!("container=\"{c}\""),
            // cAdvisor reports the pod sandbox as container "POD" and the pod total as "".
            None => "container!=\"\",container!=\"POD\"".to_owned(),
        };
        let selector =
            format!("namespace=\"{namespace}\",pod=~\"{pod_regex}\",{container_matcher}");
        let ksm = |metric: &str, extra: &str| format!("{metric}{{{selector},{extra}}}");
        Ok(Self {
            cpu: format!("rate(container_cpu_usage_seconds_total{{{selector}}}[{rate_window}])"),
            memory: format!("container_memory_working_set_bytes{{{selector}}}"),
            oom: ksm(
                "kube_pod_container_status_last_terminated_reason",
                "reason=\"OOMKilled\"",
            ),
            cpu_requests: ksm("kube_pod_container_resource_requests", "resource=\"cpu\""),
            memory_requests: ksm(
                "kube_pod_container_resource_requests",
                "resource=\"memory\"",
            ),
            cpu_limits: ksm("kube_pod_container_resource_limits", "resource=\"cpu\""),
            memory_limits: ksm("kube_pod_container_resource_limits", "resource=\"memory\""),
        })
    }
}

/// Splits `[start, end]` at `step_ms` into consecutive, non-overlapping windows of at most
/// [`MAX_POINTS_PER_QUERY`] points each.
pub fn query_windows(
    start: Timestamp,
    end: Timestamp,
    step_ms: i64,
) -> Result<Vec<(Timestamp, Timestamp)>, ScalerError> {
    if step_ms < 1000 {
        return Err(ScalerError::spec(
            "--step",
            format!("{step_ms} ms is below Prometheus' 1 s resolution"),
        ));
    }
    if end < start {
        return Err(ScalerError::spec(
            "--range",
            "the range ends before it starts",
        ));
    }
    let span = end.millis().saturating_sub(start.millis());
    if span / step_ms > 10_000_000 {
        return Err(ScalerError::spec(
            "--range",
            "more than 10 million steps; raise --step or shorten --range",
        ));
    }
    let mut windows = Vec::new();
    let per_window = (MAX_POINTS_PER_QUERY - 1) * step_ms;
    let mut from = start.millis();
    while from <= end.millis() {
        let to = from.saturating_add(per_window).min(end.millis());
        windows.push((Timestamp::from_millis(from), Timestamp::from_millis(to)));
        from = to.saturating_add(step_ms);
    }
    Ok(windows)
}
