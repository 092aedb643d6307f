//! Active health probing: each replica leases due instances and sends each an MCP `ping` over streamable HTTP.
//!
//! A probe is what a real client does: `initialize`, `notifications/initialized`, `ping`, then
//! `DELETE` of the session when the server handed one out. rmcp servers in their default
//! (session) mode refuse anything but `initialize` without a session id, so a bare `ping` would
//! fail against healthy servers. Leases in the database make sure that, with several replicas on
//! one PostgreSQL, each instance is probed by one replica per interval.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::RegistryError;
use crate::state::AppState;
use crate::storage::ProbeTarget;

/// The protocol version offered in `initialize`; servers answer with the one they speak.
const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// A probe answer is a few hundred bytes; anything this large is not an MCP server worth reading.
const MAX_ANSWER: usize = 1024 * 1024;
/// Claim rounds per interval: leases end a little before the interval so the holder's own next
/// round finds them due, and a round every eighth of it keeps the spacing within ±1/16.
const ROUNDS_PER_INTERVAL: u32 = 8;

/// How the prober runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// How often each instance is probed (by one replica).
    pub interval: Duration,
    /// Time one probe (all its requests) may take before it counts as failed.
    pub timeout: Duration,
    /// Largest random delay added before each claim round, so replicas do not claim in lockstep.
    pub jitter: Duration,
    /// Probes in flight at once per replica; instances beyond it wait for the next round.
    pub concurrency: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            jitter: Duration::from_millis(500),
            concurrency: 64,
        }
    }
}

impl ProbeSettings {
    pub fn validate(&self) -> Result<(), RegistryError> {
        let problem = if self.interval < Duration::from_millis(100) {
            Some(format!(
                "probe interval {:?} is below the 100ms minimum",
                self.interval
            ))
        } else if self.timeout.is_zero() || self.timeout >= self.interval {
            Some(format!(
                "probe timeout {:?} must be positive and shorter than the probe interval {:?}",
                self.timeout, self.interval
            ))
        } else if self.jitter > self.interval / 2 {
            Some(format!(
                "probe jitter {:?} must be at most half the probe interval {:?}",
                self.jitter, self.interval
            ))
        } else if self.concurrency == 0 {
            Some("probe concurrency must be at least 1".to_owned())
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(RegistryError::Config(p)))
    }

    /// Time between claim rounds, before jitter.
    fn round_every(&self) -> Duration {
        self.interval / ROUNDS_PER_INTERVAL
    }

    /// How long a claimed instance stays leased: half a round short of the interval.
    fn lease(&self) -> Duration {
        self.interval - self.round_every() / 2
    }
}

/// Why a probe failed; the label values of the probe metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the probe timeout.
    Timeout,
    /// The TCP connection or the HTTP exchange broke.
    Connect,
    /// The server answered with a non-success HTTP status.
    Http,
    /// The answer was not the JSON-RPC the MCP protocol requires.
    Protocol,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeResult {
    /// The server answered `ping`; `latency` is that request's round trip.
    Ok {
        latency: Duration,
    },
    Failed {
        failure: Failure,
        message: String,
    },
}

impl ProbeResult {
    /// A bounded label value for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::Failed { failure, .. } => match failure {
                Failure::Timeout => "timeout",
                Failure::Connect => "connect_error",
                Failure::Http => "http_error",
                Failure::Protocol => "protocol_error",
            },
        }
    }
}

fn failed(failure: Failure, message: impl Into<String>) -> ProbeResult {
    ProbeResult::Failed {
        failure,
        message: message.into(),
    }
}

/// A minimal MCP streamable-HTTP client that can only say hello and ping.
#[derive(Clone)]
pub struct McpPinger {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl McpPinger {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // One probe makes four requests; keeping the connection for them is enough.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(4)
            .build(connector);
        Self { client, timeout }
    }

