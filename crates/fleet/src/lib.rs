//! `mcpulse up`: a whole MCP fleet on one machine — the registry (SQLite), agents as child processes, the meter as
//! a gateway that discovers them, the HPA-exact autoscaler with a local process actuator, and a live console.

mod agents;
mod autoscale;
mod chart;
mod console;
mod monitoring;
mod predict;
mod signals;
mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpulse_meter::{Discovery, MeterConfig};
use mcpulse_registry::{ProbeSettings, RegistryConfig, Role, StorageConfig};
use mcpulse_telemetry::Exposition;
use serde::Deserialize;
use tokio::sync::watch;

pub use monitoring::{FiringAlert, MonitoringSettings};
pub use state::{FleetFile, Sample};

use crate::agents::{AgentTemplate, Agents, Phase};
use crate::autoscale::{AgentLoad, Autoscaler};
use crate::console::{AgentView, Console, Live};
use crate::monitoring::{AgentTarget, Monitoring};
use crate::predict::{Prediction, Predictor, Tick};
use crate::state::DecisionRecord;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("invalid setting `{field}`: {message}")]
    Config { field: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("registry: {0}")]
    Registry(#[from] mcpulse_registry::RegistryError),
    #[error("gateway: {0}")]
    Meter(#[from] mcpulse_meter::MeterError),
    #[error("autoscaler: {0}")]
    Scaling(String),
}

#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub data_dir: PathBuf,
    /// Agents started at once.
    pub agents: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub registry: SocketAddr,
    /// Where MCP clients connect (the gateway, at `/mcp`).
    pub gateway: SocketAddr,
    pub console: SocketAddr,
    pub scale_down_window: Duration,
    /// Time between scaling decisions.
    pub sync_period: Duration,
    /// In-flight requests per agent the autoscaler aims for.
    pub target_in_flight: f64,
    /// How long a draining agent may keep sessions before it is stopped anyway.
    pub drain_timeout: Duration,
    /// Extra `mcpulse agent` flags, e.g. `--sleep-ms 50 --workers 4`.
    pub agent_args: Vec<String>,
    /// The `mcpulse` binary agents are started from.
    pub mcpulse: PathBuf,
    /// Prometheus and Alertmanager, when installed; `None` runs without them.
    pub monitoring: Option<MonitoringSettings>,
    /// Add agents ahead of a forecast rise (once forecasts have proved good), on top of the reactive HPA.
    pub predictive: bool,
}

impl FleetConfig {
    pub fn validate(&self) -> Result<(), FleetError> {
        let bad = |field: &str, message: String| {
            Err(FleetError::Config {
                field: field.into(),
                message,
            })
        };
        if self.min_replicas == 0 {
            return bad("min-replicas", "must be at least 1".into());
        }
        if self.max_replicas < self.min_replicas {
            return bad(
                "max-replicas",
                format!(
                    "{} is below --min-replicas {}",
                    self.max_replicas, self.min_replicas
                ),
            );
        }
        if !(self.min_replicas..=self.max_replicas).contains(&self.agents) {
            return bad(
                "agents",
                format!(
                    "{} is outside --min-replicas..--max-replicas ({}..{})",
                    self.agents, self.min_replicas, self.max_replicas
                ),
            );
        }
        if !(self.target_in_flight.is_finite() && self.target_in_flight > 0.0) {
            return bad(
                "target-in-flight",
                format!("{} must be a positive number", self.target_in_flight),
            );
        }
        if self.sync_period < Duration::from_secs(1) {
            return bad("sync-period", "must be at least 1s".into());
        }
        Ok(())
    }
}

/// One status line's worth of the fleet, for the terminal.
#[derive(Clone, Debug)]
pub struct StatusLine {
    pub current: u32,
    pub desired: u32,
    pub rate: f64,
    pub p95_ms: Option<f64>,
    pub in_flight: f64,
    pub restarts: u64,
    /// Alerts firing in Alertmanager; `None` without monitoring.
    pub alerts_firing: Option<usize>,
}

