//! Reconcile tests: each reads as the list of API calls the reconciler must make, answered by a mock API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use http::Method;
use k8s_openapi::jiff;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::controller::reconcile;
use crate::crd::McpAutoscaler;
use crate::fixtures::{
    ApiServerVerifier, FakePrometheus, NOW_SECS, autoscaler, context, context_clocked,
    flat_history, per_pod, pod_list, scale,
};
use crate::leader::Leadership;
use crate::prometheus::RangeSeries;

const SCALE: &str = "/apis/apps/v1/namespaces/agents/deployments/web/scale";
const SCALE_APPLY: &str =
    "/apis/apps/v1/namespaces/agents/deployments/web/scale?&force=true&fieldManager=mcpulse-scaler";
const PODS: &str = "/api/v1/namespaces/agents/pods?&labelSelector=app%3Dweb";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/agents/events?";
const STATUS: &str = "/apis/mcpulse.io/v1alpha1/namespaces/agents/mcpautoscalers/web/status?&force=true&fieldManager=mcpulse-scaler";
const HPA: &str = "/apis/autoscaling/v2/namespaces/agents/horizontalpodautoscalers/web";

fn queue_spec(extra: Value) -> Value {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [{"type": "QueueDepth", "queueDepth": {"averageValue": "5"}}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    spec
}

/// Runs one reconcile against the verifier script `script`, failing if the reconciler makes a request
/// the script does not answer (it would wait forever) or one the script does not expect.
async fn run<F, Fut>(
    obj: &McpAutoscaler,
    ctx: &Arc<crate::Context>,
    verifier: ApiServerVerifier,
    script: F,
) -> (Action, ApiServerVerifier)
where
    F: FnOnce(ApiServerVerifier) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiServerVerifier> + Send,
{
    let server = tokio::spawn(async move {
        let mut v = script(verifier).await;
        v.no_more_requests().await;
        v
    });
    let action = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(obj.clone()), ctx.clone()),
    )
    .await
    .unwrap_or_else(|_| panic!("reconcile waited on a request the script does not answer"))
    .unwrap_or_else(|e| panic!("reconcile failed: {e}"));
    match server.await {
        Ok(v) => (action, v),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What the API server answers to a status patch: the stored object.
fn stored() -> Value {
    json!({
        "apiVersion": "mcpulse.io/v1alpha1", "kind": "McpAutoscaler",
        "metadata": {"name": "web", "namespace": "agents"},
        "spec": queue_spec(json!({})),
    })
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn scale_up_patches_the_scale_subresource_then_records_an_event_and_status() {
    let prom = Arc::new(FakePrometheus::default());
    // Two pods with 10 queued each against a target of 5 per pod: ratio 2, four replicas.
    per_pod(
        &prom,
        "mcp_queue_depth",
        &[("web-0", 10.0), ("web-1", 10.0)],
    );
    let (ctx, verifier) = context(prom, true);
    let (action, _) = run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        |mut v| async move {
            v.expect(Method::GET, SCALE, scale(2)).await;
            v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1"]))
                .await;
            let patch = v.expect(Method::PATCH, SCALE_APPLY, scale(4)).await;
            assert_eq!(
                patch["spec"],
                json!({"replicas": 4}),
                "server-side apply of replicas only"
            );
            assert_eq!(patch["kind"], "Scale");
            let event = v.expect(Method::POST, EVENTS, json!({})).await;
            assert_eq!(event["reason"], "ScaledUp");
            assert_eq!(event["type"], "Normal");
            let note = event["note"].as_str().unwrap_or_default();
            assert!(
                note.contains("scale up 2 -> 4") && note.contains("mcp_queue_depth"),
                "{note}"
            );
            let status = v.expect(Method::PATCH, STATUS, stored()).await;
            assert_eq!(status["status"]["desiredReplicas"], 4);
            assert_eq!(status["status"]["currentReplicas"], 2);
            assert_eq!(status["status"]["observedGeneration"], 1);
            assert_eq!(status["status"]["lastDecision"]["direction"], "Up");
            assert_eq!(
                status["status"]["lastDecision"]["reason"],
                "MetricAboveTarget"
            );
            assert_eq!(condition(&status, "MetricsAvailable")["status"], "True");
            assert_eq!(condition(&status, "ScalingActive")["status"], "True");
            v
        },
    )
    .await;
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "re-evaluated every sync period"
    );
}

