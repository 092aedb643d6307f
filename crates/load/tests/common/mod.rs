//! Test helpers: a probe MCP server that logs when each call arrives, and the sample agent, both in-process.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpulse_agent::{AgentConfig, AgentError, Bound};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct NapArgs {
    /// How long to sleep before answering, in milliseconds.
    pub ms: u64,
}

/// A server whose `nap` tool records its arrival time and then sleeps.
#[derive(Clone)]
struct Probe {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Probe {
    #[tool(description = "Record the arrival, sleep `ms` milliseconds, answer")]
    async fn nap(&self, Parameters(NapArgs { ms }): Parameters<NapArgs>) -> String {
        self.arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Instant::now());
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "rested".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Probe {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

pub struct ProbeServer {
    pub url: String,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ProbeServer {
    pub async fn start() -> Self {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let shared = Arc::clone(&arrivals);
        let service = StreamableHttpService::new(
            move || {
                Ok(Probe {
                    arrivals: Arc::clone(&shared),
                    tool_router: Probe::tool_router(),
                })
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the probe");
        let addr = listener.local_addr().expect("probe address");
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Self {
            url: format!("http://{addr}/mcp"),
            arrivals,
            stop,
            task,
        }
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

pub struct Agent {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Agent {
    pub async fn start() -> Self {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut config = AgentConfig::new(any, any);
        config.drain_timeout = Duration::from_secs(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel::<Bound>();
        let task = tokio::spawn(mcpulse_agent::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |bound| {
                let _ = bound_tx.send(bound);
            },
        ));
        let bound = bound_rx.await.expect("agent failed before binding");
        Self {
            url: format!("http://{}/mcp", bound.listen),
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Calls per whole second, counted from the first arrival.
pub fn per_second(arrivals: &[Instant]) -> Vec<usize> {
    let Some(first) = arrivals.iter().min().copied() else {
        return Vec::new();
    };
    let mut counts = Vec::new();
    for at in arrivals {
        let second = at.duration_since(first).as_secs() as usize;
        if counts.len() <= second {
            counts.resize(second + 1, 0);
        }
        counts[second] += 1;
    }
    counts
}
