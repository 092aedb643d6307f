//! Cases ported from the upstream VPA recommender tests (estimator, container state, recommender), in our words.

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    ContainerResourcePolicy, ContainerScalingMode, CpuAmount, Ingested, MAX_RESOURCE_AMOUNT,
    MemoryAmount, PodResourcePolicy, RecommendedContainerResources, Recommender, ResourceList,
    ResourceName, Usage, UsageSample, VpaConfig,
};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;
const MI: f64 = 1024.0 * 1024.0;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn cpu(
    r: &mut Recommender,
    pod: &str,
    container: &str,
    t: i64,
    cores: f64,
    request: f64,
) -> Ingested {
    r.add_sample(&UsageSample {
        pod,
        container,
        at: at(t),
        usage: Usage::Cpu {
            cores,
            request_cores: request,
        },
    })
    .expect("valid names")
}

fn mem(r: &mut Recommender, pod: &str, container: &str, t: i64, bytes: f64) -> Ingested {
    r.add_sample(&UsageSample {
        pod,
        container,
        at: at(t),
        usage: Usage::Memory { bytes },
    })
    .expect("valid names")
}

fn plain() -> VpaConfig {
    VpaConfig {
        safety_margin_fraction: 0.0,
        pod_min_cpu_millicores: 0.0,
        pod_min_memory_mb: 0.0,
        ..VpaConfig::default()
    }
}

fn only(r: &Recommender) -> RecommendedContainerResources {
    let rec = r.recommend(None, None).expect("history present");
    assert_eq!(rec.container_recommendations.len(), 1);
    rec.container_recommendations[0].clone()
}

fn cpu_of(list: &ResourceList) -> i64 {
    list.cpu.expect("cpu present").0
}

fn mem_of(list: &ResourceList) -> i64 {
    list.memory.expect("memory present").0
}

fn within(value: f64, want: f64, rel: f64) -> bool {
    (value - want).abs() <= want * rel
}

#[test]
fn percentiles_of_cpu_and_memory_peaks() {
    // Upstream TestPercentileEstimator: cpu {1,2,3} at p20 ≈ 1 core, memory {1,2,3} GB at p50 ≈ 2 GB.
    let config = VpaConfig {
        target_cpu_percentile: 0.2,
        target_memory_percentile: 0.5,
        ..plain()
    };
    let mut r = Recommender::new(config).expect("valid config");
    for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
        let pod = format!("p{i}");
        cpu(&mut r, &pod, "app", 0, v, 0.0);
        mem(&mut r, &pod, "app", 0, v * 1e9);
    }
    let target = only(&r).target;
    // 5 % covers the histogram's bucket rounding.
    assert!(within(cpu_of(&target) as f64, 1000.0, 0.05), "{target:?}");
    assert!(within(mem_of(&target) as f64, 2e9, 0.05), "{target:?}");
}

#[test]
fn confidence_scales_the_bounds() {
    // Upstream TestConfidenceMultiplier: 9 samples 2 minutes apart give confidence 9 / 1440.
    let mut r = Recommender::new(plain()).expect("valid config");
    for i in 0..9 {
        cpu(&mut r, "p", "app", i * 2 * MINUTE, 1.0, 0.0);
        mem(&mut r, "p", "app", i * 2 * MINUTE, 1e9);
    }
    let history = r.history("app").expect("history");
    assert_eq!(history.confidence, 0.00625);
    let rec = only(&r);
    // One value: every percentile is the same bucket end, so target is the unscaled base.
    let base = cpu_of(&rec.target) as f64;
    let rows = [
        (
            cpu_of(&rec.upper_bound),
            (base * (1.0 + 1.0 / 0.00625)) as i64,
            "upper × (1 + 1/c)",
        ),
        (
            cpu_of(&rec.lower_bound),
            (base * (1.0 + 0.001 / 0.00625f64).powf(-2.0)) as i64,
            "lower × (1 + 0.001/c)^-2",
        ),
    ];
    for (got, want, why) in rows {
        assert_eq!(got, want, "{why}");
    }
}

#[test]
fn no_history_means_unbounded_upper_and_zero_lower() {
    // Memory only: confidence (a CPU-sample count) is 0, so the upper bound saturates at the cap and the
    // lower bound collapses to 0 before the minimum lifts it.
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    mem(&mut r, "p", "app", 0, 1e9);
    let rec = only(&r);
    assert_eq!(mem_of(&rec.upper_bound), MAX_RESOURCE_AMOUNT);
    assert_eq!(
        mem_of(&rec.lower_bound),
        262_144_000,
        "the 250Mi pod minimum"
    );
    assert_eq!(r.history("app").map(|h| h.confidence), Some(0.0));
}

