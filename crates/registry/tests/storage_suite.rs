//! One behavioural suite for every [`Storage`] back end: SQLite always, PostgreSQL when configured.

use std::collections::BTreeMap;

use mcpulse_registry::RegistryError;
use mcpulse_registry::Role;
use mcpulse_registry::auth;
use mcpulse_registry::storage::{
    InstanceQuery, InstanceRecord, PostgresStorage, ServerQuery, SqliteStorage, Status, Storage,
    VersionSelector,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

fn t(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).unwrap()
}

fn doc(name: &str, version: &str) -> serde_json::Value {
    json!({"name": name, "description": "d", "version": version})
}

fn all() -> ServerQuery {
    ServerQuery {
        limit: 1000,
        include_deleted: true,
        ..ServerQuery::default()
    }
}

async fn catalogue(s: &dyn Storage) {
    let a = "io.example/a";
    let first = s.publish(a, "1.9.0", &doc(a, "1.9.0"), t(0)).await.unwrap();
    assert!(first.is_latest, "the first version is latest");
    assert_eq!(first.status, Status::Active);
    assert_eq!(first.published_at, t(0));

    let newer = s
        .publish(a, "1.10.0", &doc(a, "1.10.0"), t(1))
        .await
        .unwrap();
    assert!(
        newer.is_latest,
        "1.10.0 > 1.9.0 by semver although it sorts lower as text"
    );
    let older = s.publish(a, "1.0.1", &doc(a, "1.0.1"), t(2)).await.unwrap();
    assert!(!older.is_latest, "a backport does not become latest");

    let latest = s
        .server_version(a, VersionSelector::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, "1.10.0");
    let rows = s
        .list_servers(&ServerQuery {
            latest_only: true,
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "exactly one latest row per server");

    let dup = s.publish(a, "1.9.0", &doc(a, "1.9.0"), t(3)).await;
    assert!(matches!(dup, Err(RegistryError::Conflict(_))), "{dup:?}");
    let kept = s
        .server_version(a, VersionSelector::Exact("1.9.0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.published_at,
        t(0),
        "a rejected duplicate changes nothing"
    );

    let versions = s.server_versions(a, false).await.unwrap();
    let order: Vec<&str> = versions.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(
        order,
        ["1.0.1", "1.10.0", "1.9.0"],
        "newest publication first"
    );

    // Keyset pagination walks every row once, in (name, version) order.
    let b = "io.example/b_x";
    s.publish(b, "1.0.0", &doc(b, "1.0.0"), t(4)).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_servers(&ServerQuery {
                after: after.clone(),
                limit: 2,
                ..all()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| (r.name.clone(), r.version.clone()));
        seen.extend(
            page.into_iter()
                .map(|r| format!("{}@{}", r.name, r.version)),
        );
    }
    assert_eq!(
        seen,
        [
            "io.example/a@1.0.1",
            "io.example/a@1.10.0",
            "io.example/a@1.9.0",
            "io.example/b_x@1.0.0"
        ]
    );

    let search = |q: &str| ServerQuery {
        search: Some(q.to_owned()),
        ..all()
    };
    assert_eq!(
        s.list_servers(&search("B_X")).await.unwrap().len(),
        1,
        "search ignores case"
    );
    assert_eq!(
        s.list_servers(&search("a_x")).await.unwrap().len(),
        0,
        "'_' is literal, not a wildcard"
    );
    assert_eq!(
        s.list_servers(&search("%")).await.unwrap().len(),
        0,
        "'%' is literal"
    );
    let since = ServerQuery {
        updated_since: Some(t(2)),
        ..all()
    };
    assert_eq!(
        s.list_servers(&since).await.unwrap().len(),
        1,
        "updated strictly after t(2)"
    );
    let exact = ServerQuery {
        exact_version: Some("1.0.0".into()),
        ..all()
    };
    assert_eq!(s.list_servers(&exact).await.unwrap()[0].name, b);

    // Status changes: one version, then all; deleted rows hide unless asked for.
    let one = s
        .set_status(
            a,
            Some("1.9.0"),
            Status::Deprecated,
            Some("use 1.10"),
            t(10),
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].status_message.as_deref(), Some("use 1.10"));
    assert_eq!(
        (one[0].status_changed_at, one[0].updated_at),
        (t(10), t(10))
    );
    let again = s
        .set_status(a, Some("1.9.0"), Status::Deprecated, None, t(11))
        .await
        .unwrap();
    assert_eq!(
        again[0].status_changed_at,
        t(10),
        "same status keeps its change time"
    );
    let every = s
        .set_status(a, None, Status::Deleted, None, t(12))
        .await
        .unwrap();
    assert_eq!(every.len(), 3);
    assert!(s.server_versions(a, false).await.unwrap().is_empty());
    assert_eq!(s.server_versions(a, true).await.unwrap().len(), 3);
    let visible = ServerQuery {
        include_deleted: false,
        ..all()
    };
    assert_eq!(s.list_servers(&visible).await.unwrap().len(), 1);
    assert!(
        s.set_status("io.example/none", None, Status::Active, None, t(13))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn non_semver_latest(s: &dyn Storage) {
    let n = "io.example/dated";
    s.publish(n, "2.0.0", &doc(n, "2.0.0"), t(0)).await.unwrap();
    let snapshot = s
        .publish(n, "nightly-20250101", &doc(n, "nightly-20250101"), t(1))
        .await
        .unwrap();
    assert!(
        snapshot.is_latest,
        "a non-semver publish becomes latest by time, like the official registry"
    );
    let back = s.publish(n, "1.0.0", &doc(n, "1.0.0"), t(2)).await.unwrap();
    assert!(
        back.is_latest,
        "against a non-semver latest the later publish wins"
    );
}

async fn tokens(s: &dyn Storage) {
    let (token, record) = auth::generate(Role::Publisher, Some("io.example/*".into())).unwrap();
    s.insert_token(&record, t(0)).await.unwrap();
    let found = s.find_token(&record.id).await.unwrap().unwrap();
    assert_eq!(found, record);
    assert!(auth::verify(&token, &found));
    assert!(s.revoke_token(&record.id, t(1)).await.unwrap());
    assert_eq!(
        s.find_token(&record.id).await.unwrap(),
        None,
        "revoked tokens are not found"
    );
    assert!(
        !s.revoke_token(&record.id, t(2)).await.unwrap(),
        "revoking twice reports nothing to do"
    );
}

fn instance(id: &str, server: &str, beat: OffsetDateTime) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        server_name: server.into(),
        version: "1.0.0".into(),
        endpoint: format!("http://10.0.0.1:8080/{id}"),
        labels: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        registered_at: t(0),
        last_heartbeat_at: beat,
    }
}

async fn instances(s: &dyn Storage) {
    s.register_instance(&instance("i1", "io.example/a", t(100)))
        .await
        .unwrap();
    s.register_instance(&instance("i2", "io.example/a", t(50)))
        .await
        .unwrap();
    s.register_instance(&instance("i3", "io.example/b", t(0)))
        .await
        .unwrap();
    assert_eq!(
        s.instance("i1").await.unwrap().unwrap(),
        instance("i1", "io.example/a", t(100))
    );

    let (beat, previous) = s.heartbeat("i2", t(101)).await.unwrap().unwrap();
    assert_eq!((beat.last_heartbeat_at, previous), (t(101), t(50)));
    assert_eq!(s.heartbeat("missing", t(101)).await.unwrap(), None);

    let q = |f: fn(&mut InstanceQuery)| {
        let mut q = InstanceQuery {
            limit: 100,
            ..InstanceQuery::default()
        };
        f(&mut q);
        q
    };
    let ids = |rows: Vec<InstanceRecord>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_instances(&q(|_| {})).await.unwrap()),
        ["i1", "i2", "i3"]
    );
    assert_eq!(
        ids(s
            .list_instances(&q(|q| q.server_name = Some("io.example/a".into())))
            .await
            .unwrap()),
        ["i1", "i2"]
    );
    assert_eq!(
        ids(s
            .list_instances(&q(|q| q.after = Some("i1".into())))
            .await
            .unwrap()),
        ["i2", "i3"]
    );
    assert_eq!(
        ids(s
            .list_instances(&q(|q| q.heartbeat_before = Some(t(1))))
            .await
            .unwrap()),
        ["i3"]
    );
    assert_eq!(
        ids(s
            .list_instances(&q(|q| q.heartbeat_at_least = Some(t(101))))
            .await
            .unwrap()),
        ["i2"]
    );

    let summary = s.instance_summary(t(100), t(10)).await.unwrap();
    assert_eq!(
        (summary.healthy, summary.unhealthy, summary.gone),
        (2, 0, 1)
    );
    assert_eq!(summary.oldest_live_heartbeat, Some(t(100)));
    let later = s
        .instance_summary(t(101) + Duration::seconds(1), t(10))
        .await
        .unwrap();
    assert_eq!((later.healthy, later.unhealthy, later.gone), (0, 2, 1));

    assert!(s.deregister_instance("i1").await.unwrap());
    assert!(!s.deregister_instance("i1").await.unwrap());
    assert_eq!(s.instance("i1").await.unwrap(), None);
    let dup = s
        .register_instance(&instance("i2", "io.example/a", t(0)))
        .await;
    assert!(dup.is_err(), "instance ids are unique");
}

