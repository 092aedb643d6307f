//! The fleet as real processes on loopback: a registry, two agents that register and heartbeat, and a meter
//! gateway that discovers them. Killing an agent turns it unhealthy in the registry and the gateway stops
//! sending it new sessions; all of it shows in the scraped metrics.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;
use support::*;

async fn instances(registry: u16) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{registry}/api/v1/instances");
    let list: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    list["instances"].as_array().cloned().unwrap_or_default()
}

fn states(list: &[Value]) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = list
        .iter()
        .map(|i| {
            (
                i["endpoint"].as_str().unwrap_or("").to_owned(),
                i["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn agents_register_turn_unhealthy_when_killed_and_the_gateway_follows() {
    let data = std::env::temp_dir().join(format!("mcpulse-fleet-{}", std::process::id()));
    let token = Command::new(MCPULSE)
        .args([
            "registry",
            "token",
            "create",
            "--role",
            "publisher",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    let (registry, registry_metrics) = (free_port(), free_port());
    let _registry = spawn(
        MCPULSE,
        &[
            "registry",
            "--listen",
            &format!("127.0.0.1:{registry}"),
            "--metrics-listen",
            &format!("127.0.0.1:{registry_metrics}"),
            "--data-dir",
            data.to_str().unwrap(),
            "--unhealthy-after",
            "2s",
            "--probe-interval",
            "1s",
            "--probe-timeout",
            "500ms",
            "--probe-failures",
            "2",
            "--gauge-refresh",
            "200ms",
        ],
    );
    wait_for_http(&format!("http://127.0.0.1:{registry_metrics}/healthz")).await;

    let registry_url = format!("http://127.0.0.1:{registry}");
    let agent_ports = [(free_port(), free_port()), (free_port(), free_port())];
    let mut agents: Vec<Running> = agent_ports
        .iter()
        .map(|(mcp, metrics)| {
            spawn(
                MCPULSE,
                &[
                    "agent",
                    "--listen",
                    &format!("127.0.0.1:{mcp}"),
                    "--metrics-listen",
                    &format!("127.0.0.1:{metrics}"),
                    "--registry",
                    &registry_url,
                    "--token",
                    &token,
                    "--heartbeat-interval",
                    "500ms",
                ],
            )
        })
        .collect();
    let (gateway, gateway_metrics) = (free_port(), free_port());
    let _meter = spawn(
        MCPULSE,
        &[
            "meter",
            "--listen",
            &format!("127.0.0.1:{gateway}"),
            "--metrics-listen",
            &format!("127.0.0.1:{gateway_metrics}"),
            "--registry",
            &registry_url,
            "--registry-interval",
            "300ms",
        ],
    );

    let endpoint = |port: u16| format!("http://127.0.0.1:{port}/mcp");
    let healthy = eventually(
        "both agents healthy in the registry",
        Duration::from_secs(30),
        async || {
            let list = states(&instances(registry).await);
            (list.len() == 2 && list.iter().all(|(_, s)| s == "healthy")).then_some(list)
        },
    )
    .await;
    assert_eq!(
        healthy.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(),
        {
            let mut expected = vec![endpoint(agent_ports[0].0), endpoint(agent_ports[1].0)];
            expected.sort();
            expected
        }
    );
    let upstreams_url = format!("http://127.0.0.1:{gateway_metrics}/upstreams");
    eventually(
        "the gateway discovering both agents",
        Duration::from_secs(10),
        async || {
            let list: Vec<Value> = reqwest::get(&upstreams_url).await.ok()?.json().await.ok()?;
            (list.iter().filter(|u| u["withdrawn"] == false).count() == 2).then_some(())
        },
    )
    .await;

    // Real MCP sessions through the gateway reach the agents.
    let mcp = format!("http://127.0.0.1:{gateway}/mcp");
    for n in 0..4 {
        let client = ().serve(StreamableHttpClientTransport::from_uri(mcp.as_str())).await.unwrap();
        let args = serde_json::json!({"message": format!("hello {n}")});
        let answer = client
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert!(
            serde_json::to_string(&answer.content)
                .unwrap()
                .contains(&format!("hello {n}"))
        );
        client.cancel().await.unwrap();
    }
    let gateway_counts = scrape(gateway_metrics).await;
    let echoes = sum(
        &gateway_counts,
        "mcp_server_operation_duration_seconds_count",
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "echo"),
            ("error_type", ""),
        ],
    );
    assert_eq!(echoes, 4.0);
    let mut served = 0.0;
    for (_, metrics) in agent_ports {
        let agent = scrape(metrics).await;
        served += sum(
            &agent,
            "mcp_server_operation_duration_seconds_count",
            &[("mcp_method_name", "tools/call")],
        );
    }
    assert_eq!(served, 4.0, "the agents' own metrics count the same calls");

    // Kill the first agent outright: no deregistration, only missed heartbeats and failed probes tell.
    let killed_at = Instant::now();
    agents.remove(0).kill();
    let killed = endpoint(agent_ports[0].0);
    eventually(
        "the killed agent turning unhealthy",
        Duration::from_secs(10),
        async || {
            let list = states(&instances(registry).await);
            list.iter()
                .any(|(e, s)| e == &killed && s == "unhealthy")
                .then_some(())
        },
    )
    .await;
    let detected_after = killed_at.elapsed();
    assert!(
        detected_after < Duration::from_secs(5),
        "unhealthy after {detected_after:?}; configured 2 s heartbeat"
    );
    eventually(
        "registry metrics counting one unhealthy instance",
        Duration::from_secs(5),
        async || {
            let metrics = scrape(registry_metrics).await;
            let unhealthy = sum(
                &metrics,
                "mcpulse_registry_instances",
                &[("state", "unhealthy")],
            );
            let healthy = sum(
                &metrics,
                "mcpulse_registry_instances",
                &[("state", "healthy")],
            );
            (unhealthy == 1.0 && healthy == 1.0).then_some(())
        },
    )
    .await;
    eventually(
        "the gateway withdrawing the dead agent",
        Duration::from_secs(5),
        async || {
            let list: Vec<Value> = reqwest::get(&upstreams_url).await.ok()?.json().await.ok()?;
            let dead = format!("http://127.0.0.1:{}", agent_ports[0].0);
            list.iter()
                .any(|u| u["url"] == dead.as_str() && u["withdrawn"] == true)
                .then_some(())
        },
    )
    .await;
    // New sessions now all land on the survivor.
    for _ in 0..3 {
        let client = ().serve(StreamableHttpClientTransport::from_uri(mcp.as_str())).await.unwrap();
        client
            .call_tool(
                CallToolRequestParams::new("echo").with_arguments(
                    serde_json::json!({"message": "x"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await
            .unwrap();
        client.cancel().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(data);
}
