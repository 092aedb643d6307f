//! A deliberately cheap MCP-shaped upstream, so a benchmark measures the proxy in front of it, not the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::BenchError;

/// The JSON-RPC answer every call gets: a `tools/call` result for id 1.
const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#;

pub struct FastUpstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FastUpstream {
    pub async fn start() -> Result<Self, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| BenchError::Io {
                what: "bind the upstream".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| BenchError::Io {
            what: "upstream address".into(),
            source,
        })?;
        let task = tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .into_owned();
                tokio::spawn(connection);
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for FastUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type AnswerBody = BoxBody<Bytes, Infallible>;

/// Answers every POST at once with [`RESULT`], as JSON or as one SSE event (chosen by the `?sse` query); an
/// `initialize` also opens a session (an `Mcp-Session-Id` header). A GET opens a server-sent event stream that
/// stays open and silent, like an idle client's notification stream.
async fn answer(request: Request<Incoming>) -> Result<Response<AnswerBody>, Infallible> {
    static SESSIONS: AtomicU64 = AtomicU64::new(0);
    if request.method() == Method::GET {
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(Silent)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        return Ok(response);
    }
    let sse = request.uri().query() == Some("sse");
    // Read the whole request like a real server would before answering.
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let initialize = body.windows(12).any(|w| w == b"\"initialize\"");
    let (content_type, body) = if initialize {
        ("application/json", initialize_result(&body))
    } else if sse {
        (
            "text/event-stream",
            Bytes::from(format!("event: message\ndata: {RESULT}\n\n")),
        )
    } else {
        ("application/json", Bytes::from_static(RESULT.as_bytes()))
    };
    let mut response = Response::new(BodyExt::boxed(Full::new(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if initialize {
        let id = SESSIONS.fetch_add(1, Ordering::Relaxed);
        if let Ok(value) = header::HeaderValue::from_str(&format!("bench-session-{id}")) {
            headers.insert("mcp-session-id", value);
        }
    }
    Ok(response)
}

/// An initialize result answering the request's own id, so the meter can pair them.
fn initialize_result(request: &[u8]) -> Bytes {
    let id = serde_json::from_slice::<serde_json::Value>(request)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let result = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "bench", "version": "1"}}
    });
    Bytes::from(result.to_string())
}

/// A body stream that never yields: the connection stays open until the client leaves.
struct Silent;

impl futures_core::Stream for Silent {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Pending
    }
}