#[test]
fn margin_is_added_to_the_base() {
    let run = |margin: f64| {
        let mut r = Recommender::new(VpaConfig {
            safety_margin_fraction: margin,
            ..plain()
        })
        .expect("valid config");
        cpu(&mut r, "p", "app", 0, 2.5, 0.0);
        mem(&mut r, "p", "app", 0, 2.5e9);
        only(&r).target
    };
    let (bare, padded) = (run(0.0), run(0.1));
    // Margin is computed on the whole base and truncated, as upstream's ScaleResource does.
    let cpu_base = cpu_of(&bare);
    assert_eq!(cpu_of(&padded), cpu_base + (cpu_base as f64 * 0.1) as i64);
    let mem_base = mem_of(&bare);
    assert_eq!(mem_of(&padded), mem_base + (mem_base as f64 * 0.1) as i64);
}

#[test]
fn minimum_resources_are_split_across_containers() {
    // Upstream: the pod minimum (25m, 250Mi) is divided by the number of containers per pod.
    let cases: [(&[&str], i64, i64, &str); 2] = [
        (
            &["app"],
            25,
            262_144_000,
            "one container gets the whole pod minimum",
        ),
        (
            &["app", "sidecar"],
            12,
            131_072_000,
            "two containers get half each, truncated",
        ),
    ];
    for (containers, want_cpu, want_mem, why) in cases {
        let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
        for c in containers {
            cpu(&mut r, "p", c, 0, 0.001, 0.0);
            mem(&mut r, "p", c, 0, 1e6);
        }
        let rec = r.recommend(None, None).expect("history");
        for c in &rec.container_recommendations {
            assert_eq!(cpu_of(&c.target), want_cpu, "{why}");
            assert_eq!(mem_of(&c.target), want_mem, "{why}");
            assert_eq!(
                cpu_of(&c.lower_bound),
                want_cpu,
                "{why}: bounds get the minimum too"
            );
        }
    }
}

#[test]
fn cpu_samples_weigh_by_request() {
    // Five samples at 1 core with no request (weight 0.1 each) against one at 2 cores with a 1-core
    // request (weight 1): the median moves to 2 cores.
    let config = VpaConfig {
        target_cpu_percentile: 0.5,
        ..plain()
    };
    let mut r = Recommender::new(config).expect("valid config");
    for i in 0..5 {
        cpu(&mut r, "p", "app", i * MINUTE, 1.0, 0.0);
    }
    cpu(&mut r, "p", "app", 5 * MINUTE, 2.0, 1.0);
    let target = cpu_of(&only(&r).target);
    assert!(within(target as f64, 2000.0, 0.05), "median {target}m");
}

/// Target memory of a recommender that only saw one peak of `bytes`.
fn target_for_peak(bytes: f64) -> i64 {
    let mut r = Recommender::new(plain()).expect("valid config");
    mem(&mut r, "p", "app", 0, bytes);
    mem_of(&only(&r).target)
}

#[test]
fn oom_bumps_memory() {
    // Upstream container_test OOM cases.
    let cases = [
        (
            1000.0 * MI,
            0.0,
            1200.0 * MI,
            "request dominates: +20 % beats +100Mi",
        ),
        (
            1.0 * MI,
            0.0,
            101.0 * MI,
            "small request: +100Mi beats +20 %",
        ),
        (
            0.0,
            700.0 * MI,
            840.0 * MI,
            "the observed peak dominates the request",
        ),
    ];
    for (request, peak, want, why) in cases {
        let mut r = Recommender::new(plain()).expect("valid config");
        if peak > 0.0 {
            mem(&mut r, "p", "app", 0, peak);
        }
        let outcome = r
            .record_oom("p", "app", at(MINUTE), request)
            .expect("valid names");
        assert_eq!(outcome, Ingested::Aggregated, "{why}");
        assert_eq!(mem_of(&only(&r).target), target_for_peak(want), "{why}");
        assert_eq!(r.stats().ooms, 1, "{why}");
    }
}

