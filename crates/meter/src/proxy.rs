//! The request path of the HTTP meter, read top to bottom: bound the body, classify it, route it, admit it,
//! forward it, and relay the answer while observing it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use mcpulse_telemetry::{RejectionReason, SseStream, UpstreamErrorKind};
use mcpulse_wire::{Message, MessageKind, RequestId, SseParser};

use crate::body::{Exchange, Framing, JsonBody, MeteredBody, ProxyBody, exchange_key};
use crate::config::MeterConfig;
use crate::observe::Observer;
use crate::upstream::{UpstreamSet, UpstreamState};

pub const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
/// Longest session id the meter tracks; longer ones are forwarded but not followed.
const MAX_SESSION_ID: usize = 256;
/// JSON-RPC "server error" range code used for answers the meter gives on the upstream's behalf.
const METER_ERROR_CODE: i64 = -32000;

pub struct Proxy {
    pub config: MeterConfig,
    pub observer: Arc<Observer>,
    pub upstreams: UpstreamSet,
}

/// What the client sent, as far as the meter understands it.
struct Sent {
    messages: Vec<Message>,
    parse_failed: bool,
}

impl Sent {
    fn request_ids(&self) -> Vec<RequestId> {
        self.messages
            .iter()
            .filter(|m| m.kind == MessageKind::Request)
            .filter_map(|m| m.id.clone())
            .collect()
    }

    fn initialize(&self) -> Option<&Message> {
        self.messages
            .iter()
            .find(|m| m.kind == MessageKind::Request && m.method.as_deref() == Some("initialize"))
    }
}

impl Proxy {
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        Ok(self.forward(request).await.unwrap_or_else(|answer| answer))
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let received = Instant::now();
        let (mut parts, body) = request.into_parts();

        // Bound the request body in size and time before anything else looks at it.
        let body = self.read_body(&parts.headers, body).await?;

        // Classify it; malformed JSON is still forwarded, only counted.
        let sent = classify_request(&parts.method, &body);
        let session_id = session_id_of(&parts.headers);
        let filed_under = session_id.clone().unwrap_or_else(exchange_key);
        self.observer
            .client_messages(Some(&filed_under), &sent.messages, body.len(), received);
        let request_ids = sent.request_ids();

        // Route: a known session stays on its upstream; anything else goes to the least-loaded one.
        let Some((index, upstream)) = self.route(session_id.as_deref(), received) else {
            return Err(self.refuse(
                &sent,
                &filed_under,
                StatusCode::SERVICE_UNAVAILABLE,
                "no upstream is accepting new sessions",
                "no_upstream",
            ));
        };

        // Admit: only exchanges that carry requests take a concurrency slot or wait in the queue.
        let admitted = if request_ids.is_empty() {
            None
        } else {
            match upstream.admit().await {
                Ok(admitted) => Some(admitted),
                Err(rejection) => return Err(self.reject(&sent, &filed_under, rejection)),
            }
        };

