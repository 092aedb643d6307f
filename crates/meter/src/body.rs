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
use crate::pool::Lease;
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
        buffer: JsonBody,
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

/// A JSON response body held for classification. Most arrive in one frame, whose buffer is then shared rather than
/// copied; only a body in several frames is gathered into one.
#[derive(Default)]
pub struct JsonBody {
    first: Bytes,
    gathered: Vec<u8>,
}

impl JsonBody {
    fn len(&self) -> usize {
        self.first.len() + self.gathered.len()
    }

    fn push(&mut self, data: &Bytes) {
        if self.len() == 0 {
            self.first = data.clone();
            return;
        }
        if !self.first.is_empty() {
            let first = std::mem::take(&mut self.first);
            self.gathered.extend_from_slice(&first);
        }
        self.gathered.extend_from_slice(data);
    }

    fn clear(&mut self) {
        self.first = Bytes::new();
        self.gathered = Vec::new();
    }

    fn as_slice(&self) -> &[u8] {
        if self.gathered.is_empty() {
            &self.first
        } else {
            &self.gathered
        }
    }
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
    fn on_data(&mut self, data: &Bytes) {
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
                    buffer.push(data);
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
            && buffer.len() > 0
            && let Ok(messages) = mcpulse_wire::classify(buffer.as_slice())
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
    /// The upstream connection the body arrives on, free for the next request once the body has ended.
    lease: Option<Lease>,
}

impl MeteredBody {
    pub fn new(inner: Incoming, mut exchange: Exchange, lease: Lease) -> Self {
        // An empty body may never be polled, so it counts as complete from the start.
        exchange.complete = inner.is_end_stream();
        let lease = if exchange.complete {
            lease.release(Instant::now());
            None
        } else {
            Some(lease)
        };
        Self {
            inner,
            exchange: Some(Box::new(exchange)),
            lease,
        }
    }

    fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release(Instant::now());
        }
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
                // The connection broke mid-body: it is closed with the lease, never reused.
                this.lease = None;
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Written digit by digit: `format!` cost more than the rest of the exchange's bookkeeping.
    let mut key = String::with_capacity(26);
    key.push_str("\u{0}exchange-");
    for shift in (0..16).rev() {
        key.push(char::from(HEX[((n >> (4 * shift)) & 0xf) as usize]));
    }
    Arc::from(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_shares_one_frame_and_gathers_several() {
        // (frames, expected body, reason)
        let cases: [(&[&str], &str, &str); 4] = [
            (&[], "", "no frame"),
            (&[r#"{"id":1}"#], r#"{"id":1}"#, "one frame, the usual case"),
            (
                &[r#"{"id""#, r#":1}"#],
                r#"{"id":1}"#,
                "split across two frames",
            ),
            (&["", "{}", "", "[]"], "{}[]", "empty frames in between"),
        ];
        for (frames, expected, reason) in cases {
            let mut body = JsonBody::default();
            for frame in frames {
                body.push(&Bytes::copy_from_slice(frame.as_bytes()));
            }
            assert_eq!(body.as_slice(), expected.as_bytes(), "{reason}");
            assert_eq!(body.len(), expected.len(), "{reason}");
        }
        let one = Bytes::from_static(b"{}");
        let mut body = JsonBody::default();
        body.push(&one);
        assert_eq!(
            body.as_slice().as_ptr(),
            one.as_ptr(),
            "a single frame is shared, not copied"
        );
        body.clear();
        assert_eq!(body.len(), 0);
    }

    #[test]
    fn exchange_keys_are_distinct_and_cannot_be_session_ids() {
        let (a, b) = (exchange_key(), exchange_key());
        assert_ne!(a, b);
        // A NUL cannot appear in a header value, so no client session id can equal an exchange key.
        assert!(a.starts_with("\u{0}exchange-") && a.len() == 26, "{a:?}");
    }
}
