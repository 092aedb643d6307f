//! Watches MCP messages going both ways and turns them into metrics: counts, sizes, operation timings, sessions.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mcpulse_telemetry::MessageKind as MetricKind;
use mcpulse_telemetry::{Direction, McpMetrics};
use mcpulse_wire::{Message, MessageKind, RequestId};

use crate::pending::{Dropped, PendingKey, PendingRequest, PendingTable};
use crate::sessions::{Session, SessionTable};

/// The meter's memory of what is in flight, shared by every connection.
pub struct Observer {
    pub metrics: McpMetrics,
    pending: Mutex<PendingTable>,
    pub sessions: Mutex<SessionTable>,
    dropped: prometheus_client::metrics::counter::Counter,
}

/// The error type recorded when a request body is not JSON-RPC at all.
pub const PARSE_ERROR: &str = "parse_error";

impl Observer {
    pub fn new(
        metrics: McpMetrics,
        pending: PendingTable,
        sessions: SessionTable,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            metrics,
            pending: Mutex::new(pending),
            sessions: Mutex::new(sessions),
            dropped,
        }
    }

    /// Counts client messages and remembers each request so its response can be timed.
    pub fn client_messages(
        &self,
        session: Option<&Arc<str>>,
        messages: &[Message],
        body_len: usize,
        now: Instant,
    ) {
        let size = body_len / messages.len().max(1);
        let client_name = session.and_then(|id| {
            self.sessions
                .lock()
                .ok()?
                .touch(id, now)?
                .client_name
                .clone()
        });
        for message in messages {
            self.metrics.record_message(
                Direction::ClientToServer,
                metric_kind(message.kind),
                message.method.as_deref(),
                size,
            );
            if message.kind != MessageKind::Request {
                continue;
            }
            let (Some(id), Some(method)) = (&message.id, &message.method) else {
                continue;
            };
            let request = PendingRequest {
                method: method.clone(),
                tool: message.tool_name.clone(),
                client_name: client_name
                    .clone()
                    .or_else(|| message.client.as_ref().map(|c| c.name.clone())),
                started: now,
            };
            let key = PendingKey {
                session: session.cloned(),
                id: id.clone(),
            };
            let dropped = match self.pending.lock() {
                Ok(mut pending) => pending.insert(key, request, now),
                Err(_) => Dropped::default(),
            };
            self.count_dropped(dropped);
        }
    }

    /// Counts server messages and completes the operations they answer. `created` is the session the upstream
    /// assigned in this response's headers (initialize), while `session` is the key the requests were filed under.
    pub fn server_messages(
        &self,
        session: Option<&Arc<str>>,
        created: Option<&Arc<str>>,
        messages: &[Message],
        body_len: usize,
        now: Instant,
    ) {
        let size = body_len / messages.len().max(1);
        for message in messages {
            self.metrics.record_message(
                Direction::ServerToClient,
                metric_kind(message.kind),
                message.method.as_deref(),
                size,
            );
            if !matches!(message.kind, MessageKind::Response | MessageKind::Error) {
                continue;
            }
            let Some(id) = &message.id else { continue };
            let error_type = match (message.error_code, message.tool_error) {
                (Some(code), _) => Some(mcpulse_wire::error_type(code)),
                (None, true) => Some("tool_error"),
                (None, false) => None,
            };
            if let Some(request) = self.take(session, id) {
                if request.method == "initialize" {
                    self.session_initialized(
                        created,
                        message.protocol_version.as_deref(),
                        &request,
                    );
                }
                self.finish(&request, error_type, now);
            }
        }
    }

    /// Completes a request that ended without a JSON-RPC answer (HTTP error, upstream failure, rejection).
    pub fn fail(&self, session: Option<&Arc<str>>, id: &RequestId, error_type: &str, now: Instant) {
        if let Some(request) = self.take(session, id) {
            self.finish(&request, Some(error_type), now);
        }
    }

    /// Records a body that was not JSON-RPC; the bytes were still forwarded.
    pub fn unparseable(&self, started: Instant, now: Instant) {
        self.metrics.record_operation(
            "",
            None,
            Some(PARSE_ERROR),
            now.saturating_duration_since(started),
        );
    }

    /// Opens the routing entry for a session the upstream just created; it is counted once initialized.
    pub fn session_created(
        &self,
        id: Arc<str>,
        upstream: usize,
        client_name: Option<String>,
        now: Instant,
    ) {
        let session = Session {
            upstream,
            started: now,
            last_seen: now,
            client_name,
            counted: None,
        };
        let ended = match self.sessions.lock() {
            Ok(mut sessions) => sessions.insert(id, session),
            Err(_) => Vec::new(),
        };
        self.end_sessions(ended, now);
    }

    /// Ends a session that the client deleted or the upstream forgot.
    pub fn session_closed(&self, id: &str, now: Instant) {
        let ended = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut sessions| sessions.remove(id));
        self.end_sessions(ended.into_iter().collect(), now);
    }

    pub fn upstream_of(&self, id: &str, now: Instant) -> Option<usize> {
        self.sessions
            .lock()
            .ok()?
            .touch(id, now)
            .map(|s| s.upstream)
    }

    /// Periodic housekeeping: forget idle sessions and unanswered requests.
    pub fn sweep(&self, idle: std::time::Duration, now: Instant) {
        let ended = self
            .sessions
            .lock()
            .map(|mut s| s.sweep_idle(now, idle))
            .unwrap_or_default();
        self.end_sessions(ended, now);
        let dropped = self
            .pending
            .lock()
            .map(|mut p| p.expire(now))
            .unwrap_or_default();
        self.count_dropped(dropped);
    }

    fn take(&self, session: Option<&Arc<str>>, id: &RequestId) -> Option<PendingRequest> {
        let key = PendingKey {
            session: session.cloned(),
            id: id.clone(),
        };
        self.pending.lock().ok()?.take(&key)
    }

    fn finish(&self, request: &PendingRequest, error_type: Option<&str>, now: Instant) {
        let elapsed = now.saturating_duration_since(request.started);
        self.metrics.record_operation(
            &request.method,
            request.tool.as_deref(),
            error_type,
            elapsed,
        );
        self.metrics.record_client_operation(
            request.client_name.as_deref(),
            &request.method,
            request.tool.as_deref(),
        );
    }

    fn session_initialized(
        &self,
        created: Option<&Arc<str>>,
        negotiated: Option<&str>,
        request: &PendingRequest,
    ) {
        let Some(id) = created else {
            // A stateless server assigns no session id, so there is no session to count.
            return;
        };
        let Ok(mut sessions) = self.sessions.lock() else {
            return;
        };
        let Some(entry) = sessions.get_mut(id) else {
            return;
        };
        if entry.counted.is_some() {
            return;
        }
        if entry.client_name.is_none() {
            entry.client_name = request.client_name.clone();
        }
        entry.counted = Some(
            self.metrics
                .session_started(entry.client_name.as_deref(), negotiated),
        );
    }

    fn end_sessions(&self, ended: Vec<Session>, now: Instant) {
        for session in ended {
            session.end(now);
        }
    }

    fn count_dropped(&self, dropped: Dropped) {
        let n = dropped.expired + dropped.evicted;
        if n > 0 {
            self.dropped.inc_by(n as u64);
        }
    }
}

fn metric_kind(kind: MessageKind) -> MetricKind {
    match kind {
        MessageKind::Request => MetricKind::Request,
        MessageKind::Notification => MetricKind::Notification,
        MessageKind::Response => MetricKind::Response,
        MessageKind::Error => MetricKind::Error,
    }
}
