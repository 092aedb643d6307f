//! The MCP server: the `work` and `echo` tools, and a handler that records every request it serves.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mcpulse_telemetry::{GaugeGuard, McpMetrics, SessionGuard, UpstreamMetrics};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    ErrorCode, Implementation, InitializeRequestParams, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, schemars, tool, tool_router};
use serde::Deserialize;

use crate::config::{CostDefaults, MAX_CPU_MS, MAX_RESPONSE_BYTES, MAX_SLEEP_MS};
use crate::pool::{Cost, FaultDice, Pool, PoolError};

/// JSON-RPC code of the saturation error: the implementation-defined server-error range.
pub const SATURATED_CODE: i32 = -32000;
/// `error.type` of a call refused because the pool was saturated, as the meter labels it.
const QUEUE_FULL: &str = "queue_full";
/// `error.type` of a request the client abandoned before it was answered.
const CANCELLED: &str = "cancelled";
/// `error.type` of a tool result with `isError: true`, per the MCP semantic conventions.
const TOOL_ERROR: &str = "tool_error";

/// State shared by every session.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: McpMetrics,
    pub(crate) pool_metrics: UpstreamMetrics,
    pub(crate) pool: Pool,
    pub(crate) dice: FaultDice,
    pub(crate) defaults: CostDefaults,
    pub(crate) server_info: Implementation,
    /// The tools, built once: stateless mode builds a handler per request, and building the router
    /// (a map of tools with their schemas) each time would be paid on every call.
    pub(crate) tools: ToolRouter<Agent>,
    /// Stateless Streamable HTTP: an `initialize` opens no session, so none is counted.
    pub(crate) stateless: bool,
}

/// Arguments of the `work` tool; every field left out takes the agent's default.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct WorkArgs {
    /// CPU to burn on a worker, in milliseconds (0 to 60000).
    pub cpu_ms: Option<u64>,
    /// Time to sleep holding the worker, in milliseconds (0 to 300000).
    pub sleep_ms: Option<u64>,
    /// Size of the response text in bytes (0 to 16777216).
    pub response_bytes: Option<u64>,
    /// Fail with a tool error; left out, the agent's error rate decides.
    pub fail: Option<bool>,
}

/// Arguments of the `echo` tool.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back unchanged.
    pub message: String,
}

/// One MCP session's handler. rmcp builds one per session and drops it when the session ends,
/// which is what ends the session in the metrics; stateless, it builds one per request.
#[derive(Debug)]
pub(crate) struct Agent {
    shared: Arc<Shared>,
    session: OnceLock<SessionGuard>,
    client_name: OnceLock<String>,
}

impl Agent {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            session: OnceLock::new(),
            client_name: OnceLock::new(),
        }
    }

    fn begin(&self, method: &'static str, tool: Option<&str>) -> Served<'_> {
        let metrics = &self.shared.metrics;
        metrics.record_client_operation(self.client_name.get().map(String::as_str), method, tool);
        Served {
            metrics,
            method,
            tool: tool.map(str::to_owned),
            started: Instant::now(),
            _in_flight: self.shared.pool_metrics.request_started(),
            recorded: false,
        }
    }
}

/// One request being served: records its duration once, as cancelled if it never finished.
struct Served<'a> {
    metrics: &'a McpMetrics,
    method: &'static str,
    tool: Option<String>,
    started: Instant,
    _in_flight: GaugeGuard,
    recorded: bool,
}

impl Served<'_> {
    fn end(mut self, error_type: Option<&str>) {
        self.record(error_type);
    }

    fn record(&mut self, error_type: Option<&str>) {
        if !self.recorded {
            self.recorded = true;
            self.metrics.record_operation(
                self.method,
                self.tool.as_deref(),
                error_type,
                self.started.elapsed(),
            );
        }
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.record(Some(CANCELLED));
    }
}

fn error_type(error: &McpError) -> &'static str {
    if error.code == ErrorCode(SATURATED_CODE) {
        QUEUE_FULL
    } else {
        mcpulse_wire::error_type(i64::from(error.code.0))
    }
}

fn outcome<T>(result: &Result<T, McpError>) -> Option<&'static str> {
    result.as_ref().err().map(error_type)
}

