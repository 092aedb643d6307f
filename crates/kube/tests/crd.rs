//! The checked-in CRD matches the Rust type, and the example objects parse (or fail) as documented.

use std::path::PathBuf;

use mcpulse_kube::McpAutoscaler;

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