#[tokio::test]
async fn scale_down_is_held_inside_the_stabilization_window() {
    let prom = Arc::new(FakePrometheus::default());
    let pods = ["web-0", "web-1", "web-2", "web-3"];
    // First sync: on target (5 per pod at 4 replicas), which the window remembers.
    per_pod(&prom, "mcp_queue_depth", &pods.map(|p| (p, 5.0)));
    let (ctx, verifier) = context(prom.clone(), true);
    let obj = autoscaler(queue_spec(json!({})));
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(4)).await;
        v.expect(Method::GET, PODS, pod_list(&pods)).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(
            status["status"]["lastDecision"]["reason"],
            "WithinTolerance"
        );
        v
    })
    .await;
    // Second sync: load drops to 1 per pod (one replica would do), but the 5-minute window holds 4.
    per_pod(&prom, "mcp_queue_depth", &pods.map(|p| (p, 1.0)));
    run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(4)).await;
        v.expect(Method::GET, PODS, pod_list(&pods)).await;
        // No pod annotation, no scale patch, no event: straight to the status.
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        let decision = &status["status"]["lastDecision"];
        assert_eq!(decision["direction"], "Hold");
        assert_eq!(decision["reason"], "ScaleDownStabilized");
        assert_eq!(status["status"]["desiredReplicas"], 4);
        assert!(
            decision["explanation"]
                .as_str()
                .unwrap_or_default()
                .contains("proposal=1 stabilized=4"),
            "{decision}"
        );
        v
    })
    .await;
}

#[tokio::test]
async fn prometheus_down_holds_replicas_and_sets_a_condition() {
    let prom = Arc::new(FakePrometheus::default());
    prom.set_down(true);
    let (ctx, verifier) = context(prom, true);
    let (action, _) = run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        |mut v| async move {
            v.expect(Method::GET, SCALE, scale(3)).await;
            v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1", "web-2"]))
                .await;
            let status = v.expect(Method::PATCH, STATUS, stored()).await;
            assert_eq!(
                status["status"]["desiredReplicas"], 3,
                "held at the current count"
            );
            let c = condition(&status, "MetricsAvailable");
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some("False"), Some("PrometheusUnavailable"))
            );
            assert!(
                c["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("connection refused"),
                "{c}"
            );
            assert_eq!(condition(&status, "ScalingActive")["status"], "False");
            assert_eq!(
                status["status"]["lastDecision"]["reason"],
                "MetricsUnavailable"
            );
            v
        },
    )
    .await;
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "tried again next sync, not backed off"
    );
}

#[tokio::test]
async fn stale_metrics_hold_like_missing_ones() {
    let prom = Arc::new(FakePrometheus::default());
    per_pod(&prom, "mcp_queue_depth", &[("web-0", 0.0), ("web-1", 0.0)]);
    // The newest sample is ten minutes old: Prometheus stopped scraping the meters.
    prom.set_instant(
        r#"max(timestamp(mcp_queue_depth{namespace="agents"}))"#.into(),
        vec![crate::fixtures::series(
            &[],
            (crate::fixtures::NOW_SECS - 600) as f64,
        )],
    );
    let (ctx, verifier) = context(prom, true);
    run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        |mut v| async move {
            v.expect(Method::GET, SCALE, scale(2)).await;
            v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1"]))
                .await;
            let status = v.expect(Method::PATCH, STATUS, stored()).await;
            assert_eq!(
                status["status"]["desiredReplicas"], 2,
                "zero load but stale: no scale-down"
            );
            let c = condition(&status, "MetricsAvailable");
            assert!(
                c["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("600s old"),
                "{c}"
            );
            v
        },
    )
    .await;
}

