//! Builds the engine's `Observation` from the target's pods and Prometheus answers; pure, so it is unit-tested.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use mcpulse_scaler::sizing::{EarlierRate, catch_up_rate};
use mcpulse_scaler::{
    ConditionStatus, MetricObservation, Observation, PodInfo, PodPhase, PodSample, Quantity,
    ReadyCondition, Timestamp,
};

use crate::crd::{IN_FLIGHT_METRIC, MetricPlan, QueueSizing, ResourceKind};
use crate::prometheus::{Series, escape_label};

/// The rate window of the CPU query, also the window its samples cover.
pub const CPU_RATE_WINDOW: Duration = Duration::from_secs(120);
/// The meter's message counter; its client-to-server requests are the arrivals.
pub const REQUESTS_METRIC: &str = "mcp_messages_total";
/// The label telling the queue-model query's two signals apart, and its values.
const SIGNAL_LABEL: &str = "signal";
const IN_FLIGHT_SIGNAL: &str = "in_flight";
const ARRIVALS_SIGNAL: &str = "arrivals";
/// The gauge of active MCP sessions per pod, used to order scale-in.
pub const SESSIONS_METRIC: &str = "mcp_server_sessions_active";

/// A pod as the engine sees it, with its summed container requests.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub info: PodInfo,
    pub cpu_request: Option<Quantity>,
    pub memory_request: Option<Quantity>,
    /// The pod's current `controller.kubernetes.io/pod-deletion-cost`, if set.
    pub deletion_cost: Option<String>,
}

fn timestamp(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    Timestamp::from_millis(t.0.as_millisecond())
}

/// Reads what the engine needs from a pod; `None` for a pod without a name (never served by the API).
pub fn pod_view(pod: &Pod) -> Option<PodView> {
    let name = pod.metadata.name.clone()?;
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| ReadyCondition {
            status: match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            },
            last_transition_time: c
                .last_transition_time
                .as_ref()
                .map_or(Timestamp::from_millis(0), timestamp),
        });
    let request = |resource: &str| -> Option<Quantity> {
        let containers = &pod.spec.as_ref()?.containers;
        let mut total: i64 = 0;
        for c in containers {
            // A container without the request makes the pod's request unknown, as upstream.
            let q = c.resources.as_ref()?.requests.as_ref()?.get(resource)?;
            total = total.checked_add(Quantity::from_str(&q.0).ok()?.milli())?;
        }
        (!containers.is_empty()).then_some(Quantity::from_milli(total))
    };
    Some(PodView {
        info: PodInfo {
            name,
            phase,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(timestamp),
            ready,
        },
        cpu_request: request("cpu"),
        memory_request: request("memory"),
        deletion_cost: pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::controller::DELETION_COST).cloned()),
    })
}

/// The PromQL for one metric in `namespace`: the value query and, for raw series, a freshness query
/// giving the newest sample's unix time.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQueries {
    pub value: String,
    pub freshness: Option<String>,
}

pub fn queries(plan: &MetricPlan, namespace: &str) -> MetricQueries {
    let ns = escape_label(namespace);
    match plan {
        MetricPlan::Resource {
            resource: ResourceKind::Cpu,
        } => {
            let sel = format!(
                r#"container_cpu_usage_seconds_total{{namespace="{ns}",container!="",container!="POD"}}"#
            );
            MetricQueries {
                value: format!("sum by (pod) (rate({sel}[{}s]))", CPU_RATE_WINDOW.as_secs()),
                freshness: Some(format!("max(timestamp({sel}))")),
            }
        }
        MetricPlan::Resource {
            resource: ResourceKind::Memory,
        } => {
            let sel = format!(
                r#"container_memory_working_set_bytes{{namespace="{ns}",container!="",container!="POD"}}"#
            );
            MetricQueries {
                value: format!("sum by (pod) ({sel})"),
                freshness: Some(format!("max(timestamp({sel}))")),
            }
        }
        MetricPlan::PerPod { metric } => per_pod_gauge(metric, &ns),
        MetricPlan::QueueModel(sizing) => {
            // One query for both signals, told apart by a `signal` label, so the metric is fetched,
            // checked for staleness and reported like any other.
            let in_flight = per_pod_gauge(IN_FLIGHT_METRIC, &ns);
            let arrivals = format!(
                r#"sum by (pod) (rate({REQUESTS_METRIC}{{namespace="{ns}",direction="client_to_server",kind="request"}}[{}s]))"#,
                sizing.rate_window_seconds
            );
            MetricQueries {
                value: format!(
                    r#"label_replace({}, "{SIGNAL_LABEL}", "{IN_FLIGHT_SIGNAL}", "", "") or label_replace({arrivals}, "{SIGNAL_LABEL}", "{ARRIVALS_SIGNAL}", "", "")"#,
                    in_flight.value
                ),
                freshness: in_flight.freshness,
            }
        }
        MetricPlan::PromQl { query } => MetricQueries {
            value: query.clone(),
            freshness: None,
        },
    }
}

