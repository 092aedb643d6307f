//! A real Prometheus scrapes the meter after real MCP traffic and sees exactly the calls made; promtool finds
//! nothing to complain about in either exposition format.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use support::{McpServer, Meter};

/// A Debian-packaged tool, or `None` to skip — unless MCPULSE_REQUIRE_EXTERNAL says missing tools are failures.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        let why = format!("`{name}` is not installed; run scripts/setup.sh");
        assert!(
            std::env::var_os("MCPULSE_REQUIRE_EXTERNAL").is_none(),
            "{why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let url = format!("http://{prometheus}/api/v1/query");
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn promtool_check(promtool: &PathBuf, exposition: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn prometheus_scrapes_exact_counts_and_promtool_is_clean() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let server = McpServer::start(false).await;
    let meter = Meter::start(&[server.url()], |_| {}).await;
    let client = ().serve(StreamableHttpClientTransport::from_uri(meter.mcp_url())).await.unwrap();
    for n in 0..5 {
        let args = serde_json::json!({ "text": format!("{n}") });
        client
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
    }

    let dir = std::env::temp_dir().join(format!("mcpulse-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: meter\n    static_configs:\n      - targets: ['{}']\n",
            meter.metrics
        ),
    )
    .unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _prometheus = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let listen = listen.to_string();
    let calls = "sum(mcp_server_operation_duration_seconds_count{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        if let Some(value) = query(&listen, calls).await {
            break value;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the meter"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(seen, 5.0);
    assert_eq!(query(&listen, "up{job=\"meter\"}").await, Some(1.0));
    assert_eq!(
        query(&listen, "mcp_server_sessions_active").await,
        Some(1.0)
    );
    assert!(
        query(&listen, "process_resident_memory_bytes")
            .await
            .is_some_and(|v| v > 0.0)
    );

    let text = reqwest::get(format!("http://{}/metrics", meter.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let complaints = promtool_check(&promtool, &text);
    assert!(
        complaints.trim().is_empty(),
        "promtool check metrics (Prometheus text):\n{complaints}"
    );

    client.cancel().await.unwrap();
    meter.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
