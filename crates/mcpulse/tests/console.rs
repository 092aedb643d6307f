//! The console of `mcpulse up`, loaded in a real headless Chromium during a run: the page renders, and its
//! charts and JSON carry the run's data.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        let why = "chromium is not installed; run scripts/setup.sh";
        assert!(
            std::env::var_os("MCPULSE_REQUIRE_EXTERNAL").is_none(),
            "{why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

#[tokio::test]
async fn the_console_shows_live_charts_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    let data = std::env::temp_dir().join(format!("mcpulse-console-{}", std::process::id()));
    let data_dir = data.to_str().unwrap().to_owned();
    // Prometheus and Alertmanager, when installed, on free ports: a developer's own may hold 9090.
    let (_up, UpPorts { gateway, console }) = spawn_up(
        &data_dir,
        &[
            "--agents",
            "2",
            "--sync-period",
            "2s",
            "--prometheus",
            "127.0.0.1:0",
            "--alertmanager",
            "127.0.0.1:0",
        ],
    );
    let base = format!("http://127.0.0.1:{console}");
    wait_for_http(&format!("{base}/api/status")).await;
    // Give the gateway time to discover the agents, then drive a little traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let load = tokio::process::Command::new(MCPULSE)
            .args([
                "load",
                "--url",
                &format!("http://127.0.0.1:{gateway}/mcp"),
                "--rate",
                "20",
                "--duration",
                "8s",
                "--json",
            ])
            .output()
            .await
            .unwrap();
        if load.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "load never started: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let history: Value = reqwest::get(format!("{base}/api/history"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let samples = history["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["rate"].as_f64().unwrap_or(0.0) > 5.0),
        "the history saw the load"
    );
    for chart in ["load", "replicas", "latency", "queue"] {
        let svg = reqwest::get(format!("{base}/chart/{chart}.svg"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(svg.contains("<polyline"), "{chart} chart has a data line");
    }

    let shot = data.join("console.png");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            data.join("chromium").display()
        ))
        .args(["--window-size=1400,1100", "--virtual-time-budget=4000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{base}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 30_000,
        "a page with four charts is not a {} byte picture",
        png.len()
    );
    if let Some(keep) = std::env::var_os("MCPULSE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let _ = std::fs::remove_dir_all(data);
}