impl std::fmt::Display for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p95 = self
            .p95_ms
            .map_or("–".to_string(), |p| format!("{p:.0} ms"));
        write!(
            f,
            "replicas {}/{} (current/desired) · {:.1} req/s · p95 {p95} · in flight {:.0} · restarts {}",
            self.current, self.desired, self.rate, self.in_flight, self.restarts
        )?;
        match self.alerts_firing {
            Some(firing) => write!(f, " · alerts firing {firing}"),
            None => Ok(()),
        }
    }
}

#[derive(Deserialize)]
struct UpstreamStatus {
    url: String,
    sessions: u64,
    in_flight: u64,
    queued: u64,
}

/// Runs the fleet until `shutdown`, then stops everything: agents drain and exit, the gateway and registry stop.
/// `on_ready` learns the addresses once everything listens; `on_status` hears a status line every second;
/// `on_event` hears each start, restart, drain and scaling decision.
pub async fn run(
    config: FleetConfig,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&FleetFile),
    mut on_status: impl FnMut(&StatusLine),
    mut on_event: impl FnMut(&str),
) -> Result<(), FleetError> {
    config.validate()?;
    let io = |what: String| move |source| FleetError::Io { what, source };
    let logs = config.data_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(format!("create {}", logs.display())))?;
    let storage = StorageConfig::Sqlite {
        data_dir: config.data_dir.join("registry"),
    };
    let token = mcpulse_registry::create_token(&storage, Role::Publisher, None).await?;

    let (stop, stopped) = watch::channel(false);
    let stop_signal = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };

    // Registry: SQLite in the data dir; quick health so the demo reacts in seconds.
    let mut registry_config = RegistryConfig::new(config.registry, storage);
    registry_config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    registry_config.options.health.unhealthy_after = Duration::from_secs(3);
    registry_config.options.health.gone_after = Duration::from_secs(60);
    registry_config.probe = Some(ProbeSettings {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        jitter: Duration::from_millis(200),
        concurrency: 16,
    });
    let registry = mcpulse_registry::bind(registry_config).await?;
    let registry_addr = registry.local_addr()?;
    let registry_metrics = registry.metrics_addr()?;
    let registry_task = tokio::spawn(registry.run(stop_signal()));
    let registry_url = format!("http://{registry_addr}");

    // Gateway: the meter, discovering agents from the registry.
    let mut meter = MeterConfig::http(
        config.gateway,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Vec::new(),
    );
    meter.discovery = Some(Discovery {
        registry: registry_url.parse().map_err(|e| FleetError::Config {
            field: "registry".into(),
            message: format!("{e}"),
        })?,
        server_name: None,
        interval: Duration::from_millis(500),
        token: None,
    });
    meter.shutdown_grace = Duration::from_secs(5);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let meter_task = tokio::spawn(mcpulse_meter::run(meter, stop_signal(), move |bound| {
        let _ = bound_tx.send(bound);
    }));
    let bound = match bound_rx.await {
        Ok(bound) => bound,
        Err(_) => {
            let _ = stop.send(true);
            return match meter_task.await {
                Ok(Err(error)) => Err(error.into()),
                _ => Err(FleetError::Scaling(
                    "the gateway stopped before it listened".into(),
                )),
            };
        }
    };
    let gateway = bound.proxy.unwrap_or(config.gateway);

    let mut agents = Agents::new(AgentTemplate {
        mcpulse: config.mcpulse.clone(),
        registry_url: registry_url.clone(),
        token,
        extra_args: config.agent_args.clone(),
        log_dir: logs,
    });
    for _ in 0..config.agents {
        let id = agents.spawn()?;
        on_event(&format!("started agent {id}"));
    }

    let mut monitoring = match &config.monitoring {
        Some(settings) => {
            start_monitoring(
                settings,
                &config.data_dir,
                registry_metrics,
                bound.metrics,
                &mut on_event,
            )
            .await
        }
        None => None,
    };

    let console_listener = tokio::net::TcpListener::bind(config.console)
        .await
        .map_err(io(format!("listen on --console {}", config.console)))?;
    let addresses = FleetFile {
        pid: std::process::id(),
        registry: registry_addr.to_string(),
        gateway: gateway.to_string(),
        gateway_metrics: bound.metrics.to_string(),
        console: console_listener
            .local_addr()
            .map_err(io("console address".into()))?
            .to_string(),
        prometheus: monitoring.as_ref().map(|m| m.prometheus_addr.to_string()),
        alertmanager: monitoring.as_ref().map(|m| m.alertmanager_addr.to_string()),
    };
    let live = Arc::new(Mutex::new(Live {
        desired: config.agents,
        ..Live::default()
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| FleetError::Io {
            what: "HTTP client".into(),
            source: std::io::Error::other(e),
        })?;
    let console = Console {
        live: live.clone(),
        addresses: addresses.clone(),
        http: http.clone(),
    };
    let console_stop = stop_signal();
    tokio::spawn(async move {
        let _ = axum::serve(console_listener, console::router(console))
            .with_graceful_shutdown(console_stop)
            .await;
    });
    let fleet_file = FleetFile::path(&config.data_dir);
    let written = serde_json::to_string_pretty(&addresses).unwrap_or_default();
    std::fs::write(&fleet_file, written).map_err(io(format!("write {}", fleet_file.display())))?;
    on_ready(&addresses);

    let mut autoscaler = Autoscaler::new(
        config.min_replicas,
        config.max_replicas,
        config.target_in_flight,
        config.scale_down_window,
        config.sync_period,
    )?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<(Instant, signals::Counts)> = None;
    let mut load_sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    let mut last_decision = Instant::now();
    let mut desired = config.agents;
    let mut predictor = Predictor::new(config.target_in_flight);
    let mut prediction = Prediction::Off {
        reason: "no decision yet".into(),
    };
    let mut reactive = config.agents;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut shutdown => break,
        }
        let now = Instant::now();
        for event in agents.reap(now) {
            on_event(&event);
        }
        let scrape = scrape(&http, &addresses.gateway_metrics).await;
        let upstreams = upstream_status(&http, &addresses.gateway_metrics).await;
        let in_flight_now = scrape
            .as_ref()
            .map(signals::in_flight_by_upstream)
            .unwrap_or_default();
        let in_flight: f64 = in_flight_now.values().sum();
        for (upstream, value) in &in_flight_now {
            let entry = load_sums.entry(upstream.clone()).or_insert((0.0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
        let counts = scrape.as_ref().map(signals::counts).unwrap_or_default();
        let (rate, p95) = match &previous {
            Some((at, before)) => {
                let seconds = now.duration_since(*at).as_secs_f64();
                (
                    signals::rate(before, &counts, seconds),
                    signals::quantile(before, &counts, 0.95),
                )
            }
            None => (0.0, None),
        };
        previous = Some((now, counts));
        predictor.observe(&Tick {
            t: started.elapsed().as_secs_f64(),
            rate,
            serving: u32::try_from(agents.running().count()).unwrap_or(u32::MAX),
            in_flight,
        });

        if now.duration_since(last_decision) >= config.sync_period {
            last_decision = now;
            // An agent waiting to restart is an unready replica, as a crash-looping pod is to the HPA.
            let loads: Vec<AgentLoad> = agents
                .all()
                .iter()
                .filter(|a| matches!(a.phase, Phase::Running | Phase::CrashBackoff { .. }))
                .map(|a| AgentLoad {
                    name: a.upstream(),
                    started: autoscale::now().minus(a.started.elapsed()),
                    in_flight: (a.phase == Phase::Running)
                        .then(|| load_sums.get(&a.upstream()))
                        .flatten()
                        .map(|(sum, n)| sum / f64::from((*n).max(1))),
                })
                .collect();
            load_sums.clear();
            let running = u32::try_from(loads.len()).unwrap_or(u32::MAX);
            let at = autoscale::now();
            match autoscaler.decide(&loads, running, at) {
                Ok(decision) => {
                    reactive = u32::try_from(decision.desired_replicas.max(0)).unwrap_or(0);
                    prediction = if config.predictive {
                        predictor.recommend(config.min_replicas, config.max_replicas)
                    } else {
                        Prediction::Off {
                            reason: "switched off (--no-predictive)".into(),
                        }
                    };
                    desired = reactive;
                    let mut line = decision.log_line();
                    let trusted = match &prediction {
                        Prediction::Trusted { replicas, .. } => Some(*replicas),
                        _ => None,
                    };
                    let held = autoscaler.hold_prediction(trusted, at);
                    if let Some(held) = held.filter(|held| *held > reactive) {
                        desired = held;
                        line = match &prediction {
                            Prediction::Trusted {
                                replicas,
                                peak_rate,
                                capacity_per_agent,
                            } if *replicas == held => format!(
                                "scale {} {running} -> {desired} (predictive): forecast peak {peak_rate:.1} req/s within \
                                 10 s at {capacity_per_agent:.1} req/s per agent needs {desired}; reactive wanted {reactive}",
                                if desired > running { "up" } else { "down" }
                            ),
                            _ => format!(
                                "hold {desired} for an earlier forecast within the scale-down window; reactive wanted {reactive}"
                            ),
                        };
                    }
                    if desired != running {
                        on_event(&line);
                        if let Ok(mut live) = live.lock() {
                            live.history.push_decision(DecisionRecord {
                                t: started.elapsed().as_secs_f64(),
                                current: running,
                                desired,
                                explanation: line,
                            });
                        }
                    }
                    actuate(
                        &mut agents,
                        &http,
                        &addresses.gateway_metrics,
                        &upstreams,
                        running,
                        desired,
                        &mut on_event,
                    )
                    .await;
                }
                Err(error) => on_event(&format!("no scaling decision: {error}")),
            }
        }
        finish_drains(&mut agents, &upstreams, config.drain_timeout, &mut on_event);
        let mut alerts = None;
        if let Some(monitoring) = &mut monitoring {
            let targets: Vec<AgentTarget> = agents
                .all()
                .iter()
                .filter(|a| a.phase != Phase::Stopping)
                .map(|a| AgentTarget {
                    id: a.id,
                    metrics: a.metrics,
                })
                .collect();
            if let Err(error) = monitoring.set_agents(&targets) {
                on_event(&format!("Prometheus discovery not updated: {error}"));
            }
            alerts = monitoring.firing(&http).await;
        }

        let current = u32::try_from(agents.current()).unwrap_or(u32::MAX);
        let sample = Sample {
            t: started.elapsed().as_secs_f64(),
            rate,
            p95_seconds: p95,
            in_flight,
            current_replicas: current,
            desired_replicas: desired,
            forecast: predictor.band_for(started.elapsed().as_secs_f64()),
            desired_reactive: reactive,
            desired_predictive: match &prediction {
                Prediction::Trusted { replicas, .. } => Some(*replicas),
                Prediction::Off { .. } => None,
            },
        };
        if let Ok(mut live) = live.lock() {
            live.history.push_sample(sample);
            live.history.restarts = agents.restarts;
            live.desired = desired;
            live.agents = agent_views(&agents, &upstreams, &in_flight_now);
            live.alerts.clone_from(&alerts);
            live.prediction = prediction.clone();
        }
        on_status(&StatusLine {
            current,
            desired,
            rate,
            p95_ms: p95.map(|s| s * 1000.0),
            in_flight,
            restarts: agents.restarts,
            alerts_firing: alerts.as_ref().map(Vec::len),
        });
    }

    on_event("stopping: agents drain and exit, then the gateway and registry stop");
    tokio::task::block_in_place(|| {
        agents.stop_all(Duration::from_secs(15));
        if let Some(monitoring) = &mut monitoring {
            monitoring.stop(Duration::from_secs(10));
        }
    });
    let _ = stop.send(true);
    let _ = meter_task.await;
    let _ = registry_task.await;
    let _ = std::fs::remove_file(&fleet_file);
    Ok(())
}

/// Starts Prometheus and Alertmanager when both are installed. The fleet works without them, so a missing or
/// failing install is an event, not an error.
async fn start_monitoring(
    settings: &MonitoringSettings,
    data_dir: &std::path::Path,
    registry_metrics: Option<SocketAddr>,
    gateway_metrics: SocketAddr,
    on_event: &mut impl FnMut(&str),
) -> Option<Monitoring> {
    let Some(binaries) = monitoring::find_binaries() else {
        on_event(
            "Prometheus and Alertmanager are not installed, so no alerts (on Debian: apt-get install prometheus \
             prometheus-alertmanager); the autoscaler reads the gateway's metrics directly",
        );
        return None;
    };
    let started = Monitoring::start(
        binaries,
        &data_dir.join("prometheus"),
        &data_dir.join("logs"),
        settings,
        registry_metrics,
        gateway_metrics,
    )
    .await;
    match started {
        Ok(monitoring) => Some(monitoring),
        Err(error) => {
            on_event(&format!(
                "running without Prometheus and Alertmanager: {error}"
            ));
            None
        }
    }
}

async fn scrape(http: &reqwest::Client, metrics: &str) -> Option<Exposition> {
    let text = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Exposition::parse(&text).ok()
}

async fn upstream_status(http: &reqwest::Client, metrics: &str) -> Vec<UpstreamStatus> {
    match http.get(format!("http://{metrics}/upstreams")).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Moves the fleet towards `desired`: starts agents, or drains the ones with the fewest sessions (Kubernetes'
/// pod-deletion-cost idea) so scale-in interrupts as little as possible.
async fn actuate(
    agents: &mut Agents,
    http: &reqwest::Client,
    gateway_metrics: &str,
    upstreams: &[UpstreamStatus],
    running: u32,
    desired: u32,
    on_event: &mut impl FnMut(&str),
) {
    if desired > running {
        for _ in running..desired {
            match agents.spawn() {
                Ok(id) => on_event(&format!("scale out: started agent {id}")),
                Err(error) => on_event(&format!("scale out failed: {error}")),
            }
        }
        return;
    }
    let sessions_of = |upstream: &str| {
        upstreams
            .iter()
            .find(|u| u.url == upstream)
            .map_or(0, |u| u.sessions)
    };
    let mut victims: Vec<(u64, u32, String)> = agents
        .running()
        .map(|a| (sessions_of(&a.upstream()), a.id, a.upstream()))
        .collect();
    victims.sort();
    let surplus = usize::try_from(running.saturating_sub(desired)).unwrap_or(0);
    for (sessions, id, upstream) in victims.into_iter().take(surplus) {
        let drain = format!("http://{gateway_metrics}/upstreams/drain?url={upstream}");
        if let Err(error) = http.post(drain).send().await {
            on_event(&format!(
                "could not drain agent {id} at the gateway: {error}"
            ));
        }
        agents.begin_drain(id, Instant::now());
        on_event(&format!(
            "scale in: draining agent {id} ({sessions} sessions)"
        ));
    }
}

/// Stops draining agents once the gateway has no session or request left on them, or the drain time is up.
fn finish_drains(
    agents: &mut Agents,
    upstreams: &[UpstreamStatus],
    timeout: Duration,
    on_event: &mut impl FnMut(&str),
) {
    let ready: Vec<(u32, bool)> = agents
        .all()
        .iter()
        .filter_map(|a| match a.phase {
            Phase::Draining { since } => {
                let idle = upstreams
                    .iter()
                    .find(|u| u.url == a.upstream())
                    .is_none_or(|u| u.sessions == 0 && u.in_flight == 0 && u.queued == 0);
                let expired = since.elapsed() >= timeout;
                (idle || expired).then_some((a.id, idle))
            }
            _ => None,
        })
        .collect();
    for (id, idle) in ready {
        let why = if idle { "drained" } else { "drain time is up" };
        on_event(&format!("stopping agent {id} ({why})"));
        agents.terminate(id);
    }
}

fn agent_views(
    agents: &Agents,
    upstreams: &[UpstreamStatus],
    in_flight: &BTreeMap<String, f64>,
) -> Vec<AgentView> {
    agents
        .all()
        .iter()
        .map(|a| {
            let upstream = a.upstream();
            AgentView {
                id: a.id,
                sessions: upstreams
                    .iter()
                    .find(|u| u.url == upstream)
                    .map_or(0, |u| u.sessions),
                in_flight: in_flight.get(&upstream).copied().unwrap_or(0.0),
                metrics: a.metrics.to_string(),
                pid: a.pid(),
                phase: match a.phase {
                    Phase::Running => "running",
                    Phase::Draining { .. } => "draining",
                    Phase::Stopping => "stopping",
                    Phase::CrashBackoff { .. } => "crash-backoff",
                }
                .to_owned(),
                endpoint: upstream,
            }
        })
        .collect()
}