#[test]
fn repeated_ooms_do_not_run_away() {
    // The OOM peak is left out of `used`, so a second OOM in the window proposes the same amount.
    let mut r = Recommender::new(plain()).expect("valid config");
    r.record_oom("p", "app", at(0), 0.0).expect("valid names");
    r.record_oom("p", "app", at(MINUTE), 0.0)
        .expect("valid names");
    assert_eq!(mem_of(&only(&r).target), target_for_peak(100.0 * MI));
}

#[test]
fn old_oom_is_discarded() {
    let mut r = Recommender::new(plain()).expect("valid config");
    mem(&mut r, "p", "app", 0, 1e9);
    mem(&mut r, "p", "app", 3 * DAY, 1e9);
    // The window now ends at day 4; an OOM before day 3 is too old to matter.
    let outcome = r.record_oom("p", "app", at(DAY), 0.0).expect("valid names");
    assert_eq!(outcome, Ingested::SkippedOomTooOld);
    assert_eq!(r.stats().skipped_oom_too_old, 1);
}

#[test]
fn one_memory_peak_per_interval() {
    // p30: with peaks weighted 1 : 2 (one half-life apart) only the older peak's bucket reaches 30 %.
    let p30 = |samples: &[(i64, f64)]| {
        let mut r = Recommender::new(VpaConfig {
            target_memory_percentile: 0.3,
            ..plain()
        })
        .expect("valid config");
        for &(t, v) in samples {
            mem(&mut r, "p", "app", t, v);
        }
        mem_of(&only(&r).target)
    };
    let one_gb = target_for_peak(1e9);
    let two_gb = target_for_peak(2e9);
    let cases = [
        (
            vec![(0, 1e9), (MINUTE, 2e9)],
            two_gb,
            "the larger peak replaces the smaller in one window",
        ),
        (
            vec![(0, 2e9), (MINUTE, 1e9)],
            two_gb,
            "a smaller sample leaves the peak alone",
        ),
        (
            vec![(0, 1e9), (DAY, 2e9)],
            one_gb,
            "two windows keep two peaks; the older one still counts",
        ),
    ];
    for (samples, want, why) in cases {
        assert_eq!(p30(&samples), want, "{why}");
    }
}

#[test]
fn bad_samples_are_skipped_and_counted() {
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    let cases = [
        (
            cpu(&mut r, "p", "app", MINUTE, 1.0, 0.0),
            Ingested::Aggregated,
            "first sample",
        ),
        (
            cpu(&mut r, "p", "app", MINUTE, 1.0, 0.0),
            Ingested::SkippedOutOfOrder,
            "duplicate time",
        ),
        (
            cpu(&mut r, "p", "app", 0, 1.0, 0.0),
            Ingested::SkippedOutOfOrder,
            "older than the last",
        ),
        (
            cpu(&mut r, "p", "app", 2 * MINUTE, f64::NAN, 0.0),
            Ingested::SkippedInvalid,
            "NaN usage",
        ),
        (
            cpu(&mut r, "p", "app", 2 * MINUTE, 1.0, -1.0),
            Ingested::SkippedInvalid,
            "negative request",
        ),
        (
            mem(&mut r, "p", "app", 0, f64::INFINITY),
            Ingested::SkippedInvalid,
            "infinite memory",
        ),
        (
            mem(&mut r, "p", "app", MINUTE, 1e9),
            Ingested::Aggregated,
            "memory",
        ),
        (
            mem(&mut r, "p", "app", 0, 1e9),
            Ingested::SkippedOutOfOrder,
            "older memory",
        ),
    ];
    for (got, want, why) in cases {
        assert_eq!(got, want, "{why}");
    }
    let s = r.stats();
    assert_eq!((s.cpu_samples, s.memory_samples), (1, 1));
    assert_eq!((s.skipped_invalid, s.skipped_out_of_order), (3, 3));
    let err = r
        .add_sample(&UsageSample {
            pod: "",
            container: "app",
            at: at(0),
            usage: Usage::Memory { bytes: 1.0 },
        })
        .expect_err("empty pod name");
    assert!(err.to_string().contains("pod"), "{err}");
}

#[test]
fn empty_history_is_an_error() {
    let r = Recommender::new(VpaConfig::default()).expect("valid config");
    let err = r.recommend(None, None).expect_err("nothing to recommend");
    assert!(err.to_string().contains("no usable samples"), "{err}");
}

