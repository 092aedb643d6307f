//! Public behaviour of `McpMetrics`: exact values after recording, the cardinality guard, RAII guards.

use std::time::Duration;

use mcpulse_telemetry::{
    CardinalityLimits, Direction, Exposition, Format, McpMetrics, MessageKind, Registry,
    RejectionReason, SseStream, UpstreamErrorKind, encode, register_build_info,
};

fn setup(limits: CardinalityLimits) -> (Registry, McpMetrics) {
    let mut registry = Registry::default();
    let metrics = McpMetrics::new(&mut registry, limits);
    (registry, metrics)
}

fn scrape(registry: &Registry) -> Exposition {
    Exposition::parse(&encode(registry, Format::OpenMetrics).unwrap()).unwrap()
}

const OP: &str = "mcp_server_operation_duration_seconds";

#[test]
fn operation_duration_lands_in_the_right_buckets() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    metrics.record_operation("tools/call", Some("search"), None, Duration::from_millis(3));
    metrics.record_operation(
        "tools/call",
        Some("search"),
        None,
        Duration::from_millis(40),
    );
    metrics.record_operation(
        "tools/call",
        Some("search"),
        Some("tool_error"),
        Duration::from_secs(2),
    );
    metrics.record_operation("ping", None, None, Duration::from_micros(200));

    let scraped = scrape(&registry);
    let ok = [
        ("mcp_method_name", "tools/call"),
        ("gen_ai_tool_name", "search"),
        ("error_type", ""),
    ];
    let bucket = |le: &str| {
        let mut labels = ok.to_vec();
        labels.push(("le", le));
        scraped.value(&format!("{OP}_bucket"), &labels)
    };
    let cases = [
        ("0.0025", 0.0, "3 ms is above 2.5 ms"),
        ("0.005", 1.0, "3 ms falls in the 5 ms bucket"),
        (
            "0.05",
            2.0,
            "40 ms falls in the 50 ms bucket; buckets are cumulative",
        ),
        ("300.0", 2.0, "the tool error is a separate series"),
        ("+Inf", 2.0, "+Inf holds every observation"),
    ];
    for (le, want, why) in cases {
        assert_eq!(bucket(le), Some(want), "le={le}: {why}");
    }
    assert_eq!(scraped.value(&format!("{OP}_count"), &ok), Some(2.0));
    assert!((scraped.value(&format!("{OP}_sum"), &ok).unwrap() - 0.043).abs() < 1e-9);
    let failed = [
        ("mcp_method_name", "tools/call"),
        ("gen_ai_tool_name", "search"),
        ("error_type", "tool_error"),
    ];
    assert_eq!(scraped.value(&format!("{OP}_count"), &failed), Some(1.0));
    let ping = [
        ("mcp_method_name", "ping"),
        ("gen_ai_tool_name", ""),
        ("error_type", ""),
    ];
    assert_eq!(
        scraped.value(&format!("{OP}_count"), &ping),
        Some(1.0),
        "no tool means an empty tool label"
    );
    assert_eq!(scraped.family(OP).unwrap().unit.as_deref(), Some("seconds"));
}

#[test]
fn messages_and_sizes_by_direction() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    metrics.record_message(
        Direction::ClientToServer,
        MessageKind::Request,
        Some("tools/call"),
        300,
    );
    metrics.record_message(
        Direction::ClientToServer,
        MessageKind::Request,
        Some("tools/call"),
        5000,
    );
    metrics.record_message(Direction::ServerToClient, MessageKind::Response, None, 70);
    metrics.record_message(
        Direction::ServerToClient,
        MessageKind::Notification,
        Some("notifications/progress"),
        10,
    );

    let scraped = scrape(&registry);
    let messages = |direction, kind, method| {
        scraped.value(
            "mcp_messages_total",
            &[
                ("direction", direction),
                ("kind", kind),
                ("mcp_method_name", method),
            ],
        )
    };
    assert_eq!(
        messages("client_to_server", "request", "tools/call"),
        Some(2.0)
    );
    assert_eq!(messages("server_to_client", "response", ""), Some(1.0));
    assert_eq!(
        messages("server_to_client", "notification", "notifications/progress"),
        Some(1.0)
    );
    let size = |direction, le| {
        scraped.value(
            "mcp_message_size_bytes_bucket",
            &[("direction", direction), ("le", le)],
        )
    };
    assert_eq!(size("client_to_server", "256.0"), Some(0.0));
    assert_eq!(size("client_to_server", "1024.0"), Some(1.0));
    assert_eq!(size("client_to_server", "16384.0"), Some(2.0));
    assert_eq!(
        size("server_to_client", "64.0"),
        Some(1.0),
        "10 bytes fits the smallest bucket"
    );
    assert_eq!(
        scraped.value(
            "mcp_message_size_bytes_sum",
            &[("direction", "server_to_client")]
        ),
        Some(80.0)
    );
}

