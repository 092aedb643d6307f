//! The meter between programs it has never seen: the official Python MCP SDK's server and client over streamable
//! HTTP, and a Python stdio server driven by an rmcp client through `mcpulse meter --stdio`.

mod support;

use mcpulse_telemetry::Exposition;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use support::*;

const OPERATION: &str = "mcp_server_operation_duration_seconds_count";

#[tokio::test]
async fn python_client_and_server_through_the_http_meter() {
    let Some(python) = python_with_mcp() else {
        return;
    };
    let (server_port, proxy_port, metrics_port) = (free_port(), free_port(), free_port());
    let server_script = fixture("py_server.py");
    let _server = spawn(
        &python,
        &[
            server_script.to_str().unwrap(),
            "http",
            &server_port.to_string(),
        ],
    );
    let _meter = spawn(
        MCPULSE,
        &[
            "meter",
            "--listen",
            &format!("127.0.0.1:{proxy_port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--upstream",
            &format!("http://127.0.0.1:{server_port}"),
        ],
    );
    wait_for_http(&format!("http://127.0.0.1:{server_port}/")).await;
    wait_for_http(&format!("http://127.0.0.1:{metrics_port}/healthz")).await;

    let client = tokio::process::Command::new(&python)
        .args([
            fixture("py_client.py").to_str().unwrap(),
            &format!("http://127.0.0.1:{proxy_port}/mcp"),
            "4",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        client.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&client.stdout).unwrap();
    assert_eq!(
        summary["sums"],
        serde_json::json!(["1", "2", "3", "4"]),
        "answers relayed unchanged"
    );
    assert_eq!(summary["explode_is_error"], true);

    let metrics = scrape(metrics_port).await;
    let add = sum(
        &metrics,
        OPERATION,
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "add"),
            ("error_type", ""),
        ],
    );
    assert_eq!(add, 4.0);
    let explode = sum(
        &metrics,
        OPERATION,
        &[
            ("gen_ai_tool_name", "explode"),
            ("error_type", "tool_error"),
        ],
    );
    assert_eq!(explode, 1.0);
    assert_eq!(
        sum(&metrics, OPERATION, &[("mcp_method_name", "initialize")]),
        1.0
    );
    assert_eq!(sum(&metrics, "mcp_server_sessions_total", &[]), 1.0);
    assert_eq!(
        sum(&metrics, "mcp_server_sessions_active", &[]),
        0.0,
        "the client's DELETE ended the session"
    );
    assert!(
        sum(&metrics, "mcp_sse_events_total", &[]) >= 6.0,
        "the SDK answers over SSE"
    );
}

#[tokio::test]
async fn rmcp_client_and_python_stdio_server_through_the_stdio_meter() {
    let Some(python) = python_with_mcp() else {
        return;
    };
    let metrics_port = free_port();
    let mut command = tokio::process::Command::new(MCPULSE);
    command
        .args([
            "meter",
            "--stdio",
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--",
        ])
        .arg(&python)
        .arg(fixture("py_server.py"))
        .arg("stdio");
    let client =
        ().serve(TokioChildProcess::new(command).unwrap())
            .await
            .expect("initialize over stdio through the meter");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2);
    for n in 0..3 {
        let args = serde_json::json!({"a": n, "b": 10});
        let result = client
            .call_tool(
                CallToolRequestParams::new("add").with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert!(
            serde_json::to_string(&result.content)
                .unwrap()
                .contains(&(n + 10).to_string())
        );
    }
    wait_for_http(&format!("http://127.0.0.1:{metrics_port}/healthz")).await;
    // The stdio meter forwards a line before it counts it (the client's latency comes first), so the last
    // answer can reach the client a moment before its operation is counted.
    let calls = |metrics: &Exposition| {
        sum(
            metrics,
            OPERATION,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "add"),
                ("error_type", ""),
            ],
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut metrics = scrape(metrics_port).await;
    while calls(&metrics) < 3.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        metrics = scrape(metrics_port).await;
    }
    assert_eq!(calls(&metrics), 3.0);
    assert_eq!(
        sum(&metrics, OPERATION, &[("mcp_method_name", "tools/list")]),
        1.0
    );
    assert_eq!(
        sum(&metrics, "mcp_server_sessions_active", &[]),
        1.0,
        "the child process is one live session"
    );
    client.cancel().await.unwrap();
}
