//! Property tests: bounds, stabilization and determinism hold for arbitrary load sequences.

mod common;

use common::{at, flat_cpu, obs};
use mcpulse_scaler::{
    AutoscalerSpec, ControllerConfig, Decision, HorizontalPodAutoscalerBehavior, HpaScalingPolicy,
    HpaScalingPolicyType, HpaScalingRules, MetricSpec, Scaler, ScalingPolicySelect,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    min: i32,
    max: i32,
    start: i32,
    behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// (seconds since previous step, cpu milli per pod)
    steps: Vec<(i64, i64)>,
}

fn behavior() -> impl Strategy<Value = Option<HorizontalPodAutoscalerBehavior>> {
    let select = prop_oneof![
        Just(ScalingPolicySelect::Max),
        Just(ScalingPolicySelect::Min),
        Just(ScalingPolicySelect::Disabled)
    ];
    let policy = (
        prop_oneof![
            Just(HpaScalingPolicyType::Pods),
            Just(HpaScalingPolicyType::Percent)
        ],
        1..200i32,
        1..600i32,
    )
        .prop_map(|(type_, value, period_seconds)| HpaScalingPolicy {
            type_,
            value,
            period_seconds,
        });
    let rules = (
        0..900i32,
        select,
        prop::collection::vec(policy, 1..3),
        prop::option::of(0..300i64),
    )
        .prop_map(|(w, s, p, t)| HpaScalingRules {
            stabilization_window_seconds: Some(w),
            select_policy: Some(s),
            policies: Some(p),
            tolerance: t.map(mcpulse_scaler::Quantity::from_milli),
        });
    prop::option::of(
        (prop::option::of(rules.clone()), prop::option::of(rules)).prop_map(|(up, down)| {
            HorizontalPodAutoscalerBehavior {
                scale_up: up,
                scale_down: down,
            }
        }),
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        1..8i32,
        0..30i32,
        behavior(),
        prop::collection::vec((1..120i64, 0..3000i64), 1..40),
    )
        .prop_flat_map(|(min, span, behavior, steps)| {
            let max = min + span;
            (min..=max).prop_map(move |start| Case {
                min,
                max,
                start,
                behavior: behavior.clone(),
                steps: steps.clone(),
            })
        })
}

fn scaler(c: &Case) -> Scaler {
    let spec = AutoscalerSpec {
        min_replicas: Some(c.min),
        max_replicas: c.max,
        metrics: vec![MetricSpec::resource_utilization("cpu", 50)],
        behavior: c.behavior.clone(),
    };
    Scaler::new(&spec, ControllerConfig::default()).expect("generated spec is valid")
}

/// Runs the case, applying each decision before the next, and returns (time, decision) pairs.
fn run(c: &Case) -> Vec<(i64, Decision)> {
    let mut s = scaler(c);
    let (mut current, mut t) = (c.start, 0i64);
    c.steps
        .iter()
        .map(|(dt, load)| {
            t += dt;
            let n = current as usize;
            let d = s
                .decide(&obs(current, n, vec![flat_cpu(n, *load, at(t))]), at(t))
                .expect("valid observation");
            current = d.desired_replicas;
            (t, d)
        })
        .collect()
}

fn down_window(c: &Case) -> (i64, bool) {
    match &c.behavior {
        None => (300, true),
        Some(b) => (
            b.scale_down
                .as_ref()
                .and_then(|r| r.stabilization_window_seconds)
                .map_or(300, i64::from),
            false,
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replicas_stay_within_bounds(c in case()) {
        for (_, d) in run(&c) {
            prop_assert!(d.desired_replicas >= c.min && d.desired_replicas <= c.max, "{}", d.log_line());
        }
    }

    #[test]
    fn no_scale_down_below_the_window_maximum(c in case()) {
        let (window, inclusive) = down_window(&c);
        let decisions = run(&c);
        for (i, (t, d)) in decisions.iter().enumerate() {
            if d.desired_replicas >= d.current_replicas {
                continue;
            }
            // Every raw proposal still inside the scale-down window, this one included.
            let window_max = decisions[..=i]
                .iter()
                .filter(|(s, _)| if inclusive { *s >= t - window } else { *s > t - window })
                .filter_map(|(_, d)| d.raw_proposal)
                .max();
            if let Some(m) = window_max {
                prop_assert!(d.desired_replicas >= m.min(c.max), "t={t} window max {m}: {}", d.log_line());
            }
        }
    }

    #[test]
    fn decisions_are_deterministic(c in case()) {
        prop_assert_eq!(run(&c), run(&c));
    }
}
