//! The agent as an MCP server: tools, cost, errors, saturation, metrics and drain, through a real rmcp client.

mod common;

use std::time::{Duration, Instant};

use common::{CLIENT_NAME, call, config, connect, eventually, operations, scrape, start, text};
use mcpulse_agent::SATURATED_CODE;
use rmcp::model::ErrorCode;
use rmcp::service::ServiceError;
use serde_json::json;

#[tokio::test]
async fn tools_honour_their_cost_and_metrics_count_every_call() {
    let mut config = config();
    config.workers = 2;
    let agent = start(config).await;
    let client = connect(agent.bound).await;

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "work"]);

    let echoed = call(&client, "echo", json!({"message": "hello"}))
        .await
        .expect("echo");
    assert_eq!(text(&echoed), "hello");

    let started = Instant::now();
    let slept = call(&client, "work", json!({"sleep_ms": 50}))
        .await
        .expect("sleep call");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "a 50 ms sleep call returned early"
    );
    assert_ne!(slept.is_error, Some(true));

    let started = Instant::now();
    call(&client, "work", json!({"cpu_ms": 30}))
        .await
        .expect("cpu call");
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "a 30 ms burn returned early"
    );

    let sized = call(&client, "work", json!({"response_bytes": 1000}))
        .await
        .expect("sized call");
    assert_eq!(
        text(&sized).len(),
        1000,
        "response_bytes sets the reply size"
    );

    let failed = call(&client, "work", json!({"fail": true}))
        .await
        .expect("failing call still answers");
    assert_eq!(failed.is_error, Some(true), "fail=true is a tool error");

    let too_big = call(&client, "work", json!({"cpu_ms": 1_000_000})).await;
    match too_big {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
            assert!(
                e.message.contains("cpu_ms") && e.message.contains("60000"),
                "{}",
                e.message
            );
        }
        other => panic!("an out-of-range cost must be invalid params, got {other:?}"),
    }

    let metrics = scrape(agent.bound).await;
    let cases = [
        (
            "tools/call",
            "work",
            "",
            3.0,
            "sleep, cpu and sized calls succeeded",
        ),
        (
            "tools/call",
            "work",
            "tool_error",
            1.0,
            "the fail=true call",
        ),
        (
            "tools/call",
            "work",
            "invalid_params",
            1.0,
            "the out-of-range call",
        ),
        ("tools/call", "echo", "", 1.0, "one echo"),
        ("tools/list", "", "", 1.0, "one listing"),
        ("initialize", "", "", 1.0, "one session opened"),
    ];
    for (method, tool, error_type, want, why) in cases {
        assert_eq!(
            operations(&metrics, method, tool, error_type),
            want,
            "{why}"
        );
    }
    let name = "io.mcpulse/agent";
    assert_eq!(metrics.value("mcp_server_sessions_active", &[]), Some(1.0));
    let sessions = metrics
        .family("mcp_server_sessions_total")
        .expect("sessions family");
    let opened: Vec<_> = sessions
        .samples
        .iter()
        .filter(|s| {
            s.labels
                .iter()
                .any(|(k, v)| k == "client_name" && v == CLIENT_NAME)
        })
        .map(|s| s.value)
        .collect();
    assert_eq!(opened, [1.0], "one session from this client");
    assert_eq!(
        metrics.value("mcp_queue_wait_seconds_count", &[("upstream", name)]),
        Some(4.0),
        "every work call that reached the pool waited (if only 0 s) for a worker"
    );
    assert_eq!(
        metrics.value("mcp_requests_in_flight", &[("upstream", name)]),
        Some(0.0)
    );
    assert_eq!(
        metrics.value("mcp_queue_depth", &[("upstream", name)]),
        Some(0.0)
    );
    assert!(
        metrics
            .families
            .iter()
            .any(|f| f.name.starts_with("process_")),
        "the process collector is registered"
    );

    client.cancel().await.expect("session closes");
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape(agent.bound)
                .await
                .value("mcp_server_sessions_active", &[])
                == Some(0.0)
        })
        .await,
        "closing the session ends it in the metrics"
    );
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn error_rate_one_fails_every_call_unless_overridden() {
    let mut config = config();
    config.defaults.error_rate = 1.0;
    let agent = start(config).await;
    let client = connect(agent.bound).await;
    for _ in 0..5 {
        let answer = call(&client, "work", json!({})).await.expect("answer");
        assert_eq!(answer.is_error, Some(true), "error rate 1 fails every call");
    }
    let answer = call(&client, "work", json!({"fail": false}))
        .await
        .expect("answer");
    assert_ne!(
        answer.is_error,
        Some(true),
        "an explicit fail=false beats the error rate"
    );
    let metrics = scrape(agent.bound).await;
    assert_eq!(
        operations(&metrics, "tools/call", "work", "tool_error"),
        5.0
    );
    assert_eq!(operations(&metrics, "tools/call", "work", ""), 1.0);
    client.cancel().await.expect("session closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn saturation_fails_fast_with_a_saturation_error() {
    let mut config = config();
    config.workers = 1;
    config.max_queue = 1;
    let agent = start(config).await;
    let client = connect(agent.bound).await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let peer = client.peer().clone();
            tokio::spawn(async move {
                let args = json!({"sleep_ms": 400})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                peer.call_tool(rmcp::model::CallToolRequestParams::new("work").with_arguments(args))
                    .await
            })
        })
        .collect();
    let metrics_bound = agent.bound;
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape(metrics_bound)
                .await
                .value("mcp_queue_depth", &[("upstream", "io.mcpulse/agent")])
                == Some(1.0)
        })
        .await,
        "one call runs and one waits"
    );
    match call(&client, "work", json!({})).await {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode(SATURATED_CODE));
            assert!(e.message.contains("saturated"), "{}", e.message);
        }
        other => panic!("a full queue must refuse the call, got {other:?}"),
    }
    for task in slow {
        let answer = task
            .await
            .expect("task")
            .expect("queued and running calls complete");
        assert_ne!(answer.is_error, Some(true));
    }
    let metrics = scrape(agent.bound).await;
    assert_eq!(
        operations(&metrics, "tools/call", "work", "queue_full"),
        1.0
    );
    assert_eq!(
        metrics.value(
            "mcp_queue_rejections_total",
            &[("upstream", "io.mcpulse/agent"), ("reason", "full")]
        ),
        Some(1.0)
    );
    client.cancel().await.expect("session closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_fails_readiness_refuses_new_sessions_and_finishes_calls() {
    let agent = start(config()).await;
    let bound = agent.bound;
    let client = connect(bound).await;
    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", bound.metrics);
    assert_eq!(
        http.get(&readyz).send().await.expect("readyz").status(),
        200
    );

    let peer = client.peer().clone();
    let in_flight = tokio::spawn(async move {
        let args = json!({"sleep_ms": 500})
            .as_object()
            .cloned()
            .unwrap_or_default();
        peer.call_tool(rmcp::model::CallToolRequestParams::new("work").with_arguments(args))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut agent = agent;
    agent.start_shutdown();

    assert!(
        eventually(Duration::from_secs(2), async || {
            http.get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        })
        .await,
        "readiness fails once draining starts"
    );
    let fresh = http
        .post(format!("http://{}/mcp", bound.listen))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"late","version":"0"}}}"#)
        .send()
        .await
        .expect("the MCP listener still answers while draining");
    assert_eq!(
        fresh.status(),
        503,
        "a draining agent opens no new sessions"
    );

    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight call finishes during the drain");
    assert_ne!(answer.is_error, Some(true));
    agent.stop().await.expect("drain ends cleanly");
}
