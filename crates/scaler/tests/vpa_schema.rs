//! The YAML and JSON a recommendation prints are valid `VerticalPodAutoscaler` objects per the upstream CRD.
//!
//! Structural check, not the `jsonschema` crate: the crate has no YAML or JSON-schema dependency, so a
//! small block-YAML reader (enough for controller-gen CRDs and our own output) loads the CRD and the
//! output, and a validator walks the OpenAPI v3 subset structural CRD schemas use (type, properties,
//! additionalProperties, required, items, enum, anyOf, x-kubernetes-int-or-string, and the one
//! `pattern` they contain: the Kubernetes quantity grammar, matched by hand below).

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    ContainerResourcePolicy, ContainerScalingMode, ControlledValues, CpuAmount, MemoryAmount,
    PodResourcePolicy, Recommender, ResourceList, ResourceName, Usage, UsageSample,
    VPA_API_VERSION, VPA_KIND, VerticalPodAutoscaler, VpaConfig,
};
use serde_json::{Map, Value, json};

const CRD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../third_party/shared/schemas/crds/autoscaling.k8s.io_verticalpodautoscalers.yaml"
);

const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

// ---- a block-YAML reader for the subset used here ----

struct Line {
    indent: usize,
    text: String,
}

fn documents(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current: Vec<Line> = Vec::new();
    for raw in text.lines().chain(std::iter::once("---")) {
        if raw.trim_end() == "---" {
            if !current.is_empty() {
                let mut i = 0;
                let indent = current[0].indent;
                docs.push(node(&mut current, &mut i, indent));
                current.clear();
            }
            continue;
        }
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        current.push(Line {
            indent: raw.len() - trimmed.len(),
            text: trimmed.trim_end().to_owned(),
        });
    }
    docs
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn node(lines: &mut [Line], i: &mut usize, indent: usize) -> Value {
    if is_item(&lines[*i].text) {
        seq(lines, i, indent)
    } else {
        map(lines, i, indent)
    }
}

fn split_key(text: &str) -> Option<(&str, &str)> {
    if text.starts_with(['"', '\'']) {
        return None;
    }
    if let Some(key) = text.strip_suffix(':') {
        return Some((key, ""));
    }
    text.split_once(": ")
}

fn map(lines: &mut [Line], i: &mut usize, indent: usize) -> Value {
    let mut out = Map::new();
    while *i < lines.len() && lines[*i].indent == indent && !is_item(&lines[*i].text) {
        let text = lines[*i].text.clone();
        let (key, rest) = split_key(&text).unwrap_or_else(|| panic!("not a map entry: {text}"));
        *i += 1;
        let value = match rest.trim() {
            "" => match lines.get(*i) {
                Some(next)
                    if next.indent > indent || (next.indent == indent && is_item(&next.text)) =>
                {
                    let next_indent = next.indent;
                    node(lines, i, next_indent)
                }
                _ => Value::Null,
            },
            "|" | "|-" | ">" | ">-" => {
                let mut block = Vec::new();
                while *i < lines.len() && lines[*i].indent > indent {
                    block.push(lines[*i].text.clone());
                    *i += 1;
                }
                Value::String(block.join("\n"))
            }
            first => {
                // Plain scalars may continue on more-indented lines.
                let mut text = first.to_owned();
                while *i < lines.len() && lines[*i].indent > indent {
                    text.push(' ');
                    text.push_str(&lines[*i].text);
                    *i += 1;
                }
                scalar(&text)
            }
        };
        out.insert(key.to_owned(), value);
    }
    Value::Object(out)
}

fn seq(lines: &mut [Line], i: &mut usize, indent: usize) -> Value {
    let mut out = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent && is_item(&lines[*i].text) {
        let rest = lines[*i]
            .text
            .strip_prefix('-')
            .unwrap_or_default()
            .trim_start()
            .to_owned();
        if rest.is_empty() {
            *i += 1;
            let next_indent = lines.get(*i).map_or(indent, |l| l.indent);
            out.push(node(lines, i, next_indent));
        } else if split_key(&rest).is_some() && rest != "{}" {
            // `- key: value` opens a map whose keys align two columns in.
            lines[*i] = Line {
                indent: indent + 2,
                text: rest,
            };
            out.push(map(lines, i, indent + 2));
        } else {
            *i += 1;
            out.push(scalar(&rest));
        }
    }
    Value::Array(out)
}

fn scalar(text: &str) -> Value {
    match text {
        "{}" => return json!({}),
        "[]" => return json!([]),
        "true" => return json!(true),
        "false" => return json!(false),
        "null" | "~" => return Value::Null,
        _ => {}
    }
    if text.starts_with('"') {
        return serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("bad quoted scalar {text}: {e}"));
    }
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Value::String(inner.replace("''", "'"));
    }
    if let Ok(n) = text.parse::<i64>() {
        return json!(n);
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        && let Ok(f) = text.parse::<f64>()
    {
        return json!(f);
    }
    Value::String(text.to_owned())
}

