//! Cost of computing due times, which the scheduler pays once per call on its single task.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcpulse_load::{Arrivals, RateShape, Schedule};

fn schedule(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    let calls = 100_000u64;
    group.throughput(Throughput::Elements(calls));
    let steps = RateShape::Steps {
        rps: (0..1440)
            .map(|i| 500.0 + 400.0 * (f64::from(i) / 229.0).sin())
            .collect(),
    };
    // (name, shape, arrivals): each yields about 100,000 calls over 100 s.
    let cases = [
        (
            "constant_uniform",
            RateShape::Constant { rps: 1000.0 },
            Arrivals::Uniform,
        ),
        (
            "ramp_poisson",
            RateShape::Ramp {
                from: 0.0,
                to: 2000.0,
            },
            Arrivals::Poisson,
        ),
        ("trace_1440_steps", steps, Arrivals::Uniform),
    ];
    for (name, shape, arrivals) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                Schedule::new(&shape, Duration::from_secs(100), arrivals, 1)
                    .fold(Duration::ZERO, |_, due| black_box(due))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, schedule);
criterion_main!(benches);
