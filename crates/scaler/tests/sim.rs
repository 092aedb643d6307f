//! Public behaviour of the simulator: determinism, the oracle as a floor, bounds, trace errors and formats.

use std::time::Duration;

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::sim::{
    FlashCrowd, GeneratorConfig, PolicyKind, SeasonalNaive, SimConfig, SimError, SimReport, Trace,
    TraceFormat, TraceOptions, detect_format, generate, parse_trace, render_svg, simulate,
};

fn spiky_day() -> Trace {
    generate(&GeneratorConfig {
        duration: Duration::from_secs(6 * 3600),
        base_rps: 40.0,
        flash_crowds: vec![FlashCrowd {
            start: Duration::from_secs(3 * 3600),
            rise: Duration::from_secs(120),
            hold: Duration::from_secs(600),
            decay: Duration::from_secs(300),
            factor: 3.0,
        }],
        seed: 5,
        ..GeneratorConfig::default()
    })
    .expect("valid generator config")
}

fn run(trace: &Trace, config: &SimConfig) -> SimReport {
    let mut predictor = SeasonalNaive::new(config.daily_period_for(trace));
    simulate(trace, config, &PolicyKind::ALL, &mut predictor, &mut |_| {}).expect("simulates")
}

fn policy<'a>(r: &'a SimReport, name: &str) -> &'a mcpulse_scaler::sim::PolicyReport {
    r.policies
        .iter()
        .find(|p| p.policy == name)
        .expect("policy reported")
}

#[test]
fn same_seed_same_report() {
    let trace = spiky_day();
    let config = SimConfig::default();
    let a = serde_json::to_string(&run(&trace, &config)).expect("serializes");
    let b = serde_json::to_string(&run(&trace, &config)).expect("serializes");
    assert_eq!(a, b, "a replay is deterministic");
    let other = SimConfig {
        seed: 2,
        ..SimConfig::default()
    };
    let c = serde_json::to_string(&run(&trace, &other)).expect("serializes");
    assert_ne!(a, c, "the seed drives the arrival noise");
}

#[test]
fn oracle_is_the_floor() {
    let trace = spiky_day();
    let report = run(&trace, &SimConfig::default());
    let oracle = policy(&report, "oracle");
    assert_eq!(
        oracle.slo_violation_minutes, 0.0,
        "the oracle meets the SLO below max replicas"
    );
    assert_eq!(oracle.overprovision_vs_oracle, 0.0);
    for p in &report.policies {
        assert!(
            p.slo_violation_minutes >= oracle.slo_violation_minutes,
            "{} beats the oracle on SLO",
            p.policy
        );
        if p.slo_violation_minutes == 0.0 {
            assert!(
                p.replica_minutes >= oracle.replica_minutes,
                "{} meets the SLO more cheaply than the oracle",
                p.policy
            );
        }
    }
    let cpu = policy(&report, "hpa-cpu");
    assert!(
        cpu.slo_violation_minutes > 0.0,
        "a 3x flash crowd hurts the CPU HPA"
    );
    assert!(cpu.max_recovery_seconds > 0.0 && cpu.violation_episodes > 0);
    let mcpulse = policy(&report, "mcpulse");
    assert!(
        mcpulse.slo_violation_minutes < cpu.slo_violation_minutes,
        "queue-aware scaling recovers faster than CPU alone"
    );
    assert!(mcpulse.predictive_active_fraction.is_some());
}

#[test]
fn replica_bounds_hold() {
    let trace = spiky_day();
    let config = SimConfig {
        min_replicas: 2,
        max_replicas: 5,
        ..SimConfig::default()
    };
    let report = run(&trace, &config);
    for p in &report.policies {
        assert!(p.peak_replicas <= 5, "{} exceeded max", p.policy);
        assert!(p.mean_replicas >= 2.0, "{} went below min", p.policy);
    }
    for point in &report.timeline.points {
        assert!(
            point.replicas.iter().all(|r| (2..=5).contains(r)),
            "{:?}",
            point.replicas
        );
    }
    assert!(
        policy(&report, "oracle").slo_violation_minutes > 0.0,
        "even the oracle cannot serve 120 req/s with 5 pods of 10 req/s"
    );
}

#[test]
fn bad_settings_are_refused() {
    let trace = spiky_day();
    let cases: &[(SimConfig, &str, &str)] = &[
        (
            SimConfig {
                slo_p95_seconds: 0.5,
                ..SimConfig::default()
            },
            "slo-p95",
            "an SLO below the service time can never be met",
        ),
        (
            SimConfig {
                min_replicas: 4,
                max_replicas: 3,
                ..SimConfig::default()
            },
            "min-replicas",
            "min above max",
        ),
        (
            SimConfig {
                sync_period: Duration::from_secs(7),
                ..SimConfig::default()
            },
            "sync-period",
            "not a multiple of the tick",
        ),
        (
            SimConfig {
                pod_capacity_rps: f64::NAN,
                ..SimConfig::default()
            },
            "pod-capacity",
            "NaN capacity",
        ),
    ];
    for (config, field, why) in cases {
        let mut p = SeasonalNaive::new(10);
        match simulate(&trace, config, &PolicyKind::ALL, &mut p, &mut |_| {}) {
            Err(SimError::Config { field: f, .. }) => assert!(f.contains(field), "{why}: {f}"),
            other => panic!("{why}: expected a config error, got {other:?}"),
        }
    }
}

