//! Property tests of the VPA recommender: ordered bounds, policy respected, more history never widens.

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    ContainerResourcePolicy, CpuAmount, MemoryAmount, PodResourcePolicy, RecommendedPodResources,
    Recommender, ResourceList, Usage, UsageSample, VpaConfig,
};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// Any f64, with NaN, infinities, negatives and zero well represented.
fn any_value(scale: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..scale,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1.0),
        1 => Just(0.0),
        1 => any::<f64>(),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Cpu {
        pod: u8,
        container: u8,
        t: i64,
        cores: f64,
        request: f64,
    },
    Memory {
        pod: u8,
        container: u8,
        t: i64,
        bytes: f64,
    },
    Oom {
        pod: u8,
        container: u8,
        t: i64,
        request: f64,
    },
}

fn input(time: impl Strategy<Value = i64> + Clone) -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (0u8..3, 0u8..2, time.clone(), any_value(16.0), any_value(4.0))
            .prop_map(|(pod, container, t, cores, request)| Input::Cpu { pod, container, t, cores, request }),
        4 => (0u8..3, 0u8..2, time.clone(), any_value(16e9))
            .prop_map(|(pod, container, t, bytes)| Input::Memory { pod, container, t, bytes }),
        1 => (0u8..3, 0u8..2, time, any_value(4e9))
            .prop_map(|(pod, container, t, request)| Input::Oom { pod, container, t, request }),
    ]
}

fn feed(r: &mut Recommender, inputs: &[Input]) {
    let pods = ["web-0", "web-1", "web-2"];
    let containers = ["app", "sidecar"];
    for i in inputs {
        let result = match *i {
            Input::Cpu {
                pod,
                container,
                t,
                cores,
                request,
            } => r.add_sample(&UsageSample {
                pod: pods[pod as usize],
                container: containers[container as usize],
                at: Timestamp::from_millis(t),
                usage: Usage::Cpu {
                    cores,
                    request_cores: request,
                },
            }),
            Input::Memory {
                pod,
                container,
                t,
                bytes,
            } => r.add_sample(&UsageSample {
                pod: pods[pod as usize],
                container: containers[container as usize],
                at: Timestamp::from_millis(t),
                usage: Usage::Memory { bytes },
            }),
            Input::Oom {
                pod,
                container,
                t,
                request,
            } => r.record_oom(
                pods[pod as usize],
                containers[container as usize],
                Timestamp::from_millis(t),
                request,
            ),
        };
        // Names are always valid here, so only values can be wrong, and those are skipped, not errors.
        assert!(result.is_ok(), "{result:?}");
    }
}

fn policy() -> impl Strategy<Value = Option<PodResourcePolicy>> {
    let bound = (
        0i64..4000,
        0i64..8_000_000_000,
        0i64..4000,
        0i64..8_000_000_000,
    );
    prop::option::of(bound.prop_map(|(c1, m1, c2, m2)| PodResourcePolicy {
        container_policies: vec![ContainerResourcePolicy {
            container_name: "*".into(),
            min_allowed: Some(ResourceList::new(
                CpuAmount(c1.min(c2)),
                MemoryAmount(m1.min(m2)),
            )),
            max_allowed: Some(ResourceList::new(
                CpuAmount(c1.max(c2)),
                MemoryAmount(m1.max(m2)),
            )),
            ..ContainerResourcePolicy::default()
        }],
    }))
}

fn check_ordered_and_capped(
    rec: &RecommendedPodResources,
    policy: Option<&PodResourcePolicy>,
) -> Result<(), TestCaseError> {
    for c in &rec.container_recommendations {
        prop_assert!(
            c.lower_bound.cpu <= c.target.cpu && c.target.cpu <= c.upper_bound.cpu,
            "cpu {c:?}"
        );
        prop_assert!(
            c.lower_bound.memory <= c.target.memory && c.target.memory <= c.upper_bound.memory,
            "memory {c:?}"
        );
        if let Some(p) = policy.and_then(|p| p.for_container(&c.container_name)) {
            let (min, max) = (
                p.min_allowed.unwrap_or_default(),
                p.max_allowed.unwrap_or_default(),
            );
            for list in [&c.lower_bound, &c.target, &c.upper_bound] {
                // A zero bound means "no bound", as upstream reads it.
                if let (Some(v), Some(lo)) = (list.cpu, min.cpu.filter(|a| a.0 > 0)) {
                    prop_assert!(v >= lo, "cpu {v} below min {lo}");
                }
                if let (Some(v), Some(hi)) = (list.cpu, max.cpu.filter(|a| a.0 > 0)) {
                    prop_assert!(v <= hi, "cpu {v} above max {hi}");
                }
                if let (Some(v), Some(lo)) = (list.memory, min.memory.filter(|a| a.0 > 0)) {
                    prop_assert!(v >= lo, "memory {v} below min {lo}");
                }
                if let (Some(v), Some(hi)) = (list.memory, max.memory.filter(|a| a.0 > 0)) {
                    prop_assert!(v <= hi, "memory {v} above max {hi}");
                }
            }
        }
    }
    Ok(())
}

