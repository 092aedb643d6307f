//! One behavioural suite for every [`Storage`] back end: SQLite always, PostgreSQL when configured.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use mcpulse_registry::auth;
use mcpulse_registry::storage::{
    InstanceQuery, InstanceRecord, PostgresStorage, ProbeTarget, ServerQuery, SqliteStorage,
    Status, Storage, VersionSelector,
};
use mcpulse_registry::{Cutoffs, HealthState, RegistryError, Role};
use serde_json::json;
use support::{fresh_database, postgres_server};
use time::OffsetDateTime;

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
        probe: None,
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

    let before = s.data_version().await.unwrap();
    let (beat, previous) = s.heartbeat("i2", t(99)).await.unwrap().unwrap();
    assert_eq!((beat.last_heartbeat_at, previous), (t(99), t(50)));
    let after = s.data_version().await.unwrap();
    assert!(
        before.is_some() && before != after,
        "a committed write moves the data version: {before:?} then {after:?}"
    );
    let (beat, previous) = s.heartbeat("i2", t(101)).await.unwrap().unwrap();
    assert_eq!(
        (beat.last_heartbeat_at, previous),
        (t(101), t(99)),
        "the previous heartbeat is the one before this beat, not the registration"
    );
    assert_eq!(
        beat,
        {
            let mut want = instance("i2", "io.example/a", t(50));
            want.last_heartbeat_at = t(101);
            want
        },
        "the heartbeat returns the whole updated record"
    );
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
    // At t(101): i2 beat at t(101), i1 at t(100), i3 at t(0).
    let cutoffs = |unhealthy: i64, gone: i64, failures: u32| Cutoffs {
        unhealthy_before: t(unhealthy),
        gone_before: t(gone),
        probe_failures: failures,
    };
    let by_state = |state, c| {
        let mut query = q(|_| {});
        query.health = Some((state, c));
        query
    };
    let cases = [
        (
            HealthState::Gone,
            cutoffs(101, 1, 2),
            vec!["i3"],
            "beat before the gone cutoff",
        ),
        (
            HealthState::Healthy,
            cutoffs(101, 1, 2),
            vec!["i2"],
            "beat at the unhealthy cutoff",
        ),
        (
            HealthState::Unhealthy,
            cutoffs(101, 1, 2),
            vec!["i1"],
            "between the cutoffs",
        ),
    ];
    for (state, c, want, why) in cases {
        assert_eq!(
            ids(s.list_instances(&by_state(state, c)).await.unwrap()),
            want,
            "{why}"
        );
    }

    let summary = s.instance_summary(&cutoffs(100, 10, 2)).await.unwrap();
    assert_eq!(
        (summary.healthy, summary.unhealthy, summary.gone),
        (2, 0, 1)
    );
    assert_eq!(summary.oldest_live_heartbeat, Some(t(100)));
    let later = s.instance_summary(&cutoffs(102, 10, 2)).await.unwrap();
    assert_eq!((later.healthy, later.unhealthy, later.gone), (0, 2, 1));

    probes(s, &by_state, &cutoffs(100, 10, 2)).await;

    assert!(s.deregister_instance("i1").await.unwrap());
    assert!(!s.deregister_instance("i1").await.unwrap());
    assert_eq!(s.instance("i1").await.unwrap(), None);
    let dup = s
        .register_instance(&instance("i2", "io.example/a", t(0)))
        .await;
    assert!(dup.is_err(), "instance ids are unique");
}

/// Leases go to one holder at a time, results count consecutive failures, and failures make an
/// instance unhealthy. Expects i1 (beat t(100)), i2 (t(101)) and i3 (t(0)) from `instances`.
async fn probes(
    s: &dyn Storage,
    by_state: &dyn Fn(HealthState, Cutoffs) -> InstanceQuery,
    cutoffs: &Cutoffs,
) {
    let ids = |targets: Vec<ProbeTarget>| targets.into_iter().map(|t| t.id).collect::<Vec<_>>();
    // i3 beat at t(0), before live_since: gone instances are not probed.
    let a = s
        .claim_probes("a", t(200), t(210), t(10), 10)
        .await
        .unwrap();
    assert_eq!(
        ids(a),
        ["i1", "i2"],
        "due, live instances go to the first claimant"
    );
    let b = s
        .claim_probes("b", t(205), t(215), t(10), 10)
        .await
        .unwrap();
    assert!(
        b.is_empty(),
        "nothing is leased twice before the lease ends"
    );
    let b = s.claim_probes("b", t(210), t(220), t(10), 1).await.unwrap();
    assert_eq!(
        ids(b),
        ["i1"],
        "an ended lease can be claimed again, up to the limit"
    );

    assert_eq!(
        s.instance("i2").await.unwrap().unwrap().probe,
        None,
        "never probed"
    );
    for (ok, failures) in [(false, 1), (false, 2), (true, 0), (false, 1)] {
        let latency = ok.then(|| std::time::Duration::from_micros(1500));
        let error = (!ok).then_some("connection refused");
        assert!(
            s.record_probe("i2", t(201), ok, latency, error)
                .await
                .unwrap()
        );
        let probe = s.instance("i2").await.unwrap().unwrap().probe.unwrap();
        assert_eq!(
            (
                probe.ok,
                probe.consecutive_failures,
                probe.latency,
                probe.error.as_deref()
            ),
            (ok, failures, latency, error)
        );
    }
    s.record_probe("i2", t(202), false, None, Some("refused"))
        .await
        .unwrap();
    let unhealthy = s
        .list_instances(&by_state(HealthState::Unhealthy, *cutoffs))
        .await
        .unwrap();
    assert!(
        unhealthy.iter().any(|i| i.id == "i2"),
        "two failures in a row reach the threshold of 2 although i2 beat recently"
    );
    let summary = s.instance_summary(cutoffs).await.unwrap();
    assert_eq!(
        (summary.healthy, summary.unhealthy, summary.gone),
        (1, 1, 1)
    );
    assert!(
        !s.record_probe("missing", t(1), true, None, None)
            .await
            .unwrap()
    );
    // Recovery: one good probe clears the failures.
    s.record_probe("i2", t(203), true, None, None)
        .await
        .unwrap();
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
    let (dir, storage) = support::sqlite().await;
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
    let (_dir, storage) = support::sqlite().await;
    concurrent_publishes(Arc::new(storage)).await;
}

async fn concurrent_publishes(storage: Arc<dyn Storage>) {
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
    let Some(url) = postgres_server() else {
        return;
    };
    let db = fresh_database(&url).await;
    let storage = PostgresStorage::connect(&db).await.unwrap();
    suite(&storage).await;
    let db = fresh_database(&url).await;
    concurrent_publishes(Arc::new(PostgresStorage::connect(&db).await.unwrap())).await;
}
