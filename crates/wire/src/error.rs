//! The crate's one error type: why a body could not be classified as MCP (JSON-RPC 2.0) traffic.

use thiserror::Error;

/// Why [`crate::classify`] rejected a body.
///
/// The proxy forwards the body unchanged whatever this says; the error only decides which
/// `error.type` the exchange is counted under (see [`WireError::error_type`]).
#[derive(Debug, Error)]
pub enum WireError {
    /// The body is not JSON at all; the message says what was wrong at which byte offset.
    #[error(
        "body is not valid JSON ({0}); the peer must send one JSON-RPC 2.0 object or an array of them"
    )]
    Parse(#[source] serde_json::Error),
    /// The body is JSON but a message in it breaks JSON-RPC 2.0 (or MCP's tightening of it).
    #[error("{} is not a JSON-RPC 2.0 message: {reason}", where_(.index))]
    Invalid {
        /// Position inside a batch; `None` for a single message.
        index: Option<usize>,
        /// What rule the message broke.
        reason: Violation,
    },
    /// A batch longer than [`crate::MAX_BATCH`]: refused so one body cannot make us allocate without bound.
    #[error("batch of more than {max} messages; split it into smaller batches")]
    BatchTooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// `[]`: JSON-RPC 2.0 says an empty batch is itself an invalid request.
    #[error("empty batch: a JSON-RPC 2.0 batch array needs at least one message")]
    EmptyBatch,
}

impl WireError {
    /// The bounded OTel-style `error.type` label under which the proxy counts this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Parse(_) => "parse_error",
            Self::Invalid { .. } | Self::BatchTooLarge { .. } | Self::EmptyBatch => {
                "invalid_request"
            }
        }
    }
}

fn where_(index: &Option<usize>) -> String {
    match index {
        Some(i) => format!("batch element {i}"),
        None => "body".to_owned(),
    }
}

/// The JSON-RPC 2.0 / MCP rule a message broke, each with a fix in its message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// The value is JSON but not an object, or an object with a repeated envelope member.
    #[error("{0}")]
    Shape(String),
    #[error(r#"missing "jsonrpc" member; every message must carry "jsonrpc": "2.0""#)]
    MissingVersion,
    #[error(r#""jsonrpc" must be exactly the string "2.0""#)]
    WrongVersion,
    #[error(r#""method" must be a string"#)]
    MethodNotString,
    #[error(
        r#"has "method" together with "result" or "error"; a message is either a call or a reply"#
    )]
    MethodAndReply,
    #[error(r#"has both "result" and "error"; a response carries exactly one of them"#)]
    ResultAndError,
    #[error(r#"has none of "method", "result" or "error""#)]
    NoMember,
    #[error(r#""id" must be a string, a number or null"#)]
    BadId,
    #[error(r#"request "id" is null; MCP requires a string or integer id (omit "id" to send a notification)"#)]
    NullRequestId,
    #[error(r#"response has no "id"; it must echo the id of the request it answers"#)]
    MissingResponseId,
    #[error(r#"success response has a null "id"; only an error response may use null (when the request id was unreadable)"#)]
    NullResultId,
    #[error(r#""error" must be an object with an integer "code""#)]
    BadErrorObject,
}
