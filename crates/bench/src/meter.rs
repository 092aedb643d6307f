//! The meter's cost: latency added and throughput kept versus a direct connection, next to nginx, in one run.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::cpu::{CpuSplit, process_cpu, tree_cpu};
use crate::load::{CALL, LoadResult, closed_loop};
use crate::nginx::Nginx;
use crate::pin::{Placement, launched, pinned};
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
    /// The meter with busy polling on.
    MeterBusyPoll,
    Nginx,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Meter => "meter",
            Route::MeterBusyPoll => "meter+poll",
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

/// What answers behind the proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    /// A server that answers at once: the proxy's own cost is all there is to see.
    Echo,
    /// `mcpulse agent --stateless`, a real MCP server on rmcp calling a zero-cost tool: the cheapest real
    /// server, so throughput kept is what a fleet would see at best.
    Agent,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Echo => "echo",
            UpstreamKind::Agent => "agent",
        }
    }

    /// Response formats this upstream can give: the stateless agent answers plain calls with JSON only.
    pub fn formats(self) -> &'static [ResponseFormat] {
        match self {
            UpstreamKind::Echo => &[ResponseFormat::Json, ResponseFormat::Sse],
            UpstreamKind::Agent => &[ResponseFormat::Json],
        }
    }

    fn call(self) -> &'static str {
        match self {
            UpstreamKind::Echo => CALL,
            UpstreamKind::Agent => AGENT_CALL,
        }
    }
}

/// A zero-cost `tools/call` of the sample agent's `echo` tool.
const AGENT_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#;

pub struct MeterBench {
    /// The `mcpulse` binary to run as `mcpulse meter` (a separate process, like nginx).
    pub mcpulse: PathBuf,
    pub clients: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub with_nginx: bool,
    pub upstream: UpstreamKind,
    /// A second meter with `--busy-poll` of this long runs next to the first; zero leaves it out.
    pub busy_poll: Duration,
    /// Where the proxies run: on the machine's cores with everything else (`None`), or on their own.
    pub placement: Option<Placement>,
}

impl MeterBench {
    /// The routes each (format, clients) pair is measured on, in order: direct, the meter, the busy-polling
    /// meter (unless its window is zero), nginx (when asked for).
    pub fn routes(&self) -> Vec<Route> {
        let mut routes = vec![Route::Direct, Route::Meter];
        if !self.busy_poll.is_zero() {
            routes.push(Route::MeterBusyPoll);
        }
        if self.with_nginx {
            routes.push(Route::Nginx);
        }
        routes
    }
}

#[derive(Clone, Debug)]
pub struct MeterBenchRow {
    pub format: ResponseFormat,
    pub clients: usize,
    pub route: Route,
    pub result: LoadResult,
}

impl MeterBenchRow {
    /// `cpu` shared out over the run's answered requests; `None` when none was answered.
    fn per_request(&self, cpu: Duration) -> Option<Duration> {
        let requests = u32::try_from(self.result.latencies.len()).ok()?;
        (requests > 0).then(|| cpu / requests)
    }

    /// CPU time the client and the upstream spend per request.
    pub fn client_and_upstream_cpu_per_request(&self) -> Option<Duration> {
        self.per_request(self.result.cpu.client_and_upstream)
    }

    /// CPU time the proxy spends per request; `None` on a direct connection.
    pub fn proxy_cpu_per_request(&self) -> Option<Duration> {
        self.per_request(self.result.cpu.proxy?)
    }

    /// The best throughput relative to direct a proxy with this CPU cost could keep when client, upstream and
    /// proxy share the machine's cores and the direct run already saturates them: every request then needs the
    /// client's and upstream's CPU plus the proxy's.
    pub fn cpu_bound_vs_direct(&self) -> Option<f64> {
        let ends = self.client_and_upstream_cpu_per_request()?.as_secs_f64();
        let proxy = self.proxy_cpu_per_request()?.as_secs_f64();
        (ends + proxy > 0.0).then(|| ends / (ends + proxy))
    }
}

pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
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

