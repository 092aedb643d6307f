//! The meter's own listener: `/metrics`, `/healthz`, `/readyz`, and upstream inspection and draining.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::proxy::Proxy;
use crate::upstream::UpstreamState;

pub struct Admin {
    pub registry: Registry,
    /// The HTTP proxy whose upstreams this listener reports on; none in stdio mode.
    pub proxy: Option<Arc<Proxy>>,
    pub shutting_down: AtomicBool,
}

#[derive(Serialize)]
struct UpstreamStatus<'a> {
    url: &'a str,
    healthy: bool,
    draining: bool,
    /// Found through the registry rather than configured with --upstream.
    discovered: bool,
    /// No longer listed as healthy by the registry: existing sessions finish, no new ones start.
    withdrawn: bool,
    in_flight: usize,
    queued: usize,
    sessions: usize,
}

impl Admin {
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = request.uri().path();
        let answer = match (request.method(), path) {
            (&Method::GET, "/metrics") => {
                let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let scrape = mcpulse_telemetry::scrape(&self.registry, accept);
                let status = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                respond(status, scrape.content_type, scrape.body)
            }
            (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/readyz") => self.readiness(),
            (&Method::GET, "/upstreams") => self.upstream_list(),
            (&Method::POST, "/upstreams/drain") => self.set_draining(request.uri().query(), true),
            (&Method::POST, "/upstreams/undrain") => self.set_draining(request.uri().query(), false),
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found; try /metrics, /healthz, /readyz, /upstreams, POST /upstreams/drain?url=URL\n".into(),
            ),
        };
        Ok(answer)
    }

    fn upstreams(&self) -> Vec<Arc<UpstreamState>> {
        self.proxy
            .as_deref()
            .map(|proxy| proxy.upstreams.snapshot())
            .unwrap_or_default()
    }

    fn sessions_on(&self, upstream: usize) -> usize {
        self.proxy
            .as_deref()
            .and_then(|proxy| {
                proxy
                    .observer
                    .sessions
                    .lock()
                    .ok()
                    .map(|s| s.sessions_on(upstream))
            })
            .unwrap_or(0)
    }

    fn readiness(&self) -> Response<Full<Bytes>> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "shutting down\n".into(),
            );
        }
        let now = Instant::now();
        let upstreams = self.upstreams();
        if upstreams.is_empty()
            || upstreams
                .iter()
                .any(|u| !u.is_draining() && u.is_healthy(now))
        {
            respond(StatusCode::OK, "text/plain", "ready\n".into())
        } else {
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no healthy upstream accepts new sessions\n".into(),
            )
        }
    }

    fn upstream_list(&self) -> Response<Full<Bytes>> {
        let now = Instant::now();
        let upstreams = self.upstreams();
        let list: Vec<UpstreamStatus> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| UpstreamStatus {
                url: &u.label,
                healthy: u.is_healthy(now),
                draining: u.is_draining(),
                discovered: u.discovered,
                withdrawn: u.is_withdrawn(),
                in_flight: u.in_flight(),
                queued: u.queued(),
                sessions: self.sessions_on(i),
            })
            .collect();
        let body = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
        respond(StatusCode::OK, "application/json", body)
    }

    fn set_draining(&self, query: Option<&str>, draining: bool) -> Response<Full<Bytes>> {
        let url = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("url="))
            .map(percent_decode);
        let Some(url) = url else {
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "missing ?url=<upstream URL as listed by /upstreams>\n".into(),
            );
        };
        let url = url.trim_end_matches('/');
        match self.upstreams().iter().find(|u| &*u.label == url) {
            Some(upstream) => {
                upstream.set_draining(draining);
                respond(
                    StatusCode::OK,
                    "text/plain",
                    format!("{url} draining={draining}\n"),
                )
            }
            None => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("no upstream {url}; see GET /upstreams\n"),
            ),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Decodes `%XX` escapes of a query value; malformed escapes are kept literally.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_decode() {
        assert_eq!(
            percent_decode("http%3A%2F%2F127.0.0.1%3A3001"),
            "http://127.0.0.1:3001"
        );
        assert_eq!(percent_decode("http://a:1"), "http://a:1");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
