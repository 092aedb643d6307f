//! `docs/metrics.md` matches what the code registers.

use mcpulse_telemetry::docs::{render_markdown, telemetry_sections};

#[test]
fn metrics_reference_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let generated = render_markdown(&telemetry_sections().unwrap());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the registered metrics; regenerate it with:\n  UPDATE_DOCS=1 cargo test -p mcpulse-telemetry --test docs",
        path.display()
    );
}

#[test]
fn reference_lists_every_family_with_its_labels() {
    let markdown = render_markdown(&telemetry_sections().unwrap());
    let rows = [
        "| `mcp_server_operation_duration_seconds` | histogram | `mcp_method_name`, `gen_ai_tool_name`, `error_type` |",
        "| `mcp_messages_total` | counter | `direction`, `kind`, `mcp_method_name` |",
        "| `mcp_message_size_bytes` | histogram | `direction` |",
        "| `mcp_server_sessions_active` | gauge | - |",
        "| `mcp_server_session_duration_seconds` | histogram | `mcp_protocol_version` |",
        "| `mcp_server_sessions_total` | counter | `client_name`, `mcp_protocol_version` |",
        "| `mcp_server_client_operations_total` | counter | `client_name`, `mcp_method_name`, `gen_ai_tool_name` |",
        "| `mcp_sse_streams_open` | gauge | `stream` |",
        "| `mcp_sse_events_total` | counter | `stream` |",
        "| `mcp_requests_in_flight` | gauge | `upstream` |",
        "| `mcp_queue_depth` | gauge | `upstream` |",
        "| `mcp_queue_wait_seconds` | histogram | `upstream` |",
        "| `mcp_queue_rejections_total` | counter | `upstream`, `reason` |",
        "| `mcp_upstream_errors_total` | counter | `upstream`, `error_type` |",
        "| `mcpulse_label_overflow_total` | counter | `metric`, `label` |",
        "| `mcpulse_build_info` | gauge | `version` |",
        "| `process_cpu_seconds_total` | counter | - |",
        "| `process_network_transmit_bytes_total` | counter | - |",
    ];
    for row in rows {
        assert!(
            markdown.contains(row),
            "missing row starting {row}\n{markdown}"
        );
    }
    assert!(
        markdown.contains("Buckets: 0.001, 0.0025, 0.005, 0.01,"),
        "operation buckets documented"
    );
}
