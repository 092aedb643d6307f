//! The in-memory caches never show stale data: every acknowledged write, the passing of time, and
//! token revocation (after the TTL) are visible to the next request, on SQLite and PostgreSQL.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mcpulse_registry::storage::{PostgresStorage, SqliteStorage, Storage};
use mcpulse_registry::{AppState, RegistryMetrics, Role, ServiceOptions, TOKEN_TTL, auth, router};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

struct Harness {
    app: axum::Router,
    clock: Arc<Mutex<OffsetDateTime>>,
    storage: Arc<dyn Storage>,
}

impl Harness {
    fn new(storage: Arc<dyn Storage>) -> Self {
        let clock = Arc::new(Mutex::new(
            OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        ));
        let c = clock.clone();
        let state = AppState::new(
            storage.clone(),
            ServiceOptions::default(),
            RegistryMetrics::unregistered(),
        )
        .with_clock(Arc::new(move || *c.lock().unwrap()));
        Self {
            app: router(state),
            clock,
            storage,
        }
    }

    fn advance(&self, by: Duration) {
        *self.clock.lock().unwrap() += by;
    }

    async fn token(&self, role: Role) -> (String, String) {
        let (token, record) = auth::generate(role, None).unwrap();
        self.storage
            .insert_token(&record, OffsetDateTime::now_utc())
            .await
            .unwrap();
        (token, record.id)
    }

    async fn call(
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
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The listed instances as (id, state) in order, from the first page and one server's page.
    async fn listed(&self) -> Vec<(String, String)> {
        let (status, list) = self.call("GET", "/api/v1/instances", None, None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let (_, by_server) = self
            .call("GET", "/api/v1/instances?serverName=io.a%2Fx", None, None)
            .await;
        assert_eq!(
            list["instances"], by_server["instances"],
            "every instance here belongs to io.a/x, so both pages agree"
        );
        list["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_owned(),
                    i["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn pair(id: &str, state: &str) -> (String, String) {
    (id.to_owned(), state.to_owned())
}

async fn lists_follow_writes_and_time(storage: Arc<dyn Storage>) {
    let h = Harness::new(storage);
    let (token, _) = h.token(Role::Admin).await;
    assert_eq!(
        h.listed().await,
        [],
        "nothing registered; this also fills the cache"
    );

    let registration =
        json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://10.0.0.1:8080/mcp"});
    let (status, created) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.listed().await,
        [pair(&id, "healthy")],
        "a registration shows at once"
    );

    // No write, only time: the cached page must not outlive the instance's state.
    h.advance(Duration::seconds(30));
    assert_eq!(
        h.listed().await,
        [pair(&id, "healthy")],
        "exactly at the limit is still healthy"
    );
    h.advance(Duration::milliseconds(1));
    assert_eq!(
        h.listed().await,
        [pair(&id, "unhealthy")],
        "time alone turned it unhealthy"
    );

    let (status, beat) = h
        .call(
            "POST",
            &format!("/api/v1/instances/{id}/heartbeat"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["state"], "healthy");
    let (_, list) = h.call("GET", "/api/v1/instances", None, None).await;
    assert_eq!(
        list["instances"][0]["lastHeartbeatAt"], beat["lastHeartbeatAt"],
        "a heartbeat shows at once"
    );
    assert_eq!(list["instances"][0]["state"], "healthy");

    // Probe results are written by the prober, not through the API.
    let now = *h.clock.lock().unwrap();
    assert!(
        h.storage
            .record_probe(&id, now, false, None, Some("refused"))
            .await
            .unwrap()
    );
    let (_, list) = h.call("GET", "/api/v1/instances", None, None).await;
    assert_eq!(
        list["instances"][0]["probe"]["error"], "refused",
        "a probe shows at once"
    );

    let (status, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/instances/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h.listed().await, [], "a deregistration shows at once");
    for (method, uri) in [
        ("POST", format!("/api/v1/instances/{id}/heartbeat")),
        ("DELETE", format!("/api/v1/instances/{id}")),
    ] {
        let (status, body) = h.call(method, &uri, Some(&token), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "an admin skips the namespace read but still gets 404: {body}"
        );
    }
}

async fn revoked_tokens_stop_working_within_the_ttl(storage: Arc<dyn Storage>) {
    let h = Harness::new(storage);
    let (token, id) = h.token(Role::Admin).await;
    let registration =
        json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://10.0.0.1:8080/mcp"});
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the token works and is now cached"
    );
    assert!(
        h.storage
            .revoke_token(&id, OffsetDateTime::now_utc())
            .await
            .unwrap()
    );

    h.advance(TOKEN_TTL - Duration::milliseconds(1));
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "inside the TTL the cached check stands, as documented"
    );

    h.advance(Duration::milliseconds(1));
    let (status, body) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refused once the TTL is over: {body}"
    );
}

#[tokio::test]
async fn sqlite_caches_follow_writes_time_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(dir.path()).await.unwrap());
    lists_follow_writes_and_time(storage.clone()).await;
    revoked_tokens_stop_working_within_the_ttl(storage).await;
}

#[tokio::test]
async fn postgres_caches_follow_writes_time_and_revocation() {
    let Ok(url) = std::env::var("MCPULSE_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: set MCPULSE_TEST_DATABASE_URL=postgres://... to run against PostgreSQL"
        );
        return;
    };
    let storage: Arc<dyn Storage> = Arc::new(
        PostgresStorage::connect(&fresh_database(&url).await)
            .await
            .unwrap(),
    );
    lists_follow_writes_and_time(storage.clone()).await;
    revoked_tokens_stop_working_within_the_ttl(storage).await;
}

/// Two replicas on one PostgreSQL database: a write through one is seen by the other's next list.
#[tokio::test]
async fn postgres_replicas_never_serve_each_other_stale_pages() {
    let Ok(url) = std::env::var("MCPULSE_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: set MCPULSE_TEST_DATABASE_URL=postgres://... to run against PostgreSQL"
        );
        return;
    };
    let db = fresh_database(&url).await;
    let a = Harness::new(Arc::new(PostgresStorage::connect(&db).await.unwrap()));
    let b = Harness::new(Arc::new(PostgresStorage::connect(&db).await.unwrap()));
    let (token, _) = a.token(Role::Admin).await;
    assert_eq!(b.listed().await, [], "fills replica b's cache");
    let registration =
        json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://10.0.0.1:8080/mcp"});
    let (status, created) = a
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        b.listed().await,
        [pair(id, "healthy")],
        "replica b sees replica a's write"
    );
}

/// Creates an empty database next to the one in `url` so every run starts clean.
async fn fresh_database(url: &str) -> String {
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
