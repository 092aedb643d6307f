//! Live instances: agents register where a server runs, heartbeat, and deregister.
//!
//! An instance may name a server that is not (yet) in the catalogue: agents often start before
//! their server is published, and refusing them would lose the instance until the agent retried.
//! Registration succeeds and answers `"catalogued": false` so the gap is visible to the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime, Time};

use crate::cache::PageKey;
use crate::catalogue::rfc3339;
use crate::error::{FieldError, RegistryError};
use crate::state::{AppState, check_namespace, json_body};
use crate::storage::{InstanceQuery, InstanceRecord, ProbeRecord, VersionSelector};
use crate::validate;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY: usize = 63;
const MAX_LABEL_VALUE: usize = 256;
const MAX_ENDPOINT: usize = 2048;

/// When an instance counts as unhealthy or gone.
///
/// The rule, applied in this order:
/// 1. **gone** when its last heartbeat is older than `gone_after` (the agent is away);
/// 2. **unhealthy** when its last heartbeat is older than `unhealthy_after`, or when the last
///    `probe_failures` active probes in a row failed (the server stopped answering MCP even though
///    its agent still beats);
/// 3. **healthy** otherwise. An instance never probed yet is judged by heartbeats alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    pub unhealthy_after: Duration,
    pub gone_after: Duration,
    /// Consecutive failed probes that make an instance unhealthy.
    pub probe_failures: u32,
}

impl Default for HealthPolicy {
    /// Three missed beats at a 10 s interval make an instance unhealthy; five minutes make it gone;
    /// three failed probes in a row make it unhealthy.
    fn default() -> Self {
        Self {
            unhealthy_after: Duration::from_secs(30),
            gone_after: Duration::from_secs(300),
            probe_failures: 3,
        }
    }
}

/// A [`HealthPolicy`] resolved at one instant, in the form storage filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Heartbeats before this are unhealthy.
    pub unhealthy_before: OffsetDateTime,
    /// Heartbeats before this are gone.
    pub gone_before: OffsetDateTime,
    pub probe_failures: u32,
}

impl Default for Cutoffs {
    fn default() -> Self {
        Self {
            unhealthy_before: OffsetDateTime::UNIX_EPOCH,
            gone_before: OffsetDateTime::UNIX_EPOCH,
            probe_failures: u32::MAX,
        }
    }
}

/// An instance's health, derived from its heartbeats and probes by [`HealthPolicy`].
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
        if self.probe_failures == 0 {
            return Err(RegistryError::Config(
                "probe failure threshold must be at least 1 (failed probes in a row before an instance is unhealthy)".to_owned(),
            ));
        }
        Ok(())
    }

    /// The policy's instants as of `now`.
    pub fn cutoffs(&self, now: OffsetDateTime) -> Cutoffs {
        Cutoffs {
            unhealthy_before: now - self.unhealthy_after,
            gone_before: now - self.gone_after,
            probe_failures: self.probe_failures,
        }
    }

    /// The first instant from which an instance that last beat at `heartbeat` may be in another
    /// state than at `at` by the passing of time alone; `None` once it is gone for good.
    /// Conservative by a hair: at the returned instant itself the state has not changed yet.
    pub fn next_change(
        &self,
        heartbeat: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        // Past the end of representable time nothing changes; `checked_add` keeps that from panicking.
        let unhealthy =
            heartbeat.checked_add(time::Duration::try_from(self.unhealthy_after).ok()?)?;
        if at <= unhealthy {
            return Some(unhealthy);
        }
        let gone = heartbeat.checked_add(time::Duration::try_from(self.gone_after).ok()?)?;
        (at <= gone).then_some(gone)
    }

    pub fn state(&self, instance: &InstanceRecord, now: OffsetDateTime) -> HealthState {
        let cutoffs = self.cutoffs(now);
        let failures = instance
            .probe
            .as_ref()
            .map_or(0, |p| p.consecutive_failures);
        if instance.last_heartbeat_at < cutoffs.gone_before {
            HealthState::Gone
        } else if instance.last_heartbeat_at < cutoffs.unhealthy_before
            || failures >= self.probe_failures
        {
            HealthState::Unhealthy
        } else {
            HealthState::Healthy
        }
    }
}

