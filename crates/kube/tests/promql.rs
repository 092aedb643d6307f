//! The queue-model query gives both signals, told apart, from real series: evaluated by Prometheus's own
//! engine through `promtool test rules` (skipped with a reason when promtool is absent).

use std::path::Path;
use std::process::Command;

use mcpulse_kube::crd::McpAutoscalerSpec;
use mcpulse_kube::observe::queries;

const PROMTOOL: &str = "/usr/bin/promtool";

#[test]
fn queue_model_query_returns_in_flight_and_arrivals_per_pod() {
    if !Path::new(PROMTOOL).exists() {
        println!("skipped: {PROMTOOL} is not installed (apt-get install prometheus)");
        return;
    }
    let spec: McpAutoscalerSpec = serde_json::from_value(serde_json::json!({
        "scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "maxReplicas": 10,
        "queueModel": {"capacityPerPod": "10", "concurrencyPerPod": 4, "latencyP95Milliseconds": 2000, "queueWaitMilliseconds": 500},
    }))
    .expect("spec parses");
    let plan = spec.plan().expect("spec is valid");
    let query = plan
        .metrics
        .iter()
        .find(|m| matches!(m, mcpulse_kube::crd::MetricPlan::QueueModel(_)))
        .map(|m| queries(m, "agents").value)
        .expect("a queue-model metric is planned");

    // web-0: 8 in flight, 180 requests per 15 s scrape (12/s). Responses, another namespace and another
    // direction must not count.
    let test = format!(
        r#"rule_files: [rules.yaml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'mcp_requests_in_flight{{namespace="agents", pod="web-0", container="meter"}}'
        values: '8x10'
      - series: 'mcp_requests_in_flight{{namespace="other", pod="x-0"}}'
        values: '99x10'
      - series: 'mcp_messages_total{{namespace="agents", pod="web-0", direction="client_to_server", kind="request", mcp_method_name="tools/call"}}'
        values: '0+180x10'
      - series: 'mcp_messages_total{{namespace="agents", pod="web-0", direction="server_to_client", kind="response", mcp_method_name="tools/call"}}'
        values: '0+999x10'
    promql_expr_test:
      - expr: '{query}'
        eval_time: 2m
        exp_samples:
          - labels: '{{pod="web-0", signal="in_flight"}}'
            value: 8
          - labels: '{{pod="web-0", signal="arrivals"}}'
            value: 12
"#,
        query = query.replace('\'', "''")
    );
    let dir = std::env::temp_dir().join(format!("mcpulse-promql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("rules.yaml"), "groups: []\n").expect("rules written");
    std::fs::write(dir.join("test.yaml"), test).expect("test written");
    let output = Command::new(PROMTOOL)
        .args(["test", "rules", "test.yaml"])
        .current_dir(&dir)
        .output()
        .expect("promtool runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "promtool:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
