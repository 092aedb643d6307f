//! Instructions per proxied request, counted by callgrind: repeatable on a loaded machine, unlike wall-clock time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::BenchError;
use crate::load::CALL;
use crate::meter::{Route, free_addr, meter_args};
use crate::nginx::{self, Processes};
use crate::upstream::FastUpstream;

/// Valgrind runs a program 20-100 times slower and reads all of its debug info before `main`: allow for both.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Graceful shutdown plus callgrind writing its profile.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Two profiled runs per proxy that differ only in the number of requests, so start-up, warm-up and shutdown
/// cancel out of the difference.
#[derive(Clone, Debug)]
pub struct InstructionsBench {
    /// The `mcpulse` binary to run as `mcpulse meter` under callgrind.
    pub mcpulse: PathBuf,
    /// Requests in the short and in the long run.
    pub requests: (usize, usize),
    /// Concurrent closed-loop clients driving each run.
    pub clients: usize,
    pub with_nginx: bool,
    /// Where the callgrind profiles are kept, for `callgrind_annotate`.
    pub out_dir: PathBuf,
}

#[derive(Clone, Debug)]
pub struct InstructionsRow {
    pub route: Route,
    /// (requests, instructions) of the short run.
    pub short: (usize, u64),
    /// (requests, instructions) of the long run.
    pub long: (usize, u64),
    /// The long run's profile.
    pub profile: PathBuf,
}

impl InstructionsRow {
    /// Instructions that one more request costs: the difference between the runs over the extra requests.
    pub fn per_request(&self) -> f64 {
        let extra = self.long.0.saturating_sub(self.short.0).max(1);
        (self.long.1 as f64 - self.short.1 as f64) / extra as f64
    }
}

impl InstructionsBench {
    fn validate(&self) -> Result<(), BenchError> {
        let (short, long) = self.requests;
        if self.clients == 0 {
            return Err(BenchError::Invalid(
                "--clients must be at least 1".to_owned(),
            ));
        }
        if short < self.clients || long <= short {
            return Err(BenchError::Invalid(format!(
                "requests ({short}, {long}) must grow from the short run to the long one, and the short run needs \
                 at least one request per client ({}); e.g. 2000,4000",
                self.clients
            )));
        }
        Ok(())
    }
}

/// Profiles the meter (and nginx) in front of the cheap upstream; `progress` hears about each run before it starts.
pub async fn run_instructions_bench(
    bench: &InstructionsBench,
    mut progress: impl FnMut(&str),
) -> Result<Vec<InstructionsRow>, BenchError> {
    bench.validate()?;
    std::fs::create_dir_all(&bench.out_dir).map_err(|source| BenchError::Io {
        what: format!("create {}", bench.out_dir.display()),
        source,
    })?;
    let upstream = FastUpstream::start().await?;
    let mut routes = vec![Route::Meter];
    if bench.with_nginx {
        routes.push(Route::Nginx);
    }
    let mut rows = Vec::new();
    for route in routes {
        let mut counted = Vec::new();
        for requests in [bench.requests.0, bench.requests.1] {
            progress(&format!(
                "{} under callgrind, {requests} requests",
                route.as_str()
            ));
            let profile = bench
                .out_dir
                .join(format!("callgrind.{}-{requests}.out", route.as_str()));
            let total = profile_run(bench, route, upstream.addr, requests, &profile).await?;
            counted.push(((requests, total), profile));
        }
        if let [(short, _), (long, profile)] = counted.as_slice() {
            rows.push(InstructionsRow {
                route,
                short: *short,
                long: *long,
                profile: profile.clone(),
            });
        }
    }
    Ok(rows)
}

/// The rows as a table, with each proxy's cost relative to the first row's.
pub fn instructions_table(rows: &[InstructionsRow]) -> String {
    let mut out = format!(
        "{:<7} {:>9} {:>15} {:>9} {:>15} {:>12} {:>9}\n",
        "route", "requests", "instructions", "requests", "instructions", "instr/req", "vs first"
    );
    let first = rows.first().map_or(f64::NAN, InstructionsRow::per_request);
    for row in rows {
        out += &format!(
            "{:<7} {:>9} {:>15} {:>9} {:>15} {:>12.0} {:>8.2}x\n",
            row.route.as_str(),
            row.short.0,
            row.short.1,
            row.long.0,
            row.long.1,
            row.per_request(),
            row.per_request() / first
        );
    }
    out
}

