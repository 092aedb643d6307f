//! Requests awaiting their response, so each operation can be timed when its response shows up on any stream.
//!
//! Bounded twice: by count (the oldest entry is evicted) and by age (entries past the TTL expire), so requests
//! a server never answers cannot grow memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpulse_wire::RequestId;

/// A request is identified by its session (responses may arrive on another stream of the same session) and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PendingKey {
    pub session: Option<Arc<str>>,
    pub id: RequestId,
}

#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub method: String,
    pub tool: Option<String>,
    pub client_name: Option<String>,
    pub started: Instant,
}

/// What left the table without a response, so the caller can count it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub expired: usize,
    pub evicted: usize,
}

pub struct PendingTable {
    entries: HashMap<PendingKey, (u64, PendingRequest)>,
    // Insertion order with a sequence number; stale queue items (already answered) are skipped lazily.
    order: VecDeque<(u64, Instant, PendingKey)>,
    next_seq: u64,
    capacity: usize,
    ttl: Duration,
}

impl PendingTable {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            capacity: capacity.max(1),
            ttl,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records a request; a duplicate key replaces the older request (clients must not reuse ids in a session).
    pub fn insert(&mut self, key: PendingKey, request: PendingRequest, now: Instant) -> Dropped {
        let mut dropped = self.expire(now);
        while self.entries.len() >= self.capacity {
            if self.pop_oldest().is_some() {
                dropped.evicted += 1;
            } else {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, request.started, key.clone()));
        self.entries.insert(key, (seq, request));
        self.compact();
        dropped
    }

    pub fn take(&mut self, key: &PendingKey) -> Option<PendingRequest> {
        self.entries.remove(key).map(|(_, request)| request)
    }

    /// Forgets requests older than the TTL.
    pub fn expire(&mut self, now: Instant) -> Dropped {
        let mut dropped = Dropped::default();
        while let Some((seq, started, key)) = self.order.front() {
            let live = self.entries.get(key).is_some_and(|(s, _)| s == seq);
            if live && now.saturating_duration_since(*started) < self.ttl {
                break;
            }
            if let Some((_, _, key)) = self.order.pop_front()
                && live
            {
                self.entries.remove(&key);
                dropped.expired += 1;
            }
        }
        dropped
    }

    fn pop_oldest(&mut self) -> Option<PendingRequest> {
        while let Some((seq, _, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|(s, _)| *s == seq) {
                return self.entries.remove(&key).map(|(_, request)| request);
            }
        }
        None
    }

    // Answered requests leave stale items in `order`; rebuild it when they dominate so it stays O(live entries).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(seq, _, key)| entries.get(key).is_some_and(|(s, _)| s == seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: Option<&str>, id: i64) -> PendingKey {
        PendingKey {
            session: session.map(Arc::from),
            id: RequestId::Number(id),
        }
    }

    fn request(method: &str, started: Instant) -> PendingRequest {
        PendingRequest {
            method: method.into(),
            tool: None,
            client_name: None,
            started,
        }
    }

    #[test]
    fn a_response_in_another_session_does_not_match() {
        let now = Instant::now();
        let mut table = PendingTable::new(10, Duration::from_secs(60));
        table.insert(key(Some("a"), 1), request("ping", now), now);
        assert!(table.take(&key(Some("b"), 1)).is_none());
        assert!(table.take(&key(None, 1)).is_none());
        assert_eq!(table.take(&key(Some("a"), 1)).unwrap().method, "ping");
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let now = Instant::now();
        let mut table = PendingTable::new(2, Duration::from_secs(60));
        table.insert(key(None, 1), request("a", now), now);
        table.insert(key(None, 2), request("b", now), now);
        let dropped = table.insert(key(None, 3), request("c", now), now);
        assert_eq!(
            dropped,
            Dropped {
                expired: 0,
                evicted: 1
            }
        );
        assert!(table.take(&key(None, 1)).is_none());
        assert!(table.take(&key(None, 2)).is_some());
        assert!(table.take(&key(None, 3)).is_some());
    }

    #[test]
    fn old_requests_expire() {
        let start = Instant::now();
        let mut table = PendingTable::new(10, Duration::from_secs(5));
        table.insert(key(None, 1), request("a", start), start);
        table.insert(
            key(None, 2),
            request("b", start + Duration::from_secs(4)),
            start + Duration::from_secs(4),
        );
        let dropped = table.expire(start + Duration::from_secs(6));
        assert_eq!(dropped.expired, 1);
        assert_eq!(table.len(), 1);
        assert!(table.take(&key(None, 2)).is_some());
    }

    #[test]
    fn answered_requests_do_not_grow_the_order_queue() {
        let now = Instant::now();
        let mut table = PendingTable::new(1000, Duration::from_secs(60));
        for id in 0..10_000 {
            table.insert(key(None, id), request("ping", now), now);
            table.take(&key(None, id));
        }
        assert_eq!(table.len(), 0);
        assert!(
            table.order.len() <= 64 + 1,
            "order queue kept {} stale items",
            table.order.len()
        );
    }

    #[test]
    fn a_reused_id_replaces_the_old_request_without_double_counting() {
        let now = Instant::now();
        let mut table = PendingTable::new(10, Duration::from_secs(1));
        table.insert(key(None, 1), request("old", now), now);
        table.insert(key(None, 1), request("new", now), now);
        assert_eq!(table.len(), 1);
        let dropped = table.expire(now + Duration::from_secs(2));
        assert_eq!(dropped.expired, 1);
    }
}
