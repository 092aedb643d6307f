//! In-process tests of every endpoint and error path, through the router with `oneshot`.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpulse_registry::{Role, ServiceOptions};
use serde_json::{Value, json};
use support::Harness;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

fn official(v: &Value) -> &Value {
    &v["_meta"]["io.modelcontextprotocol.registry/official"]
}

fn assert_problem(body: &Value, status: StatusCode) {
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"], body["detail"]);
    assert_eq!(body["title"], status.canonical_reason().unwrap());
}

#[tokio::test]
async fn publish_and_read_back() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, Some("io.example/*")).await;
    let (status, body) = h.publish(&token, "io.example/weather", "1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["name"], "io.example/weather");
    let meta = official(&body);
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["isLatest"], true);
    assert_eq!(meta["publishedAt"], "2025-06-15T15:06:40Z");
    assert_eq!(meta["updatedAt"], meta["publishedAt"]);
    assert!(
        meta.get("statusMessage").is_none(),
        "absent, not null, when there is none"
    );

    h.advance(Duration::seconds(1));
    assert_eq!(
        h.publish(&token, "io.example/weather", "1.1.0").await.0,
        StatusCode::OK
    );
    let (status, body) = h
        .get("/v0.1/servers/io.example%2Fweather/versions/latest")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["server"]["version"], "1.1.0");
    let (_, old) = h
        .get("/v0.1/servers/io.example%2Fweather/versions/1.0.0")
        .await;
    assert_eq!(
        official(&old)["isLatest"],
        false,
        "publishing 1.1.0 moved isLatest"
    );

    let (status, body) = h.get("/v0.1/servers/io.example%2Fweather/versions").await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&str> = body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);

    let (status, body) = h.get("/v0/servers?version=latest").await;
    assert_eq!(status, StatusCode::OK, "/v0 is an alias of /v0.1");
    assert_eq!(body["metadata"]["count"], 1);
    assert!(body["metadata"].get("nextCursor").is_none());
}

