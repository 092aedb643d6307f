//! Worker threads: client connections are spread over them, and each borrows upstream connections of its own.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::Meter;

/// A keep-alive HTTP upstream that answers every POST with a JSON-RPC result and counts its connections.
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let service = service_fn(|_request: Request<Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                )));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (format!("http://{addr}"), accepted)
}

/// Opens `clients` keep-alive client connections and sends one request on each, one after another, so no two
/// requests ever overlap: upstream connections are only opened where no idle one may be borrowed.
async fn sequential_calls(meter: &Meter, clients: usize) -> Vec<reqwest::Client> {
    let mut open = Vec::new();
    for _ in 0..clients {
        let client = reqwest::Client::new();
        let answer = client
            .post(meter.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.bytes().await.unwrap();
        open.push(client);
    }
    open
}

#[tokio::test]
async fn each_worker_keeps_its_own_upstream_connections() {
    let polling = mcpulse_percore::MAX_BUSY_POLL;
    // (workers, busy polling, upstream connections expected after 4 client connections, reason)
    let cases = [
        (
            1,
            Duration::ZERO,
            1,
            "one worker reuses its one idle connection for every request",
        ),
        (
            2,
            Duration::ZERO,
            2,
            "client connections alternate between two workers, each opening one upstream connection and reusing it",
        ),
        (
            4,
            Duration::ZERO,
            4,
            "four workers take one client connection each and never borrow another worker's connection",
        ),
        (
            2,
            polling,
            2,
            "busy polling changes how a worker waits, not which connections it serves and reuses",
        ),
    ];
    for (workers, busy_poll, expected, reason) in cases {
        let (upstream, accepted) = counting_upstream().await;
        let meter = Meter::start(&[upstream], |c| {
            c.workers = workers;
            c.busy_poll = busy_poll;
        })
        .await;
        let clients = sequential_calls(&meter, 4).await;
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            expected,
            "{workers} workers: {reason}"
        );
        drop(clients);
        meter.stop().await.unwrap();
    }
}

#[tokio::test]
async fn zero_workers_is_refused_with_the_setting_named() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let mut config = mcpulse_meter::MeterConfig::http(
        addr,
        addr,
        vec![mcpulse_meter::Upstream::parse("http://127.0.0.1:1").unwrap()],
    );
    config.workers = 0;
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("workers"), "{error}");
}
