//! The checked-in CRD matches the Rust type, and the example objects parse (or fail) as documented.

use std::path::PathBuf;

use mcpulse_kube::McpAutoscaler;
use mcpulse_kube::crd::MetricPlan;
use mcpulse_scaler::sizing::PodSizing;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn checked_in_crd_is_up_to_date() {
    let generated = mcpulse_kube::crd::crd_yaml().expect("the CRD renders");
    let path = repo("deploy/crds/mcpautoscaler.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the McpAutoscaler type; regenerate it with\n  cargo run -p mcpulse-kube --bin crdgen > deploy/crds/mcpautoscaler.yaml",
        path.display()
    );
}

fn example(name: &str) -> McpAutoscaler {
    let text = std::fs::read_to_string(repo(&format!("deploy/crds/examples/{name}.yaml")))
        .expect("example exists");
    serde_yaml::from_str(&text).expect("example parses as an McpAutoscaler")
}

#[test]
fn good_example_plans() {
    let plan = example("good")
        .spec
        .plan()
        .expect("the good example is valid");
    assert_eq!(plan.metrics.len(), 3);
}

#[test]
fn queue_model_example_plans_cpu_and_the_queue_model() {
    let spec = example("queue-model").spec;
    let plan = spec.plan().expect("the queue-model example is valid");
    assert!(
        matches!(
            plan.metrics.as_slice(),
            [
                MetricPlan::Resource { .. },
                MetricPlan::QueueModel(sizing)
            ] if sizing.max_pods == 40
        ),
        "{:?}",
        plan.metrics
    );
    assert_eq!(
        plan.engine.metrics.len(),
        2,
        "CPU spelled out next to the queue model"
    );
    assert!(
        matches!(plan.predictive_sizing, Some(PodSizing::Queue(_))),
        "the forecast is sized by the queue model"
    );
}

#[test]
fn queue_model_mistakes_are_refused_naming_the_field() {
    let base = example("queue-model").spec;
    let mut no_sizing = base.clone();
    no_sizing.queue_model = None;
    let mut too_fast = base.clone();
    if let Some(q) = too_fast.queue_model.as_mut() {
        // 8 workers at 20 requests/s: 0.4 s each, p95 1.2 s, so a 1 s objective cannot be met.
        q.latency_p95_milliseconds = 1000;
    }
    let mut no_capacity = base.clone();
    if let Some(q) = no_capacity.queue_model.as_mut() {
        q.capacity_per_pod = mcpulse_scaler::Quantity::from_units(0);
    }
    for (spec, field) in [
        (no_sizing, "spec.predictive.capacityPerPod"),
        (too_fast, "spec.queueModel.latencyP95Milliseconds"),
        (no_capacity, "spec.queueModel.capacityPerPod"),
    ] {
        let err = spec.plan().expect_err(field);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn shipped_autoscalers_plan() {
    // The kustomize components ship these: numbers that contradict each other (an objective below the
    // service time) would only surface as an InvalidSpec event in a cluster.
    for path in [
        "deploy/kustomize/components/scaler/agents-direct/mcpautoscaler.yaml",
        "deploy/kustomize/components/scaler/agents-floor/mcpautoscaler.yaml",
    ] {
        let text = std::fs::read_to_string(repo(path)).expect("component exists");
        let obj: McpAutoscaler = serde_yaml::from_str(&text).expect("parses as an McpAutoscaler");
        if let Err(e) = obj.spec.plan() {
            panic!("{path}: {e}");
        }
    }
}

#[test]
fn bad_example_is_rejected_at_reconcile_naming_the_field() {
    // Well-formed for the schema, wrong for the controller: a resource the controller cannot read.
    let err = example("bad")
        .spec
        .plan()
        .expect_err("the bad example is refused");
    assert!(
        err.to_string().contains("spec.metrics[0].resource.name"),
        "{err}"
    );
}

#[test]
fn illegal_example_breaks_the_schema_rules() {
    // Below the schema minimum (and max < min for the CEL rule): refused at admission and by the controller.
    let err = example("illegal")
        .spec
        .plan()
        .expect_err("the illegal example is refused");
    assert!(err.to_string().contains("spec.minReplicas"), "{err}");
}