/// Feeds one daily pattern (24 hourly levels, sampled every minute) for `days` days.
fn periodic(days: i64, cpu: &[f64], memory: &[f64]) -> Recommender {
    let mut r = Recommender::new(VpaConfig::default()).expect("default config is valid");
    for minute in 0..days * 1440 {
        let hour = ((minute / 60) % 24) as usize;
        let at = Timestamp::from_millis(T0 + minute * MINUTE);
        for usage in [
            Usage::Cpu {
                cores: cpu[hour],
                request_cores: 0.5,
            },
            Usage::Memory {
                bytes: memory[hour],
            },
        ] {
            let sample = UsageSample {
                pod: "web-0",
                container: "app",
                at,
                usage,
            };
            r.add_sample(&sample).expect("valid names");
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bounds_are_ordered_and_policy_respected(
        inputs in prop::collection::vec(input((0i64..20 * 1440).prop_map(|m| T0 + m * MINUTE)), 0..400),
        policy in policy(),
    ) {
        let mut r = Recommender::new(VpaConfig::default()).expect("default config is valid");
        feed(&mut r, &inputs);
        match r.recommend(policy.as_ref(), None) {
            Ok(rec) => check_ordered_and_capped(&rec, policy.as_ref())?,
            Err(e) => prop_assert!(r.containers().is_empty(), "only an empty history may fail: {e}"),
        }
    }

    #[test]
    fn wild_timestamps_never_panic(
        inputs in prop::collection::vec(input(prop_oneof![any::<i64>(), -1_000_000_000_000i64..1_000_000_000_000]), 0..200),
    ) {
        let mut r = Recommender::new(VpaConfig::default()).expect("default config is valid");
        feed(&mut r, &inputs);
        if let Ok(rec) = r.recommend(None, None) {
            check_ordered_and_capped(&rec, None)?;
        }
    }
}

proptest! {
    // Each case feeds up to 5 days of minute samples; a few cases cover the property well.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn more_history_never_widens_bounds_beyond_one_day(
        cpu in prop::collection::vec(0.01f64..4.0, 24),
        memory in prop::collection::vec(1e8f64..4e9, 24),
        days in 2i64..6,
    ) {
        let one = periodic(1, &cpu, &memory);
        let many = periodic(days, &cpu, &memory);
        let c1 = one.history("app").map(|h| h.confidence).unwrap_or_default();
        let cn = many.history("app").map(|h| h.confidence).unwrap_or_default();
        prop_assert!(cn > c1, "confidence {cn} after {days} days vs {c1} after one");
        let a = &one.recommend(None, None).expect("history").container_recommendations[0];
        let b = &many.recommend(None, None).expect("history").container_recommendations[0];
        // Every day repeats, so the decayed distribution is the same; only a percentile landing exactly
        // on a bucket edge can flip by one bucket (5 %) through float rounding.
        let slack = 1.06;
        let v = |a: Option<CpuAmount>| a.map_or(0.0, |a| a.0 as f64);
        let m = |a: Option<MemoryAmount>| a.map_or(0.0, |a| a.0 as f64);
        prop_assert!(v(b.upper_bound.cpu) <= v(a.upper_bound.cpu) * slack, "cpu upper {b:?} vs {a:?}");
        prop_assert!(v(b.lower_bound.cpu) * slack >= v(a.lower_bound.cpu), "cpu lower {b:?} vs {a:?}");
        prop_assert!(m(b.upper_bound.memory) <= m(a.upper_bound.memory) * slack, "memory upper {b:?} vs {a:?}");
        prop_assert!(m(b.lower_bound.memory) * slack >= m(a.lower_bound.memory), "memory lower {b:?} vs {a:?}");
        // The upper bound's confidence factor falls from ×2 to ×(1 + 1/days), well past the slack.
        prop_assert!(v(b.upper_bound.cpu) < v(a.upper_bound.cpu), "cpu upper must narrow");
    }
}
