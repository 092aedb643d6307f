//! Zero-cost tool call round trip over loopback, client and agents in one process: the stateful
//! (session, SSE) and stateless (JSON) modes side by side, each through rmcp's default client (a new
//! TCP connection per request), through rmcp with a pooled HTTP client, and as a raw HTTP/1.1 POST on
//! one kept-alive connection, which separates rmcp's client overhead from the server's.
//!
//! The agents are driven by their own multi-threaded runtime, as the binary drives them, and serve MCP
//! connections on their connection threads (one single-threaded runtime each); the clients run on a
//! single-threaded runtime, as a separate client process with one connection would, so the agents' tasks
//! and the clients' never share a thread. `rmcp_pooled_shared_runtime` is the pooled rmcp client on the
//! runtime that drives the agents (their acceptor and metrics listener), for comparison.
//! `stateless_json_busy_poll` is the stateless agent with `--busy-poll 200us`, next to the one without.
//!
//! Criterion's `time` is a mean; the median (p50) is `median` in the row's `new/estimates.json` under
//! `target/criterion/tool_call_round_trip/`, e.g. `stateless_json_rmcp_pooled/echo/new/estimates.json`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mcpulse_agent::{AgentConfig, Bound, run};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, oneshot};

type Client = RunningService<RoleClient, ClientConfig>;

/// The busy-polling window of the `stateless_json_busy_poll` agent: longer than this client takes to read an
/// answer and send its next call.
const BUSY_POLL: Duration = Duration::from_micros(200);

/// Starts an agent that serves until the returned sender is dropped.
fn start(runtime: &Runtime, stateless: bool, busy_poll: Duration) -> (Bound, oneshot::Sender<()>) {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut config = AgentConfig::new(any, any);
    config.stateless = stateless;
    config.busy_poll = busy_poll;
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    runtime.spawn(run(
        config,
        async move {
            let _ = stopped.await;
        },
        move |bound| {
            let _ = bound_tx.send(bound);
        },
    ));
    let bound = runtime.block_on(bound_rx).expect("agent binds");
    (bound, stop)
}

/// An rmcp client of `bound`. `pooled: false` is rmcp's default HTTP client, which keeps no idle
/// connection and so opens a TCP connection per request; `pooled: true` keeps connections alive.
fn connect(runtime: &Runtime, bound: Bound, pooled: bool) -> Client {
    runtime.block_on(async {
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", bound.listen));
        let transport = if pooled {
            StreamableHttpClientTransport::with_client(reqwest::Client::new(), config)
        } else {
            StreamableHttpClientTransport::from_config(config)
        };
        ClientConfig::default()
            .serve(transport)
            .await
            .expect("client starts")
    })
}

/// One kept-alive HTTP/1.1 connection with Nagle off, as rmcp's reqwest client keeps one, and the
/// session it opened (`None` on a stateless agent, which takes calls without a handshake).
struct Raw {
    sender: Mutex<SendRequest<Full<Bytes>>>,
    authority: String,
    session: Option<String>,
}

const RAW_INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
const RAW_INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const RAW_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;

impl Raw {
    async fn open(bound: Bound, stateless: bool) -> Self {
        let stream = TcpStream::connect(bound.listen).await.expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        let mut raw = Self {
            sender: Mutex::new(sender),
            authority: bound.listen.to_string(),
            session: None,
        };
        if !stateless {
            let (headers, _) = raw.post(RAW_INITIALIZE).await;
            raw.session = headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert!(
                raw.session.is_some(),
                "a stateful agent hands out a session"
            );
            raw.post(RAW_INITIALIZED).await;
        }
        raw
    }

    /// POSTs one message and reads the whole answer (one JSON body, or an event stream that ends
    /// after the response).
    async fn post(&self, body: &'static [u8]) -> (hyper::HeaderMap, Bytes) {
        let mut request = hyper::Request::post("/mcp")
            .header("host", &self.authority)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let request = request
            .body(Full::new(Bytes::from_static(body)))
            .expect("valid request");
        let mut sender = self.sender.lock().await;
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("answer");
        assert!(response.status().is_success(), "{}", response.status());
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.headers, body)
    }

    async fn call(&self) {
        let (_, body) = self.post(RAW_CALL).await;
        let result = br#""result""#;
        assert!(
            body.windows(result.len()).any(|w| w == result),
            "unexpected answer {body:?}"
        );
    }
}

fn round_trip(c: &mut Criterion) {
    let agents = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (stateful, _stop_stateful) = start(&agents, false, Duration::ZERO);
    let (stateless, _stop_stateless) = start(&agents, true, Duration::ZERO);
    let (polling, _stop_polling) = start(&agents, true, BUSY_POLL);
    // (benchmark name prefix, agent, stateless)
    let modes = [
        ("stateful_sse", stateful, false),
        ("stateless_json", stateless, true),
    ];
    let mut clients = Vec::new();
    for (pooled, transport) in [(false, "rmcp_fresh_connections"), (true, "rmcp_pooled")] {
        for (mode, bound, _) in modes {
            let rmcp = connect(&runtime, bound, pooled);
            clients.push((format!("{mode}/{transport}"), rmcp, pooled, &runtime));
        }
    }
    // Busy polling only changes how the agent waits, so one pooled client shows it.
    let rmcp = connect(&runtime, polling, true);
    clients.push((
        "stateless_json_busy_poll/rmcp_pooled".to_owned(),
        rmcp,
        true,
        &runtime,
    ));
    for (mode, bound, _) in modes {
        let rmcp = connect(&agents, bound, true);
        clients.push((
            format!("{mode}/rmcp_pooled_shared_runtime"),
            rmcp,
            true,
            &agents,
        ));
    }

    let mut group = c.benchmark_group("tool_call_round_trip");
    for (tool, args) in [
        ("echo", serde_json::json!({"message": "hi"})),
        // `work` adds the worker pool's hand-off; measured once per mode.
        ("work", serde_json::json!({})),
    ] {
        let args = args.as_object().cloned().unwrap_or_default();
        for (mode, client, pooled, on) in &clients {
            if tool == "work" && !pooled {
                continue;
            }
            group.bench_function(BenchmarkId::new(mode.as_str(), tool), |b| {
                b.to_async(*on).iter(|| {
                    let request = CallToolRequestParams::new(tool).with_arguments(args.clone());
                    async move { client.call_tool(request).await.expect("call succeeds") }
                });
            });
        }
    }
    for (mode, bound, stateless) in
        modes
            .into_iter()
            .chain([("stateless_json_busy_poll", polling, true)])
    {
        let raw = runtime.block_on(Raw::open(bound, stateless));
        group.bench_function(BenchmarkId::new(format!("{mode}/raw_http"), "echo"), |b| {
            b.to_async(&runtime).iter(|| raw.call());
        });
    }
    group.finish();

    for (_, client, _, on) in clients {
        on.block_on(async { client.cancel().await.expect("client closes") });
    }
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
