//! `mcpulse bench`: measurements against a baseline and a peer in one run, printed as a table.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mcpulse_bench::{InstructionsBench, MeterBench, MeterBenchRow, Placement, Route, UpstreamKind};

use crate::units::parse_duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Subcommand, Debug)]
enum BenchTarget {
    /// Latency the meter adds and throughput it keeps, versus a direct connection and versus nginx
    #[command(
        after_long_help = "Runs a minimal MCP-shaped upstream (or the sample agent: --upstream agent), `mcpulse meter` and nginx (Debian package) on \
loopback, then for JSON and SSE responses and each client count measures direct, through the meter and through \
nginx back to back; `meter+poll` is a second meter with --busy-poll (see --busy-poll). `added` columns are the \
difference to direct; `vs direct` is throughput relative to direct. `CPU µs/req` is the CPU time per request of \
the client and upstream together (direct rows) or of the proxy alone (read from /proc). `CPU bound` is the most a \
proxy with that cost could keep of direct's throughput when everything shares the machine's cores and direct \
already saturates them: ends / (ends + proxy)."
    )]
    Meter(MeterArgs),
    /// Registry throughput and latency (list, get, heartbeat, register) with 1,000 instances on SQLite, and on PostgreSQL
    /// when --database-url is given
    Registry(crate::cmd::registry::RegistryBenchArgs),
    /// Resident memory of the meter while it holds many idle sessions and open SSE streams
    MeterMemory(MemoryArgs),
}

#[derive(Args, Debug)]
struct MemoryArgs {
    /// Sessions opened (initialize) and left idle
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// GET event streams opened and held
    #[arg(long, default_value_t = 200)]
    streams: usize,
}

#[derive(Args, Debug)]
struct MeterArgs {
    /// Concurrent closed-loop clients, one run per value
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Measured time per run
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before each run
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Skip the nginx comparison
    #[arg(long)]
    no_nginx: bool,
    /// What answers behind the proxies: `echo` answers at once, so the table shows the proxies' own cost;
    /// `agent` is `mcpulse agent --stateless` calling a zero-cost tool over rmcp, the cheapest real MCP
    /// server, so `vs direct` is the throughput a fleet keeps at best (JSON only)
    #[arg(long, value_enum, default_value = "echo")]
    upstream: UpstreamArg,
    /// Also measure a meter started with `--busy-poll` of this long (route `meter+poll`), next to the default
    /// meter in the same run; 0s leaves it out
    #[arg(long, default_value = "200us", value_parser = parse_duration, conflicts_with = "instructions")]
    busy_poll: Duration,
    /// Give the proxies the last CPU to themselves and keep the client and the upstream on the others, as a
    /// sidecar with its own CPU request runs apart from its clients. Without it everything shares every core,
    /// so a proxy's CPU comes out of the client's and the upstream's (see the `CPU bound` column)
    #[arg(long, conflicts_with = "instructions")]
    pin: bool,
    /// Count instructions per proxied JSON request under valgrind's callgrind instead of timing: repeatable
    /// on a busy machine. Two runs of N and M requests (--requests N,M) per proxy; the difference cancels
    /// start-up and shutdown. Needs valgrind
    #[arg(long)]
    instructions: bool,
    /// With --instructions: requests in the short and in the long run
    #[arg(long, value_delimiter = ',', num_args = 2, default_value = "2000,4000")]
    requests: Vec<usize>,
}

pub async fn run(args: BenchArgs) -> Result<i32> {
    match args.target {
        BenchTarget::Meter(args) => meter(args).await,
        BenchTarget::MeterMemory(args) => memory(args).await,
        BenchTarget::Registry(args) => crate::cmd::registry::bench(args).await,
    }
}