#[test]
fn format_detection_table() {
    let cases: &[(&str, Option<TraceFormat>, &str)] = &[
        (
            "timestamp,value",
            Some(TraceFormat::RateSeries),
            "NAB layout",
        ),
        (
            "time,rps",
            Some(TraceFormat::RateSeries),
            "rate column by name",
        ),
        (
            "\u{feff}Timestamp,Value",
            Some(TraceFormat::RateSeries),
            "BOM and capitals",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            Some(TraceFormat::RequestLog),
            "Azure LLM",
        ),
        (
            "timestamp",
            Some(TraceFormat::RequestLog),
            "bare request timestamps",
        ),
        (
            "end_timestamp,duration",
            Some(TraceFormat::RequestLog),
            "first column a time",
        ),
        (
            "HashOwner,HashApp,HashFunction,Trigger,1,2,3",
            Some(TraceFormat::AzureFunctions),
            "Azure Functions",
        ),
        ("2024-01-01 00:00:00,5", None, "data without a header"),
        ("app,func,value", None, "no time column first"),
        ("", None, "empty header"),
    ];
    for (header, want, why) in cases {
        assert_eq!(detect_format(header).ok(), *want, "{why}: {header:?}");
    }
}

#[test]
fn bad_traces_give_clear_errors() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("", 0, "empty", "empty file"),
        ("timestamp,value\n", 0, "no data rows", "header only"),
        ("timestamp,value\n0,1\n60,NaN\n", 3, "finite", "NaN value"),
        ("timestamp,value\n0,1\n60,-2\n", 3, ">= 0", "negative value"),
        (
            "timestamp,value\n0,1\n120,2\n60,3\n",
            4,
            "sort",
            "unsorted rows",
        ),
        (
            "timestamp,value\n0,1\n0,2\n",
            3,
            "repeats",
            "duplicate timestamp",
        ),
        (
            "timestamp,value\n0,1\n60,1\n6000,1\n",
            4,
            "missing",
            "hole too long to repair",
        ),
        (
            "timestamp,value\n0,1\n60,1\n150,1\n",
            4,
            "grid",
            "off the step grid",
        ),
        (
            "timestamp,value\n0,1\nnoon,2\n",
            3,
            "not a timestamp",
            "unparseable time",
        ),
        (
            "timestamp,value\n0,1\n60,2,3\n",
            3,
            "two columns",
            "extra column",
        ),
        (
            "timestamp,value\n0,1\n",
            0,
            "two rows",
            "cannot tell the step",
        ),
        (
            "timestamp,value\n0,0\n60,0\n",
            0,
            "",
            "all zero parses; rescale is what fails",
        ),
    ];
    for (text, line, needle, why) in cases {
        match parse_trace(text, &TraceOptions::default()) {
            Err(SimError::Trace { line: l, problem }) => {
                assert_eq!(l, *line, "{why}: {problem}");
                assert!(problem.contains(needle), "{why}: {problem}");
            }
            Ok(mut t) if needle.is_empty() => {
                assert!(t.rescale_peak(100.0).is_err(), "{why}");
            }
            other => panic!("{why}: expected a trace error, got {other:?}"),
        }
    }
}

#[test]
fn short_holes_are_interpolated() {
    let t = parse_trace(
        "timestamp,value\n2024-01-01 00:00:00,10\n2024-01-01 00:01:00,20\n2024-01-01 00:04:00,50\n",
        &TraceOptions::default(),
    )
    .expect("a two-step hole is repaired");
    assert_eq!(t.rps, vec![10.0, 20.0, 30.0, 40.0, 50.0]);
    assert_eq!(t.repaired, 2);
    assert_eq!(t.step, Duration::from_secs(60));
    assert_eq!(t.start, Timestamp::from_secs(1_704_067_200));
}

#[test]
fn request_logs_are_counted_in_buckets_in_any_order() {
    let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                2023-11-16 18:17:25.5,1,1\n\
                2023-11-16 18:17:03.97,1,1\n\
                2023-11-16 18:17:04.03,1,1\n\
                2023-11-16 18:17:21.0,1,1\n";
    let t = parse_trace(
        text,
        &TraceOptions {
            bucket: Duration::from_secs(10),
        },
    )
    .expect("parses");
    assert_eq!(t.format, TraceFormat::RequestLog);
    assert_eq!(
        t.rps,
        vec![0.2, 0.0, 0.2],
        "two requests in 18:17:00-10, none, two in 18:17:20-30"
    );
}

#[test]
fn azure_functions_minutes_are_summed() {
    let text = "HashOwner,HashApp,HashFunction,Trigger,1,2,3\n\
                a,b,c,http,60,0,120\n\
                d,e,f,timer,60,60,0\n";
    let t = parse_trace(text, &TraceOptions::default()).expect("parses");
    assert_eq!(t.format, TraceFormat::AzureFunctions);
    assert_eq!(
        t.rps,
        vec![2.0, 1.0, 2.0],
        "per-minute counts become requests/s"
    );
    let ragged = "HashOwner,HashApp,HashFunction,Trigger,1,2\na,b,c,http,1\n";
    assert!(matches!(
        parse_trace(ragged, &TraceOptions::default()),
        Err(SimError::Trace { line: 2, .. })
    ));
}

#[test]
fn svg_plot_draws_every_policy() {
    let report = run(&spiky_day(), &SimConfig::default());
    let svg = render_svg(&report.timeline, "spiky day").expect("draws");
    assert!(svg.starts_with("<svg"));
    for name in [
        "hpa-cpu",
        "hpa-queue",
        "mcpulse",
        "oracle",
        "load",
        "spiky day",
    ] {
        assert!(svg.contains(name), "legend or title lacks {name}");
    }
}