        // Forward with the path unchanged below the upstream's base, end-to-end headers untouched.
        parts.uri = origin_form(&upstream.prefix, &parts.uri);
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST) {
            parts
                .headers
                .insert(header::HOST, upstream.pool.host().clone());
        }
        let method = parts.method.clone();
        let outgoing = Request::from_parts(parts, Full::new(body));
        let answered =
            tokio::time::timeout(self.config.upstream_timeout, upstream.pool.send(outgoing)).await;
        let (response, lease) = match answered {
            Ok(Ok(answered)) => {
                upstream.mark_healthy();
                answered
            }
            Ok(Err(error)) => {
                upstream.mark_unhealthy(Instant::now());
                let kind = if error.is_connect() {
                    UpstreamErrorKind::Connect
                } else {
                    UpstreamErrorKind::Protocol
                };
                upstream.metrics.record_upstream_error(kind);
                tracing::warn!(upstream = %upstream.label, %error, "upstream request failed");
                // A session lives on one upstream; if that upstream is gone (drained and stopped, or crashed), the
                // session is gone too. 404 is how MCP tells a client to start a new session, which the gateway
                // then places on a live upstream, so scale-in loses no call of a spec-following client.
                if error.is_connect()
                    && let Some(id) = &session_id
                    && self.observer.upstream_of(id, received).is_some()
                {
                    self.observer.session_closed(id, Instant::now());
                    let reason = format!(
                        "session {id} ended with its upstream {}; start a new session",
                        upstream.label
                    );
                    return Err(self.refuse(
                        &sent,
                        &filed_under,
                        StatusCode::NOT_FOUND,
                        &reason,
                        "session_lost",
                    ));
                }
                let reason = format!("upstream {} is unavailable", upstream.label);
                return Err(self.refuse(
                    &sent,
                    &filed_under,
                    StatusCode::BAD_GATEWAY,
                    &reason,
                    "upstream_unavailable",
                ));
            }
            Err(_) => {
                upstream
                    .metrics
                    .record_upstream_error(UpstreamErrorKind::Timeout);
                let reason = format!(
                    "upstream {} did not answer within {:?}",
                    upstream.label, self.config.upstream_timeout
                );
                return Err(self.refuse(
                    &sent,
                    &filed_under,
                    StatusCode::GATEWAY_TIMEOUT,
                    &reason,
                    "upstream_timeout",
                ));
            }
        };

        // Sessions: an initialize answer may open one; a DELETE or a 404 on a session ends it.
        let (mut response_parts, response_body) = response.into_parts();
        let now = Instant::now();
        match response_parts.status.as_u16() {
            400..=499 => upstream
                .metrics
                .record_upstream_error(UpstreamErrorKind::Status4xx),
            500..=599 => upstream
                .metrics
                .record_upstream_error(UpstreamErrorKind::Status5xx),
            _ => {}
        }
        // Only an initialize outside a session can open one: look at the response headers for nothing else.
        let created = match (&session_id, sent.initialize()) {
            (None, Some(initialize)) => session_id_of(&response_parts.headers).inspect(|new_id| {
                let client = initialize.client.as_ref().map(|c| c.name.clone());
                self.observer
                    .session_created(new_id.clone(), index, client, now);
            }),
            _ => None,
        };
        if let Some(id) = &session_id
            && (response_parts.status == StatusCode::NOT_FOUND
                || (method == Method::DELETE && response_parts.status.is_success()))
        {
            self.observer.session_closed(id, now);
        }
        if sent.parse_failed {
            self.observer.unparseable(received, now);
        }

        // Relay the answer as it arrives, observing JSON bodies and SSE events on the way.
        strip_hop_by_hop(&mut response_parts.headers);
        let exchange = Exchange {
            observer: self.observer.clone(),
            upstream: upstream.metrics.clone(),
            session: Some(filed_under),
            created,
            requests: request_ids,
            http_error: http_error_type(response_parts.status),
            framing: self.framing(&response_parts.headers, &method),
            _slot: admitted,
            complete: false,
        };
        let body = MeteredBody::new(response_body, exchange, lease);
        Ok(Response::from_parts(
            response_parts,
            ProxyBody::Relayed(body),
        ))
    }

    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Bytes, Response<ProxyBody>> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            let message = format!(
                "request body exceeds the meter's --max-body of {} bytes",
                self.config.max_body
            );
            json_rpc_answer(StatusCode::PAYLOAD_TOO_LARGE, &[], &message)
        };
        if declared.is_some_and(|len| len > self.config.max_body as u64) {
            return Err(too_large());
        }
        let collected = tokio::time::timeout(
            self.config.client_timeout,
            Limited::new(body, self.config.max_body).collect(),
        )
        .await;
        match collected {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
                Err(too_large())
            }
            Ok(Err(_)) => Err(json_rpc_answer(
                StatusCode::BAD_REQUEST,
                &[],
                "the request body could not be read",
            )),
            Err(_) => {
                let message = format!(
                    "the request body did not arrive within {:?}",
                    self.config.client_timeout
                );
                Err(json_rpc_answer(StatusCode::REQUEST_TIMEOUT, &[], &message))
            }
        }
    }

    fn route(&self, session_id: Option<&str>, now: Instant) -> Option<(usize, Arc<UpstreamState>)> {
        if let Some(index) = session_id.and_then(|id| self.observer.upstream_of(id, now))
            && let Some(upstream) = self.upstreams.get(index)
        {
            return Some((index, upstream));
        }
        let sessions = self.observer.sessions.lock().ok();
        self.upstreams
            .pick(|i| sessions.as_ref().map_or(0, |s| s.sessions_on(i)), now)
    }

    fn framing(&self, headers: &HeaderMap, method: &Method) -> Framing {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map_or(&b""[..], HeaderValue::as_bytes);
        if starts_with_ignore_case(content_type, b"text/event-stream") {
            let stream = if method == Method::GET {
                SseStream::Get
            } else {
                SseStream::Post
            };
            Framing::Sse {
                parser: SseParser::new(self.config.max_sse_event_bytes),
                events: Vec::new(),
                stream,
                _open: self.observer.metrics.sse_stream_opened(stream),
            }
        } else if starts_with_ignore_case(content_type, b"application/json") {
            Framing::Json {
                buffer: JsonBody::default(),
                limit: self.config.max_body,
                overflowed: false,
            }
        } else {
            Framing::Opaque
        }
    }

    fn reject(
        &self,
        sent: &Sent,
        filed_under: &Arc<str>,
        rejection: RejectionReason,
    ) -> Response<ProxyBody> {
        let (reason, error_type) = match rejection {
            RejectionReason::Full => ("the upstream's queue is full (--max-queue)", "queue_full"),
            RejectionReason::Timeout => (
                "the request waited too long in the upstream's queue (--queue-timeout)",
                "queue_timeout",
            ),
        };
        let mut answer = self.refuse(
            sent,
            filed_under,
            StatusCode::SERVICE_UNAVAILABLE,
            reason,
            error_type,
        );
        let retry_after = self.config.admission.queue_timeout.as_secs().max(1);
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        answer
    }

    /// Answers for the upstream: fails the exchange's requests in the metrics and returns JSON-RPC errors that
    /// carry their ids, so the client can tell which calls failed.
    fn refuse(
        &self,
        sent: &Sent,
        filed_under: &Arc<str>,
        status: StatusCode,
        reason: &str,
        error_type: &str,
    ) -> Response<ProxyBody> {
        let ids = sent.request_ids();
        let now = Instant::now();
        for id in &ids {
            self.observer.fail(Some(filed_under), id, error_type, now);
        }
        json_rpc_answer(status, &ids, &format!("mcpulse meter: {reason}"))
    }
}

