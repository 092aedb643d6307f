//! Live MCP sessions seen through the meter: which upstream owns each one and what it is, for routing and metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpulse_telemetry::SessionGuard;

#[derive(Debug)]
pub struct Session {
    pub upstream: usize,
    pub started: Instant,
    pub last_seen: Instant,
    pub client_name: Option<String>,
    /// Set once the initialize response has been seen, which is when the session starts counting in metrics.
    pub counted: Option<SessionGuard>,
}

impl Session {
    /// Records the end of the session in metrics, if it was counted.
    pub fn end(self, now: Instant) {
        if let Some(guard) = self.counted {
            guard.end(now.saturating_duration_since(self.started));
        }
    }
}

/// Bounded by `capacity`: past it the least recently seen session is forgotten (its upstream still has it,
/// the meter just stops routing and timing it).
pub struct SessionTable {
    entries: HashMap<Arc<str>, Session>,
    per_upstream: Vec<usize>,
    capacity: usize,
}

impl SessionTable {
    pub fn new(upstreams: usize, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            per_upstream: vec![0; upstreams],
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn sessions_on(&self, upstream: usize) -> usize {
        self.per_upstream.get(upstream).copied().unwrap_or(0)
    }

    /// Looks a session up and marks it active now.
    pub fn touch(&mut self, id: &str, now: Instant) -> Option<&Session> {
        let session = self.entries.get_mut(id)?;
        session.last_seen = now;
        Some(session)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.entries.get_mut(id)
    }

    /// Adds a session; returns the sessions pushed out to make room (or replaced), which the caller ends.
    pub fn insert(&mut self, id: Arc<str>, session: Session) -> Vec<Session> {
        let mut ended: Vec<Session> = self.remove(&id).into_iter().collect();
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone());
            ended.extend(oldest.and_then(|id| self.remove(&id)));
        }
        // Upstreams found through the registry arrive after the table was sized.
        if self.per_upstream.len() <= session.upstream {
            self.per_upstream.resize(session.upstream + 1, 0);
        }
        self.per_upstream[session.upstream] += 1;
        self.entries.insert(id, session);
        ended
    }

    pub fn remove(&mut self, id: &str) -> Option<Session> {
        let session = self.entries.remove(id)?;
        if let Some(count) = self.per_upstream.get_mut(session.upstream) {
            *count = count.saturating_sub(1);
        }
        Some(session)
    }

    /// Ends sessions without traffic for `idle`.
    pub fn sweep_idle(&mut self, now: Instant, idle: Duration) -> Vec<Session> {
        let stale: Vec<Arc<str>> = self
            .entries
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        stale.iter().filter_map(|id| self.remove(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(upstream: usize, at: Instant) -> Session {
        Session {
            upstream,
            started: at,
            last_seen: at,
            client_name: None,
            counted: None,
        }
    }

    #[test]
    fn counts_follow_inserts_and_removals() {
        let now = Instant::now();
        let mut table = SessionTable::new(2, 10);
        table.insert("a".into(), session(0, now));
        table.insert("b".into(), session(1, now));
        table.insert("c".into(), session(1, now));
        assert_eq!((table.sessions_on(0), table.sessions_on(1)), (1, 2));
        table.remove("c");
        assert_eq!(table.sessions_on(1), 1);
        assert!(table.remove("missing").is_none());
        assert_eq!(
            table.sessions_on(7),
            0,
            "an unknown upstream has no sessions"
        );
    }

    #[test]
    fn full_table_forgets_the_least_recently_seen() {
        let start = Instant::now();
        let mut table = SessionTable::new(1, 2);
        table.insert("a".into(), session(0, start));
        table.insert("b".into(), session(0, start));
        table.touch("a", start + Duration::from_secs(1));
        let ended = table.insert("c".into(), session(0, start + Duration::from_secs(2)));
        assert_eq!(ended.len(), 1);
        assert!(
            table.touch("b", start).is_none(),
            "b was least recently seen"
        );
        assert_eq!(table.len(), 2);
        assert_eq!(table.sessions_on(0), 2);
    }

    #[test]
    fn idle_sessions_are_swept() {
        let start = Instant::now();
        let mut table = SessionTable::new(1, 10);
        table.insert("a".into(), session(0, start));
        table.insert("b".into(), session(0, start));
        table.touch("b", start + Duration::from_secs(50));
        let ended = table.sweep_idle(start + Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(ended.len(), 1);
        assert!(table.touch("b", start).is_some());
    }
}