/// Starts `mcpulse` with `args` (on `cpus` when given), logging warnings only; `what` names it in errors.
fn spawn_mcpulse(
    mcpulse: &Path,
    args: &[String],
    cpus: Option<&[usize]>,
    what: &str,
) -> Result<KillOnDrop, BenchError> {
    pinned(mcpulse, cpus)
        .args(args)
        .env("MCPULSE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .map_err(|source| BenchError::Io {
            what: format!("start {} {what}", launched(mcpulse.display(), cpus)),
            source,
        })
}

/// Starts `mcpulse meter` on `listen`, with its metrics on `metrics`, in front of `upstream`, busy polling for
/// `busy_poll` after traffic, on `cpus` when given.
pub(crate) fn start_meter(
    mcpulse: &Path,
    listen: SocketAddr,
    metrics: SocketAddr,
    upstream: SocketAddr,
    busy_poll: Duration,
    cpus: Option<&[usize]>,
) -> Result<KillOnDrop, BenchError> {
    let args = meter_args(listen, metrics, upstream, Some(busy_poll));
    spawn_mcpulse(mcpulse, &args, cpus, "meter")
}

/// The `mcpulse` arguments of a meter on `listen`, with its metrics on `metrics`, in front of `upstream`, busy
/// polling for `busy_poll` when given.
pub(crate) fn meter_args(
    listen: SocketAddr,
    metrics: SocketAddr,
    upstream: SocketAddr,
    busy_poll: Option<Duration>,
) -> Vec<String> {
    let mut args = vec![
        "meter".into(),
        "--listen".into(),
        listen.to_string(),
        "--metrics-listen".into(),
        metrics.to_string(),
        "--upstream".into(),
        format!("http://{upstream}"),
    ];
    if let Some(window) = busy_poll {
        args.extend(["--busy-poll".into(), format!("{}ns", window.as_nanos())]);
    }
    args
}

/// Starts the sample agent, stateless, with its metrics on a free port and no registry.
fn start_agent(mcpulse: &Path, listen: SocketAddr) -> Result<KillOnDrop, BenchError> {
    let args = [
        "agent".into(),
        "--stateless".into(),
        "--listen".into(),
        listen.to_string(),
        "--metrics-listen".into(),
        free_addr()?.to_string(),
    ];
    spawn_mcpulse(mcpulse, &args, None, "agent")
}

