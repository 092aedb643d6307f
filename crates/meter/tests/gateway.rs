//! Gateway mode: new sessions spread over upstreams by load, a session stays on its upstream, and a drained
//! upstream takes no new sessions while its existing ones keep working.

mod support;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;
use support::{McpServer, Meter, value};

type Client = RunningService<rmcp::RoleClient, ()>;

async fn connect(meter: &Meter) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(meter.mcp_url()))
        .await
        .unwrap()
}

async fn echo(client: &Client, text: &str) -> String {
    let args = serde_json::json!({ "text": text });
    let result = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    serde_json::to_string(&result.content).unwrap()
}

async fn upstreams(meter: &Meter) -> Vec<Value> {
    let url = format!("http://{}/upstreams", meter.metrics);
    reqwest::get(url)
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

fn sessions(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|u| u["sessions"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn sessions_spread_stick_and_drain() {
    let (a, b) = (McpServer::start(false).await, McpServer::start(false).await);
    let meter = Meter::start(&[a.url(), b.url()], |_| {}).await;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&meter).await);
    }
    assert_eq!(
        sessions(&upstreams(&meter).await),
        [2, 2],
        "idle upstreams share new sessions evenly"
    );

    // Sessions are only known to the upstream that created them: if the meter mixed them up, calls would 404.
    for (n, client) in clients.iter().enumerate() {
        for round in 0..3 {
            let text = format!("client {n} round {round}");
            assert!(echo(client, &text).await.contains(&text));
        }
    }

    let drain = format!("http://{}/upstreams/drain?url={}", meter.metrics, a.url());
    assert_eq!(
        reqwest::Client::new()
            .post(drain)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let late = [connect(&meter).await, connect(&meter).await];
    let list = upstreams(&meter).await;
    assert_eq!(
        sessions(&list),
        [2, 4],
        "a draining upstream takes no new session"
    );
    assert_eq!(list[0]["draining"], true);
    for client in clients.iter().chain(&late) {
        assert!(
            echo(client, "still served").await.contains("still served"),
            "existing sessions keep working"
        );
    }

    let metrics = meter.scrape().await;
    let calls = value(
        &metrics,
        "mcp_server_operation_duration_seconds_count",
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "echo"),
            ("error_type", ""),
        ],
    );
    assert_eq!(calls, 12.0 + 6.0);
    assert_eq!(value(&metrics, "mcp_server_sessions_active", &[]), 6.0);
    for client in clients.into_iter().chain(late) {
        client.cancel().await.unwrap();
    }
    assert_eq!(
        sessions(&upstreams(&meter).await),
        [0, 0],
        "DELETE ends each session on its upstream"
    );
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn a_session_whose_upstream_is_gone_gets_404_so_the_client_starts_anew() {
    let (a, b) = (McpServer::start(false).await, McpServer::start(false).await);
    let meter = Meter::start(&[a.url(), b.url()], |_| {}).await;
    let http = reqwest::Client::new();
    let init = serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let answer = http
        .post(meter.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let session = answer.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = answer.bytes().await;
    let placed = sessions(&upstreams(&meter).await);
    let owner = if placed == [1, 0] { a } else { b };
    drop(owner);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let call = serde_json::json!({"jsonrpc":"2.0","id":7,"method":"tools/list"});
    let lost = http
        .post(meter.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(lost.status(), 404, "MCP's signal to re-initialize");
    let body: Value = lost.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(
        sessions(&upstreams(&meter).await).iter().sum::<u64>(),
        0,
        "the lost session is forgotten"
    );
    let fresh = connect(&meter).await;
    assert!(
        echo(&fresh, "again").await.contains("again"),
        "a new session lands on the live upstream"
    );
    fresh.cancel().await.unwrap();
    meter.stop().await.unwrap();
}
