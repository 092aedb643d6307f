//! Test helpers: a real rmcp MCP server, the meter in-process, and scraping its metrics.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::net::SocketAddr;
use std::time::Duration;

use mcpulse_meter::{MeterConfig, Upstream};
use mcpulse_telemetry::Exposition;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SleepRequest {
    pub ms: u64,
}

#[derive(Debug, Clone)]
pub struct TestServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestServer {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echo the text back")]
    fn echo(&self, Parameters(EchoRequest { text }): Parameters<EchoRequest>) -> String {
        text
    }

    #[tool(description = "Always fails at the tool level (isError: true)")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("this tool always fails")])
    }

    #[tool(description = "Sleep for `ms` milliseconds")]
    async fn sleep(&self, Parameters(SleepRequest { ms }): Parameters<SleepRequest>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A real rmcp streamable HTTP server on a loopback port, serving MCP at `/mcp`.
pub struct McpServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl McpServer {
    /// `stateless_json`: no sessions and plain JSON answers (rmcp only answers with JSON when stateless);
    /// otherwise sessions with SSE answers.
    pub async fn start(stateless_json: bool) -> Self {
        let stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(stop.child_token());
        config.json_response = stateless_json;
        config.legacy_session_mode = !stateless_json;
        let service: StreamableHttpService<TestServer, LocalSessionManager> =
            StreamableHttpService::new(|| Ok(TestServer::new()), Default::default(), config);
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled_owned().await })
                .await;
        });
        Self { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The meter running in-process on loopback ports.
pub struct Meter {
    pub proxy: SocketAddr,
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<i32, mcpulse_meter::MeterError>>,
}

impl Meter {
    pub async fn start(upstreams: &[String], tweak: impl FnOnce(&mut MeterConfig)) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let upstreams = upstreams
            .iter()
            .map(|u| Upstream::parse(u).unwrap())
            .collect();
        let mut config = MeterConfig::http(any, any, upstreams);
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let task = tokio::spawn(mcpulse_meter::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |bound| {
                let _ = bound_tx.send(bound);
            },
        ));
        let bound = bound_rx.await.expect("meter failed to start");
        Self {
            proxy: bound.proxy.unwrap(),
            metrics: bound.metrics,
            stop: Some(stop),
            task,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.proxy)
    }

    pub async fn scrape_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn scrape(&self) -> Exposition {
        let text = self.scrape_text().await;
        Exposition::parse(&text).unwrap_or_else(|e| panic!("unparseable exposition: {e}\n{text}"))
    }

    pub async fn stop(mut self) -> Result<i32, mcpulse_meter::MeterError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap()
    }
}

/// Reads a counter or gauge, or a histogram's `_count`, with the given labels; absent series read as 0.
pub fn value(metrics: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.value(name, labels).unwrap_or(0.0)
}
