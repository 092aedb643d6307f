//! Live instances: agents register where a server runs, heartbeat, and deregister.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::catalogue::rfc3339;
use crate::error::{FieldError, RegistryError};
use crate::state::{AppState, check_namespace, json_body};
use crate::storage::{InstanceQuery, InstanceRecord};
use crate::validate;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY: usize = 63;
const MAX_LABEL_VALUE: usize = 256;
const MAX_ENDPOINT: usize = 2048;

/// How long an instance may stay silent before it counts as unhealthy, then as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    pub unhealthy_after: Duration,
    pub gone_after: Duration,
}

impl Default for HealthPolicy {
    /// Three missed beats at a 10 s interval make an instance unhealthy; five minutes make it gone.
    fn default() -> Self {
        Self {
            unhealthy_after: Duration::from_secs(30),
            gone_after: Duration::from_secs(300),
        }
    }
}

/// An instance's health, derived from the age of its last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Unhealthy,
    Gone,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Gone => "gone",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            "gone" => Some(Self::Gone),
            _ => None,
        }
    }
}

impl HealthPolicy {
    /// Checks the durations make sense together.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if self.unhealthy_after.is_zero() || self.gone_after <= self.unhealthy_after {
            return Err(RegistryError::Config(format!(
                "instance health durations must satisfy 0 < unhealthy-after ({:?}) < gone-after ({:?})",
                self.unhealthy_after, self.gone_after
            )));
        }
        Ok(())
    }

    /// Heartbeats before the first instant are unhealthy; before the second, gone.
    pub fn cutoffs(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        (now - self.unhealthy_after, now - self.gone_after)
    }

    pub fn state(&self, last_heartbeat: OffsetDateTime, now: OffsetDateTime) -> HealthState {
        let (unhealthy_before, gone_before) = self.cutoffs(now);
        if last_heartbeat >= unhealthy_before {
            HealthState::Healthy
        } else if last_heartbeat >= gone_before {
            HealthState::Unhealthy
        } else {
            HealthState::Gone
        }
    }
}

fn view(instance: &InstanceRecord, state: HealthState) -> Value {
    json!({
        "id": instance.id,
        "serverName": instance.server_name,
        "version": instance.version,
        "endpoint": instance.endpoint,
        "labels": instance.labels,
        "registeredAt": rfc3339(instance.registered_at),
        "lastHeartbeatAt": rfc3339(instance.last_heartbeat_at),
        "state": state.as_str(),
    })
}

fn present(state: &AppState, instance: &InstanceRecord) -> Value {
    let health = state
        .options()
        .health
        .state(instance.last_heartbeat_at, state.now());
    view(instance, health)
}

/// A validated registration request.
struct Registration {
    server_name: String,
    version: String,
    endpoint: String,
    labels: BTreeMap<String, String>,
}

fn registration(value: &Value) -> Result<Registration, RegistryError> {
    let Some(map) = value.as_object() else {
        return Err(RegistryError::Invalid(vec![FieldError::new(
            "$",
            "must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "serverName" | "version" | "endpoint" | "labels"
        ) {
            errors.push(FieldError::new(
                format!("$.{key}"),
                "unknown field; allowed: serverName, version, endpoint, labels",
            ));
        }
    }
    let mut text = |key: &str, check: &dyn Fn(&str) -> Result<(), String>| -> String {
        match map.get(key) {
            Some(Value::String(s)) => {
                if let Err(message) = check(s) {
                    errors.push(FieldError::new(format!("$.{key}"), message));
                }
                s.clone()
            }
            _ => {
                errors.push(FieldError::new(
                    format!("$.{key}"),
                    "is required and must be a string",
                ));
                String::new()
            }
        }
    };
    let server_name = text("serverName", &validate::server_name);
    let version = text("version", &validate::version);
    let endpoint = text("endpoint", &|s| {
        let ok = s.len() <= MAX_ENDPOINT
            && url::Url::parse(s)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "must be an http:// or https:// URL of at most {MAX_ENDPOINT} bytes"
            ))
        }
    });
    let mut labels = BTreeMap::new();
    match map.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.len() <= MAX_LABELS => {
            for (k, v) in m {
                let path = format!("$.labels[{}]", Value::String(k.clone()));
                let key_ok = (1..=MAX_LABEL_KEY).contains(&k.len())
                    && k.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
                    });
                if !key_ok {
                    errors.push(FieldError::new(&path, format!(
                        "label keys are 1 to {MAX_LABEL_KEY} letters, digits, '_', '-', '.' or '/'"
                    )));
                }
                match v.as_str() {
                    Some(s) if s.len() <= MAX_LABEL_VALUE => {
                        labels.insert(k.clone(), s.to_owned());
                    }
                    _ => errors.push(FieldError::new(
                        &path,
                        format!("label values are strings of at most {MAX_LABEL_VALUE} bytes"),
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "$.labels",
            format!("must be an object of at most {MAX_LABELS} string labels"),
        )),
    }
    if errors.is_empty() {
        Ok(Registration {
            server_name,
            version,
            endpoint,
            labels,
        })
    } else {
        Err(RegistryError::Invalid(errors))
    }
}

