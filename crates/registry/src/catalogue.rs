//! The catalogue API, compatible with the official MCP registry (`/v0.1`, aliased as `/v0`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{FieldError, RegistryError};
use crate::state::{AppState, check_namespace, json_body};
use crate::storage::{ServerQuery, ServerRecord, Status, VersionSelector};
use crate::validate;

/// The key of the registry-owned metadata in every `ServerResponse._meta`.
pub const OFFICIAL_META_KEY: &str = "io.modelcontextprotocol.registry/official";

const DEFAULT_LIMIT: u32 = 30;
const MAX_LIMIT: u32 = 100;
const MAX_SEARCH: usize = 200;
const MAX_CURSOR: usize = 512;
const MAX_STATUS_MESSAGE: usize = 500;

/// Query parameters arrive as text so each can be rejected with its own message.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<String>,
    search: Option<String>,
    updated_since: Option<String>,
    version: Option<String>,
    include_deleted: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeletedParam {
    include_deleted: Option<String>,
}

/// Formats an instant as RFC 3339; only years past 9999 could fail, which storage never holds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The contract's `ServerResponse`: the document plus the registry's official metadata.
pub fn server_response(record: &ServerRecord) -> Value {
    let mut official = Map::new();
    official.insert("status".into(), json!(record.status.as_str()));
    if let Some(message) = &record.status_message {
        official.insert("statusMessage".into(), json!(message));
    }
    official.insert(
        "statusChangedAt".into(),
        json!(rfc3339(record.status_changed_at)),
    );
    official.insert("publishedAt".into(), json!(rfc3339(record.published_at)));
    official.insert("updatedAt".into(), json!(rfc3339(record.updated_at)));
    official.insert("isLatest".into(), json!(record.is_latest));
    json!({"server": record.server, "_meta": {OFFICIAL_META_KEY: official}})
}

fn query<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, RegistryError> {
    params.map(|Query(p)| p).map_err(|e| {
        RegistryError::BadRequest(format!("query string is invalid: {}", e.body_text()))
    })
}

fn path<T>(params: Result<Path<T>, PathRejection>) -> Result<T, RegistryError> {
    params
        .map(|Path(p)| p)
        .map_err(|e| RegistryError::BadRequest(format!("path is invalid: {}", e.body_text())))
}

fn boolean(name: &str, value: Option<&str>) -> Result<bool, RegistryError> {
    match value {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(RegistryError::BadRequest(format!(
            "{name} must be true or false, got '{other}'"
        ))),
    }
}

/// Turns list parameters into a storage query, fetching one extra row to know if a next page exists.
fn list_query(p: &ListParams) -> Result<ServerQuery, RegistryError> {
    let limit = match p.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                RegistryError::BadRequest(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, got '{s}'"
                ))
            })?,
    };
    if let Some(search) = &p.search
        && search.chars().count() > MAX_SEARCH
    {
        return Err(RegistryError::BadRequest(format!(
            "search must be at most {MAX_SEARCH} characters"
        )));
    }
    let updated_since = p
        .updated_since
        .as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
                RegistryError::BadRequest(format!(
                    "updated_since must be an RFC 3339 date-time like 2025-01-31T12:00:00Z, got '{s}' ({e})"
                ))
            })
        })
        .transpose()?;
    let after = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) if c.len() > MAX_CURSOR => {
            return Err(RegistryError::BadRequest(
                "cursor is too long; pass back the metadata.nextCursor of the previous page"
                    .to_owned(),
            ));
        }
        // Names cannot contain ':', so the first one separates name from version.
        Some(c) => Some(match c.split_once(':') {
            Some((name, version)) => (name.to_owned(), version.to_owned()),
            None => (c.to_owned(), String::new()),
        }),
    };
    let (latest_only, exact_version) = match p.version.as_deref() {
        None => (false, None),
        Some("latest") => (true, None),
        Some(v) if v.chars().count() > 255 => {
            return Err(RegistryError::BadRequest(
                "version must be at most 255 characters".to_owned(),
            ));
        }
        Some(v) => (false, Some(v.to_owned())),
    };
    Ok(ServerQuery {
        after,
        limit: limit + 1,
        search: p.search.clone().filter(|s| !s.is_empty()),
        // The contract: deleted versions are always included in incremental syncs.
        include_deleted: updated_since.is_some()
            || boolean("include_deleted", p.include_deleted.as_deref())?,
        updated_since,
        latest_only,
        exact_version,
    })
}

