//! A deliberately cheap MCP-shaped upstream, so a benchmark measures the proxy in front of it, not the server.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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
    /// Answers every POST with [`RESULT`], as JSON or as one SSE event (chosen by the `?sse` query).
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

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sse = request.uri().query() == Some("sse");
    // Read the whole request like a real server would before answering.
    let _ = request.into_body().collect().await;
    let (content_type, body) = if sse {
        (
            "text/event-stream",
            Bytes::from(format!("event: message\ndata: {RESULT}\n\n")),
        )
    } else {
        ("application/json", Bytes::from_static(RESULT.as_bytes()))
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