fn new_id() -> Result<String, RegistryError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        RegistryError::Config(format!("the operating system gave no random bytes: {e}"))
    })?;
    Ok(hex::encode(bytes))
}

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), RegistryError> {
    let principal = state.authorize_writer(&headers).await?;
    let document = json_body(&headers, body, state.options().body_limit)?;
    let r = registration(&document)?;
    check_namespace(&principal, &r.server_name)?;
    let now = state.now();
    let instance = InstanceRecord {
        id: new_id()?,
        server_name: r.server_name,
        version: r.version,
        endpoint: r.endpoint,
        labels: r.labels,
        registered_at: now,
        last_heartbeat_at: now,
    };
    state.storage().register_instance(&instance).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&instance, HealthState::Healthy)),
    ))
}

fn instance_path(id: Result<Path<String>, PathRejection>) -> Result<String, RegistryError> {
    id.map(|Path(id)| id)
        .map_err(|e| RegistryError::BadRequest(format!("path is invalid: {}", e.body_text())))
}

fn unknown_instance(id: &str) -> RegistryError {
    RegistryError::NotFound(format!(
        "no instance '{id}'; it was deregistered or never registered: register again"
    ))
}

/// Loads an instance the caller may write, so a publisher cannot touch another namespace's.
async fn writable(state: &AppState, headers: &HeaderMap, id: &str) -> Result<(), RegistryError> {
    let principal = state.authorize_writer(headers).await?;
    let instance = state
        .storage()
        .instance(id)
        .await?
        .ok_or_else(|| unknown_instance(id))?;
    check_namespace(&principal, &instance.server_name)
}

pub async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, RegistryError> {
    let id = instance_path(id)?;
    writable(&state, &headers, &id).await?;
    let now = state.now();
    let (instance, previous) = state
        .storage()
        .heartbeat(&id, now)
        .await?
        .ok_or_else(|| unknown_instance(&id))?;
    state.metrics().observe_heartbeat(previous, now);
    Ok(Json(view(&instance, HealthState::Healthy)))
}

pub async fn deregister(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, RegistryError> {
    let id = instance_path(id)?;
    writable(&state, &headers, &id).await?;
    if state.storage().deregister_instance(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown_instance(&id))
    }
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, RegistryError> {
    state.authorize_read(&headers).await?;
    let id = instance_path(id)?;
    let instance = state
        .storage()
        .instance(&id)
        .await?
        .ok_or_else(|| unknown_instance(&id))?;
    Ok(Json(present(&state, &instance)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    server_name: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, RegistryError> {
    state.authorize_read(&headers).await?;
    let Query(p) = params.map_err(|e| {
        RegistryError::BadRequest(format!("query string is invalid: {}", e.body_text()))
    })?;
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
    let now = state.now();
    let (unhealthy_before, gone_before) = state.options().health.cutoffs(now);
    let (heartbeat_at_least, heartbeat_before) = match p.state.as_deref() {
        None => (None, None),
        Some(s) => match HealthState::parse(s) {
            Some(HealthState::Healthy) => (Some(unhealthy_before), None),
            Some(HealthState::Unhealthy) => (Some(gone_before), Some(unhealthy_before)),
            Some(HealthState::Gone) => (None, Some(gone_before)),
            None => {
                return Err(RegistryError::BadRequest(format!(
                    "state must be healthy, unhealthy or gone, got '{s}'"
                )));
            }
        },
    };
    let query = InstanceQuery {
        server_name: p.server_name.filter(|s| !s.is_empty()),
        after: p.cursor.filter(|s| !s.is_empty()),
        limit: limit + 1,
        heartbeat_at_least,
        heartbeat_before,
    };
    let mut rows = state.storage().list_instances(&query).await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > page {
        rows.truncate(page);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let policy = state.options().health;
    let instances: Vec<Value> = rows
        .iter()
        .map(|i| view(i, policy.state(i.last_heartbeat_at, now)))
        .collect();
    let mut metadata = json!({"count": instances.len()});
    if let Some(cursor) = next_cursor {
        metadata["nextCursor"] = json!(cursor);
    }
    Ok(Json(json!({"instances": instances, "metadata": metadata})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_states_by_heartbeat_age() {
        let policy = HealthPolicy {
            unhealthy_after: Duration::from_secs(30),
            gone_after: Duration::from_secs(300),
        };
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let cases = [
            (0, HealthState::Healthy, "just beat"),
            (
                30,
                HealthState::Healthy,
                "exactly at the limit is still healthy",
            ),
            (31, HealthState::Unhealthy, "one missed interval"),
            (
                300,
                HealthState::Unhealthy,
                "exactly at gone limit is still unhealthy",
            ),
            (301, HealthState::Gone, "past the longer limit"),
            (
                -5,
                HealthState::Healthy,
                "a heartbeat from a clock ahead counts as fresh",
            ),
        ];
        for (age, want, why) in cases {
            let last = now - time::Duration::seconds(age);
            assert_eq!(policy.state(last, now), want, "{why}");
        }
    }

    #[test]
    fn policy_validation() {
        assert!(HealthPolicy::default().validate().is_ok());
        let inverted = HealthPolicy {
            unhealthy_after: Duration::from_secs(60),
            gone_after: Duration::from_secs(60),
        };
        assert!(inverted.validate().is_err());
        let zero = HealthPolicy {
            unhealthy_after: Duration::ZERO,
            gone_after: Duration::from_secs(60),
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn registration_errors_name_the_field() {
        let bad = json!({"serverName": "nope", "version": "^1", "endpoint": "ftp://x", "labels": {"": "v"}, "x": 1});
        let Err(RegistryError::Invalid(errors)) = registration(&bad) else {
            panic!("expected a validation error");
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.x",
                "$.serverName",
                "$.version",
                "$.endpoint",
                "$.labels[\"\"]"
            ]
        );
    }
}
