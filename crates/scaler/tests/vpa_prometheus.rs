//! Parsing of Prometheus `query_range` responses (shaped as Prometheus sends them) and feeding the recommender.

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    CpuAmount, Matrix, MemoryAmount, PrometheusHistory, Queries, QueryResponse, Recommender,
    VpaConfig, parse_matrix, query_windows,
};

/// A `rate(container_cpu_usage_seconds_total…)` answer: two pods, a NaN from a counter reset, a
/// stray series without a container label (the pod cgroup total).
const CPU: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"container":"app","namespace":"shop","pod":"web-5d8f7c9b4-x2x9z"},
  "values":[[1700000000,"0.25"],[1700000060,"0.5"],[1700000120,"NaN"],[1700000180,"0.75"]]},
 {"metric":{"container":"app","namespace":"shop","pod":"web-5d8f7c9b4-k8q7m"},
  "values":[[1700000000,"0.2"],[1700000060.5,"+Inf"],[1700000120,"0.3"]]},
 {"metric":{"namespace":"shop","pod":"web-5d8f7c9b4-k8q7m"},
  "values":[[1700000000,"1.0"]]}
]}}"#;

const MEMORY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"__name__":"container_memory_working_set_bytes","container":"app","namespace":"shop","pod":"web-5d8f7c9b4-x2x9z"},
  "values":[[1700000000,"536870912"],[1700000060,"603979776"]]}
]}}"#;

/// kube-state-metrics' last-terminated-reason gauge: off, then an OOM kill is seen at +120 s.
const OOM: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"__name__":"kube_pod_container_status_last_terminated_reason","container":"app","namespace":"shop","pod":"web-5d8f7c9b4-x2x9z","reason":"OOMKilled","uid":"0b1c"},
  "values":[[1700000060,"0"],[1700000120,"1"],[1700000180,"1"]]}
]}}"#;

const REQUESTS_CPU: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"container":"app","namespace":"shop","pod":"web-5d8f7c9b4-x2x9z","resource":"cpu","unit":"core"},
  "values":[[1700000000,"0.5"],[1700000180,"0.5"]]}
]}}"#;

const LIMITS_CPU: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"container":"app","namespace":"shop","pod":"web-5d8f7c9b4-x2x9z","resource":"cpu","unit":"core"},
  "values":[[1700000180,"1"]]}
]}}"#;

const EMPTY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;

fn parse(text: &str, what: &str) -> Matrix {
    let response: QueryResponse = serde_json::from_str(text).expect("recorded response is JSON");
    parse_matrix(response, what).expect("a matrix")
}

#[test]
fn matrix_keeps_finite_points_of_labelled_series() {
    let m = parse(CPU, "cpu");
    assert_eq!(
        m.series.len(),
        2,
        "the series without a container label is dropped"
    );
    assert_eq!(m.skipped_series, 1);
    assert_eq!(m.skipped_values, 2, "NaN and +Inf");
    assert_eq!(m.series[0].pod, "web-5d8f7c9b4-x2x9z");
    assert_eq!(
        m.series[0].points,
        vec![
            (Timestamp::from_secs(1_700_000_000), 0.25),
            (Timestamp::from_secs(1_700_000_060), 0.5),
            (Timestamp::from_secs(1_700_000_180), 0.75),
        ]
    );
}

#[test]
fn error_and_unexpected_envelopes_are_explained() {
    let cases = [
        (
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:6: parse error"}"#,
            "bad_data",
            "Prometheus error is passed on",
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            "expected a `matrix`",
            "an instant query's answer",
        ),
        (
            r#"{"status":"success"}"#,
            "without `data`",
            "no data at all",
        ),
    ];
    for (text, needle, why) in cases {
        let response: QueryResponse = serde_json::from_str(text).expect("JSON");
        let err = parse_matrix(response, "cpu").expect_err(why);
        assert!(err.to_string().contains(needle), "{why}: {err}");
    }
}

#[test]
fn chunks_of_one_query_merge_by_pod_and_container() {
    let mut first = parse(MEMORY, "memory");
    let second = parse(
        r#"{"status":"success","data":{"resultType":"matrix","result":[
         {"metric":{"container":"app","pod":"web-5d8f7c9b4-x2x9z"},"values":[[1700000120,"1"]]},
         {"metric":{"container":"app","pod":"web-5d8f7c9b4-new"},"values":[[1700000120,"2"]]}]}}"#,
        "memory",
    );
    first.merge(second).expect("within bounds");
    assert_eq!(first.series.len(), 2);
    assert_eq!(first.series[0].points.len(), 3);
    assert_eq!(first.points(), 4);
}

