//! The recommender against a real Prometheus: synthetic series are backfilled with `promtool`, a
//! Prometheus serves them on loopback, and the `mcpulse recommend` queries go through its HTTP API.
//!
//! Skipped (with a note on stderr) when `prometheus` or `promtool` is not installed (Debian package
//! `prometheus`). The HTTP client here is a few lines of HTTP/1.0, since this crate has no HTTP stack.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    CpuAmount, Matrix, MemoryAmount, PrometheusHistory, Queries, QueryResponse, Recommender,
    VpaConfig, parse_matrix, query_windows,
};

const MI: u64 = 1024 * 1024;

/// Kills Prometheus and removes the data directory however the test ends.
struct Server {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One day of minute samples ending an hour ago: pods `web-1`/`web-2`, container `app` at 0.2 cores
/// (0.5 during 8 busy hours) and 400Mi (500Mi busy), requests 500m/512Mi, limits 1/1Gi, and an OOM
/// kill of `web-2` six hours before the end.
fn openmetrics(start: i64, end: i64) -> String {
    let busy = |t: i64| (9..17).contains(&((t / 3600) % 24));
    let pods = ["web-1", "web-2"];
    let labels = |pod: &str| format!("namespace=\"shop\",pod=\"{pod}\",container=\"app\"");
    let mut out = String::from("# TYPE container_cpu_usage_seconds_total counter\n");
    for pod in pods {
        let mut total = 0.0;
        for t in (start..=end).step_by(60) {
            total += if busy(t) { 0.5 } else { 0.2 } * 60.0;
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{{}}} {total:.3} {t}",
                labels(pod)
            );
        }
    }
    out.push_str("# TYPE container_memory_working_set_bytes gauge\n");
    for pod in pods {
        for t in (start..=end).step_by(60) {
            let v = if busy(t) { 500 * MI } else { 400 * MI };
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{{}}} {v} {t}",
                labels(pod)
            );
        }
    }
    out.push_str("# TYPE kube_pod_container_status_last_terminated_reason gauge\n");
    for t in (start..=end).step_by(60) {
        let v = u8::from(t >= end - 6 * 3600);
        let _ = writeln!(
            out,
            "kube_pod_container_status_last_terminated_reason{{{},reason=\"OOMKilled\"}} {v} {t}",
            labels("web-2")
        );
    }
    for (family, cpu, memory) in [
        ("kube_pod_container_resource_requests", "0.5", 512 * MI),
        ("kube_pod_container_resource_limits", "1", 1024 * MI),
    ] {
        let _ = writeln!(out, "# TYPE {family} gauge");
        for pod in pods {
            for t in (start..=end).step_by(600) {
                let _ = writeln!(
                    out,
                    "{family}{{{},resource=\"cpu\"}} {cpu} {t}",
                    labels(pod)
                );
                let _ = writeln!(
                    out,
                    "{family}{{{},resource=\"memory\"}} {memory} {t}",
                    labels(pod)
                );
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn start_prometheus(start: i64, end: i64) -> Server {
    let dir = std::env::temp_dir().join(format!("mcpulse-vpa-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tsdb")).expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let mut server = Server {
        child: None,
        dir: dir.clone(),
        port,
    };
    std::fs::write(dir.join("data.om"), openmetrics(start, end)).expect("write series");
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\n",
    )
    .expect("write config");
    let backfill = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("data.om"))
        .arg(dir.join("tsdb"))
        .stdout(Stdio::null())
        .output()
        .expect("run promtool");
    assert!(
        backfill.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&backfill.stderr)
    );
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=30d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    server.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(port, "/-/ready").is_ok_and(|body| body.contains("Ready")) {
        assert!(
            Instant::now() < deadline,
            "prometheus did not become ready in 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn get(port: u16, path: &str) -> Result<String, std::io::Error> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn matrix(port: u16, query: &str, windows: &[(Timestamp, Timestamp)]) -> Matrix {
    let mut all = Matrix::default();
    for (from, to) in windows {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            encode(query),
            from.millis() / 1000,
            to.millis() / 1000
        );
        let body = get(port, &path).expect("query answered");
        let response: QueryResponse = serde_json::from_str(&body).expect("Prometheus JSON");
        all.merge(parse_matrix(response, query).expect("a matrix"))
            .expect("within bounds");
    }
    all
}

#[test]
fn recommends_from_a_real_prometheus() {
    if !installed("prometheus") || !installed("promtool") {
        eprintln!(
            "skipped: `prometheus` and `promtool` are not installed (apt-get install prometheus)"
        );
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let end = now / 60 * 60 - 3600;
    let start = end - 86_400;
    let server = start_prometheus(start, end);

    let q = Queries::new("shop", "web", None, "300s").expect("valid names");
    let windows = query_windows(
        Timestamp::from_secs(start),
        Timestamp::from_secs(end),
        60_000,
    )
    .expect("valid range");
    let history = PrometheusHistory {
        cpu: matrix(server.port, &q.cpu, &windows),
        memory: matrix(server.port, &q.memory, &windows),
        oom: matrix(server.port, &q.oom, &windows),
        cpu_requests: matrix(server.port, &q.cpu_requests, &windows),
        memory_requests: matrix(server.port, &q.memory_requests, &windows),
        cpu_limits: matrix(server.port, &q.cpu_limits, &windows),
        memory_limits: matrix(server.port, &q.memory_limits, &windows),
    };
    assert_eq!(history.cpu.series.len(), 2, "both pods' CPU");
    let mut r = Recommender::new(VpaConfig::default()).expect("valid config");
    history.feed(&mut r).expect("valid names");
    let stats = r.stats();
    assert_eq!(stats.ooms, 1, "{stats:?}");
    assert!(stats.cpu_samples > 2 * 1400, "{stats:?}");

    let rec = r.recommend(None, None).expect("history");
    let app = &rec.container_recommendations[0];
    assert_eq!(app.container_name, "app");
    // p90 of usage is the busy 0.5 cores; plus 15 % is 575m, up to one 5 % bucket above.
    let cpu = app.target.cpu.expect("cpu").0;
    assert!((575..=610).contains(&cpu), "cpu target {cpu}m");
    // The OOM peak: max(512Mi request, 500Mi peak) × 1.2 = 614.4Mi, plus 15 %: above 700Mi.
    assert!(
        app.target.memory > Some(MemoryAmount((700 * MI) as i64)),
        "{app:?}"
    );
    assert!(app.lower_bound.cpu <= app.target.cpu && app.target.cpu <= app.upper_bound.cpu);
    let now = history
        .current_resources("app")
        .expect("kube-state-metrics series");
    assert_eq!(now.requests.cpu, Some(CpuAmount(500)));
    assert_eq!(now.limits.memory, Some(MemoryAmount((1024 * MI) as i64)));
}
