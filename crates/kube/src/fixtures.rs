//! Test-only helpers: objects, a table-driven Prometheus, and the mock API server that checks each request in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use crate::controller::{Context, Settings};
use crate::crd::McpAutoscaler;
use crate::error::KubeError;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::prometheus::{MetricsSource, RangeSeries, Series};

/// The fixed "now" of every reconcile test: 2027-01-15T08:00:00Z.
pub const NOW_SECS: i64 = 1_800_000_000;

pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW_SECS).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

pub fn series(labels: &[(&str, &str)], value: f64) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
    }
}

/// A pod of the `app=web` workload, started an hour before [`NOW_SECS`], with one container per CPU request
/// (64 MiB of memory each).
pub fn pod(name: &str, phase: &str, ready: bool, cpu_requests: &[&str]) -> Pod {
    pod_json(name, phase, ready, cpu_requests)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn pod_json(name: &str, phase: &str, ready: bool, cpu_requests: &[&str]) -> Option<Value> {
    let started = jiff::Timestamp::from_second(NOW_SECS - 3600)
        .ok()?
        .to_string();
    let containers: Vec<Value> = cpu_requests
        .iter()
        .enumerate()
        .map(|(i, cpu)| json!({"name": format!("c{i}"), "image": "mcp", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}))
        .collect();
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "agents", "labels": {"app": "web"}},
        "spec": {"containers": containers},
        "status": {
            "phase": phase,
            "startTime": started,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": started}],
        },
    }))
}

/// An McpAutoscaler `agents/web` at generation 1 with the given spec.
pub fn autoscaler(spec: Value) -> McpAutoscaler {
    let obj = json!({
        "apiVersion": "mcpulse.io/v1alpha1", "kind": "McpAutoscaler",
        "metadata": {"name": "web", "namespace": "agents", "generation": 1, "uid": "u-1"},
        "spec": spec,
    });
    match serde_json::from_value(obj) {
        Ok(o) => o,
        Err(e) => panic!("test autoscaler does not parse: {e}"),
    }
}

/// Prometheus answering from tables; a query not in the table fails like an unknown metric would.
#[derive(Default)]
pub struct FakePrometheus {
    instant: Mutex<HashMap<String, Vec<Series>>>,
    range: Mutex<HashMap<String, Vec<RangeSeries>>>,
    /// Every range query asked, with its start and end (unix seconds).
    range_calls: Mutex<Vec<(String, f64, f64)>>,
    down: AtomicBool,
}

impl FakePrometheus {
    pub fn set_instant(&self, query: String, answer: Vec<Series>) {
        self.instant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(query, answer);
    }

    pub fn set_range(&self, query: &str, answer: Vec<RangeSeries>) {
        self.range
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(query.to_owned(), answer);
    }

    /// Leaves `query` out of the range table, so asking for it fails as a missing series would.
    pub fn forget_range(&self, query: &str) {
        self.range
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(query);
    }

    /// The range queries asked so far: query, start, end.
    pub fn range_calls(&self) -> Vec<(String, f64, f64)> {
        self.range_calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every query fails as if Prometheus were unreachable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self, query: &str) -> Result<(), KubeError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KubeError::prometheus(
                query,
                "unreachable: connection refused",
            ));
        }
        Ok(())
    }
}

impl MetricsSource for FakePrometheus {
    fn instant<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Series>, KubeError>> {
        Box::pin(async move {
            self.check(query)?;
            let table = self.instant.lock().unwrap_or_else(PoisonError::into_inner);
            table
                .get(query)
                .cloned()
                .ok_or_else(|| KubeError::prometheus(query, "not in the test's table"))
        })
    }

