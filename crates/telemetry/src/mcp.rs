//! MCP traffic metrics, named after the OpenTelemetry MCP semantic conventions mapped to Prometheus.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::cache::SeriesCache;
use crate::guard::{CardinalityLimits, LabelGuard};

/// `mcp.server.operation.duration` advisory buckets from the semconv (10 ms .. 300 s), with 1, 2.5
/// and 5 ms prepended: a proxy sees many sub-10 ms calls (ping, tools/list, cached reads) that the
/// semconv scale would lump into one bucket. Keeping every semconv bound keeps queries portable.
pub const OPERATION_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0,
];

/// `mcp.server.session.duration` advisory buckets from the semconv (10 ms .. 1 day).
pub const SESSION_BUCKETS: [f64; 15] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21600.0,
    86400.0,
];

/// Message sizes, 64 B .. 16 MiB in powers of four: JSON-RPC messages run from a tiny ping to
/// multi-megabyte resource reads.
pub const MESSAGE_SIZE_BUCKETS: [f64; 10] = [
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// Admission-queue waits, 0.5 ms .. 30 s: a healthy queue drains in milliseconds, a saturated one
/// hits the queue timeout (seconds).
pub const QUEUE_WAIT_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Which way a JSON-RPC message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the MCP client to the MCP server.
    ClientToServer,
    /// From the MCP server to the MCP client.
    ServerToClient,
}

/// What a JSON-RPC message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Has a method and an id.
    Request,
    /// Has a method and no id.
    Notification,
    /// Has a result.
    Response,
    /// Has an error.
    Error,
}

/// Which Streamable HTTP stream carries server-sent events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SseStream {
    /// The response stream of a POST.
    Post,
    /// The standalone GET stream.
    Get,
}

/// Why the admission queue turned a request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionReason {
    /// The queue was at capacity.
    Full,
    /// The request waited longer than the queue timeout.
    Timeout,
}

/// How a call to an upstream MCP server failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The connection could not be established.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// The answer was not valid HTTP or JSON-RPC.
    Protocol,
    /// The upstream answered with a 4xx status.
    Status4xx,
    /// The upstream answered with a 5xx status.
    Status5xx,
    /// The connection broke mid-response.
    Reset,
}

impl UpstreamErrorKind {
    const ALL: [Self; 6] = [
        Self::Connect,
        Self::Timeout,
        Self::Protocol,
        Self::Status4xx,
        Self::Status5xx,
        Self::Reset,
    ];
}

// Label values are the snake_case wire names, not the Rust variant names.
impl Direction {
    /// The label value written to the exposition.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl MessageKind {
    /// The label value written to the exposition.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Request => "request",
            MessageKind::Notification => "notification",
            MessageKind::Response => "response",
            MessageKind::Error => "error",
        }
    }
}

impl EncodeLabelValue for MessageKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl SseStream {
    /// The label value written to the exposition.
    pub fn as_str(self) -> &'static str {
        match self {
            SseStream::Post => "post",
            SseStream::Get => "get",
        }
    }
}

impl EncodeLabelValue for SseStream {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl RejectionReason {
    /// The label value written to the exposition.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::Full => "full",
            RejectionReason::Timeout => "timeout",
        }
    }
}

impl EncodeLabelValue for RejectionReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl UpstreamErrorKind {
    /// The label value written to the exposition.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Status4xx => "status_4xx",
            UpstreamErrorKind::Status5xx => "status_5xx",
            UpstreamErrorKind::Reset => "reset",
        }
    }
}

impl EncodeLabelValue for UpstreamErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

