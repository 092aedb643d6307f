//! JSON-RPC 2.0 classification of MCP message bodies, reading only the few members the meter needs.
//!
//! Bodies can be large (a tool result may be megabytes), so nothing here builds a `serde_json::Value`
//! tree: one pass of the `scan` module over the bytes keeps borrowed strings for the handful of
//! members we look at (`params.name`, `params.clientInfo`, `*.protocolVersion`, `result.isError`,
//! `error.code`) and skips everything else without allocating.

use std::fmt;

use serde::de;

use crate::error::{Violation, WireError};
use crate::scan::{Envelope, Fail, Scalar, Scanner, Text, parse_i64};
use crate::text::{capped, escape_json_into};

/// Longest batch [`classify`] accepts; a longer one is [`WireError::BatchTooLarge`].
///
/// MCP clients batch a handful of calls at most; the cap keeps one body from making the
/// proxy allocate a `Message` per element without bound.
pub const MAX_BATCH: usize = 1_000;

/// What a JSON-RPC message is, which decides how the meter accounts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A call that expects a reply: has `method` and `id`.
    Request,
    /// A one-way call: has `method` and no `id`.
    Notification,
    /// A successful reply: has `result` and `id`.
    Response,
    /// A failed reply: has `error` and `id` (which may be null).
    Error,
}

impl MessageKind {
    /// The label value used in metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Notification => "notification",
            Self::Response => "response",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON-RPC id, canonicalised so a response can be matched to its request (numbers and strings are distinct).
///
/// Integers and floats with an integral value (`1.0`, `1e3`) become [`RequestId::Number`]; any other
/// number keeps its JSON text as a [`RequestId::String`]. Strings longer than [`crate::MAX_TEXT_BYTES`]
/// are truncated so an id held while a request is in flight has bounded size; two ids sharing that
/// long a prefix would then be confused, which real clients (counters, UUIDs) never produce.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(i64),
    String(String),
}

impl fmt::Display for RequestId {
    /// The id as JSON: `7` or `"abc"`, so a number and a string with the same digits stay distinct.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => {
                let mut quoted = String::with_capacity(s.len() + 2);
                escape_json_into(s, &mut quoted);
                f.write_str(&quoted)
            }
        }
    }
}

/// `initialize` params.clientInfo: who is calling, for per-client metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub name: String,
    /// Empty when the client sent a name but no version.
    pub version: String,
}

/// What the meter learns from one JSON-RPC message. Every string is capped at [`crate::MAX_TEXT_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    /// `None` for notifications and for error responses whose id is null.
    pub id: Option<RequestId>,
    /// Requests and notifications.
    pub method: Option<String>,
    /// `tools/call` params.name.
    pub tool_name: Option<String>,
    /// `initialize` params.clientInfo.
    pub client: Option<ClientInfo>,
    /// `initialize` params.protocolVersion, or the protocolVersion of a result (an initialize
    /// result is the only MCP result that carries one).
    pub protocol_version: Option<String>,
    /// Error responses.
    pub error_code: Option<i64>,
    /// A result with `"isError": true`: the call reached the tool and the tool failed (MCP reports
    /// tool failures this way, not as JSON-RPC errors).
    pub tool_error: bool,
}

/// Classify one JSON body: a single message or a batch (JSON array; MCP 2025-03-26 allowed batches).
///
/// Errors when the body is not JSON, when any message in it is not JSON-RPC 2.0, or when a batch is
/// empty or longer than [`MAX_BATCH`]. Never panics. Reads the body once, decoding only the members
/// it reports and checking the rest for JSON syntax (see the `scan` module for the exact rules).
pub fn classify(body: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut scanner = Scanner::new(body);
    if scanner.peek() != Some(b'[') {
        // Filled in place: an envelope is a few hundred bytes, not worth moving around.
        let mut envelope = Envelope::default();
        scanner
            .envelope(&mut envelope)
            .and_then(|()| scanner.end())
            .map_err(|fail| from_fail(body, fail, None))?;
        let message = interpret(&envelope).map_err(|reason| WireError::Invalid {
            index: None,
            reason,
        })?;
        return Ok(vec![message]);
    }

    let mut envelopes = Vec::new();
    match scan_batch(&mut scanner, &mut envelopes) {
        Ok(true) => return Err(WireError::BatchTooLarge { max: MAX_BATCH }),
        Ok(false) => scanner
            .end()
            .map_err(|fail| from_fail(body, fail, Some(envelopes.len())))?,
        Err(fail) => return Err(from_fail(body, fail, Some(envelopes.len()))),
    }
    if envelopes.is_empty() {
        return Err(WireError::EmptyBatch);
    }
    envelopes
        .iter()
        .enumerate()
        .map(|(i, envelope)| {
            interpret(envelope).map_err(|reason| WireError::Invalid {
                index: Some(i),
                reason,
            })
        })
        .collect()
}

