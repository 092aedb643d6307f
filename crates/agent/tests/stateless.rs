//! The agent in stateless mode (and stateless protocol requests to a stateful agent): plain JSON answers, no sessions, shared pool and drain, through a real rmcp client and raw HTTP.

mod common;

use common::{
    Running, Sessions, call_every_tool, config, connect, drain_during_a_call, finish_drain,
    initialize, operations, post, saturate, scrape, start,
};
use serde_json::{Value, json};

async fn start_stateless(workers: usize, max_queue: usize) -> Running {
    let mut config = config();
    config.stateless = true;
    config.workers = workers;
    config.max_queue = max_queue;
    start(config).await
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

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn rmcp_client_calls_tools_and_metrics_count_calls_but_no_sessions() {
    let agent = start_stateless(2, 128).await;
    call_every_tool(agent.bound, Sessions::None).await;
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
    // Each stateless request gets its own handler, yet all of them share the one pool.
    let agent = start_stateless(1, 1).await;
    let (client, _) = saturate(agent.bound).await;
    client.cancel().await.expect("client closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_refuses_every_new_request_and_finishes_in_flight_ones() {
    let mut agent = start_stateless(2, 128).await;
    let client = connect(agent.bound).await;
    let in_flight = drain_during_a_call(&mut agent, &client).await;
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
    finish_drain(agent, in_flight).await;
}

#[tokio::test]
async fn a_stateful_agent_serves_a_sessionless_protocol_client_without_counting_a_session() {
    // 2026-07-28 has no initialize: the lifecycle rides in every request's `_meta`, and rmcp serves such
    // requests statelessly even on a stateful agent.
    let agent = start(config()).await;
    let call = json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": {"message": "sessionless"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "draft-client", "version": "1"}
            }
        }
    })
    .to_string();
    for _ in 0..3 {
        let called = post(
            &agent,
            call.clone(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
        assert_eq!(called.status(), 200);
        assert_eq!(header(&called, "mcp-session-id"), None, "no session");
        let text = called.text().await.expect("answer");
        assert!(text.contains("sessionless"), "{text}");
    }
    let metrics = scrape(agent.bound).await;
    assert_eq!(operations(&metrics, "tools/call", "echo", ""), 3.0);
    assert_eq!(metrics.value("mcp_server_sessions_active", &[]), Some(0.0));
    // A session, however short, would show as a started-sessions counter and an ended-session duration.
    let session_samples: Vec<String> = metrics
        .families
        .iter()
        .flat_map(|family| &family.samples)
        .filter(|s| {
            s.value > 0.0
                && (s.name == "mcp_server_sessions_total"
                    || s.name == "mcp_server_session_duration_seconds_count")
        })
        .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
        .collect();
    assert!(
        session_samples.is_empty(),
        "three requests without a handshake open no session: {session_samples:?}"
    );
    agent.stop().await.expect("clean shutdown");
}
