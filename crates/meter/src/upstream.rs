//! Per-upstream state: admission (concurrency limit and bounded FIFO queue), load, passive health and drain.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcpulse_telemetry::{GaugeGuard, McpMetrics, RejectionReason, UpstreamMetrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Admission, Upstream};
use crate::pool::Pool;

/// How long an upstream that refused a connection is avoided for new sessions.
const UNHEALTHY_BACKOFF: Duration = Duration::from_secs(5);

pub struct UpstreamState {
    pub upstream: Upstream,
    pub label: Arc<str>,
    pub metrics: UpstreamMetrics,
    /// Keep-alive connections to this upstream.
    pub pool: Arc<Pool>,
    /// Path prefix of the base URL (no trailing slash), put before every client path.
    pub prefix: Box<str>,
    limiter: Option<Arc<Semaphore>>,
    admission: Admission,
    queued: AtomicUsize,
    in_flight: Arc<AtomicUsize>,
    draining: AtomicBool,
    /// Found through the registry (not configured); `withdrawn` once the registry stops listing it.
    pub discovered: bool,
    withdrawn: AtomicBool,
    unhealthy_until: Mutex<Option<Instant>>,
}

/// One reserved place in an upstream's queue, given back when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held while a request is being served upstream; dropping it frees the slot and lowers the gauges.
pub struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
    _gauge: GaugeGuard,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamState {
    pub fn new(
        upstream: Upstream,
        admission: Admission,
        metrics: &McpMetrics,
        discovered: bool,
    ) -> Self {
        let label = upstream.label();
        Self {
            metrics: metrics.upstream(&label),
            label: label.into(),
            pool: Pool::new(&upstream.base),
            prefix: upstream.prefix().into(),
            upstream,
            limiter: admission
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n))),
            admission,
            queued: AtomicUsize::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            discovered,
            withdrawn: AtomicBool::new(false),
            unhealthy_until: Mutex::new(None),
        }
    }

    /// Waits for a free slot in FIFO order, or rejects when the queue is full or the wait too long.
    pub async fn admit(&self) -> Result<Admitted, RejectionReason> {
        let permit = match &self.limiter {
            None => None,
            Some(limiter) => match limiter.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => Some(self.wait_in_queue(limiter.clone()).await?),
            },
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            _permit: permit,
            _gauge: self.metrics.request_started(),
            in_flight: self.in_flight.clone(),
        })
    }

    async fn wait_in_queue(
        &self,
        limiter: Arc<Semaphore>,
    ) -> Result<OwnedSemaphorePermit, RejectionReason> {
        // Reserve a queue place first so concurrent arrivals cannot overshoot --max-queue.
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.admission.max_queue).then_some(queued + 1)
            });
        if reserved.is_err() {
            self.metrics.record_queue_rejection(RejectionReason::Full);
            return Err(RejectionReason::Full);
        }
        // Released on drop, so a client that gives up while queued (its future is dropped) frees its place.
        let place = QueuePlace(&self.queued);
        let _depth = self.metrics.enqueued();
        let waited_from = Instant::now();
        let acquired =
            tokio::time::timeout(self.admission.queue_timeout, limiter.acquire_owned()).await;
        drop(place);
        self.metrics.record_queue_wait(waited_from.elapsed());
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout rather than panicking.
            Ok(Err(_)) | Err(_) => {
                self.metrics
                    .record_queue_rejection(RejectionReason::Timeout);
                Err(RejectionReason::Timeout)
            }
        }
    }

    /// Requests being served plus requests waiting: the load used to place new sessions.
    pub fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Draining by an operator, or withdrawn by the registry: either way no new sessions.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.withdrawn.load(Ordering::Relaxed)
    }

    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Relaxed)
    }

    pub fn mark_unhealthy(&self, now: Instant) {
        if let Ok(mut until) = self.unhealthy_until.lock() {
            *until = Some(now + UNHEALTHY_BACKOFF);
        }
    }

    pub fn mark_healthy(&self) {
        if let Ok(mut until) = self.unhealthy_until.lock()
            && until.is_some()
        {
            *until = None;
        }
    }

    pub fn is_healthy(&self, now: Instant) -> bool {
        self.unhealthy_until
            .lock()
            .map(|until| until.is_none_or(|until| now >= until))
            .unwrap_or(true)
    }
}