async fn suite(s: &dyn Storage) {
    s.ping().await.unwrap();
    catalogue(s).await;
    non_semver_latest(s).await;
    tokens(s).await;
    instances(s).await;
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path()).await.unwrap();
    suite(&storage).await;
    drop(storage);
    // Reopening runs the migrations again, which must be a no-op on an up-to-date database.
    let reopened = SqliteStorage::open(dir.path()).await.unwrap();
    assert!(
        reopened
            .server_version("io.example/b_x", VersionSelector::Latest)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn sqlite_concurrent_publishes_agree_on_latest() {
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(SqliteStorage::open(dir.path()).await.unwrap());
    concurrent_publishes(storage).await;
}

async fn concurrent_publishes(storage: std::sync::Arc<dyn Storage>) {
    let name = "io.example/race";
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = storage.clone();
            tokio::spawn(async move {
                let v = format!("1.{i}.0");
                s.publish(name, &v, &doc(name, &v), t(i)).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let latest = storage
        .list_servers(&ServerQuery {
            latest_only: true,
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].version, "1.19.0");
}

/// Runs the suite against PostgreSQL, each part in a new database created through the URL's server.
#[tokio::test]
async fn postgres_backend() {
    let Ok(url) = std::env::var("MCPULSE_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: set MCPULSE_TEST_DATABASE_URL=postgres://... to run the PostgreSQL suite"
        );
        return;
    };
    let db = fresh_database(&url).await;
    let storage = PostgresStorage::connect(&db).await.unwrap();
    suite(&storage).await;
    let db = fresh_database(&url).await;
    concurrent_publishes(std::sync::Arc::new(
        PostgresStorage::connect(&db).await.unwrap(),
    ))
    .await;
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