#[tokio::test]
async fn bad_spec_sets_a_condition_and_an_event_naming_the_field() {
    let (ctx, verifier) = context(Arc::new(FakePrometheus::default()), true);
    let spec = queue_spec(json!({"metrics": [
        {"type": "QueueDepth", "queueDepth": {"averageValue": "5"}},
        {"type": "Resource", "resource": {"name": "gpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
    ]}));
    let (action, _) = run(&autoscaler(spec), &ctx, verifier, |mut v| async move {
        // Nothing is read from the cluster for a spec that cannot run.
        let event = v.expect(Method::POST, EVENTS, json!({})).await;
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str()),
            (Some("Warning"), Some("InvalidSpec"))
        );
        let note = event["note"].as_str().unwrap_or_default();
        assert!(
            note.starts_with("spec.metrics[1].resource.name:") && note.contains("cpu or memory"),
            "{note}"
        );
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        let c = condition(&status, "Ready");
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("InvalidSpec"))
        );
        assert_eq!(c["message"].as_str(), Some(note));
        assert_eq!(c["observedGeneration"], 1);
        v
    })
    .await;
    assert_eq!(
        action,
        Action::await_change(),
        "waits for the spec to be fixed"
    );
}

/// The HorizontalPodAutoscaler `agents/web` that Floor mode writes to, at `floor` minReplicas.
fn hpa_with_floor(floor: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "agents"},
        "spec": {"minReplicas": floor, "maxReplicas": 10, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
    })
}

#[tokio::test]
async fn floor_mode_writes_the_predicted_floor_into_the_hpa() {
    let prom = Arc::new(FakePrometheus::default());
    let query = r#"sum(rate(mcp_messages_total{namespace="agents"}[5m]))"#;
    // A steady 10 msg/s at 2 msg/s per pod needs 5 pods; the HPA's floor is 2.
    prom.set_range(query, flat_history(10.0));
    let (ctx, verifier) = context(prom, true);
    let spec = queue_spec(json!({
        "mode": "Floor",
        "hpaRef": {"name": "web"},
        "metrics": [],
        "predictive": {"query": query, "capacityPerPod": "2", "seasonality": "None"},
    }));
    let hpa = hpa_with_floor(2);
    run(&autoscaler(spec), &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, HPA, hpa.clone()).await;
        let patch = v.expect(Method::PATCH, &format!("{HPA}?"), hpa).await;
        assert_eq!(
            patch,
            json!({"spec": {"minReplicas": 5}}),
            "only the floor changes; the HPA stays in charge"
        );
        let event = v.expect(Method::POST, EVENTS, json!({})).await;
        assert_eq!(event["reason"], "FloorRaised");
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        let s = &status["status"];
        assert_eq!(s["lastDecision"]["predictiveReplicas"], 5);
        assert_eq!(s["forecast"]["model"], "constant");
        assert_eq!(s["forecast"]["trusted"], true);
        assert_eq!(condition(&status, "PredictionActive")["status"], "True");
        v
    })
    .await;
}

