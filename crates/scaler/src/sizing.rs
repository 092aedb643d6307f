//! Sizing a fleet for a request rate: a plain per-pod capacity, or a queue model (M/M/c, Erlang C) that
//! finds the fewest pods meeting a latency objective.
//!
//! A ratio `rate / capacity` sizes a fleet to run at a fixed utilization, which is too little for a
//! small fleet (a few pods near saturation queue badly) and too much for a large one (hundreds of
//! workers absorb bursts at high utilization). The queue model answers the question the operator
//! actually has: how many pods keep the p95 latency and the mean queue wait within their objectives.
//! Each pod runs `concurrency` workers with exponential service times and a shared first-in first-out
//! queue, so the fleet is an M/M/c queue with `c = pods × concurrency`.

use serde::Serialize;

use crate::error::ScalerError;

/// Standard deviations of the arrival noise added to a rate when it is sized with headroom: beyond the
/// busiest of a few burst windows, so a count read from one sample still covers the next ones.
pub const DEFAULT_BURST_SIGMAS: f64 = 2.5;
/// Standard deviations of Poisson noise by which the requests of the latest rate window must exceed those
/// of the window before for [`catch_up_rate`] to carry the rise forward. Measured with the simulator on the
/// example traces: at 3 it extrapolated noise often enough to cost up to 50 % more pods than the oracle on
/// a small fleet; at 5 it missed the rise of a step to three times the load.
pub const RISE_SIGMAS: f64 = 4.0;
/// Most workers one pod may declare; real servers run a few to a few hundred.
pub const MAX_CONCURRENCY: u32 = 4096;
/// Most servers (pods × workers) the model evaluates; the Erlang recursion is linear in them.
const MAX_SERVERS: u64 = 1 << 22;

/// One pod as a queue, and the objectives the fleet must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueModel {
    /// Requests per second one pod completes when all its workers are busy.
    pub pod_capacity_rps: f64,
    /// Requests one pod serves at once.
    pub concurrency: u32,
    /// Objective on the p95 latency (queue wait plus service), seconds.
    pub latency_p95_seconds: f64,
    /// Objective on the mean queue wait, seconds.
    pub queue_wait_seconds: f64,
    /// Window over which arrivals are counted when the objectives are judged, seconds. The count in a
    /// window fluctuates around the mean rate by Poisson noise, `sqrt(rate / window)` requests/s: large
    /// for a small fleet, negligible for a large one, which no fixed percentage can express.
    pub burst_window_seconds: f64,
    /// Standard deviations of that noise [`QueueModel::pods_with_headroom`] adds to a rate.
    pub burst_sigmas: f64,
}

