//! Active probing against real rmcp streamable-HTTP servers: lease sharing between replicas, and
//! unhealthy detection when a server stops.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcpulse_registry::storage::{InstanceRecord, PostgresStorage, SqliteStorage, Storage};
use mcpulse_registry::{
    AppState, HealthPolicy, HealthState, ProbeSettings, Prober, ServiceOptions, router,
};
use prometheus_client::registry::Registry;
use rmcp::service::{MaybeSendFuture, RequestContext};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Every ping any test server answered: (instance index, when).
type Pings = Arc<Mutex<Vec<(usize, Instant)>>>;

/// An MCP server that only answers the handshake and `ping`, remembering each ping.
#[derive(Clone)]
struct PingServer {
    index: usize,
    pings: Pings,
}

impl ServerHandler for PingServer {
    fn ping(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.pings
            .lock()
            .unwrap()
            .push((self.index, Instant::now()));
        std::future::ready(Ok(()))
    }
}

/// `n` rmcp servers (default session mode) on one port, at `/mcp/0` .. `/mcp/{n-1}`.
struct McpServers {
    addr: SocketAddr,
    pings: Pings,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn mcp_servers(n: usize) -> McpServers {
    let pings = Pings::default();
    let mut app = axum::Router::new();
    for index in 0..n {
        let handler = PingServer {
            index,
            pings: pings.clone(),
        };
        let service: StreamableHttpService<PingServer, LocalSessionManager> =
            StreamableHttpService::new(
                move || Ok(handler.clone()),
                Default::default(),
                StreamableHttpServerConfig::default().with_sse_keep_alive(None),
            );
        app = app.nest_service(&format!("/mcp/{index}"), service);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    McpServers {
        addr,
        pings,
        stop,
        task,
    }
}

fn instance(index: usize, addr: SocketAddr) -> InstanceRecord {
    let now = OffsetDateTime::now_utc();
    InstanceRecord {
        id: format!("instance-{index:02}"),
        server_name: "io.example/pinged".to_owned(),
        version: "1.0.0".to_owned(),
        endpoint: format!("http://{addr}/mcp/{index}"),
        labels: BTreeMap::new(),
        registered_at: now,
        last_heartbeat_at: now,
        probe: None,
    }
}

/// A replica's state over `storage` with its own metrics registry, to count its probes.
fn replica(storage: Arc<dyn Storage>, health: HealthPolicy) -> (AppState, Registry) {
    let options = ServiceOptions {
        health,
        ..ServiceOptions::default()
    };
    support::app_state(storage, options)
}

/// Finished probes counted in `registry` (`mcpulse_registry_probes_total`): (successful, all).
fn finished_probes(registry: &Registry) -> (u64, u64) {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let (mut ok, mut all) = (0, 0);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("mcpulse_registry_probes_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let value: u64 = value.trim().parse().unwrap();
        all += value;
        if labels == r#"result="ok""# {
            ok += value;
        }
    }
    (ok, all)
}

/// Two replicas probe `n` instances on one database for `rounds` intervals; every instance must
/// be pinged about once per interval, never twice within one lease, and both replicas must share
/// the work.
async fn two_replicas_share_probes(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    const N: usize = 12;
    let interval = Duration::from_millis(1000);
    let run_for = interval * 5;
    let servers = mcp_servers(N).await;
    for i in 0..N {
        a.register_instance(&instance(i, servers.addr))
            .await
            .unwrap();
    }
    // Few slots per replica, so neither can take every due instance in one round.
    let settings = ProbeSettings {
        interval,
        timeout: Duration::from_millis(500),
        jitter: Duration::from_millis(50),
        concurrency: 4,
    };
    let (state_a, metrics_a) = replica(a, HealthPolicy::default());
    let (state_b, metrics_b) = replica(b, HealthPolicy::default());
    let concurrency = settings.concurrency as u64;
    let prober_a = Prober::new(state_a, settings.clone()).unwrap();
    let prober_b = Prober::new(state_b, settings).unwrap();
    assert_ne!(prober_a.holder(), prober_b.holder());
    let started = Instant::now();
    tokio::join!(
        prober_a.run(tokio::time::sleep(run_for)),
        prober_b.run(tokio::time::sleep(run_for)),
    );
    let pings = servers.pings.lock().unwrap().clone();
    let ((ok_a, all_a), (ok_b, all_b)) = (finished_probes(&metrics_a), finished_probes(&metrics_b));
    assert!(
        ok_a > 0 && ok_b > 0,
        "both replicas probe: a={ok_a} b={ok_b}"
    );
    // Every successful probe is a ping the servers saw. They may have seen a few more, but only
    // from probes that never counted as successful: one that failed after its ping (a timeout),
    // or one still in flight when its prober stopped, which is abandoned after its ping (at most
    // `concurrency` per replica). The test stops the probers mid-round, so an exact count raced.
    let seen = pings.len() as u64;
    assert!(
        ok_a + ok_b <= seen && seen <= all_a + all_b + 2 * concurrency,
        "servers saw {seen} pings; probes: {ok_a}+{ok_b} ok of {all_a}+{all_b} finished, \
         up to {} in flight",
        2 * concurrency
    );
    for index in 0..N {
        let times: Vec<Instant> = pings
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, t)| *t)
            .collect();
        // The first round is at 1/8 interval, then one per interval: 5 pings in 5 intervals.
        assert!(
            (4..=6).contains(&times.len()),
            "instance {index} pinged {} times in {:?}",
            times.len(),
            started.elapsed()
        );
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // A lease lasts 15/16 of the interval; a second replica probing inside it would
            // show up as a gap near zero.
            assert!(
                gap >= interval * 8 / 10 && gap <= interval * 3 / 2,
                "instance {index}: pings {gap:?} apart with a {interval:?} interval"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replicas_share_probes() {
    let (dir, a) = support::sqlite().await;
    let b = SqliteStorage::open(dir.path()).await.unwrap();
    two_replicas_share_probes(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_probes() {
    let Some(url) = support::postgres_server() else {
        return;
    };
    let db = support::fresh_database(&url).await;
    let a = Arc::new(PostgresStorage::connect(&db).await.unwrap());
    let b = Arc::new(PostgresStorage::connect(&db).await.unwrap());
    two_replicas_share_probes(a, b).await;
}

async fn get_json(app: &axum::Router, uri: &str) -> Value {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_turns_unhealthy_within_interval_times_threshold() {
    let (_dir, storage) = support::sqlite().await;
    let storage = Arc::new(storage);
    let servers = mcp_servers(1).await;
    let registered = instance(0, servers.addr);
    storage.register_instance(&registered).await.unwrap();
    let health = HealthPolicy {
        probe_failures: 2,
        ..HealthPolicy::default()
    };
    let settings = ProbeSettings {
        interval: Duration::from_millis(300),
        timeout: Duration::from_millis(200),
        jitter: Duration::ZERO,
        concurrency: 4,
    };
    let (state, _metrics) = replica(storage.clone(), health);
    let app = router(state.clone());
    let prober = Prober::new(state, settings.clone()).unwrap();
    let (stop_prober, prober_stopped) = oneshot::channel::<()>();
    let probing = tokio::spawn(prober.run(async move {
        let _ = prober_stopped.await;
    }));
    let uri = format!("/api/v1/instances/{}", registered.id);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let view = get_json(&app, &uri).await;
        if view["probe"]["ok"] == true {
            assert_eq!(view["state"], "healthy");
            assert!(view["probe"]["latencyMs"].as_f64().unwrap() > 0.0, "{view}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never probed successfully: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let _ = servers.stop.send(());
    servers.task.await.unwrap();
    let stopped_at = Instant::now();
    // Two failed probes one interval apart, the last round's wait, and one timeout at most.
    let bound =
        settings.interval * health.probe_failures + settings.interval / 8 + settings.timeout;
    let view = loop {
        let view = get_json(&app, &uri).await;
        if view["state"] == HealthState::Unhealthy.as_str() {
            break view;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "still {view} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = stopped_at.elapsed();
    // Scheduling on a busy 2-core machine adds a little to the ideal bound.
    assert!(
        took <= bound + Duration::from_millis(250),
        "unhealthy after {took:?}, expected within {bound:?}"
    );
    assert_eq!(view["probe"]["ok"], false);
    assert_eq!(view["probe"]["consecutiveFailures"], 2);
    assert!(
        view["probe"]["error"].as_str().unwrap().contains("refused"),
        "{view}"
    );
    let unhealthy = get_json(&app, "/api/v1/instances?state=unhealthy").await;
    assert_eq!(unhealthy["metadata"]["count"], 1, "{unhealthy}");
    let _ = stop_prober.send(());
    probing.await.unwrap();
}