/// A gauge exported per pod, summed per pod (a pod may have several exporting containers); `ns` is
/// already escaped.
fn per_pod_gauge(metric: &str, ns: &str) -> MetricQueries {
    let sel = format!(r#"{metric}{{namespace="{ns}"}}"#);
    MetricQueries {
        value: format!("sum by (pod) ({sel})"),
        freshness: Some(format!("max(timestamp({sel}))")),
    }
}

/// The query of active sessions per pod, for the deletion costs.
pub fn sessions_query(namespace: &str) -> String {
    format!(
        r#"sum by (pod) ({SESSIONS_METRIC}{{namespace="{}"}})"#,
        escape_label(namespace)
    )
}

/// What Prometheus gave for one metric, after the freshness check.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Series(Vec<Series>),
    /// No series at all: the exporter is missing or the selector matches nothing.
    Empty,
    /// The newest sample is older than the allowed staleness.
    Stale {
        age_seconds: f64,
    },
}

/// Per-pod values of `series` (labelled `pod`) for the pods in `pods`, in pod order; series of other pods
/// (other workloads in the namespace) are ignored.
pub fn per_pod_samples(
    series: &[Series],
    pods: &[PodView],
    now: Timestamp,
    window: Duration,
) -> Result<Vec<PodSample>, String> {
    let names: BTreeSet<&str> = pods.iter().map(|p| p.info.name.as_str()).collect();
    let mut by_pod: BTreeMap<&str, f64> = BTreeMap::new();
    for s in series {
        let Some(pod) = s.labels.get("pod").map(String::as_str) else {
            return Err("a series has no pod label; per-pod metrics must be labelled with the pod (the ServiceMonitor or PodMonitor adds it)".into());
        };
        if !names.contains(pod) {
            continue;
        }
        if by_pod.insert(pod, s.value).is_some() {
            return Err(format!(
                "two series for pod {pod:?}; the query must give one per pod"
            ));
        }
    }
    by_pod
        .into_iter()
        .map(|(pod, v)| {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "pod {pod:?} reported {v}; samples must be finite and >= 0"
                ));
            }
            let value = Quantity::from_f64(v).map_err(|e| format!("pod {pod:?}: {e}"))?;
            Ok(PodSample {
                pod: pod.to_owned(),
                value,
                timestamp: now,
                window,
            })
        })
        .collect()
}