    fn range<'a>(
        &'a self,
        query: &'a str,
        start: f64,
        end: f64,
        _: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, KubeError>> {
        Box::pin(async move {
            self.check(query)?;
            self.range_calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((query.to_owned(), start, end));
            let table = self.range.lock().unwrap_or_else(PoisonError::into_inner);
            let series = table
                .get(query)
                .ok_or_else(|| KubeError::prometheus(query, "not in the test's table"))?;
            // As Prometheus: only the points within the asked range.
            Ok(series
                .iter()
                .map(|s| RangeSeries {
                    labels: s.labels.clone(),
                    points: s
                        .points
                        .iter()
                        .copied()
                        .filter(|(t, _)| (start..=end).contains(t))
                        .collect(),
                })
                .collect())
        })
    }
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The mock API server: answers each request the reconciler makes, in order, checking method and URL.
pub struct ApiServerVerifier(Handle);

impl ApiServerVerifier {
    /// Waits for the next request, checks its method and URL (path and query), answers `response`
    /// and returns the body sent (JSON, or null), for the test to assert on its body.
    pub async fn expect(&mut self, method: Method, uri: &str, response: Value) -> Value {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await;
        let Ok(Some((request, send))) = next else {
            panic!("expected {method} {uri}, but the reconciler made no further request");
        };
        let seen_method = request.method().clone();
        let seen_uri = request.uri().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(
            (&seen_method, seen_uri.as_str()),
            (&method, uri),
            "request body: {body}"
        );
        let answer = Response::new(Body::from(
            serde_json::to_vec(&response).unwrap_or_default(),
        ));
        send.send_response(answer);
        body
    }

    /// Answers the next request with an API error `code` (e.g. 409 Conflict).
    pub async fn fail(&mut self, method: Method, uri: &str, code: u16) {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await;
        let Ok(Some((request, send))) = next else {
            panic!("expected {method} {uri}, but the reconciler made no further request");
        };
        assert_eq!(
            (request.method(), request.uri().to_string().as_str()),
            (&method, uri)
        );
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "test failure", "reason": "Conflict", "code": code});
        let mut answer = Response::new(Body::from(serde_json::to_vec(&status).unwrap_or_default()));
        *answer.status_mut() =
            http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::CONFLICT);
        send.send_response(answer);
    }

    /// Asserts the reconciler sent nothing more.
    pub async fn no_more_requests(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(50), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// A Context over the mock API server, with a fixed clock and `prometheus`.
pub fn context(prometheus: Arc<FakePrometheus>, leader: bool) -> (Arc<Context>, ApiServerVerifier) {
    context_with(prometheus, Leadership::fixed(leader))
}

/// As [`context`], with leadership the test controls.
pub fn context_with(
    prometheus: Arc<FakePrometheus>,
    leadership: Leadership,
) -> (Arc<Context>, ApiServerVerifier) {
    context_clocked(prometheus, leadership, Arc::new(now))
}

/// As [`context_with`], with a clock the test controls.
pub fn context_clocked(
    prometheus: Arc<FakePrometheus>,
    leadership: Leadership,
    clock: crate::controller::Clock,
) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "mcpulse-scaler".into(),
            instance: Some("mcpulse-scaler-0".into()),
        },
    );
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    let ctx = Context::new(
        client,
        prometheus,
        recorder,
        metrics,
        leadership,
        Settings::default(),
        clock,
    );
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// The scale subresource of Deployment `agents/web` at `replicas`.
pub fn scale(replicas: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "agents"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": "app=web"},
    })
}

/// A PodList of `n` ready pods `web-0..n`, each with one 500m container.
pub fn pod_list(names: &[&str]) -> Value {
    let items: Vec<Value> = names
        .iter()
        .filter_map(|n| pod_json(n, "Running", true, &["500m"]))
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

/// The per-pod answer `{pod: value}` and a fresh freshness answer for `metric` in `agents`.
pub fn per_pod(prom: &FakePrometheus, metric: &str, values: &[(&str, f64)]) {
    let s = values
        .iter()
        .map(|(p, v)| series(&[("pod", p)], *v))
        .collect();
    prom.set_instant(
        format!(r#"sum by (pod) ({metric}{{namespace="agents"}})"#),
        s,
    );
    prom.set_instant(
        format!(r#"max(timestamp({metric}{{namespace="agents"}}))"#),
        vec![series(&[], (NOW_SECS - 10) as f64)],
    );
}

/// A constant load signal over the last day at 5-minute steps.
pub fn flat_history(value: f64) -> Vec<RangeSeries> {
    let points = (0..=288)
        .map(|i| ((NOW_SECS - 86_400 + i * 300) as f64, value))
        .collect();
    vec![RangeSeries {
        labels: BTreeMap::new(),
        points,
    }]
}
