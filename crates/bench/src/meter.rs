//! The meter's cost: latency added and throughput kept versus a direct connection, next to nginx, in one run.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::load::{LoadResult, closed_loop};
use crate::nginx::Nginx;
use crate::upstream::FastUpstream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Sse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Direct,
    Meter,
    Nginx,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Meter => "meter",
            Route::Nginx => "nginx",
        }
    }
}

impl ResponseFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFormat::Json => "json",
            ResponseFormat::Sse => "sse",
        }
    }
}

pub struct MeterBench {
    /// The `mcpulse` binary to run as `mcpulse meter` (a separate process, like nginx).
    pub mcpulse: PathBuf,
    pub clients: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub with_nginx: bool,
}

#[derive(Clone, Debug)]
pub struct MeterBenchRow {
    pub format: ResponseFormat,
    pub clients: usize,
    pub route: Route,
    pub result: LoadResult,
}

pub(crate) struct MeterProcess(pub(crate) Child);

impl Drop for MeterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_addr() -> Result<SocketAddr, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| BenchError::Io {
            what: "find a free port".into(),
            source,
        })
}

pub(crate) async fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::NotListening(what.into()))
}

/// Runs every (format, clients) pair against direct, meter and nginx back to back, so the three see the same
/// machine conditions. `progress` hears about each run before it starts.
pub async fn run_meter_bench(
    bench: &MeterBench,
    mut progress: impl FnMut(&str),
) -> Result<Vec<MeterBenchRow>, BenchError> {
    let upstream = FastUpstream::start().await?;
    let meter_addr = free_addr()?;
    let metrics_addr = free_addr()?;
    let _meter = MeterProcess(
        Command::new(&bench.mcpulse)
            .args([
                "meter",
                "--listen",
                &meter_addr.to_string(),
                "--metrics-listen",
                &metrics_addr.to_string(),
            ])
            .args(["--upstream", &format!("http://{}", upstream.addr)])
            .env("MCPULSE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| BenchError::Io {
                what: format!("start {} meter", bench.mcpulse.display()),
                source,
            })?,
    );
    wait_listening(meter_addr, "mcpulse meter").await?;
    let nginx = if bench.with_nginx {
        let nginx = Nginx::start(free_addr()?, upstream.addr)?;
        wait_listening(nginx.addr, "nginx").await?;
        Some(nginx)
    } else {
        None
    };

    let mut routes = vec![(Route::Direct, upstream.addr), (Route::Meter, meter_addr)];
    if let Some(nginx) = &nginx {
        routes.push((Route::Nginx, nginx.addr));
    }
    let mut rows = Vec::new();
    for format in [ResponseFormat::Json, ResponseFormat::Sse] {
        for &clients in &bench.clients {
            for &(route, addr) in &routes {
                progress(&format!(
                    "{} responses, {clients} clients, {}",
                    format.as_str(),
                    route.as_str()
                ));
                let query = if format == ResponseFormat::Sse {
                    "?sse"
                } else {
                    ""
                };
                let url = format!("http://{addr}/mcp{query}");
                let result = closed_loop(&url, clients, bench.warmup, bench.duration).await;
                rows.push(MeterBenchRow {
                    format,
                    clients,
                    route,
                    result,
                });
            }
        }
    }
    Ok(rows)
}