#[tokio::test]
async fn scale_in_sets_pod_deletion_costs_from_sessions_before_the_scale_patch() {
    let prom = Arc::new(FakePrometheus::default());
    let pods = ["web-0", "web-1", "web-2"];
    per_pod(&prom, "mcp_queue_depth", &pods.map(|p| (p, 1.0)));
    prom.set_instant(
        r#"sum by (pod) (mcp_server_sessions_active{namespace="agents"})"#.into(),
        vec![
            crate::fixtures::series(&[("pod", "web-0")], 7.0),
            crate::fixtures::series(&[("pod", "web-1")], 0.0),
            crate::fixtures::series(&[("pod", "web-2")], 2.0),
        ],
    );
    let (ctx, verifier) = context(prom, true);
    // No scale-down window, so 3 pods at 1 queued each against 5 per pod go straight to 1 replica.
    let spec = queue_spec(json!({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}));
    run(&autoscaler(spec), &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(3)).await;
        v.expect(Method::GET, PODS, pod_list(&pods)).await;
        for (pod, cost) in [("web-0", "7"), ("web-1", "0"), ("web-2", "2")] {
            let uri = format!("/api/v1/namespaces/agents/pods/{pod}?");
            let patch = v.expect(Method::PATCH, &uri, json!({"metadata": {"name": pod}})).await;
            assert_eq!(
                patch,
                json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": cost}}}),
                "{pod}: fewer sessions, lower cost, deleted first"
            );
        }
        let patch = v.expect(Method::PATCH, SCALE_APPLY, scale(1)).await;
        assert_eq!(patch["spec"], json!({"replicas": 1}));
        let event = v.expect(Method::POST, EVENTS, json!({})).await;
        assert_eq!(event["reason"], "ScaledDown");
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(status["status"]["lastDecision"]["direction"], "Down");
        v
    })
    .await;
}

#[tokio::test]
async fn a_replica_that_is_not_leader_makes_no_request_at_all() {
    let prom = Arc::new(FakePrometheus::default());
    per_pod(&prom, "mcp_queue_depth", &[("web-0", 100.0)]);
    let (ctx, verifier) = context(prom, false);
    let (action, _) = run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        |v| async move { v },
    )
    .await;
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "checks again next sync in case it becomes leader"
    );
}

