//! Streams through the meter: SSE events are relayed as they are produced (never held back), a response that
//! arrives on the session's GET stream still completes its operation, `Last-Event-ID` reaches the upstream, and
//! shutdown lets an in-flight call finish. The upstream here is a small hand-written streamable HTTP server,
//! because SDK servers do not let a test choose which stream carries a response.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use futures::StreamExt;
use support::{McpServer, Meter, value};
use tokio::sync::{Mutex, mpsc};

const SESSION: &str = "session-under-test";

type Events = mpsc::UnboundedSender<Result<Bytes, Infallible>>;

/// The GET stream's sender, so a POST handler can answer on it.
#[derive(Clone, Default)]
struct Upstream {
    get_stream: Arc<Mutex<Option<Events>>>,
}

fn sse(events: mpsc::UnboundedReceiver<Result<Bytes, Infallible>>) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("mcp-session-id", SESSION)
        .body(Body::from_stream(tokio_stream_from(events)))
        .unwrap()
}

fn tokio_stream_from(
    mut events: mpsc::UnboundedReceiver<Result<Bytes, Infallible>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::poll_fn(move |cx| events.poll_recv(cx))
}

async fn on_get(State(upstream): State<Upstream>, headers: HeaderMap) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    // Resumption: tell the client which event id it asked to resume after.
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        let note = format!(
            "id: 100\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"resumed_after\":\"{last}\"}}}}\n\n"
        );
        let _ = tx.send(Ok(Bytes::from(note)));
    }
    *upstream.get_stream.lock().await = Some(tx);
    sse(rx)
}

async fn on_post(State(upstream): State<Upstream>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let request: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = request["id"].clone();
    match request["method"].as_str() {
        Some("initialize") => Response::builder()
            .header("content-type", "application/json")
            .header("mcp-session-id", SESSION)
            .body(Body::from(
                serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"t","version":"1"}}}).to_string(),
            ))
            .unwrap(),
        // Two events a second apart on the POST's own stream.
        Some("tools/call") if request["params"]["name"] == "two_events" => {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let progress = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n";
                let _ = tx.send(Ok(Bytes::from(progress)));
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[]}});
                let _ = tx.send(Ok(Bytes::from(format!("data: {done}\n\n"))));
            });
            sse(rx)
        }
        // Accepted here, answered later on the GET stream.
        Some("tools/call") => {
            let stream = upstream.get_stream.lock().await.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let done = serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[],"isError":true}});
                if let Some(stream) = stream {
                    let _ = stream.send(Ok(Bytes::from(format!("id: 7\ndata: {done}\n\n"))));
                }
            });
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
        _ => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
    }
}

async fn start_upstream() -> String {
    let app = axum::Router::new()
        .route("/mcp", post(on_post).get(on_get))
        .with_state(Upstream::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn rpc(client: &reqwest::Client, url: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", SESSION)
        .body(body.to_string())
}

#[tokio::test]
async fn sse_events_are_relayed_as_they_arrive() {
    let meter = Meter::start(&[start_upstream().await], |_| {}).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let call = serde_json::json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"two_events"}});
    let response = rpc(&client, &meter.mcp_url(), call).send().await.unwrap();
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_after = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    assert!(
        first_after < Duration::from_millis(800),
        "the first event waited {first_after:?}: the meter buffered the stream"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("\"id\":5"));
    assert!(started.elapsed() >= Duration::from_secs(1));
    let metrics = meter.scrape().await;
    let timed = metrics.value(
        "mcp_server_operation_duration_seconds_sum",
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "two_events"),
            ("error_type", ""),
        ],
    );
    assert!(
        timed.is_some_and(|seconds| seconds >= 1.0),
        "the operation lasts until its response event: {timed:?}"
    );
    assert_eq!(
        value(&metrics, "mcp_sse_events_total", &[("stream", "post")]),
        2.0
    );
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn a_response_on_the_get_stream_completes_the_operation_and_resumption_passes_through() {
    let meter = Meter::start(&[start_upstream().await], |_| {}).await;
    let client = reqwest::Client::new();
    let url = meter.mcp_url();
    let init = serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"streams-test","version":"1"}}});
    let initialized = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(initialized.headers()["mcp-session-id"], SESSION);
    let _ = initialized.bytes().await;

    let get = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", SESSION)
        .header("last-event-id", "41")
        .send()
        .await
        .unwrap();
    let mut events = get.bytes_stream();
    let resumed = events.next().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&resumed).contains("\"resumed_after\":\"41\""),
        "Last-Event-ID reached the upstream"
    );

    let call = serde_json::json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"deferred"}});
    assert_eq!(rpc(&client, &url, call).send().await.unwrap().status(), 202);
    let answer = events.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&answer).contains("\"id\":9"));
    // The meter sees the event just before relaying it; give the scrape no chance to race it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let metrics = meter.scrape().await;
    let deferred = value(
        &metrics,
        "mcp_server_operation_duration_seconds_count",
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "deferred"),
            ("error_type", "tool_error"),
        ],
    );
    assert_eq!(
        deferred, 1.0,
        "the answer on the GET stream was matched to the POSTed request"
    );
    assert_eq!(
        value(&metrics, "mcp_sse_streams_open", &[("stream", "get")]),
        1.0
    );
    drop(events);
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish_and_refuses_new_connections() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| {
        c.shutdown_grace = Duration::from_secs(5)
    })
    .await;
    let url = meter.mcp_url();
    let call = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":700}}});
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .post(url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(call.to_string())
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let proxy = meter.proxy;
    let stopping = tokio::spawn(meter.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "no new connections after shutdown starts"
    );
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200, "the in-flight call finished");
    assert!(answer.text().await.unwrap().contains("slept 700 ms"));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| {
        c.upstream_timeout = Duration::from_millis(300)
    })
    .await;
    let call = serde_json::json!({"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"sleep","arguments":{"ms":2000}}});
    let answer = reqwest::Client::new()
        .post(meter.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 504);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["id"], "slow-1");
    let metrics = meter.scrape().await;
    let upstream = server.url();
    assert_eq!(
        value(
            &metrics,
            "mcp_upstream_errors_total",
            &[("upstream", &upstream), ("error_type", "timeout")]
        ),
        1.0
    );
    meter.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = McpServer::start(true).await;
    let meter = Meter::start(&[server.url()], |c| {
        c.client_timeout = Duration::from_millis(300)
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(meter.proxy).await.unwrap();
    let head = "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    meter.stop().await.unwrap();
}
