//! `mcpulse recommend`: VPA-style CPU and memory recommendations for a workload from its Prometheus history.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mcpulse_scaler::Timestamp;
use mcpulse_scaler::vpa::{
    Matrix, PodResourcePolicy, PrometheusHistory, Queries, QueryResponse, Recommender,
    VerticalPodAutoscaler, VpaConfig, parse_matrix, query_windows, render_table,
};

/// Largest Prometheus answer read; 8 days at 1 m for a few hundred series is well under this.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;
/// Largest `--resource-policy` or `--bearer-token-file` read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The rate window upstream's Prometheus history provider uses; widened when the step is longer, so
/// no usage between two steps goes unseen.
const MIN_RATE_WINDOW: Duration = Duration::from_secs(300);

#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// Prometheus base URL (http), e.g. http://prometheus.monitoring:9090 or http://localhost:9090/prometheus
    #[arg(long, value_name = "URL")]
    prometheus: String,

    /// Namespace of the workload
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: String,

    /// Workload name; its pods are those named `NAME-…` (Deployments, StatefulSets, DaemonSets)
    #[arg(long, value_name = "NAME")]
    workload: String,

    /// Only this container (default: every container of the pods)
    #[arg(long, value_name = "C")]
    container: Option<String>,

    /// How much history to read; the VPA recommender keeps 8 days
    #[arg(long, value_name = "DURATION", default_value = "8d", value_parser = humantime::parse_duration)]
    range: Duration,

    /// Resolution of the history; the VPA confidence assumes one sample a minute
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    step: Duration,

    /// End of the history window as RFC 3339 (e.g. 2026-11-20T12:00:00Z); default: now
    #[arg(long, value_name = "TIME", value_parser = humantime::parse_rfc3339_weak)]
    end: Option<SystemTime>,

    /// `table` (kubectl style), `yaml` (a VerticalPodAutoscaler with status.recommendation) or `json` (the same object)
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    /// File holding a bearer token for Prometheus (e.g. a service-account token)
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,

    /// JSON file with a VPA `resourcePolicy` (`{"containerPolicies": [...]}`) that caps the recommendation
    #[arg(long, value_name = "FILE")]
    resource_policy: Option<PathBuf>,

    /// Kind of the apps/v1 workload, for the printed VPA's targetRef
    #[arg(long, value_enum, default_value_t = TargetKind::Deployment)]
    target_kind: TargetKind,

    /// Timeout of each Prometheus request
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Yaml,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

impl TargetKind {
    fn api_kind(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
        }
    }
}

pub async fn run(args: RecommendArgs) -> Result<i32> {
    let endpoint = query_range_url(&args.prometheus)?;
    let rate_window = rate_window(args.step);
    let queries = Queries::new(
        &args.namespace,
        &args.workload,
        args.container.as_deref(),
        &rate_window,
    )?;
    let range_ms = i64::try_from(args.range.as_millis()).unwrap_or(i64::MAX);
    let step_ms = i64::try_from(args.step.as_millis()).unwrap_or(i64::MAX);
    if range_ms < step_ms {
        bail!(
            "--range {} is shorter than --step {}; read at least one step of history",
            humantime::format_duration(args.range),
            humantime::format_duration(args.step)
        );
    }
    let end = Timestamp::from_system_time(args.end.unwrap_or_else(SystemTime::now));
    let windows = query_windows(end.minus(args.range), end, step_ms)?;
    let policy = match &args.resource_policy {
        Some(path) => Some(read_policy(path)?),
        None => None,
    };
    let token = match &args.bearer_token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .context("building the HTTP client")?;
    let prometheus = Prometheus {
        client,
        endpoint,
        token,
        step_secs: args.step.as_secs_f64(),
        windows,
    };

    let history = PrometheusHistory {
        cpu: prometheus.matrix(&queries.cpu, "cpu usage").await?,
        memory: prometheus.matrix(&queries.memory, "memory usage").await?,
        oom: prometheus.matrix(&queries.oom, "OOM kills").await?,
        cpu_requests: prometheus
            .matrix(&queries.cpu_requests, "cpu requests")
            .await?,
        memory_requests: prometheus
            .matrix(&queries.memory_requests, "memory requests")
            .await?,
        cpu_limits: prometheus.matrix(&queries.cpu_limits, "cpu limits").await?,
        memory_limits: prometheus
            .matrix(&queries.memory_limits, "memory limits")
            .await?,
    };
    if history.cpu.series.is_empty() && history.memory.series.is_empty() {
        bail!(
            "Prometheus has no container_cpu_usage_seconds_total or container_memory_working_set_bytes for pods \
             `{}-…` in namespace `{}` over the last {}; check --namespace, --workload and --range",
            args.workload,
            args.namespace,
            humantime::format_duration(args.range)
        );
    }
    let mut recommender = Recommender::new(VpaConfig::default())?;
    history.feed(&mut recommender)?;
    let recommendation = recommender
        .recommend(policy.as_ref(), None)
        .context("computing the recommendation")?;

    match args.output {
        OutputFormat::Table => {
            let current = |c: &str| history.current_resources(c);
            print!(
                "{}",
                render_table(&recommendation, &current, policy.as_ref())
            );
            print_summary(&recommender, &history);
        }
        OutputFormat::Yaml | OutputFormat::Json => {
            let vpa = VerticalPodAutoscaler::new(
                &args.namespace,
                &args.workload,
                args.target_kind.api_kind(),
                policy,
                recommendation,
            );
            if args.output == OutputFormat::Yaml {
                print!("{}", vpa.to_yaml());
            } else {
                println!("{}", serde_json::to_string_pretty(&vpa)?);
            }
        }
    }
    Ok(0)
}

