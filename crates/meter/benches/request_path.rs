//! One `tools/call` JSON round trip on loopback, straight to a minimal upstream and through the meter, side by side.
//!
//! Wall-clock time on a shared machine moves with its load; compare the two in one run (their difference is what
//! the meter adds), and count instructions with `mcpulse-bench`'s `meter_instructions` for a load-proof figure.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpulse_meter::{MeterConfig, Upstream};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#;

/// An upstream that answers every request with [`RESULT`] at once, so the timing is the path, not the server.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = service_fn(|request: Request<Incoming>| async move {
                let _ = request.into_body().collect().await;
                let mut response = Response::new(Full::new(Bytes::from_static(RESULT.as_bytes())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

async fn meter(upstream: SocketAddr) -> SocketAddr {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let upstream = Upstream::parse(&format!("http://{upstream}")).unwrap();
    let config = MeterConfig::http(any, any, vec![upstream]);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(mcpulse_meter::run(
        config,
        std::future::pending(),
        move |bound| {
            let _ = bound_tx.send(bound);
        },
    ));
    bound_rx.await.unwrap().proxy.unwrap()
}

/// One keep-alive connection, as a busy client holds.
async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn call(sender: &mut SendRequest<Full<Bytes>>) -> usize {
    sender.ready().await.unwrap();
    let request = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Full::new(Bytes::from_static(CALL.as_bytes())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert!(response.status().is_success());
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

fn round_trip(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let (mut direct, mut metered) = runtime.block_on(async {
        let upstream = upstream().await;
        let meter = meter(upstream).await;
        (connect(upstream).await, connect(meter).await)
    });
    let mut group = c.benchmark_group("tools_call_json");
    group.bench_function("direct", |b| b.iter(|| runtime.block_on(call(&mut direct))));
    group.bench_function("through_meter", |b| {
        b.iter(|| runtime.block_on(call(&mut metered)))
    });
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
