//! The agent in stateless mode: plain JSON answers, no sessions, shared pool and drain, through a real rmcp client and raw HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{
    CLIENT_NAME, Running, call, config, connect, eventually, operations, scrape, start, text,
};
use mcpulse_agent::SATURATED_CODE;
use rmcp::model::{CallToolRequestParams, ErrorCode};
use rmcp::service::ServiceError;
use serde_json::{Value, json};

const SERVER: &str = "io.mcpulse/agent";

async fn start_stateless(workers: usize, max_queue: usize) -> Running {
    let mut config = config();
    config.stateless = true;
    config.workers = workers;
    config.max_queue = max_queue;
    start(config).await
}

fn initialize(version: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    })
    .to_string()
}

fn echo_call(message: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message}}
    })
    .to_string()
}

/// POSTs one JSON-RPC message to `/mcp` the way a Streamable HTTP client must.
async fn post(agent: &Running, body: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/mcp", agent.bound.listen))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the MCP listener answers")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn rmcp_client_calls_tools_and_metrics_count_calls_but_no_sessions() {
    let agent = start_stateless(2, 128).await;
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
    let slept = call(
        &client,
        "work",
        json!({"sleep_ms": 50, "response_bytes": 300}),
    )
    .await
    .expect("sleep call");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "a 50 ms sleep call returned early"
    );
    assert_eq!(
        text(&slept).len(),
        300,
        "response_bytes sets the reply size"
    );

    let failed = call(&client, "work", json!({"fail": true}))
        .await
        .expect("a failing call still answers");
    assert_eq!(failed.is_error, Some(true), "fail=true is a tool error");

    match call(&client, "work", json!({"sleep_ms": 1_000_000})).await {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
            assert!(e.message.contains("sleep_ms"), "{}", e.message);
        }
        other => panic!("an out-of-range cost must be invalid params, got {other:?}"),
    }

    let metrics = scrape(agent.bound).await;
    let cases = [
        ("tools/call", "work", "", 1.0, "the sleep call succeeded"),
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
        (
            "initialize",
            "",
            "",
            1.0,
            "the handshake is still served and timed",
        ),
    ];
    for (method, tool, error_type, want, why) in cases {
        assert_eq!(
            operations(&metrics, method, tool, error_type),
            want,
            "{why}"
        );
    }
    assert_eq!(
        metrics.value("mcp_server_sessions_active", &[]),
        Some(0.0),
        "a stateless initialize opens no session"
    );
    let opened = metrics.family("mcp_server_sessions_total").map_or(0, |f| {
        f.samples
            .iter()
            .filter(|s| s.labels.iter().any(|(_, v)| v == CLIENT_NAME))
            .count()
    });
    assert_eq!(opened, 0, "no session is counted for this client");
    assert_eq!(
        metrics.value("mcp_queue_wait_seconds_count", &[("upstream", SERVER)]),
        Some(2.0),
        "the sleep and fail=true calls went through the pool"
    );
    assert_eq!(
        metrics.value("mcp_requests_in_flight", &[("upstream", SERVER)]),
        Some(0.0),
        "every per-request handler released its in-flight slot"
    );

    client.cancel().await.expect("a stateless client closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn raw_http_gets_json_answers_without_a_session_id() {
    let agent = start_stateless(1, 64).await;
    // (protocol version, reason)
    let versions = [
        (
            "2025-06-18",
            "the first version with the MCP-Protocol-Version header",
        ),
        (
            "2025-11-25",
            "the newest version with an initialize handshake",
        ),
    ];
    for (version, why) in versions {
        let init = post(&agent, initialize(version), &[]).await;
        assert_eq!(init.status(), 200, "{why}");
        assert_eq!(
            header(&init, "content-type"),
            Some("application/json"),
            "{why}"
        );
        assert_eq!(
            header(&init, "mcp-session-id"),
            None,
            "{why}: no session is handed out"
        );
        let answer: Value = init.json().await.expect("initialize answer is JSON");
        assert_eq!(answer["result"]["protocolVersion"], version, "{why}");

        // No session id and no prior initialize on this connection: any replica could answer.
        let called = post(
            &agent,
            echo_call(version),
            &[("mcp-protocol-version", version)],
        )
        .await;
        assert_eq!(called.status(), 200, "{why}");
        assert_eq!(
            header(&called, "content-type"),
            Some("application/json"),
            "{why}"
        );
        let answer: Value = called.json().await.expect("tools/call answer is JSON");
        assert_eq!(answer["id"], 2, "{why}");
        assert_eq!(answer["result"]["content"][0]["text"], version, "{why}");
    }

    let http = reqwest::Client::new();
    let url = format!("http://{}/mcp", agent.bound.listen);
    let standalone = http
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET answers");
    assert_eq!(
        standalone.status(),
        405,
        "no stream for server-initiated messages"
    );
    let closed = http.delete(&url).send().await.expect("DELETE answers");
    assert_eq!(closed.status(), 405, "there is no session to delete");

    let metrics = scrape(agent.bound).await;
    assert_eq!(operations(&metrics, "initialize", "", ""), 2.0);
    assert_eq!(operations(&metrics, "tools/call", "echo", ""), 2.0);
    assert_eq!(metrics.value("mcp_server_sessions_active", &[]), Some(0.0));
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn stateful_agent_still_requires_a_session() {
    let agent = start(config()).await;
    let init = post(&agent, initialize("2025-06-18"), &[]).await;
    assert_eq!(init.status(), 200);
    assert!(
        header(&init, "mcp-session-id").is_some(),
        "the default mode hands out a session"
    );
    assert_eq!(header(&init, "content-type"), Some("text/event-stream"));
    let orphan = post(
        &agent,
        echo_call("x"),
        &[("mcp-protocol-version", "2025-06-18")],
    )
    .await;
    assert!(
        orphan.status().is_client_error(),
        "a call outside any session is refused, got {}",
        orphan.status()
    );
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn pool_saturates_across_independent_requests() {
    let agent = start_stateless(1, 1).await;
    let client = connect(agent.bound).await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let peer = client.peer().clone();
            tokio::spawn(async move {
                let args = json!({"sleep_ms": 400})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                peer.call_tool(CallToolRequestParams::new("work").with_arguments(args))
                    .await
            })
        })
        .collect();
    let bound = agent.bound;
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape(bound)
                .await
                .value("mcp_queue_depth", &[("upstream", SERVER)])
                == Some(1.0)
        })
        .await,
        "one call runs and one waits, though each has its own handler"
    );
    match call(&client, "work", json!({})).await {
        Err(ServiceError::McpError(e)) => assert_eq!(e.code, ErrorCode(SATURATED_CODE)),
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
    assert_eq!(operations(&metrics, "tools/call", "work", ""), 2.0);
    assert_eq!(
        metrics.value("mcp_requests_in_flight", &[("upstream", SERVER)]),
        Some(0.0)
    );
    client.cancel().await.expect("client closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_refuses_every_new_request_and_finishes_in_flight_ones() {
    let mut agent = start_stateless(2, 128).await;
    let bound = agent.bound;
    let client = connect(bound).await;
    let peer = client.peer().clone();
    let in_flight = tokio::spawn(async move {
        let args = json!({"sleep_ms": 500})
            .as_object()
            .cloned()
            .unwrap_or_default();
        peer.call_tool(CallToolRequestParams::new("work").with_arguments(args))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.start_shutdown();

    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", bound.metrics);
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
    // A session id means nothing to a stateless agent, so it must not slip a request past the drain.
    for headers in [
        &[("mcp-protocol-version", "2025-06-18")][..],
        &[
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-session-id", "made-up"),
        ][..],
    ] {
        let refused = post(&agent, echo_call("late"), headers).await;
        assert_eq!(refused.status(), 503, "{headers:?}");
        assert_eq!(header(&refused, "retry-after"), Some("1"), "{headers:?}");
    }

    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight call finishes during the drain");
    assert_ne!(answer.is_error, Some(true));
    agent.stop().await.expect("drain ends cleanly");
}
