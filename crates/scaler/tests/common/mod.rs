//! Builders shared by the integration tests: pods, cpu samples and observations.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use mcpulse_scaler::{MetricObservation, Observation, PodInfo, PodSample, Quantity, Timestamp};
use std::time::Duration;

pub const START: Timestamp = Timestamp::from_secs(1_000_000);

/// An instant `secs` seconds after the pods have long finished initialising.
pub fn at(secs: i64) -> Timestamp {
    START
        .plus(Duration::from_secs(3600))
        .plus(Duration::from_secs(secs as u64))
}

pub fn pods(n: usize) -> Vec<PodInfo> {
    (0..n)
        .map(|i| PodInfo::running_ready(&format!("p{i}"), START))
        .collect()
}

pub fn samples(values: &[i64], now: Timestamp) -> Vec<PodSample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| PodSample {
            pod: format!("p{i}"),
            value: Quantity::from_milli(*v),
            timestamp: now,
            window: Duration::from_secs(30),
        })
        .collect()
}

/// CPU usage in milli-cores for `n` pods with 1000m requests each (pods without a value report nothing).
pub fn cpu(n: usize, usage: &[i64], now: Timestamp) -> MetricObservation {
    MetricObservation::Resource {
        usage: samples(usage, now),
        requests: (0..n)
            .map(|i| (format!("p{i}"), Quantity::from_milli(1000)))
            .collect(),
    }
}

/// `n` ready pods, `current` replicas, and the given metric observations.
pub fn obs(current: i32, n: usize, metrics: Vec<MetricObservation>) -> Observation {
    Observation {
        spec_replicas: current,
        status_replicas: current,
        pods: pods(n),
        metrics,
    }
}

/// Every one of `n` pods at the same cpu usage.
pub fn flat_cpu(n: usize, milli: i64, now: Timestamp) -> MetricObservation {
    cpu(n, &vec![milli; n], now)
}
