//! Helpers for tests that run the real `mcpulse` binary next to programs from other ecosystems.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpulse_telemetry::Exposition;

pub const MCPULSE: &str = env!("CARGO_BIN_EXE_mcpulse");

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The venv Python with the official MCP SDK (installed by scripts/setup.sh). `None` means skip the test,
/// unless MCPULSE_REQUIRE_EXTERNAL is set (as in scripts/test.sh), where a missing tool is a failure.
pub fn python_with_mcp() -> Option<PathBuf> {
    let python = workspace_root().join(".venv/bin/python");
    let usable = Command::new(&python)
        .args(["-c", "import mcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(python);
    }
    let why = format!(
        "{} with the `mcp` package is missing; run scripts/setup.sh",
        python.display()
    );
    assert!(
        std::env::var_os("MCPULSE_REQUIRE_EXTERNAL").is_none(),
        "{why}"
    );
    eprintln!("skipped: {why}");
    None
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped when dropped, so a failing test leaves nothing behind: SIGTERM first, so that
/// `mcpulse up` stops the processes it started, then SIGKILL.
pub struct Running(pub Child);

impl Running {
    /// SIGKILL: the process gets no chance to deregister or clean up, as in a crash.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM, then waits up to `grace` for the exit; `None` if it is still running.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(20)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn spawn(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Running {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    Running(child)
}

/// Where an `mcpulse up` under test listens.
pub struct UpPorts {
    pub gateway: u16,
    pub console: u16,
}

/// Starts `mcpulse up --data-dir DATA_DIR` with its gateway, console and registry on free loopback ports, plus
/// `args`; output is discarded.
pub fn spawn_up(data_dir: &str, args: &[&str]) -> (Running, UpPorts) {
    let ports = UpPorts {
        gateway: free_port(),
        console: free_port(),
    };
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let child = Command::new(MCPULSE)
        .args(["up", "--data-dir", data_dir])
        .args([
            "--gateway",
            &addr(ports.gateway),
            "--console",
            &addr(ports.console),
        ])
        .args(["--registry", &addr(free_port())])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcpulse up");
    (Running(child), ports)
}

/// Waits until something accepts HTTP on `url` (any status).
pub async fn wait_for_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered at {url} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn scrape(metrics_port: u16) -> Exposition {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Exposition::parse(&text).unwrap_or_else(|e| panic!("unparseable exposition: {e}\n{text}"))
}

/// Sum of every series of a family's samples named `sample` whose labels include all of `labels`.
pub fn sum(metrics: &Exposition, sample: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == sample)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}