// ---- the Kubernetes quantity grammar of the CRD pattern ----

fn digits(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// `(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))` from `i`; the end, if it matches.
fn number(s: &[u8], i: usize) -> Option<usize> {
    let after_int = digits(s, i);
    if after_int > i {
        if s.get(after_int) == Some(&b'.') {
            return Some(digits(s, after_int + 1));
        }
        return Some(after_int);
    }
    if s.get(i) == Some(&b'.') {
        let end = digits(s, i + 1);
        return (end > i + 1).then_some(end);
    }
    None
}

fn quantity_matches(text: &str) -> bool {
    let s = text.as_bytes();
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let Some(end) = number(s, i) else {
        return false;
    };
    i = end;
    let rest = &s[i..];
    match rest {
        [] => true,
        [b'K' | b'M' | b'G' | b'T' | b'P' | b'E', b'i'] => true,
        [b'n' | b'u' | b'm' | b'k' | b'M' | b'G' | b'T' | b'P' | b'E'] => true,
        [b'e' | b'E', ..] => {
            let j = i + 1 + usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
            number(s, j) == Some(s.len())
        }
        _ => false,
    }
}

// ---- the structural-schema validator ----

fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let fits = branches.iter().any(|b| {
            let mut e = Vec::new();
            validate(b, value, path, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{path}: matches no anyOf branch"));
        }
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&json!(true))
        && !(value.is_i64() || value.is_u64() || value.is_string())
    {
        errors.push(format!("{path}: must be an integer or a string"));
    }
    if let (Some(pattern), Some(text)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        assert_eq!(
            pattern, QUANTITY_PATTERN,
            "only the quantity pattern is understood"
        );
        if !quantity_matches(text) {
            errors.push(format!("{path}: {text:?} is not a quantity"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{path}: {value} not in {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(object) = value.as_object() else {
                errors.push(format!("{path}: expected an object"));
                return;
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, v) in object {
                let child = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => validate(s, v, &child, errors),
                    (None, Some(s)) if s.is_object() => validate(s, v, &child, errors),
                    // An unknown field would be pruned silently by the API server: treat it as an error.
                    (None, _) if properties.is_some() => {
                        errors.push(format!("{child}: unknown field"))
                    }
                    (None, _) => {}
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(key) = required.as_str()
                    && !object.contains_key(key)
                {
                    errors.push(format!("{path}: missing required `{key}`"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (n, item) in items.iter().enumerate() {
                        validate(item_schema, item, &format!("{path}[{n}]"), errors);
                    }
                }
            }
            None => errors.push(format!("{path}: expected an array")),
        },
        Some("string") if !value.is_string() => errors.push(format!("{path}: expected a string")),
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            errors.push(format!("{path}: expected an integer"))
        }
        Some("boolean") if !value.is_boolean() => {
            errors.push(format!("{path}: expected a boolean"))
        }
        _ => {}
    }
}

// ---- the tests ----

fn vpa_crd() -> Value {
    let text = std::fs::read_to_string(CRD_PATH).expect("the VPA CRD is vendored in third_party");
    documents(&text)
        .into_iter()
        .find(|d| d["spec"]["names"]["kind"] == json!(VPA_KIND))
        .expect("the file holds the VerticalPodAutoscaler CRD")
}

fn v1_schema(crd: &Value) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == json!("v1")))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .expect("a v1 version with a schema")
}

fn sample_vpa() -> VerticalPodAutoscaler {
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    for (c, cores, bytes) in [("app", 0.4, 700e6), ("istio-proxy", 0.02, 60e6)] {
        for m in 0..2 * 1440 {
            let at = Timestamp::from_millis(1_700_000_000_000 + m * 60_000);
            for usage in [
                Usage::Cpu {
                    cores,
                    request_cores: 0.1,
                },
                Usage::Memory { bytes },
            ] {
                r.add_sample(&UsageSample {
                    pod: "web-7f-abc",
                    container: c,
                    at,
                    usage,
                })
                .expect("valid names");
            }
        }
    }
    let policy = PodResourcePolicy {
        container_policies: vec![
            ContainerResourcePolicy {
                container_name: "app".into(),
                mode: Some(ContainerScalingMode::Auto),
                min_allowed: Some(ResourceList::new(CpuAmount(100), MemoryAmount(256 << 20))),
                max_allowed: Some(ResourceList {
                    cpu: Some(CpuAmount(1000)),
                    memory: None,
                }),
                controlled_resources: Some(vec![ResourceName::Cpu, ResourceName::Memory]),
                controlled_values: Some(ControlledValues::RequestsOnly),
            },
            ContainerResourcePolicy {
                container_name: "*".into(),
                controlled_resources: Some(vec![ResourceName::Memory]),
                ..ContainerResourcePolicy::default()
            },
        ],
    };
    let rec = r.recommend(Some(&policy), None).expect("history present");
    VerticalPodAutoscaler::new("shop", "web", "Deployment", Some(policy), rec)
}

#[test]
fn crd_names_the_group_version_and_kind_we_print() {
    let crd = vpa_crd();
    let group = crd["spec"]["group"].as_str().expect("group");
    assert_eq!(format!("{group}/v1"), VPA_API_VERSION);
    // The reader understood the quantity schema of status.recommendation.
    let schema = v1_schema(&crd);
    let target = &schema["properties"]["status"]["properties"]["recommendation"]["properties"]["containerRecommendations"]
        ["items"]["properties"]["target"];
    assert_eq!(
        target["additionalProperties"]["pattern"],
        json!(QUANTITY_PATTERN)
    );
}

#[test]
fn yaml_and_json_output_validate_against_the_crd() {
    let schema = v1_schema(&vpa_crd());
    let vpa = sample_vpa();
    let yaml = vpa.to_yaml();
    let from_yaml = documents(&yaml).pop().expect("one document");
    let from_json = serde_json::to_value(&vpa).expect("serialisable");
    assert_eq!(
        from_yaml, from_json,
        "YAML and JSON carry the same object:\n{yaml}"
    );
    for (what, value) in [("yaml", &from_yaml), ("json", &from_json)] {
        let mut errors = Vec::new();
        validate(&schema, value, "", &mut errors);
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{yaml}");
    }
    let recs = &from_json["status"]["recommendation"]["containerRecommendations"];
    assert_eq!(recs.as_array().map(Vec::len), Some(2));
    assert!(
        recs[1]["target"].get("cpu").is_none(),
        "`*` policy controls memory only"
    );
    // JSON reads back into the same object.
    let back: VerticalPodAutoscaler = serde_json::from_value(from_json).expect("deserialisable");
    assert_eq!(back, vpa);
}

#[test]
fn the_validator_catches_broken_objects() {
    let schema = v1_schema(&vpa_crd());
    let good = serde_json::to_value(sample_vpa()).expect("serialisable");
    let rec = "/status/recommendation/containerRecommendations/0";
    let cases: [(&str, Value, &str); 4] = [
        ("/target/cpu", json!("lots"), "not a quantity"),
        ("/target", Value::Null, "expected an object"),
        ("/targetCpu", json!("1"), "unknown field"),
        ("/containerName", json!(7), "expected a string"),
    ];
    for (pointer, replacement, needle) in cases {
        let mut broken = good.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a key");
        let target = broken
            .pointer_mut(&format!("{rec}{parent}"))
            .and_then(Value::as_object_mut)
            .expect("parent object exists");
        target.insert(key.to_owned(), replacement);
        let mut errors = Vec::new();
        validate(&schema, &broken, "", &mut errors);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{pointer}: {errors:?}"
        );
    }
    for (text, ok) in [
        ("250m", true),
        ("1.5Gi", true),
        ("1e3", true),
        (".5", true),
        ("5Q", false),
        ("", false),
        ("1Ki0", false),
    ] {
        assert_eq!(quantity_matches(text), ok, "{text}");
    }
}
