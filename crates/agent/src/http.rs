//! The agent's HTTP surfaces besides MCP: `/metrics`, `/healthz`, `/readyz`, and the drain gate in front of `/mcp`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use mcpulse_telemetry::{Registry, scrape};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The header that ties a Streamable HTTP request to an existing session.
const SESSION_HEADER: &str = "mcp-session-id";

/// Where the agent is in its life: each step of a drain is one phase further.
#[derive(Debug, Default)]
pub(crate) struct Phase(AtomicU8);

const SERVING: u8 = 0;
const NOT_READY: u8 = 1;
const DRAINING: u8 = 2;

impl Phase {
    /// `/readyz` fails from now on, so load balancers stop sending new work.
    pub(crate) fn not_ready(&self) {
        self.0.fetch_max(NOT_READY, Ordering::AcqRel);
    }

    /// New sessions are refused from now on; existing sessions keep working.
    pub(crate) fn draining(&self) {
        self.0.fetch_max(DRAINING, Ordering::AcqRel);
    }

    fn ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == SERVING
    }

    fn refuses_new_sessions(&self) -> bool {
        self.0.load(Ordering::Acquire) >= DRAINING
    }
}

/// State of the metrics listener.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) registry: Arc<Registry>,
    pub(crate) phase: Arc<Phase>,
}

/// `/metrics`, `/healthz` and `/readyz`.
pub(crate) fn admin_router(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(admin)
}

async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let scrape = scrape(
        &admin.registry,
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    let status = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, scrape.content_type)],
        scrape.body,
    )
        .into_response()
}

async fn ready(State(admin): State<Admin>) -> Response {
    if admin.phase.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: this agent is shutting down\n",
        )
            .into_response()
    }
}

/// State of the gate in front of `/mcp`.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) phase: Arc<Phase>,
    /// One token per POST exchange until its response body is fully sent, so a drain waits for
    /// answers to reach clients rather than only for handlers to return.
    pub(crate) exchanges: TaskTracker,
    /// Stateless requests belong to no session, so a draining agent refuses all of them.
    pub(crate) stateless: bool,
}

/// In front of `/mcp`: once draining, a request that does not belong to a session (an
/// `initialize`) gets 503, so the client opens its session on another replica; stateless, every
/// new request gets 503, since any replica can answer it. Every POST is tracked until its
/// response has been sent.
pub(crate) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if gate.phase.refuses_new_sessions()
        && (gate.stateless || !request.headers().contains_key(SESSION_HEADER))
    {
        let refusal = if gate.stateless {
            "this agent is draining and accepts no new MCP requests; send this one to another replica\n"
        } else {
            "this agent is draining and accepts no new MCP sessions; connect to another replica\n"
        };
        let mut answer = (StatusCode::SERVICE_UNAVAILABLE, refusal).into_response();
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return answer;
    }
    // GET opens the long-lived standalone event stream, which never ends on its own; only POSTs
    // carry requests whose answers a drain must deliver.
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let token = gate.exchanges.token();
    next.run(request).await.map(|body| {
        Body::new(Tracked {
            body,
            _token: token,
        })
    })
}

/// A response body that holds its exchange's drain token until it is finished or dropped.
struct Tracked {
    body: Body,
    _token: TaskTrackerToken,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
