//! The bounded worker pool that runs tool cost: `workers` slots, a bounded wait queue, and the cost itself.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcpulse_telemetry::{RejectionReason, UpstreamMetrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one call costs the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cost {
    /// CPU burnt on a blocking thread while holding a worker.
    pub cpu: Duration,
    /// Time slept while holding a worker, standing in for I/O a real server would wait on.
    pub sleep: Duration,
}

/// Why the pool did not run a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PoolError {
    /// Every worker was busy and the queue was full.
    #[error(
        "agent saturated: all {workers} workers are busy and {max_queue} calls are already queued \
         (--workers / --max-queue); retry later or add replicas"
    )]
    Saturated {
        /// The pool's worker count.
        workers: usize,
        /// The pool's queue bound.
        max_queue: usize,
    },
    /// The blocking thread burning CPU went away (the runtime is shutting down).
    #[error("the worker running this call stopped before it finished: {0}")]
    Worker(String),
}

/// Runs call cost on at most `workers` calls at once, queueing at most `max_queue` more.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    max_queue: usize,
    metrics: UpstreamMetrics,
}

/// Releases a reserved queue place however the wait ends, cancellation included.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    pub(crate) fn new(workers: usize, max_queue: usize, metrics: UpstreamMetrics) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(workers)),
            workers,
            waiting: AtomicUsize::new(0),
            max_queue,
            metrics,
        }
    }

    /// Waits for a worker (or fails fast when the queue is full), then spends `cost` holding it.
    pub(crate) async fn run(&self, cost: Cost) -> Result<(), PoolError> {
        let permit = self.admit().await?;
        let permit = if cost.cpu.is_zero() {
            permit
        } else {
            // The permit travels with the burn so the slot stays taken until the CPU really stops,
            // even when the caller gives up and this future is dropped.
            tokio::task::spawn_blocking(move || {
                burn(cost.cpu);
                permit
            })
            .await
            .map_err(|e| PoolError::Worker(e.to_string()))?
        };
        if !cost.sleep.is_zero() {
            tokio::time::sleep(cost.sleep).await;
        }
        drop(permit);
        Ok(())
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit, PoolError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            self.metrics.record_queue_wait(Duration::ZERO);
            return Ok(permit);
        }
        let reserved = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.max_queue).then_some(w + 1)
            });
        if reserved.is_err() {
            self.metrics.record_queue_rejection(RejectionReason::Full);
            return Err(PoolError::Saturated {
                workers: self.workers,
                max_queue: self.max_queue,
            });
        }
        let _place = QueuePlace(&self.waiting);
        let _depth = self.metrics.enqueued();
        let started = Instant::now();
        // The semaphore is never closed, so acquiring only fails if that invariant breaks.
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|e| PoolError::Worker(e.to_string()))?;
        self.metrics.record_queue_wait(started.elapsed());
        Ok(permit)
    }
}

/// Spins on the current thread until `duration` has passed, doing work the optimiser cannot drop.
pub(crate) fn burn(duration: Duration) -> u64 {
    let started = Instant::now();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while started.elapsed() < duration {
        // A batch between clock reads keeps the time spent reading the clock negligible.
        for _ in 0..256 {
            x = black_box(
                x.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
    }
    x
}

/// Decides which calls fail, from a seeded SplitMix64 stream: the same seed gives the same
/// sequence of outcomes, and drawing is one atomic add, so concurrent calls never contend on a lock.
#[derive(Debug)]
pub(crate) struct FaultDice {
    state: AtomicU64,
    rate: f64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl FaultDice {
    pub(crate) fn new(seed: u64, rate: f64) -> Self {
        Self {
            state: AtomicU64::new(seed),
            rate,
        }
    }

    /// Whether the next call should fail.
    pub(crate) fn roll(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if self.rate >= 1.0 {
            return true;
        }
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits make a uniform f64 in [0, 1).
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit < self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpulse_telemetry::{CardinalityLimits, McpMetrics, Registry};

    fn pool(workers: usize, max_queue: usize) -> Pool {
        let metrics = McpMetrics::new(&mut Registry::default(), CardinalityLimits::default());
        Pool::new(workers, max_queue, metrics.upstream("test"))
    }

    #[test]
    fn dice_rates_and_replay() {
        let cases = [
            (0.0, 0, 0, "rate 0 never fails"),
            (1.0, 10_000, 10_000, "rate 1 always fails"),
            (0.3, 2_800, 3_200, "rate 0.3 fails about 30% of 10k draws"),
            (0.01, 50, 150, "small rates are honoured too"),
        ];
        for (rate, low, high, why) in cases {
            let dice = FaultDice::new(42, rate);
            let failures = (0..10_000).filter(|_| dice.roll()).count();
            assert!((low..=high).contains(&failures), "{why}: {failures}");
        }
        let a = FaultDice::new(7, 0.5);
        let b = FaultDice::new(7, 0.5);
        let c = FaultDice::new(8, 0.5);
        let draws = |d: &FaultDice| (0..64).map(|_| d.roll()).collect::<Vec<_>>();
        let first = draws(&a);
        assert_eq!(first, draws(&b), "same seed, same outcomes");
        assert_ne!(first, draws(&c), "another seed, another pattern");
    }

    #[test]
    fn burn_spends_at_least_the_duration() {
        let started = Instant::now();
        burn(Duration::from_millis(20));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn full_queue_fails_fast_and_frees_its_place() {
        let pool = Arc::new(pool(1, 1));
        let sleep = Cost {
            cpu: Duration::ZERO,
            sleep: Duration::from_millis(300),
        };
        let running = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(sleep).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(Cost::default()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            pool.run(Cost::default()).await,
            Err(PoolError::Saturated {
                workers: 1,
                max_queue: 1
            }),
            "one running and one queued fill a pool of 1 + 1"
        );
        assert_eq!(running.await.ok(), Some(Ok(())));
        assert_eq!(
            queued.await.ok(),
            Some(Ok(())),
            "the queued call runs once the worker frees up"
        );
        assert_eq!(
            pool.waiting.load(Ordering::Acquire),
            0,
            "the queue place is given back"
        );
        assert_eq!(
            pool.run(Cost::default()).await,
            Ok(()),
            "an idle pool admits again"
        );
    }

    #[tokio::test]
    async fn zero_queue_admits_only_free_workers() {
        let pool = Arc::new(pool(2, 0));
        let sleep = Cost {
            cpu: Duration::ZERO,
            sleep: Duration::from_millis(200),
        };
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move { pool.run(sleep).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            pool.run(Cost::default()).await,
            Err(PoolError::Saturated { .. })
        ));
        for task in busy {
            assert_eq!(task.await.ok(), Some(Ok(())));
        }
    }
}