fn probe_view(probe: Option<&ProbeRecord>) -> Value {
    probe.map_or(Value::Null, |p| {
        json!({
            "at": rfc3339(p.at),
            "ok": p.ok,
            "latencyMs": p.latency.map(|l| l.as_secs_f64() * 1000.0),
            "error": p.error,
            "consecutiveFailures": p.consecutive_failures,
        })
    })
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
        "probe": probe_view(instance.probe.as_ref()),
    })
}

fn present(state: &AppState, instance: &InstanceRecord) -> Value {
    view(
        instance,
        state.options().health.state(instance, state.now()),
    )
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
        probe: None,
    };
    let catalogued = state
        .storage()
        .server_version(&instance.server_name, VersionSelector::Latest)
        .await?
        .is_some();
    state.storage().register_instance(&instance).await?;
    let mut body = view(&instance, HealthState::Healthy);
    body["catalogued"] = json!(catalogued);
    Ok((StatusCode::CREATED, Json(body)))
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

/// Checks the caller may write the instance, so a publisher cannot touch another namespace's.
/// Only a namespace-scoped token needs the instance read first; a missing instance is then
/// reported by the write itself.
async fn writable(state: &AppState, headers: &HeaderMap, id: &str) -> Result<(), RegistryError> {
    let principal = state.authorize_writer(headers).await?;
    if principal.may_write_all() {
        return Ok(());
    }
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
    Ok(Json(present(&state, &instance)))
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
) -> Result<Response, RegistryError> {
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
    let health = match p.state.as_deref() {
        None => None,
        Some(s) => Some(HealthState::parse(s).ok_or_else(|| {
            RegistryError::BadRequest(format!(
                "state must be healthy, unhealthy or gone, got '{s}'"
            ))
        })?),
    };
    let key = PageKey {
        server_name: p.server_name.filter(|s| !s.is_empty()),
        cursor: p.cursor.filter(|s| !s.is_empty()),
        limit,
    };
    // The version is read before the rows, so a page stored under it is at least that new.
    let version = match health {
        Some(_) => None,
        None => state.storage().data_version().await?,
    };
    if let Some(version) = &version
        && let Some(body) = state.pages().get(&key, version, now)
    {
        return Ok(json_response(body));
    }
    let policy = state.options().health;
    let query = InstanceQuery {
        server_name: key.server_name.clone(),
        after: key.cursor.clone(),
        limit: limit + 1,
        health: health.map(|h| (h, policy.cutoffs(now))),
    };
    let mut rows = state.storage().list_instances(&query).await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > page {
        rows.truncate(page);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let instances: Vec<Value> = rows.iter().map(|i| view(i, policy.state(i, now))).collect();
    let mut metadata = json!({"count": instances.len()});
    if let Some(cursor) = next_cursor {
        metadata["nextCursor"] = json!(cursor);
    }
    let body = Bytes::from(
        serde_json::to_vec(&json!({"instances": instances, "metadata": metadata})).map_err(
            |e| RegistryError::Corrupt(format!("cannot serialise an instance page: {e}")),
        )?,
    );
    if let Some(version) = version {
        let valid_until = rows
            .iter()
            .filter_map(|i| policy.next_change(i.last_heartbeat_at, now))
            .min()
            .unwrap_or(OffsetDateTime::new_utc(Date::MAX, Time::MAX));
        state
            .pages()
            .insert(key, version, now, valid_until, body.clone());
    }
    Ok(json_response(body))
}

/// A 200 with a JSON body serialised earlier, as `Json` would have sent it.
fn json_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_states_by_heartbeat_age_and_probes() {
        let policy = HealthPolicy {
            unhealthy_after: Duration::from_secs(30),
            gone_after: Duration::from_secs(300),
            probe_failures: 2,
        };
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let probe = |failures| {
            Some(ProbeRecord {
                at: now,
                ok: failures == 0,
                latency: None,
                error: None,
                consecutive_failures: failures,
            })
        };
        let cases = [
            (0, None, HealthState::Healthy, "just beat, never probed"),
            (
                30,
                None,
                HealthState::Healthy,
                "exactly at the limit is still healthy",
            ),
            (31, None, HealthState::Unhealthy, "one missed interval"),
            (
                300,
                None,
                HealthState::Unhealthy,
                "exactly at gone limit is still unhealthy",
            ),
            (301, None, HealthState::Gone, "past the longer limit"),
            (
                -5,
                None,
                HealthState::Healthy,
                "a heartbeat from a clock ahead counts as fresh",
            ),
            (
                0,
                probe(1),
                HealthState::Healthy,
                "one failed probe is tolerated",
            ),
            (
                0,
                probe(2),
                HealthState::Unhealthy,
                "failures reach the threshold",
            ),
            (
                31,
                probe(0),
                HealthState::Unhealthy,
                "a good probe does not excuse a silent agent",
            ),
            (
                301,
                probe(5),
                HealthState::Gone,
                "gone wins over probe failures",
            ),
        ];
        for (age, probe, want, why) in cases {
            let instance = InstanceRecord {
                id: "i".into(),
                server_name: "io.a/x".into(),
                version: "1".into(),
                endpoint: "http://h/".into(),
                labels: BTreeMap::new(),
                registered_at: now,
                last_heartbeat_at: now - time::Duration::seconds(age),
                probe,
            };
            assert_eq!(policy.state(&instance, now), want, "{why}");
        }
    }

    #[test]
    fn next_state_change_by_time_alone() {
        let policy = HealthPolicy::default();
        let beat = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let at = |s: i64| beat + time::Duration::seconds(s);
        let cases = [
            (0, Some(at(30)), "healthy until the unhealthy limit"),
            (
                30,
                Some(at(30)),
                "at the limit itself it may change the next instant",
            ),
            (31, Some(at(300)), "unhealthy until the gone limit"),
            (300, Some(at(300)), "at the gone limit itself"),
            (301, None, "gone stays gone as time passes"),
        ];
        for (elapsed, want, why) in cases {
            assert_eq!(policy.next_change(beat, at(elapsed)), want, "{why}");
        }
        for (elapsed, want, why) in cases {
            let Some(change) = want else { continue };
            let instance = InstanceRecord {
                id: "i".into(),
                server_name: "io.a/x".into(),
                version: "1".into(),
                endpoint: "http://h/".into(),
                labels: BTreeMap::new(),
                registered_at: beat,
                last_heartbeat_at: beat,
                probe: None,
            };
            let just_before = change - time::Duration::nanoseconds(1);
            assert_eq!(
                policy.state(&instance, at(elapsed).max(just_before)),
                policy.state(&instance, at(elapsed)),
                "{why}: no change before the returned instant"
            );
        }
        let end = OffsetDateTime::new_utc(Date::MAX, Time::MAX);
        assert_eq!(
            policy.next_change(end, end),
            None,
            "no panic past representable time"
        );
    }

    #[test]
    fn policy_validation() {
        assert!(HealthPolicy::default().validate().is_ok());
        let cases = [
            (60, 60, 3, "gone-after must exceed unhealthy-after"),
            (0, 60, 3, "unhealthy-after must be positive"),
            (
                30,
                60,
                0,
                "a zero failure threshold would mark every probed instance unhealthy",
            ),
        ];
        for (unhealthy, gone, failures, why) in cases {
            let policy = HealthPolicy {
                unhealthy_after: Duration::from_secs(unhealthy),
                gone_after: Duration::from_secs(gone),
                probe_failures: failures,
            };
            assert!(policy.validate().is_err(), "{why}");
        }
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