/// The OTel `error.type` value for a JSON-RPC error code.
///
/// Error codes come from the server, so using them raw as a label would let any server create
/// unbounded label values; this maps the codes with a meaning (JSON-RPC 2.0's reserved codes and
/// MCP's resource-not-found) to a fixed set of names and lumps the rest together.
pub fn error_type(code: i64) -> &'static str {
    match code {
        -32700 => "parse_error",
        -32600 => "invalid_request",
        -32601 => "method_not_found",
        -32602 => "invalid_params",
        -32603 => "internal_error",
        -32002 => "resource_not_found",
        -32099..=-32000 => "server_error",
        _ => "jsonrpc_error",
    }
}

/// A JSON-RPC error response body, e.g. for the proxy to answer a request it refuses itself.
///
/// `id: None` writes `"id": null`, which JSON-RPC prescribes when the request id is unknown.
pub fn error_response(id: Option<&RequestId>, code: i64, message: &str) -> Vec<u8> {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str(r#"{"jsonrpc":"2.0","id":"#);
    match id {
        None => out.push_str("null"),
        Some(RequestId::Number(n)) => out.push_str(&n.to_string()),
        Some(RequestId::String(s)) => escape_json_into(s, &mut out),
    }
    out.push_str(r#","error":{"code":"#);
    out.push_str(&code.to_string());
    out.push_str(r#","message":"#);
    escape_json_into(message, &mut out);
    out.push_str("}}");
    out.into_bytes()
}

/// Reads a batch into `envelopes`; `Ok(true)` when it has more than [`MAX_BATCH`] elements.
///
/// The element past the cap is still checked for syntax, so a broken body stays a parse error;
/// anything after it is not looked at.
fn scan_batch<'a>(
    scanner: &mut Scanner<'a>,
    envelopes: &mut Vec<Envelope<'a>>,
) -> Result<bool, Fail> {
    scanner.open_batch()?;
    let mut first = true;
    while scanner.next_element(first)? {
        first = false;
        if envelopes.len() == MAX_BATCH {
            scanner.skip()?;
            return Ok(true);
        }
        let mut envelope = Envelope::default();
        scanner.envelope(&mut envelope)?;
        envelopes.push(envelope);
    }
    Ok(false)
}

/// A shape error is reported as soon as it is seen, but JSON-RPC says a body that is not JSON is a
/// parse error whatever else is wrong with it, so on that (cold) path check the rest of the body too.
fn from_fail(body: &[u8], fail: Fail, index: Option<usize>) -> WireError {
    let shape = match fail {
        Fail::Syntax { at, what } => return parse_error(at, what),
        Fail::Shape(shape) => shape,
    };
    match Scanner::validate(body) {
        Err(Fail::Syntax { at, what }) => parse_error(at, what),
        Ok(()) | Err(Fail::Shape(_)) => WireError::Invalid {
            index,
            reason: Violation::Shape(shape.describe()),
        },
    }
}

fn parse_error(at: usize, what: &str) -> WireError {
    WireError::Parse(de::Error::custom(format_args!("{what} at byte {at}")))
}

/// Apply the JSON-RPC 2.0 rules to the members read from one message.
fn interpret(env: &Envelope<'_>) -> Result<Message, Violation> {
    match &env.jsonrpc {
        None => return Err(Violation::MissingVersion),
        Some(Scalar::Str(v)) if v.as_bytes() == b"2.0" => {}
        Some(_) => return Err(Violation::WrongVersion),
    }
    let mut message = Message {
        kind: MessageKind::Request,
        id: None,
        method: None,
        tool_name: None,
        client: None,
        protocol_version: None,
        error_code: None,
        tool_error: false,
    };
    let id = env.id.map(parse_id).transpose()?;

    if let Some(method) = &env.method {
        if env.result.is_some() || env.error.is_some() {
            return Err(Violation::MethodAndReply);
        }
        let Scalar::Str(method) = method else {
            return Err(Violation::MethodNotString);
        };
        message.kind = match id {
            None => MessageKind::Notification,
            Some(None) => return Err(Violation::NullRequestId),
            Some(Some(id)) => {
                message.id = Some(id);
                MessageKind::Request
            }
        };
        if let Some(params) = &env.params {
            match method.as_bytes() {
                b"tools/call" => message.tool_name = params.name.as_ref().map(Text::capped),
                b"initialize" => {
                    message.protocol_version = params.protocol_version.as_ref().map(Text::capped);
                    message.client = params.client_name.as_ref().map(|name| ClientInfo {
                        name: name.capped(),
                        version: params
                            .client_version
                            .as_ref()
                            .map(Text::capped)
                            .unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        message.method = Some(method.capped());
        return Ok(message);
    }

    match (&env.result, &env.error) {
        (Some(_), Some(_)) => Err(Violation::ResultAndError),
        (None, None) => Err(Violation::NoMember),
        (Some(result), None) => {
            message.kind = MessageKind::Response;
            message.id = Some(
                id.ok_or(Violation::MissingResponseId)?
                    .ok_or(Violation::NullResultId)?,
            );
            message.tool_error = result.is_error;
            message.protocol_version = result.protocol_version.as_ref().map(Text::capped);
            Ok(message)
        }
        (None, Some(error)) => {
            message.kind = MessageKind::Error;
            message.id = id.ok_or(Violation::MissingResponseId)?;
            message.error_code = Some(error.code.ok_or(Violation::BadErrorObject)?);
            Ok(message)
        }
    }
}

/// `Ok(None)` for a null id, `Ok(Some(_))` for a usable one. `text` is the id's JSON text.
fn parse_id(text: &[u8]) -> Result<Option<RequestId>, Violation> {
    match text.first() {
        Some(b'"') => {
            let s = Scanner::decode_string(text).ok_or(Violation::BadId)?;
            Ok(Some(RequestId::String(s.capped())))
        }
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(number_id(text))),
        _ => Err(Violation::BadId),
    }
}

/// A numeric id: integral values (however written) become `Number`, anything else keeps its text.
fn number_id(text: &[u8]) -> RequestId {
    if let Some(n) = parse_i64(text) {
        return RequestId::Number(n);
    }
    // Cold. A number's text is ASCII, so the fallback never applies.
    let text = std::str::from_utf8(text).unwrap_or_default();
    // 2^63 is exact in f64; the range check keeps the `as` cast from saturating two ids into one.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match text.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) => RequestId::Number(f as i64),
        _ => RequestId::String(capped(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Message {
        match classify(body.as_bytes()) {
            Ok(mut messages) if messages.len() == 1 => messages.remove(0),
            other => panic!("{body}: expected one message, got {other:?}"),
        }
    }

    fn id_n(n: i64) -> Option<RequestId> {
        Some(RequestId::Number(n))
    }

    fn id_s(s: &str) -> Option<RequestId> {
        Some(RequestId::String(s.to_owned()))
    }

    #[test]
    fn kinds_and_ids() {
        /// Body, expected kind, id and method, and why the row is there.
        type Row = (
            &'static str,
            MessageKind,
            Option<RequestId>,
            Option<&'static str>,
            &'static str,
        );
        let table: &[Row] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
                MessageKind::Request,
                id_n(1),
                Some("ping"),
                "integer id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a-1","method":"ping"}"#,
                MessageKind::Request,
                id_s("a-1"),
                Some("ping"),
                "string id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#,
                MessageKind::Request,
                id_s("1"),
                Some("ping"),
                "string digits stay a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#,
                MessageKind::Request,
                id_n(1),
                Some("ping"),
                "integral float is a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2e3,"method":"ping"}"#,
                MessageKind::Request,
                id_n(2000),
                Some("ping"),
                "exponent form of an integer",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                MessageKind::Request,
                id_s("1.5"),
                Some("ping"),
                "fractional float keeps its text",
            ),
            (
                r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"x"}"#,
                MessageKind::Request,
                id_n(i64::MIN),
                Some("x"),
                "i64::MIN",
            ),
            (
                r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"x"}"#,
                MessageKind::Request,
                id_s("18446744073709551615"),
                Some("x"),
                "beyond i64 keeps its text",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"\u0041\n","method":"x"}"#,
                MessageKind::Request,
                id_s("A\n"),
                Some("x"),
                "escaped string id is decoded",
            ),
            (
                r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#,
                MessageKind::Notification,
                None,
                Some("notifications/initialized"),
                "no id, member order free",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/progress","params":[1,2]}"#,
                MessageKind::Notification,
                None,
                Some("notifications/progress"),
                "array params skipped",
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
                MessageKind::Response,
                id_n(7),
                None,
                "success response",
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"result":null}"#,
                MessageKind::Response,
                id_n(7),
                None,
                "null is still a result",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"r","error":{"code":-32601,"message":"nope"}}"#,
                MessageKind::Error,
                id_s("r"),
                None,
                "error response",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#,
                MessageKind::Error,
                None,
                None,
                "error with null id",
            ),
            (
                " \n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"m\",\"extra\":{\"deep\":[1]}}\t",
                MessageKind::Request,
                id_n(3),
                Some("m"),
                "whitespace and unknown members",
            ),
        ];
        for (body, kind, id, method, why) in table {
            let m = one(body);
            assert_eq!(m.kind, *kind, "{why}: kind");
            assert_eq!(m.id, *id, "{why}: id");
            assert_eq!(m.method.as_deref(), *method, "{why}: method");
        }
    }

    #[test]
    fn mcp_details() {
        let call = one(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{"name":"inner"},"name":"get_weather"}}"#,
        );
        assert_eq!(
            call.tool_name.as_deref(),
            Some("get_weather"),
            "params.name, not the nested arguments.name"
        );

        let not_a_tool =
            one(r#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p"}}"#);
        assert_eq!(
            not_a_tool.tool_name, None,
            "name only counts for tools/call"
        );

        let bad_name =
            one(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":42}}"#);
        assert_eq!(
            bad_name.tool_name, None,
            "a non-string name is left for the server to reject"
        );

        let init = one(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"claude-code","version":"1.2.3","clientInfo":{"name":"nested"}}}}"#,
        );
        assert_eq!(init.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(
            init.client,
            Some(ClientInfo {
                name: "claude-code".into(),
                version: "1.2.3".into()
            })
        );

        let init_no_version = one(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientInfo":{"name":"c"}}}"#,
        );
        assert_eq!(
            init_no_version.client,
            Some(ClientInfo {
                name: "c".into(),
                version: String::new()
            })
        );

        let init_result = one(
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-03-26","serverInfo":{"name":"s"}}}"#,
        );
        assert_eq!(init_result.protocol_version.as_deref(), Some("2025-03-26"));

        let tool_failed = one(r#"{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":true}}"#);
        assert!(tool_failed.tool_error);
        let tool_ok = one(r#"{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":false}}"#);
        assert!(!tool_ok.tool_error);
        let truthy = one(r#"{"jsonrpc":"2.0","id":2,"result":{"isError":"true"}}"#);
        assert!(!truthy.tool_error, "only the JSON literal true counts");

        let err = one(
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32002,"message":"gone","data":{"uri":"x"}}}"#,
        );
        assert_eq!(err.error_code, Some(-32002));
    }

    #[test]
    fn kept_strings_are_capped() {
        let long = "é".repeat(200); // 400 bytes
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"{long}","method":"{long}","params":{{"name":"{long}"}}}}"#
        );
        let m = one(&body);
        for (what, s) in [("method", m.method), ("id", m.id.map(|id| id.to_string()))] {
            let s = s.unwrap_or_default();
            assert!(
                s.len() <= crate::MAX_TEXT_BYTES + 2,
                "{what} kept {} bytes",
                s.len()
            );
        }
        assert_eq!(
            m.tool_name, None,
            "method was capped, so it no longer reads tools/call"
        );
        let call = one(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{long}"}}}}"#
        ));
        assert_eq!(
            call.tool_name,
            Some("é".repeat(128)),
            "cut on a char boundary at 256 bytes"
        );
    }

    #[test]
    fn batches() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},{"jsonrpc":"2.0","id":1,"result":{}}]"#;
        let kinds: Vec<_> = classify(body.as_bytes())
            .map(|ms| ms.iter().map(|m| m.kind).collect())
            .unwrap_or_default();
        assert_eq!(
            kinds,
            [
                MessageKind::Request,
                MessageKind::Notification,
                MessageKind::Response
            ]
        );

        let full = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"n"}"#; MAX_BATCH].join(",")
        );
        assert_eq!(
            classify(full.as_bytes()).map(|ms| ms.len()).ok(),
            Some(MAX_BATCH),
            "exactly at the cap is fine"
        );
        let over = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"n"}"#; MAX_BATCH + 1].join(",")
        );
        assert!(matches!(
            classify(over.as_bytes()),
            Err(WireError::BatchTooLarge { max: MAX_BATCH })
        ));
    }

    #[test]
    fn rejections() {
        use Violation::*;
        #[derive(Debug)]
        enum Want {
            Parse,
            Empty,
            Invalid(Option<usize>, Option<Violation>),
        }
        let table: &[(&str, Want, &str)] = &[
            ("", Want::Parse, "empty body"),
            ("{\"jsonrpc\":\"2.0\",", Want::Parse, "truncated"),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"x\"} {}",
                Want::Parse,
                "trailing data",
            ),
            ("\u{feff}{}", Want::Parse, "BOM is not JSON"),
            ("[]", Want::Empty, "empty batch"),
            ("[1,", Want::Parse, "broken batch"),
            (
                "42",
                Want::Invalid(None, None),
                "a number is JSON but not a message",
            ),
            (
                "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"},\"s\"]",
                Want::Invalid(Some(1), None),
                "non-object batch element",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#,
                Want::Invalid(None, None),
                "duplicate id is ambiguous",
            ),
            (
                r#"{"id":1,"method":"x"}"#,
                Want::Invalid(None, Some(MissingVersion)),
                "no jsonrpc",
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
                Want::Invalid(None, Some(WrongVersion)),
                "wrong version",
            ),
            (
                r#"{"jsonrpc":2.0,"id":1,"method":"x"}"#,
                Want::Invalid(None, Some(WrongVersion)),
                "version as a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                Want::Invalid(None, Some(MethodNotString)),
                "method not a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
                Want::Invalid(None, Some(MethodAndReply)),
                "call and reply at once",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}"#,
                Want::Invalid(None, Some(ResultAndError)),
                "both reply kinds",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1}"#,
                Want::Invalid(None, Some(NoMember)),
                "nothing to classify",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#,
                Want::Invalid(None, Some(BadId)),
                "array id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#,
                Want::Invalid(None, Some(BadId)),
                "boolean id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                Want::Invalid(None, Some(NullRequestId)),
                "MCP forbids null request ids",
            ),
            (
                r#"{"jsonrpc":"2.0","result":{}}"#,
                Want::Invalid(None, Some(MissingResponseId)),
                "result without id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
                Want::Invalid(None, Some(NullResultId)),
                "only errors may have null id",
            ),
            (
                r#"{"jsonrpc":"2.0","error":{"code":1}}"#,
                Want::Invalid(None, Some(MissingResponseId)),
                "error without id member",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
                Want::Invalid(None, Some(BadErrorObject)),
                "error not an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5}}"#,
                Want::Invalid(None, Some(BadErrorObject)),
                "fractional code",
            ),
            (
                r#"[{"jsonrpc":"2.0","method":"x"},{"jsonrpc":"2.0","id":1}]"#,
                Want::Invalid(Some(1), Some(NoMember)),
                "batch names the element",
            ),
        ];
        for (body, want, why) in table {
            let got = classify(body.as_bytes());
            let ok = match (&got, want) {
                (Err(WireError::Parse(_)), Want::Parse)
                | (Err(WireError::EmptyBatch), Want::Empty) => true,
                (
                    Err(WireError::Invalid { index, reason }),
                    Want::Invalid(want_index, want_reason),
                ) => {
                    index == want_index
                        && match want_reason {
                            Some(r) => reason == r,
                            None => matches!(reason, Violation::Shape(_)),
                        }
                }
                _ => false,
            };
            assert!(ok, "{why}: {body} gave {got:?}, wanted {want:?}");
        }
    }

    #[test]
    fn error_messages_say_where_and_how() {
        let batch = classify(
            br#"[{"jsonrpc":"2.0","method":"x"},{"jsonrpc":"2.0","id":null,"method":"y"}]"#,
        );
        let text = batch
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            text.contains("batch element 1") && text.contains("omit \"id\""),
            "{text}"
        );
        assert_eq!(
            classify(b"{").map_err(|e| e.error_type()).err(),
            Some("parse_error")
        );
        let parse = classify(br#"{"jsonrpc":"2.0","id":01}"#)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            parse.contains("leading zero at byte 23"),
            "a parse error says what and where: {parse}"
        );
        let shape = classify(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            shape.contains(r#"member "id" appears more than once"#),
            "{shape}"
        );
        assert_eq!(
            classify(b"[]").map_err(|e| e.error_type()).err(),
            Some("invalid_request")
        );
    }

    #[test]
    fn error_types() {
        let table = [
            (-32700, "parse_error", "JSON-RPC reserved"),
            (-32600, "invalid_request", "JSON-RPC reserved"),
            (-32601, "method_not_found", "JSON-RPC reserved"),
            (-32602, "invalid_params", "JSON-RPC reserved"),
            (-32603, "internal_error", "JSON-RPC reserved"),
            (
                -32002,
                "resource_not_found",
                "MCP, inside the server range but named",
            ),
            (
                -32000,
                "server_error",
                "top of the implementation-defined range",
            ),
            (
                -32099,
                "server_error",
                "bottom of the implementation-defined range",
            ),
            (-32100, "jsonrpc_error", "just outside the server range"),
            (-31999, "jsonrpc_error", "just outside the server range"),
            (0, "jsonrpc_error", "application code"),
            (i64::MIN, "jsonrpc_error", "extreme"),
        ];
        for (code, want, why) in table {
            assert_eq!(error_type(code), want, "{code}: {why}");
        }
    }

    #[test]
    fn error_response_is_valid_json() {
        let table = [
            (None, "null", "unknown id"),
            (Some(RequestId::Number(-5)), "-5", "number id"),
            (
                Some(RequestId::String("a\"b\\c\n".into())),
                r#""a\"b\\c\n""#,
                "string id is escaped",
            ),
        ];
        for (id, id_json, why) in table {
            let body = error_response(id.as_ref(), -32600, "bad \"thing\"\u{1}");
            let text = String::from_utf8(body.clone()).unwrap_or_default();
            assert!(
                text.contains(&format!(r#""id":{id_json}"#)),
                "{why}: {text}"
            );
            let back = classify(&body).unwrap_or_else(|e| panic!("{why}: {text}: {e}"));
            assert_eq!(back[0].kind, MessageKind::Error, "{why}");
            assert_eq!(back[0].id, id, "{why}");
            assert_eq!(back[0].error_code, Some(-32600), "{why}");
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(value["error"]["message"], "bad \"thing\"\u{1}", "{why}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(RequestId::Number(7).to_string(), "7");
        assert_eq!(RequestId::String("7".into()).to_string(), "\"7\"");
        assert_eq!(MessageKind::Notification.as_str(), "notification");
        assert_eq!(MessageKind::Error.to_string(), "error");
    }
}