// Label sets hold `Arc<str>` so building a key from a guarded value is a reference-count bump.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    mcp_method_name: Arc<str>,
    gen_ai_tool_name: Arc<str>,
    error_type: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MessageLabels {
    direction: Direction,
    kind: MessageKind,
    mcp_method_name: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabels {
    mcp_protocol_version: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SessionLabels {
    client_name: Arc<str>,
    mcp_protocol_version: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientOperationLabels {
    client_name: Arc<str>,
    mcp_method_name: Arc<str>,
    gen_ai_tool_name: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamLabels {
    stream: SseStream,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectionLabels {
    upstream: Arc<str>,
    reason: RejectionReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamErrorLabels {
    upstream: Arc<str>,
    error_type: UpstreamErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OverflowLabels {
    metric: &'static str,
    label: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn operation_histogram() -> Histogram {
    Histogram::new(OPERATION_BUCKETS)
}
fn session_histogram() -> Histogram {
    Histogram::new(SESSION_BUCKETS)
}
fn message_size_histogram() -> Histogram {
    Histogram::new(MESSAGE_SIZE_BUCKETS)
}
fn queue_wait_histogram() -> Histogram {
    Histogram::new(QUEUE_WAIT_BUCKETS)
}

/// MCP traffic metrics. Cheap to clone (one `Arc`); every client-supplied label value goes through
/// a [cardinality guard](CardinalityLimits). The per-request records remember the series of each
/// label set they have resolved, so a repeated label set costs one hash and one read lock.
#[derive(Clone, Debug)]
pub struct McpMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    empty: Arc<str>,
    operation_duration: HistogramFamily<OperationLabels>,
    // Keyed by (method, tool, error type) as passed in.
    operation_series: SeriesCache<3, Histogram>,
    operation_method: LabelGuard,
    operation_tool: LabelGuard,
    operation_error: LabelGuard,
    messages: Family<MessageLabels, Counter>,
    // Indexed by `message_index`, keyed by method.
    message_series: [SeriesCache<1, Counter>; 8],
    message_method: LabelGuard,
    // Indexed by `direction_index`: resolved once so recording a size is one histogram update.
    message_size: [Histogram; 2],
    sessions_active: Gauge,
    session_duration: HistogramFamily<ProtocolLabels>,
    session_duration_protocol: LabelGuard,
    sessions: Family<SessionLabels, Counter>,
    sessions_client: LabelGuard,
    sessions_protocol: LabelGuard,
    client_operations: Family<ClientOperationLabels, Counter>,
    // Keyed by (client, method, tool) as passed in.
    client_operation_series: SeriesCache<3, Counter>,
    client_operations_client: LabelGuard,
    client_operations_method: LabelGuard,
    client_operations_tool: LabelGuard,
    // Indexed by `stream_index`.
    sse_open: [Gauge; 2],
    sse_events: [Counter; 2],
    in_flight: Family<UpstreamLabels, Gauge>,
    queue_depth: Family<UpstreamLabels, Gauge>,
    queue_wait: HistogramFamily<UpstreamLabels>,
    queue_rejections: Family<RejectionLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

fn message_index(direction: Direction, kind: MessageKind) -> usize {
    let kind = match kind {
        MessageKind::Request => 0,
        MessageKind::Notification => 1,
        MessageKind::Response => 2,
        MessageKind::Error => 3,
    };
    direction_index(direction) * 4 + kind
}

fn stream_index(stream: SseStream) -> usize {
    match stream {
        SseStream::Post => 0,
        SseStream::Get => 1,
    }
}

impl McpMetrics {
    /// Registers every MCP family in `registry`.
    pub fn new(registry: &mut Registry, limits: CardinalityLimits) -> Self {
        let overflow = Family::<OverflowLabels, Counter>::default();
        registry.register(
            "mcpulse_label_overflow",
            "Client-supplied label values replaced by `_other` because their label reached its distinct-value limit",
            overflow.clone(),
        );
        let guard = |metric: &'static str, label: &'static str| {
            LabelGuard::new(
                limits,
                overflow.get_or_create_owned(&OverflowLabels { metric, label }),
            )
        };

        let operation_duration =
            HistogramFamily::<OperationLabels>::new_with_constructor(operation_histogram);
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "MCP request or notification duration as observed on the receiver from the time it was received until the result or ack is sent",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "mcp_messages",
            "JSON-RPC messages seen, by direction and kind",
            messages.clone(),
        );
        let message_size_family =
            HistogramFamily::<DirectionLabels>::new_with_constructor(message_size_histogram);
        registry.register_with_unit(
            "mcp_message_size",
            "Size of one JSON-RPC message body",
            Unit::Bytes,
            message_size_family.clone(),
        );
        let message_size =
            [Direction::ClientToServer, Direction::ServerToClient].map(|direction| {
                message_size_family.get_or_create_owned(&DirectionLabels { direction })
            });

        let sessions_active = Gauge::default();
        registry.register(
            "mcp_server_sessions_active",
            "MCP sessions currently open",
            sessions_active.clone(),
        );
        let session_duration =
            HistogramFamily::<ProtocolLabels>::new_with_constructor(session_histogram);
        registry.register_with_unit(
            "mcp_server_session_duration",
            "The duration of the MCP session as observed on the MCP server",
            Unit::Seconds,
            session_duration.clone(),
        );
        let sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "mcp_server_sessions",
            "MCP sessions started, by client application (clientInfo.name) and protocol version",
            sessions.clone(),
        );
        let client_operations = Family::<ClientOperationLabels, Counter>::default();
        registry.register(
            "mcp_server_client_operations",
            "MCP requests by client application, method and tool: who uses which tool",
            client_operations.clone(),
        );

        let sse_open_family = Family::<StreamLabels, Gauge>::default();
        registry.register(
            "mcp_sse_streams_open",
            "Server-sent event streams currently open",
            sse_open_family.clone(),
        );
        let sse_events_family = Family::<StreamLabels, Counter>::default();
        registry.register(
            "mcp_sse_events",
            "Server-sent events relayed to clients",
            sse_events_family.clone(),
        );
        let streams = [SseStream::Post, SseStream::Get];

        let in_flight = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "mcp_requests_in_flight",
            "Requests forwarded to the upstream and not yet answered",
            in_flight.clone(),
        );
        let queue_depth = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "mcp_queue_depth",
            "Requests waiting in the admission queue",
            queue_depth.clone(),
        );
        let queue_wait =
            HistogramFamily::<UpstreamLabels>::new_with_constructor(queue_wait_histogram);
        registry.register_with_unit(
            "mcp_queue_wait",
            "Time a request spent in the admission queue before it was forwarded",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let queue_rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "mcp_queue_rejections",
            "Requests turned away by the admission queue, by reason",
            queue_rejections.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "mcp_upstream_errors",
            "Failed calls to the upstream MCP server, by error type",
            upstream_errors.clone(),
        );

        Self {
            inner: Arc::new(Inner {
                empty: Arc::from(""),
                operation_duration,
                operation_series: SeriesCache::new(),
                operation_method: guard("mcp_server_operation_duration_seconds", "mcp_method_name"),
                operation_tool: guard("mcp_server_operation_duration_seconds", "gen_ai_tool_name"),
                operation_error: guard("mcp_server_operation_duration_seconds", "error_type"),
                messages,
                message_series: std::array::from_fn(|_| SeriesCache::new()),
                message_method: guard("mcp_messages_total", "mcp_method_name"),
                message_size,
                sessions_active,
                session_duration,
                session_duration_protocol: guard(
                    "mcp_server_session_duration_seconds",
                    "mcp_protocol_version",
                ),
                sessions,
                sessions_client: guard("mcp_server_sessions_total", "client_name"),
                sessions_protocol: guard("mcp_server_sessions_total", "mcp_protocol_version"),
                client_operations,
                client_operation_series: SeriesCache::new(),
                client_operations_client: guard(
                    "mcp_server_client_operations_total",
                    "client_name",
                ),
                client_operations_method: guard(
                    "mcp_server_client_operations_total",
                    "mcp_method_name",
                ),
                client_operations_tool: guard(
                    "mcp_server_client_operations_total",
                    "gen_ai_tool_name",
                ),
                sse_open: streams
                    .map(|stream| sse_open_family.get_or_create_owned(&StreamLabels { stream })),
                sse_events: streams
                    .map(|stream| sse_events_family.get_or_create_owned(&StreamLabels { stream })),
                in_flight,
                queue_depth,
                queue_wait,
                queue_rejections,
                upstream_errors,
            }),
        }
    }

    fn optional(&self, guard: &LabelGuard, value: Option<&str>) -> Arc<str> {
        match value {
            Some(value) => guard.admit(value),
            None => Arc::clone(&self.inner.empty),
        }
    }

    /// [`Self::optional`], and whether the label value is exactly what was passed.
    fn optional_exact(&self, guard: &LabelGuard, value: Option<&str>) -> (Arc<str>, bool) {
        match value {
            Some(value) => guard.admit_exact(value),
            None => (Arc::clone(&self.inner.empty), true),
        }
    }

    /// Records one MCP request or notification handled. `tool` is the tool name of a `tools/call`
    /// (`None` otherwise); `error_type` is `None` on success, else the JSON-RPC error code,
    /// `tool_error` or a transport error class, as the semconv says.
    pub fn record_operation(
        &self,
        method: &str,
        tool: Option<&str>,
        error_type: Option<&str>,
        elapsed: Duration,
    ) {
        let inner = &*self.inner;
        inner.operation_series.record(
            [Some(method), tool, error_type],
            || {
                let (mcp_method_name, m) = inner.operation_method.admit_exact(method);
                let (gen_ai_tool_name, t) = self.optional_exact(&inner.operation_tool, tool);
                let (error_type, e) = self.optional_exact(&inner.operation_error, error_type);
                let labels = OperationLabels {
                    mcp_method_name,
                    gen_ai_tool_name,
                    error_type,
                };
                (
                    inner.operation_duration.get_or_create_owned(&labels),
                    m && t && e,
                )
            },
            |histogram| histogram.observe(elapsed.as_secs_f64()),
        );
    }

    /// Records one JSON-RPC message and its size. `method` is `None` for responses and errors
    /// unless the caller correlated them with their request.
    pub fn record_message(
        &self,
        direction: Direction,
        kind: MessageKind,
        method: Option<&str>,
        size_bytes: usize,
    ) {
        let inner = &*self.inner;
        inner.message_series[message_index(direction, kind)].record(
            [method],
            || {
                let (mcp_method_name, exact) = self.optional_exact(&inner.message_method, method);
                let labels = MessageLabels {
                    direction,
                    kind,
                    mcp_method_name,
                };
                (inner.messages.get_or_create_owned(&labels), exact)
            },
            |counter| {
                counter.inc();
            },
        );
        // Precision loss above 2^53 bytes is irrelevant for a size histogram.
        inner.message_size[direction_index(direction)].observe(size_bytes as f64);
    }

    /// Records one request by a client application (`clientInfo.name` from `initialize`).
    pub fn record_client_operation(
        &self,
        client_name: Option<&str>,
        method: &str,
        tool: Option<&str>,
    ) {
        let inner = &*self.inner;
        inner.client_operation_series.record(
            [client_name, Some(method), tool],
            || {
                let (client_name, c) =
                    self.optional_exact(&inner.client_operations_client, client_name);
                let (mcp_method_name, m) = inner.client_operations_method.admit_exact(method);
                let (gen_ai_tool_name, t) =
                    self.optional_exact(&inner.client_operations_tool, tool);
                let labels = ClientOperationLabels {
                    client_name,
                    mcp_method_name,
                    gen_ai_tool_name,
                };
                (
                    inner.client_operations.get_or_create_owned(&labels),
                    c && m && t,
                )
            },
            |counter| {
                counter.inc();
            },
        );
    }

    /// Records a session start. The returned guard keeps `mcp_server_sessions_active` up while it
    /// lives and records the session's duration when ended or dropped.
    pub fn session_started(
        &self,
        client_name: Option<&str>,
        protocol_version: Option<&str>,
    ) -> SessionGuard {
        let inner = &*self.inner;
        let labels = SessionLabels {
            client_name: self.optional(&inner.sessions_client, client_name),
            mcp_protocol_version: self.optional(&inner.sessions_protocol, protocol_version),
        };
        inner.sessions.get_or_create(&labels).inc();
        inner.sessions_active.inc();
        let duration_labels = ProtocolLabels {
            mcp_protocol_version: self.optional(&inner.session_duration_protocol, protocol_version),
        };
        SessionGuard {
            active: inner.sessions_active.clone(),
            duration: inner.session_duration.get_or_create_owned(&duration_labels),
            started: Instant::now(),
            recorded: false,
        }
    }

    /// Marks a server-sent event stream open until the guard drops.
    pub fn sse_stream_opened(&self, stream: SseStream) -> GaugeGuard {
        GaugeGuard::up(self.inner.sse_open[stream_index(stream)].clone())
    }

    /// Counts one server-sent event relayed.
    pub fn record_sse_event(&self, stream: SseStream) {
        self.inner.sse_events[stream_index(stream)].inc();
    }

    /// The metrics of one upstream, resolved once so the request path does no label lookups.
    /// `name` is operator-configured, so it is not guarded.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        let inner = &*self.inner;
        let upstream: Arc<str> = Arc::from(name);
        let labels = UpstreamLabels {
            upstream: Arc::clone(&upstream),
        };
        let rejection = |reason| RejectionLabels {
            upstream: Arc::clone(&upstream),
            reason,
        };
        UpstreamMetrics {
            in_flight: inner.in_flight.get_or_create_owned(&labels),
            queue_depth: inner.queue_depth.get_or_create_owned(&labels),
            queue_wait: inner.queue_wait.get_or_create_owned(&labels),
            rejected_full: inner
                .queue_rejections
                .get_or_create_owned(&rejection(RejectionReason::Full)),
            rejected_timeout: inner
                .queue_rejections
                .get_or_create_owned(&rejection(RejectionReason::Timeout)),
            errors: UpstreamErrorKind::ALL.map(|error_type| {
                inner
                    .upstream_errors
                    .get_or_create_owned(&UpstreamErrorLabels {
                        upstream: Arc::clone(&upstream),
                        error_type,
                    })
            }),
        }
    }
}

/// Keeps a gauge one higher while it lives, so an early return or a cancelled future never leaks
/// a count.
#[derive(Debug)]
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    fn up(gauge: Gauge) -> Self {
        gauge.inc();
        Self { gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A live MCP session; see [`McpMetrics::session_started`].
#[derive(Debug)]
#[must_use = "the session counts as ended as soon as the guard is dropped"]
pub struct SessionGuard {
    active: Gauge,
    duration: Histogram,
    started: Instant,
    recorded: bool,
}

impl SessionGuard {
    /// Ends the session with a lifetime the caller measured (tests and replays pass exact values).
    pub fn end(mut self, lifetime: Duration) {
        self.finish(lifetime);
    }

    fn finish(&mut self, lifetime: Duration) {
        if !self.recorded {
            self.recorded = true;
            self.active.dec();
            self.duration.observe(lifetime.as_secs_f64());
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let lifetime = self.started.elapsed();
        self.finish(lifetime);
    }
}

/// Metrics of one upstream MCP server; see [`McpMetrics::upstream`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    in_flight: Gauge,
    queue_depth: Gauge,
    queue_wait: Histogram,
    rejected_full: Counter,
    rejected_timeout: Counter,
    // Indexed like `UpstreamErrorKind::ALL`.
    errors: [Counter; 6],
}

impl UpstreamMetrics {
    /// Counts a request as in flight to the upstream until the guard drops.
    pub fn request_started(&self) -> GaugeGuard {
        GaugeGuard::up(self.in_flight.clone())
    }

    /// Counts a request as waiting in the admission queue until the guard drops.
    pub fn enqueued(&self) -> GaugeGuard {
        GaugeGuard::up(self.queue_depth.clone())
    }

    /// Records how long an admitted request waited in the queue.
    pub fn record_queue_wait(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// Counts a request the queue turned away.
    pub fn record_queue_rejection(&self, reason: RejectionReason) {
        match reason {
            RejectionReason::Full => self.rejected_full.inc(),
            RejectionReason::Timeout => self.rejected_timeout.inc(),
        };
    }

    /// Counts a failed call to the upstream.
    pub fn record_upstream_error(&self, kind: UpstreamErrorKind) {
        let index = match kind {
            UpstreamErrorKind::Connect => 0,
            UpstreamErrorKind::Timeout => 1,
            UpstreamErrorKind::Protocol => 2,
            UpstreamErrorKind::Status4xx => 3,
            UpstreamErrorKind::Status5xx => 4,
            UpstreamErrorKind::Reset => 5,
        };
        self.errors[index].inc();
    }
}
