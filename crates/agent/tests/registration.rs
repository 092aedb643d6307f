//! Self-registration against the real registry router, started in-process on SQLite.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config, eventually, start};
use mcpulse_agent::RegistrationConfig;
use mcpulse_registry::{RegistryConfig, Role, StorageConfig};
use serde_json::Value;
use tokio::sync::oneshot;

const SERVER: &str = "io.mcpulse/agent";

struct Registry {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
}

async fn start_registry(addr: SocketAddr, storage: StorageConfig) -> Registry {
    let mut config = RegistryConfig::new(addr, storage);
    // Health by heartbeats alone: this test is about the agent's own calls.
    config.probe = None;
    let server = mcpulse_registry::bind(config)
        .await
        .expect("registry binds");
    let addr = server.local_addr().expect("registry address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Registry { addr, stop }
}

async fn instances(registry: SocketAddr) -> Vec<Value> {
    let url = format!("http://{registry}/api/v1/instances?serverName={SERVER}");
    let Ok(response) = reqwest::get(url).await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["instances"].as_array().cloned().unwrap_or_default()
}

async fn token(storage: &StorageConfig) -> String {
    mcpulse_registry::create_token(storage, Role::Publisher, Some("io.mcpulse/*".to_owned()))
        .await
        .expect("token created")
}

fn registration(registry: SocketAddr, token: String) -> RegistrationConfig {
    let mut registration = RegistrationConfig::new(format!("http://{registry}"));
    registration.token = Some(token);
    registration.heartbeat_interval = Duration::from_millis(50);
    registration
        .labels
        .insert("zone".to_owned(), "a".to_owned());
    registration
}

#[tokio::test]
async fn registers_heartbeats_and_deregisters_on_shutdown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = StorageConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    };
    let token = token(&storage).await;
    let registry = start_registry(([127, 0, 0, 1], 0).into(), storage).await;

    let mut config = config();
    config.registration = Some(registration(registry.addr, token));
    let agent = start(config).await;
    let endpoint = format!("http://{}/mcp", agent.bound.listen);

    assert!(
        eventually(Duration::from_secs(5), async || instances(registry.addr)
            .await
            .len()
            == 1)
        .await,
        "the agent registers at start"
    );
    let listed = instances(registry.addr).await;
    let instance = &listed[0];
    assert_eq!(instance["endpoint"], endpoint.as_str());
    assert_eq!(instance["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(instance["labels"]["zone"], "a");
    let registered_at = instance["registeredAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        eventually(Duration::from_secs(5), async || {
            instances(registry.addr)
                .await
                .first()
                .and_then(|i| i["lastHeartbeatAt"].as_str().map(str::to_owned))
                > Some(registered_at.clone())
        })
        .await,
        "heartbeats move lastHeartbeatAt past registeredAt"
    );

    agent.stop().await.expect("clean shutdown");
    assert!(
        instances(registry.addr).await.is_empty(),
        "shutdown deregisters before run returns"
    );
    let _ = registry.stop.send(());
}

#[tokio::test]
async fn keeps_serving_and_registers_once_the_registry_comes_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = StorageConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    };
    let token = token(&storage).await;
    // Reserve a port, then free it so nothing listens there until the registry starts.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");

    let mut config = config();
    config.registration = Some(registration(addr, token));
    let agent = start(config).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let healthz = reqwest::get(format!("http://{}/healthz", agent.bound.metrics))
        .await
        .expect("healthz");
    assert_eq!(
        healthz.status(),
        200,
        "a missing registry does not stop the agent"
    );

    let registry = start_registry(addr, storage).await;
    assert!(
        eventually(Duration::from_secs(5), async || instances(registry.addr)
            .await
            .len()
            == 1)
        .await,
        "retries register the agent once the registry is up"
    );
    agent.stop().await.expect("clean shutdown");
    assert!(instances(registry.addr).await.is_empty());
    let _ = registry.stop.send(());
}
