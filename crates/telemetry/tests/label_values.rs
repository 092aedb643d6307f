//! No client-supplied label value, however hostile, breaks either exposition format.

use std::time::Duration;

use mcpulse_telemetry::{
    CardinalityLimits, Direction, Exposition, Format, McpMetrics, MessageKind, Registry, encode,
};
use proptest::prelude::*;

/// What the guard is documented to keep of a value: at most 128 bytes on a character boundary,
/// control characters replaced by U+FFFD.
fn expected(raw: &str) -> String {
    let mut cut = raw.len().min(128);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    raw[..cut]
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\r'),
                Just('}'),
                Just(','),
                Just('='),
                Just('#'),
                any::<char>()
            ],
            0..200
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_values_round_trip(method in hostile(), tool in hostile(), client in hostile(), version in hostile()) {
        let mut registry = Registry::default();
        let metrics = McpMetrics::new(&mut registry, CardinalityLimits::default());
        metrics.record_operation(&method, Some(&tool), Some(&version), Duration::from_millis(1));
        metrics.record_message(Direction::ClientToServer, MessageKind::Request, Some(&method), 1);
        metrics.record_client_operation(Some(&client), &method, Some(&tool));
        metrics.session_started(Some(&client), Some(&version)).end(Duration::from_secs(1));

        for format in [Format::OpenMetrics, Format::PrometheusText] {
            let body = encode(&registry, format).unwrap();
            let parsed = Exposition::parse(&body);
            prop_assert!(parsed.is_ok(), "{format:?} did not parse: {parsed:?}\n{body}");
            let parsed = parsed.unwrap();
            let (method, tool, client, version) = (expected(&method), expected(&tool), expected(&client), expected(&version));
            prop_assert_eq!(
                parsed.value("mcp_server_client_operations_total", &[("client_name", &client), ("mcp_method_name", &method), ("gen_ai_tool_name", &tool)]),
                Some(1.0)
            );
            prop_assert_eq!(
                parsed.value("mcp_server_operation_duration_seconds_count", &[("mcp_method_name", &method), ("gen_ai_tool_name", &tool), ("error_type", &version)]),
                Some(1.0)
            );
            prop_assert_eq!(
                parsed.value("mcp_server_sessions_total", &[("client_name", &client), ("mcp_protocol_version", &version)]),
                Some(1.0)
            );
            // Every line is a comment or one sample: a value that broke out of its quotes would add lines.
            let samples: usize = parsed.families.iter().map(|family| family.samples.len()).sum();
            let sample_lines = body.lines().filter(|line| !line.starts_with('#')).count();
            prop_assert_eq!(samples, sample_lines);
        }
    }
}
