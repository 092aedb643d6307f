//! Forecast refit cost for a fleet: 500 workloads, each one week of 5-minute points (2016), horizon 12.
//!
//! Each workload is a slice of a real trace (NAB, `shared/traces`) at a different offset, scaled
//! differently, so the fleet holds 500 distinct series. A full refit of the fleet measured 5.1-6.2 s on
//! the shared 2-core machine under load; the budget is met by refitting each workload once per new data
//! point (5 min), staggered over the 20 decision cycles (15 s) of that step: 25 refits, about 0.3 s, a cycle. Run with `cargo bench -p mcpulse-scaler --bench forecast`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcpulse_scaler::forecast::{ForecastConfig, fill_gaps, forecast, parse_series_csv};

const WORKLOADS: usize = 500;
const WEEK: usize = 2016;

fn fleet() -> Vec<Vec<f64>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/traces");
    let sources: Vec<Vec<f64>> = ["Twitter_volume_GOOG", "ec2_cpu_utilization_5f5533"]
        .iter()
        .filter_map(|name| std::fs::read_to_string(format!("{dir}/{name}.csv")).ok())
        .filter_map(|text| parse_series_csv(&text).ok())
        .filter_map(|s| fill_gaps(&s.values).ok())
        .map(|f| f.values)
        .filter(|v| v.len() > WEEK)
        .collect();
    assert!(
        !sources.is_empty(),
        "benchmark traces missing from shared/traces"
    );
    (0..WORKLOADS)
        .map(|i| {
            let source = &sources[i % sources.len()];
            let offset = (i * 37) % (source.len() - WEEK);
            let factor = 1.0 + (i % 13) as f64;
            source[offset..offset + WEEK]
                .iter()
                .map(|v| v * factor)
                .collect()
        })
        .collect()
}

fn refit_fleet(c: &mut Criterion) {
    let fleet = fleet();
    let config = ForecastConfig::default();
    let mut group = c.benchmark_group("forecast");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("refit_500_workloads_1_week_5min", |b| {
        b.iter(|| {
            for history in &fleet {
                let _ = black_box(forecast(black_box(history), &config));
            }
        })
    });
    group.bench_function("refit_1_workload_1_week_5min", |b| {
        b.iter(|| black_box(forecast(black_box(&fleet[0]), &config)))
    });
    group.finish();
}

criterion_group!(benches, refit_fleet);
criterion_main!(benches);
