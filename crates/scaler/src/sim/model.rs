//! The deployment model: a fluid M/M/c queue advanced one tick at a time.
//!
//! Each ready pod runs `concurrency` workers; service times are exponential with mean
//! `concurrency / pod_capacity`, so a pod serves `pod_capacity` requests/s when saturated. Within a tick
//! the arrival rate is taken as steady: while it stays below capacity and no backlog is left, waiting
//! follows Erlang C (`P(W > t) = C(c, a) e^{-(cμ-λ)t}`); when arrivals exceed capacity the excess is carried
//! as a fluid backlog that is served first-in first-out, and requests waiting longer than the queue
//! timeout are dropped. The p95 latency is the p95 wait plus the p95 service time (an upper bound of the
//! p95 of their sum, so violations are counted slightly early rather than late).

use serde::Serialize;

use crate::sizing::{QueueModel, mmc_wait};

/// The deployment settings the queue model needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Deployment {
    /// Pods as queues, with the SLO as the objectives.
    pub queue: QueueModel,
    pub idle_cpu: f64,
    pub queue_timeout: f64,
}

/// What one tick looked like for one policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TickOutcome {
    /// Mean queue wait of the tick's requests, seconds.
    pub wait_mean: f64,
    /// p95 latency (wait plus service), seconds.
    pub latency_p95: f64,
    /// CPU per ready pod as a fraction of its one-core request.
    pub cpu: f64,
    /// Requests in flight (in service or queued) per ready pod.
    pub inflight_per_pod: f64,
    pub dropped: f64,
}

impl Deployment {
    /// Advances the queue by one tick of `dt` seconds with `arrivals` requests and `ready` pods; `backlog`
    /// is the fluid queue carried between ticks.
    pub(crate) fn tick(
        &self,
        ready: u32,
        arrivals: f64,
        dt: f64,
        backlog: &mut f64,
    ) -> TickOutcome {
        let servers = u64::from(ready) * u64::from(self.queue.concurrency);
        let mu = self.queue.worker_rate();
        let capacity = servers as f64 * mu;
        let lambda = arrivals / dt;
        let service_p95 = self.queue.service_p95();
        if ready == 0 {
            let waiting = *backlog + arrivals;
            let kept = waiting.min(lambda.max(1.0) * self.queue_timeout);
            *backlog = kept;
            return TickOutcome {
                wait_mean: self.queue_timeout,
                latency_p95: self.queue_timeout + service_p95,
                cpu: 0.0,
                inflight_per_pod: 0.0,
                dropped: waiting - kept,
            };
        }
        let before = *backlog;
        let work = before + arrivals;
        let served = work.min(capacity * dt);
        let mut after = work - served;
        let limit = capacity * self.queue_timeout;
        let dropped = (after - limit).max(0.0);
        after -= dropped;
        *backlog = after;
        let busy = served / (capacity * dt);
        let (wait_mean, wait_p95, queued) = match mmc_wait(servers, lambda, mu) {
            // Little's law gives the steady queue length.
            Some((mean, p95)) if before < 1.0 && after < 1.0 => (mean, p95, lambda * mean),
            // Overloaded or still draining: the FIFO backlog is the queue and sets the wait.
            _ => {
                let queued = 0.5 * (before + after);
                (queued / capacity, before.max(after) / capacity, queued)
            }
        };
        let in_service = served / dt / mu;
        TickOutcome {
            wait_mean,
            latency_p95: wait_p95 + service_p95,
            cpu: self.idle_cpu + (1.0 - self.idle_cpu) * busy,
            inflight_per_pod: (in_service + queued) / f64::from(ready),
            dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            queue: QueueModel {
                pod_capacity_rps: 10.0,
                concurrency: 4,
                latency_p95_seconds: 2.0,
                queue_wait_seconds: 0.5,
                burst_window_seconds: 5.0,
                burst_sigmas: 2.5,
            },
            idle_cpu: 0.05,
            queue_timeout: 30.0,
        }
    }

    #[test]
    fn overload_builds_then_drains_backlog() {
        let d = deployment();
        let mut backlog = 0.0;
        let over = d.tick(2, 150.0, 5.0, &mut backlog);
        assert!(
            (backlog - 50.0).abs() < 1e-9,
            "30 rps against 20 rps for 5 s leaves 50"
        );
        assert!(
            (over.cpu - 1.0).abs() < 1e-9,
            "saturated pods show full CPU"
        );
        assert!(over.latency_p95 > 2.0);
        let drain = d.tick(4, 50.0, 5.0, &mut backlog);
        assert_eq!(
            backlog, 0.0,
            "40 rps capacity clears 50 queued plus 50 new in 5 s"
        );
        assert!(drain.wait_mean > 0.0);
    }
}
