//! Upstream HPA controller cases, ported as table tests through the public engine API.

mod common;

use common::{at, cpu, flat_cpu, obs, samples};
use mcpulse_scaler::{
    AutoscalerSpec, ConditionStatus, ConditionType, ControllerConfig, Decision,
    HorizontalPodAutoscalerBehavior, HpaScalingPolicy, HpaScalingPolicyType, HpaScalingRules,
    MetricObservation, MetricSpec, MetricTarget, Observation, Quantity, Scaler, ScalerError,
};

fn q(units: i64) -> Quantity {
    Quantity::from_units(units)
}

fn spec(
    min: i32,
    max: i32,
    metrics: Vec<MetricSpec>,
    behavior: Option<HorizontalPodAutoscalerBehavior>,
) -> AutoscalerSpec {
    AutoscalerSpec {
        min_replicas: Some(min),
        max_replicas: max,
        metrics,
        behavior,
    }
}

fn cpu_spec(min: i32, max: i32, target: i32) -> AutoscalerSpec {
    spec(
        min,
        max,
        vec![MetricSpec::resource_utilization("cpu", target)],
        None,
    )
}

fn pods_metric(values: &[i64]) -> MetricObservation {
    MetricObservation::Pods {
        samples: samples(values, at(0)),
    }
}

fn unavailable() -> MetricObservation {
    MetricObservation::Unavailable {
        reason: "metrics API unreachable".into(),
    }
}

fn decide(spec: &AutoscalerSpec, o: &Observation) -> Decision {
    let mut s = Scaler::new(spec, ControllerConfig::default()).expect("table spec is valid");
    s.decide(o, at(0)).expect("table observation is valid")
}

fn reason(d: &Decision, t: ConditionType) -> Option<(&'static str, ConditionStatus)> {
    d.condition(t).map(|c| (c.reason, c.status))
}

fn tolerance_behavior(up: Option<&str>, down: Option<&str>) -> HorizontalPodAutoscalerBehavior {
    let rules = |t: Option<&str>| {
        t.map(|t| HpaScalingRules {
            tolerance: Some(t.parse().expect("tolerance parses")),
            ..HpaScalingRules::default()
        })
    };
    HorizontalPodAutoscalerBehavior {
        scale_up: rules(up),
        scale_down: rules(down),
    }
}

