//! Gateway upstreams discovered from the mcpulse registry: its healthy instances become upstreams, instances that
//! leave it are withdrawn (their sessions finish, no new ones start).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::{Discovery, Upstream};
use crate::proxy::Proxy;

/// Largest instance list the meter reads per refresh (pages × page size), so a runaway registry cannot exhaust it.
const MAX_PAGES: usize = 100;
const PAGE_SIZE: usize = 1000;

#[derive(Deserialize)]
struct InstancePage {
    instances: Vec<Instance>,
    #[serde(default)]
    metadata: PageMetadata,
}

#[derive(Deserialize, Default)]
struct PageMetadata {
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Instance {
    endpoint: String,
}

/// Refreshes the gateway's upstreams every interval. A failed refresh keeps the current set: losing the registry
/// must not take every upstream away.
pub async fn run(discovery: Discovery, proxy: Arc<Proxy>) {
    // A general client: the registry is polled rarely, at an address that is not an upstream.
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: RegistryClient = Client::builder(TokioExecutor::new()).build(connector);
    let mut ticker = tokio::time::interval(discovery.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match fetch(&discovery, &client).await {
            Ok(listed) => {
                let changes = proxy.upstreams.reconcile(&listed);
                for url in &changes.added {
                    tracing::info!(upstream = %url, "discovered a new upstream in the registry");
                }
                for url in &changes.withdrawn {
                    tracing::info!(upstream = %url, "upstream left the registry's healthy list; withdrawing it");
                }
                for url in &changes.returned {
                    tracing::info!(upstream = %url, "upstream is healthy in the registry again");
                }
            }
            Err(error) => {
                tracing::warn!(registry = %discovery.registry, %error, "registry refresh failed; keeping the current upstreams")
            }
        }
    }
}

type RegistryClient = Client<HttpConnector, Full<Bytes>>;

async fn fetch(discovery: &Discovery, client: &RegistryClient) -> Result<Vec<Upstream>, String> {
    let mut upstreams = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let uri = page_uri(discovery, cursor.as_deref())?;
        let mut request = Request::get(uri).header(header::ACCEPT, "application/json");
        if let Some(token) = &discovery.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .map_err(|_| "the registry did not answer within 10 s".to_string())?
            .map_err(|e| format!("cannot reach the registry: {e}"))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 16 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| format!("reading the instance list failed: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "the registry answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let page: InstancePage =
            serde_json::from_slice(&body).map_err(|e| format!("unexpected instance list: {e}"))?;
        upstreams.extend(
            page.instances
                .iter()
                .filter_map(|i| upstream_of(&i.endpoint)),
        );
        match page.metadata.next_cursor {
            Some(next) if !next.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    upstreams.dedup();
    Ok(upstreams)
}

fn page_uri(discovery: &Discovery, cursor: Option<&str>) -> Result<Uri, String> {
    let base = discovery.registry.to_string();
    let mut uri = format!(
        "{}/api/v1/instances?state=healthy&limit={PAGE_SIZE}",
        base.trim_end_matches('/')
    );
    if let Some(name) = &discovery.server_name {
        uri += &format!("&serverName={}", encode(name));
    }
    if let Some(cursor) = cursor {
        uri += &format!("&cursor={}", encode(cursor));
    }
    uri.parse()
        .map_err(|e| format!("bad registry URL {uri}: {e}"))
}

/// An instance endpoint such as `http://10.0.0.7:3001/mcp` becomes the upstream `http://10.0.0.7:3001`: the meter
/// forwards the client's path unchanged, so clients use the same path the agents serve.
fn upstream_of(endpoint: &str) -> Option<Upstream> {
    let uri: Uri = endpoint.parse().ok()?;
    let base = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
    match Upstream::parse(&base) {
        Ok(upstream) => Some(upstream),
        Err(error) => {
            tracing::warn!(%endpoint, %error, "skipping a registry instance the meter cannot proxy to");
            None
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_upstream_bases() {
        // (endpoint, upstream, reason)
        let cases = [
            (
                "http://10.0.0.7:3001/mcp",
                Some("http://10.0.0.7:3001"),
                "path dropped: clients keep theirs",
            ),
            (
                "http://agent.ns.svc:8080",
                Some("http://agent.ns.svc:8080"),
                "no path",
            ),
            (
                "https://secure:443/mcp",
                None,
                "TLS upstreams are not supported",
            ),
            ("not a url", None, "garbage is skipped"),
        ];
        for (endpoint, expected, reason) in cases {
            assert_eq!(
                upstream_of(endpoint).map(|u| u.label()),
                expected.map(str::to_owned),
                "{reason}"
            );
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("io.example/weather"), "io.example%2Fweather");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
