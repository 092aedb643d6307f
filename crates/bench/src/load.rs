//! Closed-loop HTTP load: N clients, each sending the next request as soon as the previous answer is read.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::cpu::CpuSplit;

/// A `tools/call` request with id 1, the shape most MCP traffic has.
pub(crate) const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;
/// Sent with every request, as a client does after `initialize`; a stateless server needs it to know the
/// protocol without a session.
const PROTOCOL_VERSION: &str = "2025-06-18";

#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Per-request latencies, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    pub errors: usize,
    /// CPU time spent during the measured run.
    pub cpu: CpuSplit,
}

impl LoadResult {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }

    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Runs `clients` concurrent closed loops POSTing `body` to `url` for `duration` after a warm-up. `read_cpu` is
/// called as the measured run starts and as it ends, and the difference kept in [`LoadResult::cpu`].
pub async fn closed_loop(
    url: &str,
    body: &'static str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    read_cpu: &dyn Fn() -> CpuSplit,
) -> LoadResult {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let _ = run(&client, url, body, clients, warmup).await;
    let before = read_cpu();
    let mut result = run(&client, url, body, clients, duration).await;
    result.cpu = read_cpu().since(before);
    result
}

async fn run(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: &'static str,
    clients: usize,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let request = Request::post(&url)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ACCEPT, "application/json, text/event-stream")
                    .header("mcp-protocol-version", PROTOCOL_VERSION)
                    .body(Full::new(Bytes::from_static(body.as_bytes())));
                let Ok(request) = request else { break };
                let sent = Instant::now();
                let ok = match client.request(request).await {
                    Ok(response) => {
                        response.status().is_success()
                            && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut result = LoadResult {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
        cpu: CpuSplit::default(),
    };
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            result.latencies.extend(latencies);
            result.errors += errors;
        }
    }
    result.elapsed = started.elapsed();
    result.latencies.sort_unstable();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let result = LoadResult {
            latencies: (1..=100).map(Duration::from_micros).collect(),
            elapsed: Duration::from_secs(1),
            errors: 0,
            cpu: CpuSplit::default(),
        };
        assert_eq!(result.percentile(50.0), Duration::from_micros(51));
        assert_eq!(result.percentile(99.0), Duration::from_micros(99));
        assert_eq!(result.percentile(100.0), Duration::from_micros(100));
        assert_eq!(result.throughput(), 100.0);
    }
}