/// The engine's view of one metric: its samples, or `Unavailable` with the reason the condition shows.
pub fn metric_observation(
    plan: &MetricPlan,
    fetched: &Fetched,
    pods: &[PodView],
    now: Timestamp,
    history: &mut ArrivalHistory,
) -> MetricObservation {
    let unavailable = |reason: String| MetricObservation::Unavailable { reason };
    let series = match fetched {
        Fetched::Series(s) => s,
        Fetched::Empty => return unavailable("Prometheus returned no series".into()),
        Fetched::Stale { age_seconds } => {
            return unavailable(format!(
                "the newest sample is {age_seconds:.0}s old; Prometheus is not scraping it"
            ));
        }
    };
    match plan {
        MetricPlan::Resource { resource } => {
            let window = match resource {
                ResourceKind::Cpu => CPU_RATE_WINDOW,
                ResourceKind::Memory => Duration::ZERO,
            };
            match per_pod_samples(series, pods, now, window) {
                Ok(usage) => {
                    let requests = pods
                        .iter()
                        .filter_map(|p| {
                            let r = match resource {
                                ResourceKind::Cpu => p.cpu_request,
                                ResourceKind::Memory => p.memory_request,
                            };
                            r.map(|r| (p.info.name.clone(), r))
                        })
                        .collect();
                    MetricObservation::Resource { usage, requests }
                }
                Err(reason) => unavailable(reason),
            }
        }
        MetricPlan::PerPod { .. } => match per_pod_samples(series, pods, now, Duration::ZERO) {
            Ok(samples) => MetricObservation::Pods { samples },
            Err(reason) => unavailable(reason),
        },
        MetricPlan::QueueModel(sizing) => {
            let of = |signal: &str| -> Vec<Series> {
                series
                    .iter()
                    .filter(|s| s.labels.get(SIGNAL_LABEL).map(String::as_str) == Some(signal))
                    .cloned()
                    .collect()
            };
            let in_flight = per_pod_samples(&of(IN_FLIGHT_SIGNAL), pods, now, Duration::ZERO);
            let arrivals = per_pod_samples(&of(ARRIVALS_SIGNAL), pods, now, Duration::ZERO);
            match (in_flight, arrivals) {
                (Ok(in_flight), Ok(arrivals)) => {
                    queue_model_observation(sizing, &in_flight, &arrivals, pods, now, history)
                }
                (Err(reason), _) | (_, Err(reason)) => unavailable(reason),
            }
        }
        MetricPlan::PromQl { .. } => {
            let values: Result<Vec<Quantity>, String> = series
                .iter()
                .map(|s| {
                    if s.value.is_finite() {
                        Quantity::from_f64(s.value).map_err(|e| e.to_string())
                    } else {
                        Err(format!(
                            "the query gave {}; it must give finite values",
                            s.value
                        ))
                    }
                })
                .collect();
            match values {
                Ok(values) => MetricObservation::External { values },
                Err(reason) => unavailable(reason),
            }
        }
    }
}

/// A workload's arrival rate as read at earlier syncs. The rate of the window before the latest one cannot
/// be queried per pod once pods are gone (their series no longer match the workload's pods), so the
/// controller remembers what it read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrivalHistory {
    readings: VecDeque<(Timestamp, f64)>,
    /// The pods whose arrivals the newest reading summed.
    pods: BTreeSet<String>,
    /// The last reading at which a pod of the previous one was missing. A reading whose window covers a
    /// pod's going lost that pod's requests and reads low, and a low earlier reading would fake a rise.
    pod_gone_at: Option<Timestamp>,
}

impl ArrivalHistory {
    /// The reading taken one rate window before `now`, which covered the window before the latest one: the
    /// newest at least `window` old, and not older than two windows (a gap in syncs leaves none). None
    /// while a pod went since that reading's window began, since either reading may then be short.
    pub fn one_window_before(&self, now: Timestamp, window: Duration) -> Option<EarlierRate> {
        let (newest, oldest) = (now.minus(window), now.minus(window * 2));
        let (at, rate) = self
            .readings
            .iter()
            .rev()
            .find(|(at, _)| *at <= newest)
            .filter(|(at, _)| *at >= oldest)?;
        if self.pod_gone_at.is_some_and(|gone| gone > at.minus(window)) {
            return None;
        }
        Some(EarlierRate {
            rate: *rate,
            seconds_before: (now.millis() - at.millis()) as f64 / 1000.0,
        })
    }

    /// Remembers the rate `pods` gave at `at`, forgetting readings more than two windows old.
    pub fn record(&mut self, at: Timestamp, rate: f64, pods: BTreeSet<String>, window: Duration) {
        if self.pods.iter().any(|p| !pods.contains(p)) {
            self.pod_gone_at = Some(at);
        }
        self.pods = pods;
        let oldest = at.minus(window * 2);
        while self.readings.front().is_some_and(|(t, _)| *t < oldest) {
            self.readings.pop_front();
        }
        self.readings.push_back((at, rate));
    }
}

