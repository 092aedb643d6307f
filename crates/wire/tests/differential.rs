//! Differential tests of `classify`: against the serde-visitor classifier it replaced, on any input, and against a plain `serde_json::Value` reference on well-formed JSON.

mod oracle;

use mcpulse_wire::{
    ClientInfo, MAX_BATCH, MAX_TEXT_BYTES, Message, MessageKind, RequestId, Violation, WireError,
    classify,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A classification outcome with error details reduced to what must agree: the variant, the batch
/// index and the rule broken. Shape messages are free text (serde's words before, ours now).
#[derive(Debug, PartialEq)]
enum Outcome {
    Messages(Vec<Message>),
    Parse,
    EmptyBatch,
    BatchTooLarge,
    Invalid(Option<usize>, Option<Violation>),
}

fn outcome(result: Result<Vec<Message>, WireError>) -> Outcome {
    match result {
        Ok(messages) => Outcome::Messages(messages),
        Err(WireError::Parse(_)) => Outcome::Parse,
        Err(WireError::EmptyBatch) => Outcome::EmptyBatch,
        Err(WireError::BatchTooLarge { .. }) => Outcome::BatchTooLarge,
        Err(WireError::Invalid { index, reason }) => Outcome::Invalid(
            index,
            match reason {
                Violation::Shape(_) => None,
                other => Some(other),
            },
        ),
    }
}

fn same_as_oracle(body: &[u8]) -> Result<(), TestCaseError> {
    let new = outcome(classify(body));
    let old = outcome(oracle::classify(body));
    prop_assert_eq!(
        new,
        old,
        "body {:?}",
        String::from_utf8_lossy(body).into_owned()
    );
    Ok(())
}

// ---- A straightforward reference over serde_json::Value (for bodies with no repeated keys). ----

fn capped(s: &str) -> String {
    s.get(..s.floor_char_boundary(MAX_TEXT_BYTES))
        .unwrap_or_default()
        .to_owned()
}

fn reference(body: &[u8]) -> Outcome {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Parse;
    };
    let items: Vec<(Option<usize>, &Value)> = match &value {
        Value::Array(items) if items.is_empty() => return Outcome::EmptyBatch,
        Value::Array(items) if items.len() > MAX_BATCH => return Outcome::BatchTooLarge,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Some(i), v))
            .collect(),
        single => vec![(None, single)],
    };
    let mut messages = Vec::new();
    for (index, item) in items {
        match reference_message(item) {
            Ok(m) => messages.push(m),
            Err(reason) => return Outcome::Invalid(index, reason),
        }
    }
    Outcome::Messages(messages)
}

fn reference_id(id: &Value) -> Result<Option<RequestId>, Option<Violation>> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match id {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(RequestId::String(capped(s)))),
        Value::Number(n) => Ok(Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => RequestId::Number(i),
            (None, Some(f)) if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) => {
                RequestId::Number(f as i64)
            }
            _ => RequestId::String(capped(&n.to_string())),
        })),
        _ => Err(Some(Violation::BadId)),
    }
}

fn reference_message(value: &Value) -> Result<Message, Option<Violation>> {
    let Value::Object(map) = value else {
        return Err(None);
    };
    match map.get("jsonrpc") {
        None => return Err(Some(Violation::MissingVersion)),
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return Err(Some(Violation::WrongVersion)),
    }
    let id = map.get("id").map(reference_id).transpose()?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(capped);
    let mut m = Message {
        kind: MessageKind::Request,
        id: None,
        method: None,
        tool_name: None,
        client: None,
        protocol_version: None,
        error_code: None,
        tool_error: false,
    };
    let (result, error) = (map.get("result"), map.get("error"));
    if let Some(method) = map.get("method") {
        if result.is_some() || error.is_some() {
            return Err(Some(Violation::MethodAndReply));
        }
        let Value::String(method) = method else {
            return Err(Some(Violation::MethodNotString));
        };
        m.kind = match id {
            None => MessageKind::Notification,
            Some(None) => return Err(Some(Violation::NullRequestId)),
            Some(Some(id)) => {
                m.id = Some(id);
                MessageKind::Request
            }
        };
        let params = map.get("params");
        let member = |name: &str| params.and_then(|p| p.get(name));
        match method.as_str() {
            "tools/call" => m.tool_name = text(member("name")),
            "initialize" => {
                m.protocol_version = text(member("protocolVersion"));
                let client = member("clientInfo");
                m.client = text(client.and_then(|c| c.get("name"))).map(|name| ClientInfo {
                    name,
                    version: text(client.and_then(|c| c.get("version"))).unwrap_or_default(),
                });
            }
            _ => {}
        }
        m.method = Some(capped(method));
        return Ok(m);
    }
    match (result, error) {
        (Some(_), Some(_)) => Err(Some(Violation::ResultAndError)),
        (None, None) => Err(Some(Violation::NoMember)),
        (Some(result), None) => {
            m.kind = MessageKind::Response;
            m.id = Some(
                id.ok_or(Some(Violation::MissingResponseId))?
                    .ok_or(Some(Violation::NullResultId))?,
            );
            m.tool_error = result.get("isError") == Some(&Value::Bool(true));
            m.protocol_version = text(result.get("protocolVersion"));
            Ok(m)
        }
        (None, Some(error)) => {
            m.kind = MessageKind::Error;
            m.id = id.ok_or(Some(Violation::MissingResponseId))?;
            m.error_code = Some(
                error
                    .get("code")
                    .and_then(Value::as_i64)
                    .ok_or(Some(Violation::BadErrorObject))?,
            );
            Ok(m)
        }
    }
}