fn classify_request(method: &Method, body: &Bytes) -> Sent {
    if method != Method::POST || body.is_empty() {
        return Sent {
            messages: Vec::new(),
            parse_failed: false,
        };
    }
    match mcpulse_wire::classify(body) {
        Ok(messages) => Sent {
            messages,
            parse_failed: false,
        },
        Err(_) => Sent {
            messages: Vec::new(),
            parse_failed: true,
        },
    }
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn session_id_of(headers: &HeaderMap) -> Option<Arc<str>> {
    let value = headers.get(&SESSION_HEADER)?.to_str().ok()?;
    (!value.is_empty() && value.len() <= MAX_SESSION_ID).then(|| Arc::from(value))
}

fn http_error_type(status: StatusCode) -> Option<&'static str> {
    // Bounded by construction: only the status classes, not every code a server might invent.
    match status.as_u16() {
        400..=499 => Some("http_4xx"),
        500..=599 => Some("http_5xx"),
        _ => None,
    }
}

/// The request target sent upstream: the client's path and query below the upstream's path prefix, in origin
/// form (the connection already goes to the upstream). HTTP/1 clients send exactly that when there is no prefix,
/// so the common case reuses their URI as it is.
pub fn origin_form(prefix: &str, incoming: &Uri) -> Uri {
    let path_and_query = incoming.path_and_query().map_or("/", PathAndQuery::as_str);
    if prefix.is_empty() && incoming.scheme().is_none() && incoming.authority().is_none() {
        return incoming.clone();
    }
    let joined = if prefix.is_empty() {
        PathAndQuery::try_from(path_and_query)
    } else {
        PathAndQuery::try_from(format!("{prefix}{path_and_query}"))
    };
    // Both parts were valid on their own, so the join is too; fall back to the root rather than panic.
    Uri::from(joined.unwrap_or_else(|_| PathAndQuery::from_static("/")))
}

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), besides those `Connection`
/// names and the legacy `Keep-Alive` (which has no constant).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive"
}