impl QueueModel {
    /// Checks the model can be evaluated and its objectives can be met at all; `field` prefixes the
    /// names in errors (e.g. `queueModel`).
    pub fn validate(&self, field: &str) -> Result<(), ScalerError> {
        let positive = |name: &str, v: f64, unit: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ScalerError::spec(
                    format!("{field}.{name}"),
                    format!("must be a finite number of {unit} > 0, got {v}"),
                ))
            }
        };
        positive("capacityPerPod", self.pod_capacity_rps, "requests/s")?;
        positive(
            "latencyP95Milliseconds",
            self.latency_p95_seconds * 1000.0,
            "ms",
        )?;
        positive(
            "queueWaitMilliseconds",
            self.queue_wait_seconds * 1000.0,
            "ms",
        )?;
        positive("burstWindowSeconds", self.burst_window_seconds, "s")?;
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ScalerError::spec(
                format!("{field}.concurrencyPerPod"),
                format!(
                    "must be within 1..={MAX_CONCURRENCY}, got {}",
                    self.concurrency
                ),
            ));
        }
        if !(self.burst_sigmas.is_finite() && (0.0..=10.0).contains(&self.burst_sigmas)) {
            return Err(ScalerError::spec(
                format!("{field}.burstSigmas"),
                format!("must be within 0..=10, got {}", self.burst_sigmas),
            ));
        }
        let service_p95 = self.service_p95();
        if self.latency_p95_seconds <= service_p95 {
            return Err(ScalerError::spec(
                format!("{field}.latencyP95Milliseconds"),
                format!(
                    "must exceed the p95 service time ({:.0} ms for {} workers completing {} requests/s), \
                     got {:.0} ms: no pod count can meet it; raise it or check capacityPerPod and concurrencyPerPod",
                    service_p95 * 1000.0,
                    self.concurrency,
                    self.pod_capacity_rps,
                    self.latency_p95_seconds * 1000.0
                ),
            ));
        }
        Ok(())
    }

    /// Service rate of one worker, requests/s.
    pub fn worker_rate(&self) -> f64 {
        self.pod_capacity_rps / f64::from(self.concurrency.max(1))
    }

    /// Mean service time of one request, seconds.
    pub fn service_mean(&self) -> f64 {
        f64::from(self.concurrency.max(1)) / self.pod_capacity_rps
    }

    /// p95 of one exponential service time, seconds.
    pub fn service_p95(&self) -> f64 {
        20f64.ln() / self.worker_rate()
    }

    /// Whether `pods` pods meet both objectives at a steady arrival rate `rate` with no backlog.
    pub fn meets_objectives(&self, pods: u32, rate: f64) -> bool {
        if pods == 0 {
            return rate <= 0.0;
        }
        let servers = u64::from(pods) * u64::from(self.concurrency.max(1));
        match mmc_wait(servers.min(MAX_SERVERS), rate, self.worker_rate()) {
            Some((mean, p95)) => {
                mean <= self.queue_wait_seconds
                    && p95 + self.service_p95() <= self.latency_p95_seconds
            }
            None => false,
        }
    }

    /// The fewest pods within `min..=max` that meet the objectives at a steady `rate` (requests/s);
    /// `max` when even that falls short. A rate that is not a number sizes for `max`: unknown load is
    /// never a reason to remove capacity.
    pub fn fewest_pods(&self, rate: f64, min: u32, max: u32) -> u32 {
        let max = max.max(min);
        if rate.is_nan() {
            return max;
        }
        // Below `rate / capacity` pods the fleet is overloaded, so the search starts there; `as`
        // saturates, so an absurd rate starts (and ends) at `max`.
        let floor = (rate / self.pod_capacity_rps).floor().min(f64::from(max)) as u32;
        let mut pods = floor.clamp(min, max);
        while pods < max && !self.meets_objectives(pods, rate) {
            pods += 1;
        }
        pods
    }

    /// `rate` plus [`QueueModel::burst_sigmas`] standard deviations of its arrival noise over one burst
    /// window, the rate a fleet must absorb so the objectives hold in the busy windows too.
    pub fn with_burst_headroom(&self, rate: f64) -> f64 {
        rate + self.burst_sigmas * (rate.max(0.0) / self.burst_window_seconds).sqrt()
    }

    /// [`QueueModel::fewest_pods`] for `rate` raised by its burst headroom: what to provision for an
    /// estimated mean rate.
    pub fn pods_with_headroom(&self, rate: f64, min: u32, max: u32) -> u32 {
        self.fewest_pods(self.with_burst_headroom(rate), min, max)
    }

    /// The rate to provision for when requests arrive at `arrival_rate` while `serving_pods` pods hold
    /// `in_flight` requests: the arrivals, plus the backlog drained within `drain_seconds`. The backlog is
    /// the in-flight beyond the pods' workers, grown for `lead_seconds` (until pods ordered now are ready)
    /// by the arrivals the capacity cannot take. That capacity counts each pod already on its way from
    /// the moment it will be ready (`starting_ready_in`, seconds from now; 0 for a pod that is ready but
    /// not yet reporting). Sizing for arrivals alone leaves a burst's backlog to drain at the thin margin
    /// the burst headroom gives; growing it as if no pod were coming orders more pods for work that pods
    /// already starting will take.
    pub fn rate_with_backlog(
        &self,
        arrival_rate: f64,
        in_flight: f64,
        serving_pods: u32,
        starting_ready_in: &[f64],
        lead_seconds: f64,
        drain_seconds: f64,
    ) -> f64 {
        let arrival_rate = arrival_rate.max(0.0);
        if drain_seconds.is_nan() || drain_seconds <= 0.0 {
            return arrival_rate;
        }
        let workers = f64::from(serving_pods) * f64::from(self.concurrency);
        let mut backlog = (in_flight - workers).max(0.0);
        let lead = lead_seconds.max(0.0);
        // A pod that cannot say when it will be ready helps only after the lead, like one ordered now.
        let mut ready_at: Vec<f64> = starting_ready_in
            .iter()
            .map(|t| if t.is_nan() { lead } else { t.clamp(0.0, lead) })
            .collect();
        ready_at.sort_by(f64::total_cmp);
        let mut pods = f64::from(serving_pods);
        let mut since = 0.0;
        for until in ready_at.into_iter().chain(std::iter::once(lead)) {
            let excess = arrival_rate - pods * self.pod_capacity_rps;
            backlog += excess.max(0.0) * (until - since);
            since = until;
            pods += 1.0;
        }
        arrival_rate + backlog / drain_seconds
    }

    /// The arrival rate behind `in_flight` requests on `serving_pods` pods, by Little's law (requests in
    /// service over the mean service time). In-flight beyond the workers is queued work: it is left to an
    /// in-flight or queue-depth target, so a saturated fleet reads as its own capacity and this estimate
    /// grows a step at a time instead of mistaking a backlog for a higher arrival rate.
    pub fn served_rate(&self, in_flight: f64, serving_pods: u32) -> f64 {
        let workers = f64::from(serving_pods) * f64::from(self.concurrency);
        in_flight.max(0.0).min(workers) / self.service_mean()
    }
}

