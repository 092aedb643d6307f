//! A load benchmark of a real registry over loopback HTTP, for `mcpulse bench registry`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use time::OffsetDateTime;

use crate::error::RegistryError;
use crate::storage::{InstanceRecord, StorageConfig};
use crate::{RegistryConfig, Role};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Instances registered before measuring.
    pub instances: usize,
    /// Concurrent HTTP clients, each with its own keep-alive connection.
    pub clients: usize,
    /// How long each operation is driven.
    pub duration: Duration,
    /// Also measure PostgreSQL: a fresh database is created on this server and dropped afterwards.
    pub database_url: Option<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            instances: 1000,
            clients: 32,
            duration: Duration::from_secs(5),
            database_url: None,
        }
    }
}

/// One measured operation on one back end.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub backend: &'static str,
    pub operation: &'static str,
    pub requests: u64,
    /// Requests answered with anything but 2xx, or not answered.
    pub errors: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Every row of a run; `Display` prints it as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub instances: usize,
    pub clients: usize,
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "registry over loopback HTTP: {} instances, {} concurrent clients",
            self.instances, self.clients
        )?;
        writeln!(
            f,
            "{:<10} {:<34} {:>10} {:>10} {:>9} {:>9} {:>7}",
            "backend", "operation", "requests", "req/s", "p50 ms", "p99 ms", "errors"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<10} {:<34} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>7}",
                r.backend,
                r.operation,
                r.requests,
                r.per_second,
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0,
                r.errors
            )?;
        }
        Ok(())
    }
}

/// Runs the benchmark on SQLite (in a temporary directory) and, when a URL is given, PostgreSQL.
pub async fn bench(options: BenchOptions) -> Result<BenchReport, RegistryError> {
    if options.instances == 0 || options.clients == 0 || options.duration.is_zero() {
        return Err(RegistryError::Config(
            "bench needs at least one instance, one client and a positive duration".to_owned(),
        ));
    }
    let mut rows = Vec::new();
    let dir = std::env::temp_dir().join(format!("mcpulse-registry-bench-{}", random_hex()?));
    let sqlite = StorageConfig::Sqlite {
        data_dir: dir.clone(),
    };
    let measured = run_backend("sqlite", sqlite, &options).await;
    remove_dir(&dir);
    rows.extend(measured?);
    if let Some(url) = &options.database_url {
        let (db_url, name) = create_database(url).await?;
        let measured = run_backend(
            "postgres",
            StorageConfig::Postgres { url: db_url },
            &options,
        )
        .await;
        drop_database(url, &name).await;
        rows.extend(measured?);
    }
    Ok(BenchReport {
        instances: options.instances,
        clients: options.clients,
        rows,
    })
}

fn remove_dir(dir: &PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the bench data directory");
    }
}

fn random_hex() -> Result<String, RegistryError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| {
        RegistryError::Config(format!("the operating system gave no random bytes: {e}"))
    })?;
    Ok(hex::encode(bytes))
}