#[test]
fn sessions_count_and_guard_ends_them() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    let first = metrics.session_started(Some("claude-code"), Some("2025-06-18"));
    let second = metrics.session_started(Some("claude-code"), Some("2025-06-18"));
    let third = metrics.session_started(None, None);
    let scraped = scrape(&registry);
    assert_eq!(scraped.value("mcp_server_sessions_active", &[]), Some(3.0));
    assert_eq!(
        scraped.value(
            "mcp_server_sessions_total",
            &[
                ("client_name", "claude-code"),
                ("mcp_protocol_version", "2025-06-18")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        scraped.value(
            "mcp_server_sessions_total",
            &[("client_name", ""), ("mcp_protocol_version", "")]
        ),
        Some(1.0)
    );

    first.end(Duration::from_secs(90));
    drop(second);
    drop(third);
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value("mcp_server_sessions_active", &[]),
        Some(0.0),
        "ended and dropped sessions both go down once"
    );
    let version = [("mcp_protocol_version", "2025-06-18")];
    assert_eq!(
        scraped.value("mcp_server_session_duration_seconds_count", &version),
        Some(2.0)
    );
    let sum = scraped
        .value("mcp_server_session_duration_seconds_sum", &version)
        .unwrap();
    assert!(
        (90.0..91.0).contains(&sum),
        "explicit 90 s plus a near-zero drop, got {sum}"
    );
}

#[test]
fn client_operations_by_client_and_tool() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    metrics.record_client_operation(Some("cursor"), "tools/call", Some("search"));
    metrics.record_client_operation(Some("cursor"), "tools/call", Some("search"));
    metrics.record_client_operation(Some("claude-code"), "tools/list", None);
    let scraped = scrape(&registry);
    let value = |client, method, tool| {
        scraped.value(
            "mcp_server_client_operations_total",
            &[
                ("client_name", client),
                ("mcp_method_name", method),
                ("gen_ai_tool_name", tool),
            ],
        )
    };
    assert_eq!(value("cursor", "tools/call", "search"), Some(2.0));
    assert_eq!(value("claude-code", "tools/list", ""), Some(1.0));
}

#[test]
fn sse_gauges_follow_guards() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    let post = metrics.sse_stream_opened(SseStream::Post);
    let get_a = metrics.sse_stream_opened(SseStream::Get);
    let get_b = metrics.sse_stream_opened(SseStream::Get);
    metrics.record_sse_event(SseStream::Get);
    let open =
        |r: &Registry, stream| scrape(r).value("mcp_sse_streams_open", &[("stream", stream)]);
    assert_eq!(open(&registry, "post"), Some(1.0));
    assert_eq!(open(&registry, "get"), Some(2.0));
    drop(get_a);
    drop(post);
    assert_eq!(open(&registry, "get"), Some(1.0));
    assert_eq!(open(&registry, "post"), Some(0.0));
    drop(get_b);
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value("mcp_sse_streams_open", &[("stream", "get")]),
        Some(0.0)
    );
    assert_eq!(
        scraped.value("mcp_sse_events_total", &[("stream", "get")]),
        Some(1.0)
    );
    assert_eq!(
        scraped.value("mcp_sse_events_total", &[("stream", "post")]),
        Some(0.0)
    );
}