/// What went in, on stderr so the table stays clean for pipes.
fn print_summary(recommender: &Recommender, history: &PrometheusHistory) {
    let s = recommender.stats();
    let (bad_values, bad_series) = history.skipped();
    eprintln!(
        "\n{} cpu and {} memory samples, {} OOM kills; skipped {} invalid, {} out-of-order, {} too-old OOMs; \
         dropped {bad_values} non-numeric points and {bad_series} unlabelled series",
        s.cpu_samples,
        s.memory_samples,
        s.ooms,
        s.skipped_invalid,
        s.skipped_out_of_order,
        s.skipped_oom_too_old
    );
    for name in recommender.containers() {
        if let Some(h) = recommender.history(name) {
            eprintln!(
                "{name}: confidence {:.2} day(s) of history (bounds widen as it shrinks)",
                h.confidence
            );
        }
    }
}

/// `<base>/api/v1/query_range`, keeping any path prefix of the base.
fn query_range_url(base: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(base).with_context(|| {
        format!("--prometheus {base:?} is not a URL such as http://prometheus:9090")
    })?;
    match url.scheme() {
        "http" => {}
        // The workspace builds reqwest without a TLS backend.
        "https" => bail!(
            "--prometheus {base}: https is not supported by this build; use http, e.g. through `kubectl port-forward`"
        ),
        other => bail!("--prometheus {base}: scheme `{other}` is not http"),
    }
    let joined = format!("{}/api/v1/query_range", url.as_str().trim_end_matches('/'));
    reqwest::Url::parse(&joined).with_context(|| format!("building the query URL from {base}"))
}

/// PromQL duration for the `rate()` window: 5m, or the step when that is longer.
fn rate_window(step: Duration) -> String {
    format!("{}s", step.max(MIN_RATE_WINDOW).as_secs())
}

fn read_bounded(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("opening {what} {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {what} {} (it must be UTF-8 text)", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{what} {} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

fn read_policy(path: &Path) -> Result<PodResourcePolicy> {
    let text = read_bounded(path, "--resource-policy")?;
    let policy: PodResourcePolicy = serde_json::from_str(&text).with_context(|| {
        format!(
            "--resource-policy {} is not a VPA resourcePolicy in JSON, e.g. \
             {{\"containerPolicies\":[{{\"containerName\":\"*\",\"maxAllowed\":{{\"cpu\":\"2\"}}}}]}}",
            path.display()
        )
    })?;
    policy
        .validate()
        .with_context(|| format!("in --resource-policy {}", path.display()))?;
    Ok(policy)
}

fn read_token(path: &Path) -> Result<String> {
    let token = read_bounded(path, "--bearer-token-file")?.trim().to_owned();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "--bearer-token-file {} must hold one token without spaces",
            path.display()
        );
    }
    Ok(token)
}

/// The range-query side of the Prometheus HTTP API.
struct Prometheus {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    token: Option<String>,
    step_secs: f64,
    windows: Vec<(Timestamp, Timestamp)>,
}

impl Prometheus {
    /// Runs `query` over every window and joins the chunks.
    async fn matrix(&self, query: &str, what: &str) -> Result<Matrix> {
        let mut all = Matrix::default();
        for (start, end) in &self.windows {
            let response = self.query_range(query, *start, *end, what).await?;
            let chunk = parse_matrix(response, what)?;
            all.merge(chunk)?;
        }
        Ok(all)
    }

    async fn query_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        what: &str,
    ) -> Result<QueryResponse> {
        let seconds = |t: Timestamp| format!("{:.3}", t.millis() as f64 / 1000.0);
        let mut request = self.client.get(self.endpoint.clone()).query(&[
            ("query", query.to_owned()),
            ("start", seconds(start)),
            ("end", seconds(end)),
            ("step", format!("{}", self.step_secs)),
        ]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .with_context(|| format!("querying {what} from {}", self.endpoint))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("reading the {what} answer from {}", self.endpoint))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                bail!(
                    "the {what} answer is larger than {MAX_RESPONSE_BYTES} bytes; raise --step, shorten --range or pick one --container"
                );
            }
            body.extend_from_slice(&chunk);
        }
        // Prometheus sends its JSON envelope with errors too (400, 422, 503), so try that first.
        serde_json::from_slice::<QueryResponse>(&body).with_context(|| {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            format!(
                "{what}: HTTP {status} from {} is not a Prometheus API answer: {snippet}",
                self.endpoint
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_url_keeps_prefixes_and_refuses_other_schemes() {
        let cases = [
            (
                "http://prom:9090",
                Some("http://prom:9090/api/v1/query_range"),
                "plain host",
            ),
            (
                "http://prom:9090/",
                Some("http://prom:9090/api/v1/query_range"),
                "trailing slash",
            ),
            (
                "http://gw/prometheus",
                Some("http://gw/prometheus/api/v1/query_range"),
                "path prefix",
            ),
            ("https://prom", None, "no TLS backend in this build"),
            ("ftp://prom", None, "not http"),
            ("prom:9090", None, "no scheme"),
        ];
        for (base, want, why) in cases {
            let got = query_range_url(base).ok().map(|u| u.to_string());
            assert_eq!(got.as_deref(), want, "{why}");
        }
    }

    #[test]
    fn rate_window_covers_the_step() {
        assert_eq!(rate_window(Duration::from_secs(60)), "300s");
        assert_eq!(rate_window(Duration::from_secs(900)), "900s");
    }
}