#[test]
fn bad_config_is_rejected() {
    let cases = [
        (
            VpaConfig {
                target_cpu_percentile: 1.5,
                ..VpaConfig::default()
            },
            "targetCpuPercentile",
        ),
        (
            VpaConfig {
                safety_margin_fraction: f64::NAN,
                ..VpaConfig::default()
            },
            "safetyMarginFraction",
        ),
        (
            VpaConfig {
                oom_bump_up_ratio: 0.5,
                ..VpaConfig::default()
            },
            "oomBumpUpRatio",
        ),
        (
            VpaConfig {
                cpu_half_life_ms: 0,
                ..VpaConfig::default()
            },
            "cpuHalfLifeMs",
        ),
    ];
    for (config, field) in cases {
        let err = Recommender::new(config).expect_err(field);
        assert!(err.to_string().contains(field), "{err}");
    }
}

fn policy_for(container: &str) -> ContainerResourcePolicy {
    ContainerResourcePolicy {
        container_name: container.into(),
        ..ContainerResourcePolicy::default()
    }
}

fn two_containers() -> Recommender {
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    for c in ["app", "sidecar"] {
        for i in 0..60 {
            cpu(&mut r, "p", c, i * MINUTE, 0.5, 0.5);
            mem(&mut r, "p", c, i * MINUTE, 512.0 * MI);
        }
    }
    r
}

#[test]
fn resource_policy_caps_filters_and_drops() {
    let r = two_containers();
    let free = r.recommend(None, None).expect("history");
    let uncapped = free.container_recommendations[0].target;
    let low_cpu = CpuAmount(100);
    let high_mem = MemoryAmount(2 * 1024 * 1024 * 1024);
    let policy = PodResourcePolicy {
        container_policies: vec![
            ContainerResourcePolicy {
                max_allowed: Some(ResourceList {
                    cpu: Some(low_cpu),
                    memory: None,
                }),
                min_allowed: Some(ResourceList {
                    cpu: None,
                    memory: Some(high_mem),
                }),
                ..policy_for("app")
            },
            ContainerResourcePolicy {
                mode: Some(ContainerScalingMode::Off),
                ..policy_for("*")
            },
        ],
    };
    let rec = r.recommend(Some(&policy), None).expect("valid policy");
    assert_eq!(
        rec.container_recommendations.len(),
        1,
        "`*` turns the sidecar off"
    );
    let app = &rec.container_recommendations[0];
    assert_eq!(app.container_name, "app");
    for (list, why) in [
        (&app.target, "target"),
        (&app.lower_bound, "lower"),
        (&app.upper_bound, "upper"),
    ] {
        assert_eq!(list.cpu, Some(low_cpu), "{why} capped to maxAllowed cpu");
        assert!(
            list.memory >= Some(high_mem),
            "{why} at least minAllowed memory"
        );
    }
    assert_eq!(
        app.target.memory,
        Some(high_mem),
        "target raised to minAllowed memory"
    );
    assert_eq!(
        app.lower_bound.memory,
        Some(high_mem),
        "lower bound raised too"
    );
    assert_eq!(
        app.uncapped_target, uncapped,
        "uncappedTarget ignores the policy"
    );

    let cpu_only = PodResourcePolicy {
        container_policies: vec![ContainerResourcePolicy {
            controlled_resources: Some(vec![ResourceName::Cpu]),
            ..policy_for("*")
        }],
    };
    let rec = r.recommend(Some(&cpu_only), None).expect("valid policy");
    assert!(
        rec.container_recommendations
            .iter()
            .all(|c| c.target.memory.is_none()
                && c.upper_bound.memory.is_none()
                && c.target.cpu.is_some())
    );
}

#[test]
fn inconsistent_policy_is_rejected() {
    let r = two_containers();
    let policy = PodResourcePolicy {
        container_policies: vec![ContainerResourcePolicy {
            min_allowed: Some(ResourceList {
                cpu: Some(CpuAmount(2000)),
                memory: None,
            }),
            max_allowed: Some(ResourceList {
                cpu: Some(CpuAmount(1000)),
                memory: None,
            }),
            ..policy_for("app")
        }],
    };
    let err = r.recommend(Some(&policy), None).expect_err("min above max");
    assert!(err.to_string().contains("minAllowed.cpu"), "{err}");
    let duplicate = PodResourcePolicy {
        container_policies: vec![policy_for("app"), policy_for("app")],
    };
    assert!(
        r.recommend(Some(&duplicate), None).is_err(),
        "duplicate container policy"
    );
}