/// The queue model's pod count for the pods' arrival rate plus the backlog of the ready pods. Pods still
/// starting (or not yet scraped) serve nothing, so they count neither in the backlog nor as serving, but
/// the backlog stops growing by their capacity once they are ready: `podStartupSeconds` after they
/// started, or now for a ready pod not yet reporting. With no ready pod reporting in flight, the metric is
/// unavailable rather than zero, so it never drives a scale-down on missing data. Without an arrival rate
/// (a meter too old to count requests, or a first scrape), the rate served is read from in flight by
/// Little's law instead.
fn queue_model_observation(
    sizing: &QueueSizing,
    in_flight: &[PodSample],
    arrivals: &[PodSample],
    pods: &[PodView],
    now: Timestamp,
    history: &mut ArrivalHistory,
) -> MetricObservation {
    let ready: BTreeSet<&str> = pods
        .iter()
        .filter(|p| p.info.is_running_and_ready() && !p.info.deleting)
        .map(|p| p.info.name.as_str())
        .collect();
    let serving: BTreeMap<&str, f64> = in_flight
        .iter()
        .filter(|s| ready.contains(s.pod.as_str()))
        .map(|s| (s.pod.as_str(), s.value.as_f64()))
        .collect();
    if serving.is_empty() {
        return MetricObservation::Unavailable {
            reason: format!("no ready pod reports {IN_FLIGHT_METRIC}"),
        };
    }
    let starting_ready_in: Vec<f64> = pods
        .iter()
        .map(|p| &p.info)
        .filter(|p| {
            !p.deleting
                && matches!(p.phase, PodPhase::Pending | PodPhase::Running)
                && !serving.contains_key(p.name.as_str())
        })
        .map(|p| {
            if ready.contains(p.name.as_str()) {
                return 0.0;
            }
            // A pod not started yet, or still not ready past its start-up time (crash-looping, or failing
            // readiness under load), helps no sooner than one ordered now.
            p.start_time
                .map(|start| sizing.lead_seconds - (now.millis() - start.millis()) as f64 / 1000.0)
                .filter(|ready_in| *ready_in > 0.0)
                .unwrap_or(f64::NAN)
        })
        .collect();
    let model = &sizing.model;
    let total_in_flight: f64 = serving.values().sum();
    let serving_pods = u32::try_from(serving.len()).unwrap_or(u32::MAX);
    let rate = if arrivals.is_empty() {
        model.served_rate(total_in_flight, serving_pods)
    } else {
        let latest: f64 = arrivals.iter().map(|s| s.value.as_f64()).sum();
        let window = Duration::from_secs(u64::from(sizing.rate_window_seconds));
        let earlier = history.one_window_before(now, window);
        let reporting = arrivals.iter().map(|s| s.pod.clone()).collect();
        history.record(now, latest, reporting, window);
        let arrival_rate = catch_up_rate(latest, earlier, window.as_secs_f64());
        model.rate_with_backlog(
            arrival_rate,
            total_in_flight,
            serving_pods,
            &starting_ready_in,
            sizing.lead_seconds,
            sizing.drain_seconds,
        )
    };
    let pods = model.pods_with_headroom(rate, 1, sizing.max_pods.max(1));
    MetricObservation::External {
        values: vec![Quantity::from_units(i64::from(pods))],
    }
}

/// The whole observation: replicas from the scale subresource, pods, one entry per metric in order.
pub fn observation(
    spec_replicas: i32,
    status_replicas: i32,
    pods: &[PodView],
    plans: &[MetricPlan],
    fetched: &[Fetched],
    now: Timestamp,
    history: &mut ArrivalHistory,
) -> Observation {
    Observation {
        spec_replicas,
        status_replicas,
        pods: pods.iter().map(|p| p.info.clone()).collect(),
        metrics: plans
            .iter()
            .zip(fetched)
            .map(|(plan, f)| metric_observation(plan, f, pods, now, history))
            .collect(),
    }
}

