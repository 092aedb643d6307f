//! Test helpers: start an agent in-process, connect a real rmcp client, scrape metrics.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcpulse_agent::SATURATED_CODE;

use mcpulse_agent::{AgentConfig, AgentError, Bound, run};
use mcpulse_telemetry::exposition::Exposition;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, ErrorCode, Implementation};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CLIENT_NAME: &str = "agent-tests";
/// The agent's default server name, which labels its pool metrics.
pub const SERVER: &str = "io.mcpulse/agent";

pub fn config() -> AgentConfig {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    AgentConfig::new(any, any)
}

pub struct Running {
    pub bound: Bound,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Running {
    pub fn start_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn stop(mut self) -> Result<(), AgentError> {
        self.start_shutdown();
        self.task.await.expect("agent task panicked")
    }
}

pub async fn start(config: AgentConfig) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    let task = tokio::spawn(run(
        config,
        async move {
            let _ = stopped.await;
        },
        move |bound| {
            let _ = bound_tx.send(bound);
        },
    ));
    let bound = bound_rx.await.expect("agent failed before binding");
    Running {
        bound,
        stop: Some(stop),
        task,
    }
}

pub type Client = RunningService<RoleClient, ClientConfig>;

pub async fn connect(bound: Bound) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", bound.listen)),
    );
    let mut info = ClientConfig::default();
    info.client_info = Implementation::new(CLIENT_NAME, "0.0.0");
    info.serve(transport).await.expect("MCP session must open")
}

pub type Answer = Result<CallToolResult, ServiceError>;

fn request(tool: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().unwrap_or_default())
}

pub async fn call(client: &Client, tool: &'static str, args: serde_json::Value) -> Answer {
    client.call_tool(request(tool, args)).await
}

/// Calls `tool` from a task of its own, so the test can act while the call is in flight.
pub fn spawn_call(
    client: &Client,
    tool: &'static str,
    args: serde_json::Value,
) -> JoinHandle<Answer> {
    let peer = client.peer().clone();
    let request = request(tool, args);
    tokio::spawn(async move { peer.call_tool(request).await })
}

/// Awaits a call started with [`spawn_call`] and asserts that it answered without a tool error.
pub async fn succeeds(call: JoinHandle<Answer>, why: &str) {
    let answer = call.await.expect("call task").expect(why);
    assert_ne!(answer.is_error, Some(true), "{why}");
}

pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

pub async fn scrape(bound: Bound) -> Exposition {
    let body = reqwest::get(format!("http://{}/metrics", bound.metrics))
        .await
        .expect("metrics listener answers")
        .text()
        .await
        .expect("metrics body");
    Exposition::parse(&body).expect("exposition parses")
}

/// Count of the operation-duration histogram for one method/tool/error combination.
pub fn operations(exposition: &Exposition, method: &str, tool: &str, error_type: &str) -> f64 {
    exposition
        .value(
            "mcp_server_operation_duration_seconds_count",
            &[
                ("mcp_method_name", method),
                ("gen_ai_tool_name", tool),
                ("error_type", error_type),
            ],
        )
        .unwrap_or(0.0)
}

/// Opened-session counts of the sessions family for this test client; empty when none was counted.
fn sessions_opened(exposition: &Exposition) -> Vec<f64> {
    exposition
        .family("mcp_server_sessions_total")
        .map_or_else(Vec::new, |family| {
            family
                .samples
                .iter()
                .filter(|s| {
                    s.labels
                        .iter()
                        .any(|(k, v)| k == "client_name" && v == CLIENT_NAME)
                })
                .map(|s| s.value)
                .collect()
        })
}

/// Whether the transport mode opens a session per client, the one thing the tool scenario's
/// metrics differ on between the modes.
#[derive(Clone, Copy, Debug)]
pub enum Sessions {
    /// The default mode: `initialize` opens a session, counted until the client closes it.
    Counted,
    /// The stateless mode: `initialize` is answered and timed, but opens no session.
    None,
}

