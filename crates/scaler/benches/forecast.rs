//! Forecast refit cost for a fleet: 500 workloads, each one week of 5-minute points (2016), horizon 12.
//!
//! Each workload is a slice of a real trace (NAB, `shared/traces`) at a different offset, scaled
//! differently, so the fleet holds 500 distinct series. `refit_500_workloads_1_week_5min` runs the full
//! model selection (`forecast`) on every workload: 5.1-6.2 s on the shared 2-core machine under load.
//! `cycle_500_workloads_remembered` is one decision cycle of the stateful path: every workload is fed its
//! next point and refitted by its `Forecaster`, which refits only the remembered model and runs a full
//! selection once every `reselect_every` forecasts (staggered over the fleet) or on degradation.
//! `refit_500_workloads_remembered_only` refits every remembered model and selects none: the floor;
//! `refit_1_workload_1_week_5min` is one full selection.
//! Run with `cargo bench -p mcpulse-scaler --bench forecast`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcpulse_scaler::forecast::{
    ForecastConfig, Forecaster, MAX_RESELECT_EVERY, RefitKind, RefitPolicy, fill_gaps, forecast,
    parse_series_csv,
};

const WORKLOADS: usize = 500;
const WEEK: usize = 2016;
/// Points after the first week that the stateful cycles feed, one per cycle; more than criterion runs.
const STREAM: usize = 1024;

fn fleet() -> Vec<Vec<f64>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/traces");
    let sources: Vec<Vec<f64>> = ["Twitter_volume_GOOG", "ec2_cpu_utilization_5f5533"]
        .iter()
        .filter_map(|name| std::fs::read_to_string(format!("{dir}/{name}.csv")).ok())
        .filter_map(|text| parse_series_csv(&text).ok())
        .filter_map(|s| fill_gaps(&s.values).ok())
        .map(|f| f.values)
        .filter(|v| v.len() > WEEK + STREAM)
        .collect();
    assert!(
        !sources.is_empty(),
        "benchmark traces missing from shared/traces"
    );
    (0..WORKLOADS)
        .map(|i| {
            let source = &sources[i % sources.len()];
            let offset = (i * 37) % (source.len() - WEEK - STREAM);
            let factor = 1.0 + (i % 13) as f64;
            source[offset..offset + WEEK + STREAM]
                .iter()
                .map(|v| v * factor)
                .collect()
        })
        .collect()
}

fn refit_fleet(c: &mut Criterion) {
    let fleet = fleet();
    let config = ForecastConfig::default();
    let policy = RefitPolicy::default();
    let mut group = c.benchmark_group("forecast");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("refit_500_workloads_1_week_5min", |b| {
        b.iter(|| {
            for series in &fleet {
                let _ = black_box(forecast(black_box(&series[..WEEK]), &config));
            }
        })
    });

    // Primed outside the measurement: each workload's first forecast is its first full selection.
    let mut forecasters: Vec<Forecaster> = fleet
        .iter()
        .enumerate()
        .map(|(i, series)| {
            let mut f = Forecaster::new(config, policy)
                .expect("default config and policy are valid")
                .with_stagger(i);
            f.observe(&series[..WEEK]).expect("trace points are valid");
            let _ = f.forecast();
            f
        })
        .collect();
    let (mut cycle, mut selections) = (0usize, 0usize);
    group.bench_function("cycle_500_workloads_remembered", |b| {
        b.iter(|| {
            // Past the stream the series wraps around: a level shift, which only adds selections.
            let step = WEEK + cycle % STREAM;
            for (f, series) in forecasters.iter_mut().zip(&fleet) {
                let _ = f.observe(&series[step..=step]);
                if let Ok(refit) = black_box(f.forecast()) {
                    selections += usize::from(matches!(refit.kind, RefitKind::Selected(_)));
                }
            }
            cycle += 1;
        })
    });
    eprintln!(
        "cycle_500_workloads_remembered: {cycle} cycles, {:.1} full selections a cycle",
        selections as f64 / cycle.max(1) as f64
    );

    group.bench_function("refit_1_workload_1_week_5min", |b| {
        b.iter(|| black_box(forecast(black_box(&fleet[0][..WEEK]), &config)))
    });
    // Every workload refits its remembered model and none selects: the floor of a cycle's cost.
    let never = RefitPolicy {
        reselect_every: MAX_RESELECT_EVERY,
        ..policy
    };
    let mut remembering: Vec<Forecaster> = fleet
        .iter()
        .map(|series| {
            let mut f = Forecaster::new(config, never).expect("valid config and policy");
            f.observe(&series[..WEEK]).expect("trace points are valid");
            let _ = f.forecast();
            f
        })
        .collect();
    group.bench_function("refit_500_workloads_remembered_only", |b| {
        b.iter(|| {
            for f in &mut remembering {
                let _ = black_box(f.forecast());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, refit_fleet);
criterion_main!(benches);