    /// Probes the MCP endpoint at `endpoint` (an `http://` URL), never taking longer than the timeout.
    pub async fn ping(&self, endpoint: &str) -> ProbeResult {
        let uri: Uri = match endpoint.parse() {
            Ok(uri) => uri,
            Err(e) => return failed(Failure::Protocol, format!("endpoint is not a URI: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.exchange(uri)).await {
            Ok(Ok(latency)) => ProbeResult::Ok { latency },
            Ok(Err(result)) => result,
            Err(_) => failed(
                Failure::Timeout,
                format!("no answer within {:?}", self.timeout),
            ),
        }
    }

    async fn exchange(&self, uri: Uri) -> Result<Duration, ProbeResult> {
        let init = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcpulse-registry-prober", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let response = self.post(&uri, &init, None, None).await?;
        let session = response.headers().get(SESSION_HEADER).cloned();
        let answer = read_answer(response, 1).await?;
        let protocol = answer
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok())
            .ok_or_else(|| {
                failed(
                    Failure::Protocol,
                    format!(
                        "initialize answered without result.protocolVersion: {}",
                        brief(&answer)
                    ),
                )
            })?;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack = self
            .post(&uri, &initialized, session.as_ref(), Some(&protocol))
            .await?;
        drop(ack);
        let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        let start = Instant::now();
        let response = self
            .post(&uri, &ping, session.as_ref(), Some(&protocol))
            .await?;
        let answer = read_answer(response, 2).await?;
        let latency = start.elapsed();
        if !answer.get("result").is_some_and(Value::is_object) {
            return Err(failed(
                Failure::Protocol,
                format!("ping answered without a result object: {}", brief(&answer)),
            ));
        }
        if let Some(session) = session {
            // Closing the session frees the server's state for it; a server that does not allow
            // DELETE (405) lets it expire instead, which is not the probe's failure.
            let _ = self.delete(&uri, session, protocol).await;
        }
        Ok(latency)
    }

    async fn post(
        &self,
        uri: &Uri,
        body: &Value,
        session: Option<&HeaderValue>,
        protocol: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, ProbeResult> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        if let Some(session) = session {
            request = request.header(SESSION_HEADER, session);
        }
        if let Some(protocol) = protocol {
            request = request.header(PROTOCOL_HEADER, protocol);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| failed(Failure::Protocol, format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| failed(Failure::Connect, describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(
                Failure::Http,
                format!("{} answered HTTP {status}", body["method"]),
            ));
        }
        Ok(response)
    }

    async fn delete(
        &self,
        uri: &Uri,
        session: HeaderValue,
        protocol: HeaderValue,
    ) -> Result<StatusCode, hyper_util::client::legacy::Error> {
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(uri.clone())
            .header(SESSION_HEADER, session)
            .header(PROTOCOL_HEADER, protocol)
            .body(Full::new(Bytes::new()));
        match request {
            Ok(request) => Ok(self.client.request(request).await?.status()),
            // Every part came from a parsed URI and header values, so this is unreachable.
            Err(_) => Ok(StatusCode::BAD_REQUEST),
        }
    }
}

/// The error chain of a client failure in one line ("connection refused" sits in a source).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first 200 characters of a JSON value, for error messages.
fn brief(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

/// Reads the JSON-RPC message answering request `id` from a JSON or SSE response body.
async fn read_answer(response: Response<Incoming>, id: u64) -> Result<Value, ProbeResult> {
    let sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let protocol = |message: String| failed(Failure::Protocol, message);
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(failed(Failure::Connect, describe(&e))),
        };
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > MAX_ANSWER {
                return Err(protocol(format!("the answer exceeds {MAX_ANSWER} bytes")));
            }
            buffer.extend_from_slice(&data);
        }
        // An SSE stream may stay open after the answer (keep-alives), so stop at the answer.
        if sse && let Some(answer) = sse_answer(&buffer, id, false) {
            return Ok(answer);
        }
    }
    let found = if sse {
        sse_answer(&buffer, id, true)
    } else {
        serde_json::from_slice::<Value>(&buffer)
            .ok()
            .and_then(|v| matching(v, id))
    };
    found.ok_or_else(|| {
        protocol(format!(
            "no JSON-RPC answer with id {id} in the {} response",
            if sse { "SSE" } else { "JSON" }
        ))
    })
}

/// The message answering `id` in a JSON value that may be a batch.
fn matching(value: Value, id: u64) -> Option<Value> {
    match value {
        Value::Array(items) => items.into_iter().find_map(|v| matching(v, id)),
        Value::Object(ref map) if map.get("id").and_then(Value::as_u64) == Some(id) => Some(value),
        _ => None,
    }
}

/// Finds the answer to `id` among complete SSE events in `buffer` (the last, unterminated event
/// counts only when the stream ended).
fn sse_answer(buffer: &[u8], id: u64, ended: bool) -> Option<Value> {
    let text = String::from_utf8_lossy(buffer).replace("\r\n", "\n");
    let mut events: Vec<&str> = text.split("\n\n").collect();
    if !ended {
        // The part after the last blank line may still be arriving.
        events.pop();
    }
    events.into_iter().find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return None;
        }
        serde_json::from_str::<Value>(&data.join("\n"))
            .ok()
            .and_then(|v| matching(v, id))
    })
}

/// One replica's prober: claims due instances every round and probes them in the background.
pub struct Prober {
    state: AppState,
    settings: ProbeSettings,
    holder: String,
    pinger: McpPinger,
    permits: Arc<Semaphore>,
}

