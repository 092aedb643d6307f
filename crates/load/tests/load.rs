//! The load generator against real rmcp servers: rates, ramps, open-loop sending, error classes, JSON shape.

mod common;

use std::time::Duration;

use common::{Agent, ProbeServer, per_second};
use mcpulse_load::{
    LoadError, LoadPlan, OVERLOAD_CLIENT, Progress, RateShape, SESSION, TIMEOUT, TOOL_ERROR,
    TRANSPORT, run,
};
use serde_json::{Value, json};

fn nap(url: &str, shape: RateShape, secs: u64, ms: u64) -> LoadPlan {
    let mut plan = LoadPlan::new(url, shape, Duration::from_secs(secs));
    plan.tool = "nap".to_owned();
    plan.arguments = LoadPlan::parse_arguments(&json!({ "ms": ms }).to_string()).expect("object");
    plan.sessions = 4;
    plan
}

/// Callers may spawn a run on a multi-threaded runtime.
fn assert_send<T: Send>(_: &T) {}

fn count(report: &mcpulse_load::LoadReport, kind: &str) -> u64 {
    report.errors.by_type.get(kind).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_rate_sends_rate_times_duration() {
    let server = ProbeServer::start().await;
    let mut updates: Vec<Progress> = Vec::new();
    let report = run(
        nap(&server.url, RateShape::Constant { rps: 50.0 }, 2, 0),
        |p| updates.push(p),
    )
    .await
    .expect("run");
    let arrived = server.arrivals().len() as u64;
    server.stop().await;

    assert_eq!(report.requests, 100, "50/s for 2 s");
    assert_eq!(report.ok, 100, "{report:#?}");
    assert_eq!(report.errors.total, 0, "{report:#?}");
    assert_eq!(arrived, 100, "the server saw every call");
    assert_eq!(report.latency_ms.count, 100);
    assert!(report.latency_ms.p50 > 0.0);
    assert!((report.offered_rps - 50.0).abs() < 1e-9);
    assert_eq!(report.sessions.opened, 4);
    let last = updates.last().expect("progress was reported");
    assert_eq!((last.due, last.ok, last.expected), (100, 100, 100));
    assert!(
        updates.windows(2).all(|w| w[0].due <= w[1].due),
        "progress never goes back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_arrivals_rise_each_second() {
    let server = ProbeServer::start().await;
    let report = run(
        nap(
            &server.url,
            RateShape::Ramp {
                from: 10.0,
                to: 70.0,
            },
            3,
            0,
        ),
        |_| {},
    )
    .await
    .expect("run");
    let counts = per_second(&server.arrivals());
    server.stop().await;

    // Seconds hold about 20, 40 and 60 calls.
    assert_eq!(report.requests, 120);
    assert!(counts.len() >= 3, "{counts:?}");
    assert!(
        counts[0] + 10 < counts[1] && counts[1] + 10 < counts[2],
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_do_not_slow_the_schedule() {
    let server = ProbeServer::start().await;
    let mut plan = nap(&server.url, RateShape::Constant { rps: 20.0 }, 2, 500);
    plan.sessions = 2;
    let report = run(plan, |_| {}).await.expect("run");
    let arrivals = server.arrivals();
    server.stop().await;

    // Closed-loop, two sessions could send 2 / 0.5 s = 4 calls/s; open-loop keeps 20/s.
    assert_eq!(arrivals.len(), 40, "every call was sent");
    let first = arrivals.iter().min().copied().expect("arrivals");
    let last = arrivals.iter().max().copied().expect("arrivals");
    let spread = last.duration_since(first);
    assert!(
        spread < Duration::from_millis(2500),
        "40 calls arrived over {spread:?}, not at 20/s"
    );
    assert_eq!(report.ok, 40, "{report:#?}");
    assert!(report.peak_in_flight >= 8, "{}", report.peak_in_flight);
    assert!(
        report.latency_ms.p50 >= 500.0,
        "latency includes the 500 ms nap: {:?}",
        report.latency_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified() {
    let agent = Agent::start().await;
    let rate = RateShape::Constant { rps: 20.0 };
    // (tool, arguments, error type every call gets, reason)
    let cases = [
        (
            "work",
            json!({"fail": true}),
            TOOL_ERROR,
            "an isError result",
        ),
        (
            "work",
            json!({"cpu_ms": 1_000_000}),
            "invalid_params",
            "a JSON-RPC error by name",
        ),
        (
            "work",
            json!({"sleep_ms": 2000}),
            TIMEOUT,
            "no reply within --timeout",
        ),
    ];
    for (tool, arguments, kind, reason) in cases {
        let mut plan = LoadPlan::new(&agent.url, rate.clone(), Duration::from_secs(1));
        plan.tool = tool.to_owned();
        plan.arguments = LoadPlan::parse_arguments(&arguments.to_string()).expect("object");
        plan.timeout = Duration::from_millis(300);
        let report = run(plan, |_| {}).await.expect("run");
        assert_eq!(report.requests, 20, "{reason}");
        assert_eq!(count(&report, kind), 20, "{reason}: {report:#?}");
        assert_eq!(report.errors.total, 20, "{reason}: {report:#?}");
        assert_eq!(report.ok, 0, "{reason}");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_max_in_flight_are_refused_not_queued() {
    let server = ProbeServer::start().await;
    let mut plan = nap(&server.url, RateShape::Constant { rps: 20.0 }, 1, 600);
    plan.max_in_flight = 2;
    let report = run(plan, |_| {}).await.expect("run");
    let arrived = server.arrivals().len() as u64;
    server.stop().await;

    assert_eq!(report.requests, 20);
    assert!(
        count(&report, OVERLOAD_CLIENT) >= 10,
        "with 2 in flight and 600 ms replies most calls are refused: {report:#?}"
    );
    assert_eq!(report.sent + count(&report, OVERLOAD_CLIENT), 20);
    assert_eq!(arrived, report.sent, "refused calls never reach the server");
    assert!(report.peak_in_flight <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_url_fails_to_open_sessions() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let plan = LoadPlan::new(
        format!("http://{addr}/mcp"),
        RateShape::Constant { rps: 10.0 },
        Duration::from_secs(1),
    );
    match run(plan, |_| {}).await {
        Err(LoadError::NoSession {
            sessions, cause, ..
        }) => {
            assert_eq!(sessions, 8);
            assert!(cause.contains("initialize"), "{cause}");
        }
        other => panic!("expected NoSession, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tool_is_refused_before_the_run() {
    let agent = Agent::start().await;
    let mut plan = LoadPlan::new(
        &agent.url,
        RateShape::Constant { rps: 10.0 },
        Duration::from_secs(60),
    );
    plan.tool = "nope".to_owned();
    let started = std::time::Instant::now();
    let result = run(plan, |_| {}).await;
    agent.stop().await;
    match result {
        Err(LoadError::UnknownTool { available, .. }) => {
            assert!(available.contains(&"work".to_owned()), "{available:?}");
        }
        other => panic!("expected UnknownTool, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refused before the 60 s schedule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lost_mid_run_turns_into_transport_and_session_errors() {
    let server = ProbeServer::start().await;
    let plan = nap(&server.url, RateShape::Constant { rps: 20.0 }, 2, 0);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(900)).await;
        server.stop().await;
    };
    let (report, ()) = tokio::join!(run(plan, |_| {}), stopper);
    let report = report.expect("run");

    assert_eq!(report.requests, 40);
    assert!(report.ok >= 10 && report.ok < 40, "{report:#?}");
    let lost = count(&report, TRANSPORT) + count(&report, SESSION) + count(&report, TIMEOUT);
    assert_eq!(
        report.ok + lost,
        40,
        "every call after the stop failed: {report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_report_has_the_documented_shape() {
    let agent = Agent::start().await;
    let plan = LoadPlan::new(
        &agent.url,
        RateShape::Constant { rps: 10.0 },
        Duration::from_secs(1),
    );
    let running = run(plan, |_| {});
    assert_send(&running);
    let report = running.await.expect("run");
    agent.stop().await;
    let json = serde_json::to_value(&report).expect("serializes");
    for pointer in [
        "/requests",
        "/errors/total",
        "/errors/by_type",
        "/latency_ms/p50",
        "/latency_ms/p95",
        "/latency_ms/p99",
        "/offered_rps",
        "/schedule_lag_ms/max",
    ] {
        assert!(
            json.pointer(pointer).is_some(),
            "{pointer} missing from {json}"
        );
    }
    assert_eq!(json["requests"], Value::from(10));
    assert_eq!(json["errors"]["total"], Value::from(0));
    assert!(json["errors"]["by_type"].is_object());
}