/// An arrival rate read before the latest one, over a window as long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlierRate {
    /// Requests per second.
    pub rate: f64,
    /// Seconds between this reading and the latest: one window when the two windows are adjacent.
    pub seconds_before: f64,
}

/// The arrival rate to size for now, from the rate of the latest rate window (`latest`) and one read
/// before it (`earlier`), both over windows `window_seconds` long. A counter's rate describes a window that
/// ended a scrape and a metric delay ago, so on a rising load it reads low. When the requests counted in the
/// latest window exceed those of the earlier one by more than [`RISE_SIGMAS`] standard deviations of the two
/// Poisson counts, the load is rising beyond noise and the rise is carried one window forward (at its pace
/// per window, when the readings are further apart). Within noise the latest rate stands: extrapolating
/// noise orders pods for bursts that are already over. Negative rates count as none; a rate that is not a
/// number is returned as it is, for the caller's own checks.
pub fn catch_up_rate(latest: f64, earlier: Option<EarlierRate>, window_seconds: f64) -> f64 {
    if latest.is_nan() {
        return latest;
    }
    let latest = latest.max(0.0);
    let usable = |e: &EarlierRate| {
        e.rate.is_finite() && e.seconds_before.is_finite() && e.seconds_before > 0.0
    };
    let Some(earlier) = earlier.filter(usable) else {
        return latest;
    };
    if !(window_seconds.is_finite() && window_seconds > 0.0) {
        return latest;
    }
    let previous = earlier.rate.max(0.0);
    let (now, before) = (latest * window_seconds, previous * window_seconds);
    if now - before > RISE_SIGMAS * (now + before).sqrt() {
        let per_window = (window_seconds / earlier.seconds_before).min(1.0);
        latest + (latest - previous) * per_window
    } else {
        latest
    }
}

/// How a request rate is turned into pods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PodSizing {
    /// `ceil(rate / capacity)`: pods at a fixed load each.
    Capacity { per_pod: f64 },
    /// The fewest pods meeting the queue model's objectives, with burst headroom.
    Queue(QueueModel),
}