/// Removes headers that describe one connection rather than the message.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over their few headers is cheaper than eight hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// A JSON-RPC error answer: one error per request id (an array for several), or one with a null id.
pub fn json_rpc_answer(
    status: StatusCode,
    ids: &[RequestId],
    message: &str,
) -> Response<ProxyBody> {
    let body = match ids {
        [] => mcpulse_wire::error_response(None, METER_ERROR_CODE, message),
        [id] => mcpulse_wire::error_response(Some(id), METER_ERROR_CODE, message),
        many => {
            let mut batch = b"[".to_vec();
            for (n, id) in many.iter().enumerate() {
                if n > 0 {
                    batch.push(b',');
                }
                batch.extend(mcpulse_wire::error_response(
                    Some(id),
                    METER_ERROR_CODE,
                    message,
                ));
            }
            batch.push(b']');
            batch
        }
    };
    let mut response = Response::new(ProxyBody::Local(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_keeps_path_query_and_prefix() {
        // (base, incoming, expected, reason)
        let cases = [
            (
                "http://127.0.0.1:3001",
                "/mcp",
                "/mcp",
                "sidecar: path unchanged",
            ),
            (
                "http://127.0.0.1:3001/",
                "/mcp?x=1",
                "/mcp?x=1",
                "query kept, no double slash",
            ),
            (
                "http://h:1/prefix",
                "/mcp",
                "/prefix/mcp",
                "base path is a prefix",
            ),
            ("http://h:1/prefix/", "/", "/prefix/", "root under a prefix"),
            (
                "http://h:1",
                "http://meter:8080/mcp?x=1",
                "/mcp?x=1",
                "an HTTP/2 client's absolute form loses the meter's authority",
            ),
            (
                "http://h:1/prefix",
                "http://meter:8080/mcp",
                "/prefix/mcp",
                "absolute form under a prefix",
            ),
        ];
        for (base, incoming, expected, reason) in cases {
            let upstream = crate::config::Upstream::parse(base).unwrap();
            let target = origin_form(upstream.prefix(), &incoming.parse().unwrap());
            assert_eq!(target.to_string(), expected, "{reason}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go_end_to_end_headers_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(SESSION_HEADER, HeaderValue::from_static("abc"));
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(
            headers.contains_key(SESSION_HEADER) && headers.contains_key("mcp-protocol-version")
        );
        assert!(headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn refusal_carries_every_request_id() {
        let ids = [RequestId::Number(7), RequestId::String("b".into())];
        let answer = json_rpc_answer(StatusCode::SERVICE_UNAVAILABLE, &ids, "busy");
        let ProxyBody::Local(body) = answer.into_body() else {
            panic!("local answer expected")
        };
        let bytes = futures_body(body);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value[0]["id"], 7);
        assert_eq!(value[1]["id"], "b");
        assert_eq!(value[1]["error"]["code"], METER_ERROR_CODE);
    }

    fn futures_body(body: Full<Bytes>) -> Bytes {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { body.collect().await.unwrap().to_bytes() })
    }
}