pub async fn list_servers(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, RegistryError> {
    state.authorize_read(&headers).await?;
    let params = query(params)?;
    let q = list_query(&params)?;
    let page = usize::try_from(q.limit - 1).unwrap_or(usize::MAX);
    let mut rows = state.storage().list_servers(&q).await?;
    let next_cursor = if rows.len() > page {
        rows.truncate(page);
        rows.last().map(|r| format!("{}:{}", r.name, r.version))
    } else {
        None
    };
    let servers: Vec<Value> = rows.iter().map(server_response).collect();
    let mut metadata = json!({"count": servers.len()});
    if let Some(cursor) = next_cursor {
        metadata["nextCursor"] = json!(cursor);
    }
    Ok(Json(json!({"servers": servers, "metadata": metadata})))
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound(format!(
        "server '{name}' not found; names are URL-encoded in paths, e.g. io.example%2Fweather"
    ))
}

pub async fn server_versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<DeletedParam>, QueryRejection>,
) -> Result<Json<Value>, RegistryError> {
    state.authorize_read(&headers).await?;
    let name = path(name)?;
    let include_deleted = boolean("include_deleted", query(params)?.include_deleted.as_deref())?;
    let rows = state
        .storage()
        .server_versions(&name, include_deleted)
        .await?;
    if rows.is_empty() {
        return Err(not_found(&name));
    }
    let servers: Vec<Value> = rows.iter().map(server_response).collect();
    Ok(Json(
        json!({"servers": servers, "metadata": {"count": servers.len()}}),
    ))
}

pub async fn server_version(
    State(state): State<AppState>,
    headers: HeaderMap,
    names: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<DeletedParam>, QueryRejection>,
) -> Result<Json<Value>, RegistryError> {
    state.authorize_read(&headers).await?;
    let (name, version) = path(names)?;
    let include_deleted = boolean("include_deleted", query(params)?.include_deleted.as_deref())?;
    let selector = if version == "latest" {
        VersionSelector::Latest
    } else {
        VersionSelector::Exact(&version)
    };
    match state.storage().server_version(&name, selector).await? {
        Some(r) if include_deleted || r.status != Status::Deleted => Ok(Json(server_response(&r))),
        _ => Err(RegistryError::NotFound(format!(
            "server '{name}' has no version '{version}'; list them at /v0.1/servers/{{serverName}}/versions"
        ))),
    }
}

/// Editing or deleting a published version is optional in the contract; versions here are immutable.
pub async fn immutable_version() -> RegistryError {
    RegistryError::NotImplemented(
        "published versions are immutable here; publish a new version, or change its status with PATCH .../status".to_owned(),
    )
}

pub async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RegistryError> {
    let principal = state.authorize_writer(&headers).await?;
    let document = json_body(&headers, body, state.options().body_limit)?;
    let errors = validate::server_detail(&document);
    if !errors.is_empty() {
        return Err(RegistryError::Invalid(errors));
    }
    // Validation guarantees both are strings; the fallbacks are unreachable but never panic.
    let name = document["name"].as_str().unwrap_or_default().to_owned();
    let version = document["version"].as_str().unwrap_or_default().to_owned();
    check_namespace(&principal, &name)?;
    let record = state
        .storage()
        .publish(&name, &version, &document, state.now())
        .await?;
    tracing::info!(%name, %version, token = %principal.token_id, latest = record.is_latest, "published");
    Ok(Json(server_response(&record)))
}

/// Parses a `StatusUpdateRequest`, rejecting unknown members like the publish endpoint does.
fn status_update(value: &Value) -> Result<(Status, Option<String>), RegistryError> {
    let mut errors = Vec::new();
    let Some(map) = value.as_object() else {
        return Err(RegistryError::Invalid(vec![FieldError::new(
            "$",
            "must be a JSON object",
        )]));
    };
    for key in map.keys() {
        if key != "status" && key != "statusMessage" {
            errors.push(FieldError::new(
                format!("$.{key}"),
                "unknown field; allowed: status, statusMessage",
            ));
        }
    }
    let status = match map
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
    {
        Some(s) => Some(s),
        None => {
            errors.push(FieldError::new(
                "$.status",
                "is required and must be active, deprecated or deleted",
            ));
            None
        }
    };
    let message = match map.get("statusMessage") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if m.chars().count() <= MAX_STATUS_MESSAGE => Some(m.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                "$.statusMessage",
                format!("must be a string of at most {MAX_STATUS_MESSAGE} characters"),
            ));
            None
        }
    };
    match status {
        Some(status) if errors.is_empty() => Ok((status, message)),
        _ => Err(RegistryError::Invalid(errors)),
    }
}

async fn apply_status(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    version: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<ServerRecord>, RegistryError> {
    let principal = state.authorize_writer(headers).await?;
    let document = json_body(headers, body, state.options().body_limit)?;
    let (status, message) = status_update(&document)?;
    check_namespace(&principal, name)?;
    let rows = state
        .storage()
        .set_status(name, version, status, message.as_deref(), state.now())
        .await?;
    if rows.is_empty() {
        return Err(RegistryError::NotFound(match version {
            Some(v) => format!("server '{name}' has no version '{v}'"),
            None => format!("server '{name}' not found"),
        }));
    }
    Ok(rows)
}

pub async fn set_version_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    names: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RegistryError> {
    let (name, version) = path(names)?;
    let rows = apply_status(&state, &headers, &name, Some(&version), body).await?;
    let first = rows.first().ok_or_else(|| not_found(&name))?;
    Ok(Json(server_response(first)))
}

pub async fn set_server_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RegistryError> {
    let name = path(name)?;
    let rows = apply_status(&state, &headers, &name, None, body).await?;
    let servers: Vec<Value> = rows.iter().map(server_response).collect();
    Ok(Json(
        json!({"updatedCount": servers.len(), "servers": servers}),
    ))
}