#[tokio::test]
async fn api_errors_back_off_exponentially_and_conflicts_retry_soon() {
    use crate::controller::{backoff, error_policy};
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(3), Duration::from_secs(20));
    assert_eq!(
        backoff(40),
        Duration::from_secs(300),
        "capped at five minutes"
    );

    let (ctx, verifier) = context(Arc::new(FakePrometheus::default()), true);
    let obj = Arc::new(autoscaler(queue_spec(json!({}))));
    let server = tokio::spawn(async move {
        let mut v = verifier;
        v.fail(Method::GET, SCALE, 409).await;
        v
    });
    let err = reconcile(obj.clone(), ctx.clone())
        .await
        .expect_err("the API answered 409");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(
        error_policy(obj, &err, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        ctx.metrics.reconcile_errors.get(),
        1,
        "counted in mcpulse_scaler_reconcile_errors_total"
    );
    if let Err(e) = server.await {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn leadership_lost_mid_reconcile_stops_before_any_write() {
    let prom = Arc::new(FakePrometheus::default());
    per_pod(&prom, "mcp_queue_depth", &[("web-0", 50.0)]);
    let (tx, leadership) = crate::leader::channel();
    tx.send_replace(true);
    let (ctx, verifier) = crate::fixtures::context_with(prom, leadership);
    let (action, _) = run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        move |mut v| async move {
            v.expect(Method::GET, SCALE, scale(1)).await;
            // The lease moves to another replica while the pods are read.
            tx.send_replace(false);
            v.expect(Method::GET, PODS, pod_list(&["web-0"])).await;
            // A scale-up to 10 was decided, but no scale patch, event or status follows.
            v
        },
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn deleted_autoscalers_are_forgotten() {
    let prom = Arc::new(FakePrometheus::default());
    per_pod(&prom, "mcp_queue_depth", &[("web-0", 5.0)]);
    let (ctx, verifier) = context(prom, true);
    run(
        &autoscaler(queue_spec(json!({}))),
        &ctx,
        verifier,
        |mut v| async move {
            v.expect(Method::GET, SCALE, scale(1)).await;
            v.expect(Method::GET, PODS, pod_list(&["web-0"])).await;
            v.expect(Method::PATCH, STATUS, stored()).await;
            v
        },
    )
    .await;
    let labels = crate::metrics::AutoscalerLabels {
        namespace: "agents".into(),
        autoscaler: "web".into(),
    };
    assert_eq!(ctx.tracked(), 1);
    assert_eq!(ctx.metrics.current_replicas.get_or_create(&labels).get(), 1);
    let live = std::collections::HashSet::from([("agents".to_owned(), "web".to_owned())]);
    crate::controller::sweep(&ctx, &live);
    assert_eq!(ctx.tracked(), 1, "a live autoscaler keeps its history");
    crate::controller::sweep(&ctx, &std::collections::HashSet::new());
    assert_eq!(ctx.tracked(), 0, "a deleted one is forgotten");
    assert_eq!(
        ctx.metrics.current_replicas.get_or_create(&labels).get(),
        0,
        "its series were removed"
    );
}

#[test]
fn range_answers_are_put_on_a_regular_grid() {
    use crate::controller::regular_history;
    use crate::prometheus::RangeSeries;
    let s = |points: &[(f64, f64)]| RangeSeries {
        labels: Default::default(),
        points: points.to_vec(),
    };
    let got = regular_history(
        &[
            s(&[(0.0, 1.0), (600.0, 3.0)]),
            s(&[(0.0, 2.0), (301.0, f64::NAN)]),
        ],
        0,
        600,
        300,
    );
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], 3.0, "several series are summed per step");
    assert!(
        got[1].is_nan(),
        "a step without a finite point stays a gap for fill_gaps"
    );
    assert_eq!(got[2], 3.0);
    let outside = regular_history(&[s(&[(-300.0, 9.0), (900.0, 9.0)])], 0, 600, 300);
    assert!(
        outside.iter().all(|v| v.is_nan()),
        "points outside the window are dropped"
    );
}

/// The load signal the predictive tests forecast.
const LOAD_QUERY: &str = r#"sum(rate(mcp_messages_total{namespace="agents"}[5m]))"#;

/// A steady 10 in [`LOAD_QUERY`] at 5-minute steps, from two days before [`NOW_SECS`] to three steps after it,
/// and a leader controller whose clock reads the returned seconds (starting at `NOW_SECS`).
fn steady_load_with_a_clock() -> (
    Arc<FakePrometheus>,
    Arc<AtomicI64>,
    Arc<crate::Context>,
    ApiServerVerifier,
) {
    let prom = Arc::new(FakePrometheus::default());
    let points = (-576..=3)
        .map(|i| ((NOW_SECS + i * 300) as f64, 10.0))
        .collect();
    prom.set_range(
        LOAD_QUERY,
        vec![RangeSeries {
            labels: Default::default(),
            points,
        }],
    );
    let clock_secs = Arc::new(AtomicI64::new(NOW_SECS));
    let clock = {
        let secs = clock_secs.clone();
        Arc::new(move || {
            jiff::Timestamp::from_second(secs.load(Ordering::SeqCst))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        })
    };
    let (ctx, verifier) = context_clocked(prom.clone(), Leadership::fixed(true), clock);
    (prom, clock_secs, ctx, verifier)
}

#[tokio::test]
async fn a_followed_forecaster_fetches_only_the_steps_since_its_last_look() {
    let (prom, clock_secs, ctx, verifier) = steady_load_with_a_clock();
    let query = LOAD_QUERY;
    let obj = autoscaler(queue_spec(json!({
        "mode": "Floor",
        "hpaRef": {"name": "web"},
        "metrics": [],
        "predictive": {"query": query, "capacityPerPod": "2", "seasonality": "None"},
    })));
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, HPA, hpa_with_floor(2)).await;
        v.expect(Method::PATCH, &format!("{HPA}?"), hpa_with_floor(5))
            .await;
        v.expect(Method::POST, EVENTS, json!({})).await;
        v.expect(Method::PATCH, STATUS, stored()).await;
        v
    })
    .await;
    // One step later: the floor is already right, and only the new step is asked for.
    clock_secs.store(NOW_SECS + 300, Ordering::SeqCst);
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(5)).await;
        v.expect(Method::GET, HPA, hpa_with_floor(5)).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(
            status["status"]["lastDecision"]["predictiveReplicas"], 5,
            "{status}"
        );
        v
    })
    .await;
    // Prometheus down for a step: the forecaster is kept, and the next look fetches the step it missed.
    prom.set_down(true);
    clock_secs.store(NOW_SECS + 600, Ordering::SeqCst);
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(5)).await;
        v.expect(Method::GET, HPA, hpa_with_floor(5)).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(
            condition(&status, "PredictionActive")["status"],
            "False",
            "{status}"
        );
        v
    })
    .await;
    prom.set_down(false);
    clock_secs.store(NOW_SECS + 900, Ordering::SeqCst);
    run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(5)).await;
        v.expect(Method::GET, HPA, hpa_with_floor(5)).await;
        v.expect(Method::PATCH, STATUS, stored()).await;
        v
    })
    .await;
    let day = 86_400.0;
    let now = NOW_SECS as f64;
    let asked: Vec<(f64, f64)> = prom
        .range_calls()
        .into_iter()
        .map(|(_, start, end)| (start, end))
        .collect();
    assert_eq!(
        asked,
        [
            (now - day, now),
            (now + 300.0, now + 300.0),
            (now + 600.0, now + 900.0)
        ],
        "the whole day first, then only the steps not yet seen"
    );
}

