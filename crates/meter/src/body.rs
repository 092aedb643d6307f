//! Response bodies relayed frame by frame as they arrive, observed on the way without being held back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use mcpulse_telemetry::{GaugeGuard, SseStream, UpstreamErrorKind, UpstreamMetrics};
use mcpulse_wire::{RequestId, SseEvent, SseParser};

use crate::observe::Observer;
use crate::upstream::Admitted;

/// What the meter sends to a client: an upstream body being relayed, or an answer of its own.
pub enum ProxyBody {
    Relayed(MeteredBody),
    Local(Full<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Relayed(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Local(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Relayed(body) => body.inner.is_end_stream(),
            ProxyBody::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Relayed(body) => body.inner.size_hint(),
            ProxyBody::Local(body) => body.size_hint(),
        }
    }
}

/// How a response body is read for MCP messages.
pub enum Framing {
    /// One JSON-RPC message or batch, classified once the body is complete (if it fits in the limit).
    Json {
        buffer: Vec<u8>,
        limit: usize,
        overflowed: bool,
    },
    /// An SSE stream whose events each carry one JSON-RPC message.
    Sse {
        parser: SseParser,
        events: Vec<SseEvent>,
        stream: SseStream,
        _open: GaugeGuard,
    },
    /// Anything else is relayed without looking inside.
    Opaque,
}

/// Everything needed to account for one HTTP exchange once its response body is seen.
pub struct Exchange {
    pub observer: Arc<Observer>,
    pub upstream: UpstreamMetrics,
    /// Key the exchange's requests were filed under in the pending table.
    pub session: Option<Arc<str>>,
    /// Session id the upstream assigned in this response (an initialize answer).
    pub created: Option<Arc<str>>,
    /// Requests of this exchange still unanswered when the body ends with an HTTP error are failed with it.
    pub requests: Vec<RequestId>,
    pub http_error: Option<&'static str>,
    pub framing: Framing,
    /// The upstream slot, held until the response is fully relayed.
    pub _slot: Option<Admitted>,
    pub complete: bool,
}

impl Exchange {
    fn on_data(&mut self, data: &[u8]) {
        match &mut self.framing {
            Framing::Json {
                buffer,
                limit,
                overflowed,
            } => {
                if buffer.len() + data.len() > *limit {
                    *overflowed = true;
                    buffer.clear();
                } else if !*overflowed {
                    buffer.extend_from_slice(data);
                }
            }
            Framing::Sse {
                parser,
                events,
                stream,
                ..
            } => {
                parser.feed(data, events);
                let now = Instant::now();
                for event in events.drain(..) {
                    self.observer.metrics.record_sse_event(*stream);
                    if event.oversized || event.data.is_empty() {
                        continue;
                    }
                    if let Ok(messages) = mcpulse_wire::classify(event.data.as_bytes()) {
                        self.observer.server_messages(
                            self.session.as_ref(),
                            self.created.as_ref(),
                            &messages,
                            event.data.len(),
                            now,
                        );
                    }
                }
            }
            Framing::Opaque => {}
        }
    }

    fn on_end(&mut self) {
        let now = Instant::now();
        if let Framing::Json {
            buffer,
            overflowed: false,
            ..
        } = &self.framing
            && !buffer.is_empty()
            && let Ok(messages) = mcpulse_wire::classify(buffer)
        {
            self.observer.server_messages(
                self.session.as_ref(),
                self.created.as_ref(),
                &messages,
                buffer.len(),
                now,
            );
        }
        if let Some(error_type) = self.http_error {
            for id in &self.requests {
                self.observer
                    .fail(self.session.as_ref(), id, error_type, now);
            }
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // A body that ended is accounted for; one cut short (client gone) leaves its requests pending until their
        // answers arrive on another stream of the session or they expire.
        if self.complete {
            self.on_end();
        }
        // Dropping `admitted` here frees the upstream slot only once the response is fully relayed.
    }
}

pub struct MeteredBody {
    inner: Incoming,
    // Boxed: the exchange is large and most of its life is spent parked in a response future.
    exchange: Option<Box<Exchange>>,
}

impl MeteredBody {
    pub fn new(inner: Incoming, mut exchange: Exchange) -> Self {
        // An empty body may never be polled, so it counts as complete from the start.
        exchange.complete = inner.is_end_stream();
        Self {
            inner,
            exchange: Some(Box::new(exchange)),
        }
    }
}

impl MeteredBody {
    fn finish(&mut self) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.complete = true;
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(exchange)) = (frame.data_ref(), this.exchange.as_mut()) {
                    exchange.on_data(data);
                }
                // A body of known length ends with its last frame: hyper need not poll again to see the end.
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                if let Some(exchange) = this.exchange.take() {
                    exchange
                        .upstream
                        .record_upstream_error(UpstreamErrorKind::Reset);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A process-unique key for requests sent outside any session, whose answers can only come back on the same
/// exchange: many clients start with `"id": 0` for initialize, so the id alone would collide.
pub fn exchange_key() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Arc::from(format!(
        "\u{0}exchange-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}