// ---- Generators. ----

/// JSON whitespace in every spelling, or none.
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 1 => Just(" "), 1 => Just("\n\t "), 1 => Just("\r\n  ")]
}

/// String literals: plain, escaped, non-ASCII, surrogate pairs and lone surrogates.
fn string_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/_.0-9]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just(r#""2.0""#.to_owned()),
        Just(r#""\u0032.0""#.to_owned()),
        Just(r#""tools/call""#.to_owned()),
        Just(r#""tools\/call""#.to_owned()),
        Just(r#""initialize""#.to_owned()),
        Just(r#""\ud83d\ude00 ok""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        Just(r#""\udc00x""#.to_owned()),
        Just("\"é\u{2028}\"".to_owned()),
        any::<String>().prop_map(|s| Value::String(s).to_string()),
    ]
}

/// Numbers in every spelling the classifier treats differently.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-40_000i64..40_000).prop_map(|n| n.to_string()),
        Just("-0".to_owned()),
        Just("1.0".to_owned()),
        Just("2e3".to_owned()),
        Just("1.5".to_owned()),
        Just("-32601.0".to_owned()),
        Just("1e400".to_owned()),
        Just("-1E+400".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        Just("-9223372036854775809".to_owned()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
    ]
}

/// Keys: the envelope's and the peeked members' names, some spelled with escapes, and others.
fn key_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "jsonrpc",
            "id",
            "method",
            "params",
            "result",
            "error",
            "name",
            "version",
            "clientInfo",
            "protocolVersion",
            "isError",
            "code",
            "arguments",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        Just(r#""\u0069d""#.to_owned()),
        Just(r#""na\u006de""#.to_owned()),
        string_text(),
    ]
}

fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => string_text(),
        3 => number_text(),
        1 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        1 => Just("null".to_owned()),
    ]
}

/// Any JSON value as text, nested a few levels, with free whitespace and repeated keys.
fn value_text() -> impl Strategy<Value = String> {
    scalar_text().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone()), 0..5).prop_map(|items| {
                let items: Vec<String> =
                    items.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((key_text(), ws(), inner), 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, w, v)| format!("{w}{k}{w}:{w}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A JSON-RPC-shaped message as text: mostly the right members with plausible values, in any
/// order, sometimes repeated, sometimes of the wrong type.
fn message_text() -> impl Strategy<Value = String> {
    let params = prop_oneof![
        (string_text(), value_text()).prop_map(|(name, args)| format!(
            r#"{{"arguments":{args},"name":{name},"_meta":{{"progressToken":1}}}}"#
        )),
        (string_text(), string_text(), string_text()).prop_map(|(pv, n, v)| format!(
            r#"{{"protocolVersion":{pv},"capabilities":{{}},"clientInfo":{{"name":{n},"version":{v},"clientInfo":{{"name":"x"}}}}}}"#
        )),
        value_text(),
    ];
    let result = prop_oneof![
        (value_text(), scalar_text()).prop_map(|(content, is_error)| format!(
            r#"{{"content":[{{"type":"text","text":{content}}}],"isError":{is_error}}}"#
        )),
        string_text()
            .prop_map(|pv| format!(r#"{{"protocolVersion":{pv},"serverInfo":{{"name":"s"}}}}"#)),
        value_text(),
    ];
    let error = prop_oneof![
        number_text()
            .prop_map(|code| format!(r#"{{"code":{code},"message":"m","data":{{"x":[1]}}}}"#)),
        value_text(),
    ];
    let member = prop_oneof![
        4 => prop_oneof![3 => Just(r#""2.0""#.to_owned()), 1 => scalar_text()].prop_map(|v| ("\"jsonrpc\"".to_owned(), v)),
        4 => prop_oneof![number_text(), string_text(), Just("null".to_owned()), value_text()]
            .prop_map(|v| ("\"id\"".to_owned(), v)),
        3 => prop_oneof![
            prop::sample::select(vec![r#""tools/call""#, r#""initialize""#, r#""ping""#, r#""notifications/initialized""#]).prop_map(str::to_owned),
            scalar_text(),
        ].prop_map(|v| ("\"method\"".to_owned(), v)),
        2 => params.prop_map(|v| ("\"params\"".to_owned(), v)),
        2 => result.prop_map(|v| ("\"result\"".to_owned(), v)),
        1 => error.prop_map(|v| ("\"error\"".to_owned(), v)),
        1 => (key_text(), value_text()),
    ];
    (prop::collection::vec((ws(), member), 0..7), ws()).prop_map(|(members, end)| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(w, (k, v))| format!("{w}{k}{w}:{w}{v}"))
            .collect();
        format!("{{{}{end}}}", members.join(","))
    })
}

/// A body: one message or a batch, sometimes damaged (cut short, a byte inserted: invalid UTF-8,
/// a control character, a stray bracket).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![4 => message_text(), 1 => value_text()];
    let shaped = prop_oneof![
        3 => (ws(), one.clone(), ws()).prop_map(|(a, m, b)| format!("{a}{m}{b}")),
        1 => prop::collection::vec(one, 0..4).prop_map(|ms| format!("[{}]", ms.join(" ,"))),
    ];
    let damage = prop_oneof![
        4 => Just(None),
        1 => Just(Some(None)),
        2 => prop::sample::select(vec![0xff_u8, 0xc3, 0x80, 0x01, b'"', b'\\', b'}', b']', b',', b'0'])
            .prop_map(|b| Some(Some(b))),
    ];
    (shaped, damage, any::<prop::sample::Index>()).prop_map(|(text, damage, at)| {
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len() + 1);
        match damage {
            None => {}
            Some(None) => bytes.truncate(at),
            Some(Some(b)) => bytes.insert(at, b),
        }
        bytes
    })
}

/// JSON-RPC-shaped values with unique keys, for the `Value` reference.
fn message_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["2.0", "tools/call", "initialize", "ping"]).prop_map(Value::from),
    ];
    let any_value = leaf.clone().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let slot = |names: Vec<&'static str>, values: BoxedStrategy<Value>| {
        prop::collection::vec((prop::sample::select(names), values), 0..4)
    };
    let inner_object = slot(
        vec![
            "name",
            "version",
            "clientInfo",
            "protocolVersion",
            "isError",
            "code",
            "arguments",
        ],
        prop_oneof![
            leaf.clone(),
            any_value.clone(),
            Just(json!({"name": "c", "version": "1"}))
        ]
        .boxed(),
    )
    .prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    });
    let member_value = prop_oneof![2 => inner_object, 1 => any_value].boxed();
    slot(
        vec![
            "jsonrpc", "jsonrpc", "id", "id", "method", "params", "result", "error", "other",
        ],
        member_value,
    )
    .prop_map(|members| {
        let mut map = Map::new();
        for (k, v) in members {
            map.insert(k.to_owned(), v);
        }
        // Usually a valid version, so the later rules get exercised.
        if !map.contains_key("jsonrpc") {
            map.insert("jsonrpc".to_owned(), json!("2.0"));
        }
        Value::Object(map)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn same_as_serde_classifier_on_shaped_bodies(body in body()) {
        same_as_oracle(&body)?;
    }

    #[test]
    fn same_as_serde_classifier_on_bytes(body in prop::collection::vec(any::<u8>(), 0..64)) {
        same_as_oracle(&body)?;
    }

    #[test]
    fn same_as_serde_classifier_on_any_value(text in value_text()) {
        same_as_oracle(text.as_bytes())?;
    }

    #[test]
    fn same_as_value_reference(messages in prop::collection::vec(message_value(), 1..4), batch in any::<bool>(), pretty in any::<bool>()) {
        let value = if batch || messages.len() > 1 { Value::Array(messages) } else { messages.into_iter().next().unwrap_or_default() };
        let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
        let text = text.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(outcome(classify(text.as_bytes())), reference(text.as_bytes()), "body {}", text);
        same_as_oracle(text.as_bytes())?;
    }
}

/// Cases where the scanner's rules are subtle, each checked against the old classifier.
#[test]
fn edge_cases_match_the_serde_classifier() {
    let table: &[(&[u8], &str)] = &[
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"arguments":"\xff"}}"#,
            "invalid UTF-8 in a skipped string is accepted",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xff"}}"#,
            "invalid UTF-8 in a read string is a parse error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":"\xff","method":"x"}"#,
            "invalid UTF-8 in an id is a parse error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":"\ud800","method":"x"}"#,
            "a lone surrogate id is a bad id",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\ud800"}}"#,
            "a lone surrogate in a skipped string is accepted",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#,
            "a lone surrogate in the method is a parse error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"x","extra":1e999}"#,
            "an out-of-range skipped number is accepted",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1e999,"method":"x"}"#,
            "an out-of-range id keeps its text",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":1e999}}"#,
            "an out-of-range code is a parse error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-0}}"#,
            "-0 is not an integer code",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"} x"#,
            "a duplicate before a syntax error is a parse error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"jsonrpc":"\ud800","method":"x"}"#,
            "the duplicate's value is read before the duplicate is refused",
        ),
        (
            br#"{"jsonrpc":"2.0","i\u0064":1,"method":"x"}"#,
            "escaped keys are decoded",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"\ud800":1,"method":"x"}"#,
            "an envelope key is decoded strictly",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":{"\ud800":1}}}"#,
            "a key inside a skipped value is not",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":{"\ud800":1}}"#,
            "keys of an object read as a scalar are",
        ),
        (
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","name":7}}"#,
            "inside params the last copy wins",
        ),
        (
            b"\"\xff\"",
            "a top-level non-object string is decoded strictly",
        ),
        (b"1e999", "a top-level out-of-range number is a parse error"),
        (
            b"[1e999]",
            "a batch element that is a number is decoded strictly",
        ),
        (b"[[1e999]]", "a batch element that is an array is not"),
        (
            b"[{\"jsonrpc\":\"2.0\",\"method\":\"x\"},]",
            "trailing comma in a batch",
        ),
        (
            b"[{\"jsonrpc\":\"2.0\",\"method\":\"x\"} {}]",
            "missing comma in a batch",
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",}",
            "trailing comma in an object",
        ),
        (b"[] x", "empty batch with trailing garbage"),
        (b"{\"a\":01}", "leading zero"),
        (b"{\"a\":1.}", "no fraction digits"),
        (b"{\"a\":\"\t\"}", "raw control character in a string"),
        (b"{\"a\":\"\\x\"}", "invalid escape"),
        (b"{\"a\":\"\\u12\"}", "short unicode escape"),
        (b"{\"a\":tru}", "bad literal"),
    ];
    for (body, why) in table {
        let new = outcome(classify(body));
        let old = outcome(oracle::classify(body));
        assert_eq!(new, old, "{why}: {}", String::from_utf8_lossy(body));
    }
}