async fn memory(args: MemoryArgs) -> Result<i32> {
    eprintln!(
        "opening {} sessions and {} SSE streams through the meter...",
        args.sessions, args.streams
    );
    let report =
        mcpulse_bench::run_memory_bench(&std::env::current_exe()?, args.sessions, args.streams)
            .await?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("{:<36} {:>10}", "meter state", "RSS MiB");
    println!(
        "{:<36} {:>10.1}",
        "idle, just started",
        mib(report.idle_rss_bytes)
    );
    let loaded = format!(
        "{} sessions + {} GET streams",
        report.sessions, report.streams
    );
    println!("{:<36} {:>10.1}", loaded, mib(report.loaded_rss_bytes));
    println!(
        "meter's own gauges: mcp_server_sessions_active={} mcp_sse_streams_open{{stream=\"get\"}}={}",
        report.metered.0, report.metered.1
    );
    Ok(0)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum UpstreamArg {
    Echo,
    Agent,
}

async fn meter(args: MeterArgs) -> Result<i32> {
    if args.instructions {
        return instructions(args).await;
    }
    mcpulse_percore::check_busy_poll(args.busy_poll).context("--busy-poll")?;
    let bench = MeterBench {
        mcpulse: std::env::current_exe()?,
        clients: args.clients,
        warmup: args.warmup,
        duration: args.duration,
        with_nginx: !args.no_nginx,
        upstream: match args.upstream {
            UpstreamArg::Echo => UpstreamKind::Echo,
            UpstreamArg::Agent => UpstreamKind::Agent,
        },
        busy_poll: args.busy_poll,
        placement: args.pin.then(Placement::split_last).transpose()?,
    };
    if let Some(placement) = &bench.placement {
        eprintln!(
            "proxies pinned to CPUs {:?}; client and upstream on CPUs {:?}",
            placement.proxy, placement.client_and_upstream
        );
    }
    let runs = bench.upstream.formats().len() * bench.clients.len() * bench.routes().len();
    let mut done = 0;
    let rows = mcpulse_bench::run_meter_bench(&bench, |what| {
        done += 1;
        eprintln!(
            "[{done}/{runs}] {what} ({:?})",
            bench.warmup + bench.duration
        );
    })
    .await?;
    print!("{}", table(&rows, bench.placement.is_none()));
    Ok(0)
}

async fn instructions(args: MeterArgs) -> Result<i32> {
    let [short, long] = args.requests[..] else {
        anyhow::bail!("--requests takes two counts, e.g. --requests 2000,4000");
    };
    let bench = InstructionsBench {
        mcpulse: std::env::current_exe()?,
        requests: (short, long),
        clients: args.clients.first().copied().unwrap_or(1),
        with_nginx: !args.no_nginx,
        out_dir: std::env::temp_dir().join("mcpulse-instructions"),
    };
    let rows = mcpulse_bench::run_instructions_bench(&bench, |what| eprintln!("{what}...")).await?;
    print!("{}", mcpulse_bench::instructions_table(&rows));
    for row in &rows {
        println!(
            "profile of {}: callgrind_annotate {}",
            row.route.as_str(),
            row.profile.display()
        );
    }
    Ok(0)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// `shared_cores`: the proxies ran on the cores of the client and the upstream, so the CPU bound applies.
fn table(rows: &[MeterBenchRow], shared_cores: bool) -> String {
    let mut out = format!(
        "{:<6} {:>7} {:<10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>6} {:>10} {:>10}\n",
        "format",
        "clients",
        "route",
        "p50 µs",
        "p99 µs",
        "added p50",
        "added p99",
        "req/s",
        "vs direct",
        "errors",
        "CPU µs/req",
        "CPU bound"
    );
    for row in rows {
        let direct = rows.iter().find(|r| {
            r.format == row.format && r.clients == row.clients && r.route == Route::Direct
        });
        let (added50, added99, ratio) = match direct {
            Some(d) if row.route != Route::Direct => (
                format!(
                    "{:.1}",
                    micros(row.result.percentile(50.0)) - micros(d.result.percentile(50.0))
                ),
                format!(
                    "{:.1}",
                    micros(row.result.percentile(99.0)) - micros(d.result.percentile(99.0))
                ),
                format!(
                    "{:.1} %",
                    100.0 * row.result.throughput() / d.result.throughput().max(f64::EPSILON)
                ),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        // Direct: what the client and the upstream spend; a proxy: what the proxy alone spends.
        let cpu = row
            .proxy_cpu_per_request()
            .or_else(|| row.client_and_upstream_cpu_per_request())
            .map_or_else(|| "-".to_owned(), |cpu| format!("{:.1}", micros(cpu)));
        let bound = row
            .cpu_bound_vs_direct()
            .filter(|_| shared_cores)
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1} %", 100.0 * b));
        out += &format!(
            "{:<6} {:>7} {:<10} {:>9.1} {:>9.1} {:>10} {:>10} {:>10.0} {:>9} {:>6} {:>10} {:>10}\n",
            row.format.as_str(),
            row.clients,
            row.route.as_str(),
            micros(row.result.percentile(50.0)),
            micros(row.result.percentile(99.0)),
            added50,
            added99,
            row.result.throughput(),
            ratio,
            row.result.errors,
            cpu,
            bound
        );
    }
    out
}