/// The upstreams of one meter: configured ones plus those discovered through the registry. Entries are never
/// removed, only withdrawn, so an index held by a session stays valid.
pub struct UpstreamSet {
    list: RwLock<Vec<Arc<UpstreamState>>>,
    admission: Admission,
    metrics: McpMetrics,
}

/// What a registry refresh changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub added: Vec<String>,
    pub withdrawn: Vec<String>,
    pub returned: Vec<String>,
}

impl UpstreamSet {
    pub fn new(configured: &[Upstream], admission: Admission, metrics: &McpMetrics) -> Self {
        let list = configured
            .iter()
            .map(|u| Arc::new(UpstreamState::new(u.clone(), admission, metrics, false)))
            .collect();
        Self {
            list: RwLock::new(list),
            admission,
            metrics: metrics.clone(),
        }
    }

    pub fn get(&self, index: usize) -> Option<Arc<UpstreamState>> {
        self.list.read().ok()?.get(index).cloned()
    }

    pub fn snapshot(&self) -> Vec<Arc<UpstreamState>> {
        self.list.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pick(
        &self,
        sessions_on: impl Fn(usize) -> usize,
        now: Instant,
    ) -> Option<(usize, Arc<UpstreamState>)> {
        let list = self.list.read().ok()?;
        let index = pick(&list, sessions_on, now)?;
        Some((index, list[index].clone()))
    }

    /// Makes the discovered upstreams match what the registry lists as healthy now: new ones are added, missing
    /// ones withdrawn (their sessions finish, no new ones start), returning ones taken back.
    pub fn reconcile(&self, listed: &[Upstream]) -> Reconciled {
        let mut changes = Reconciled::default();
        let Ok(mut list) = self.list.write() else {
            return changes;
        };
        for state in list.iter().filter(|s| s.discovered) {
            let still_listed = listed.contains(&state.upstream);
            let was_withdrawn = state.withdrawn.swap(!still_listed, Ordering::Relaxed);
            match (was_withdrawn, still_listed) {
                (false, false) => changes.withdrawn.push(state.label.to_string()),
                (true, true) => changes.returned.push(state.label.to_string()),
                _ => {}
            }
        }
        for upstream in listed {
            if !list.iter().any(|s| &s.upstream == upstream) {
                changes.added.push(upstream.label());
                let state =
                    UpstreamState::new(upstream.clone(), self.admission, &self.metrics, true);
                list.push(Arc::new(state));
            }
        }
        changes
    }
}

/// Chooses the upstream for a new session: the least-loaded healthy one that is not draining, then fewest
/// sessions, then lowest index; if every non-draining upstream looks unhealthy, try one anyway rather than fail.
pub fn pick(
    upstreams: &[Arc<UpstreamState>],
    sessions_on: impl Fn(usize) -> usize,
    now: Instant,
) -> Option<usize> {
    let candidates = || {
        upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.is_draining())
    };
    let best = |healthy_only: bool| {
        candidates()
            .filter(|(_, u)| !healthy_only || u.is_healthy(now))
            .min_by_key(|(i, u)| (u.load(), sessions_on(*i), *i))
            .map(|(i, _)| i)
    };
    best(true).or_else(|| best(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn state(admission: Admission) -> Arc<UpstreamState> {
        let metrics = McpMetrics::new(&mut Registry::default(), Default::default());
        Arc::new(UpstreamState::new(
            Upstream::parse("http://127.0.0.1:1").unwrap(),
            admission,
            &metrics,
            false,
        ))
    }

    fn limited(max_concurrency: usize, max_queue: usize, queue_timeout: Duration) -> Admission {
        Admission {
            max_concurrency: Some(max_concurrency),
            max_queue,
            queue_timeout,
        }
    }

    #[tokio::test]
    async fn full_queue_rejects_at_once() {
        let upstream = state(limited(1, 0, Duration::from_secs(5)));
        let _held = upstream.admit().await.unwrap();
        let started = Instant::now();
        let rejected = upstream.admit().await.err();
        assert_eq!(rejected, Some(RejectionReason::Full));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a full queue must not wait for the timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn queued_request_times_out() {
        let upstream = state(limited(1, 4, Duration::from_millis(100)));
        let _held = upstream.admit().await.unwrap();
        assert_eq!(upstream.admit().await.err(), Some(RejectionReason::Timeout));
        assert_eq!(upstream.queued(), 0, "a timed-out waiter leaves the queue");
    }

    #[tokio::test]
    async fn queue_is_first_in_first_out() {
        let upstream = state(limited(1, 8, Duration::from_secs(5)));
        let held = upstream.admit().await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..4 {
            let (waiter, tx) = (upstream.clone(), tx.clone());
            tokio::spawn(async move {
                let admitted = waiter.admit().await;
                tx.send(n).unwrap();
                drop(admitted);
            });
            // Let each waiter enqueue before the next arrives so the arrival order is known.
            while upstream.queued() <= n {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(upstream.in_flight(), 1);
        drop(held);
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, vec![0, 1, 2, 3]);
        assert_eq!(upstream.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_queue_place() {
        let upstream = state(limited(1, 1, Duration::from_secs(30)));
        let _held = upstream.admit().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), upstream.admit()).await;
        assert!(
            waiting.is_err(),
            "the second request waits in the queue, then its client gives up"
        );
        assert_eq!(upstream.queued(), 0, "the abandoned place is released");
        let again = tokio::time::timeout(Duration::from_millis(50), upstream.admit()).await;
        assert!(
            again.is_err(),
            "a new request can queue again instead of being refused as full"
        );
    }

    #[test]
    fn reconcile_adds_withdraws_and_takes_back() {
        let metrics = McpMetrics::new(&mut Registry::default(), Default::default());
        let unlimited = Admission {
            max_concurrency: None,
            max_queue: 0,
            queue_timeout: Duration::from_secs(1),
        };
        let configured = Upstream::parse("http://127.0.0.1:1").unwrap();
        let set = UpstreamSet::new(std::slice::from_ref(&configured), unlimited, &metrics);
        let a = Upstream::parse("http://10.0.0.1:3001").unwrap();
        let b = Upstream::parse("http://10.0.0.2:3001").unwrap();
        let changes = set.reconcile(&[a.clone(), b.clone()]);
        assert_eq!(changes.added, [a.label(), b.label()]);
        let changes = set.reconcile(std::slice::from_ref(&b));
        assert_eq!(changes.withdrawn, [a.label()]);
        assert!(
            set.get(1).unwrap().is_draining(),
            "a withdrawn upstream takes no new sessions"
        );
        assert!(
            !set.get(0).unwrap().is_draining(),
            "configured upstreams are never withdrawn by discovery"
        );
        let changes = set.reconcile(&[a.clone(), b]);
        assert_eq!(changes.returned, [a.label()]);
        assert_eq!(
            set.snapshot().len(),
            3,
            "entries are kept so session indexes stay valid"
        );
    }

    #[test]
    fn pick_prefers_healthy_idle_undrained() {
        let now = Instant::now();
        let unlimited = Admission {
            max_concurrency: None,
            max_queue: 0,
            queue_timeout: Duration::from_secs(1),
        };
        let upstreams = vec![state(unlimited), state(unlimited), state(unlimited)];
        assert_eq!(
            pick(&upstreams, |i| [5, 1, 3][i], now),
            Some(1),
            "fewest sessions when load is equal"
        );
        upstreams[1].set_draining(true);
        assert_eq!(
            pick(&upstreams, |i| [5, 1, 3][i], now),
            Some(2),
            "a draining upstream takes no new sessions"
        );
        upstreams[2].mark_unhealthy(now);
        assert_eq!(
            pick(&upstreams, |i| [5, 1, 3][i], now),
            Some(0),
            "unhealthy upstreams are avoided"
        );
        upstreams[0].mark_unhealthy(now);
        assert_eq!(
            pick(&upstreams, |i| [5, 1, 3][i], now),
            Some(2),
            "all unhealthy: still try one"
        );
        assert!(
            upstreams[0].is_healthy(now + UNHEALTHY_BACKOFF),
            "health returns after the backoff"
        );
        for u in &upstreams {
            u.set_draining(true);
        }
        assert_eq!(pick(&upstreams, |_| 0, now), None);
    }
}
