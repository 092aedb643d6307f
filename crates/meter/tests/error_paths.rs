//! What the meter answers when things go wrong: full queues, dead upstreams, oversized and malformed bodies.
//! Each answer is a JSON-RPC error carrying the request id, and each failure is counted.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{McpServer, Meter, value};

const OPERATION: &str = "mcp_server_operation_duration_seconds_count";

fn post(url: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
}

/// Opens a stateless JSON session-less exchange: initialize is not needed by rmcp in stateless mode for tools/call.
fn call(id: i64, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string()
}

#[tokio::test]
async fn a_dead_upstream_gives_502_with_the_request_id() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let meter = Meter::start(&[format!("http://{closed}")], |_| {}).await;
    let answer = post(&meter.mcp_url(), call(41, "echo", json!({"text": "x"})))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["id"], 41);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{body}"
    );
    let metrics = meter.scrape().await;
    let failed = value(
        &metrics,
        OPERATION,
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "echo"),
            ("error_type", "upstream_unavailable"),
        ],
    );
    assert_eq!(failed, 1.0);
    let upstream = format!("http://{closed}");
    let connect_errors = value(
        &metrics,
        "mcp_upstream_errors_total",
        &[("upstream", &upstream), ("error_type", "connect")],
    );
    assert_eq!(connect_errors, 1.0);
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413_and_never_reach_the_upstream() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| c.max_body = 1024).await;
    let big = call(1, "echo", json!({"text": "x".repeat(4096)}));
    let answer = post(&meter.mcp_url(), big).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-body"),
        "{body}"
    );
    let metrics = meter.scrape().await;
    let forwarded = metrics
        .family("mcp_requests_in_flight")
        .map_or(0, |f| f.samples.len());
    assert_eq!(
        value(
            &metrics,
            "mcp_requests_in_flight",
            &[("upstream", &server.url())]
        ),
        0.0
    );
    assert!(forwarded <= 1);
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_forwarded_and_counted_as_parse_error() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |_| {}).await;
    let answer = post(&meter.mcp_url(), "{not json").send().await.unwrap();
    // The upstream, not the meter, decides what to answer to garbage.
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(
        status.is_client_error() || text.contains("-32700"),
        "{status} {text}"
    );
    let metrics = meter.scrape().await;
    let parse_errors = value(
        &metrics,
        OPERATION,
        &[
            ("mcp_method_name", ""),
            ("gen_ai_tool_name", ""),
            ("error_type", "parse_error"),
        ],
    );
    assert_eq!(parse_errors, 1.0);
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_ids() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| {
        c.admission.max_concurrency = Some(1);
        c.admission.max_queue = 1;
        c.admission.queue_timeout = Duration::from_secs(30);
    })
    .await;
    let url = meter.mcp_url();
    // One call occupies the only slot, one waits in the only queue place.
    let slow = |id| tokio::spawn(post(&url, call(id, "sleep", json!({"ms": 1500}))).send());
    let first = slow(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = slow(2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batch = format!(
        "[{},{}]",
        call(3, "echo", json!({"text": "a"})),
        call(4, "echo", json!({"text": "b"}))
    );
    let rejected = post(&url, batch).send().await.unwrap();
    assert_eq!(rejected.status(), 503);
    assert!(rejected.headers().contains_key("retry-after"));
    let body: Value = rejected.json().await.unwrap();
    let ids: Vec<&Value> = body.as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(
        ids,
        [&json!(3), &json!(4)],
        "one error per request of the batch, ids kept"
    );

    let metrics = meter.scrape().await;
    let upstream = server.url();
    assert_eq!(
        value(&metrics, "mcp_queue_depth", &[("upstream", &upstream)]),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            "mcp_requests_in_flight",
            &[("upstream", &upstream)]
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            "mcp_queue_rejections_total",
            &[("upstream", &upstream), ("reason", "full")]
        ),
        1.0
    );

    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        second.await.unwrap().unwrap().status(),
        200,
        "the queued call is served once the slot frees"
    );
    let metrics = meter.scrape().await;
    assert_eq!(
        value(&metrics, "mcp_queue_depth", &[("upstream", &upstream)]),
        0.0
    );
    assert_eq!(
        value(
            &metrics,
            "mcp_queue_wait_seconds_count",
            &[("upstream", &upstream)]
        ),
        1.0
    );
    let slept = value(
        &metrics,
        OPERATION,
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "sleep"),
            ("error_type", ""),
        ],
    );
    assert_eq!(slept, 2.0);
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn a_queued_request_times_out_with_503() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| {
        c.admission.max_concurrency = Some(1);
        c.admission.queue_timeout = Duration::from_millis(200);
    })
    .await;
    let url = meter.mcp_url();
    let first = tokio::spawn(post(&url, call(1, "sleep", json!({"ms": 1000}))).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = post(&url, call(2, "echo", json!({"text": "late"})))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 503);
    let body: Value = late.json().await.unwrap();
    assert_eq!(body["id"], 2);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--queue-timeout"),
        "{body}"
    );
    first.await.unwrap().unwrap();
    let metrics = meter.scrape().await;
    let timeouts = value(
        &metrics,
        "mcp_queue_rejections_total",
        &[("upstream", &server.url()), ("reason", "timeout")],
    );
    assert_eq!(timeouts, 1.0);
    meter.stop().await.unwrap();
}
