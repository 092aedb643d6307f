//! `mcpulse up` end to end: under a load that rises and falls, the fleet scales out and back in, the scale-in
//! loses no call (drained agents end their sessions; the gateway tells clients to start anew), and `mcpulse
//! status` reports it all; with Prometheus and Alertmanager installed, killing the agent fires the agent-down
//! alert, and the restarted agent clears it.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

async fn status(data_dir: &str) -> Option<Value> {
    let output = tokio::process::Command::new(MCPULSE)
        .args(["status", "--json", "--data-dir", data_dir])
        .output()
        .await
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

fn current(status: &Value) -> u64 {
    status["replicas"]["current"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn the_fleet_scales_out_under_load_and_back_in_without_losing_calls() {
    let data = std::env::temp_dir().join(format!("mcpulse-up-{}", std::process::id()));
    let data_dir = data.to_str().unwrap().to_owned();
    let (up, UpPorts { gateway, console }) = spawn_up(
        &data_dir,
        &[
            "--agents",
            "1",
            "--min-replicas",
            "1",
            "--max-replicas",
            "5",
            "--scale-down-window",
            "8s",
            "--sync-period",
            "2s",
            "--agent-sleep-ms",
            "100",
            "--agent-workers",
            "2",
            "--drain-timeout",
            "5s",
            // The alert test below runs Prometheus; this one is about scaling.
            "--no-monitoring",
        ],
    );
    wait_for_http(&format!("http://127.0.0.1:{console}/api/status")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Ready when the gateway routes to a live agent.
        let gateway_view = match status(&data_dir).await {
            Some(s) => reqwest::get(format!(
                "http://{}/upstreams",
                s["addresses"]["gateway_metrics"].as_str().unwrap_or("")
            ))
            .await
            .ok(),
            None => None,
        };
        let upstreams: Vec<Value> = match gateway_view {
            Some(answer) => answer.json().await.unwrap_or_default(),
            None => Vec::new(),
        };
        if upstreams
            .iter()
            .any(|u| u["withdrawn"] == false && u["draining"] == false)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway has no agent 30 s after start"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 12 steps of 5 s: quiet, a plateau of 60 requests/s (3 agents' worth at 100 ms and 2 workers each), quiet.
    let trace = data.join("rise-and-fall.csv");
    let rates = [5, 20, 60, 60, 60, 60, 20, 5, 5, 5, 5, 5];
    let mut csv = String::from("timestamp,value\n");
    for (step, rate) in rates.iter().enumerate() {
        csv += &format!("{},{rate}\n", 1_700_000_000 + 5 * step);
    }
    std::fs::write(&trace, csv).unwrap();
    let load = tokio::process::Command::new(MCPULSE)
        .args([
            "load",
            "--url",
            &format!("http://127.0.0.1:{gateway}/mcp"),
            "--trace",
            trace.to_str().unwrap(),
        ])
        .args([
            "--duration",
            "60s",
            "--sessions",
            "8",
            "--session-lifetime",
            "3s",
            "--timeout",
            "20s",
            "--json",
        ])
        .args(["--arguments", r#"{"sleep_ms": 100}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let load_output = tokio::spawn(load.wait_with_output());

    let mut peak = 0;
    let mut scaled_in_under_load = false;
    let started = Instant::now();
    while !load_output.is_finished() {
        if let Some(s) = status(&data_dir).await {
            let now = current(&s);
            scaled_in_under_load |= peak >= 3 && now < peak;
            peak = peak.max(now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load run did not end"
        );
    }
    let output = load_output.await.unwrap().unwrap();
    assert!(
        output.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        peak >= 3,
        "the fleet should scale out to at least 3 agents for 60 req/s, peaked at {peak}"
    );
    assert!(
        scaled_in_under_load,
        "the fleet should scale in while the quiet tail of the load still runs"
    );
    assert_eq!(
        report["errors"]["total"], 0,
        "no call may be lost, scale-in included: {report}"
    );
    assert!(report["requests"].as_u64().unwrap() > 1000, "{report}");

    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let s = status(&data_dir).await.expect("status after the load");
        if current(&s) == 1 {
            let decisions = s["decisions"].as_array().unwrap();
            assert!(
                decisions
                    .iter()
                    .any(|d| d["explanation"].as_str().unwrap().starts_with("scale up"))
            );
            assert!(
                decisions
                    .iter()
                    .any(|d| d["explanation"].as_str().unwrap().starts_with("scale down"))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet did not scale back to 1 agent: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(up);
    let _ = std::fs::remove_dir_all(data);
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn firing<'a>(status: &'a Value, alert: &str) -> Option<&'a Value> {
    status["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == alert)
}

/// Polls `mcpulse status --json` until `check` accepts it.
async fn wait_for_status(
    data_dir: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(s) = status(data_dir).await {
            if check(&s) {
                return s;
            }
            last = s;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what} within {within:?}; last status: {last}");
}

#[tokio::test]
async fn a_killed_agent_fires_the_agent_down_alert_until_it_is_restarted() {
    if !monitoring_installed() {
        return;
    }
    let data = std::env::temp_dir().join(format!("mcpulse-up-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_dir = data.to_str().unwrap().to_owned();
    let (mut up, _) = spawn_up(
        &data_dir,
        &[
            "--agents",
            "1",
            "--max-replicas",
            "1",
            "--prometheus",
            "127.0.0.1:0",
            "--alertmanager",
            "127.0.0.1:0",
            "--scrape-interval",
            "1s",
            "--alert-pending-max",
            "2s",
        ],
    );

    let ready = wait_for_status(
        &data_dir,
        "Prometheus scraping a healthy agent",
        Duration::from_secs(60),
        |s| s["monitoring"] == true && s["instances"][0]["health"] == "healthy",
    )
    .await;
    let prometheus = ready["addresses"]["prometheus"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = format!("http://{prometheus}/api/v1/query?query=up%7Bjob%3D%22mcpulse-agent%22%7D");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: Value = reqwest::get(&query).await.unwrap().json().await.unwrap();
        let result = &answer["data"]["result"][0];
        if result["value"][1] == "1" {
            assert_eq!(result["metric"]["pod"], "agent-1", "{answer}");
            assert_eq!(result["metric"]["namespace"], "local", "{answer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the agent: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        firing(&ready, "McpAgentDown").is_none(),
        "no agent-down alert while the agent serves: {ready}"
    );

    let pid = ready["instances"][0]["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let down = wait_for_status(
        &data_dir,
        "McpAgentDown firing after the kill",
        Duration::from_secs(30),
        |s| firing(s, "McpAgentDown").is_some(),
    )
    .await;
    let alert = firing(&down, "McpAgentDown").unwrap();
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["service"], "mcpulse-agent", "{alert}");
    assert_eq!(down["instances"][0]["phase"], "crash-backoff", "{down}");
    assert!(
        firing(&down, "McpulseTargetDown").is_none(),
        "the critical alert inhibits the warning for the same service, as in production: {down}"
    );

    wait_for_status(
        &data_dir,
        "the agent restarted and the alert resolved",
        Duration::from_secs(60),
        |s| {
            s["restarts"] == 1
                && s["instances"][0]["phase"] == "running"
                && firing(s, "McpAgentDown").is_none()
        },
    )
    .await;

    // Ctrl-C (here SIGTERM) stops everything `up` started, Prometheus included.
    let exit = up
        .terminate(Duration::from_secs(30))
        .expect("up exits on SIGTERM");
    assert!(exit.success(), "up exited with {exit}");
    assert!(
        reqwest::get(format!("http://{prometheus}/-/ready"))
            .await
            .is_err(),
        "Prometheus still answers after up stopped"
    );
    let _ = std::fs::remove_dir_all(data);
}

#[tokio::test]
async fn prometheus_and_alertmanager_do_not_outlive_an_up_that_is_killed_outright() {
    if !monitoring_installed() {
        return;
    }
    let data = std::env::temp_dir().join(format!(
        "mcpulse-up-monitoring-orphans-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    let data_dir = data.to_str().unwrap().to_owned();
    let (up, _) = spawn_up(
        &data_dir,
        &[
            "--agents",
            "1",
            "--prometheus",
            "127.0.0.1:0",
            "--alertmanager",
            "127.0.0.1:0",
        ],
    );
    let ready = wait_for_status(
        &data_dir,
        "monitoring started",
        Duration::from_secs(60),
        |s| s["monitoring"] == true,
    )
    .await;
    let urls: Vec<String> = ["prometheus", "alertmanager"]
        .iter()
        .map(|name| {
            let addr = ready["addresses"][name].as_str().unwrap_or_default();
            format!("http://{addr}/-/ready")
        })
        .collect();
    for url in &urls {
        assert!(
            reqwest::get(url).await.is_ok(),
            "{url} answers while up runs"
        );
    }

    up.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    for url in &urls {
        while reqwest::get(url).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{url} still answers 20 s after up was killed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = std::fs::remove_dir_all(data);
}

/// Whether Prometheus and Alertmanager are installed; says so when they are not, and fails instead when
/// `MCPULSE_REQUIRE_EXTERNAL` is set (CI, where their absence is a setup error).
fn monitoring_installed() -> bool {
    if installed("prometheus")
        && (installed("prometheus-alertmanager") || installed("alertmanager"))
    {
        return true;
    }
    assert!(
        std::env::var_os("MCPULSE_REQUIRE_EXTERNAL").is_none(),
        "prometheus and prometheus-alertmanager are missing; run scripts/setup.sh"
    );
    eprintln!("skipped: prometheus and prometheus-alertmanager are not installed");
    false
}

/// Running and not a zombie (an exited orphan may wait a moment for init to reap it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn agents_do_not_outlive_an_up_that_is_killed_outright() {
    let data = std::env::temp_dir().join(format!("mcpulse-up-orphans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_dir = data.to_str().unwrap().to_owned();
    let (up, _) = spawn_up(&data_dir, &["--agents", "2", "--no-monitoring"]);
    let ready = wait_for_status(
        &data_dir,
        "two agents running",
        Duration::from_secs(60),
        |s| {
            s["instances"].as_array().is_some_and(|agents| {
                agents.len() == 2 && agents.iter().all(|a| a["phase"] == "running")
            })
        },
    )
    .await;
    let pids: Vec<i32> = ready["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| i32::try_from(a["pid"].as_i64().unwrap()).unwrap())
        .collect();
    assert!(pids.iter().all(|pid| alive(*pid)));

    up.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "agents {pids:?} still run 20 s after up was killed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(data);
}
