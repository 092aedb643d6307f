//! Test helpers: start an agent in-process, connect a real rmcp client, scrape metrics.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcpulse_agent::{AgentConfig, AgentError, Bound, run};
use mcpulse_telemetry::exposition::Exposition;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CLIENT_NAME: &str = "agent-tests";

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

pub async fn call(
    client: &Client,
    tool: &'static str,
    args: serde_json::Value,
) -> Result<CallToolResult, ServiceError> {
    let args = args.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
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
