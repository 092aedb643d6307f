//! Both exposition formats pass `promtool check metrics` (skipped with a reason when promtool is absent).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcpulse_telemetry::{
    CardinalityLimits, Direction, Format, McpMetrics, MessageKind, ProcessCollector, Registry,
    SseStream, encode, register_build_info,
};

fn populated_registry() -> Registry {
    let mut registry = Registry::default();
    register_build_info(&mut registry, "0.1.0");
    registry.register_collector(Box::new(ProcessCollector::new()));
    let metrics = McpMetrics::new(&mut registry, CardinalityLimits::default());
    metrics.record_operation(
        "tools/call",
        Some("search \"quoted\" \\ tool"),
        Some("-32603"),
        Duration::from_millis(12),
    );
    metrics.record_message(
        Direction::ServerToClient,
        MessageKind::Error,
        Some("tools/call"),
        200,
    );
    metrics.record_client_operation(Some("client\nwith newline"), "tools/call", Some("search"));
    metrics
        .session_started(Some("cursor"), Some("2025-06-18"))
        .end(Duration::from_secs(3));
    metrics.record_sse_event(SseStream::Get);
    let _upstream = metrics.upstream("default");
    registry
}

fn promtool() -> Option<&'static str> {
    let path = "/usr/bin/promtool";
    std::path::Path::new(path).exists().then_some(path)
}

fn check(format: Format) {
    let Some(promtool) = promtool() else {
        println!("skipped: /usr/bin/promtool is not installed (apt-get install prometheus)");
        return;
    };
    let body = encode(&populated_registry(), format).unwrap();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool 2.x lints with the Prometheus text parser, which reads an OpenMetrics counter family
    // (`# TYPE x counter`, sample `x_total`) as an untyped `x_total` without help. That is valid
    // OpenMetrics, so for it exactly those complaints are tolerated, and only for counters whose
    // family does carry help.
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|line| {
            let tolerated = format == Format::OpenMetrics
                && line
                    .strip_suffix("_total no help text")
                    .is_some_and(|family| {
                        body.contains(&format!("# TYPE {family} counter\n"))
                            && body.contains(&format!("# HELP {family} "))
                    });
            !tolerated && !line.trim().is_empty()
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool on {format:?}:\n{report}\n---\n{body}"
    );
}

#[test]
fn promtool_accepts_prometheus_text() {
    check(Format::PrometheusText);
}

#[test]
fn promtool_accepts_openmetrics() {
    check(Format::OpenMetrics);
}