#[test]
fn single_decision_table() {
    let rps = || MetricSpec::pods_average("rps", q(10));
    let cpu50 = || MetricSpec::resource_utilization("cpu", 50);
    let object = |t: MetricTarget| MetricSpec::object("Service", "frontend", "rps", t);
    let external = |t: MetricTarget| MetricSpec::external("queue", t);
    // (spec, observation, expected replicas, expected ScalingActive reason, expected ScalingLimited reason, why)
    let rows: Vec<(AutoscalerSpec, Observation, i32, &str, &str, &str)> = vec![
        (
            cpu_spec(1, 10, 30),
            obs(3, 3, vec![cpu(3, &[300, 500, 700], at(0))]),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "cpu 50 % vs 30 % on 3 pods scales up to ceil(1.67*3)",
        ),
        (
            cpu_spec(1, 10, 50),
            obs(5, 5, vec![cpu(5, &[100, 300, 500, 250, 250], at(0))]),
            3,
            "ValidMetricFound",
            "DesiredWithinRange",
            "cpu 28 % vs 50 % scales down to ceil(0.56*5); no history yet so nothing stabilizes",
        ),
        (
            cpu_spec(1, 10, 50),
            obs(4, 4, vec![flat_cpu(4, 540, at(0))]),
            4,
            "ValidMetricFound",
            "DesiredWithinRange",
            "54 % vs 50 % is inside the default 10 % tolerance",
        ),
        (
            spec(
                1,
                10,
                vec![cpu50()],
                Some(tolerance_behavior(Some("0.05"), None)),
            ),
            obs(4, 4, vec![flat_cpu(4, 540, at(0))]),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "a 5 % scale-up tolerance lets 8 % over target through: ceil(1.08*4)",
        ),
        (
            spec(
                1,
                10,
                vec![cpu50()],
                Some(tolerance_behavior(Some("0.05"), None)),
            ),
            obs(4, 4, vec![flat_cpu(4, 470, at(0))]),
            4,
            "ValidMetricFound",
            "DesiredWithinRange",
            "scale-down keeps the default 10 % when only scale-up is tuned",
        ),
        (
            spec(
                1,
                30,
                vec![cpu50()],
                Some(tolerance_behavior(None, Some("0.02"))),
            ),
            obs(20, 20, vec![flat_cpu(20, 470, at(0))]),
            19,
            "ValidMetricFound",
            "DesiredWithinRange",
            "a 2 % scale-down tolerance acts on 6 % under: ceil(0.94*20)",
        ),
        (
            spec(1, 30, vec![cpu50()], None),
            obs(20, 20, vec![flat_cpu(20, 470, at(0))]),
            20,
            "ValidMetricFound",
            "DesiredWithinRange",
            "the same load is inside the default 10 % tolerance",
        ),
        (
            cpu_spec(4, 10, 50),
            obs(5, 5, vec![flat_cpu(5, 50, at(0))]),
            4,
            "ValidMetricFound",
            "TooFewReplicas",
            "proposal 1 is lifted to minReplicas",
        ),
        (
            cpu_spec(1, 10, 10),
            obs(8, 8, vec![flat_cpu(8, 1000, at(0))]),
            10,
            "ValidMetricFound",
            "TooManyReplicas",
            "proposal 80 is cut to maxReplicas, which is below the legacy rate limit",
        ),
        (
            cpu_spec(1, 100, 10),
            obs(2, 2, vec![flat_cpu(2, 1000, at(0))]),
            4,
            "ValidMetricFound",
            "ScaleUpLimit",
            "legacy path adds at most max(2x, 4): 2 -> 4",
        ),
        (
            cpu_spec(1, 100, 10),
            obs(10, 10, vec![flat_cpu(10, 1000, at(0))]),
            20,
            "ValidMetricFound",
            "ScaleUpLimit",
            "legacy path doubles at most: 10 -> 20",
        ),
        (
            spec(1, 10, vec![cpu50(), rps()], None),
            obs(
                3,
                3,
                vec![
                    flat_cpu(3, 800, at(0)),
                    pods_metric(&[20_000, 20_000, 30_000]),
                ],
            ),
            6,
            "ValidMetricFound",
            "ScaleUpLimit",
            "two metrics: cpu wants 5, rps wants ceil(2.33*3) = 7, legacy rate caps at 6",
        ),
        (
            spec(1, 20, vec![cpu50(), rps()], None),
            obs(4, 4, vec![unavailable(), pods_metric(&[20_000; 4])]),
            8,
            "ValidMetricFound",
            "DesiredWithinRange",
            "an invalid metric is skipped when the valid one scales up",
        ),
        (
            spec(1, 20, vec![cpu50(), rps()], None),
            obs(4, 4, vec![unavailable(), pods_metric(&[1_000; 4])]),
            4,
            "FailedGetResourceMetric",
            "",
            "an invalid metric blocks a scale-down by the valid ones",
        ),
        (
            spec(1, 20, vec![cpu50(), rps()], None),
            obs(4, 4, vec![unavailable(), unavailable()]),
            4,
            "FailedGetResourceMetric",
            "",
            "all metrics invalid: no scaling, first failure reported",
        ),
        (
            spec(1, 20, vec![object(MetricTarget::value(q(20)))], None),
            obs(3, 3, vec![MetricObservation::Object { value: q(30) }]),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "object value 30 vs 20 times 3 ready pods = 4.5 -> 5",
        ),
        (
            spec(1, 20, vec![object(MetricTarget::value(q(20)))], None),
            obs(3, 3, vec![MetricObservation::Object { value: q(21) }]),
            3,
            "ValidMetricFound",
            "DesiredWithinRange",
            "object value 5 % over target is within tolerance",
        ),
        (
            spec(
                1,
                20,
                vec![object(MetricTarget::average_value(q(20)))],
                None,
            ),
            obs(3, 3, vec![MetricObservation::Object { value: q(90) }]),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "object average: ceil(90 / 20) regardless of pods",
        ),
        (
            spec(1, 20, vec![external(MetricTarget::value(q(20)))], None),
            obs(
                3,
                3,
                vec![MetricObservation::External {
                    values: vec![q(10), q(20)],
                }],
            ),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "external series are summed: 30 vs 20 times 3 ready pods",
        ),
        (
            spec(
                1,
                20,
                vec![external(MetricTarget::average_value(q(20)))],
                None,
            ),
            obs(
                4,
                4,
                vec![MetricObservation::External {
                    values: vec![q(50), q(50)],
                }],
            ),
            5,
            "ValidMetricFound",
            "DesiredWithinRange",
            "external average: 100 / (20*4) = 1.25 -> ceil(100/20)",
        ),
        (
            spec(1, 20, vec![external(MetricTarget::value(q(20)))], None),
            obs(
                3,
                3,
                vec![MetricObservation::External {
                    values: vec![q(-5)],
                }],
            ),
            3,
            "FailedGetExternalMetric",
            "",
            "a negative sample is refused, never acted on",
        ),
        (
            cpu_spec(1, 10, 50),
            obs(4, 4, vec![cpu(4, &[100, 100, 100], at(0))]),
            3,
            "ValidMetricFound",
            "DesiredWithinRange",
            "missing pod counted at 100 % on scale-down: 32 % -> ceil(0.64*4)",
        ),
        (
            cpu_spec(1, 10, 50),
            obs(4, 4, vec![cpu(4, &[900, 900, 900], at(0))]),
            6,
            "ValidMetricFound",
            "DesiredWithinRange",
            "missing pod counted at 0 % on scale-up: 67 % -> ceil(1.34*4)",
        ),
        (
            cpu_spec(1, 10, 50),
            obs(0, 0, vec![cpu(0, &[], at(0))]),
            0,
            "ScalingDisabled",
            "",
            "zero current replicas disables scaling",
        ),
    ];
    for (spec, o, want, active, limited, why) in rows {
        let d = decide(&spec, &o);
        assert_eq!(d.desired_replicas, want, "{why}: {}", d.log_line());
        assert_eq!(d.rescale, want != o.spec_replicas, "{why}");
        assert_eq!(
            reason(&d, ConditionType::ScalingActive).map(|r| r.0),
            Some(active),
            "{why}"
        );
        if limited.is_empty() {
            assert!(
                d.condition(ConditionType::ScalingLimited).is_none(),
                "{why}: no normalization ran"
            );
        } else {
            assert_eq!(
                reason(&d, ConditionType::ScalingLimited).map(|r| r.0),
                Some(limited),
                "{why}: {}",
                d.log_line()
            );
        }
        assert!(!d.log_line().is_empty());
    }
}