/// One proxy process under callgrind: started, driven with `requests` requests, stopped; its instruction total.
async fn profile_run(
    bench: &InstructionsBench,
    route: Route,
    upstream: SocketAddr,
    requests: usize,
    profile: &Path,
) -> Result<u64, BenchError> {
    let listen = free_addr()?;
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(format!("--log-file={}.log", profile.display()));
    match route {
        Route::Meter => {
            command
                .arg(&bench.mcpulse)
                .args(meter_args(listen, free_addr()?, upstream, None))
                .env("MCPULSE_LOG", "warn");
        }
        Route::Nginx => {
            let dir = bench.out_dir.join(format!("nginx-{requests}"));
            command.arg(nginx::binary()).args(nginx::prepare(
                &dir,
                listen,
                upstream,
                Processes::Single,
            )?);
        }
        Route::Direct => {
            return Err(BenchError::Invalid(
                "a direct connection has no proxy process to profile".to_owned(),
            ));
        }
        Route::MeterBusyPoll => {
            return Err(BenchError::Invalid(
                "a busy-polling meter spends instructions waiting, so counting them measures the wait, not the work"
                    .to_owned(),
            ));
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BenchError::Io {
            what: "start valgrind (apt-get install valgrind)".to_owned(),
            source,
        })?;
    let what = format!("{} under callgrind", route.as_str());
    wait_listening(&mut child, listen, &what).await?;
    let failed = drive(&format!("http://{listen}/mcp"), bench.clients, requests).await;
    stop(&mut child, &what).await?;
    if failed > 0 {
        return Err(BenchError::Requests {
            what,
            failed,
            requests,
        });
    }
    let text = std::fs::read_to_string(profile).map_err(|source| BenchError::Io {
        what: format!("read the callgrind profile {}", profile.display()),
        source,
    })?;
    total_instructions(&text).ok_or_else(|| BenchError::Profile(profile.to_path_buf()))
}

async fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        // A process that exited (bad flag, busy port) will never listen: say so now, not in three minutes.
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Exited {
                what: what.to_owned(),
                status: status.to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NotListening(what.to_owned()))
}

/// SIGTERM, then wait: both the meter and nginx exit cleanly on it, which is when callgrind writes the profile.
/// The signal is repeated because under valgrind one can land just before nginx blocks in `epoll_wait` with no
/// timeout, where nginx would not look at it again until the next event.
async fn stop(child: &mut Child, what: &str) -> Result<(), BenchError> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| BenchError::Exited {
            what: what.to_owned(),
            status: "gone before the requests ended".to_owned(),
        })?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(source)) => {
                return Err(BenchError::Io {
                    what: format!("wait for {what} to exit"),
                    source,
                });
            }
            Err(_) => continue,
        }
    }
    Err(BenchError::Io {
        what: format!("wait for {what} to exit"),
        source: std::io::Error::other(format!("still running {STOP_TIMEOUT:?} after SIGTERM")),
    })
}

/// Sends exactly `total` `tools/call` requests from `clients` closed loops; returns how many failed.
async fn drive(url: &str, clients: usize, total: usize) -> usize {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, url, issued) = (client.clone(), url.to_owned(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let request = Request::post(&url)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ACCEPT, "application/json, text/event-stream")
                    .body(Full::new(Bytes::from_static(CALL.as_bytes())));
                let ok = match request {
                    Ok(request) => match client.request(request).await {
                        Ok(response) => {
                            response.status().is_success()
                                && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                failed += usize::from(!ok);
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        // A task that panicked sent an unknown number of requests: count them all as failed.
        failed += task.await.unwrap_or(total);
    }
    failed
}

/// The event total of a callgrind profile: its `summary:` line, or `totals:` in older formats.
fn total_instructions(profile: &str) -> Option<u64> {
    profile.lines().find_map(|line| {
        let value = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_totals_are_read_from_the_summary() {
        // (profile text, expected, reason)
        let cases = [
            (
                "events: Ir\nfn=main\n1 5\nsummary: 12345\n",
                Some(12345),
                "current format",
            ),
            ("events: Ir\ntotals: 77\n", Some(77), "older format"),
            (
                "events: Ir Dr\nsummary: 10 4\n",
                Some(10),
                "first event is instructions",
            ),
            ("events: Ir\nfn=main\n1 5\n", None, "truncated profile"),
            ("summary: lots\n", None, "not a number"),
        ];
        for (text, expected, reason) in cases {
            assert_eq!(total_instructions(text), expected, "{reason}");
        }
    }

    #[test]
    fn per_request_cancels_what_both_runs_share() {
        let row = InstructionsRow {
            route: Route::Meter,
            short: (2_000, 50_000_000),
            long: (4_000, 90_000_000),
            profile: PathBuf::new(),
        };
        assert_eq!(row.per_request(), 20_000.0);
        let table = instructions_table(std::slice::from_ref(&row));
        assert!(table.contains("20000"), "{table}");
        assert!(table.contains("1.00x"), "{table}");
    }

    #[test]
    fn request_counts_must_grow_and_cover_every_client() {
        let bench = |requests, clients| InstructionsBench {
            mcpulse: PathBuf::new(),
            requests,
            clients,
            with_nginx: false,
            out_dir: PathBuf::new(),
        };
        // (requests, clients, valid, reason)
        let cases = [
            ((2_000, 4_000), 4, true, "the usual setting"),
            (
                (4_000, 2_000),
                4,
                false,
                "long run shorter than the short one",
            ),
            ((2_000, 2_000), 4, false, "no difference to divide by"),
            ((2, 4_000), 4, false, "fewer requests than clients"),
            ((2_000, 4_000), 0, false, "no client"),
        ];
        for (requests, clients, valid, reason) in cases {
            assert_eq!(
                bench(requests, clients).validate().is_ok(),
                valid,
                "{reason}"
            );
        }
    }
}