#[tokio::test]
async fn capacity_added_ahead_of_a_forecast_is_held_through_the_scale_down_window() {
    // A steady 10 against 2 per pod: five pods predicted.
    let (prom, clock_secs, ctx, verifier) = steady_load_with_a_clock();
    let query = LOAD_QUERY;
    // Hardly any queue: on its own the reactive half wants one pod.
    let two = ["web-0", "web-1"];
    per_pod(&prom, "mcp_queue_depth", &two.map(|p| (p, 1.0)));
    let obj = autoscaler(queue_spec(json!({
        "predictive": {"query": query, "capacityPerPod": "2", "seasonality": "None"},
    })));
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, PODS, pod_list(&two)).await;
        v.expect(Method::PATCH, SCALE_APPLY, scale(5)).await;
        v.expect(Method::POST, EVENTS, json!({})).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        let decision = &status["status"]["lastDecision"];
        assert_eq!(decision["reason"], "Predicted", "{status}");
        assert_eq!(decision["reactiveReplicas"], 1, "{status}");
        v
    })
    .await;
    // At the next forecast step the forecast is gone (its series vanished). The reactive half still wants one
    // pod, but the five added for the forecast stay until the 5-minute scale-down window has passed.
    prom.forget_range(query);
    let five = ["web-0", "web-1", "web-2", "web-3", "web-4"];
    per_pod(&prom, "mcp_queue_depth", &five.map(|p| (p, 1.0)));
    // The queue depth stays fresh, so what holds the pods is the window, not missing data.
    let scraped_at = |secs: i64| {
        prom.set_instant(
            r#"max(timestamp(mcp_queue_depth{namespace="agents"}))"#.to_owned(),
            vec![crate::fixtures::series(&[], (secs - 10) as f64)],
        );
    };
    scraped_at(NOW_SECS + 300);
    clock_secs.store(NOW_SECS + 300, Ordering::SeqCst);
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(5)).await;
        v.expect(Method::GET, PODS, pod_list(&five)).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(status["status"]["desiredReplicas"], 5, "{status}");
        assert_eq!(
            condition(&status, "MetricsAvailable")["status"],
            "True",
            "{status}"
        );
        assert_eq!(status["status"]["lastDecision"]["reactiveReplicas"], 1);
        assert_eq!(
            condition(&status, "PredictionActive")["status"],
            "False",
            "{status}"
        );
        let explanation = status["status"]["lastDecision"]["explanation"]
            .as_str()
            .unwrap_or_default();
        assert!(
            explanation.contains("predictive held at 5"),
            "{explanation}"
        );
        v
    })
    .await;
    // Past the window the capacity goes back: down to the one pod the queue needs (before that, the pods'
    // sessions are looked up to pick which go first).
    scraped_at(NOW_SECS + 601);
    clock_secs.store(NOW_SECS + 601, Ordering::SeqCst);
    run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(5)).await;
        v.expect(Method::GET, PODS, pod_list(&five)).await;
        let patch = v.expect(Method::PATCH, SCALE_APPLY, scale(1)).await;
        assert_eq!(patch["spec"], json!({"replicas": 1}));
        v.expect(Method::POST, EVENTS, json!({})).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(status["status"]["desiredReplicas"], 1, "{status}");
        v
    })
    .await;
}