impl Prober {
    pub fn new(state: AppState, settings: ProbeSettings) -> Result<Self, RegistryError> {
        settings.validate()?;
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| {
            RegistryError::Config(format!("the operating system gave no random bytes: {e}"))
        })?;
        Ok(Self {
            pinger: McpPinger::new(settings.timeout),
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            holder: hex::encode(bytes),
            settings,
            state,
        })
    }

    /// The lease holder id this prober writes into the database.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Probes until `shutdown` completes; probes in flight then are abandoned (their leases lapse).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut probes = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let delay = self.settings.round_every() + random_up_to(self.settings.jitter);
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
            while probes.try_join_next().is_some() {}
            if let Err(e) = self.round(&mut probes).await {
                tracing::warn!(error = %e, "cannot claim instances to probe; retrying next round");
            }
        }
        probes.abort_all();
    }

    /// Claims as many due instances as there are free probe slots and starts probing them.
    async fn round(&self, probes: &mut JoinSet<()>) -> Result<(), RegistryError> {
        // Claiming no more than can start now means a lease never lapses while its probe waits.
        let free = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        if free == 0 {
            return Ok(());
        }
        let now = self.state.now();
        let lease_until = now + self.settings.lease();
        let live_since = self.state.options().health.cutoffs(now).gone_before;
        let targets = self
            .state
            .storage()
            .claim_probes(&self.holder, now, lease_until, live_since, free)
            .await?;
        for target in targets {
            // Only this task takes permits and it claimed at most the free ones, so this succeeds.
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                break;
            };
            let (state, pinger) = (self.state.clone(), self.pinger.clone());
            probes.spawn(async move {
                probe_one(&state, &pinger, target).await;
                drop(permit);
            });
        }
        Ok(())
    }
}

async fn probe_one(state: &AppState, pinger: &McpPinger, target: ProbeTarget) {
    let start = Instant::now();
    let result = pinger.ping(&target.endpoint).await;
    state
        .metrics()
        .observe_probe(result.label(), start.elapsed().as_secs_f64());
    let (ok, latency, error) = match &result {
        ProbeResult::Ok { latency } => (true, Some(*latency), None),
        ProbeResult::Failed { message, .. } => (false, None, Some(message.as_str())),
    };
    if let ProbeResult::Failed { message, .. } = &result {
        tracing::debug!(instance = %target.id, endpoint = %target.endpoint, %message, "probe failed");
    }
    let recorded = state
        .storage()
        .record_probe(&target.id, state.now(), ok, latency, error)
        .await;
    if let Err(e) = recorded {
        tracing::warn!(instance = %target.id, error = %e, "cannot record probe result");
    }
}

/// A uniformly random duration in `[0, max]`; zero when randomness is unavailable.
fn random_up_to(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    getrandom::u64().map_or(Duration::ZERO, |r| Duration::from_nanos(r % (nanos + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_answers() {
        let cases: [(&str, bool, Option<u64>, &str); 6] = [
            (
                "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n",
                false,
                Some(2),
                "one event",
            ),
            (
                "id: 0\nretry: 3000\ndata:\n\ndata: {\"id\":2,\"result\":{}}\n\n",
                false,
                Some(2),
                "rmcp's priming event comes first",
            ),
            (
                "data: {\"method\":\"notifications/message\"}\n\ndata: {\"id\":2,\"result\":{}}\r\n\r\n",
                false,
                Some(2),
                "notifications before the answer, CRLF lines",
            ),
            (
                "data: {\"id\":2,\"result\":{}}",
                false,
                None,
                "an unterminated event may be incomplete",
            ),
            (
                "data: {\"id\":2,\"result\":{}}",
                true,
                Some(2),
                "an unterminated event at the end of the stream counts",
            ),
            (
                "data: {\"id\":3,\"result\":{}}\n\n",
                true,
                None,
                "another request's answer",
            ),
        ];
        for (text, ended, want, why) in cases {
            let got = sse_answer(text.as_bytes(), 2, ended).and_then(|v| v["id"].as_u64());
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn settings_validation() {
        let ms = Duration::from_millis;
        let base = ProbeSettings::default();
        assert!(base.validate().is_ok());
        let cases = [
            (
                ProbeSettings {
                    interval: ms(50),
                    timeout: ms(10),
                    ..base.clone()
                },
                "interval too short",
            ),
            (
                ProbeSettings {
                    timeout: base.interval,
                    ..base.clone()
                },
                "timeout as long as the interval",
            ),
            (
                ProbeSettings {
                    timeout: Duration::ZERO,
                    ..base.clone()
                },
                "zero timeout",
            ),
            (
                ProbeSettings {
                    jitter: base.interval,
                    ..base.clone()
                },
                "jitter beyond half the interval",
            ),
            (
                ProbeSettings {
                    concurrency: 0,
                    ..base.clone()
                },
                "no probe slots",
            ),
        ];
        for (settings, why) in cases {
            assert!(settings.validate().is_err(), "{why}");
        }
    }

    #[test]
    fn leases_end_before_the_holders_next_round() {
        let settings = ProbeSettings::default();
        assert!(settings.lease() < settings.interval);
        assert!(settings.lease() + settings.round_every() / 2 >= settings.interval);
    }

    #[tokio::test]
    async fn unreachable_endpoints_fail_with_a_reason() {
        let pinger = McpPinger::new(Duration::from_millis(500));
        // Port 9 on loopback (discard) is closed on any test machine.
        let result = pinger.ping("http://127.0.0.1:9/mcp").await;
        assert_eq!(result.label(), "connect_error", "{result:?}");
        let result = pinger.ping("not a uri").await;
        assert_eq!(result.label(), "protocol_error", "{result:?}");
    }
}