#[test]
fn history_feeds_samples_ooms_and_requests() {
    let history = PrometheusHistory {
        cpu: parse(CPU, "cpu"),
        memory: parse(MEMORY, "memory"),
        oom: parse(OOM, "oom"),
        cpu_requests: parse(REQUESTS_CPU, "cpu requests"),
        memory_requests: parse(EMPTY, "memory requests"),
        cpu_limits: parse(LIMITS_CPU, "cpu limits"),
        memory_limits: parse(EMPTY, "memory limits"),
    };
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    history.feed(&mut r).expect("valid names");
    let stats = r.stats();
    assert_eq!(stats.cpu_samples, 5, "3 + 2 finite CPU points");
    assert_eq!(stats.memory_samples, 2, "OOM peaks are counted apart");
    assert_eq!(stats.ooms, 1, "one rising edge of the OOM gauge");
    assert_eq!(history.skipped(), (2, 1));
    let rec = r.recommend(None, None).expect("history");
    let app = &rec.container_recommendations[0];
    // The OOM at 576Mi peak: max(576Mi × 1.2, 576Mi + 100Mi) = 691.2Mi, above the plain peaks.
    assert!(
        app.target.memory > Some(MemoryAmount(700 * 1024 * 1024)),
        "{app:?}"
    );
    let now = history
        .current_resources("app")
        .expect("requests were read");
    assert_eq!(now.requests.cpu, Some(CpuAmount(500)));
    assert_eq!(now.limits.cpu, Some(CpuAmount(1000)));
    assert_eq!(now.requests.memory, None);
    assert!(history.current_resources("other").is_none());
}

#[test]
fn queries_select_the_workload_and_reject_injection() {
    let q = Queries::new("shop", "web.v2", None, "5m").expect("valid names");
    assert_eq!(
        q.cpu,
        r#"rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"web\\.v2-.*",container!="",container!="POD"}[5m])"#
    );
    assert!(q.oom.ends_with(r#"reason="OOMKilled"}"#), "{}", q.oom);
    let one = Queries::new("shop", "web", Some("app"), "5m").expect("valid names");
    assert!(one.memory.contains(r#"container="app""#), "{}", one.memory);
    for (ns, workload, container, why) in [
        (
            "shop",
            "web\"} or vector(1) #",
            None,
            "quote in the workload",
        ),
        ("Shop", "web", None, "uppercase namespace"),
        ("shop", "web", Some(""), "empty container"),
        ("shop", "-web", None, "leading dash"),
    ] {
        assert!(
            Queries::new(ns, workload, container, "5m").is_err(),
            "{why}"
        );
    }
}

#[test]
fn long_ranges_are_split_below_the_point_limit() {
    let start = Timestamp::from_secs(1_700_000_000);
    let end = Timestamp::from_secs(1_700_000_000 + 8 * 86_400);
    let windows = query_windows(start, end, 60_000).expect("valid range");
    // 8 days at 1 minute is 11 521 points, past Prometheus' 11 000 per series.
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].0, start);
    assert_eq!(windows[1].1, end);
    for (from, to) in &windows {
        assert!((to.millis() - from.millis()) / 60_000 < 10_000);
    }
    assert_eq!(
        windows[1].0.millis() - windows[0].1.millis(),
        60_000,
        "no overlap, no gap"
    );
    assert!(query_windows(end, start, 60_000).is_err(), "reversed range");
    assert!(query_windows(start, end, 10).is_err(), "sub-second step");
}

/// Answers recorded from Prometheus 2.42 serving backfilled synthetic series (two pods, a sidecar, an
/// OOM kill six hours before the end), for the queries `mcpulse recommend` sends.
mod recorded {
    pub const CPU_PROXY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"container":"proxy","namespace":"shop","pod":"web-7d9f-a"},"values":[[1795634040,"0.02"],[1795637640,"0.02"],[1795641240,"0.02"]]},{"metric":{"container":"proxy","namespace":"shop","pod":"web-7d9f-b"},"values":[[1795634040,"0.02"],[1795637640,"0.02"],[1795641240,"0.02"]]}]}}"#;
    pub const OOM: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"kube_pod_container_status_last_terminated_reason","container":"app","namespace":"shop","pod":"web-7d9f-b","reason":"OOMKilled"},"values":[[1795612440,"0"],[1795616040,"0"],[1795619640,"1"],[1795623240,"1"],[1795626840,"1"],[1795630440,"1"],[1795634040,"1"],[1795637640,"1"],[1795641240,"1"]]}]}}"#;
    pub const PARSE_ERROR: &str = r#"{"status":"error","errorType":"bad_data","error":"1:10: parse error: unexpected \")\" in subquery or range, expected \":\" or \"]\""}"#;
    pub const NO_SERIES: &str =
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
}

#[test]
fn recorded_prometheus_answers() {
    let cpu = parse(recorded::CPU_PROXY, "cpu");
    assert_eq!(cpu.series.len(), 2);
    assert!(
        cpu.series
            .iter()
            .all(|s| s.container == "proxy" && s.points.len() == 3)
    );
    assert_eq!(
        cpu.series[1].points[2],
        (Timestamp::from_secs(1_795_641_240), 0.02)
    );

    let oom = parse(recorded::OOM, "oom");
    let history = PrometheusHistory {
        oom,
        ..PrometheusHistory::default()
    };
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    history.feed(&mut r).expect("valid names");
    assert_eq!(
        r.stats().ooms,
        1,
        "seven points at 1 after two at 0 are one OOM kill"
    );

    let none = parse(recorded::NO_SERIES, "cpu");
    assert!(none.series.is_empty() && none.skipped_series == 0);

    let response: QueryResponse = serde_json::from_str(recorded::PARSE_ERROR).expect("JSON");
    let err = parse_matrix(response, "cpu usage").expect_err("Prometheus said error");
    let text = err.to_string();
    assert!(
        text.contains("cpu usage") && text.contains("parse error") && text.contains("bad_data"),
        "{text}"
    );
}