/// The queue model of the tests: 10 requests/s per pod over 4 workers (0.4 s each), p95 2 s, wait 0.5 s.
fn queue_model_json() -> Value {
    json!({"capacityPerPod": "10", "concurrencyPerPod": 4, "latencyP95Milliseconds": 2000, "queueWaitMilliseconds": 500})
}

fn queue_model() -> mcpulse_scaler::sizing::QueueModel {
    let spec: crate::crd::QueueModelSpec =
        serde_json::from_value(queue_model_json()).expect("the test model parses");
    spec.model().expect("the test model is valid")
}

#[tokio::test]
async fn queue_model_scales_up_for_arrivals_and_backlog() {
    let prom = Arc::new(FakePrometheus::default());
    let spec = queue_spec(json!({
        "metrics": [{"type": "InFlight", "inFlight": {"averageValue": "16"}}],
        "queueModel": queue_model_json(),
    }));
    let obj = autoscaler(spec);
    // 8 in flight per pod: every worker busy and 4 waiting. Against 16 per pod the in-flight target alone
    // would shed a pod; the queue model sees 24 requests/s arriving at 20/s of capacity.
    per_pod(
        &prom,
        "mcp_requests_in_flight",
        &[("web-0", 8.0), ("web-1", 8.0)],
    );
    let plan = obj.spec.plan().expect("valid");
    let combined = crate::observe::queries(&plan.metrics[1], "agents");
    let tagged = |pod: &str, signal: &str, v: f64| {
        crate::fixtures::series(&[("pod", pod), ("signal", signal)], v)
    };
    prom.set_instant(
        combined.value,
        vec![
            tagged("web-0", "in_flight", 8.0),
            tagged("web-1", "in_flight", 8.0),
            tagged("web-0", "arrivals", 12.0),
            tagged("web-1", "arrivals", 12.0),
        ],
    );
    // 8 queued, and 4/s more than capacity for the 60 s start-up, drained within 30 s.
    let rate = queue_model().rate_with_backlog(24.0, 16.0, 2, &[], 60.0, 30.0);
    assert!((rate - (24.0 + (8.0 + 240.0) / 30.0)).abs() < 1e-9);
    let want = queue_model().pods_with_headroom(rate, 1, 10);
    assert!(want > 3, "more than the arrivals alone need");
    let (ctx, verifier) = context(prom, true);
    run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1"]))
            .await;
        let patch = v
            .expect(
                Method::PATCH,
                SCALE_APPLY,
                scale(i32::try_from(want).unwrap_or(0)),
            )
            .await;
        assert_eq!(patch["spec"], json!({"replicas": want}));
        let event = v.expect(Method::POST, EVENTS, json!({})).await;
        let note = event["note"].as_str().unwrap_or_default();
        assert!(
            note.contains(crate::crd::QUEUE_MODEL_METRIC),
            "the queue model drove it: {note}"
        );
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(status["status"]["desiredReplicas"], want);
        assert_eq!(condition(&status, "MetricsAvailable")["status"], "True");
        v
    })
    .await;
}

