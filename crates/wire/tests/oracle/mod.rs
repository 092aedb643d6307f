//! The serde-visitor classifier that `mcpulse_wire::classify` replaced, kept verbatim as the oracle of the differential tests and the baseline of the benchmark.
//!
//! Shared by `tests/differential.rs` and `benches/classify.rs` through `#[path]`; not part of the crate.

use std::borrow::Cow;
use std::fmt;

use mcpulse_wire::{
    ClientInfo, MAX_BATCH, MAX_TEXT_BYTES, Message, MessageKind, RequestId, Violation, WireError,
};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// `s` cut to at most [`MAX_TEXT_BYTES`] on a char boundary, as the crate does.
fn capped(s: &str) -> String {
    s.get(..s.floor_char_boundary(MAX_TEXT_BYTES))
        .unwrap_or_default()
        .to_owned()
}

/// Classify one JSON body: a single message or a batch (JSON array; MCP 2025-03-26 allowed batches).
///
/// Errors when the body is not JSON, when any message in it is not JSON-RPC 2.0, or when a batch is
/// empty or longer than [`MAX_BATCH`]. Never panics.
pub fn classify(body: &[u8]) -> Result<Vec<Message>, WireError> {
    let starts_batch = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        == Some(&b'[');
    if !starts_batch {
        let envelope: Envelope<'_> =
            serde_json::from_slice(body).map_err(|e| from_serde(body, e, None))?;
        let message = interpret(envelope).map_err(|reason| WireError::Invalid {
            index: None,
            reason,
        })?;
        return Ok(vec![message]);
    }

    let mut state = BatchState::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = BatchSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|envelopes| de.end().map(|()| envelopes));
    let envelopes = match parsed {
        Ok(envelopes) => envelopes,
        Err(_) if state.overflow => return Err(WireError::BatchTooLarge { max: MAX_BATCH }),
        Err(e) => return Err(from_serde(body, e, Some(state.at))),
    };
    if envelopes.is_empty() {
        return Err(WireError::EmptyBatch);
    }
    envelopes
        .into_iter()
        .enumerate()
        .map(|(i, envelope)| {
            interpret(envelope).map_err(|reason| WireError::Invalid {
                index: Some(i),
                reason,
            })
        })
        .collect()
}

/// A shape error is reported as soon as it is seen, but JSON-RPC says a body that is not JSON is a
/// parse error whatever else is wrong with it, so on that (cold) path check the rest of the body too.
fn from_serde(body: &[u8], e: serde_json::Error, index: Option<usize>) -> WireError {
    if e.classify() != serde_json::error::Category::Data {
        return WireError::Parse(e);
    }
    match serde_json::from_slice::<IgnoredAny>(body) {
        Err(syntax) => WireError::Parse(syntax),
        Ok(_) => WireError::Invalid {
            index,
            reason: Violation::Shape(e.to_string()),
        },
    }
}

