//! The crate's single error type and its mapping to HTTP problem responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One invalid member of a request, located by a JSON path such as `$.remotes[0].url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Everything that can go wrong in the registry, from configuration to a single request.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage operation {operation} failed: {source}")]
    Storage {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is invalid: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    #[error("request body exceeds the limit of {limit} bytes; send a smaller document")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotImplemented(String),
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl RegistryError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Config(_)
            | Self::Io { .. }
            | Self::Storage { .. }
            | Self::Migration { .. }
            | Self::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response: the contract's `{"error": ...}` plus RFC 9457 members.
#[derive(Serialize)]
struct Problem<'a> {
    error: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Internal details (SQL errors, paths) stay in the log; clients get a generic message.
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; the registry logged the cause".to_owned()
        } else {
            self.to_string()
        };
        let errors: &[FieldError] = match &self {
            Self::Invalid(errors) => errors,
            _ => &[],
        };
        let body = Problem {
            error: detail.clone(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mcpulse-registry\""),
            );
        }
        response
    }
}