#[tokio::test]
async fn queue_model_remembers_the_arrival_rate_to_catch_up_with_a_rise() {
    let (prom, clock_secs, ctx, verifier) = steady_load_with_a_clock();
    let obj = autoscaler(queue_spec(json!({
        "metrics": [{"type": "InFlight", "inFlight": {"averageValue": "16"}}],
        "queueModel": queue_model_json(),
    })));
    let plan = obj.spec.plan().expect("valid");
    let combined = crate::observe::queries(&plan.metrics[1], "agents");
    per_pod(
        &prom,
        "mcp_requests_in_flight",
        &[("web-0", 2.0), ("web-1", 2.0)],
    );
    // Two in flight per pod (no queue) and the arrivals given, fresh at `secs`, which the clock reads.
    let sync_at = |secs: i64, arrivals: f64| {
        let tagged = |pod: &str, signal: &str, v: f64| {
            crate::fixtures::series(&[("pod", pod), ("signal", signal)], v)
        };
        let all = ["web-0", "web-1"]
            .iter()
            .flat_map(|p| [tagged(p, "in_flight", 2.0), tagged(p, "arrivals", arrivals)])
            .collect();
        prom.set_instant(combined.value.clone(), all);
        prom.set_instant(
            combined.freshness.clone().unwrap_or_default(),
            vec![crate::fixtures::series(&[], (secs - 5) as f64)],
        );
        clock_secs.store(secs, Ordering::SeqCst);
    };
    // 8 requests/s on two pods: what they have.
    sync_at(NOW_SECS, 4.0);
    assert_eq!(queue_model().pods_with_headroom(8.0, 1, 10), 2);
    let (_, verifier) = run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1"]))
            .await;
        v.expect(Method::PATCH, STATUS, stored()).await;
        v
    })
    .await;
    // One rate window later, 13/s, which two pods meet. But 390 requests after 240 is a rise beyond noise,
    // so the controller, remembering the 8/s, sizes for one more window of it (18/s), which they do not.
    sync_at(NOW_SECS + 30, 6.5);
    assert_eq!(queue_model().pods_with_headroom(13.0, 1, 10), 2);
    let want = queue_model().pods_with_headroom(18.0, 1, 10);
    assert_eq!(want, 3);
    run(&obj, &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, PODS, pod_list(&["web-0", "web-1"]))
            .await;
        let patch = v.expect(Method::PATCH, SCALE_APPLY, scale(3)).await;
        assert_eq!(patch["spec"], json!({"replicas": want}));
        v.expect(Method::POST, EVENTS, json!({})).await;
        v.expect(Method::PATCH, STATUS, stored()).await;
        v
    })
    .await;
}

#[tokio::test]
async fn floor_mode_sizes_the_forecast_with_the_queue_model() {
    let prom = Arc::new(FakePrometheus::default());
    let query = r#"sum(rate(mcp_requests_total{namespace="agents"}[5m]))"#;
    // A steady 20 requests/s: two pods of 10 would run saturated, so the floor is the queue model's count.
    prom.set_range(query, flat_history(20.0));
    let want = queue_model().pods_with_headroom(20.0, 1, 10);
    assert!(want > 2, "more than the saturation count");
    let (ctx, verifier) = context(prom, true);
    let spec = queue_spec(json!({
        "mode": "Floor",
        "hpaRef": {"name": "web"},
        "metrics": [],
        "predictive": {"query": query, "seasonality": "None"},
        "queueModel": queue_model_json(),
    }));
    let hpa = hpa_with_floor(2);
    run(&autoscaler(spec), &ctx, verifier, move |mut v| async move {
        v.expect(Method::GET, SCALE, scale(2)).await;
        v.expect(Method::GET, HPA, hpa.clone()).await;
        let patch = v.expect(Method::PATCH, &format!("{HPA}?"), hpa).await;
        assert_eq!(patch, json!({"spec": {"minReplicas": want}}));
        v.expect(Method::POST, EVENTS, json!({})).await;
        let status = v.expect(Method::PATCH, STATUS, stored()).await;
        assert_eq!(status["status"]["lastDecision"]["predictiveReplicas"], want);
        v
    })
    .await;
}