fn out_of_range(field: &str, value: u64, max: u64) -> McpError {
    McpError::invalid_params(format!("work: {field} is {value}; use 0 to {max}"), None)
}

#[tool_router(vis = "pub(crate)")]
impl Agent {
    /// Spends the requested cost on the bounded worker pool, then answers with `response_bytes` bytes.
    #[tool(
        description = "Burn CPU and sleep on a bounded worker pool, then reply with response_bytes bytes \
                          of text. Fields left out take the agent's defaults; fail=true returns a tool error."
    )]
    async fn work(
        &self,
        Parameters(args): Parameters<WorkArgs>,
    ) -> Result<CallToolResult, McpError> {
        let defaults = &self.shared.defaults;
        let cpu_ms = args.cpu_ms.unwrap_or(defaults.cpu_ms);
        let sleep_ms = args.sleep_ms.unwrap_or(defaults.sleep_ms);
        let response_bytes = args.response_bytes.unwrap_or(defaults.response_bytes);
        for (field, value, max) in [
            ("cpu_ms", cpu_ms, MAX_CPU_MS),
            ("sleep_ms", sleep_ms, MAX_SLEEP_MS),
            ("response_bytes", response_bytes, MAX_RESPONSE_BYTES),
        ] {
            if value > max {
                return Err(out_of_range(field, value, max));
            }
        }
        let fail = args.fail.unwrap_or_else(|| self.shared.dice.roll());
        let cost = Cost {
            cpu: Duration::from_millis(cpu_ms),
            sleep: Duration::from_millis(sleep_ms),
        };
        self.shared.pool.run(cost).await.map_err(|e| match e {
            PoolError::Saturated { workers, max_queue } => McpError::new(
                ErrorCode(SATURATED_CODE),
                e.to_string(),
                Some(serde_json::json!({"reason": QUEUE_FULL, "workers": workers, "maxQueue": max_queue})),
            ),
            PoolError::Worker(_) => McpError::internal_error(e.to_string(), None),
        })?;
        if fail {
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "work failed on purpose (fail=true or the agent's --error-rate); this is injected, not a fault",
            )]));
        }
        // Bounded above by MAX_RESPONSE_BYTES, so the cast cannot truncate on 32-bit targets either.
        let payload = "x".repeat(usize::try_from(response_bytes).unwrap_or(0));
        Ok(CallToolResult::success(vec![ContentBlock::text(payload)]))
    }

    /// Sends the message back; costs nothing and never queues.
    #[tool(description = "Reply with the given message unchanged; zero cost, never queued.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(args.message)])
    }
}

impl ServerHandler for Agent {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = self.shared.server_info.clone();
        info
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let served = self.begin("initialize", None);
        context.peer.set_peer_info(request.clone());
        let result = self.negotiate_initialize(&request);
        // Stateless, this handler lives for one request and the client's next request reaches a
        // fresh one (or another replica): a "session" would last microseconds and say nothing.
        if let Ok(answer) = &result
            && !self.shared.stateless
            && self.session.get().is_none()
        {
            let guard = self.shared.metrics.session_started(
                Some(&request.client_info.name),
                Some(answer.protocol_version.as_str()),
            );
            // A repeated initialize on one session keeps the first session record.
            let _ = self.session.set(guard);
            let _ = self.client_name.set(request.client_info.name.clone());
        }
        served.end(outcome(&result));
        result
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, McpError> {
        let served = self.begin("server/discover", None);
        let result = Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ));
        served.end(None);
        result
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.begin("ping", None).end(None);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let served = self.begin("tools/list", None);
        let result = ListToolsResult::with_all_items(self.shared.tools.list_all());
        served.end(None);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let served = self.begin("tools/call", Some(&request.name));
        let result = self
            .shared
            .tools
            .call(ToolCallContext::new(self, request, context))
            .await;
        let error_type = match &result {
            Err(e) => Some(error_type(e)),
            Ok(CallToolResponse::Complete(answer)) if answer.is_error == Some(true) => {
                Some(TOOL_ERROR)
            }
            Ok(_) => None,
        };
        served.end(error_type);
        result
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.shared.tools.get(name).cloned()
    }
}
