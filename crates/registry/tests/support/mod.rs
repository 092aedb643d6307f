//! Set-up shared by the registry's integration tests: databases to test on and a router harness.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mcpulse_registry::storage::{SqliteStorage, Storage};
use mcpulse_registry::{AppState, RegistryMetrics, Role, ServiceOptions, auth, router};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

/// A SQLite store in a new temporary directory; the directory lives as long as the returned guard.
pub async fn sqlite() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path()).await.unwrap();
    (dir, storage)
}

/// The PostgreSQL server to test against, from MCPULSE_TEST_DATABASE_URL (`scripts/postgres.sh start`
/// exports it). `None` means skip: the PostgreSQL runs are optional, so a missing server is not a failure.
pub fn postgres_server() -> Option<String> {
    let url = std::env::var("MCPULSE_TEST_DATABASE_URL").ok();
    if url.is_none() {
        eprintln!(
            "skipped: set MCPULSE_TEST_DATABASE_URL=postgres://... to run against PostgreSQL"
        );
    }
    url
}

/// Creates an empty database next to the one in `url` so every run starts clean; returns its URL.
pub async fn fresh_database(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!("mcpulse_test_{}", hex::encode(bytes));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// A replica's state over `storage`, with its own metrics registry so a test can read what it counted.
pub fn app_state(storage: Arc<dyn Storage>, options: ServiceOptions) -> (AppState, Registry) {
    let mut registry = Registry::default();
    let metrics = RegistryMetrics::register(&mut registry);
    (AppState::new(storage, options, metrics), registry)
}

/// Sends `request` through `app` and returns the status and the body: JSON, a string when the body is
/// not JSON, `Null` when it is empty. Asserts that every error response is JSON, as the contract says.
pub async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            content_type.unwrap(),
            "application/json",
            "errors are JSON per the contract"
        );
    }
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))),
    )
}

/// The router over a store, with a clock the test sets, called in process through `oneshot`.
pub struct Harness {
    pub app: axum::Router,
    pub storage: Arc<dyn Storage>,
    /// What the router's metrics were registered in.
    pub registry: Registry,
    clock: Arc<Mutex<OffsetDateTime>>,
    /// Keeps a SQLite store's directory until the harness is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// A harness over `storage` whose clock starts at 2025-06-15T15:06:40Z.
    pub fn new(storage: Arc<dyn Storage>, options: ServiceOptions) -> Self {
        let clock = Arc::new(Mutex::new(
            OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        ));
        let c = clock.clone();
        let (state, registry) = app_state(storage.clone(), options);
        let state = state.with_clock(Arc::new(move || *c.lock().unwrap()));
        Self {
            app: router(state),
            storage,
            registry,
            clock,
            _dir: None,
        }
    }

    /// A harness over a new SQLite store with the default options.
    pub async fn sqlite() -> Self {
        Self::sqlite_with(ServiceOptions::default()).await
    }

    /// A harness over a new SQLite store.
    pub async fn sqlite_with(options: ServiceOptions) -> Self {
        let (dir, storage) = sqlite().await;
        Self {
            _dir: Some(dir),
            ..Self::new(Arc::new(storage), options)
        }
    }

    /// The time the router sees.
    pub fn now(&self) -> OffsetDateTime {
        *self.clock.lock().unwrap()
    }

    pub fn advance(&self, by: Duration) {
        *self.clock.lock().unwrap() += by;
    }

    /// Stores a new token and returns it.
    pub async fn token(&self, role: Role, namespace: Option<&str>) -> String {
        self.token_and_id(role, namespace).await.0
    }

    /// Stores a new token and returns it with its id, which revocation takes.
    pub async fn token_and_id(&self, role: Role, namespace: Option<&str>) -> (String, String) {
        let (token, record) = auth::generate(role, namespace.map(str::to_owned)).unwrap();
        self.storage
            .insert_token(&record, OffsetDateTime::now_utc())
            .await
            .unwrap();
        (token, record.id)
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        send(&self.app, request).await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// Sends `body` as JSON, with `token` as the bearer token when there is one.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn heartbeat(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let uri = format!("/api/v1/instances/{id}/heartbeat");
        self.call("POST", &uri, Some(token), None).await
    }

    pub async fn deregister(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let uri = format!("/api/v1/instances/{id}");
        self.call("DELETE", &uri, Some(token), None).await
    }

    pub async fn publish(&self, token: &str, name: &str, version: &str) -> (StatusCode, Value) {
        let doc = json!({"name": name, "description": "A server", "version": version});
        self.call("POST", "/v0.1/publish", Some(token), Some(doc))
            .await
    }
}