#[test]
fn batch_cap_matches_the_serde_classifier() {
    let element = r#"{"jsonrpc":"2.0","method":"n"}"#;
    let full = vec![element; MAX_BATCH].join(",");
    let table = [
        (format!("[{full}]"), "exactly at the cap"),
        (format!("[{full},{element}]"), "one over"),
        (
            format!("[{full},{element}] trailing"),
            "over the cap wins over trailing garbage",
        ),
        (
            format!("[{full},{{]"),
            "a broken element past the cap is a parse error",
        ),
        (
            format!("[{full},1,{{]"),
            "only the first element past the cap is checked",
        ),
        (format!("[{full}] trailing"), "trailing garbage at the cap"),
    ];
    for (body, why) in table {
        let new = outcome(classify(body.as_bytes()));
        let old = outcome(oracle::classify(body.as_bytes()));
        assert_eq!(new, old, "{why}");
    }
}

#[test]
fn deep_nesting_matches_the_serde_classifier() {
    for depth in [1, 63, 64, 65, 127, 128, 129, 10_000] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{}1{}}}"#,
            "[{\"a\":".repeat(depth),
            "}]".repeat(depth)
        );
        let new = outcome(classify(body.as_bytes()));
        let old = outcome(oracle::classify(body.as_bytes()));
        assert_eq!(new, old, "depth {depth}");
        assert!(
            matches!(new, Outcome::Messages(_)),
            "depth {depth}: skipping has no depth limit"
        );
    }
}
