//! The VPA `status.recommendation` shape, a whole `VerticalPodAutoscaler` object, and its YAML and table forms.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use super::amount::ResourceList;
use super::policy::{ContainerResources, ControlledValues, PodResourcePolicy, proposed_limits};

/// `status.recommendation`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedPodResources {
    pub container_recommendations: Vec<RecommendedContainerResources>,
}

/// One entry of `containerRecommendations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedContainerResources {
    pub container_name: String,
    pub target: ResourceList,
    pub lower_bound: ResourceList,
    pub upper_bound: ResourceList,
    /// The target before `minAllowed`/`maxAllowed`.
    pub uncapped_target: ResourceList,
}

/// The API version and kind of the VPA objects this module prints.
pub const VPA_API_VERSION: &str = "autoscaling.k8s.io/v1";
pub const VPA_KIND: &str = "VerticalPodAutoscaler";

/// A `VerticalPodAutoscaler` carrying a computed recommendation in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscaler {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: VpaSpec,
    pub status: VpaStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VpaSpec {
    pub target_ref: TargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<PodResourcePolicy>,
}

/// `spec.targetRef` (a `CrossVersionObjectReference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpaStatus {
    pub recommendation: RecommendedPodResources,
}

impl VerticalPodAutoscaler {
    /// A VPA named after the workload, targeting an `apps/v1` object of `target_kind`.
    pub fn new(
        namespace: &str,
        workload: &str,
        target_kind: &str,
        resource_policy: Option<PodResourcePolicy>,
        recommendation: RecommendedPodResources,
    ) -> Self {
        Self {
            api_version: VPA_API_VERSION.into(),
            kind: VPA_KIND.into(),
            metadata: ObjectMeta {
                name: workload.into(),
                namespace: namespace.into(),
            },
            spec: VpaSpec {
                target_ref: TargetRef {
                    api_version: "apps/v1".into(),
                    kind: target_kind.into(),
                    name: workload.into(),
                },
                resource_policy,
            },
            status: VpaStatus { recommendation },
        }
    }

    /// Block-style YAML, as `kubectl get -o yaml` prints it; holds the same data as the serde form.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("---\n");
        write_map(&self.to_node_entries(), 0, &mut out);
        out
    }

    fn to_node_entries(&self) -> Vec<(&'static str, Node)> {
        let mut spec = vec![(
            "targetRef",
            Node::Map(vec![
                ("apiVersion", s(&self.spec.target_ref.api_version)),
                ("kind", s(&self.spec.target_ref.kind)),
                ("name", s(&self.spec.target_ref.name)),
            ]),
        )];
        if let Some(policy) = &self.spec.resource_policy {
            spec.push(("resourcePolicy", policy_node(policy)));
        }
        let recs = self
            .status
            .recommendation
            .container_recommendations
            .iter()
            .map(|r| {
                Node::Map(vec![
                    ("containerName", s(&r.container_name)),
                    ("lowerBound", list_node(&r.lower_bound)),
                    ("target", list_node(&r.target)),
                    ("uncappedTarget", list_node(&r.uncapped_target)),
                    ("upperBound", list_node(&r.upper_bound)),
                ])
            })
            .collect();
        vec![
            ("apiVersion", s(&self.api_version)),
            ("kind", s(&self.kind)),
            (
                "metadata",
                Node::Map(vec![
                    ("name", s(&self.metadata.name)),
                    ("namespace", s(&self.metadata.namespace)),
                ]),
            ),
            ("spec", Node::Map(spec)),
            (
                "status",
                Node::Map(vec![(
                    "recommendation",
                    Node::Map(vec![("containerRecommendations", Node::Seq(recs))]),
                )]),
            ),
        ]
    }
}

