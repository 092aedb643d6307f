//! Recording through the series cache gives exactly the counts and overflow tallies of the documented guard semantics, whatever the order of calls.

use std::collections::HashMap;
use std::time::Duration;

use mcpulse_telemetry::{
    CardinalityLimits, Direction, Exposition, Format, McpMetrics, MessageKind, Registry, encode,
};
use proptest::prelude::*;

const LIMIT: usize = 3;
const MAX_BYTES: usize = 8;

/// The documented guard: values cut to `MAX_BYTES` on a character boundary with control
/// characters replaced, the first `LIMIT` distinct values kept, later ones counted and replaced.
#[derive(Default)]
struct ModelGuard {
    seen: Vec<String>,
    overflow: u64,
}

impl ModelGuard {
    fn admit(&mut self, raw: &str) -> String {
        let mut cut = raw.len().min(MAX_BYTES);
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        let value: String = raw[..cut]
            .chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect();
        if self.seen.contains(&value) {
            value
        } else if self.seen.len() >= LIMIT {
            self.overflow += 1;
            "_other".to_owned()
        } else {
            self.seen.push(value.clone());
            value
        }
    }

    fn optional(&mut self, raw: Option<&str>) -> String {
        raw.map(|raw| self.admit(raw)).unwrap_or_default()
    }
}

/// A sample name and its labels.
type Series = (&'static str, Vec<(&'static str, String)>);

#[derive(Debug, Clone)]
enum Op {
    Operation(String, Option<String>, Option<String>),
    Message(bool, u8, Option<String>),
    Client(Option<String>, String, Option<String>),
}

/// A small pool so values repeat (cache hits) and overflow (slow path), with edge cases: empty,
/// the overflow value itself, too long, control characters, multi-byte at the cut.
fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b",
        "c",
        "d",
        "e",
        "",
        "_other",
        "abcdefghij",
        "abcdefghXY",
        "x\ny",
        "ééééé",
    ])
    .prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    let opt = || prop::option::of(value());
    prop_oneof![
        (value(), opt(), opt()).prop_map(|(m, t, e)| Op::Operation(m, t, e)),
        (any::<bool>(), 0u8..4, opt()).prop_map(|(d, k, m)| Op::Message(d, k, m)),
        (opt(), value(), opt()).prop_map(|(c, m, t)| Op::Client(c, m, t)),
    ]
}

fn kind(k: u8) -> MessageKind {
    [
        MessageKind::Request,
        MessageKind::Notification,
        MessageKind::Response,
        MessageKind::Error,
    ][usize::from(k % 4)]
}

fn direction(d: bool) -> Direction {
    if d {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn counts_match_the_guard_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut registry = Registry::default();
        let limits = CardinalityLimits::new(LIMIT, MAX_BYTES).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let metrics = McpMetrics::new(&mut registry, limits);

        let mut guards: HashMap<(&str, &str), ModelGuard> = HashMap::new();
        let mut want: HashMap<Series, f64> = HashMap::new();
        for op in &ops {
            match op {
                Op::Operation(m, t, e) => {
                    metrics.record_operation(m, t.as_deref(), e.as_deref(), Duration::from_millis(1));
                    let family = "mcp_server_operation_duration_seconds";
                    let labels = vec![
                        ("mcp_method_name", guards.entry((family, "mcp_method_name")).or_default().admit(m)),
                        ("gen_ai_tool_name", guards.entry((family, "gen_ai_tool_name")).or_default().optional(t.as_deref())),
                        ("error_type", guards.entry((family, "error_type")).or_default().optional(e.as_deref())),
                    ];
                    *want.entry(("mcp_server_operation_duration_seconds_count", labels)).or_default() += 1.0;
                }
                Op::Message(d, k, m) => {
                    metrics.record_message(direction(*d), kind(*k), m.as_deref(), 10);
                    let labels = vec![
                        ("direction", direction(*d).as_str().to_owned()),
                        ("kind", kind(*k).as_str().to_owned()),
                        ("mcp_method_name", guards.entry(("mcp_messages_total", "mcp_method_name")).or_default().optional(m.as_deref())),
                    ];
                    *want.entry(("mcp_messages_total", labels)).or_default() += 1.0;
                }
                Op::Client(c, m, t) => {
                    metrics.record_client_operation(c.as_deref(), m, t.as_deref());
                    let family = "mcp_server_client_operations_total";
                    let labels = vec![
                        ("client_name", guards.entry((family, "client_name")).or_default().optional(c.as_deref())),
                        ("mcp_method_name", guards.entry((family, "mcp_method_name")).or_default().admit(m)),
                        ("gen_ai_tool_name", guards.entry((family, "gen_ai_tool_name")).or_default().optional(t.as_deref())),
                    ];
                    *want.entry((family, labels)).or_default() += 1.0;
                }
            }
        }

        let body = encode(&registry, Format::OpenMetrics).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let scraped = Exposition::parse(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for ((name, labels), count) in &want {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            prop_assert_eq!(scraped.value(name, &labels), Some(*count), "{} {:?}\n{}", name, labels, body);
        }
        // No series beyond the model's: a stale or wrong cache entry would add or move one.
        for (family, sample) in [
            ("mcp_server_operation_duration_seconds", "mcp_server_operation_duration_seconds_count"),
            ("mcp_messages", "mcp_messages_total"),
            ("mcp_server_client_operations", "mcp_server_client_operations_total"),
        ] {
            let have = scraped.family(family).map_or(0, |f| f.samples.iter().filter(|s| s.name == sample).count());
            let expected = want.keys().filter(|(name, _)| *name == sample).count();
            prop_assert_eq!(have, expected, "series of {}", family);
        }
        for ((metric, label), guard) in &guards {
            prop_assert_eq!(
                scraped.value("mcpulse_label_overflow_total", &[("metric", metric), ("label", label)]),
                Some(guard.overflow as f64),
                "overflow of {}/{}", metric, label
            );
        }
    }
}
