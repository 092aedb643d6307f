//! Shared request state: storage, metrics, clock, policies, and the checks every handler uses.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::{self, Principal, Role};
use crate::cache::{PageCache, TOKEN_TTL, TokenCache};
use crate::error::{FieldError, RegistryError};
use crate::instances::HealthPolicy;
use crate::metrics::RegistryMetrics;
use crate::storage::{Instrumented, Storage};

/// Where handlers get the current time; tests substitute a manual clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Request-handling policies that do not depend on where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOptions {
    pub health: HealthPolicy,
    /// Whether reads need no token (the official registry's behaviour).
    pub anonymous_reads: bool,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            health: HealthPolicy::default(),
            anonymous_reads: true,
            body_limit: 1024 * 1024,
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    metrics: RegistryMetrics,
    options: ServiceOptions,
    clock: Clock,
    /// Spares each authenticated request a storage read; see [`TOKEN_TTL`] for revocation.
    tokens: Arc<TokenCache>,
    /// Serialised instance pages, keyed on storage's data version.
    pages: Arc<PageCache>,
}

impl AppState {
    /// Wraps `storage` so its operations are timed into `metrics`.
    pub fn new(
        storage: Arc<dyn Storage>,
        options: ServiceOptions,
        metrics: RegistryMetrics,
    ) -> Self {
        let storage: Arc<dyn Storage> = Arc::new(Instrumented::new(storage, metrics.clone()));
        Self {
            inner: Arc::new(Inner {
                storage,
                metrics,
                options,
                clock: Arc::new(OffsetDateTime::now_utc),
                tokens: Arc::new(TokenCache::new(TOKEN_TTL)),
                pages: Arc::new(PageCache::default()),
            }),
        }
    }

    /// The same state reading time from `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                storage: inner.storage.clone(),
                metrics: inner.metrics.clone(),
                options: inner.options.clone(),
                clock,
                tokens: inner.tokens.clone(),
                pages: inner.pages.clone(),
            }),
        }
    }

    pub fn storage(&self) -> &dyn Storage {
        self.inner.storage.as_ref()
    }

    pub fn metrics(&self) -> &RegistryMetrics {
        &self.inner.metrics
    }

    pub fn options(&self) -> &ServiceOptions {
        &self.inner.options
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.inner.clock)()
    }

    pub(crate) fn pages(&self) -> &PageCache {
        &self.inner.pages
    }

    /// Recomputes the fleet gauges from storage.
    pub async fn refresh_gauges(&self) -> Result<(), RegistryError> {
        let now = self.now();
        let cutoffs = self.inner.options.health.cutoffs(now);
        let summary = self.storage().instance_summary(&cutoffs).await?;
        self.metrics().set_instances(&summary, now);
        Ok(())
    }

    /// The principal behind the request's bearer token, or `None` when it sent none.
    async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, RegistryError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let invalid = || {
            RegistryError::Unauthorized(
                "the bearer token is malformed, unknown or revoked; send Authorization: Bearer <token> with a token from `mcpulse registry token create`".to_owned(),
            )
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(invalid)?;
        let id = auth::token_id(token).ok_or_else(invalid)?;
        let now = self.now();
        let record = match self.inner.tokens.get(id, now) {
            Some(record) => record,
            None => {
                let record = self.storage().find_token(id).await?.ok_or_else(invalid)?;
                self.inner.tokens.insert(record.clone(), now);
                record
            }
        };
        if !auth::verify(token, &record) {
            return Err(invalid());
        }
        Ok(Some(Principal {
            token_id: record.id,
            role: record.role,
            namespace: record.namespace,
        }))
    }

    /// Lets a read through: anyone when reads are anonymous, otherwise any valid token.
    pub async fn authorize_read(&self, headers: &HeaderMap) -> Result<(), RegistryError> {
        let principal = self.principal(headers).await?;
        if principal.is_none() && !self.inner.options.anonymous_reads {
            return Err(RegistryError::Unauthorized(
                "this registry requires a bearer token for reads; send Authorization: Bearer <token>".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks the request carries a publisher or admin token; the namespace is checked later.
    pub async fn authorize_writer(&self, headers: &HeaderMap) -> Result<Principal, RegistryError> {
        let principal = self.principal(headers).await?.ok_or_else(|| {
            RegistryError::Unauthorized(
                "writes need a bearer token; send Authorization: Bearer <token> with a publisher token".to_owned(),
            )
        })?;
        if principal.role < Role::Publisher {
            return Err(RegistryError::Forbidden(format!(
                "token {} has role {}; writes need publisher or admin",
                principal.token_id, principal.role
            )));
        }
        Ok(principal)
    }
}

/// Fails with 403 unless `principal` may write under `server_name`.
pub fn check_namespace(principal: &Principal, server_name: &str) -> Result<(), RegistryError> {
    if principal.may_write(server_name) {
        Ok(())
    } else {
        Err(RegistryError::Forbidden(format!(
            "token {} may write only {}; '{server_name}' is outside it",
            principal.token_id,
            principal.namespace.as_deref().unwrap_or("nothing")
        )))
    }
}

/// Reads a JSON request body, turning each way it can be unusable into a precise error.
pub fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Value, RegistryError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(RegistryError::UnsupportedMediaType(format!(
                "content type '{essence}' is not JSON; send Content-Type: application/json"
            )));
        }
    }
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RegistryError::BodyTooLarge { limit }
        } else {
            RegistryError::BadRequest(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        RegistryError::Invalid(vec![FieldError::new(
            "$",
            format!("not valid JSON ({e}); send one JSON object"),
        )])
    })
}
