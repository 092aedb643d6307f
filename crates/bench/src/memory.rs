//! The meter's resident memory while it holds many idle sessions and open SSE streams.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::BenchError;
use crate::meter::{free_addr, start_meter, wait_listening};
use crate::upstream::FastUpstream;

#[derive(Clone, Debug)]
pub struct MemoryReport {
    pub idle_rss_bytes: u64,
    pub loaded_rss_bytes: u64,
    pub sessions: usize,
    pub streams: usize,
    /// What the meter's own metrics said: (active sessions, open GET streams).
    pub metered: (f64, f64),
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Opens `sessions` sessions through the meter, then `streams` GET streams on the first of them, and reads the
/// meter's resident memory before and after.
pub async fn run_memory_bench(
    mcpulse: &std::path::Path,
    sessions: usize,
    streams: usize,
) -> Result<MemoryReport, BenchError> {
    let upstream = FastUpstream::start().await?;
    let (listen, metrics) = (free_addr()?, free_addr()?);
    let meter = start_meter(
        mcpulse,
        listen,
        metrics,
        upstream.addr,
        Duration::ZERO,
        None,
    )?;
    wait_listening(listen, "mcpulse meter").await?;
    let pid = meter.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss_bytes = rss_bytes(pid);

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let url = format!("http://{listen}/mcp");
    let mut ids = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"bench","version":"1"}}}}}}"#
        );
        let request = Request::post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError::Io {
                what: "build initialize".into(),
                source: std::io::Error::other(e),
            })?;
        let response = client.request(request).await.map_err(|e| BenchError::Io {
            what: "initialize through the meter".into(),
            source: std::io::Error::other(e),
        })?;
        if let Some(id) = response.headers().get("mcp-session-id").cloned() {
            ids.push(id);
        }
        let _ = response.into_body().collect().await;
    }
    let mut open = Vec::with_capacity(streams);
    for id in ids.iter().cycle().take(streams) {
        let request = Request::get(&url)
            .header(header::ACCEPT, "text/event-stream")
            .header("mcp-session-id", id.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|e| BenchError::Io {
                what: "build GET".into(),
                source: std::io::Error::other(e),
            })?;
        let response = client.request(request).await.map_err(|e| BenchError::Io {
            what: "open a GET stream".into(),
            source: std::io::Error::other(e),
        })?;
        // Holding the response keeps its stream, and its connection, open.
        open.push(response);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss_bytes = rss_bytes(pid);
    let text = fetch_text(metrics).await.unwrap_or_default();
    let metered = (
        metric(&text, "mcp_server_sessions_active"),
        metric(&text, "mcp_sse_streams_open{stream=\"get\"}"),
    );
    drop(open);
    Ok(MemoryReport {
        idle_rss_bytes,
        loaded_rss_bytes,
        sessions: ids.len(),
        streams,
        metered,
    })
}

/// Fetches /metrics with a bare hyper client (the bench crate has no other HTTP client).
async fn fetch_text(metrics: std::net::SocketAddr) -> Option<String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let uri = format!("http://{metrics}/metrics").parse().ok()?;
    let response = client.get(uri).await.ok()?;
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(bytes.to_vec()).ok()
}
