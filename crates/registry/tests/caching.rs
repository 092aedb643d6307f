//! The in-memory caches never show stale data: every acknowledged write, the passing of time, and
//! token revocation (after the TTL) are visible to the next request, on SQLite and PostgreSQL.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use mcpulse_registry::storage::{PostgresStorage, Storage};
use mcpulse_registry::{Role, ServiceOptions, TOKEN_TTL};
use serde_json::{Value, json};
use support::{Harness, fresh_database, postgres_server};
use time::{Duration, OffsetDateTime};

fn harness(storage: Arc<dyn Storage>) -> Harness {
    Harness::new(storage, ServiceOptions::default())
}

/// Registers one instance of io.a/x, the only server these tests list.
async fn register(h: &Harness, token: &str) -> (StatusCode, Value) {
    let registration =
        json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://10.0.0.1:8080/mcp"});
    h.call("POST", "/api/v1/instances", Some(token), Some(registration))
        .await
}

/// The listed instances as (id, state) in order, from the first page and one server's page.
async fn listed(h: &Harness) -> Vec<(String, String)> {
    let (status, list) = h.get("/api/v1/instances").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let (_, by_server) = h.get("/api/v1/instances?serverName=io.a%2Fx").await;
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

fn pair(id: &str, state: &str) -> (String, String) {
    (id.to_owned(), state.to_owned())
}

async fn lists_follow_writes_and_time(storage: Arc<dyn Storage>) {
    let h = harness(storage);
    let token = h.token(Role::Admin, None).await;
    assert_eq!(
        listed(&h).await,
        [],
        "nothing registered; this also fills the cache"
    );

    let (status, created) = register(&h, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        listed(&h).await,
        [pair(&id, "healthy")],
        "a registration shows at once"
    );

    // No write, only time: the cached page must not outlive the instance's state.
    for (by, state, why) in [
        (
            Duration::seconds(30),
            "healthy",
            "exactly at the limit is still healthy",
        ),
        (
            Duration::milliseconds(1),
            "unhealthy",
            "time alone turned it unhealthy",
        ),
    ] {
        h.advance(by);
        assert_eq!(listed(&h).await, [pair(&id, state)], "{why}");
    }

    let (status, beat) = h.heartbeat(&token, &id).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["state"], "healthy");
    let (_, list) = h.get("/api/v1/instances").await;
    assert_eq!(
        list["instances"][0]["lastHeartbeatAt"], beat["lastHeartbeatAt"],
        "a heartbeat shows at once"
    );
    assert_eq!(list["instances"][0]["state"], "healthy");

    // Probe results are written by the prober, not through the API.
    assert!(
        h.storage
            .record_probe(&id, h.now(), false, None, Some("refused"))
            .await
            .unwrap()
    );
    let (_, list) = h.get("/api/v1/instances").await;
    assert_eq!(
        list["instances"][0]["probe"]["error"], "refused",
        "a probe shows at once"
    );

    let (status, _) = h.deregister(&token, &id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(listed(&h).await, [], "a deregistration shows at once");
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
    let h = harness(storage);
    let (token, id) = h.token_and_id(Role::Admin, None).await;
    let (status, body) = register(&h, &token).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the token works and is now cached: {body}"
    );
    assert!(
        h.storage
            .revoke_token(&id, OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    for (by, want, why) in [
        (
            TOKEN_TTL - Duration::milliseconds(1),
            StatusCode::CREATED,
            "inside the TTL the cached check stands, as documented",
        ),
        (
            Duration::milliseconds(1),
            StatusCode::UNAUTHORIZED,
            "refused once the TTL is over",
        ),
    ] {
        h.advance(by);
        let (status, body) = register(&h, &token).await;
        assert_eq!(status, want, "{why}: {body}");
    }
}

/// The single-replica scenarios one after the other on one store, as each back end's test runs them.
async fn both_scenarios(storage: Arc<dyn Storage>) {
    lists_follow_writes_and_time(storage.clone()).await;
    revoked_tokens_stop_working_within_the_ttl(storage).await;
}

#[tokio::test]
async fn sqlite_caches_follow_writes_time_and_revocation() {
    let (_dir, storage) = support::sqlite().await;
    both_scenarios(Arc::new(storage)).await;
}

#[tokio::test]
async fn postgres_caches_follow_writes_time_and_revocation() {
    let Some(url) = postgres_server() else {
        return;
    };
    let db = fresh_database(&url).await;
    both_scenarios(Arc::new(PostgresStorage::connect(&db).await.unwrap())).await;
}

/// Two replicas on one PostgreSQL database: a write through one is seen by the other's next list.
#[tokio::test]
async fn postgres_replicas_never_serve_each_other_stale_pages() {
    let Some(url) = postgres_server() else {
        return;
    };
    let db = fresh_database(&url).await;
    let a = harness(Arc::new(PostgresStorage::connect(&db).await.unwrap()));
    let b = harness(Arc::new(PostgresStorage::connect(&db).await.unwrap()));
    let token = a.token(Role::Admin, None).await;
    assert_eq!(listed(&b).await, [], "fills replica b's cache");
    let (status, created) = register(&a, &token).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        listed(&b).await,
        [pair(id, "healthy")],
        "replica b sees replica a's write"
    );
}