/// Apply the JSON-RPC 2.0 rules to the members read from one message.
fn interpret(env: Envelope<'_>) -> Result<Message, Violation> {
    match env.jsonrpc {
        None => return Err(Violation::MissingVersion),
        Some(Scalar::Str(v)) if v == "2.0" => {}
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

    if let Some(method) = env.method {
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
        if let Some(params) = env.params {
            match &*method {
                "tools/call" => message.tool_name = params.name.as_deref().map(capped),
                "initialize" => {
                    message.protocol_version = params.protocol_version.as_deref().map(capped);
                    message.client = params.client_name.as_deref().map(|name| ClientInfo {
                        name: capped(name),
                        version: params
                            .client_version
                            .as_deref()
                            .map(capped)
                            .unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        message.method = Some(capped(&method));
        return Ok(message);
    }

    match (env.result, env.error) {
        (Some(_), Some(_)) => Err(Violation::ResultAndError),
        (None, None) => Err(Violation::NoMember),
        (Some(result), None) => {
            message.kind = MessageKind::Response;
            message.id = Some(
                id.ok_or(Violation::MissingResponseId)?
                    .ok_or(Violation::NullResultId)?,
            );
            message.tool_error = result.is_error;
            message.protocol_version = result.protocol_version.as_deref().map(capped);
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

/// `Ok(None)` for a null id, `Ok(Some(_))` for a usable one.
fn parse_id(raw: &RawValue) -> Result<Option<RequestId>, Violation> {
    let text = raw
        .get()
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    match text.as_bytes().first() {
        Some(b'"') => {
            let s: Cow<'_, str> = serde_json::from_str::<Scalar<'_>>(text)
                .ok()
                .and_then(|scalar| match scalar {
                    Scalar::Str(s) => Some(s),
                    _ => None,
                })
                .ok_or(Violation::BadId)?;
            Ok(Some(RequestId::String(capped(&s))))
        }
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(number_id(text))),
        _ => Err(Violation::BadId),
    }
}

/// A numeric id: integral values (however written) become `Number`, anything else keeps its text.
fn number_id(text: &str) -> RequestId {
    if let Ok(n) = text.parse::<i64>() {
        return RequestId::Number(n);
    }
    // 2^63 is exact in f64; the range check keeps the `as` cast from saturating two ids into one.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match text.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) => RequestId::Number(f as i64),
        _ => RequestId::String(capped(text)),
    }
}

/// The members of one message that classification reads; `None` = member absent.
#[derive(Default)]
struct Envelope<'a> {
    jsonrpc: Option<Scalar<'a>>,
    /// Raw so a float keeps its JSON text and null stays distinguishable from absent.
    id: Option<&'a RawValue>,
    method: Option<Scalar<'a>>,
    params: Option<Peek<'a>>,
    result: Option<Peek<'a>>,
    error: Option<Peek<'a>>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeKey {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC 2.0 message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        /// A repeated member is ambiguous (parsers disagree on which copy wins), so refuse it.
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            value: T,
            name: &'static str,
        ) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(value);
            Ok(())
        }
        let mut env = Envelope::default();
        while let Some(key) = map.next_key::<EnvelopeKey>()? {
            match key {
                EnvelopeKey::Jsonrpc => once(&mut env.jsonrpc, map.next_value()?, "jsonrpc")?,
                EnvelopeKey::Id => once(&mut env.id, map.next_value()?, "id")?,
                EnvelopeKey::Method => once(&mut env.method, map.next_value()?, "method")?,
                EnvelopeKey::Params => once(&mut env.params, map.next_value()?, "params")?,
                EnvelopeKey::Result => once(&mut env.result, map.next_value()?, "result")?,
                EnvelopeKey::Error => once(&mut env.error, map.next_value()?, "error")?,
                EnvelopeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

/// Where the batch visitor was when it stopped, so errors can name the element and the cap.
#[derive(Default)]
struct BatchState {
    at: usize,
    overflow: bool,
}

struct BatchSeed<'s> {
    state: &'s mut BatchState,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Envelope<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Envelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch array of JSON-RPC 2.0 messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut envelopes = Vec::new();
        loop {
            self.state.at = envelopes.len();
            if envelopes.len() == MAX_BATCH {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    self.state.overflow = true;
                    return Err(de::Error::custom("batch too large"));
                }
                return Ok(envelopes);
            }
            match seq.next_element::<Envelope<'de>>()? {
                Some(envelope) => envelopes.push(envelope),
                None => return Ok(envelopes),
            }
        }
    }
}

/// Any JSON value, keeping only what classification can use: a borrowed string where the JSON has
/// no escapes, or a small integer or boolean. Arrays and objects are skipped without allocating.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Accept and discard every JSON shape a lenient visitor does not care about.
macro_rules! skip_other_shapes {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'a> Scalar<'a> {
    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The members read from `params`, `result` or `error`; each is only used where it means something
/// (e.g. `name` only for `tools/call`), and a member of the wrong type is treated as absent because
/// the server, not the proxy, is the one to reject it.
#[derive(Default)]
struct Peek<'a> {
    name: Option<Cow<'a, str>>,
    client_name: Option<Cow<'a, str>>,
    client_version: Option<Cow<'a, str>>,
    protocol_version: Option<Cow<'a, str>>,
    is_error: bool,
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum PeekKey {
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "version")]
    Version,
    #[serde(rename = "clientInfo")]
    ClientInfo,
    #[serde(rename = "protocolVersion")]
    ProtocolVersion,
    #[serde(rename = "isError")]
    IsError,
    #[serde(rename = "code")]
    Code,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Peek<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PeekVisitor { nested: false })
    }
}

/// `nested` is true inside `clientInfo`, where only `name` and `version` matter; it also stops the
/// visitor from descending into a `clientInfo` inside a `clientInfo`.
struct PeekVisitor {
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for PeekVisitor {
    type Value = Peek<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PeekVisitor {
    type Value = Peek<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    skip_other_shapes!(Peek::default());

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut peek = Peek::default();
        while let Some(key) = map.next_key::<PeekKey>()? {
            match key {
                PeekKey::Name => peek.name = map.next_value::<Scalar<'de>>()?.into_str(),
                PeekKey::Version if self.nested => {
                    peek.client_version = map.next_value::<Scalar<'de>>()?.into_str();
                }
                PeekKey::ClientInfo if !self.nested => {
                    let client = map.next_value_seed(PeekVisitor { nested: true })?;
                    peek.client_name = client.name;
                    peek.client_version = client.client_version;
                }
                PeekKey::ProtocolVersion if !self.nested => {
                    peek.protocol_version = map.next_value::<Scalar<'de>>()?.into_str();
                }
                PeekKey::IsError if !self.nested => {
                    peek.is_error = matches!(map.next_value::<Scalar<'de>>()?, Scalar::Bool(true));
                }
                PeekKey::Code if !self.nested => {
                    peek.code = match map.next_value::<Scalar<'de>>()? {
                        Scalar::Int(code) => Some(code),
                        _ => None,
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(peek)
    }
}