async fn create_database(url: &str) -> Result<(String, String), RegistryError> {
    use sqlx::Connection;
    let err = |source| RegistryError::Storage {
        operation: "create bench database",
        source,
    };
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(err)?;
    let name = format!("mcpulse_bench_{}", random_hex()?);
    // The name is ours (a fixed prefix and hex), never input, so formatting it in is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(err)?;
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_database(url: &str, name: &str) {
    use sqlx::Connection;
    let dropped = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
    };
    if let Err(e) = dropped.await {
        tracing::warn!(database = name, error = %e, "cannot drop the bench database");
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn run_backend(
    backend: &'static str,
    storage: StorageConfig,
    options: &BenchOptions,
) -> Result<Vec<BenchRow>, RegistryError> {
    let mut config = RegistryConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), storage.clone());
    // Probing would add its own load; this measures the API alone.
    config.probe = None;
    let server = crate::bind(config).await?;
    let addr = server.local_addr()?;
    let token = crate::create_token(&storage, Role::Admin, None).await?;
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::with_capacity(options.instances);
    for i in 0..options.instances {
        let id = format!("{i:08x}{}", random_hex()?);
        let instance = InstanceRecord {
            id: id.clone(),
            server_name: format!("io.bench/server-{}", i % 50),
            version: "1.0.0".to_owned(),
            endpoint: format!("http://10.0.{}.{}:8080/mcp", i / 250, i % 250),
            labels: BTreeMap::from([("zone".to_owned(), format!("z{}", i % 3))]),
            registered_at: now,
            last_heartbeat_at: now,
            probe: None,
        };
        server
            .state()
            .storage()
            .register_instance(&instance)
            .await?;
        ids.push(id);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");
    let ids = Arc::new(ids);
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| RegistryError::Config(format!("token is not a header value: {e}")))?;
    // Registrations come last: each adds an instance, which would change what the others read.
    let operations: [(&'static str, Op); 5] = [
        ("GET /api/v1/instances/{id}", Op::Get),
        ("GET /api/v1/instances?limit=100", Op::ListPage),
        ("GET /api/v1/instances?serverName=..", Op::ListServer),
        ("POST /api/v1/instances/{id}/heartbeat", Op::Heartbeat),
        ("POST /api/v1/instances", Op::Register),
    ];
    let mut rows = Vec::new();
    for (name, op) in operations {
        let load = Load {
            client: client.clone(),
            base: base.clone(),
            ids: ids.clone(),
            bearer: bearer.clone(),
            op,
        };
        let (requests, errors, latencies, elapsed) =
            load.drive(options.clients, options.duration).await;
        rows.push(BenchRow {
            backend,
            operation: name,
            requests,
            errors,
            per_second: requests as f64 / elapsed.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
        });
    }
    let _ = stop.send(());
    match serving.await {
        Ok(result) => result?,
        Err(e) => tracing::warn!(error = %e, "bench server task failed"),
    }
    Ok(rows)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    ListPage,
    ListServer,
    Heartbeat,
    /// Synced to disk before it is answered, unlike a heartbeat.
    Register,
}

#[derive(Clone)]
struct Load {
    client: HttpClient,
    base: String,
    ids: Arc<Vec<String>>,
    bearer: HeaderValue,
    op: Op,
}

impl Load {
    /// Runs `clients` loops for `duration`; returns requests, errors, sorted latencies, elapsed.
    async fn drive(
        &self,
        clients: usize,
        duration: Duration,
    ) -> (u64, u64, Vec<Duration>, Duration) {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..clients {
            let load = self.clone();
            tasks.spawn(async move { load.worker(worker, deadline).await });
        }
        let (mut requests, mut errors, mut latencies) = (0, 0, Vec::new());
        while let Some(joined) = tasks.join_next().await {
            if let Ok((r, e, l)) = joined {
                requests += r;
                errors += e;
                latencies.extend(l);
            }
        }
        latencies.sort_unstable();
        (requests, errors, latencies, start.elapsed())
    }

    async fn worker(&self, worker: usize, deadline: Instant) -> (u64, u64, Vec<Duration>) {
        let (mut requests, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
        let mut i = worker.wrapping_mul(7919);
        while Instant::now() < deadline {
            i = i.wrapping_add(1);
            let id = &self.ids[i % self.ids.len()];
            let mut body = Bytes::new();
            let (method, path) = match self.op {
                Op::Get => (Method::GET, format!("/api/v1/instances/{id}")),
                Op::ListPage => (Method::GET, "/api/v1/instances?limit=100".to_owned()),
                Op::ListServer => (
                    Method::GET,
                    format!("/api/v1/instances?serverName=io.bench%2Fserver-{}", i % 50),
                ),
                Op::Heartbeat => (Method::POST, format!("/api/v1/instances/{id}/heartbeat")),
                Op::Register => {
                    let endpoint = format!("http://10.1.{}.{}:8080/mcp", i / 250 % 250, i % 250);
                    body = Bytes::from(
                        serde_json::json!({
                            "serverName": format!("io.bench/server-{}", i % 50),
                            "version": "1.0.0",
                            "endpoint": endpoint,
                        })
                        .to_string(),
                    );
                    (Method::POST, "/api/v1/instances".to_owned())
                }
            };
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base));
            if matches!(self.op, Op::Heartbeat | Op::Register) {
                request = request.header(AUTHORIZATION, self.bearer.clone());
            }
            if matches!(self.op, Op::Register) {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            let Ok(request) = request.body(Full::new(body)) else {
                errors += 1;
                continue;
            };
            let sent = Instant::now();
            let ok = match self.client.request(request).await {
                Ok(response) => {
                    let success = response.status().is_success();
                    // Reading the whole body is part of the request's cost.
                    success && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            };
            latencies.push(sent.elapsed());
            requests += 1;
            if !ok {
                errors += 1;
            }
        }
        (requests, errors, latencies)
    }
}

/// The `q` quantile of sorted `latencies` (nearest rank).
fn percentile(latencies: &[Duration], q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((latencies.len() as f64) * q).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let data: Vec<Duration> = (1..=100).map(ms).collect();
        let cases = [
            (&data[..], 0.50, ms(50), "median of 1..=100"),
            (&data[..], 0.99, ms(99), "p99 of 1..=100"),
            (
                &data[..1],
                0.99,
                ms(1),
                "a single sample is every percentile",
            ),
            (&[][..], 0.99, Duration::ZERO, "no samples"),
        ];
        for (samples, q, want, why) in cases {
            assert_eq!(percentile(samples, q), want, "{why}");
        }
    }
}
