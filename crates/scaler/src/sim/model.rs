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

/// The deployment settings the queue model needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Deployment {
    pub pod_capacity: f64,
    pub concurrency: u32,
    pub idle_cpu: f64,
    pub queue_timeout: f64,
}

impl Deployment {
    fn mu(&self) -> f64 {
        self.pod_capacity / f64::from(self.concurrency)
    }

    /// p95 of one exponential service time.
    pub(crate) fn service_p95(&self) -> f64 {
        20f64.ln() / self.mu()
    }
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

/// Erlang C: the probability that an arrival waits, for `servers` servers and offered load `a = λ/μ`.
/// Returns 1 when the system is not stable (`a >= servers`).
pub fn erlang_c(servers: u64, a: f64) -> f64 {
    let c = servers as f64;
    if servers == 0 || a >= c {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=servers {
        b = a * b / (k as f64 + a * b);
    }
    c * b / (c - a * (1.0 - b))
}

/// Steady-state M/M/c waiting: (mean, p95) in seconds, or `None` when arrivals reach capacity.
pub(crate) fn mmc_wait(servers: u64, lambda: f64, mu: f64) -> Option<(f64, f64)> {
    let capacity = servers as f64 * mu;
    if lambda >= capacity {
        return None;
    }
    if lambda <= 0.0 {
        return Some((0.0, 0.0));
    }
    let pc = erlang_c(servers, lambda / mu);
    let drain = capacity - lambda;
    let mean = pc / drain;
    let p95 = if pc <= 0.05 {
        0.0
    } else {
        (pc / 0.05).ln() / drain
    };
    Some((mean, p95))
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
        let servers = u64::from(ready) * u64::from(self.concurrency);
        let mu = self.mu();
        let capacity = servers as f64 * mu;
        let lambda = arrivals / dt;
        let service_p95 = self.service_p95();
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

    /// Whether `ready` pods meet the SLO for a steady arrival rate `lambda` with no backlog.
    pub(crate) fn meets_slo(&self, ready: u32, lambda: f64, slo_p95: f64, slo_wait: f64) -> bool {
        let servers = u64::from(ready) * u64::from(self.concurrency);
        if ready == 0 {
            return lambda <= 0.0;
        }
        match mmc_wait(servers, lambda, self.mu()) {
            Some((mean, p95)) => mean <= slo_wait && p95 + self.service_p95() <= slo_p95,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            pod_capacity: 10.0,
            concurrency: 4,
            idle_cpu: 0.05,
            queue_timeout: 30.0,
        }
    }

    #[test]
    fn erlang_c_known_values() {
        // Textbook values: one server is M/M/1 where C = rho; two servers at a = 1 give 1/3.
        let cases: &[(u64, f64, f64, &str)] = &[
            (1, 0.5, 0.5, "M/M/1: C equals utilization"),
            (2, 1.0, 1.0 / 3.0, "M/M/2 at a = 1"),
            (10, 10.0, 1.0, "saturated"),
            (5, 0.0, 0.0, "no load never waits"),
        ];
        for (c, a, want, why) in cases {
            assert!(
                (erlang_c(*c, *a) - want).abs() < 1e-9,
                "{why}: {}",
                erlang_c(*c, *a)
            );
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

    #[test]
    fn slo_check_is_monotone_in_pods() {
        let d = deployment();
        let ok: Vec<bool> = (1..20).map(|r| d.meets_slo(r, 70.0, 2.0, 0.5)).collect();
        let first = ok
            .iter()
            .position(|x| *x)
            .expect("some count meets the SLO");
        assert!(
            ok[first..].iter().all(|x| *x),
            "more pods never break the SLO"
        );
        assert!(first + 1 >= 7, "70 rps needs at least 7 pods of 10 rps");
    }
}