#[tokio::test]
async fn list_pages_and_filters() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Admin, None).await;
    for (i, name) in ["io.a/one", "io.a/two", "com.b/three"].iter().enumerate() {
        h.advance(Duration::seconds(i64::try_from(i).unwrap() + 1));
        assert_eq!(h.publish(&token, name, "1.0.0").await.0, StatusCode::OK);
    }
    let (_, first) = h.get("/v0.1/servers?limit=2").await;
    assert_eq!(first["metadata"]["count"], 2);
    let cursor = first["metadata"]["nextCursor"].as_str().unwrap().to_owned();
    let (_, second) = h
        .get(&format!("/v0.1/servers?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["metadata"]["count"], 1);
    assert!(
        second["metadata"].get("nextCursor").is_none(),
        "last page has no cursor"
    );
    let names: Vec<&str> = first["servers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["servers"].as_array().unwrap())
        .map(|s| s["server"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["com.b/three", "io.a/one", "io.a/two"]);

    let (_, found) = h.get("/v0.1/servers?search=TW").await;
    assert_eq!(found["servers"][0]["server"]["name"], "io.a/two");
    assert_eq!(found["metadata"]["count"], 1);
    let (_, recent) = h
        .get("/v0.1/servers?updated_since=2025-06-15T15:06:43Z")
        .await;
    assert_eq!(
        recent["metadata"]["count"], 1,
        "published at :41, :43, :46; strictly after :43"
    );
    let (_, recent) = h
        .get("/v0.1/servers?updated_since=2025-06-15T15:06:42.5%2B00:00")
        .await;
    assert_eq!(
        recent["metadata"]["count"], 2,
        "offsets and fractions are accepted"
    );
    let (_, none) = h.get("/v0.1/servers?version=9.9.9").await;
    assert_eq!(none["metadata"]["count"], 0);
}

#[tokio::test]
async fn bad_queries_are_400_with_reasons() {
    let h = Harness::sqlite().await;
    let cases = [
        ("/v0.1/servers?limit=0", "limit"),
        ("/v0.1/servers?limit=101", "limit"),
        ("/v0.1/servers?limit=abc", "limit"),
        ("/v0.1/servers?updated_since=yesterday", "updated_since"),
        ("/v0.1/servers?include_deleted=yes", "include_deleted"),
        (
            "/v0.1/servers/io.a%2Fx/versions?include_deleted=1",
            "include_deleted",
        ),
        ("/api/v1/instances?state=sleepy", "state"),
        ("/api/v1/instances?limit=1001", "limit"),
    ];
    for (uri, mentions) in cases {
        let (status, body) = h.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_problem(&body, StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains(mentions),
            "{uri}: {body}"
        );
    }
    let (status, body) = h
        .get(&format!("/v0.1/servers?search={}", "a".repeat(201)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn not_found_and_not_implemented() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Admin, None).await;
    let cases = [
        (
            "GET",
            "/v0.1/servers/io.a%2Fmissing/versions",
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/v0.1/servers/io.a%2Fmissing/versions/1.0.0",
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/v0.1/servers/io.a%2Fmissing/versions/latest",
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/nowhere", StatusCode::NOT_FOUND),
        (
            "PUT",
            "/v0.1/servers/io.a%2Fx/versions/1.0.0",
            StatusCode::NOT_IMPLEMENTED,
        ),
        (
            "DELETE",
            "/v0.1/servers/io.a%2Fx/versions/1.0.0",
            StatusCode::NOT_IMPLEMENTED,
        ),
    ];
    for (method, uri, want) in cases {
        let (status, body) = h.call(method, uri, Some(&token), None).await;
        assert_eq!(status, want, "{method} {uri}");
        assert_problem(&body, want);
    }
}

#[tokio::test]
async fn publish_auth_errors() {
    let h = Harness::sqlite().await;
    let reader = h.token(Role::Reader, None).await;
    let scoped = h.token(Role::Publisher, Some("io.example/*")).await;
    let (revoked, revoked_id) = h.token_and_id(Role::Admin, None).await;
    h.storage
        .revoke_token(&revoked_id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let forged = format!("mcpr_{}", "0".repeat(64));
    let doc = json!({"name": "com.other/x", "description": "d", "version": "1.0.0"});
    let cases: [(Option<&str>, StatusCode, &str); 6] = [
        (None, StatusCode::UNAUTHORIZED, "no token"),
        (Some("garbage"), StatusCode::UNAUTHORIZED, "malformed token"),
        (Some(&forged), StatusCode::UNAUTHORIZED, "unknown token"),
        (Some(&revoked), StatusCode::UNAUTHORIZED, "revoked token"),
        (Some(&reader), StatusCode::FORBIDDEN, "readers cannot write"),
        (
            Some(&scoped),
            StatusCode::FORBIDDEN,
            "outside the publisher's namespace",
        ),
    ];
    for (token, want, why) in cases {
        let (status, body) = h
            .call("POST", "/v0.1/publish", token, Some(doc.clone()))
            .await;
        assert_eq!(status, want, "{why}: {body}");
        assert_problem(&body, want);
    }
    let (_, list) = h.get("/v0.1/servers").await;
    assert_eq!(list["metadata"]["count"], 0, "nothing was written");
}

#[tokio::test]
async fn publish_body_errors() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, None).await;
    let (status, body) = h
        .call(
            "POST",
            "/v0.1/publish",
            Some(&token),
            Some(json!({
                "name": "bad", "description": "d", "version": "^1.2",
                "remotes": [{"type": "sse", "url": "not a url"}], "surprise": true
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(&body, StatusCode::BAD_REQUEST);
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["$.surprise", "$.name", "$.version", "$.remotes[0].url"]
    );
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["message"].as_str().unwrap().is_empty())
    );

    let raw = |content_type: &str, body: Vec<u8>| {
        Request::post("/v0.1/publish")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = h.send(raw("application/json", b"{not json".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "$");
    let (status, _) = h.send(raw("text/plain", b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024));
    let (status, body) = h.send(raw("application/json", big.into_bytes())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(&body, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn versions_are_immutable() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, None).await;
    assert_eq!(h.publish(&token, "io.a/x", "1.0.0").await.0, StatusCode::OK);
    let (status, body) = h.publish(&token, "io.a/x", "1.0.0").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_problem(&body, StatusCode::CONFLICT);
}

#[tokio::test]
async fn status_updates() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, Some("io.a/*")).await;
    let other = h.token(Role::Publisher, Some("com.b/*")).await;
    h.publish(&token, "io.a/x", "1.0.0").await;
    h.publish(&token, "io.a/x", "2.0.0").await;
    h.advance(Duration::seconds(5));
    let uri = "/v0.1/servers/io.a%2Fx/versions/1.0.0/status";
    let (status, body) = h
        .call(
            "PATCH",
            uri,
            Some(&token),
            Some(json!({"status": "deprecated", "statusMessage": "use 2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(official(&body)["status"], "deprecated");
    assert_eq!(official(&body)["statusMessage"], "use 2");
    assert_eq!(official(&body)["statusChangedAt"], "2025-06-15T15:06:45Z");

    let bad = [
        (json!({"status": "gone"}), "$.status"),
        (json!({}), "$.status"),
        (
            json!({"status": "active", "statusMessage": "m".repeat(501)}),
            "$.statusMessage",
        ),
        (json!({"status": "active", "reason": "x"}), "$.reason"),
    ];
    for (doc, path) in bad {
        let (status, body) = h.call("PATCH", uri, Some(&token), Some(doc)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["path"], path);
    }
    let refused = [
        (
            uri,
            Some(&other),
            StatusCode::FORBIDDEN,
            "another namespace",
        ),
        (uri, None, StatusCode::UNAUTHORIZED, "no token"),
        (
            "/v0.1/servers/io.a%2Fx/versions/9.0.0/status",
            Some(&token),
            StatusCode::NOT_FOUND,
            "no such version",
        ),
    ];
    for (uri, token, want, why) in refused {
        let (status, _) = h
            .call(
                "PATCH",
                uri,
                token.map(String::as_str),
                Some(json!({"status": "active"})),
            )
            .await;
        assert_eq!(status, want, "{why}");
    }

    let (status, body) = h
        .call(
            "PATCH",
            "/v0.1/servers/io.a%2Fx/status",
            Some(&token),
            Some(json!({"status": "deleted"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["updatedCount"], 2);
    assert_eq!(
        h.get("/v0.1/servers/io.a%2Fx/versions/2.0.0").await.0,
        StatusCode::NOT_FOUND,
        "deleted is hidden"
    );
    let (status, body) = h
        .get("/v0.1/servers/io.a%2Fx/versions/2.0.0?include_deleted=true")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(official(&body)["status"], "deleted");
    assert_eq!(h.get("/v0.1/servers").await.1["metadata"]["count"], 0);
    assert_eq!(
        h.get("/v0.1/servers?include_deleted=true").await.1["metadata"]["count"],
        2
    );
    let (status, _) = h
        .call(
            "PATCH",
            "/v0.1/servers/io.a%2Fnone/status",
            Some(&token),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn instance_lifecycle_and_health() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, Some("io.a/*")).await;
    let registration = json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://10.1.2.3:8080/mcp", "labels": {"zone": "a"}});
    let (status, created) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(registration.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "healthy");
    assert_eq!(created["labels"]["zone"], "a");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, other) = h.call("POST", "/api/v1/instances", Some(&token), Some(json!({"serverName": "io.a/y", "version": "1", "endpoint": "https://y.example/mcp"}))).await;
    let other_id = other["id"].as_str().unwrap().to_owned();

    // Default policy: unhealthy after 30 s without a heartbeat, gone after 300 s.
    h.advance(Duration::seconds(31));
    assert_eq!(
        h.get(&format!("/api/v1/instances/{id}")).await.1["state"],
        "unhealthy"
    );
    let (status, beat) = h.heartbeat(&token, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(beat["state"], "healthy");
    h.advance(Duration::seconds(270));
    let (_, list) = h.get("/api/v1/instances").await;
    let states: Vec<(&str, &str)> = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["serverName"].as_str().unwrap(),
                i["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        states.contains(&("io.a/x", "unhealthy")) && states.contains(&("io.a/y", "gone")),
        "{states:?}"
    );
    let (_, by_name) = h.get("/api/v1/instances?serverName=io.a%2Fy").await;
    assert_eq!(by_name["instances"][0]["id"], other_id.as_str());
    assert_eq!(by_name["metadata"]["count"], 1);
    let (_, gone) = h.get("/api/v1/instances?state=gone").await;
    assert_eq!(gone["metadata"]["count"], 1);
    assert_eq!(gone["instances"][0]["id"], other_id.as_str());
    let (_, page) = h.get("/api/v1/instances?limit=1").await;
    assert!(page["metadata"]["nextCursor"].is_string());

    let (status, _) = h.deregister(&token, &id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (method, uri) in [
        ("GET", format!("/api/v1/instances/{id}")),
        ("DELETE", format!("/api/v1/instances/{id}")),
        ("POST", format!("/api/v1/instances/{id}/heartbeat")),
    ] {
        let (status, body) = h.call(method, &uri, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_problem(&body, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn instance_errors() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, Some("io.a/*")).await;
    let outsider = h.token(Role::Publisher, Some("com.b/*")).await;
    let reader = h.token(Role::Reader, None).await;
    let good = json!({"serverName": "io.a/x", "version": "1.0.0", "endpoint": "http://h:1/mcp"});
    let (_, created) = h
        .call(
            "POST",
            "/api/v1/instances",
            Some(&token),
            Some(good.clone()),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let cases = [
        (
            "POST",
            "/api/v1/instances".to_owned(),
            None,
            Some(good.clone()),
            StatusCode::UNAUTHORIZED,
            "register without token",
        ),
        (
            "POST",
            "/api/v1/instances".to_owned(),
            Some(&reader),
            Some(good.clone()),
            StatusCode::FORBIDDEN,
            "reader registers",
        ),
        (
            "POST",
            "/api/v1/instances".to_owned(),
            Some(&outsider),
            Some(good.clone()),
            StatusCode::FORBIDDEN,
            "other namespace",
        ),
        (
            "POST",
            "/api/v1/instances".to_owned(),
            Some(&token),
            Some(json!({"serverName": "io.a/x", "version": "1", "endpoint": "file:///etc"})),
            StatusCode::BAD_REQUEST,
            "endpoint scheme",
        ),
        (
            "POST",
            "/api/v1/instances".to_owned(),
            Some(&token),
            Some(
                json!({"serverName": "io.a/x", "version": "1", "endpoint": "http://h/", "labels": {"k": 1}}),
            ),
            StatusCode::BAD_REQUEST,
            "label value type",
        ),
        (
            "POST",
            "/api/v1/instances".to_owned(),
            Some(&token),
            Some(json!([1])),
            StatusCode::BAD_REQUEST,
            "not an object",
        ),
        (
            "POST",
            format!("/api/v1/instances/{id}/heartbeat"),
            Some(&outsider),
            None,
            StatusCode::FORBIDDEN,
            "heartbeat another namespace",
        ),
        (
            "DELETE",
            format!("/api/v1/instances/{id}"),
            Some(&outsider),
            None,
            StatusCode::FORBIDDEN,
            "deregister another namespace",
        ),
        (
            "DELETE",
            format!("/api/v1/instances/{id}"),
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "deregister without token",
        ),
    ];
    for (method, uri, token, body, want, why) in cases {
        let (status, body) = h.call(method, &uri, token.map(String::as_str), body).await;
        assert_eq!(status, want, "{why}: {body}");
        assert_problem(&body, want);
    }
    assert_eq!(
        h.get(&format!("/api/v1/instances/{id}")).await.0,
        StatusCode::OK,
        "the failed calls left it in place"
    );
}

#[tokio::test]
async fn reads_can_require_a_token() {
    let h = Harness::sqlite_with(ServiceOptions {
        anonymous_reads: false,
        ..ServiceOptions::default()
    })
    .await;
    let (status, body) = h.get("/v0.1/servers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_problem(&body, StatusCode::UNAUTHORIZED);
    let reader = h.token(Role::Reader, None).await;
    let (status, _) = h
        .call("GET", "/api/v1/instances", Some(&reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = h
        .app
        .clone()
        .oneshot(Request::get("/v0.1/servers").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, None).await;
    h.publish(&token, "io.a/secret-name", "1.0.0").await;
    h.get("/v0.1/servers/io.a%2Fsecret-name/versions/1.0.0")
        .await;
    h.get("/no/such/path").await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).unwrap();
    assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/v0.1/servers/{serverName}/versions/{version}",http_response_status_code="200"} 1"#), "{text}");
    assert!(text.contains(r#"http_route="/v0.1/publish",http_response_status_code="200""#));
    assert!(text.contains(r#"http_route="unmatched",http_response_status_code="404""#));
    assert!(
        !text.contains("secret-name"),
        "raw paths never become labels"
    );
    assert!(
        text.contains(
            r#"mcpulse_registry_storage_operation_duration_seconds_count{operation="publish"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn health_endpoints() {
    let h = Harness::sqlite().await;
    assert_eq!(h.get("/healthz").await, (StatusCode::OK, json!("ok")));
    assert_eq!(h.get("/readyz").await, (StatusCode::OK, json!("ready")));
}

#[tokio::test]
async fn wrong_methods_get_json_405_with_allow() {
    let h = Harness::sqlite().await;
    let cases = [
        (
            "DELETE",
            "/v0.1/servers",
            "GET,HEAD",
            "catalogue list is read-only",
        ),
        (
            "PUT",
            "/api/v1/instances",
            "GET,HEAD,POST",
            "instances are created with POST",
        ),
        ("GET", "/v0.1/publish", "POST", "publishing is a POST"),
    ];
    for (method, uri, allow, why) in cases {
        let response = h
            .app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{why}");
        let allowed = response.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .replace(' ', "");
        assert_eq!(allowed, allow, "{why}");
        let (status, body) = h.call(method, uri, None, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_problem(&body, StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            body["detail"].as_str().unwrap().contains("Allow header"),
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn registration_says_whether_the_server_is_catalogued() {
    let h = Harness::sqlite().await;
    let token = h.token(Role::Publisher, Some("io.a/*")).await;
    h.publish(&token, "io.a/known", "1.0.0").await;
    for (name, catalogued, why) in [
        ("io.a/known", true, "published before the agent came"),
        (
            "io.a/not-yet",
            false,
            "agents may start before their server is published",
        ),
    ] {
        let registration =
            json!({"serverName": name, "version": "1.0.0", "endpoint": "http://h:1/mcp"});
        let (status, body) = h
            .call(
                "POST",
                "/api/v1/instances",
                Some(&token),
                Some(registration),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{why}: {body}");
        assert_eq!(body["catalogued"], catalogued, "{why}");
        assert_eq!(body["probe"], Value::Null, "not probed yet");
    }
}

#[tokio::test]
async fn metrics_listener_serves_metrics_and_health() {
    use mcpulse_registry::{RegistryConfig, StorageConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut config = RegistryConfig::new(
        ([127, 0, 0, 1], 0).into(),
        StorageConfig::Sqlite {
            data_dir: dir.path().to_owned(),
        },
    );
    config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    let server = mcpulse_registry::bind(config).await.unwrap();
    let admin = server.metrics_addr().unwrap().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let get = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    };
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for family in [
        "mcpulse_build_info",
        "mcpulse_registry_oldest_heartbeat_age_seconds",
        "process_cpu_seconds_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family}")),
            "{family} missing: {metrics}"
        );
    }
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