/// Runs every (format, clients) pair against direct, the meter (with and without busy polling) and nginx back to
/// back, so all see the same machine conditions. With a placement, this process stays pinned afterwards.
/// `progress` hears about each run before it starts.
pub async fn run_meter_bench(
    bench: &MeterBench,
    mut progress: impl FnMut(&str),
) -> Result<Vec<MeterBenchRow>, BenchError> {
    if let Some(placement) = &bench.placement {
        // Before the upstream starts, so the agent inherits the placement.
        placement.pin_this_process_to_client_and_upstream()?;
    }
    let proxy_cpus = bench.placement.as_ref().map(|p| p.proxy.as_slice());
    let (_echo, agent, upstream_addr) = match bench.upstream {
        UpstreamKind::Echo => {
            let echo = FastUpstream::start().await?;
            let addr = echo.addr;
            (Some(echo), None, addr)
        }
        UpstreamKind::Agent => {
            let addr = free_addr()?;
            let agent = start_agent(&bench.mcpulse, addr)?;
            wait_listening(addr, "mcpulse agent").await?;
            (None, Some(agent), addr)
        }
    };
    // Each route with the process to charge its CPU to: none for a direct connection.
    // Each route with its address and the process to charge its CPU to: none for a direct connection. The
    // proxies run until the last measurement, when these are dropped.
    let mut routes = Vec::new();
    let mut meters = Vec::new();
    let mut _nginx = None;
    for route in bench.routes() {
        let (addr, proxy) = match route {
            Route::Direct => (upstream_addr, None),
            Route::Meter | Route::MeterBusyPoll => {
                let busy_poll = if route == Route::MeterBusyPoll {
                    bench.busy_poll
                } else {
                    Duration::ZERO
                };
                let addr = free_addr()?;
                let meter = start_meter(
                    &bench.mcpulse,
                    addr,
                    free_addr()?,
                    upstream_addr,
                    busy_poll,
                    proxy_cpus,
                )?;
                wait_listening(addr, "mcpulse meter").await?;
                let pid = meter.0.id();
                meters.push(meter);
                (addr, Some(pid))
            }
            Route::Nginx => {
                let nginx = Nginx::start(free_addr()?, upstream_addr, proxy_cpus)?;
                wait_listening(nginx.addr, "nginx").await?;
                let started = (nginx.addr, Some(nginx.pid()));
                _nginx = Some(nginx);
                started
            }
        };
        routes.push((route, addr, proxy));
    }
    // The client (and the echo upstream) run in this process, whose children are the proxies: count it alone.
    let client_and_upstream: Vec<u32> = std::iter::once(std::process::id())
        .chain(agent.as_ref().map(|agent| agent.0.id()))
        .collect();
    let mut rows = Vec::new();
    for &format in bench.upstream.formats() {
        for &clients in &bench.clients {
            for &(route, addr, proxy) in &routes {
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
                let read_cpu = || CpuSplit {
                    client_and_upstream: client_and_upstream
                        .iter()
                        .map(|&pid| process_cpu(pid))
                        .sum(),
                    proxy: proxy.map(tree_cpu),
                };
                let result = closed_loop(
                    &url,
                    bench.upstream.call(),
                    clients,
                    bench.warmup,
                    bench.duration,
                    &read_cpu,
                )
                .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(requests: u32, ends_cpu_ms: u64, proxy_cpu_ms: Option<u64>) -> MeterBenchRow {
        MeterBenchRow {
            format: ResponseFormat::Json,
            clients: 64,
            route: if proxy_cpu_ms.is_some() {
                Route::Meter
            } else {
                Route::Direct
            },
            result: LoadResult {
                latencies: vec![Duration::from_micros(100); requests as usize],
                elapsed: Duration::from_secs(1),
                errors: 0,
                cpu: CpuSplit {
                    client_and_upstream: Duration::from_millis(ends_cpu_ms),
                    proxy: proxy_cpu_ms.map(Duration::from_millis),
                },
            },
        }
    }

    #[test]
    fn routes_follow_the_options_in_a_fixed_order() {
        let bench = |busy_poll: Duration, with_nginx: bool| MeterBench {
            mcpulse: PathBuf::from("mcpulse"),
            clients: vec![1],
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            with_nginx,
            upstream: UpstreamKind::Echo,
            busy_poll,
            placement: None,
        };
        let poll = Duration::from_micros(200);
        assert_eq!(
            bench(poll, true).routes(),
            [
                Route::Direct,
                Route::Meter,
                Route::MeterBusyPoll,
                Route::Nginx
            ]
        );
        assert_eq!(
            bench(Duration::ZERO, false).routes(),
            [Route::Direct, Route::Meter],
            "a zero window and no nginx leave their routes out"
        );
    }

    #[test]
    fn the_cpu_bound_shares_each_request_between_the_ends_and_the_proxy() {
        // 1,000 requests: the ends spend 20 µs each, the proxy 5 µs.
        let proxied = row(1000, 20, Some(5));
        assert_eq!(
            proxied.client_and_upstream_cpu_per_request(),
            Some(Duration::from_micros(20))
        );
        assert_eq!(
            proxied.proxy_cpu_per_request(),
            Some(Duration::from_micros(5))
        );
        let bound = proxied
            .cpu_bound_vs_direct()
            .expect("a proxied row has a bound");
        assert!((bound - 0.8).abs() < 1e-9, "20 / (20 + 5), got {bound}");
        assert_eq!(row(1000, 20, None).cpu_bound_vs_direct(), None);
        assert_eq!(
            row(1000, 0, Some(0)).cpu_bound_vs_direct(),
            None,
            "no CPU spent, no bound"
        );
        assert_eq!(
            row(0, 20, Some(5)).proxy_cpu_per_request(),
            None,
            "with no request answered there is nothing to share the CPU over"
        );
    }
}
