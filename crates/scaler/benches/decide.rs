//! One decision for 500 workloads with 3 metrics (cpu utilization, pods average, external value) each.

use criterion::{Criterion, criterion_group, criterion_main};
use mcpulse_scaler::{
    AutoscalerSpec, ControllerConfig, HorizontalPodAutoscalerBehavior, MetricObservation,
    MetricSpec, MetricTarget, Observation, PodInfo, PodSample, Quantity, Scaler, Timestamp,
};
use std::hint::black_box;
use std::time::Duration;

const WORKLOADS: usize = 500;
const PODS: usize = 10;

fn fleet() -> (Vec<Scaler>, Vec<Observation>) {
    let start = Timestamp::from_secs(1_000_000);
    let now = start.plus(Duration::from_secs(3600));
    let mut scalers = Vec::with_capacity(WORKLOADS);
    let mut observations = Vec::with_capacity(WORKLOADS);
    for w in 0..WORKLOADS {
        let spec = AutoscalerSpec {
            min_replicas: Some(1),
            max_replicas: 100,
            metrics: vec![
                MetricSpec::resource_utilization("cpu", 60),
                MetricSpec::pods_average("mcp_requests_per_second", Quantity::from_units(20)),
                MetricSpec::external(
                    "mcp_queue_depth",
                    MetricTarget::value(Quantity::from_units(50)),
                ),
            ],
            // Half the fleet on the behavior path, half on the legacy path.
            behavior: (w % 2 == 0).then(HorizontalPodAutoscalerBehavior::default),
        };
        let pods: Vec<PodInfo> = (0..PODS)
            .map(|i| PodInfo::running_ready(&format!("w{w}-p{i}"), start))
            .collect();
        let sample = |i: usize, milli: i64| PodSample {
            pod: format!("w{w}-p{i}"),
            value: Quantity::from_milli(milli),
            timestamp: now,
            window: Duration::from_secs(30),
        };
        let load = 300 + (w as i64 * 37) % 900;
        observations.push(Observation {
            spec_replicas: PODS as i32,
            status_replicas: PODS as i32,
            metrics: vec![
                MetricObservation::Resource {
                    usage: (0..PODS).map(|i| sample(i, load + i as i64 * 10)).collect(),
                    requests: pods
                        .iter()
                        .map(|p| (p.name.clone(), Quantity::from_milli(1000)))
                        .collect(),
                },
                MetricObservation::Pods {
                    samples: (0..PODS).map(|i| sample(i, load * 30)).collect(),
                },
                MetricObservation::External {
                    values: vec![Quantity::from_units(load / 10)],
                },
            ],
            pods,
        });
        scalers.push(Scaler::new(&spec, ControllerConfig::default()).expect("bench spec is valid"));
    }
    (scalers, observations)
}

fn bench(c: &mut Criterion) {
    let (mut scalers, observations) = fleet();
    let mut now = Timestamp::from_secs(1_003_600);
    c.bench_function("decide_500_workloads_3_metrics", |b| {
        b.iter(|| {
            now = now.plus(Duration::from_secs(15));
            for (s, o) in scalers.iter_mut().zip(&observations) {
                black_box(
                    s.decide(black_box(o), now)
                        .expect("bench observation is valid"),
                );
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