#[test]
fn all_invalid_reports_an_error_with_upstream_wording() {
    let s = spec(
        1,
        20,
        vec![
            MetricSpec::resource_utilization("cpu", 50),
            MetricSpec::pods_average("rps", q(10)),
        ],
        None,
    );
    let d = decide(&s, &obs(4, 4, vec![unavailable(), unavailable()]));
    match &d.error {
        Some(ScalerError::InvalidMetrics {
            invalid: 2,
            total: 2,
            first,
        }) => {
            assert!(first.contains("metrics API unreachable"), "{first}")
        }
        other => panic!("expected InvalidMetrics, got {other:?}"),
    }
    assert_eq!(
        reason(&d, ConditionType::ScalingActive),
        Some(("FailedGetResourceMetric", ConditionStatus::False))
    );
    assert!(
        d.log_line().contains("2/2 metrics failed"),
        "{}",
        d.log_line()
    );
}

#[test]
fn out_of_bounds_current_is_corrected_first() {
    let d = decide(
        &cpu_spec(2, 5, 50),
        &obs(9, 9, vec![flat_cpu(9, 500, at(0))]),
    );
    assert_eq!(
        (d.desired_replicas, d.rescale_reason.as_deref()),
        (5, Some("Current number of replicas above Spec.MaxReplicas"))
    );
    let d = decide(
        &cpu_spec(2, 5, 50),
        &obs(1, 1, vec![flat_cpu(1, 500, at(0))]),
    );
    assert_eq!(
        (d.desired_replicas, d.rescale_reason.as_deref()),
        (2, Some("Current number of replicas below Spec.MinReplicas"))
    );
}

