//! Generates the metrics reference (`docs/metrics.md`) from registries, so the docs cannot drift from the code.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::exposition::{Exposition, Format, encode, register_build_info};
use crate::mcp::{Direction, McpMetrics, MessageKind, SseStream};
use crate::process::PROCESS_METRICS;
use crate::{CardinalityLimits, TelemetryError};

/// One metric as documented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricDoc {
    /// Name as queried: counters with `_total`, histograms without `_bucket`/`_sum`/`_count`.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// Label names, `le` excluded.
    pub labels: Vec<String>,
    /// Help text, plus the bucket bounds for histograms.
    pub help: String,
}

/// A titled group of metrics, one table in the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocSection {
    /// Section heading.
    pub title: String,
    /// Metrics in exposition order.
    pub metrics: Vec<MetricDoc>,
}

impl DocSection {
    /// Documents every family in `registry`. prometheus-client leaves out families with no series
    /// yet, so record one example in each labelled family first (see [`telemetry_sections`]).
    pub fn from_registry(title: &str, registry: &Registry) -> Result<Self, TelemetryError> {
        let exposition = Exposition::parse(&encode(registry, Format::PrometheusText)?)?;
        let metrics = exposition
            .families
            .iter()
            .map(|family| {
                let mut labels: Vec<String> = Vec::new();
                for (key, _) in family.samples.iter().flat_map(|sample| &sample.labels) {
                    if key != "le" && !labels.contains(key) {
                        labels.push(key.clone());
                    }
                }
                let mut help = family.help.clone();
                if family.kind == "histogram" {
                    let bucket = format!("{}_bucket", family.name);
                    // Every series of a family shares the bounds: read them off the first one.
                    let first = family.samples.iter().find(|sample| sample.name == bucket);
                    let first_labels = first.map(|sample| without_le(&sample.labels));
                    let bounds: Vec<&str> = family
                        .samples
                        .iter()
                        .filter(|sample| {
                            sample.name == bucket
                                && Some(without_le(&sample.labels)) == first_labels
                        })
                        .filter_map(|sample| sample.labels.iter().find(|(key, _)| key == "le"))
                        .map(|(_, bound)| bound.as_str())
                        .collect();
                    let _ = write!(help, " Buckets: {}.", bounds.join(", "));
                }
                MetricDoc {
                    name: family.name.clone(),
                    kind: family.kind.clone(),
                    labels,
                    help,
                }
            })
            .collect();
        Ok(Self {
            title: title.to_owned(),
            metrics,
        })
    }

    /// Documents the [`ProcessCollector`](crate::ProcessCollector) from its static list, so the
    /// reference does not depend on what the generating machine's /proc holds.
    pub fn process(title: &str) -> Self {
        let metrics = PROCESS_METRICS
            .iter()
            .map(|metric| MetricDoc {
                name: metric.name.to_owned(),
                kind: if metric.kind == MetricType::Counter {
                    "counter"
                } else {
                    "gauge"
                }
                .to_owned(),
                labels: Vec::new(),
                help: metric.help.to_owned(),
            })
            .collect();
        Self {
            title: title.to_owned(),
            metrics,
        }
    }
}

fn without_le(labels: &[(String, String)]) -> Vec<&(String, String)> {
    labels.iter().filter(|(key, _)| key != "le").collect()
}

/// The sections this crate owns: MCP traffic (with the guard's overflow counter and build info)
/// and the process collector. Other crates append their own sections.
pub fn telemetry_sections() -> Result<Vec<DocSection>, TelemetryError> {
    let mut registry = Registry::default();
    register_build_info(&mut registry, "0.0.0");
    let metrics = McpMetrics::new(&mut registry, CardinalityLimits::default());
    metrics.record_operation(
        "tools/call",
        Some("example"),
        None,
        Duration::from_millis(5),
    );
    metrics.record_message(
        Direction::ClientToServer,
        MessageKind::Request,
        Some("tools/call"),
        100,
    );
    metrics.record_client_operation(Some("example"), "tools/call", Some("example"));
    metrics
        .session_started(Some("example"), Some("2025-06-18"))
        .end(Duration::from_secs(1));
    metrics.record_sse_event(SseStream::Post);
    // Resolving an upstream creates all its series.
    let _upstream = metrics.upstream("example");
    Ok(vec![
        DocSection::from_registry("MCP traffic", &registry)?,
        DocSection::process("Process (from /proc at scrape time)"),
    ])
}

/// Renders the reference, one table per section.
pub fn render_markdown(sections: &[DocSection]) -> String {
    let mut out = String::from(
        "# Metrics\n\n\
         <!-- Generated by mcpulse_telemetry::docs; do not edit by hand. \
         Regenerate with: UPDATE_DOCS=1 cargo test -p mcpulse-telemetry --test docs -->\n\n\
         Client-supplied label values (method, tool, error type, client name, protocol version) are \
         cut to 128 bytes and capped at 100 distinct values per family and label by default; \
         further values are reported as `_other` and counted in `mcpulse_label_overflow_total`. \
         Histograms expose `_bucket`, `_sum` and `_count` series.\n",
    );
    for section in sections {
        let _ = write!(
            out,
            "\n## {}\n\n| Metric | Type | Labels | Description |\n| --- | --- | --- | --- |\n",
            section.title
        );
        for metric in &section.metrics {
            let labels = if metric.labels.is_empty() {
                "-".to_owned()
            } else {
                metric
                    .labels
                    .iter()
                    .map(|label| format!("`{label}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                metric.name,
                metric.kind,
                labels,
                metric.help.replace('|', "\\|").replace('\n', " ")
            );
        }
    }
    out
}