/// Active sessions per pod of `pods`, from the sessions query; pods without a value are left out.
pub fn sessions_per_pod(series: &[Series], pods: &[PodView]) -> BTreeMap<String, i64> {
    let names: BTreeSet<&str> = pods.iter().map(|p| p.info.name.as_str()).collect();
    series
        .iter()
        .filter_map(|s| {
            let pod = s.labels.get("pod")?;
            (names.contains(pod.as_str()) && s.value.is_finite() && s.value >= 0.0)
                // Saturating float-to-int conversion; session counts are far below i64::MAX.
                .then(|| (pod.clone(), s.value.round() as i64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{pod, series};

    fn now() -> Timestamp {
        Timestamp::from_secs(1_800_000_000)
    }

    #[test]
    fn pod_view_reads_phase_readiness_and_requests() {
        let p = pod("web-1", "Running", true, &["250m", "250m"]);
        let v = pod_view(&p).expect("named");
        assert_eq!(v.info.phase, PodPhase::Running);
        assert_eq!(v.info.ready.map(|r| r.status), Some(ConditionStatus::True));
        assert_eq!(
            v.cpu_request,
            Some(Quantity::from_milli(500)),
            "containers' requests are summed"
        );
        assert_eq!(
            v.memory_request,
            Some(Quantity::from_units(2 * 64 * 1024 * 1024))
        );

        let mut no_request = pod("web-2", "Pending", false, &["250m"]);
        if let Some(spec) = no_request.spec.as_mut() {
            spec.containers[0].resources = None;
        }
        let v = pod_view(&no_request).expect("named");
        assert_eq!(v.info.phase, PodPhase::Pending);
        assert_eq!(
            v.cpu_request, None,
            "a container without a request leaves the pod's unknown"
        );
    }

    #[test]
    fn per_pod_samples_table() {
        let pods: Vec<PodView> = ["a", "b"]
            .iter()
            .filter_map(|n| pod_view(&pod(n, "Running", true, &["1"])))
            .collect();
        // (series per pod, wanted milli-values per pod or an error fragment, why)
        type Case<'a> = (
            &'a [(&'a str, f64)],
            Result<&'a [(&'a str, i64)], &'a str>,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                &[("a", 1.5), ("b", 0.0)],
                Ok(&[("a", 1500), ("b", 0)]),
                "one value per pod, in milli",
            ),
            (
                &[("a", 1.0), ("other", 9.0)],
                Ok(&[("a", 1000)]),
                "pods of other workloads are ignored",
            ),
            (
                &[("a", 1.0), ("a", 2.0)],
                Err("two series"),
                "duplicate series for a pod",
            ),
            (&[("a", f64::NAN)], Err("finite"), "NaN is refused"),
            (&[("a", -1.0)], Err(">= 0"), "negative values are refused"),
        ];
        for (input, want, why) in cases {
            let s: Vec<Series> = input
                .iter()
                .map(|(p, v)| series(&[("pod", p)], *v))
                .collect();
            let got = per_pod_samples(&s, &pods, now(), Duration::ZERO);
            match (got, want) {
                (Ok(samples), Ok(want)) => {
                    let got: Vec<(&str, i64)> = samples
                        .iter()
                        .map(|s| (s.pod.as_str(), s.value.milli()))
                        .collect();
                    assert_eq!(&got, want, "{why}");
                }
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{why}: {e}"),
                (got, want) => panic!("{why}: got {got:?}, want {want:?}"),
            }
        }
        let unlabelled = [series(&[], 1.0)];
        assert!(
            per_pod_samples(&unlabelled, &pods, now(), Duration::ZERO).is_err(),
            "pod label required"
        );
    }

    #[test]
    fn observation_maps_each_plan_kind() {
        let pods: Vec<PodView> = ["a", "b"]
            .iter()
            .filter_map(|n| pod_view(&pod(n, "Running", true, &["500m"])))
            .collect();
        let plans = [
            MetricPlan::Resource {
                resource: ResourceKind::Cpu,
            },
            MetricPlan::PerPod {
                metric: crate::crd::QUEUE_DEPTH_METRIC,
            },
            MetricPlan::PromQl {
                query: "sum(x)".into(),
            },
            MetricPlan::PerPod {
                metric: crate::crd::IN_FLIGHT_METRIC,
            },
            MetricPlan::PerPod {
                metric: crate::crd::IN_FLIGHT_METRIC,
            },
        ];
        let fetched = [
            Fetched::Series(vec![
                series(&[("pod", "a")], 0.25),
                series(&[("pod", "b")], 0.5),
            ]),
            Fetched::Series(vec![series(&[("pod", "a")], 3.0)]),
            Fetched::Series(vec![series(&[], 2.0), series(&[("x", "y")], 1.0)]),
            Fetched::Empty,
            Fetched::Stale { age_seconds: 600.0 },
        ];
        let obs = observation(
            2,
            2,
            &pods,
            &plans,
            &fetched,
            now(),
            &mut ArrivalHistory::default(),
        );
        assert_eq!(obs.pods.len(), 2);
        match &obs.metrics[0] {
            MetricObservation::Resource { usage, requests } => {
                assert_eq!(
                    usage[1].value,
                    Quantity::from_milli(500),
                    "cores become millicores"
                );
                assert_eq!(usage[0].window, CPU_RATE_WINDOW);
                assert_eq!(requests.get("a"), Some(&Quantity::from_milli(500)));
            }
            other => panic!("cpu: {other:?}"),
        }
        assert!(
            matches!(&obs.metrics[1], MetricObservation::Pods { samples } if samples.len() == 1)
        );
        assert_eq!(
            obs.metrics[2],
            MetricObservation::External {
                values: vec![Quantity::from_units(2), Quantity::from_units(1)]
            },
            "PromQL series are all passed for the engine to sum"
        );
        assert!(
            matches!(&obs.metrics[3], MetricObservation::Unavailable { reason } if reason.contains("no series"))
        );
        assert!(
            matches!(&obs.metrics[4], MetricObservation::Unavailable { reason } if reason.contains("600s old"))
        );
    }

    #[test]
    fn queries_are_scoped_to_the_namespace() {
        let q = queries(
            &MetricPlan::PerPod {
                metric: crate::crd::QUEUE_DEPTH_METRIC,
            },
            "agents",
        );
        assert_eq!(
            q.value,
            r#"sum by (pod) (mcp_queue_depth{namespace="agents"})"#
        );
        assert_eq!(
            q.freshness.as_deref(),
            Some(r#"max(timestamp(mcp_queue_depth{namespace="agents"}))"#)
        );
        let q = queries(
            &MetricPlan::PromQl {
                query: "sum(up)".into(),
            },
            "agents",
        );
        assert_eq!(
            (q.value.as_str(), q.freshness),
            ("sum(up)", None),
            "PromQL is sent as written"
        );
    }

    #[test]
    fn sessions_are_counted_per_known_pod() {
        let pods: Vec<PodView> = ["a", "b"]
            .iter()
            .filter_map(|n| pod_view(&pod(n, "Running", true, &["1"])))
            .collect();
        let s = [
            series(&[("pod", "a")], 3.0),
            series(&[("pod", "zzz")], 1.0),
            series(&[("pod", "b")], f64::NAN),
        ];
        let got = sessions_per_pod(&s, &pods);
        assert_eq!(
            got,
            BTreeMap::from([("a".to_owned(), 3)]),
            "unknown pods and NaN are left out"
        );
    }

    fn sizing() -> QueueSizing {
        QueueSizing {
            model: mcpulse_scaler::sizing::QueueModel {
                pod_capacity_rps: 10.0,
                concurrency: 4,
                latency_p95_seconds: 2.0,
                queue_wait_seconds: 0.5,
                burst_window_seconds: 15.0,
                burst_sigmas: mcpulse_scaler::sizing::DEFAULT_BURST_SIGMAS,
            },
            max_pods: 50,
            rate_window_seconds: 30,
            lead_seconds: 60.0,
            drain_seconds: 30.0,
        }
    }

    /// A pod by name, phase and readiness.
    type PodState<'a> = (&'a str, &'a str, bool);
    /// Per-pod values of one signal.
    type PerPod<'a> = &'a [(&'a str, f64)];

    fn views(pods: &[PodState]) -> Vec<PodView> {
        pods.iter()
            .filter_map(|(n, phase, ready)| pod_view(&pod(n, phase, *ready, &["500m"])))
            .collect()
    }

    fn queue_model_pods(
        pods: &[PodState],
        in_flight: PerPod,
        arrivals: PerPod,
    ) -> MetricObservation {
        queue_model_with_history(
            &views(pods),
            in_flight,
            arrivals,
            &mut ArrivalHistory::default(),
        )
    }

    fn queue_model_with_history(
        views: &[PodView],
        in_flight: PerPod,
        arrivals: PerPod,
        history: &mut ArrivalHistory,
    ) -> MetricObservation {
        let tagged = |values: PerPod, signal: &str| -> Vec<Series> {
            values
                .iter()
                .map(|(p, v)| series(&[("pod", p), (SIGNAL_LABEL, signal)], *v))
                .collect()
        };
        let mut all = tagged(in_flight, IN_FLIGHT_SIGNAL);
        all.extend(tagged(arrivals, ARRIVALS_SIGNAL));
        metric_observation(
            &MetricPlan::QueueModel(sizing()),
            &Fetched::Series(all),
            views,
            now(),
            history,
        )
    }

    fn pods_for(rate: f64) -> MetricObservation {
        let pods = sizing().model.pods_with_headroom(rate, 1, 50);
        MetricObservation::External {
            values: vec![Quantity::from_units(i64::from(pods))],
        }
    }

    #[test]
    fn queue_model_sizes_for_arrivals_plus_backlog_of_the_ready_pods() {
        let two_ready: &[PodState] = &[("a", "Running", true), ("b", "Running", true)];
        let cases: &[(&[PodState], PerPod, PerPod, f64, &str)] = &[
            (
                two_ready,
                &[("a", 2.0), ("b", 4.0)],
                &[("a", 8.0), ("b", 9.0)],
                17.0,
                "no backlog, arrivals within capacity: the arrivals",
            ),
            (
                two_ready,
                &[("a", 10.0), ("b", 10.0)],
                &[("a", 12.0), ("b", 13.0)],
                // 12 beyond the 8 workers, plus 5/s beyond the 20/s capacity for the 60 s lead, over 30 s.
                25.0 + (12.0 + 5.0 * 60.0) / 30.0,
                "a backlog is provisioned to drain",
            ),
            (
                &[
                    ("a", "Running", true),
                    ("b", "Running", true),
                    ("c", "Running", false),
                ],
                &[("a", 2.0), ("b", 4.0), ("c", 40.0)],
                &[("a", 8.0), ("b", 9.0)],
                17.0,
                "a pod not yet ready holds no backlog",
            ),
            (
                two_ready,
                &[("a", 2.0), ("b", 4.0)],
                &[],
                // 6 in flight at 0.4 s each.
                15.0,
                "no arrival rate yet: the rate served, by Little's law",
            ),
        ];
        for (pods, in_flight, arrivals, rate, why) in cases {
            assert_eq!(
                queue_model_pods(pods, in_flight, arrivals),
                pods_for(*rate),
                "{why}"
            );
        }
    }

    #[test]
    fn queue_model_stops_the_backlog_growing_once_pods_on_their_way_are_ready() {
        // Two ready pods serve 20/s while 25/s arrive with 12 queued beyond their 8 workers; a third pod
        // `c` is in some state. The lead is 60 s, the drain 30 s.
        let third = |phase: &str, ready: bool, change: &dyn Fn(&mut PodInfo)| -> Vec<PodView> {
            let mut all = views(&[
                ("a", "Running", true),
                ("b", "Running", true),
                ("c", phase, ready),
            ]);
            change(&mut all[2].info);
            all
        };
        let started_secs_ago = |secs: i64| {
            move |p: &mut PodInfo| {
                p.start_time = Some(Timestamp::from_secs(now().millis() / 1000 - secs))
            }
        };
        let no_change = |_: &mut PodInfo| {};
        let cases: &[(Vec<PodView>, f64, &str)] = &[
            (
                third("Pending", false, &started_secs_ago(30)),
                12.0 + 5.0 * 30.0,
                "started 30 s ago: 5/s beyond capacity until it is ready in 30 s",
            ),
            (
                third("Running", true, &no_change),
                12.0,
                "ready but not reporting yet: its capacity counts from now",
            ),
            (
                third("Pending", false, &|p: &mut PodInfo| p.start_time = None),
                12.0 + 5.0 * 60.0,
                "not started: no sooner than a pod ordered now",
            ),
            (
                third("Running", true, &|p: &mut PodInfo| p.deleting = true),
                12.0 + 5.0 * 60.0,
                "being deleted: no help at all",
            ),
            (
                third("Running", false, &no_change),
                12.0 + 5.0 * 60.0,
                "still not ready an hour after its start: no sooner than a pod ordered now",
            ),
            (
                third("Failed", false, &no_change),
                12.0 + 5.0 * 60.0,
                "failed: no help at all",
            ),
        ];
        for (views, backlog, why) in cases {
            assert_eq!(
                queue_model_with_history(
                    views,
                    &[("a", 10.0), ("b", 10.0)],
                    &[("a", 12.0), ("b", 13.0)],
                    &mut ArrivalHistory::default(),
                ),
                pods_for(25.0 + backlog / 30.0),
                "{why}"
            );
        }
    }

    #[test]
    fn arrival_history_gives_the_reading_one_window_back() {
        let window = Duration::from_secs(30);
        let at = |secs_ago: i64| Timestamp::from_millis(now().millis() - secs_ago * 1000);
        let pods = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let mut history = ArrivalHistory::default();
        for (secs_ago, rate) in [(75, 1.0), (45, 2.0), (30, 3.0), (15, 4.0)] {
            history.record(at(secs_ago), rate, pods(&["a", "b"]), window);
        }
        assert_eq!(
            history.one_window_before(now(), window),
            Some(EarlierRate {
                rate: 3.0,
                seconds_before: 30.0
            }),
            "the newest reading at least a window old"
        );
        assert_eq!(
            history.one_window_before(at(-100), window),
            None,
            "readings older than two windows are too old"
        );
        history.record(now(), 5.0, pods(&["a", "b", "c"]), window);
        assert_eq!(
            history.readings.len(),
            4,
            "the reading 75 s before is forgotten past two windows"
        );
        assert!(
            history.one_window_before(at(-30), window).is_some(),
            "a pod that joins loses no requests"
        );
        history.record(at(-15), 5.0, pods(&["a", "c"]), window);
        assert_eq!(
            history.one_window_before(at(-30), window),
            None,
            "pod b went: the readings around it may be short"
        );
        history.record(at(-45), 5.0, pods(&["a", "c"]), window);
        assert!(
            history.one_window_before(at(-90), window).is_some(),
            "a reading whose window began after the going is whole again"
        );
        assert_eq!(
            ArrivalHistory::default().one_window_before(now(), window),
            None
        );
    }

    #[test]
    fn queue_model_carries_a_significant_rise_one_window_forward() {
        let two_ready = views(&[("a", "Running", true), ("b", "Running", true)]);
        let in_flight: PerPod = &[("a", 2.0), ("b", 2.0)];
        let window = Duration::from_secs(u64::from(sizing().rate_window_seconds));
        let cases: &[(Option<f64>, f64, &str)] = &[
            (None, 12.0, "first reading: the latest rate"),
            (Some(11.0), 12.0, "within noise of the window before"),
            // 360 requests in 30 s after 120: 240 > 4 x sqrt(480).
            (
                Some(4.0),
                20.0,
                "a rise beyond noise: one more window of it",
            ),
        ];
        for (before, rate, why) in cases {
            let mut history = ArrivalHistory::default();
            if let Some(b) = before {
                let pods = ["a", "b"].iter().map(|n| n.to_string()).collect();
                history.record(now().minus(window), *b, pods, window);
            }
            let got = queue_model_with_history(
                &two_ready,
                in_flight,
                &[("a", 6.0), ("b", 6.0)],
                &mut history,
            );
            assert_eq!(got, pods_for(*rate), "{why}");
            assert_eq!(
                history.one_window_before(now().plus(window), window),
                Some(EarlierRate {
                    rate: 12.0,
                    seconds_before: 30.0
                }),
                "{why}: the latest reading is remembered"
            );
        }
    }

    #[test]
    fn queue_model_without_ready_samples_is_unavailable_not_zero() {
        let got = queue_model_pods(&[("a", "Running", false)], &[("a", 3.0)], &[("a", 9.0)]);
        assert!(
            matches!(&got, MetricObservation::Unavailable { reason } if reason.contains(IN_FLIGHT_METRIC)),
            "{got:?}"
        );
    }

    #[test]
    fn queue_model_reads_in_flight_and_arrivals_in_one_query() {
        let q = queries(&MetricPlan::QueueModel(sizing()), "agents");
        assert_eq!(
            q.value,
            r#"label_replace(sum by (pod) (mcp_requests_in_flight{namespace="agents"}), "signal", "in_flight", "", "") or label_replace(sum by (pod) (rate(mcp_messages_total{namespace="agents",direction="client_to_server",kind="request"}[30s])), "signal", "arrivals", "", "")"#
        );
        assert!(q.freshness.is_some(), "a stale gauge is detected");
    }
}