/// A YAML value built by hand: the crate has no YAML library and the shape is fixed.
enum Node {
    Str(String),
    Map(Vec<(&'static str, Node)>),
    Seq(Vec<Node>),
}

fn s(text: &str) -> Node {
    Node::Str(text.to_owned())
}

fn list_node(list: &ResourceList) -> Node {
    let mut entries = Vec::new();
    if let Some(cpu) = list.cpu {
        entries.push(("cpu", Node::Str(cpu.to_string())));
    }
    if let Some(memory) = list.memory {
        entries.push(("memory", Node::Str(memory.to_string())));
    }
    Node::Map(entries)
}

fn policy_node(policy: &PodResourcePolicy) -> Node {
    let entries = policy
        .container_policies
        .iter()
        .map(|p| {
            let mut m = vec![("containerName", s(&p.container_name))];
            if let Some(resources) = &p.controlled_resources {
                let names = resources
                    .iter()
                    .map(|r| {
                        s(if *r == super::policy::ResourceName::Cpu {
                            "cpu"
                        } else {
                            "memory"
                        })
                    })
                    .collect();
                m.push(("controlledResources", Node::Seq(names)));
            }
            if let Some(values) = p.controlled_values {
                let text = match values {
                    ControlledValues::RequestsAndLimits => "RequestsAndLimits",
                    ControlledValues::RequestsOnly => "RequestsOnly",
                };
                m.push(("controlledValues", s(text)));
            }
            if let Some(max) = &p.max_allowed {
                m.push(("maxAllowed", list_node(max)));
            }
            if let Some(min) = &p.min_allowed {
                m.push(("minAllowed", list_node(min)));
            }
            if let Some(mode) = p.mode {
                let text = match mode {
                    super::policy::ContainerScalingMode::Auto => "Auto",
                    super::policy::ContainerScalingMode::Off => "Off",
                };
                m.push(("mode", s(text)));
            }
            Node::Map(m)
        })
        .collect();
    Node::Map(vec![("containerPolicies", Node::Seq(entries))])
}

/// Plain when YAML would read the text back as the same string, double-quoted (JSON escapes are
/// valid YAML) otherwise, e.g. `"1"`, `"true"`, `"*"`, or anything with `:` or `#`.
fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-./_".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        || text.starts_with(|c: char| c.is_ascii_digit())
            && text.chars().all(|c| c.is_ascii_alphanumeric())
            && text.parse::<f64>().is_err()
            && !text.contains(['e', 'E', 'x', 'o']);
    if plain {
        text.to_owned()
    } else {
        let mut quoted = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(quoted, "\\u{:04x}", u32::from(c));
                }
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
}

fn write_map(entries: &[(&'static str, Node)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in entries {
        match value {
            Node::Str(text) => {
                let _ = writeln!(out, "{pad}{key}: {}", scalar(text));
            }
            Node::Map(inner) if inner.is_empty() => {
                let _ = writeln!(out, "{pad}{key}: {{}}");
            }
            Node::Map(inner) => {
                let _ = writeln!(out, "{pad}{key}:");
                write_map(inner, indent + 2, out);
            }
            Node::Seq(items) if items.is_empty() => {
                let _ = writeln!(out, "{pad}{key}: []");
            }
            Node::Seq(items) => {
                let _ = writeln!(out, "{pad}{key}:");
                write_seq(items, indent, out);
            }
        }
    }
}

/// Sequence items sit at their key's indentation, as kubectl prints them.
fn write_seq(items: &[Node], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Node::Str(text) => {
                let _ = writeln!(out, "{pad}- {}", scalar(text));
            }
            Node::Map(inner) if inner.is_empty() => {
                let _ = writeln!(out, "{pad}- {{}}");
            }
            Node::Map(inner) => {
                // The first entry shares the dash's line; the rest align under it.
                let mut nested = String::new();
                write_map(inner, indent + 2, &mut nested);
                let body = nested.get(indent + 2..).unwrap_or_default();
                let _ = write!(out, "{pad}- {body}");
            }
            Node::Seq(inner) => {
                let _ = writeln!(out, "{pad}-");
                write_seq(inner, indent + 2, out);
            }
        }
    }
}

/// A kubectl-style table: one row per container and resource, with today's request and limit when
/// known and the limit the recommendation implies under the container's `controlledValues`.
pub fn render_table(
    recommendation: &RecommendedPodResources,
    current: &dyn Fn(&str) -> Option<ContainerResources>,
    policy: Option<&PodResourcePolicy>,
) -> String {
    let header = [
        "CONTAINER",
        "RESOURCE",
        "REQUEST",
        "LIMIT",
        "LOWER",
        "TARGET",
        "UPPER",
        "UNCAPPED",
        "NEW-LIMIT",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    let dash = || "-".to_owned();
    let show = |v: Option<String>| v.unwrap_or_else(dash);
    for r in &recommendation.container_recommendations {
        let now = current(&r.container_name);
        let values = policy
            .and_then(|p| p.for_container(&r.container_name))
            .and_then(|p| p.controlled_values)
            .unwrap_or_default();
        let limits = now.map(|c| proposed_limits(&r.target, &c, values));
        if r.target.cpu.is_some() {
            rows.push([
                r.container_name.clone(),
                "cpu".into(),
                show(now.and_then(|c| c.requests.cpu).map(|a| a.to_string())),
                show(now.and_then(|c| c.limits.cpu).map(|a| a.to_string())),
                show(r.lower_bound.cpu.map(|a| a.to_string())),
                show(r.target.cpu.map(|a| a.to_string())),
                show(r.upper_bound.cpu.map(|a| a.to_string())),
                show(r.uncapped_target.cpu.map(|a| a.to_string())),
                show(limits.and_then(|l| l.cpu).map(|a| a.to_string())),
            ]);
        }
        if r.target.memory.is_some() {
            rows.push([
                r.container_name.clone(),
                "memory".into(),
                show(now.and_then(|c| c.requests.memory).map(|a| a.to_string())),
                show(now.and_then(|c| c.limits.memory).map(|a| a.to_string())),
                show(r.lower_bound.memory.map(|a| a.to_string())),
                show(r.target.memory.map(|a| a.to_string())),
                show(r.upper_bound.memory.map(|a| a.to_string())),
                show(r.uncapped_target.memory.map(|a| a.to_string())),
                show(limits.and_then(|l| l.memory).map(|a| a.to_string())),
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_quote_only_when_yaml_would_misread_them() {
        for (text, want, why) in [
            ("web", "web", "a plain name"),
            ("250m", "250m", "a quantity with a suffix stays plain"),
            ("512Mi", "512Mi", "binary suffix"),
            ("1", "\"1\"", "a bare number would read as an integer"),
            ("1e3", "\"1e3\"", "exponent form reads as a float"),
            ("true", "\"true\"", "a boolean word"),
            ("*", "\"*\"", "an alias indicator"),
            ("a: b", "\"a: b\"", "a colon-space would start a map"),
            ("", "\"\"", "empty string"),
            ("apps/v1", "apps/v1", "a slash is fine"),
        ] {
            assert_eq!(scalar(text), want, "{why}");
        }
    }
}
