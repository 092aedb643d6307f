//! A real rmcp client and server talking through the meter: the traffic works unchanged and the metrics count
//! exactly the calls made.

mod support;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use support::{McpServer, Meter, value};

const OPERATION: &str = "mcp_server_operation_duration_seconds_count";

fn client_config(name: &str) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.client_info = Implementation::new(name, "1.2.3");
    config
}

async fn exercise(stateless_json: bool) {
    let server = McpServer::start(stateless_json).await;
    let meter = Meter::start(&[server.url()], |_| {}).await;

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(meter.mcp_url()),
    );
    let client = client_config("meter-test-client")
        .serve(transport)
        .await
        .expect("initialize through the meter");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 3, "tools/list passes through unchanged");
    for n in 0..3 {
        let args = serde_json::json!({ "text": format!("hello {n}") });
        let result = client
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        let text = serde_json::to_value(&result.content).unwrap();
        assert!(
            text.to_string().contains(&format!("hello {n}")),
            "the answer is relayed intact: {text}"
        );
    }
    let failed = client
        .call_tool(CallToolRequestParams::new("fail"))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));

    let metrics = meter.scrape().await;
    let calls = |tool: &str, error: &str| {
        value(
            &metrics,
            OPERATION,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", tool),
                ("error_type", error),
            ],
        )
    };
    assert_eq!(calls("echo", ""), 3.0);
    assert_eq!(calls("fail", "tool_error"), 1.0);
    let method = |name: &str| {
        value(
            &metrics,
            OPERATION,
            &[
                ("mcp_method_name", name),
                ("gen_ai_tool_name", ""),
                ("error_type", ""),
            ],
        )
    };
    assert_eq!(method("initialize"), 1.0);
    assert_eq!(method("tools/list"), 1.0);
    let sessions = if stateless_json { 0.0 } else { 1.0 };
    assert_eq!(value(&metrics, "mcp_server_sessions_active", &[]), sessions);
    // Without a session nothing ties a call to the initialize that named the client.
    let client_name = if stateless_json {
        ""
    } else {
        "meter-test-client"
    };
    let client_calls = value(
        &metrics,
        "mcp_server_client_operations_total",
        &[
            ("client_name", client_name),
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "echo"),
        ],
    );
    assert_eq!(
        client_calls, 3.0,
        "calls are attributed to the client application"
    );
    let requests = value(
        &metrics,
        "mcp_messages_total",
        &[
            ("direction", "client_to_server"),
            ("kind", "request"),
            ("mcp_method_name", "tools/call"),
        ],
    );
    assert_eq!(requests, 4.0);
    let in_flight = metrics
        .family("mcp_requests_in_flight")
        .map(|f| f.samples.iter().map(|s| s.value).sum::<f64>())
        .unwrap_or(-1.0);
    assert_eq!(in_flight, 0.0, "no request is left counted in flight");

    // Closing the client sends DELETE for the session, which ends it.
    client.cancel().await.unwrap();
    let metrics = meter.scrape().await;
    assert_eq!(value(&metrics, "mcp_server_sessions_active", &[]), 0.0);
    let ended = value(
        &metrics,
        "mcp_server_session_duration_seconds_count",
        &[("mcp_protocol_version", &protocol(&metrics))],
    );
    assert_eq!(ended, sessions);
    meter.stop().await.unwrap();
}

/// The protocol version the session negotiated, as the meter recorded it.
fn protocol(metrics: &mcpulse_telemetry::Exposition) -> String {
    metrics
        .family("mcp_server_sessions_total")
        .and_then(|f| f.samples.first())
        .and_then(|s| s.labels.iter().find(|(k, _)| k == "mcp_protocol_version"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn sse_responses_are_metered() {
    exercise(false).await;
}

#[tokio::test]
async fn json_responses_are_metered() {
    exercise(true).await;
}