/// The scenario both transport modes must serve alike: list the tools, echo, and `work` calls that
/// sleep, burn CPU, size the reply, fail, and ask for more than the limits allow; then the
/// operation, pool and session metrics that count them, and the client closing.
pub async fn call_every_tool(bound: Bound, sessions: Sessions) {
    let client = connect(bound).await;

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
    assert_ne!(slept.is_error, Some(true));
    assert_eq!(
        text(&slept).len(),
        300,
        "response_bytes sets the reply size of a sleeping call"
    );

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
        .expect("a failing call still answers");
    assert_eq!(failed.is_error, Some(true), "fail=true is a tool error");

    // (arguments over a limit, what the error message must name)
    let too_big = [
        (json!({"cpu_ms": 1_000_000}), ["cpu_ms", "60000"]),
        (json!({"sleep_ms": 1_000_000}), ["sleep_ms", "300000"]),
    ];
    for (args, names) in too_big {
        match call(&client, "work", args).await {
            Err(ServiceError::McpError(e)) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
                assert!(
                    names.iter().all(|n| e.message.contains(n)),
                    "{names:?} in {}",
                    e.message
                );
            }
            other => panic!("an out-of-range cost must be invalid params, got {other:?}"),
        }
    }

    let metrics = scrape(bound).await;
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
            2.0,
            "the two out-of-range calls",
        ),
        ("tools/call", "echo", "", 1.0, "one echo"),
        ("tools/list", "", "", 1.0, "one listing"),
        (
            "initialize",
            "",
            "",
            1.0,
            "the handshake is served and timed in either mode",
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
        metrics.value("mcp_queue_wait_seconds_count", &[("upstream", SERVER)]),
        Some(4.0),
        "every work call that reached the pool waited (if only 0 s) for a worker"
    );
    assert_eq!(
        metrics.value("mcp_requests_in_flight", &[("upstream", SERVER)]),
        Some(0.0),
        "every handler released its in-flight slot"
    );
    assert_eq!(
        metrics.value("mcp_queue_depth", &[("upstream", SERVER)]),
        Some(0.0)
    );
    assert!(
        metrics
            .families
            .iter()
            .any(|f| f.name.starts_with("process_")),
        "the process collector is registered"
    );

    let (active, opened, why): (f64, &[f64], _) = match sessions {
        Sessions::Counted => (1.0, &[1.0], "the client holds the one session it opened"),
        Sessions::None => (0.0, &[], "a stateless initialize opens no session"),
    };
    assert_eq!(
        metrics.value("mcp_server_sessions_active", &[]),
        Some(active),
        "{why}"
    );
    assert_eq!(
        sessions_opened(&metrics),
        opened,
        "{why}: sessions counted for this client"
    );

    client.cancel().await.expect("the client closes");
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape(bound).await.value("mcp_server_sessions_active", &[]) == Some(0.0)
        })
        .await,
        "closing the client ends any session in the metrics"
    );
}

/// The saturation scenario for an agent with one worker and a queue of one: two slow calls fill
/// the worker and the queue, a third is refused at once with the saturation error, and the two
/// complete. Returns the client and the metrics scraped after.
pub async fn saturate(bound: Bound) -> (Client, Exposition) {
    let client = connect(bound).await;
    let slow: Vec<_> = (0..2)
        .map(|_| spawn_call(&client, "work", json!({"sleep_ms": 400})))
        .collect();
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape(bound)
                .await
                .value("mcp_queue_depth", &[("upstream", SERVER)])
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
        succeeds(task, "queued and running calls complete").await;
    }
    let metrics = scrape(bound).await;
    assert_eq!(
        operations(&metrics, "tools/call", "work", "queue_full"),
        1.0
    );
    assert_eq!(
        operations(&metrics, "tools/call", "work", ""),
        2.0,
        "the running and the queued call"
    );
    assert_eq!(
        metrics.value(
            "mcp_queue_rejections_total",
            &[("upstream", SERVER), ("reason", "full")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("mcp_requests_in_flight", &[("upstream", SERVER)]),
        Some(0.0)
    );
    (client, metrics)
}

/// Status of the agent's readiness endpoint.
pub async fn readyz(bound: Bound) -> Option<u16> {
    reqwest::get(format!("http://{}/readyz", bound.metrics))
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Starts a 500 ms call, begins the drain while it runs, and checks that readiness turns from ready
/// to failing. Returns the call for [`finish_drain`].
pub async fn drain_during_a_call(agent: &mut Running, client: &Client) -> JoinHandle<Answer> {
    assert_eq!(
        readyz(agent.bound).await,
        Some(200),
        "ready before the drain"
    );
    let in_flight = spawn_call(client, "work", json!({"sleep_ms": 500}));
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.start_shutdown();
    let bound = agent.bound;
    assert!(
        eventually(Duration::from_secs(2), async || {
            readyz(bound).await == Some(503)
        })
        .await,
        "readiness fails once draining starts"
    );
    in_flight
}

/// The call in flight when the drain began still succeeds, and the drain then ends cleanly.
pub async fn finish_drain(agent: Running, in_flight: JoinHandle<Answer>) {
    succeeds(in_flight, "the in-flight call finishes during the drain").await;
    agent.stop().await.expect("drain ends cleanly");
}

/// POSTs one JSON-RPC message to `/mcp` the way a Streamable HTTP client must.
pub async fn post(agent: &Running, body: String, headers: &[(&str, &str)]) -> reqwest::Response {
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

/// A raw `initialize` request for protocol `version`.
pub fn initialize(version: &str) -> String {
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

/// Polls `check` until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
