//! The agent as an MCP server: tools, cost, errors, saturation, metrics and drain, through a real rmcp client.

mod common;

use common::{
    Sessions, call, call_every_tool, config, connect, drain_during_a_call, finish_drain,
    initialize, operations, post, saturate, scrape, start,
};
use serde_json::json;

#[tokio::test]
async fn tools_honour_their_cost_and_metrics_count_every_call() {
    let mut config = config();
    config.workers = 2;
    let agent = start(config).await;
    call_every_tool(agent.bound, Sessions::Counted).await;
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
    let (client, _) = saturate(agent.bound).await;
    client.cancel().await.expect("session closes");
    agent.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_fails_readiness_refuses_new_sessions_and_finishes_calls() {
    let mut agent = start(config()).await;
    let client = connect(agent.bound).await;
    let in_flight = drain_during_a_call(&mut agent, &client).await;
    let fresh = post(&agent, initialize("2025-06-18"), &[]).await;
    assert_eq!(
        fresh.status(),
        503,
        "a draining agent opens no new sessions"
    );
    finish_drain(agent, in_flight).await;
}
