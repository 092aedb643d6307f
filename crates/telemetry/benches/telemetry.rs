//! Hot-path and scrape costs: recording an operation, admitting a label value, encoding 5,000 series.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcpulse_telemetry::{
    CardinalityLimits, Direction, Format, McpMetrics, MessageKind, ProcessCollector, Registry,
    encode,
};

fn recording(c: &mut Criterion) {
    let mut registry = Registry::default();
    let metrics = McpMetrics::new(&mut registry, CardinalityLimits::default());
    let elapsed = Duration::from_millis(3);
    c.bench_function("record_operation/tools_call_seen", |b| {
        b.iter(|| {
            metrics.record_operation(
                black_box("tools/call"),
                black_box(Some("search")),
                None,
                elapsed,
            )
        })
    });
    c.bench_function("record_operation/error", |b| {
        b.iter(|| {
            metrics.record_operation(
                black_box("tools/call"),
                Some("search"),
                black_box(Some("-32603")),
                elapsed,
            )
        })
    });
    // Past the limit every new value takes the write lock and lands in `_other`.
    for i in 0..200 {
        metrics.record_operation(&format!("m{i}"), None, None, elapsed);
    }
    c.bench_function("record_operation/overflowing_method", |b| {
        b.iter(|| metrics.record_operation(black_box("never-seen"), None, None, elapsed))
    });
    c.bench_function("record_message", |b| {
        b.iter(|| {
            metrics.record_message(
                Direction::ClientToServer,
                MessageKind::Request,
                black_box(Some("tools/call")),
                512,
            )
        })
    });
    c.bench_function("record_client_operation", |b| {
        b.iter(|| {
            metrics.record_client_operation(
                black_box(Some("claude-code")),
                black_box("tools/call"),
                black_box(Some("search")),
            )
        })
    });
    // What the meter records for one proxied tools/call: both messages, the operation, the client.
    c.bench_function("per_request", |b| {
        b.iter(|| {
            metrics.record_message(
                Direction::ClientToServer,
                MessageKind::Request,
                black_box(Some("tools/call")),
                120,
            );
            metrics.record_message(
                Direction::ServerToClient,
                MessageKind::Response,
                black_box(Some("tools/call")),
                300,
            );
            metrics.record_operation(black_box("tools/call"), Some("search"), None, elapsed);
            metrics.record_client_operation(Some("claude-code"), "tools/call", Some("search"));
        })
    });
    let upstream = metrics.upstream("default");
    c.bench_function("upstream/in_flight_guard", |b| {
        b.iter(|| drop(black_box(upstream.request_started())))
    });
}

fn encoding(c: &mut Criterion) {
    let mut registry = Registry::default();
    let limits = CardinalityLimits::new(1000, 128).expect("valid limits");
    let metrics = McpMetrics::new(&mut registry, limits);
    // 250 label sets x 20 lines (17 buckets, +Inf, _sum, _count) = 5,000 histogram series.
    for method in 0..50 {
        for tool in 0..5 {
            metrics.record_operation(
                &format!("method/{method}"),
                Some(&format!("tool-{tool}")),
                None,
                Duration::from_millis(7),
            );
        }
    }
    let lines = encode(&registry, Format::PrometheusText)
        .expect("encodes")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    println!("encode benchmark registry: {lines} sample lines");
    c.bench_function("encode/5000_series/openmetrics", |b| {
        b.iter(|| encode(black_box(&registry), Format::OpenMetrics))
    });
    c.bench_function("encode/5000_series/prometheus_text", |b| {
        b.iter(|| encode(black_box(&registry), Format::PrometheusText))
    });

    let mut process = Registry::default();
    process.register_collector(Box::new(ProcessCollector::new()));
    c.bench_function("encode/process_collector", |b| {
        b.iter(|| encode(black_box(&process), Format::PrometheusText))
    });
}

criterion_group!(benches, recording, encoding);
criterion_main!(benches);