#[test]
fn malformed_observations_are_errors() {
    let mut s = Scaler::new(&cpu_spec(1, 5, 50), ControllerConfig::default()).expect("valid");
    let too_few = obs(2, 2, vec![]);
    assert!(matches!(
        s.decide(&too_few, at(0)),
        Err(ScalerError::InvalidObservation { .. })
    ));
    let mut dup = obs(2, 2, vec![flat_cpu(2, 500, at(0))]);
    dup.pods[1].name = "p0".into();
    assert!(matches!(
        s.decide(&dup, at(0)),
        Err(ScalerError::InvalidObservation { .. })
    ));
    let negative = obs(-1, 2, vec![flat_cpu(2, 500, at(0))]);
    assert!(matches!(
        s.decide(&negative, at(0)),
        Err(ScalerError::InvalidObservation { .. })
    ));
}

/// Runs a sequence of (seconds, cpu milli per pod) decisions, applying each decision before the next.
fn run(scaler: &mut Scaler, start: i32, steps: &[(i64, i64)]) -> Vec<Decision> {
    let mut current = start;
    steps
        .iter()
        .map(|(t, load)| {
            let n = current as usize;
            let d = scaler
                .decide(&obs(current, n, vec![flat_cpu(n, *load, at(*t))]), at(*t))
                .expect("valid");
            current = d.desired_replicas;
            d
        })
        .collect()
}

#[test]
fn legacy_stabilization_window_holds_scale_down() {
    let mut s = Scaler::new(&cpu_spec(1, 20, 50), ControllerConfig::default()).expect("valid");
    let d = run(&mut s, 10, &[(0, 500), (60, 100), (300, 100), (301, 100)]);
    let got: Vec<_> = d
        .iter()
        .map(|d| {
            (
                d.desired_replicas,
                reason(d, ConditionType::AbleToScale).map(|r| r.0),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (10, Some("ReadyForNewScale")), // on target: recommendation 10 recorded
            (10, Some("ScaleDownStabilized")), // wants 2, the 10 of 60 s ago holds it
            (10, Some("ScaleDownStabilized")), // 300 s later the cut-off is inclusive: still held
            (2, Some("ReadyForNewScale")),  // the 10 expired
        ]
    );
}

#[test]
fn behavior_policies_and_periods_slide() {
    let behavior = HorizontalPodAutoscalerBehavior {
        scale_up: Some(HpaScalingRules {
            policies: Some(vec![HpaScalingPolicy {
                type_: HpaScalingPolicyType::Pods,
                value: 2,
                period_seconds: 60,
            }]),
            ..HpaScalingRules::default()
        }),
        scale_down: Some(HpaScalingRules {
            stabilization_window_seconds: Some(0),
            policies: Some(vec![
                HpaScalingPolicy {
                    type_: HpaScalingPolicyType::Percent,
                    value: 50,
                    period_seconds: 60,
                },
                HpaScalingPolicy {
                    type_: HpaScalingPolicyType::Pods,
                    value: 1,
                    period_seconds: 60,
                },
            ]),
            select_policy: Some(mcpulse_scaler::ScalingPolicySelect::Min),
            ..HpaScalingRules::default()
        }),
    };
    let s = spec(
        1,
        50,
        vec![MetricSpec::resource_utilization("cpu", 50)],
        Some(behavior),
    );
    let mut scaler = Scaler::new(&s, ControllerConfig::default()).expect("valid");
    let d = run(
        &mut scaler,
        2,
        &[
            (0, 1000),
            (15, 1000),
            (61, 1000),
            (200, 50),
            (215, 50),
            (261, 50),
        ],
    );
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.desired_replicas, d.limit.as_ref().map(|l| l.reason)))
        .collect();
    assert_eq!(
        got,
        vec![
            (4, None),                   // 100 % vs 50 % doubles 2 -> 4, exactly the +2 budget
            (4, Some("ScaleUpLimit")),   // wants 8, but the +2 of 15 s ago used the 60 s budget
            (6, Some("ScaleUpLimit")),   // period slid past it
            (5, Some("ScaleDownLimit")), // Min of (50 %, 1 pod) removes one
            (5, Some("ScaleDownLimit")), // budget used for 60 s
            (4, Some("ScaleDownLimit")), // slid again
        ]
    );
    let limit = d[1].limit.as_ref().expect("limited");
    assert_eq!(limit.policy.map(|p| p.value), Some(2));
    assert!(
        d[1].log_line()
            .contains("limited by ScaleUpLimit to 4 (Pods 2 per 60s)"),
        "{}",
        d[1].log_line()
    );
}