impl PodSizing {
    /// Pods for `rate` within `min..=max`; `min` (no opinion) when a capacity is not a positive number.
    pub fn pods(&self, rate: f64, min: u32, max: u32) -> u32 {
        let max = max.max(min);
        match self {
            Self::Capacity { per_pod } => {
                if !(per_pod.is_finite() && *per_pod > 0.0) {
                    return min;
                }
                // `as` saturates, so an absurd rate lands on `max` rather than wrapping.
                ((rate.max(0.0) / per_pod).ceil() as u32).clamp(min, max)
            }
            Self::Queue(model) => model.pods_with_headroom(rate, min, max),
        }
    }
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

/// Steady-state M/M/c waiting: (mean, p95) in seconds, or `None` when arrivals reach capacity (or are
/// not a number).
pub(crate) fn mmc_wait(servers: u64, lambda: f64, mu: f64) -> Option<(f64, f64)> {
    let capacity = servers as f64 * mu;
    if lambda.is_nan() || lambda >= capacity {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> QueueModel {
        QueueModel {
            pod_capacity_rps: 10.0,
            concurrency: 4,
            latency_p95_seconds: 2.0,
            queue_wait_seconds: 0.5,
            burst_window_seconds: 5.0,
            burst_sigmas: DEFAULT_BURST_SIGMAS,
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
    fn objectives_are_monotone_in_pods() {
        let m = model();
        let ok: Vec<bool> = (1..20).map(|r| m.meets_objectives(r, 70.0)).collect();
        let first = ok
            .iter()
            .position(|x| *x)
            .expect("some count meets the objectives");
        assert!(
            ok[first..].iter().all(|x| *x),
            "more pods never break the objectives"
        );
        assert!(first + 1 >= 7, "70 rps needs at least 7 pods of 10 rps");
    }

    #[test]
    fn fewest_pods_table() {
        let m = model();
        let cases: &[(f64, u32, u32, u32, &str)] = &[
            (0.0, 1, 50, 1, "no load: the minimum"),
            (-5.0, 2, 50, 2, "a negative rate is no load"),
            (
                70.0,
                1,
                50,
                8,
                "7 pods of 10 rps saturate; one more keeps the wait short",
            ),
            (1e9, 1, 50, 50, "more than max can serve: max"),
            (f64::INFINITY, 1, 50, 50, "an infinite rate: max"),
            (f64::NAN, 1, 50, 50, "unknown load never removes capacity"),
            (
                70.0,
                20,
                10,
                20,
                "min above max: min wins, as clamping does",
            ),
        ];
        for (rate, min, max, want, why) in cases {
            assert_eq!(m.fewest_pods(*rate, *min, *max), *want, "{why}");
        }
    }

    #[test]
    fn small_fleets_get_relatively_more_headroom_than_large_ones() {
        let m = model();
        let small = m.pods_with_headroom(20.0, 1, 10_000);
        let large = m.pods_with_headroom(2000.0, 1, 10_000);
        let ratio = |pods: u32, rate: f64| f64::from(pods) * m.pod_capacity_rps / rate;
        assert!(
            ratio(small, 20.0) > ratio(large, 2000.0) + 0.2,
            "small {small} pods, large {large} pods"
        );
        assert!(large >= 200, "2000 rps needs at least 200 pods of 10 rps");
    }

    #[test]
    fn served_rate_is_littles_law_capped_at_the_workers() {
        let m = model();
        // Mean service time 0.4 s: 8 requests in service are 20 requests/s.
        assert!((m.served_rate(8.0, 3) - 20.0).abs() < 1e-9);
        assert!(
            (m.served_rate(100.0, 3) - 30.0).abs() < 1e-9,
            "a backlog reads as the fleet's own capacity"
        );
        assert_eq!(m.served_rate(-1.0, 3), 0.0);
    }

    #[test]
    fn backlog_adds_rate_to_drain_it() {
        let m = model();
        // 3 pods: 12 workers, 30 requests/s. 20 in flight is 8 queued.
        let cases: &[(f64, f64, f64, f64, f64, &str)] = &[
            (20.0, 8.0, 60.0, 30.0, 20.0, "no queue: the arrivals"),
            (
                20.0,
                20.0,
                60.0,
                30.0,
                20.0 + 8.0 / 30.0,
                "8 queued over 30 s",
            ),
            (
                40.0,
                12.0,
                60.0,
                30.0,
                40.0 + 10.0 * 60.0 / 30.0,
                "10/s beyond capacity for the 60 s lead",
            ),
            (20.0, 20.0, 60.0, 0.0, 20.0, "no drain time: arrivals only"),
            (-5.0, 0.0, 60.0, 30.0, 0.0, "negative arrivals are none"),
        ];
        for (arrivals, in_flight, lead, drain, want, why) in cases {
            let got = m.rate_with_backlog(*arrivals, *in_flight, 3, &[], *lead, *drain);
            assert!((got - want).abs() < 1e-9, "{why}: {got}");
        }
    }

    #[test]
    fn pods_on_their_way_stop_the_backlog_growing_once_ready() {
        let m = model();
        // 3 pods serve 30/s; 45/s arrive, 12 in flight (no queue), 60 s lead, 30 s drain.
        let cases: &[(&[f64], f64, &str)] = &[
            (
                &[],
                15.0 * 60.0,
                "no pod coming: 15/s beyond capacity for the whole lead",
            ),
            (&[0.0], 5.0 * 60.0, "one pod ready now: 5/s beyond it"),
            (&[20.0], 15.0 * 20.0 + 5.0 * 40.0, "one pod ready in 20 s"),
            (
                &[20.0, 10.0],
                15.0 * 10.0 + 5.0 * 10.0,
                "two pods, in any order: none beyond 50/s",
            ),
            (
                &[90.0],
                15.0 * 60.0,
                "a pod ready after the lead is like one ordered now",
            ),
            (
                &[f64::NAN],
                15.0 * 60.0,
                "a pod with no known start helps after the lead",
            ),
            (&[-5.0], 5.0 * 60.0, "a late pod is ready now"),
        ];
        for (starting, backlog, why) in cases {
            let got = m.rate_with_backlog(45.0, 12.0, 3, starting, 60.0, 30.0);
            let want = 45.0 + backlog / 30.0;
            assert!((got - want).abs() < 1e-9, "{why}: {got} against {want}");
        }
    }

    #[test]
    fn a_significant_rise_is_carried_one_window_forward() {
        // 15 s windows: 3/s is 45 requests, so 4 sigmas of (45 + n) decide.
        let adjacent = |rate| {
            Some(EarlierRate {
                rate,
                seconds_before: 15.0,
            })
        };
        let cases: &[(f64, Option<EarlierRate>, f64, &str)] = &[
            (3.0, adjacent(3.0), 3.0, "steady"),
            (
                4.0,
                adjacent(3.0),
                4.0,
                "60 after 45 is noise (15 < 4 x 10.2)",
            ),
            (
                6.0,
                adjacent(3.0),
                6.0,
                "90 after 45 is still noise (45 < 4 x 11.6)",
            ),
            (
                7.0,
                adjacent(3.0),
                11.0,
                "105 after 45 is a rise (60 > 4 x 12.2): one more window of it",
            ),
            (
                7.0,
                Some(EarlierRate {
                    rate: 3.0,
                    seconds_before: 30.0,
                }),
                9.0,
                "the same rise over two windows: half of it per window",
            ),
            (1.0, adjacent(6.0), 1.0, "a fall is not extrapolated"),
            (-2.0, adjacent(3.0), 0.0, "negative rates are none"),
            (7.0, None, 7.0, "no earlier reading: the latest rate"),
            (
                7.0,
                adjacent(f64::NAN),
                7.0,
                "an unusable earlier reading is none",
            ),
        ];
        for (latest, earlier, want, why) in cases {
            let got = catch_up_rate(*latest, *earlier, 15.0);
            assert!((got - want).abs() < 1e-9, "{why}: {got}");
        }
        assert!(
            catch_up_rate(f64::NAN, adjacent(3.0), 15.0).is_nan(),
            "not a number is the caller's to refuse"
        );
        assert_eq!(
            catch_up_rate(6.0, adjacent(3.0), 0.0),
            6.0,
            "no window, no counts"
        );
    }

    #[test]
    fn capacity_sizing_is_a_ceiling_ratio() {
        let sizing = PodSizing::Capacity { per_pod: 10.0 };
        assert_eq!(sizing.pods(31.0, 1, 50), 4);
        assert_eq!(sizing.pods(0.0, 2, 50), 2);
        assert_eq!(PodSizing::Capacity { per_pod: 0.0 }.pods(31.0, 1, 50), 1);
        assert_eq!(sizing.pods(1e12, 1, 50), 50);
    }

    #[test]
    fn validation_names_the_field_and_the_fix() {
        let cases: Vec<(QueueModel, &str)> = vec![
            (
                QueueModel {
                    pod_capacity_rps: 0.0,
                    ..model()
                },
                "queueModel.capacityPerPod",
            ),
            (
                QueueModel {
                    concurrency: 0,
                    ..model()
                },
                "queueModel.concurrencyPerPod",
            ),
            (
                QueueModel {
                    latency_p95_seconds: 0.5,
                    ..model()
                },
                "queueModel.latencyP95Milliseconds",
            ),
            (
                QueueModel {
                    burst_sigmas: f64::NAN,
                    ..model()
                },
                "queueModel.burstSigmas",
            ),
        ];
        for (m, field) in cases {
            match m.validate("queueModel") {
                Err(ScalerError::InvalidSpec { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(model().validate("queueModel"), Ok(()));
    }
}