#[test]
fn upstream_guards_and_counters() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    let upstream = metrics.upstream("github");
    let up = [("upstream", "github")];
    {
        let _queued = upstream.enqueued();
        let _in_flight = upstream.request_started();
        let _in_flight_2 = upstream.request_started();
        let scraped = scrape(&registry);
        assert_eq!(scraped.value("mcp_queue_depth", &up), Some(1.0));
        assert_eq!(scraped.value("mcp_requests_in_flight", &up), Some(2.0));
    }
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value("mcp_queue_depth", &up),
        Some(0.0),
        "guards dropped at scope end"
    );
    assert_eq!(scraped.value("mcp_requests_in_flight", &up), Some(0.0));

    upstream.record_queue_wait(Duration::from_millis(20));
    upstream.record_queue_rejection(RejectionReason::Full);
    upstream.record_queue_rejection(RejectionReason::Full);
    upstream.record_queue_rejection(RejectionReason::Timeout);
    let kinds = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Protocol,
        UpstreamErrorKind::Status4xx,
        UpstreamErrorKind::Status5xx,
        UpstreamErrorKind::Reset,
    ];
    // Kind i is recorded i + 1 times, so a mixed-up index shows as a wrong count.
    for (i, kind) in kinds.iter().enumerate() {
        for _ in 0..=i {
            upstream.record_upstream_error(*kind);
        }
    }
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value(
            "mcp_queue_wait_seconds_bucket",
            &[("upstream", "github"), ("le", "0.025")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scraped.value(
            "mcp_queue_wait_seconds_bucket",
            &[("upstream", "github"), ("le", "0.01")]
        ),
        Some(0.0)
    );
    let rejected = |reason| {
        scraped.value(
            "mcp_queue_rejections_total",
            &[("upstream", "github"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("full"), Some(2.0));
    assert_eq!(rejected("timeout"), Some(1.0));
    for (i, kind) in kinds.iter().enumerate() {
        let value = scraped.value(
            "mcp_upstream_errors_total",
            &[("upstream", "github"), ("error_type", kind.as_str())],
        );
        assert_eq!(value, Some((i + 1) as f64), "{}", kind.as_str());
    }
}

#[test]
fn guard_replaces_overflow_with_other_and_counts_it() {
    let (registry, metrics) = setup(CardinalityLimits::new(3, 16).unwrap());
    for method in ["a", "b", "c", "d", "e", "a"] {
        metrics.record_operation(method, None, None, Duration::from_millis(1));
    }
    metrics.record_operation(
        "ok",
        Some("0123456789abcdefXYZ"),
        None,
        Duration::from_millis(1),
    );
    let scraped = scrape(&registry);
    let count = |method, tool| {
        scraped.value(
            &format!("{OP}_count"),
            &[
                ("mcp_method_name", method),
                ("gen_ai_tool_name", tool),
                ("error_type", ""),
            ],
        )
    };
    assert_eq!(
        count("a", ""),
        Some(2.0),
        "values admitted before the limit keep their series"
    );
    assert_eq!(
        count("d", ""),
        None,
        "the fourth distinct value has no series"
    );
    assert_eq!(count("_other", ""), Some(2.0), "d and e went to _other");
    assert_eq!(
        count("_other", "0123456789abcdef"),
        Some(1.0),
        "late `ok` went to _other too; its tool was cut to 16 bytes"
    );
    let overflow = |label| {
        scraped.value(
            "mcpulse_label_overflow_total",
            &[("metric", OP), ("label", label)],
        )
    };
    assert_eq!(overflow("mcp_method_name"), Some(3.0));
    assert_eq!(overflow("gen_ai_tool_name"), Some(0.0));
    // Other families keep their own budget: the same methods are new to mcp_messages_total.
    metrics.record_message(
        Direction::ClientToServer,
        MessageKind::Request,
        Some("d"),
        1,
    );
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value(
            "mcp_messages_total",
            &[
                ("direction", "client_to_server"),
                ("kind", "request"),
                ("mcp_method_name", "d")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn metrics_are_shared_across_clones_and_threads() {
    let (registry, metrics) = setup(CardinalityLimits::default());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    metrics.record_operation("ping", None, None, Duration::from_millis(1));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let labels = [
        ("mcp_method_name", "ping"),
        ("gen_ai_tool_name", ""),
        ("error_type", ""),
    ];
    assert_eq!(
        scrape(&registry).value(&format!("{OP}_count"), &labels),
        Some(1000.0)
    );
}

#[test]
fn build_info_is_one() {
    let mut registry = Registry::default();
    register_build_info(&mut registry, "1.2.3");
    let scraped = scrape(&registry);
    assert_eq!(
        scraped.value("mcpulse_build_info", &[("version", "1.2.3")]),
        Some(1.0)
    );
    assert_eq!(scraped.family("mcpulse_build_info").unwrap().kind, "gauge");
}

#[test]
fn prometheus_text_differs_from_openmetrics_where_it_must() {
    let (mut registry, metrics) = setup(CardinalityLimits::default());
    register_build_info(&mut registry, "1.2.3");
    metrics.record_operation("ping", None, None, Duration::from_millis(1));
    metrics.record_message(
        Direction::ClientToServer,
        MessageKind::Request,
        Some("ping"),
        10,
    );
    let text = encode(&registry, Format::PrometheusText).unwrap();
    let open = encode(&registry, Format::OpenMetrics).unwrap();
    assert!(open.ends_with("# EOF\n"));
    assert!(
        open.contains("# TYPE mcp_messages counter\n")
            && open.contains("# UNIT mcp_server_operation_duration_seconds seconds\n")
    );
    assert!(!text.contains("# EOF") && !text.contains("# UNIT") && !text.contains("_created"));
    assert!(
        text.contains("# TYPE mcp_messages_total counter\n"),
        "counter TYPE names the _total series"
    );
    assert!(text.contains("# TYPE mcp_server_operation_duration_seconds histogram\n"));
    let parsed = Exposition::parse(&text).unwrap();
    assert!(!parsed.eof);
    assert_eq!(
        parsed.value("mcpulse_build_info", &[("version", "1.2.3")]),
        Some(1.0)
    );
}