#[test]
fn behavior_default_scale_down_window_holds() {
    let s = spec(
        1,
        20,
        vec![MetricSpec::resource_utilization("cpu", 50)],
        Some(HorizontalPodAutoscalerBehavior::default()),
    );
    let mut scaler = Scaler::new(&s, ControllerConfig::default()).expect("valid");
    let d = run(
        &mut scaler,
        10,
        &[(0, 500), (100, 100), (300, 100), (301, 100)],
    );
    let got: Vec<_> = d.iter().map(|d| d.desired_replicas).collect();
    // Behavior cut-off is exclusive, so unlike legacy the 10 recorded at 0 s is gone at exactly 300 s.
    assert_eq!(got, vec![10, 10, 2, 2]);
    assert_eq!(
        reason(&d[1], ConditionType::AbleToScale).map(|r| r.0),
        Some("ScaleDownStabilized")
    );
}

#[test]
fn decision_serializes_for_the_simulator() {
    let d = decide(
        &cpu_spec(1, 10, 30),
        &obs(3, 3, vec![cpu(3, &[300, 500, 700], at(0))]),
    );
    let json = serde_json::to_value(&d).expect("serializes");
    assert_eq!(json["desiredReplicas"], 5);
    assert_eq!(json["metrics"][0]["current"]["averageUtilization"], 50);
    assert!(
        d.log_line().starts_with("scale up 3 -> 5"),
        "{}",
        d.log_line()
    );
}

#[test]
fn the_scale_down_window_is_the_behaviors_or_else_the_controllers() {
    // (behavior's scale-down window, controller's legacy window, expected, why)
    let cases = [
        (
            None,
            300,
            300,
            "no behavior: the controller's --horizontal-pod-autoscaler-downscale-stabilization",
        ),
        (None, 120, 120, "a shorter controller window is used as set"),
        (
            Some(60),
            300,
            60,
            "behavior's own window wins over the controller's",
        ),
        (Some(0), 300, 0, "a zero window scales down at once"),
    ];
    for (behavior_window, legacy, expected, why) in cases {
        let behavior = behavior_window.map(|seconds| HorizontalPodAutoscalerBehavior {
            scale_up: None,
            scale_down: Some(HpaScalingRules {
                stabilization_window_seconds: Some(seconds),
                ..HpaScalingRules::default()
            }),
        });
        let config = ControllerConfig {
            downscale_stabilization_window: std::time::Duration::from_secs(legacy),
            ..ControllerConfig::default()
        };
        let scaler = Scaler::new(
            &spec(
                1,
                5,
                vec![MetricSpec::resource_utilization("cpu", 50)],
                behavior,
            ),
            config,
        )
        .expect("valid");
        assert_eq!(
            scaler.scale_down_window(),
            std::time::Duration::from_secs(expected),
            "{why}"
        );
    }
}
